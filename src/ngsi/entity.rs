//! The entity as the broker keeps it: expanded type and attribute names, normalized
//! attributes, system timestamps.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::attribute::{self, Attribute, Mode};
use super::ids::{validate_type_name, validate_uri};
use super::time;
use crate::error::{NgsiError, Result};
use crate::jsonld::ActiveContext;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub id: String,
    /// Expanded type IRIs, at least one.
    #[serde(rename = "type")]
    pub types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Vec<String>>,
    #[serde(rename = "createdAt")]
    pub created_at: String,
    #[serde(rename = "modifiedAt")]
    pub modified_at: String,
    #[serde(rename = "expiresAt", default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Expanded attribute name → its instances (one per datasetId).
    #[serde(default)]
    pub attrs: IndexMap<String, Vec<Attribute>>,
}

/// The parts of an entity body, before it meets stored state.
#[derive(Debug, Clone)]
pub struct EntityFragment {
    pub id: Option<String>,
    pub types: Vec<String>,
    pub scope: Option<Vec<String>>,
    pub expires_at: Option<String>,
    pub attrs: IndexMap<String, Vec<Attribute>>,
    /// The body set `scope` to null (merge-patch: remove it).
    pub scope_deleted: bool,
    /// The body set `expiresAt` to null: the entity no longer expires.
    pub expires_deleted: bool,
}

/// What a body must contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// A whole entity: `id` and `type` required.
    Entity,
    /// A whole entity whose `id` comes from the URL (`id` optional, `type` required).
    Replacement,
    /// Attributes only (append/update); `id`/`type` optional, `null` allowed when merging.
    Fragment { allow_null: bool },
}

pub fn parse_body(
    body: &Map<String, Value>,
    ctx: &ActiveContext,
    now: &str,
    kind: BodyKind,
) -> Result<EntityFragment> {
    let id = match body.get("id").or_else(|| body.get("@id")) {
        Some(Value::String(s)) => {
            validate_uri(s, "entity id")?;
            if s == super::attribute::NULL_URI {
                return Err(NgsiError::bad_data(
                    "'urn:ngsi-ld:null' marks deleted values and cannot be an entity id",
                ));
            }
            Some(s.clone())
        }
        Some(_) => return Err(NgsiError::bad_data("entity id must be a string URI")),
        None if kind == BodyKind::Entity => {
            return Err(NgsiError::bad_data("the entity has no id"))
        }
        None => None,
    };
    let types = match body.get("type").or_else(|| body.get("@type")) {
        Some(t) => parse_types(t, ctx)?,
        None if matches!(kind, BodyKind::Fragment { .. }) => Vec::new(),
        None => return Err(NgsiError::bad_data("the entity has no type")),
    };
    let allow_null = matches!(kind, BodyKind::Fragment { allow_null: true });
    let scope_deleted = allow_null && body.get("scope").is_some_and(is_null);
    let scope = match body.get("scope") {
        Some(v) if !scope_deleted => Some(parse_scope(v)?),
        _ => None,
    };
    let expires_deleted = allow_null && body.get("expiresAt").is_some_and(is_null);
    let expires_at = match body.get("expiresAt") {
        _ if expires_deleted => None,
        // Kept as written (clients compare what they read back with what they sent);
        // comparisons use `expiry_instant`.
        Some(Value::String(s)) => Some(
            time::parse(s)
                .map(|_| s.clone())
                .map_err(|_| NgsiError::bad_data(format!("expiresAt '{s}' is not a date-time")))?,
        ),
        Some(_) => return Err(NgsiError::bad_data("expiresAt must be a date-time string")),
        None => None,
    };
    let mode = if allow_null {
        Mode::Merge
    } else {
        Mode::Create
    };
    let mut attrs = IndexMap::new();
    for (name, raw) in body {
        if attribute::ENTITY_MEMBERS.contains(&name.as_str()) {
            continue;
        }
        let instances = attribute::parse(name, raw, ctx, now, mode)?;
        attrs.insert(ctx.expand(name), instances);
    }
    Ok(EntityFragment {
        id,
        types,
        scope,
        scope_deleted,
        expires_deleted,
        expires_at,
        attrs,
    })
}

