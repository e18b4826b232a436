//! Attributes: turning a client's attribute (normalized or concise) into the stored,
//! expanded, normalized form, with its validation.

use serde_json::{Map, Value};

use super::ids::{validate_name, validate_uri};
use super::time;
use crate::error::{NgsiError, Result};
use crate::jsonld::ActiveContext;

/// An attribute instance in stored form: `type`, its value member, metadata, and
/// sub-attributes under expanded names.
pub type Attribute = Map<String, Value>;

pub const PROPERTY: &str = "Property";
pub const RELATIONSHIP: &str = "Relationship";
pub const GEO_PROPERTY: &str = "GeoProperty";
pub const LANGUAGE_PROPERTY: &str = "LanguageProperty";
pub const JSON_PROPERTY: &str = "JsonProperty";
pub const VOCAB_PROPERTY: &str = "VocabProperty";
pub const LIST_PROPERTY: &str = "ListProperty";
pub const LIST_RELATIONSHIP: &str = "ListRelationship";

/// Attribute types and the member that holds each one's value.
pub const KINDS: &[(&str, &str)] = &[
    (PROPERTY, "value"),
    (RELATIONSHIP, "object"),
    (GEO_PROPERTY, "value"),
    (LANGUAGE_PROPERTY, "languageMap"),
    (JSON_PROPERTY, "json"),
    (VOCAB_PROPERTY, "vocab"),
    (LIST_PROPERTY, "valueList"),
    (LIST_RELATIONSHIP, "objectList"),
];

/// Members of an attribute that are not sub-attributes.
const RESERVED: &[&str] = &[
    "type",
    "value",
    "object",
    "languageMap",
    "json",
    "vocab",
    "valueList",
    "objectList",
    "objectType",
    "observedAt",
    "unitCode",
    "datasetId",
    "createdAt",
    "modifiedAt",
    "deletedAt",
    "instanceId",
    "lang",
    "previousValue",
    "previousObject",
    "previousLanguageMap",
    "previousJson",
    "previousVocab",
    "previousValueList",
    "previousObjectList",
];

/// Names clients may not use for attributes: they are entity members.
pub const ENTITY_MEMBERS: &[&str] = &[
    "id",
    "type",
    "@id",
    "@type",
    "@context",
    "scope",
    "createdAt",
    "modifiedAt",
    "deletedAt",
    "expiresAt",
];

const GEOMETRIES: &[&str] = &[
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
];

/// `null` as NGSI-LD writes it in merge-patch bodies: remove this.
pub const NULL_URI: &str = "urn:ngsi-ld:null";

pub fn value_member(kind: &str) -> &'static str {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("value", |(_, m)| m)
}

pub fn is_reserved(member: &str) -> bool {
    RESERVED.contains(&member)
}

/// How strictly a body is read: merge-patch bodies may carry `null` to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Write,
    /// Partial update of an existing attribute: the value member may be missing.
    Partial,
}

/// Parses one attribute of a request body into its instances (several when it is an
/// array of instances with distinct `datasetId`s).
pub fn parse(
    name: &str,
    raw: &Value,
    ctx: &ActiveContext,
    now: &str,
    mode: Mode,
) -> Result<Vec<Attribute>> {
    validate_name(name, "attribute name")?;
    if ENTITY_MEMBERS.contains(&name) {
        return Err(NgsiError::bad_data(format!(
            "'{name}' is not allowed as an attribute name"
        )));
    }
    let instances: Vec<Attribute> = match raw {
        Value::Array(items) if !items.is_empty() && items.iter().all(looks_like_instance) => items
            .iter()
            .map(|item| parse_instance(name, item, ctx, now, mode))
            .collect::<Result<_>>()?,
        other => vec![parse_instance(name, other, ctx, now, mode)?],
    };
    let mut seen = std::collections::HashSet::new();
    for inst in &instances {
        let ds = inst.get("datasetId").and_then(Value::as_str).unwrap_or("");
        if !seen.insert(ds.to_string()) {
            return Err(NgsiError::bad_data(format!(
                "attribute '{name}' has two instances with the same datasetId '{ds}'"
            )));
        }
    }
    Ok(instances)
}

fn looks_like_instance(v: &Value) -> bool {
    match v.as_object() {
        Some(o) => {
            o.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| KINDS.iter().any(|(k, _)| *k == t))
                || KINDS.iter().any(|(_, m)| o.contains_key(*m))
        }
        None => false,
    }
}

