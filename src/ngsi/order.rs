//! `orderBy` (clause 4.23): entities ordered by id, type, system times, attribute values,
//! sub-attributes or compound members, each ascending or descending. Entities lacking
//! the value sort after those that have it, whichever the direction.

use std::cmp::Ordering;

use serde_json::Value;

use crate::error::{NgsiError, Result};
use crate::jsonld::ActiveContext;
use crate::ngsi::q::{Expr, Path};
use crate::ngsi::Entity;

#[derive(Debug, Clone)]
enum Target {
    Id,
    Type,
    CreatedAt,
    ModifiedAt,
    Attribute(Path),
}

#[derive(Debug, Clone)]
struct Key {
    target: Target,
    descending: bool,
}

#[derive(Debug, Clone)]
pub struct OrderBy {
    keys: Vec<Key>,
}

impl OrderBy {
    pub fn parse(raw: &str, ctx: &ActiveContext) -> Result<Self> {
        let mut keys = Vec::new();
        for item in raw.split(',') {
            let (path, direction) = match item.split_once(';') {
                Some((p, d)) => (p.trim(), d.trim()),
                None => (item.trim(), "asc"),
            };
            let descending = match direction {
                "asc" => false,
                "desc" => true,
                other => {
                    return Err(NgsiError::bad_data(format!(
                        "orderBy '{item}': the direction is asc or desc, not '{other}'"
                    )))
                }
            };
            let target = match path {
                "id" => Target::Id,
                "type" => Target::Type,
                "createdAt" => Target::CreatedAt,
                "modifiedAt" => Target::ModifiedAt,
                "" => return Err(NgsiError::bad_data("orderBy has an empty member")),
                _ => {
                    let mut expr = crate::ngsi::q::parse(path).map_err(|e| {
                        NgsiError::bad_data(format!("orderBy '{path}': {}", e.detail))
                    })?;
                    crate::ngsi::q::expand(&mut expr, ctx);
                    match expr {
                        Expr::Term(t) if t.condition.is_none() => Target::Attribute(t.path),
                        _ => {
                            return Err(NgsiError::bad_data(format!(
                                "orderBy '{path}' is not an attribute path"
                            )))
                        }
                    }
                }
            };
            keys.push(Key { target, descending });
        }
        Ok(Self { keys })
    }

    /// Sorts in place; equal entities keep their order (by id, for a stable answer).
    pub fn sort(&self, entities: &mut [Entity]) {
        entities.sort_by(|a, b| {
            for key in &self.keys {
                let (x, y) = (key.value(a), key.value(b));
                let o = match (&x, &y) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Greater,
                    (Some(_), None) => Ordering::Less,
                    (Some(x), Some(y)) if key.descending => compare(y, x),
                    (Some(x), Some(y)) => compare(x, y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            a.id.cmp(&b.id)
        });
    }
}

impl Key {
    fn value(&self, e: &Entity) -> Option<Value> {
        match &self.target {
            Target::Id => Some(Value::String(e.id.clone())),
            Target::Type => e.types.first().cloned().map(Value::String),
            Target::CreatedAt => Some(Value::String(e.created_at.clone())),
            Target::ModifiedAt => Some(Value::String(e.modified_at.clone())),
            Target::Attribute(path) => {
                // The default instance (no datasetId) if there is one, else the first.
                let instances = e.attrs.get(&path.attr)?;
                let inst = instances
                    .iter()
                    .find(|i| !i.contains_key("datasetId"))
                    .or_else(|| instances.first())?;
                // A Relationship resolves to its target object.
                crate::ngsi::q::resolve(inst, path)
            }
        }
    }
}

/// Numbers before strings before booleans before anything else; arrays by their first
/// item.
fn compare(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            _ => 3,
        }
    }
    match (a, b) {
        (Value::Array(x), _) if !x.is_empty() => compare(&x[0], b),
        (_, Value::Array(y)) if !y.is_empty() => compare(a, &y[0]),
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => rank(a)
            .cmp(&rank(b))
            .then_with(|| a.to_string().cmp(&b.to_string())),
    }
}
