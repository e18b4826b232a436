//! Writing NGSI-LD bodies: the @context goes in a Link header for application/json and
//! in the body for application/ld+json.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde_json::{Map, Value};

use super::extract::{MediaType, JSONLD_CONTEXT_REL};
use crate::error::{NgsiError, Result};
use crate::jsonld::{ActiveContext, CORE_CONTEXT_URL};
use crate::ngsi::render::{self, RenderOptions};
use crate::ngsi::Entity;

/// The URL to advertise in a Link header for this context.
fn context_link_url(ctx: &ActiveContext) -> String {
    match &ctx.source {
        Value::String(url) => url.clone(),
        _ => CORE_CONTEXT_URL.to_string(),
    }
}

fn context_value(ctx: &ActiveContext) -> Value {
    match &ctx.source {
        Value::Null => Value::String(CORE_CONTEXT_URL.to_string()),
        other => other.clone(),
    }
}

/// The `"@context":…` member of a JSON-LD body, as JSON text.
pub fn context_member(ctx: &ActiveContext) -> String {
    format!("\"@context\":{}", context_value(ctx))
}

pub fn link_header(ctx: &ActiveContext) -> String {
    link_header_for_url(&context_link_url(ctx))
}

pub fn link_header_for_url(url: &str) -> String {
    format!("<{url}>; rel=\"{JSONLD_CONTEXT_REL}\"; type=\"application/ld+json\"")
}

/// A response builder with the content type and the context link set.
pub fn builder(status: StatusCode, media: MediaType, ctx: &ActiveContext) -> HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.content_type(media.as_str());
    if media != MediaType::JsonLd {
        b.insert_header(("Link", link_header(ctx)));
    }
    b
}

/// Adds the @context member to a body object when writing JSON-LD.
pub fn with_context(mut obj: Map<String, Value>, media: MediaType, ctx: &ActiveContext) -> Value {
    if media == MediaType::JsonLd {
        obj.insert("@context".into(), context_value(ctx));
    }
    Value::Object(obj)
}

pub fn entity(e: &Entity, ctx: &ActiveContext, opts: &RenderOptions, media: MediaType) -> Value {
    with_context(render::render_entity(e, ctx, opts), media, ctx)
}

pub fn json(
    status: StatusCode,
    media: MediaType,
    ctx: &ActiveContext,
    body: &Value,
) -> Result<HttpResponse> {
    let text = serde_json::to_string(body).map_err(NgsiError::internal)?;
    Ok(builder(status, media, ctx).body(text))
}

/// An entity as a GeoJSON Feature (clause 4.5.17): the chosen GeoProperty is the
/// geometry, the rest of the entity goes in `properties`.
pub fn geojson_feature(
    e: &Entity,
    ctx: &ActiveContext,
    opts: &RenderOptions,
    geometry_property: &str,
) -> Value {
    let mut props = render::render_entity(e, ctx, opts);
    let id = props.remove("id").unwrap_or(Value::Null);
    // The default instance (no datasetId) is the geometry when there are several.
    let geometry = e
        .attrs
        .get(&ctx.expand(geometry_property))
        .and_then(|instances| {
            instances
                .iter()
                .find(|a| !a.contains_key("datasetId"))
                .or(instances.first())
        })
        .and_then(|a| a.get("value"))
        .filter(|v| v.is_object())
        .cloned()
        .unwrap_or(Value::Null);
    serde_json::json!({ "id": id, "type": "Feature", "geometry": geometry, "properties": props, "@context": context_value(ctx) })
}

/// Features in a collection share the collection's @context.
pub fn geojson_collection(features: Vec<Value>, ctx: &ActiveContext) -> Value {
    let features: Vec<Value> = features
        .into_iter()
        .map(|mut f| {
            if let Some(o) = f.as_object_mut() {
                o.remove("@context");
            }
            f
        })
        .collect();
    serde_json::json!({ "type": "FeatureCollection", "features": features, "@context": context_value(ctx) })
}

/// Drops the @context of a GeoJSON body when the client asked for `Prefer: body=json`.
pub fn geojson_context_preference(mut body: Value, json_body: bool) -> Value {
    if json_body {
        if let Some(o) = body.as_object_mut() {
            o.remove("@context");
        }
    }
    body
}
