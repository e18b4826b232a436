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

/// Names that are NGSI-LD members of an attribute and so cannot name an attribute.
const CORE_MEMBER_NAMES: &[&str] = &[
    "datasetId",
    "instanceId",
    "observedAt",
    "unitCode",
    "value",
    "object",
    "languageMap",
    "json",
    "vocab",
    "valueList",
    "objectList",
    "objectType",
    "previousValue",
    "previousObject",
    "previousLanguageMap",
    "previousJson",
    "previousVocab",
    "previousValueList",
    "previousObjectList",
    "lang",
    "@context",
];

/// Output-only members a client may not send.
const OUTPUT_ONLY: &[&str] = &[
    "previousValue",
    "previousObject",
    "previousLanguageMap",
    "previousJson",
    "previousVocab",
    "previousValueList",
    "previousObjectList",
    "instanceId",
    "lang",
];

/// Attribute names that always hold a GeoProperty.
const GEO_NAMES: &[&str] = &["location", "observationSpace", "operationSpace"];

/// How strictly a body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Creation or replacement: every value present, no null anywhere.
    Create,
    /// Merge, update and append fragments: a null value deletes the attribute instance.
    Merge,
    /// Partial update of one attribute: members may be missing; null deletes.
    Partial,
}

/// True for an instance that asks to delete the stored instance with its datasetId.
pub fn is_deletion(attr: &Attribute) -> bool {
    attr.get(DELETE_MARK).is_some()
}

/// Internal member set on instances that ask for a deletion (never stored).
const DELETE_MARK: &str = "@delete";

fn deletion(name: &str, obj: Option<&Map<String, Value>>) -> Result<Attribute> {
    let mut a = Map::new();
    a.insert(DELETE_MARK.into(), Value::Bool(true));
    if let Some(ds) = obj.and_then(|o| o.get("datasetId")) {
        let s = ds
            .as_str()
            .ok_or_else(|| NgsiError::bad_data(format!("datasetId of '{name}' must be a URI")))?;
        if s != "@none" {
            validate_uri(s, "datasetId")?;
            a.insert("datasetId".into(), ds.clone());
        }
    }
    Ok(a)
}

