//! From the per-bucket sums a store computes to the aggregated values of each asked
//! method (clause 4.5.19): the same arithmetic whatever the backend.

use serde_json::{json, Value};

use super::request::{AggrMethod, TemporalQuery};
use super::Bucket;

/// One bucket as a store computes it in SQL: (bucket number since the origin, count of
/// instances, count of distinct values (0 when not asked), sum, average, minimum,
/// maximum, sum of squares, count of numeric values, last instant).
pub type AggregateRow = (
    i64,
    i64,
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    i64,
    Option<i64>,
);

/// The series of each asked method; the standard deviation is the population's.
pub fn series(
    rows: Vec<AggregateRow>,
    q: &TemporalQuery,
    origin: i64,
) -> Vec<(AggrMethod, Vec<Bucket>)> {
    let mut series: Vec<(AggrMethod, Vec<Bucket>)> =
        q.methods.iter().map(|m| (*m, Vec::new())).collect();
    for (bucket, total, distinct, sum, avg, min, max, sumsq, nums, last) in rows {
        let (start, end) = match q.period {
            // Fixed periods: straight arithmetic (a year of days is 365 buckets).
            Some(p) if p.months == 0 => {
                let start = origin + bucket * p.micros.max(1);
                (start, p.add_to(start))
            }
            Some(p) => {
                let mut start = origin;
                for _ in 0..bucket {
                    start = p.add_to(start);
                }
                (start, p.add_to(start))
            }
            None => (origin, last.unwrap_or(origin)),
        };
        let stddev = match (sum, sumsq) {
            (Some(s), Some(sq)) if nums > 0 => {
                let n = nums as f64;
                Some(((sq / n) - (s / n).powi(2)).max(0.0).sqrt())
            }
            _ => None,
        };
        for (method, values) in series.iter_mut() {
            let v = match method {
                AggrMethod::TotalCount => Some(json!(total)),
                AggrMethod::DistinctCount => Some(json!(distinct)),
                AggrMethod::Sum => sum.map(number),
                AggrMethod::Avg => avg.map(|a| json!(a)),
                AggrMethod::Min => min.map(number),
                AggrMethod::Max => max.map(number),
                AggrMethod::Stddev => stddev.map(|s| json!(s)),
                AggrMethod::Sumsq => sumsq.map(number),
            };
            if let Some(v) = v {
                values.push((v, start, end));
            }
        }
    }
    series
}

/// Integers read back as integers (a floating-point column would make 120 into 120.0).
pub fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9e15 {
        json!(n as i64)
    } else {
        json!(n)
    }
}
