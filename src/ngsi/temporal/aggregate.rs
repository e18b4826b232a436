//! From the per-bucket sums a store computes to the aggregated values of each asked
//! method (clause 4.5.19): the same arithmetic whatever the backend.

use std::collections::HashSet;

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

/// What makes two values the same for `distinctCount`: the number, or the stored JSON
/// of a value that is not a number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DistinctKey {
    Number(u64),
    Json(String),
}

impl DistinctKey {
    pub fn of(num: Option<f64>, json: Option<&str>) -> Option<Self> {
        match (num, json) {
            // -0.0 and 0.0 are one value.
            (Some(n), _) => Some(Self::Number((n + 0.0).to_bits())),
            (None, Some(j)) => Some(Self::Json(j.to_string())),
            (None, None) => None,
        }
    }
}

/// Folds instances read in time order into the per-bucket rows `series` expects, so a
/// store can stream one ordered index range instead of sorting groups (SQLite's GROUP
/// BY on a computed bucket builds a temporary B-tree of every instance).
pub struct BucketFolder<'q> {
    q: &'q TemporalQuery,
    origin: i64,
    rows: Vec<AggregateRow>,
    current: Option<Open>,
    /// Calendar periods: the bucket reached so far and the start of the one after it.
    calendar: Option<(i64, i64)>,
}

/// The bucket being filled.
struct Open {
    bucket: i64,
    total: i64,
    distinct: HashSet<DistinctKey>,
    sum: Neumaier,
    sumsq: Neumaier,
    min: Option<f64>,
    max: Option<f64>,
    nums: i64,
    last: i64,
}

/// Compensated summation, as SQLite's SUM does, so long series keep their digits.
#[derive(Default, Clone, Copy)]
struct Neumaier {
    sum: f64,
    carry: f64,
}

impl Neumaier {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.carry += (self.sum - t) + x;
        } else {
            self.carry += (x - t) + self.sum;
        }
        self.sum = t;
    }

    fn value(self) -> f64 {
        self.sum + self.carry
    }
}

impl<'q> BucketFolder<'q> {
    /// `origin` is the start of the first bucket: timeAt when given, else the first
    /// instant read.
    pub fn new(q: &'q TemporalQuery, origin: i64) -> Self {
        Self {
            q,
            origin,
            rows: Vec::new(),
            current: None,
            calendar: None,
        }
    }

    pub fn origin(&self) -> i64 {
        self.origin
    }

    /// Adds one instance; `at` must not go back in time from the previous call.
    pub fn push(&mut self, at: i64, num: Option<f64>, distinct: Option<DistinctKey>) {
        let bucket = self.bucket_of(at);
        if self.current.as_ref().is_some_and(|o| o.bucket != bucket) {
            self.close();
        }
        let open = self.current.get_or_insert_with(|| Open {
            bucket,
            total: 0,
            distinct: HashSet::new(),
            sum: Neumaier::default(),
            sumsq: Neumaier::default(),
            min: None,
            max: None,
            nums: 0,
            last: at,
        });
        open.total += 1;
        open.last = open.last.max(at);
        if let Some(k) = distinct {
            open.distinct.insert(k);
        }
        if let Some(n) = num {
            open.sum.add(n);
            open.sumsq.add(n * n);
            open.min = Some(open.min.map_or(n, |m| m.min(n)));
            open.max = Some(open.max.map_or(n, |m| m.max(n)));
            open.nums += 1;
        }
    }

    fn bucket_of(&mut self, at: i64) -> i64 {
        match self.q.period {
            Some(p) if p.months == 0 => (at - self.origin).div_euclid(p.micros.max(1)),
            Some(p) => {
                // Calendar periods: walk forward from the bucket reached so far.
                let (mut bucket, mut next) =
                    self.calendar.unwrap_or_else(|| (0, p.add_to(self.origin)));
                while at >= next {
                    let after = p.add_to(next);
                    bucket += 1;
                    if after <= next {
                        break;
                    }
                    next = after;
                }
                self.calendar = Some((bucket, next));
                bucket
            }
            None => 0,
        }
    }

    fn close(&mut self) {
        if let Some(o) = self.current.take() {
            let avg = (o.nums > 0).then(|| o.sum.value() / o.nums as f64);
            let some = |v: Neumaier| (o.nums > 0).then(|| v.value());
            self.rows.push((
                o.bucket,
                o.total,
                o.distinct.len() as i64,
                some(o.sum),
                avg,
                o.min,
                o.max,
                some(o.sumsq),
                o.nums,
                Some(o.last),
            ));
        }
    }

    /// The rows of every bucket that received an instance, in order.
    pub fn finish(mut self) -> Vec<AggregateRow> {
        self.close();
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ngsi::temporal::duration::Period;

    const DAY: i64 = 86_400_000_000;

    fn query(period: &str, methods: &[AggrMethod]) -> TemporalQuery {
        TemporalQuery {
            period: Period::parse(period).ok(),
            methods: methods.to_vec(),
            ..TemporalQuery::default()
        }
    }

    #[test]
    fn fixed_periods_bucket_by_arithmetic_and_skip_empty_ones() {
        let q = query("P1D", &[AggrMethod::Avg]);
        let mut f = BucketFolder::new(&q, 0);
        for (at, v) in [(0, 1.0), (DAY - 1, 3.0), (3 * DAY, 10.0)] {
            f.push(at, Some(v), None);
        }
        let rows = f.finish();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].0, rows[0].1, rows[0].4), (0, 2, Some(2.0)));
        assert_eq!((rows[1].0, rows[1].1, rows[1].4), (3, 1, Some(10.0)));
        assert_eq!(rows[0].9, Some(DAY - 1));
    }

    #[test]
    fn calendar_periods_walk_month_by_month() {
        let q = query("P1M", &[AggrMethod::TotalCount]);
        // 2025-01-15, 2025-02-14 (still the first month), 2025-02-15, 2025-04-20.
        let jan15 = 1_736_899_200_000_000;
        let times = [jan15, jan15 + 30 * DAY, jan15 + 31 * DAY, jan15 + 95 * DAY];
        let mut f = BucketFolder::new(&q, jan15);
        for t in times {
            f.push(t, None, None);
        }
        let buckets: Vec<(i64, i64)> = f.finish().iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(buckets, vec![(0, 2), (1, 1), (3, 1)]);
    }

    #[test]
    fn distinct_counts_numbers_and_json_apart_and_sums_are_compensated() {
        let q = query("P1Y", &[AggrMethod::DistinctCount, AggrMethod::Sum]);
        let mut f = BucketFolder::new(&q, 0);
        f.push(1, Some(0.0), DistinctKey::of(Some(0.0), None));
        f.push(2, Some(-0.0), DistinctKey::of(Some(-0.0), None));
        f.push(3, None, DistinctKey::of(None, Some("\"a\"")));
        f.push(4, None, DistinctKey::of(None, Some("\"a\"")));
        for i in 0..10 {
            f.push(5 + i, Some(0.1), DistinctKey::of(Some(0.1), None));
        }
        let rows = f.finish();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].1, 14);
        assert_eq!(rows[0].2, 3);
        assert_eq!(rows[0].3, Some(1.0));
        assert_eq!(rows[0].8, 12);
    }
}