fn is_null_marker(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s == NULL_URI,
        Value::Object(m) => m.len() == 1 && m.get("@none").is_some_and(is_null_marker),
        _ => false,
    }
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
    validate_attribute_name(name, ctx)?;
    let instances: Vec<Attribute> = match raw {
        Value::Array(items) if !items.is_empty() && items.iter().all(looks_like_instance) => items
            .iter()
            .map(|item| parse_instance(name, item, ctx, now, mode, 0))
            .collect::<Result<_>>()?,
        other => vec![parse_instance(name, other, ctx, now, mode, 0)?],
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

/// An attribute name must be a valid term or IRI, and not a name NGSI-LD reserves.
pub fn validate_attribute_name(name: &str, ctx: &ActiveContext) -> Result<()> {
    validate_name(name, "attribute name")?;
    if ENTITY_MEMBERS.contains(&name)
        || CORE_MEMBER_NAMES.contains(&name)
        || ctx.is_keyword_alias(name)
    {
        return Err(NgsiError::bad_data(format!(
            "'{name}' is reserved by NGSI-LD and cannot name an attribute"
        )));
    }
    Ok(())
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
fn infer_kind(name: &str, obj: &Map<String, Value>) -> Option<&'static str> {
    if let Some(t) = obj.get("type").and_then(Value::as_str) {
        if let Some((k, _)) = KINDS.iter().find(|(k, _)| *k == t) {
            return Some(k);
        }
        if t == "VocabularyProperty" {
            return Some(VOCAB_PROPERTY);
        }
        return None;
    }
    if let Some((k, _)) = KINDS
        .iter()
        .find(|(_, m)| *m != "value" && obj.contains_key(*m))
    {
        return Some(k);
    }
    let value = obj.get("value")?;
    // "the GeoProperty sub-type shall be inferred if the value is a GeoJSON geometry".
    if GEO_NAMES.contains(&name) || is_geometry_like(value) {
        return Some(GEO_PROPERTY);
    }
    Some(PROPERTY)
}

fn is_geometry_like(v: &Value) -> bool {
    v.get("type")
        .and_then(Value::as_str)
        .is_some_and(|t| GEOMETRIES.contains(&t))
        && v.get("coordinates").is_some()
}

fn new_attr(kind: &str, member: &str, value: Value) -> Attribute {
    let mut a = Map::new();
    a.insert("type".into(), kind.into());
    a.insert(member.into(), value);
    a
}

/// Parses one instance (the temporal API sends many instances of one attribute).
pub fn parse_instance(
    name: &str,
    raw: &Value,
    ctx: &ActiveContext,
    now: &str,
    mode: Mode,
    depth: usize,
) -> Result<Attribute> {
    if depth > 16 {
        return Err(NgsiError::bad_data(format!(
            "attribute '{name}' nests sub-attributes too deeply"
        )));
    }
    let bad = |why: String| Err(NgsiError::bad_data(format!("attribute '{name}': {why}")));
    let obj = match raw {
        Value::Object(o) => o,
        v if is_null_marker(v) => {
            return match mode {
                Mode::Create => bad("a value cannot be null".into()),
                _ => deletion(name, None),
            }
        }
        // Concise: a bare value is a Property's value (a GeoProperty's for location).
        other => {
            check_no_null(name, other, mode)?;
            if GEO_NAMES.contains(&name) {
                let geo = validate_geo_value(name, other)?;
                return Ok(stamp(new_attr(GEO_PROPERTY, "value", geo), now));
            }
            return Ok(stamp(new_attr(PROPERTY, "value", other.clone()), now));
        }
    };
    if obj.contains_key("@context") {
        return bad("an attribute cannot carry its own @context".into());
    }
    let kind = match infer_kind(name, obj) {
        Some(k) => k,
        None => match obj.get("type") {
            // Concise GeoProperty: the GeoJSON geometry itself.
            Some(Value::String(g))
                if GEOMETRIES.contains(&g.as_str()) && !obj.contains_key("value") =>
            {
                let geo = validate_geo_value(name, raw)?;
                return Ok(stamp(new_attr(GEO_PROPERTY, "value", geo), now));
            }
            Some(Value::String(other)) => return bad(format!("unknown attribute type '{other}'")),
            Some(_) => return bad("type must be a string".into()),
            None if mode == Mode::Partial => PROPERTY,
            // Concise: a JSON object that is a Property's value.
            None => {
                check_no_null(name, raw, mode)?;
                if GEO_NAMES.contains(&name) {
                    return bad("must be a GeoProperty".into());
                }
                return Ok(stamp(new_attr(PROPERTY, "value", raw.clone()), now));
            }
        },
    };
    if GEO_NAMES.contains(&name) && kind != GEO_PROPERTY {
        return bad(format!("'{name}' must be a GeoProperty, not a {kind}"));
    }
    let member = value_member(kind);
    let mut attr = Map::new();
    attr.insert("type".into(), kind.into());
    match obj.get(member) {
        Some(v) if is_null_marker(v) => {
            if mode == Mode::Create {
                return bad(format!("{member} cannot be null"));
            }
            return deletion(name, Some(obj));
        }
        Some(v) => {
            // A JsonProperty holds raw JSON, where null is an ordinary value.
            if kind != JSON_PROPERTY {
                check_no_null(name, v, mode)?;
            }
            attr.insert(member.into(), validate_value(name, kind, v, ctx)?);
        }
        None if mode == Mode::Partial => {}
        None => return bad(format!("a {kind} needs a '{member}' member")),
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
                attr.insert(
                    key.clone(),
                    Value::String(parse_utc(name, "observedAt", s)?),
                );
            }
            "expiresAt" => {
                let s = v.as_str().ok_or_else(|| {
                    NgsiError::bad_data(format!("expiresAt of '{name}' must be a string"))
                })?;
                attr.insert(key.clone(), Value::String(parse_utc(name, "expiresAt", s)?));
            }
            "unitCode" => {
                if !matches!(kind, PROPERTY | LIST_PROPERTY | GEO_PROPERTY) {
                    return bad(format!("a {kind} cannot have a unitCode"));
                }
                if v.as_str().is_none_or(str::is_empty) {
                    return bad("unitCode must be a non-empty string".into());
                }
                attr.insert(key.clone(), v.clone());
            }
            "datasetId" => {
                let s = v.as_str().ok_or_else(|| {
                    NgsiError::bad_data(format!("datasetId of '{name}' must be a URI"))
                })?;
                // 5.5.8: a datasetId cannot be deleted by setting it to NGSI-LD Null.
                if s == NULL_URI {
                    return bad(format!("a datasetId cannot be {NULL_URI}"));
                }
                // "@none" names the default instance.
                if s != "@none" {
                    validate_uri(s, "datasetId")?;
                    attr.insert(key.clone(), v.clone());
                }
            }
            "objectType" => {
                let s = v.as_str().ok_or_else(|| {
                    NgsiError::bad_data(format!("objectType of '{name}' must be a string"))
                })?;
                attr.insert(key.clone(), Value::String(ctx.expand(s)));
            }
            // Table 5.2.32-1: a LanguageProperty's valueType "shall be equal to langString".
            "valueType" if kind == LANGUAGE_PROPERTY && !is_lang_string(v) => {
                return bad("the valueType of a LanguageProperty must be langString".into())
            }
            // System-generated: what the client sends is ignored.
            "createdAt" | "modifiedAt" | "deletedAt" => {}
            k if OUTPUT_ONLY.contains(&k) => return bad(format!("'{k}' is output-only")),
            k if KINDS.iter().any(|(_, m)| *m == k) => {
                return bad(format!("a {kind} must not have a '{k}' member"))
            }
            sub => {
                validate_attribute_name(sub, ctx)?;
                let sub_mode = if mode == Mode::Partial {
                    Mode::Merge
                } else {
                    mode
                };
                let parsed = parse_instance(sub, v, ctx, now, sub_mode, depth + 1)?;
                attr.insert(ctx.expand(sub), Value::Object(parsed));
            }
        }
    }
    Ok(stamp(attr, now))
}

