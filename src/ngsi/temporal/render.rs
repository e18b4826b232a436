//! Temporal representations: normalized (every instance), temporalValues
//! ([value, time] pairs) and aggregatedValues ([value, start, end] per method).

use indexmap::IndexMap;
use serde_json::{json, Map, Value};

use super::request::{TemporalFormat, TemporalQuery, TimeProperty};
use super::{Instance, TemporalResult};
use crate::jsonld::ActiveContext;
use crate::ngsi::attribute;
use crate::ngsi::render::{render_attribute, RenderOptions};
use crate::ngsi::time;

pub fn render(
    result: &TemporalResult,
    ctx: &ActiveContext,
    q: &TemporalQuery,
) -> Map<String, Value> {
    let e = &result.entity;
    let mut out = Map::new();
    out.insert("id".into(), json!(e.id));
    let types: Vec<Value> = e.types.iter().map(|t| json!(ctx.compact(t))).collect();
    out.insert(
        "type".into(),
        if types.len() == 1 {
            types[0].clone()
        } else {
            Value::Array(types)
        },
    );
    if let Some(scope) = &e.scope {
        out.insert("scope".into(), json!(scope));
    }
    if q.sys_attrs {
        out.insert("createdAt".into(), json!(e.created_at));
        out.insert("modifiedAt".into(), json!(e.modified_at));
        if let Some(d) = &e.deleted_at {
            out.insert("deletedAt".into(), json!(d));
        }
    }
    match q.format {
        TemporalFormat::Aggregated => {
            let mut by_attr: IndexMap<String, Vec<Value>> = IndexMap::new();
            for a in &result.aggregates {
                let mut o = Map::new();
                o.insert("type".into(), json!(a.kind));
                if let Some(ds) = &a.dataset_id {
                    o.insert("datasetId".into(), json!(ds));
                }
                for (method, rows) in &a.series {
                    let rows: Vec<Value> = rows
                        .iter()
                        .map(|(v, s, e)| json!([v, time::from_micros(*s), time::from_micros(*e)]))
                        .collect();
                    o.insert(method.name().into(), Value::Array(rows));
                }
                by_attr
                    .entry(ctx.compact(&a.attr))
                    .or_default()
                    .push(Value::Object(o));
            }
            collapse_into(&mut out, by_attr);
        }
        TemporalFormat::TemporalValues => {
            let mut groups: IndexMap<(String, Option<String>), (String, Vec<Value>)> =
                IndexMap::new();
            for i in &result.instances {
                let kind = i
                    .body
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or(attribute::PROPERTY)
                    .to_string();
                let member = attribute::value_member(&kind);
                let value = simplified_value(&kind, i.body.get(member).cloned(), ctx);
                let at = instant_of(i, q.timeproperty).map(|us| {
                    i.body
                        .get("observedAt")
                        .filter(|_| q.timeproperty == TimeProperty::ObservedAt)
                        .cloned()
                        .unwrap_or_else(|| json!(time::from_micros(us)))
                });
                let entry = groups
                    .entry((i.attr.clone(), i.dataset_id.clone()))
                    .or_insert_with(|| (kind, Vec::new()));
                entry.1.push(json!([value, at.unwrap_or(Value::Null)]));
            }
            let mut by_attr: IndexMap<String, Vec<Value>> = IndexMap::new();
            for ((attr, ds), (kind, values)) in groups {
                let mut o = Map::new();
                o.insert("type".into(), json!(kind));
                if let Some(ds) = ds {
                    o.insert("datasetId".into(), json!(ds));
                }
                o.insert(values_member(&kind).into(), Value::Array(values));
                by_attr
                    .entry(ctx.compact(&attr))
                    .or_default()
                    .push(Value::Object(o));
            }
            collapse_into(&mut out, by_attr);
        }
        TemporalFormat::Normalized => {
            let opts = RenderOptions {
                sys_attrs: q.sys_attrs,
                ..Default::default()
            };
            let mut by_attr: IndexMap<String, Vec<Value>> = IndexMap::new();
            for i in &result.instances {
                by_attr
                    .entry(ctx.compact(&i.attr))
                    .or_default()
                    .push(render_instance(i, ctx, &opts));
            }
            for (name, instances) in by_attr {
                out.insert(name, Value::Array(instances));
            }
        }
    }
    out
}

