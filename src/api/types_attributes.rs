//! Discovery: `/types`, `/types/{type}`, `/attributes`, `/attributes/{attr}` (clause 5.7),
//! names compacted with the request's context.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::entities::ensure_tenant;
use super::extract::{self, bool_param, query_params};
use super::{response, State};
use crate::error::{NgsiError, Result};
use crate::jsonld::ActiveContext;
use crate::ngsi::query::TypeStats;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/types", web::get().to(types))
        .route("/types/{type}", web::get().to(type_info))
        .route("/attributes", web::get().to(attributes))
        .route("/attributes/{attr}", web::get().to(attribute_info));
}

struct Discovery {
    stats: Vec<TypeStats>,
    ctx: std::sync::Arc<ActiveContext>,
    media: extract::MediaType,
    details: bool,
}

/// Parameters of the lists (`/types`, `/attributes`) and of one item (clause 6.3.20:
/// `details` only makes sense on a list).
const LIST_PARAMS: &[&str] = &["details", "local", "via"];
const ITEM_PARAMS: &[&str] = &["local", "via"];

async fn discover(state: &State, req: &HttpRequest, allowed: &[&str]) -> Result<Discovery> {
    let params = query_params(req, allowed)?;
    let tenant = extract::tenant(req)?;
    let media = extract::accept(req, false)?;
    let ctx = extract::context(state, req).await?;
    ensure_tenant(state, &tenant).await?;
    let stats = state.store.type_stats(&tenant).await?;
    Ok(Discovery {
        stats,
        ctx,
        media,
        details: bool_param(&params, "details")?,
    })
}

fn respond(d: &Discovery, body: Value) -> Result<HttpResponse> {
    let body = match body {
        Value::Object(o) => response::with_context(o, d.media, &d.ctx),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|i| match i {
                    Value::Object(o) => response::with_context(o, d.media, &d.ctx),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    };
    response::json(StatusCode::OK, d.media, &d.ctx, &body)
}

fn list_id(kind: &str) -> String {
    format!("urn:ngsi-ld:{kind}:{}", uuid::Uuid::new_v4().simple())
}

async fn types(state: State, req: HttpRequest) -> Result<HttpResponse> {
    let d = discover(&state, &req, LIST_PARAMS).await?;
    let body = if d.details {
        Value::Array(
            d.stats
                .iter()
                .map(|t| {
                    json!({
                        "id": t.type_iri,
                        "type": "EntityType",
                        "typeName": d.ctx.compact(&t.type_iri),
                        "attributeNames": t.attributes.iter().map(|(a, _, _)| d.ctx.compact(a)).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    } else {
        json!({
            "id": list_id("EntityTypeList"),
            "type": "EntityTypeList",
            "typeList": d.stats.iter().map(|t| d.ctx.compact(&t.type_iri)).collect::<Vec<_>>(),
        })
    };
    respond(&d, body)
}

async fn type_info(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let d = discover(&state, &req, ITEM_PARAMS).await?;
    let wanted = d.ctx.expand(&path);
    let t = d
        .stats
        .iter()
        .find(|t| t.type_iri == wanted)
        .ok_or_else(|| NgsiError::not_found(format!("no entity of type {path}")))?;
    let body = json!({
        "id": t.type_iri,
        "type": "EntityTypeInfo",
        "typeName": d.ctx.compact(&t.type_iri),
        "entityCount": t.entity_count,
        "attributeDetails": t.attributes.iter().map(|(a, kinds, _)| json!({
            "id": a,
            "type": "Attribute",
            "attributeName": d.ctx.compact(a),
            "attributeTypes": kinds,
        })).collect::<Vec<_>>(),
    });
    respond(&d, body)
}

/// Attribute name → (attribute types, entity count, type names).
fn by_attribute(d: &Discovery) -> BTreeMap<String, (Vec<String>, u64, Vec<String>)> {
    let mut out: BTreeMap<String, (Vec<String>, u64, Vec<String>)> = BTreeMap::new();
    for t in &d.stats {
        for (a, kinds, n) in &t.attributes {
            let entry = out.entry(a.clone()).or_default();
            for k in kinds {
                if !entry.0.contains(k) {
                    entry.0.push(k.clone());
                }
            }
            entry.1 += n;
            entry.2.push(d.ctx.compact(&t.type_iri));
        }
    }
    out
}

fn attribute_body(
    d: &Discovery,
    iri: &str,
    kinds: &[String],
    count: u64,
    types: &[String],
) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), json!(iri));
    o.insert("type".into(), json!("Attribute"));
    o.insert("attributeName".into(), json!(d.ctx.compact(iri)));
    o.insert("attributeCount".into(), json!(count));
    o.insert("attributeTypes".into(), json!(kinds));
    o.insert("typeNames".into(), json!(types));
    Value::Object(o)
}

async fn attributes(state: State, req: HttpRequest) -> Result<HttpResponse> {
    let d = discover(&state, &req, LIST_PARAMS).await?;
    let attrs = by_attribute(&d);
    let body = if d.details {
        Value::Array(
            attrs
                .iter()
                .map(|(a, (k, n, t))| attribute_body(&d, a, k, *n, t))
                .collect(),
        )
    } else {
        json!({
            "id": list_id("AttributeList"),
            "type": "AttributeList",
            "attributeList": attrs.keys().map(|a| d.ctx.compact(a)).collect::<Vec<_>>(),
        })
    };
    respond(&d, body)
}

async fn attribute_info(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let d = discover(&state, &req, ITEM_PARAMS).await?;
    let wanted = d.ctx.expand(&path);
    let attrs = by_attribute(&d);
    let (k, n, t) = attrs
        .get(&wanted)
        .ok_or_else(|| NgsiError::not_found(format!("no entity has the attribute {path}")))?;
    let body = attribute_body(&d, &wanted, k, *n, t);
    respond(&d, body)
}
