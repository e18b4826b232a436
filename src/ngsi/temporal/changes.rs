//! What an entity write adds to the history, decided once for every backend: each
//! instance that is new or was rewritten (its modifiedAt moved), and a deletion marker
//! for each instance that went away.

use serde_json::{json, Map, Value};

use super::TemporalEntity;
use crate::ngsi::attribute::{self, Attribute};
use crate::ngsi::Entity;

/// A new instance to store.
#[derive(Debug, Clone)]
pub struct NewInstance {
    pub attr: String,
    pub dataset_id: Option<String>,
    pub body: Attribute,
    pub deleted: bool,
}

/// An instance as a store keeps it: its body without the members that have columns of
/// their own, and its times in microseconds.
pub struct StoredInstance {
    pub body: Attribute,
    pub created_us: i64,
    pub modified_us: i64,
    pub observed_us: Option<i64>,
}

impl NewInstance {
    /// The same split for every backend; missing system times are `now_us`.
    pub fn stored(&self, now_us: i64) -> StoredInstance {
        let mut body = self.body.clone();
        let created_us = micros_of(&body, "createdAt").unwrap_or(now_us);
        let modified_us = micros_of(&body, "modifiedAt").unwrap_or(now_us);
        for m in [
            "createdAt",
            "modifiedAt",
            "datasetId",
            "instanceId",
            "deletedAt",
        ] {
            body.remove(m);
        }
        let observed_us = micros_of(&body, "observedAt");
        StoredInstance {
            body,
            created_us,
            modified_us,
            observed_us,
        }
    }
}

/// A date-time member of an instance body, in microseconds.
pub fn micros_of(body: &Attribute, member: &str) -> Option<i64> {
    body.get(member)
        .and_then(Value::as_str)
        .and_then(|s| crate::ngsi::time::parse(s).ok())
        .map(crate::ngsi::time::micros)
}

/// The temporal description of an entity as a write leaves it.
pub fn temporal_entity_of(e: &Entity) -> TemporalEntity {
    TemporalEntity {
        id: e.id.clone(),
        types: e.types.clone(),
        scope: e.scope.clone(),
        created_at: e.created_at.clone(),
        modified_at: e.modified_at.clone(),
        deleted_at: None,
    }
}

fn dataset_of(inst: &Attribute) -> Option<&str> {
    inst.get("datasetId").and_then(Value::as_str)
}

/// The instances a write from `before` to `after` records, new ones first.
pub fn changed_instances(before: Option<&Entity>, after: Option<&Entity>) -> Vec<NewInstance> {
    let mut out = Vec::new();
    if let Some(a) = after {
        for (name, instances) in &a.attrs {
            for inst in instances {
                let ds = dataset_of(inst);
                let previous = before
                    .and_then(|b| b.attrs.get(name))
                    .and_then(|v| v.iter().find(|p| dataset_of(p) == ds));
                if previous.is_some_and(|p| p.get("modifiedAt") == inst.get("modifiedAt")) {
                    continue;
                }
                out.push(NewInstance {
                    attr: name.clone(),
                    dataset_id: ds.map(str::to_string),
                    body: inst.clone(),
                    deleted: false,
                });
            }
        }
    }
    if let Some(b) = before {
        for (name, instances) in &b.attrs {
            for inst in instances {
                let ds = dataset_of(inst);
                let still = after
                    .and_then(|a| a.attrs.get(name))
                    .is_some_and(|v| v.iter().any(|p| dataset_of(p) == ds));
                if still {
                    continue;
                }
                let kind = inst
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or(attribute::PROPERTY);
                let mut body = Map::new();
                body.insert("type".into(), json!(kind));
                body.insert(
                    attribute::value_member(kind).into(),
                    json!(attribute::NULL_URI),
                );
                out.push(NewInstance {
                    attr: name.clone(),
                    dataset_id: ds.map(str::to_string),
                    body,
                    deleted: true,
                });
            }
        }
    }
    out
}

/// A temporal entity written again (temporal create on an existing one): the types are
/// united and the creation time stays the first one.
pub fn merged_entity(existing: Option<&TemporalEntity>, entity: &TemporalEntity) -> TemporalEntity {
    let Some(old) = existing else {
        return entity.clone();
    };
    let mut types = old.types.clone();
    for t in &entity.types {
        if !types.contains(t) {
            types.push(t.clone());
        }
    }
    TemporalEntity {
        types,
        created_at: old.created_at.clone(),
        ..entity.clone()
    }
}

/// A stored instance with a patch applied (PATCH of one instance): every member but the
/// instance's identity and system times may change.
pub fn patched_body(current: &Map<String, Value>, patch: &Attribute) -> Map<String, Value> {
    let mut body = current.clone();
    for (k, v) in patch {
        if !matches!(
            k.as_str(),
            "createdAt" | "modifiedAt" | "datasetId" | "instanceId"
        ) {
            body.insert(k.clone(), v.clone());
        }
    }
    body
}