/// The member holding [value, time] pairs in the simplified temporal form, per type.
/// One value of a temporalValues pair (clause 4.5.9): the types whose value member is
/// not `value` keep that member's name around it, a vocabulary term is compacted, and a
/// list of relationship objects is the list of their targets.
fn simplified_value(kind: &str, value: Option<Value>, ctx: &ActiveContext) -> Value {
    let value = value.unwrap_or(Value::Null);
    match kind {
        attribute::LANGUAGE_PROPERTY => json!({ "languageMap": value }),
        attribute::JSON_PROPERTY => json!({ "json": value }),
        attribute::VOCAB_PROPERTY => {
            let compact = |v: &Value| match v {
                Value::String(s) => json!(ctx.compact(s)),
                other => other.clone(),
            };
            let vocab = match &value {
                Value::Array(items) => Value::Array(items.iter().map(compact).collect()),
                other => compact(other),
            };
            json!({ "vocab": vocab })
        }
        attribute::LIST_RELATIONSHIP => match value {
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .map(|o| o.get("object").cloned().unwrap_or(o))
                    .collect(),
            ),
            other => other,
        },
        _ => value,
    }
}

/// An attribute with no instance in this answer, in the answer's representation.
pub fn empty_attribute(kind: &str, q: &TemporalQuery) -> Value {
    match q.format {
        TemporalFormat::TemporalValues => {
            json!({ "type": kind, values_member(kind): [] })
        }
        _ => json!([]),
    }
}

fn values_member(kind: &str) -> &'static str {
    match kind {
        attribute::RELATIONSHIP => "objects",
        attribute::LANGUAGE_PROPERTY => "languageMaps",
        attribute::JSON_PROPERTY => "jsons",
        attribute::VOCAB_PROPERTY => "vocabs",
        attribute::LIST_PROPERTY => "valueLists",
        attribute::LIST_RELATIONSHIP => "objectLists",
        _ => "values",
    }
}

/// One value per attribute is an object, several (datasetIds) an array.
fn collapse_into(out: &mut Map<String, Value>, by_attr: IndexMap<String, Vec<Value>>) {
    for (name, mut items) in by_attr {
        let v = if items.len() == 1 {
            items.remove(0)
        } else {
            Value::Array(items)
        };
        out.insert(name, v);
    }
}

fn instant_of(i: &Instance, p: TimeProperty) -> Option<i64> {
    match p {
        TimeProperty::ObservedAt => i.observed_at,
        TimeProperty::CreatedAt => Some(i.created_at),
        TimeProperty::ModifiedAt => Some(i.modified_at),
        TimeProperty::DeletedAt => i.deleted_at,
    }
}

pub fn instance_uri(id: i64) -> String {
    format!("urn:ngsi-ld:attribute:instance:{id}")
}

pub fn render_instance(i: &Instance, ctx: &ActiveContext, opts: &RenderOptions) -> Value {
    let mut body = i.body.clone();
    if opts.sys_attrs {
        body.insert("createdAt".into(), json!(time::from_micros(i.created_at)));
        body.insert("modifiedAt".into(), json!(time::from_micros(i.modified_at)));
    }
    if let Some(ds) = &i.dataset_id {
        body.insert("datasetId".into(), json!(ds));
    }
    let mut v = render_attribute(&body, ctx, opts);
    if let Some(o) = v.as_object_mut() {
        o.insert("instanceId".into(), json!(instance_uri(i.instance_id)));
        if let Some(d) = i.deleted_at {
            o.insert("deletedAt".into(), json!(time::from_micros(d)));
        }
    }
    v
}
