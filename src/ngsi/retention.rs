//! How long attribute history is kept: rules per tenant and per entity type, and the
//! prune jobs they give for one tenant. Default: keep everything.
//!
//! Rule syntax (`--retention`), rules separated by commas or whitespace:
//!
//! ```text
//! *=P5Y                      every tenant: five years
//! metropole=P10Y             tenant "metropole": ten years
//! <default>=P1Y              the default tenant (requests without NGSILD-Tenant)
//! *@WaterObserved=P30Y       entities of that type, in every tenant
//! metropole@NoiseLevelObserved=P1Y
//! ```
//!
//! For one entity the most specific rule wins: tenant@Type, then *@Type, then the
//! tenant's rule, then `*`. An entity of several types with rules of their own keeps its
//! history for the longest of them (losing data is the worse mistake). A type is given
//! as its full IRI or as its short name, which matches the last segment of the IRI
//! (after the last `/` or `#`), whatever @context it was created with.

use crate::error::{NgsiError, Result};
use crate::ngsi::temporal::Period;
use crate::ngsi::Tenant;

/// Which tenants a rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TenantScope {
    Every,
    One(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    tenant: TenantScope,
    entity_type: Option<String>,
    keep: Period,
}

/// The parsed `--retention` setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    rules: Vec<Rule>,
}

/// Which entities' history one prune covers: those having one of `include` (all when
/// `None`) and none of `exclude`, type names matched as described in the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneJob {
    pub include: Option<Vec<String>>,
    pub exclude: Vec<String>,
    pub keep: Period,
}

const DEFAULT_TENANT: &str = "<default>";

impl RetentionPolicy {
    pub fn parse(spec: &str) -> Result<Self> {
        let mut rules: Vec<Rule> = Vec::new();
        for item in spec
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            let rule = parse_rule(item)?;
            if rules
                .iter()
                .any(|r| r.tenant == rule.tenant && r.entity_type == rule.entity_type)
            {
                return Err(NgsiError::bad_data(format!(
                    "retention rule '{item}' repeats the scope of an earlier rule"
                )));
            }
            rules.push(rule);
        }
        Ok(Self { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The prunes that apply this policy to one tenant's history.
    pub fn jobs_for(&self, tenant: &Tenant) -> Vec<PruneJob> {
        let applies = |scope: &TenantScope| match scope {
            TenantScope::Every => true,
            TenantScope::One(name) => name == tenant.as_str(),
        };
        // Per type: the tenant's own rule beats the every-tenant one.
        let mut typed: Vec<(String, Period)> = Vec::new();
        for specific in [false, true] {
            for r in &self.rules {
                let Some(t) = &r.entity_type else { continue };
                if applies(&r.tenant) && matches!(r.tenant, TenantScope::One(_)) == specific {
                    typed.retain(|(term, _)| term != t);
                    typed.push((t.clone(), r.keep));
                }
            }
        }
        let fallback = self
            .rules
            .iter()
            .filter(|r| r.entity_type.is_none() && applies(&r.tenant))
            .max_by_key(|r| matches!(r.tenant, TenantScope::One(_)))
            .map(|r| r.keep);

        let mut jobs: Vec<PruneJob> = typed
            .iter()
            .map(|(term, keep)| PruneJob {
                include: Some(vec![term.clone()]),
                exclude: typed
                    .iter()
                    .filter(|(_, other)| keeps_longer(other, keep))
                    .map(|(t, _)| t.clone())
                    .collect(),
                keep: *keep,
            })
            .collect();
        if let Some(keep) = fallback {
            jobs.push(PruneJob {
                include: None,
                exclude: typed.iter().map(|(t, _)| t.clone()).collect(),
                keep,
            });
        }
        jobs
    }
}

/// Whether `a` keeps history longer than `b` (months counted as 31 days: a rule of a
/// month always outlasts one of 30 days).
fn keeps_longer(a: &Period, b: &Period) -> bool {
    const MONTH_US: i64 = 31 * 86_400 * 1_000_000;
    let len = |p: &Period| p.months as i64 * MONTH_US + p.micros;
    len(a) > len(b)
}

fn parse_rule(item: &str) -> Result<Rule> {
    let bad = |why: &str| NgsiError::bad_data(format!("retention rule '{item}': {why}"));
    let (scope, duration) = item
        .split_once('=')
        .ok_or_else(|| bad("expected SCOPE=DURATION, e.g. *=P5Y or metropole@WaterObserved=P1Y"))?;
    let keep = Period::parse(duration).map_err(|e| bad(&e.detail))?;
    let (tenant, entity_type) = match scope.split_once('@') {
        Some((t, ty)) if !ty.is_empty() => (t, Some(ty.to_string())),
        Some(_) => return Err(bad("the entity type after '@' is empty")),
        None => (scope, None),
    };
    let tenant = match tenant {
        "*" => TenantScope::Every,
        DEFAULT_TENANT => TenantScope::One(String::new()),
        "" => return Err(bad("the tenant is empty: use * or <default>")),
        name => TenantScope::One(
            Tenant::parse(Some(name))
                .map_err(|e| bad(&e.detail))?
                .as_str()
                .to_string(),
        ),
    };
    Ok(Rule {
        tenant,
        entity_type,
        keep,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> Tenant {
        Tenant::from_stored(name)
    }

    #[test]
    fn no_rule_keeps_everything() {
        let p = RetentionPolicy::parse("").unwrap_or_default();
        assert!(p.is_empty());
        assert!(p.jobs_for(&tenant("x")).is_empty());
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let p = RetentionPolicy::parse(
            "*=P5Y, metropole=P10Y *@WaterObserved=P30Y,metropole@WaterObserved=P1Y <default>=P1D",
        )
        .expect("valid");
        let jobs = p.jobs_for(&tenant("metropole"));
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].include, Some(vec!["WaterObserved".to_string()]));
        assert_eq!(jobs[0].keep.months, 12);
        assert_eq!(jobs[1].include, None);
        assert_eq!(jobs[1].exclude, vec!["WaterObserved".to_string()]);
        assert_eq!(jobs[1].keep.months, 120);

        let other = p.jobs_for(&tenant("syndicat"));
        assert_eq!(other[0].keep.months, 360);
        assert_eq!(other[1].keep.months, 60);

        let default = p.jobs_for(&Tenant::default_tenant());
        assert_eq!(default[1].keep.micros, 86_400_000_000);
    }

    #[test]
    fn several_types_keep_the_longest() {
        let p = RetentionPolicy::parse("*@A=P1D,*@B=P1Y").expect("valid");
        let jobs = p.jobs_for(&tenant("t"));
        let a = jobs.iter().find(|j| j.include == Some(vec!["A".into()]));
        assert_eq!(a.map(|j| j.exclude.clone()), Some(vec!["B".to_string()]));
        let b = jobs.iter().find(|j| j.include == Some(vec!["B".into()]));
        assert_eq!(b.map(|j| j.exclude.is_empty()), Some(true));
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            "*",
            "*=5Y",
            "=P1Y",
            "*@=P1Y",
            "bad tenant!=P1Y",
            "*=P1Y,*=P2Y",
        ] {
            assert!(RetentionPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn months_are_counted_back_on_the_calendar() {
        let p = Period::parse("P1M").expect("valid");
        // 2026-03-31T00:00Z minus one month is 2026-02-28T00:00Z.
        let end = 1_774_915_200_000_000;
        assert_eq!(p.subtract_from(end), 1_772_236_800_000_000);
    }
}
