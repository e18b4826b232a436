//! The temporal evolution of entities (clause 4.5.9 ff.): what a temporal request asks
//! for, and how attribute history is represented.

pub mod duration;
pub mod render;
pub mod request;

pub use duration::Period;
pub use request::{AggrMethod, TemporalQuery, TimeProperty, TimeRel};

use serde_json::{Map, Value};

/// One stored instance of an attribute, as the history keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub instance_id: i64,
    pub attr: String,
    pub dataset_id: Option<String>,
    /// The instance in stored form (type, value member, metadata, sub-attributes),
    /// without createdAt/modifiedAt/deletedAt.
    pub body: Map<String, Value>,
    pub observed_at: Option<i64>,
    pub created_at: i64,
    pub modified_at: i64,
    pub deleted_at: Option<i64>,
}

/// The stored description of an entity's temporal representation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TemporalEntity {
    pub id: String,
    pub types: Vec<String>,
    pub scope: Option<Vec<String>>,
    pub created_at: String,
    pub modified_at: String,
    pub deleted_at: Option<String>,
}

/// The history of one entity returned by a temporal query.
#[derive(Debug, Clone, PartialEq)]
pub struct TemporalResult {
    pub entity: TemporalEntity,
    pub instances: Vec<Instance>,
    /// Aggregates per (attribute, datasetId): per method, [value, start, end] rows.
    pub aggregates: Vec<AttributeAggregates>,
}

/// One aggregated value: (value, bucket start µs, bucket end µs).
pub type Bucket = (Value, i64, i64);

#[derive(Debug, Clone, PartialEq)]
pub struct AttributeAggregates {
    pub attr: String,
    pub dataset_id: Option<String>,
    pub kind: String,
    pub series: Vec<(AggrMethod, Vec<Bucket>)>,
}

impl Instance {
    /// The instant the request orders and filters by.
    pub fn time(&self, p: TimeProperty) -> Option<i64> {
        match p {
            TimeProperty::ObservedAt => self.observed_at.or(Some(self.modified_at)),
            TimeProperty::CreatedAt => Some(self.created_at),
            TimeProperty::ModifiedAt => Some(self.modified_at),
            TimeProperty::DeletedAt => self.deleted_at,
        }
    }
}

/// Cuts a history to at most `max` instances per attribute instance series (clause
/// 6.3.10): the answer then covers one time window, the same for every attribute, so a
/// client can ask for the next window from where this one ends. Returns the window
/// (first, last instant, in the order of the answer) when something was cut.
pub fn paginate(
    result: &mut TemporalResult,
    max: usize,
    newest_first: bool,
    p: TimeProperty,
) -> Option<(i64, i64)> {
    use std::collections::HashMap;
    let mut per_series: HashMap<(String, Option<String>), Vec<i64>> = HashMap::new();
    for i in &result.instances {
        per_series
            .entry((i.attr.clone(), i.dataset_id.clone()))
            .or_default()
            .push(i.time(p).unwrap_or(0));
    }
    // The window ends where the most cut series stops (instances are oldest first).
    let mut limit: Option<i64> = None;
    for times in per_series.values().filter(|t| t.len() > max) {
        let edge = if newest_first {
            times[times.len() - max]
        } else {
            times[max - 1]
        };
        limit = Some(match limit {
            None => edge,
            Some(l) if newest_first => l.max(edge),
            Some(l) => l.min(edge),
        });
    }
    let edge = limit?;
    result.instances.retain(|i| {
        let t = i.time(p).unwrap_or(0);
        if newest_first {
            t >= edge
        } else {
            t <= edge
        }
    });
    // Equal instants at the edge may still leave more than `max`: keep the first ones.
    let mut kept: HashMap<(String, Option<String>), usize> = HashMap::new();
    let mut ordered: Vec<&Instance> = result.instances.iter().collect();
    if newest_first {
        ordered.reverse();
    }
    let mut keep_ids = std::collections::HashSet::new();
    for i in ordered {
        let n = kept
            .entry((i.attr.clone(), i.dataset_id.clone()))
            .or_default();
        if *n < max {
            *n += 1;
            keep_ids.insert(i.instance_id);
        }
    }
    result
        .instances
        .retain(|i| keep_ids.contains(&i.instance_id));
    let times = result.instances.iter().filter_map(|i| i.time(p));
    let (lo, hi) = times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    Some(if newest_first { (hi, lo) } else { (lo, hi) })
}