/// Infers the attribute type of a concise or normalized instance.
fn infer_kind(obj: &Map<String, Value>) -> Option<&'static str> {
    if let Some(t) = obj.get("type").and_then(Value::as_str) {
        if let Some((k, _)) = KINDS.iter().find(|(k, _)| *k == t) {
            return Some(k);
        }
        if t == "VocabularyProperty" {
            return Some(VOCAB_PROPERTY);
        }
    }
    KINDS
        .iter()
        .skip(1)
        .find(|(_, m)| obj.contains_key(*m))
        .map(|(k, _)| *k)
        .or_else(|| obj.contains_key("value").then_some(PROPERTY))
}

fn parse_instance(
    name: &str,
    raw: &Value,
    ctx: &ActiveContext,
    now: &str,
    mode: Mode,
) -> Result<Attribute> {
    let obj = match raw {
        Value::Object(o) => o,
        Value::Null => {
            return Err(NgsiError::bad_data(format!(
                "attribute '{name}' has a null value"
            )))
        }
        // Concise: a bare value is a Property's value.
        other => {
            let mut a = Map::new();
            a.insert("type".into(), PROPERTY.into());
            a.insert("value".into(), other.clone());
            return Ok(a);
        }
    };
    let declared = obj.get("type");
    let kind = match infer_kind(obj) {
        Some(k) => k,
        None => match declared.and_then(Value::as_str) {
            // Concise GeoProperty: the GeoJSON geometry itself.
            Some(g) if GEOMETRIES.contains(&g) => {
                validate_geometry(name, raw)?;
                let mut a = Map::new();
                a.insert("type".into(), GEO_PROPERTY.into());
                a.insert("value".into(), raw.clone());
                return Ok(a);
            }
            Some(other) => {
                return Err(NgsiError::bad_data(format!(
                    "attribute '{name}' has the unknown type '{other}'"
                )))
            }
            None if declared.is_some() => {
                return Err(NgsiError::bad_data(format!(
                    "attribute '{name}' has a type that is not a string"
                )))
            }
            None if mode == Mode::Partial => PROPERTY,
            // Concise: a JSON object that is a Property's value.
            None => {
                let mut a = Map::new();
                a.insert("type".into(), PROPERTY.into());
                a.insert("value".into(), raw.clone());
                return Ok(a);
            }
        },
    };
    let mut attr = Map::new();
    attr.insert("type".into(), kind.into());
    let member = value_member(kind);
    match obj.get(member) {
        Some(Value::Null) | None if mode == Mode::Write => {
            return Err(NgsiError::bad_data(format!(
                "attribute '{name}' of type {kind} needs a non-null '{member}'"
            )))
        }
        Some(v) => {
            let v = validate_value(name, kind, v, ctx)?;
            attr.insert(member.into(), v);
        }
        None => {}
    }
    for (key, v) in obj {
        if key == "type" || key == member {
            continue;
        }
        match key.as_str() {
            "observedAt" => {
                let s = v.as_str().ok_or_else(|| {
                    NgsiError::bad_data(format!("observedAt of '{name}' must be a string"))
                })?;
                let normalized = time::parse_datetime(s).map_err(|_| {
                    NgsiError::bad_data(format!(
                        "observedAt '{s}' of '{name}' is not an ISO 8601 date-time"
                    ))
                })?;
                attr.insert(key.clone(), Value::String(normalized));
            }
            "unitCode" => {
                if !v.is_string() {
                    return Err(NgsiError::bad_data(format!(
                        "unitCode of '{name}' must be a string"
                    )));
                }
                attr.insert(key.clone(), v.clone());
            }
            "datasetId" => {
                let s = v.as_str().ok_or_else(|| {
                    NgsiError::bad_data(format!("datasetId of '{name}' must be a URI"))
                })?;
                validate_uri(s, "datasetId")?;
                attr.insert(key.clone(), v.clone());
            }
            "objectType" => {
                let s = v.as_str().ok_or_else(|| {
                    NgsiError::bad_data(format!("objectType of '{name}' must be a string"))
                })?;
                attr.insert(key.clone(), Value::String(ctx.expand(s)));
            }
            // System-generated: what the client sends is ignored.
            "createdAt" | "modifiedAt" | "deletedAt" | "instanceId" => {}
            "lang"
            | "previousValue"
            | "previousObject"
            | "previousLanguageMap"
            | "previousJson"
            | "previousVocab"
            | "previousValueList"
            | "previousObjectList" => {}
            k if KINDS.iter().any(|(_, m)| *m == k) => {
                return Err(NgsiError::bad_data(format!(
                    "attribute '{name}' of type {kind} must not have a '{k}' member"
                )))
            }
            sub => {
                validate_name(sub, "sub-attribute name")?;
                let parsed = parse_instance(sub, v, ctx, now, Mode::Write)?;
                attr.insert(ctx.expand(sub), Value::Object(parsed));
            }
        }
    }
    attr.insert("createdAt".into(), Value::String(now.to_string()));
    attr.insert("modifiedAt".into(), Value::String(now.to_string()));
    Ok(attr)
}

