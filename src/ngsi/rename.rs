//! Renaming an entity: the references other entities hold to it (Relationship objects,
//! ListRelationship items, relationships among sub-attributes, at any depth) follow it
//! to its new id.

use serde_json::Value;

use super::attribute::{self, Attribute};
use super::Entity;

/// Points every reference to `old` at `new`; true if something changed.
pub fn rewrite_entity(e: &mut Entity, old: &str, new: &str) -> bool {
    let mut changed = false;
    for instances in e.attrs.values_mut() {
        for a in instances.iter_mut() {
            changed |= rewrite_attribute(a, old, new);
        }
    }
    changed
}

/// The same on one attribute instance and its sub-attributes.
pub fn rewrite_attribute(a: &mut Attribute, old: &str, new: &str) -> bool {
    let mut changed = false;
    let kind = a
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or(attribute::PROPERTY)
        .to_string();
    for (key, value) in a.iter_mut() {
        match key.as_str() {
            "object" if kind == attribute::RELATIONSHIP => changed |= rewrite_uris(value, old, new),
            "objectList" if kind == attribute::LIST_RELATIONSHIP => {
                if let Value::Array(items) = value {
                    for item in items {
                        match item {
                            Value::Object(o) => {
                                if let Some(v) = o.get_mut("object") {
                                    changed |= rewrite_uris(v, old, new);
                                }
                            }
                            v => changed |= rewrite_uris(v, old, new),
                        }
                    }
                }
            }
            k if attribute::is_reserved(k) => {}
            // A sub-attribute (one instance, or several).
            _ => match value {
                Value::Object(sub) if sub.contains_key("type") => {
                    changed |= rewrite_attribute(sub, old, new)
                }
                Value::Array(subs) => {
                    for s in subs {
                        if let Value::Object(sub) = s {
                            if sub.contains_key("type") {
                                changed |= rewrite_attribute(sub, old, new);
                            }
                        }
                    }
                }
                _ => {}
            },
        }
    }
    changed
}

/// A URI, or an array of URIs (a Relationship may point to several entities).
fn rewrite_uris(v: &mut Value, old: &str, new: &str) -> bool {
    match v {
        Value::String(s) if s == old => {
            *s = new.to_string();
            true
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |acc, i| rewrite_uris(i, old, new) | acc),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn attr(v: Value) -> Attribute {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn rewrites_relationships_lists_and_sub_attributes_only() {
        let mut a = attr(json!({
            "type": "Property", "value": "urn:a",
            "by": {"type": "Relationship", "object": "urn:a"},
            "list": {"type": "ListRelationship", "objectList": [{"object": "urn:a"}, {"object": "urn:b"}]},
            "note": {"type": "Property", "value": "urn:a"}
        }));
        assert!(rewrite_attribute(&mut a, "urn:a", "urn:z"));
        assert_eq!(
            a["value"], "urn:a",
            "a Property value is data, not a reference"
        );
        assert_eq!(a["by"]["object"], "urn:z");
        assert_eq!(a["list"]["objectList"][0]["object"], "urn:z");
        assert_eq!(a["list"]["objectList"][1]["object"], "urn:b");
        assert_eq!(a["note"]["value"], "urn:a");
        assert!(!rewrite_attribute(&mut a, "urn:a", "urn:z"));
    }
}
