//! An entity as the dump writes it: NGSI-LD normalized, names expanded, system
//! attributes included; and back, with the checks a file from elsewhere needs.

use indexmap::IndexMap;
use serde_json::{json, Map, Value};

use crate::error::{NgsiError, Result};
use crate::ngsi::ids::validate_uri;
use crate::ngsi::Entity;

/// Entity members that are not attributes.
const MEMBERS: &[&str] = &[
    "id",
    "type",
    "scope",
    "createdAt",
    "modifiedAt",
    "expiresAt",
];

pub fn to_value(e: &Entity) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(e.id));
    out.insert("type".into(), json!(e.types));
    if let Some(scope) = &e.scope {
        out.insert("scope".into(), json!(scope));
    }
    out.insert("createdAt".into(), json!(e.created_at));
    out.insert("modifiedAt".into(), json!(e.modified_at));
    if let Some(x) = &e.expires_at {
        out.insert("expiresAt".into(), json!(x));
    }
    for (name, instances) in &e.attrs {
        let v = match instances.as_slice() {
            [one] => Value::Object(one.clone()),
            many => Value::Array(many.iter().cloned().map(Value::Object).collect()),
        };
        out.insert(name.clone(), v);
    }
    Value::Object(out)
}

fn string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(NgsiError::bad_data(format!(
            "entity {key} must be a string"
        ))),
    }
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>> {
    let items = match v {
        Value::String(s) => return Ok(vec![s.clone()]),
        Value::Array(items) => items,
        _ => {
            return Err(NgsiError::bad_data(format!(
                "entity {what} must be strings"
            )))
        }
    };
    items
        .iter()
        .map(|i| {
            i.as_str()
                .map(str::to_string)
                .ok_or_else(|| NgsiError::bad_data(format!("entity {what} must be strings")))
        })
        .collect()
}

pub fn from_value(v: Value) -> Result<Entity> {
    let Value::Object(mut obj) = v else {
        return Err(NgsiError::bad_data("an entity must be a JSON object"));
    };
    let id = string(&obj, "id")?.ok_or_else(|| NgsiError::bad_data("the entity has no id"))?;
    validate_uri(&id, "entity id")?;
    let types = strings(
        obj.get("type")
            .ok_or_else(|| NgsiError::bad_data(format!("entity {id} has no type")))?,
        "type",
    )?;
    if types.is_empty() {
        return Err(NgsiError::bad_data(format!("entity {id} has no type")));
    }
    let scope = obj.get("scope").map(|s| strings(s, "scope")).transpose()?;
    let created_at = string(&obj, "createdAt")?
        .ok_or_else(|| NgsiError::bad_data(format!("entity {id} has no createdAt")))?;
    let modified_at = string(&obj, "modifiedAt")?
        .ok_or_else(|| NgsiError::bad_data(format!("entity {id} has no modifiedAt")))?;
    let expires_at = string(&obj, "expiresAt")?;
    for m in MEMBERS {
        obj.shift_remove(*m);
    }
    let mut attrs = IndexMap::new();
    for (name, value) in obj {
        let instances = match value {
            Value::Object(one) => vec![one],
            Value::Array(many) => many
                .into_iter()
                .map(|i| match i {
                    Value::Object(o) => Ok(o),
                    _ => Err(NgsiError::bad_data(format!(
                        "attribute {name} of {id} must hold objects"
                    ))),
                })
                .collect::<Result<Vec<_>>>()?,
            _ => {
                return Err(NgsiError::bad_data(format!(
                    "attribute {name} of {id} must be an object or an array of objects"
                )))
            }
        };
        if instances.is_empty() || instances.iter().any(|i| !i.contains_key("type")) {
            return Err(NgsiError::bad_data(format!(
                "attribute {name} of {id} needs instances with a type"
            )));
        }
        attrs.insert(name, instances);
    }
    Ok(Entity {
        id,
        types,
        scope,
        created_at,
        modified_at,
        expires_at,
        attrs,
    })
}
