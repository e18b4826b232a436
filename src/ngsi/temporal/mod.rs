//! The temporal evolution of entities (clause 4.5.9 ff.): what a temporal request asks
//! for, and how attribute history is represented.

pub mod aggregate;
pub mod changes;
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

impl TemporalResult {
    /// The history as one entity whose attributes hold every instance of the answer
    /// (deletion markers left out): q, scopeQ and geoQ of a temporal query are judged
    /// on it (clause 5.7.4.4: on the attribute instances in the window), an attribute
    /// matching when any of its instances does.
    pub fn as_entity(&self) -> crate::ngsi::Entity {
        let mut attrs: indexmap::IndexMap<String, Vec<crate::ngsi::attribute::Attribute>> =
            indexmap::IndexMap::new();
        for i in self.instances.iter().filter(|i| i.deleted_at.is_none()) {
            let deleted = i
                .body
                .values()
                .any(|v| v.as_str() == Some(crate::ngsi::attribute::NULL_URI));
            if !deleted {
                attrs
                    .entry(i.attr.clone())
                    .or_default()
                    .push(i.body.clone());
            }
        }
        crate::ngsi::Entity {
            id: self.entity.id.clone(),
            types: self.entity.types.clone(),
            scope: self.entity.scope.clone(),
            created_at: self.entity.created_at.clone(),
            modified_at: self.entity.modified_at.clone(),
            expires_at: None,
            attrs,
        }
    }
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

/// Cuts histories to at most `max` instances per attribute instance series (clause
/// 6.3.10): the answer then covers one time window, the same for every attribute of
/// every entity, so a client can ask for the next window from where this one ends.
/// Returns the window (first, last instant, in the order of the answer) when something
/// was cut.
pub fn paginate(
    results: &mut [TemporalResult],
    max: usize,
    newest_first: bool,
    p: TimeProperty,
) -> Option<(i64, i64)> {
    use std::collections::HashMap;
    type SeriesKey = (usize, String, Option<String>);
    let mut per_series: HashMap<SeriesKey, Vec<i64>> = HashMap::new();
    for (n, r) in results.iter().enumerate() {
        for i in &r.instances {
            per_series
                .entry((n, i.attr.clone(), i.dataset_id.clone()))
                .or_default()
                .push(i.time(p).unwrap_or(0));
        }
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
    let inside = |i: &Instance| {
        let t = i.time(p).unwrap_or(0);
        if newest_first {
            t >= edge
        } else {
            t <= edge
        }
    };
    let mut kept: HashMap<SeriesKey, usize> = HashMap::new();
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for (n, r) in results.iter_mut().enumerate() {
        r.instances.retain(|i| inside(i));
        // Equal instants at the edge may still leave more than `max`: keep the first.
        let mut ordered: Vec<usize> = (0..r.instances.len()).collect();
        if newest_first {
            ordered.reverse();
        }
        let mut keep = vec![false; r.instances.len()];
        for k in ordered {
            let i = &r.instances[k];
            let count = kept
                .entry((n, i.attr.clone(), i.dataset_id.clone()))
                .or_default();
            if *count < max {
                *count += 1;
                keep[k] = true;
            }
        }
        let mut k = 0;
        r.instances.retain(|_| {
            k += 1;
            keep[k - 1]
        });
        for t in r.instances.iter().filter_map(|i| i.time(p)) {
            lo = lo.min(t);
            hi = hi.max(t);
        }
    }
    Some(if newest_first { (hi, lo) } else { (lo, hi) })
}
