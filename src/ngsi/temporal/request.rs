//! The temporal part of a request: `timerel`, `timeAt`, `endTimeAt`, `timeproperty`,
//! `lastN`, `aggrMethods`, `aggrPeriodDuration`, validated with clear 400s.

use std::collections::HashMap;

use super::duration::Period;
use crate::error::{NgsiError, Result};
use crate::ngsi::time;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeRel {
    Before(i64),
    After(i64),
    Between(i64, i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeProperty {
    #[default]
    ObservedAt,
    CreatedAt,
    ModifiedAt,
    DeletedAt,
}

impl TimeProperty {
    pub fn name(self) -> &'static str {
        match self {
            TimeProperty::ObservedAt => "observedAt",
            TimeProperty::CreatedAt => "createdAt",
            TimeProperty::ModifiedAt => "modifiedAt",
            TimeProperty::DeletedAt => "deletedAt",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggrMethod {
    TotalCount,
    DistinctCount,
    Sum,
    Avg,
    Min,
    Max,
    Stddev,
    Sumsq,
}

impl AggrMethod {
    pub const ALL: [AggrMethod; 8] = [
        AggrMethod::TotalCount,
        AggrMethod::DistinctCount,
        AggrMethod::Sum,
        AggrMethod::Avg,
        AggrMethod::Min,
        AggrMethod::Max,
        AggrMethod::Stddev,
        AggrMethod::Sumsq,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AggrMethod::TotalCount => "totalCount",
            AggrMethod::DistinctCount => "distinctCount",
            AggrMethod::Sum => "sum",
            AggrMethod::Avg => "avg",
            AggrMethod::Min => "min",
            AggrMethod::Max => "max",
            AggrMethod::Stddev => "stddev",
            AggrMethod::Sumsq => "sumsq",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            NgsiError::bad_data(format!(
                "unknown aggregation method '{s}': use totalCount, distinctCount, sum, avg, min, max, stddev or sumsq"
            ))
        })
    }
}

/// How the history is written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TemporalFormat {
    #[default]
    Normalized,
    TemporalValues,
    Aggregated,
}

#[derive(Debug, Clone, Default)]
pub struct TemporalQuery {
    pub timerel: Option<TimeRel>,
    pub timeproperty: TimeProperty,
    pub last_n: Option<usize>,
    pub methods: Vec<AggrMethod>,
    pub period: Option<Period>,
    pub format: TemporalFormat,
    pub sys_attrs: bool,
    /// Most instances per attribute in one response; more makes a partial (206) answer.
    pub max_instances: Option<usize>,
}

fn instant(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>> {
    params
        .get(name)
        .map(|s| {
            // Clause 4.11: a DateTime, not a reduced form such as a date alone.
            let date_time = s.contains('T').then(|| time::parse(s)).and_then(|t| t.ok());
            date_time.map(time::micros).ok_or_else(|| {
                NgsiError::bad_data(format!("{name} '{s}' is not an ISO 8601 date-time"))
            })
        })
        .transpose()
}

/// PT0S, P0D, PT0H0M...: a well-formed duration of length zero.
fn is_zero_duration(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_digit())
        && s.chars().filter(|c| c.is_ascii_digit()).all(|c| c == '0')
        && Period::parse(&s.replace('0', "1")).is_ok()
}

impl TemporalQuery {
    /// The same window, every instance in it, as plain instances: what a filter on
    /// the history (q, scopeQ, geoQ) is judged on.
    pub fn for_filtering(&self) -> Self {
        Self {
            timerel: self.timerel,
            timeproperty: self.timeproperty,
            sys_attrs: self.sys_attrs,
            ..Self::default()
        }
    }

    pub fn parse(params: &HashMap<String, String>, options: &[String]) -> Result<Self> {
        let mut q = TemporalQuery::default();
        let at = instant(params, "timeAt")?;
        let end = instant(params, "endTimeAt")?;
        q.timerel = match (params.get("timerel").map(String::as_str), at, end) {
            (None, None, None) => None,
            (None, _, _) => return Err(NgsiError::bad_data("timeAt and endTimeAt need a timerel")),
            (Some(_), None, _) => return Err(NgsiError::bad_data("timerel needs a timeAt")),
            (Some("before"), Some(t), _) => Some(TimeRel::Before(t)),
            (Some("after"), Some(t), _) => Some(TimeRel::After(t)),
            (Some("between"), Some(_), None) => {
                return Err(NgsiError::bad_data("timerel=between needs an endTimeAt"))
            }
            (Some("between"), Some(a), Some(b)) if b <= a => {
                return Err(NgsiError::bad_data("endTimeAt must be after timeAt"))
            }
            (Some("between"), Some(a), Some(b)) => Some(TimeRel::Between(a, b)),
            (Some(other), _, _) => {
                return Err(NgsiError::bad_data(format!(
                    "unknown timerel '{other}': use before, after or between"
                )))
            }
        };
        q.timeproperty = match params.get("timeproperty").map(String::as_str) {
            None | Some("observedAt") => TimeProperty::ObservedAt,
            Some("createdAt") => TimeProperty::CreatedAt,
            Some("modifiedAt") => TimeProperty::ModifiedAt,
            Some("deletedAt") => TimeProperty::DeletedAt,
            Some(other) => {
                return Err(NgsiError::bad_data(format!(
                    "unknown timeproperty '{other}': use observedAt, createdAt, modifiedAt or deletedAt"
                )))
            }
        };
        if let Some(n) = params.get("lastN") {
            match n.parse::<usize>() {
                Ok(n) if n > 0 => q.last_n = Some(n),
                _ => {
                    return Err(NgsiError::bad_data(format!(
                        "lastN must be a positive integer, not '{n}'"
                    )))
                }
            }
        }
        for o in options {
            match o.as_str() {
                "temporalValues" | "simplified" | "keyValues" => {
                    q.format = TemporalFormat::TemporalValues
                }
                "aggregatedValues" => q.format = TemporalFormat::Aggregated,
                "normalized" => {}
                "sysAttrs" => q.sys_attrs = true,
                other => return Err(NgsiError::invalid(format!("unknown option '{other}'"))),
            }
        }
        if q.format == TemporalFormat::Aggregated {
            let methods = params
                .get("aggrMethods")
                .ok_or_else(|| NgsiError::bad_data("aggregatedValues needs aggrMethods"))?;
            q.methods = methods
                .split(',')
                .map(|m| AggrMethod::parse(m.trim()))
                .collect::<Result<_>>()
                .map_err(|e| NgsiError::bad_data(format!("aggrMethods: {}", e.detail)))?;
            // A zero duration (the default, PT0S) is one period over the whole window.
            q.period = params
                .get("aggrPeriodDuration")
                .filter(|p| !is_zero_duration(p))
                .map(|p| {
                    Period::parse(p).map_err(|e| {
                        NgsiError::bad_data(format!("aggrPeriodDuration: {}", e.detail))
                    })
                })
                .transpose()?;
        } else if params.contains_key("aggrMethods")
            && !options.iter().any(|o| o == "aggregatedValues")
        {
            return Err(NgsiError::bad_data(
                "aggrMethods needs options=aggregatedValues",
            ));
        }
        // When `format` chose another representation over options=aggregatedValues
        // (clause 6.3.12), the aggregation parameters are ignored.
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn validates_time_relations() {
        let ok = TemporalQuery::parse(
            &p(&[
                ("timerel", "between"),
                ("timeAt", "2024-01-01T00:00:00Z"),
                ("endTimeAt", "2024-02-01T00:00:00Z"),
            ]),
            &[],
        );
        assert!(matches!(
            ok.map(|q| q.timerel),
            Ok(Some(TimeRel::Between(..)))
        ));
        assert!(TemporalQuery::parse(
            &p(&[("timerel", "between"), ("timeAt", "2024-01-01T00:00:00Z")]),
            &[]
        )
        .is_err());
        assert!(TemporalQuery::parse(
            &p(&[("timerel", "during"), ("timeAt", "2024-01-01T00:00:00Z")]),
            &[]
        )
        .is_err());
        assert!(
            TemporalQuery::parse(&p(&[("timerel", "after"), ("timeAt", "yesterday")]), &[])
                .is_err()
        );
        assert!(TemporalQuery::parse(&p(&[("lastN", "0")]), &[]).is_err());
        assert!(TemporalQuery::parse(&p(&[("lastN", "1.5")]), &[]).is_err());
        let aggr = ["aggregatedValues".to_string()];
        assert!(TemporalQuery::parse(&p(&[("aggrMethods", "median")]), &aggr).is_err());
        assert!(TemporalQuery::parse(
            &p(&[("aggrMethods", "avg"), ("aggrPeriodDuration", "P1X")]),
            &aggr
        )
        .is_err());
        assert!(TemporalQuery::parse(
            &p(&[("aggrMethods", "avg,max"), ("aggrPeriodDuration", "P1D")]),
            &aggr
        )
        .is_ok());
    }
}