fn is_null(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s == attribute::NULL_URI,
        _ => false,
    }
}

pub fn parse_types(t: &Value, ctx: &ActiveContext) -> Result<Vec<String>> {
    let names: Vec<&str> = match t {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str()
                    .ok_or_else(|| NgsiError::bad_data("entity types must be strings"))
            })
            .collect::<Result<_>>()?,
        _ => {
            return Err(NgsiError::bad_data(
                "entity type must be a string or a non-empty array of strings",
            ))
        }
    };
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        validate_type_name(n)?;
        if ctx.is_keyword_alias(n) {
            return Err(NgsiError::bad_data(format!(
                "'{n}' is a JSON-LD keyword, not an entity type"
            )));
        }
        let iri = ctx.expand(n);
        if !out.contains(&iri) {
            out.push(iri);
        }
    }
    Ok(out)
}

fn parse_scope(v: &Value) -> Result<Vec<String>> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .map(|s| match s.as_str() {
            Some(s) if is_scope(s) => Ok(s.to_string()),
            _ => Err(NgsiError::bad_data(
                "scope values must be strings of '/'-separated levels such as '/Marseille/Centre' \
                 (no empty level, no whitespace)",
            )),
        })
        .collect()
}

/// A scope as NGSI-LD writes one (4.18): "/" then levels separated by "/", none
/// empty. Characters within a level are not restricted further: levels such as
/// "Vieux-Port" are the territory's own names.
fn is_scope(s: &str) -> bool {
    s.strip_prefix('/').is_some_and(|levels| {
        !s.contains(char::is_whitespace) && levels.split('/').all(|level| !level.is_empty())
    })
}

impl Entity {
    /// A new entity from a complete body.
    pub fn create(fragment: EntityFragment, now: &str) -> Result<Self> {
        let id = fragment
            .id
            .ok_or_else(|| NgsiError::bad_data("the entity has no id"))?;
        if fragment.types.is_empty() {
            return Err(NgsiError::bad_data("the entity has no type"));
        }
        Ok(Self {
            id,
            types: fragment.types,
            scope: fragment.scope,
            created_at: now.to_string(),
            modified_at: now.to_string(),
            expires_at: fragment.expires_at,
            attrs: fragment.attrs,
        })
    }

    pub fn is_expired(&self, now: &str) -> bool {
        self.expiry_instant().is_some_and(|t| t.as_str() <= now)
    }

    /// `expiresAt` in the form of `time::now()` (UTC, microseconds), so that expiry is a
    /// comparison of texts, in memory and in the stores' `expires_at` columns.
    pub fn expiry_instant(&self) -> Option<String> {
        self.expires_at
            .as_deref()
            .and_then(|t| time::parse_datetime(t).ok())
    }

    /// Drops attribute instances whose own `expiresAt` has passed (transient attributes).
    pub fn drop_expired_attributes(&mut self, now: &str) {
        let now = time::parse(now).ok();
        let expired = |a: &Attribute| match (a.get("expiresAt").and_then(Value::as_str), now) {
            (Some(t), Some(now)) => time::parse(t).is_ok_and(|t| t <= now),
            _ => false,
        };
        for instances in self.attrs.values_mut() {
            instances.retain(|a| !expired(a));
        }
        self.attrs.retain(|_, v| !v.is_empty());
    }

    pub fn has_type(&self, iri: &str) -> bool {
        self.types.iter().any(|t| t == iri)
    }

    /// The default instance of an attribute (no datasetId), or its first one.
    pub fn instance(&self, iri: &str) -> Option<&Attribute> {
        let instances = self.attrs.get(iri)?;
        instances
            .iter()
            .find(|a| dataset_id(a).is_none())
            .or_else(|| instances.first())
    }

    /// The value of an attribute's default instance: `value`, `object` or the member its
    /// kind uses.
    pub fn value_of(&self, iri: &str) -> Option<&Value> {
        let a = self.instance(iri)?;
        let kind = a.get("type").and_then(Value::as_str).unwrap_or("Property");
        a.get(attribute::value_member(kind))
    }
}

/// Reads the `datasetId` of an instance.
pub fn dataset_id(attr: &Attribute) -> Option<&str> {
    attr.get("datasetId").and_then(Value::as_str)
}