fn is_lang_string(v: &Value) -> bool {
    matches!(
        v.as_str(),
        Some(
            "langString"
                | "rdf:langString"
                | "http://www.w3.org/1999/02/22-rdf-syntax-ns#langString"
        )
    )
}

fn stamp(mut attr: Attribute, now: &str) -> Attribute {
    attr.insert("createdAt".into(), Value::String(now.to_string()));
    attr.insert("modifiedAt".into(), Value::String(now.to_string()));
    attr
}

/// Date-times in attributes must be UTC, written with a final `Z`.
fn parse_utc(name: &str, member: &str, s: &str) -> Result<String> {
    if !s.ends_with('Z') {
        return Err(NgsiError::bad_data(format!(
            "{member} '{s}' of '{name}' must be a UTC date-time ending in Z"
        )));
    }
    time::parse(s).map_err(|_| {
        NgsiError::bad_data(format!(
            "{member} '{s}' of '{name}' is not an ISO 8601 date-time"
        ))
    })?;
    // Kept as written: clients compare what they read back with what they sent.
    Ok(s.to_string())
}

/// On creation, no member of a value may be null (a null would be unreadable later).
/// Nor in a partial attribute update: only a merge patches into a value (RFC 7396),
/// where a null member removes that member (5.5.4, 5.5.12).
fn check_no_null(name: &str, v: &Value, mode: Mode) -> Result<()> {
    let during = match mode {
        Mode::Merge => return Ok(()),
        Mode::Create => "on creation",
        Mode::Partial => "in a partial update (only a merge removes members with null)",
    };
    fn has_null(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::String(s) => s == NULL_URI,
            Value::Array(a) => a.iter().any(has_null),
            Value::Object(o) => o.values().any(has_null),
            _ => false,
        }
    }
    if has_null(v) {
        return Err(NgsiError::bad_data(format!(
            "attribute '{name}': values cannot contain null {during}"
        )));
    }
    Ok(())
}

