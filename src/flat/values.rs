//! Attribute instances as flat cells: the value member as text (strings as they are,
//! numbers as numbers, structures as JSON) and the geometry of an entity.

use serde_json::Value;

use crate::ngsi::attribute::{self, Attribute};
use crate::ngsi::Entity;

/// The expanded name of the default geometry attribute.
pub const LOCATION: &str = "https://uri.etsi.org/ngsi-ld/location";

/// The value member of an instance.
pub fn value(a: &Attribute) -> Option<&Value> {
    let kind = a
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or(attribute::PROPERTY);
    a.get(attribute::value_member(kind))
}

/// A value as a cell: strings unquoted, other scalars as written, structures as JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// The instance a one-cell view shows: the default one (no datasetId), else the first.
pub fn main_instance(instances: &[Attribute]) -> Option<&Attribute> {
    instances
        .iter()
        .find(|a| !a.contains_key("datasetId"))
        .or_else(|| instances.first())
}

/// The entity's attribute as a cell.
pub fn cell(e: &Entity, attr: &str) -> String {
    e.attrs
        .get(attr)
        .and_then(|i| main_instance(i))
        .and_then(value)
        .map(text)
        .unwrap_or_default()
}

/// The entity's geometry (a GeoJSON object), from `location` or else its first
/// GeoProperty.
pub fn geometry(e: &Entity) -> Option<&Value> {
    let geo =
        |a: &&Attribute| a.get("type").and_then(Value::as_str) == Some(attribute::GEO_PROPERTY);
    e.attrs
        .get(LOCATION)
        .and_then(|i| main_instance(i))
        .filter(geo)
        .or_else(|| e.attrs.values().filter_map(|i| main_instance(i)).find(geo))
        .and_then(|a| a.get("value"))
        .filter(|v| v.is_object())
}

/// The entity's types as one cell, compacted.
pub fn types(e: &Entity, ctx: &crate::jsonld::ActiveContext) -> String {
    e.types
        .iter()
        .map(|t| ctx.compact(t))
        .collect::<Vec<_>>()
        .join(",")
}
