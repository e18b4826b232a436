//! Representations of an entity for a client: normalized, concise or keyValues, with
//! names compacted against the request's context.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::attribute::{self, Attribute};
use super::entity::Entity;
use crate::jsonld::ActiveContext;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Normalized,
    Concise,
    KeyValues,
}

#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    pub format: Format,
    pub sys_attrs: bool,
    /// Expanded names of the attributes to show (`attrs`/`pick`); `None` = all.
    pub attrs: Option<HashSet<String>>,
    /// Expanded names to leave out (`omit`).
    pub omit: HashSet<String>,
    /// Show `id`/`type` only if picked (when `pick` was used).
    pub picked_members: Option<HashSet<String>>,
    pub lang: Option<String>,
    /// Only these attribute instances (`datasetId`; `@none` is the default instance).
    pub dataset_ids: Option<Vec<String>>,
    /// With `join`: how entities linked through a Relationship (expanded name) are
    /// rendered; those not listed are rendered whole.
    pub linked: std::collections::HashMap<String, RenderOptions>,
}

impl RenderOptions {
    /// Whether the projection keeps this attribute (expanded name).
    pub fn shows_attribute(&self, name: &str) -> bool {
        self.attrs.as_ref().is_none_or(|a| a.contains(name)) && !self.omit.contains(name)
    }

    /// Whether an entity member (`id`, `type`, `scope`) is shown (`pick`/`omit`).
    pub fn shows_member(&self, member: &str) -> bool {
        self.picked_members
            .as_ref()
            .is_none_or(|p| p.contains(member))
            && !self.omit.contains(member)
    }

    /// Whether `scope` is shown: with a projection, only if it was asked for by name.
    pub fn shows_scope(&self) -> bool {
        let projected_out = self
            .attrs
            .as_ref()
            .is_some_and(|a| !a.iter().any(|n| n.ends_with("/scope") || n == "scope"))
            && !self
                .picked_members
                .as_ref()
                .is_some_and(|p| p.contains("scope"));
        self.shows_member("scope") && !projected_out
    }

    /// The options for an entity linked through `relationship`: its nested projection
    /// if one was given, otherwise no projection; the representation stays the same.
    pub fn for_linked(&self, relationship: &str) -> RenderOptions {
        self.linked
            .get(relationship)
            .cloned()
            .unwrap_or_else(|| RenderOptions {
                format: self.format,
                sys_attrs: self.sys_attrs,
                lang: self.lang.clone(),
                ..Default::default()
            })
    }
}

pub fn render_entity(e: &Entity, ctx: &ActiveContext, opts: &RenderOptions) -> Map<String, Value> {
    let mut out = Map::new();
    if opts.shows_member("id") {
        out.insert("id".into(), Value::String(e.id.clone()));
    }
    if opts.shows_member("type") {
        let types: Vec<Value> = e
            .types
            .iter()
            .map(|t| Value::String(ctx.compact(t)))
            .collect();
        out.insert(
            "type".into(),
            if types.len() == 1 {
                types[0].clone()
            } else {
                Value::Array(types)
            },
        );
    }
    if let Some(scope) = &e.scope {
        if opts.shows_scope() {
            let v: Vec<Value> = scope.iter().cloned().map(Value::String).collect();
            out.insert(
                "scope".into(),
                if v.len() == 1 {
                    v[0].clone()
                } else {
                    Value::Array(v)
                },
            );
        }
    }
    if let Some(exp) = &e.expires_at {
        if opts.sys_attrs {
            out.insert("expiresAt".into(), Value::String(exp.clone()));
        }
    }
    for (name, instances) in &e.attrs {
        if opts.attrs.as_ref().is_some_and(|a| !a.contains(name)) || opts.omit.contains(name) {
            continue;
        }
        let rendered: Vec<Value> = instances
            .iter()
            .filter(|i| dataset_selected(i, opts))
            .map(|i| render_attribute(i, ctx, opts))
            .collect();
        if rendered.is_empty() {
            continue;
        }
        let value = if rendered.len() == 1 {
            rendered.into_iter().next().unwrap_or(Value::Null)
        } else {
            Value::Array(rendered)
        };
        out.insert(ctx.compact(name), value);
    }
    if opts.sys_attrs && opts.format != Format::KeyValues {
        out.insert("createdAt".into(), Value::String(e.created_at.clone()));
        out.insert("modifiedAt".into(), Value::String(e.modified_at.clone()));
    }
    out
}