fn validate_geo_value(name: &str, v: &Value) -> Result<Value> {
    // A geometry may come as a string holding its JSON.
    if let Value::String(s) = v {
        if let Ok(parsed @ Value::Object(_)) = serde_json::from_str::<Value>(s) {
            validate_geometry(name, &parsed)?;
            return Ok(parsed);
        }
    }
    validate_geometry(name, v)?;
    Ok(v.clone())
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
        GEO_PROPERTY => validate_geo_value(name, v),
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

/// Checks a GeoJSON geometry (RFC 7946): its type, coordinate nesting, positions in
/// range, at least two positions per line, closed rings of four or more. The detail says
/// which rule failed.
pub fn validate_geometry(name: &str, v: &Value) -> Result<()> {
    let fail = |why: String| {
        NgsiError::bad_data(format!(
            "attribute '{name}' is not a valid GeoJSON geometry: {why}"
        ))
    };
    let Some(obj) = v.as_object() else {
        return Err(fail("not an object".into()));
    };
    let Some(t) = obj.get("type").and_then(Value::as_str) else {
        return Err(fail("no type".into()));
    };
    let Some(coords) = obj.get("coordinates") else {
        return Err(fail(if t == "GeometryCollection" {
            "GeometryCollection is not supported".into()
        } else {
            "no coordinates".into()
        }));
    };
    let checked = match t {
        "Point" => position(coords),
        "MultiPoint" => each(coords, position),
        "LineString" => line(coords),
        "MultiLineString" => each(coords, line),
        "Polygon" => polygon(coords),
        "MultiPolygon" => each(coords, polygon),
        other => Err(format!("unsupported geometry type '{other}'")),
    };
    checked.map_err(|why| fail(format!("{t}: {why}")))
}

type Check = std::result::Result<(), String>;

fn each(v: &Value, f: fn(&Value) -> Check) -> Check {
    match v.as_array() {
        Some(items) if !items.is_empty() => items.iter().try_for_each(f),
        _ => Err("coordinates must be a non-empty array".into()),
    }
}

fn position(v: &Value) -> Check {
    let Some(p) = v
        .as_array()
        .filter(|p| (2..=3).contains(&p.len()) && p.iter().all(Value::is_number))
    else {
        return Err("a position is an array of 2 or 3 numbers".into());
    };
    let (x, y) = (
        p[0].as_f64().unwrap_or(f64::NAN),
        p[1].as_f64().unwrap_or(f64::NAN),
    );
    if !(-180.0..=180.0).contains(&x) {
        return Err(format!("longitude {x} is out of range [-180, 180]"));
    }
    if !(-90.0..=90.0).contains(&y) {
        return Err(format!("latitude {y} is out of range [-90, 90]"));
    }
    Ok(())
}

fn line(v: &Value) -> Check {
    match v.as_array() {
        Some(p) if p.len() >= 2 => p.iter().try_for_each(position),
        _ => Err("a line needs at least two positions".into()),
    }
}

fn ring(v: &Value) -> Check {
    let Some(p) = v.as_array() else {
        return Err("a ring is an array of positions".into());
    };
    if p.len() < 4 {
        return Err(format!(
            "a linear ring needs four or more positions, this one has {}",
            p.len()
        ));
    }
    p.iter().try_for_each(position)?;
    if p.first() != p.last() {
        return Err("a linear ring must be closed (its first and last positions equal)".into());
    }
    Ok(())
}

fn polygon(v: &Value) -> Check {
    each(v, ring)
}
