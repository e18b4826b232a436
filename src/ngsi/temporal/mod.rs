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
#[derive(Debug, Clone, PartialEq)]
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