fn dataset_selected(a: &Attribute, opts: &RenderOptions) -> bool {
    let Some(wanted) = &opts.dataset_ids else {
        return true;
    };
    let ds = a
        .get("datasetId")
        .and_then(Value::as_str)
        .unwrap_or("@none");
    wanted.iter().any(|w| w == ds)
}

pub fn render_attribute(a: &Attribute, ctx: &ActiveContext, opts: &RenderOptions) -> Value {
    let kind = a
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or(attribute::PROPERTY);
    let member = attribute::value_member(kind);
    if opts.format == Format::KeyValues {
        return key_value(a, kind, member, ctx, opts);
    }
    let mut out = Map::new();
    for (k, v) in a {
        match k.as_str() {
            // expiresAt of a transient attribute is a system member too (clause 6.3.11).
            "createdAt" | "modifiedAt" | "expiresAt" if !opts.sys_attrs => {}
            "vocab" => {
                out.insert(k.clone(), compact_vocab(v, ctx));
            }
            "objectType" => {
                out.insert(
                    k.clone(),
                    Value::String(ctx.compact(v.as_str().unwrap_or_default())),
                );
            }
            "languageMap" if opts.lang.is_some() => {
                let (text, lang) = pick_language(v, opts.lang.as_deref().unwrap_or_default());
                out.insert("type".into(), attribute::PROPERTY.into());
                out.insert("value".into(), text);
                if let Some(lang) = lang {
                    out.insert("lang".into(), Value::String(lang));
                }
            }
            k if !attribute::is_reserved(k) => {
                let sub = match v {
                    Value::Object(o) => render_attribute(o, ctx, opts),
                    other => other.clone(),
                };
                out.insert(ctx.compact(k), sub);
            }
            _ => {
                if !(k == "type" && out.contains_key("type")) {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
    }
    if opts.format == Format::Concise {
        out.remove("type");
        if out.len() == 1 {
            if let Some(v) = out.get("value") {
                // A bare value is only unambiguous if it cannot be read as an object attribute.
                if !v.is_object() || kind == attribute::GEO_PROPERTY {
                    return v.clone();
                }
            }
        }
    }
    Value::Object(out)
}

fn key_value(
    a: &Attribute,
    kind: &str,
    member: &str,
    ctx: &ActiveContext,
    opts: &RenderOptions,
) -> Value {
    let v = a.get(member).cloned().unwrap_or(Value::Null);
    match kind {
        attribute::VOCAB_PROPERTY => compact_vocab(&v, ctx),
        attribute::LANGUAGE_PROPERTY => match opts.lang.as_deref() {
            Some(lang) => pick_language(&v, lang).0,
            None => serde_json::json!({ "languageMap": v }),
        },
        attribute::LIST_RELATIONSHIP => Value::Array(
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o.get("object").cloned())
                .collect(),
        ),
        attribute::JSON_PROPERTY => serde_json::json!({ "json": v }),
        _ => v,
    }
}

pub(crate) fn compact_vocab(v: &Value, ctx: &ActiveContext) -> Value {
    match v {
        Value::String(s) => Value::String(ctx.compact(s)),
        Value::Array(items) => Value::Array(items.iter().map(|i| compact_vocab(i, ctx)).collect()),
        other => other.clone(),
    }
}

/// Chooses a text from a language map: the requested tag, else `@none`, else any.
fn pick_language(map: &Value, wanted: &str) -> (Value, Option<String>) {
    let Some(m) = map.as_object() else {
        return (Value::Null, None);
    };
    let wanted_tags: Vec<&str> = wanted
        .split(',')
        .map(|s| s.split(';').next().unwrap_or("").trim())
        .collect();
    for tag in &wanted_tags {
        if *tag == "*" {
            break;
        }
        if let Some(v) = m.get(*tag) {
            return (v.clone(), Some(tag.to_string()));
        }
    }
    if let Some(v) = m.get("@none") {
        return (v.clone(), Some("@none".into()));
    }
    match m.iter().next() {
        Some((k, v)) => (v.clone(), Some(k.clone())),
        None => (Value::Null, None),
    }
}