fn validate_value(name: &str, kind: &str, v: &Value, ctx: &ActiveContext) -> Result<Value> {
    let bad = |why: &str| {
        Err(NgsiError::bad_data(format!(
            "attribute '{name}' ({kind}): {why}"
        )))
    };
    match kind {
        PROPERTY => Ok(v.clone()),
        RELATIONSHIP => {
            let check = |o: &Value| match o.as_str() {
                Some(s) => validate_uri(s, "relationship object"),
                None => Err(NgsiError::bad_data(format!(
                    "attribute '{name}': object must be a URI"
                ))),
            };
            match v {
                Value::Array(items) if !items.is_empty() => items.iter().try_for_each(check)?,
                other => check(other)?,
            }
            Ok(v.clone())
        }
        GEO_PROPERTY => {
            if let Some(s) = v.as_str() {
                if s == NULL_URI {
                    return Ok(v.clone());
                }
            }
            validate_geometry(name, v)?;
            Ok(v.clone())
        }
        LANGUAGE_PROPERTY => {
            let Some(map) = v.as_object() else {
                return bad("languageMap must be an object");
            };
            for (lang, text) in map {
                let ok = match text {
                    Value::String(_) => true,
                    Value::Array(a) => a.iter().all(Value::is_string),
                    _ => false,
                };
                if !ok || lang.is_empty() {
                    return bad("languageMap values must be strings (or arrays of strings) keyed by language tags");
                }
            }
            Ok(v.clone())
        }
        JSON_PROPERTY => {
            if !(v.is_object() || v.is_array()) {
                return bad("json must be a JSON object or array");
            }
            Ok(v.clone())
        }
        VOCAB_PROPERTY => match v {
            Value::String(s) => Ok(Value::String(ctx.expand(s))),
            Value::Array(items) if items.iter().all(Value::is_string) => Ok(Value::Array(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| Value::String(ctx.expand(s)))
                    .collect(),
            )),
            _ => bad("vocab must be a string or an array of strings"),
        },
        LIST_PROPERTY => {
            if !v.is_array() {
                return bad("valueList must be an array");
            }
            Ok(v.clone())
        }
        LIST_RELATIONSHIP => {
            let Some(items) = v.as_array() else {
                return bad("objectList must be an array");
            };
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let uri = match item {
                    Value::String(s) => s.as_str(),
                    Value::Object(o) => o.get("object").and_then(Value::as_str).unwrap_or(""),
                    _ => "",
                };
                validate_uri(uri, "objectList item")?;
                out.push(serde_json::json!({ "object": uri }));
            }
            Ok(Value::Array(out))
        }
        _ => Ok(v.clone()),
    }
}

/// Checks the shape of a GeoJSON geometry: its type and nested coordinate arrays.
pub fn validate_geometry(name: &str, v: &Value) -> Result<()> {
    let bad = |why: String| {
        Err(NgsiError::bad_data(format!(
            "attribute '{name}' is not a valid GeoJSON geometry: {why}"
        )))
    };
    let Some(obj) = v.as_object() else {
        return bad("not an object".into());
    };
    let Some(t) = obj.get("type").and_then(Value::as_str) else {
        return bad("no type".into());
    };
    if t == "GeometryCollection" {
        return match obj.get("geometries").and_then(Value::as_array) {
            Some(g) => g.iter().try_for_each(|g| validate_geometry(name, g)),
            None => bad("a GeometryCollection needs geometries".into()),
        };
    }
    let depth = match t {
        "Point" => 0,
        "MultiPoint" | "LineString" => 1,
        "MultiLineString" | "Polygon" => 2,
        "MultiPolygon" => 3,
        other => return bad(format!("unknown geometry type '{other}'")),
    };
    let Some(coords) = obj.get("coordinates") else {
        return bad("no coordinates".into());
    };
    if !coordinates_ok(coords, depth) {
        return bad(format!("coordinates do not fit a {t}"));
    }
    Ok(())
}

fn coordinates_ok(v: &Value, depth: usize) -> bool {
    match (v, depth) {
        (Value::Array(p), 0) => {
            (2..=3).contains(&p.len())
                && p.iter().all(Value::is_number)
                && p[0].as_f64().is_some_and(|x| (-180.0..=180.0).contains(&x))
                && p[1].as_f64().is_some_and(|y| (-90.0..=90.0).contains(&y))
        }
        (Value::Array(items), d) => {
            !items.is_empty() && items.iter().all(|i| coordinates_ok(i, d - 1))
        }
        _ => false,
    }
}
