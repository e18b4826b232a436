//! What every handler needs from a request, read once: the tenant, the @context, the
//! representation the client accepts, and the body under the size cap.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::header::{HeaderMap, ACCEPT, CONTENT_TYPE, LINK};
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use super::AppState;
use crate::error::{ErrorKind, NgsiError, Result};
use crate::jsonld::ActiveContext;
use crate::ngsi::Tenant;

pub const JSONLD_CONTEXT_REL: &str = "http://www.w3.org/ns/json-ld#context";

/// The media type a response is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Json,
    JsonLd,
    GeoJson,
}

impl MediaType {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Json => "application/json",
            MediaType::JsonLd => "application/ld+json",
            MediaType::GeoJson => "application/geo+json",
        }
    }
}

pub fn tenant(req: &HttpRequest) -> Result<Tenant> {
    let raw = header_str(req.headers(), "NGSILD-Tenant")?;
    Tenant::parse(raw)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>> {
    match headers.get(name) {
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| NgsiError::bad_data(format!("header {name} is not valid text"))),
        None => Ok(None),
    }
}

/// The context URL a `Link` header names, if any (more than one is an error).
pub fn link_context(req: &HttpRequest) -> Result<Option<String>> {
    let mut found = Vec::new();
    for value in req.headers().get_all(LINK) {
        let text = value
            .to_str()
            .map_err(|_| NgsiError::bad_data("Link header is not valid text"))?;
        for link in split_links(text) {
            let link = link.trim();
            let Some(rest) = link.strip_prefix('<') else {
                continue;
            };
            let Some((url, params)) = rest.split_once('>') else {
                return Err(NgsiError::bad_data(format!(
                    "malformed Link header: {link}"
                )));
            };
            let is_context = params.split(';').any(|p| {
                let p = p.trim();
                p.strip_prefix("rel=")
                    .is_some_and(|r| r.trim_matches('"') == JSONLD_CONTEXT_REL)
            });
            if is_context {
                found.push(url.trim().to_string());
            }
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => {
            let url = found.remove(0);
            url::Url::parse(&url).map_err(|_| {
                NgsiError::bad_data(format!("the JSON-LD context link '{url}' is not a URL"))
            })?;
            Ok(Some(url))
        }
        _ => Err(NgsiError::bad_data(
            "more than one JSON-LD context Link header",
        )),
    }
}

/// Splits a Link header value on the commas between links (not those inside `<...>`).
fn split_links(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The context of a request that has no body: the Link header's, or the core one.
pub async fn context(state: &AppState, req: &HttpRequest) -> Result<Arc<ActiveContext>> {
    let link = link_context(req)?;
    state
        .contexts
        .resolve(link.map(Value::String).as_ref())
        .await
}

/// Chooses the response media type from `Accept`.
pub fn accept(req: &HttpRequest, geo_allowed: bool) -> Result<MediaType> {
    let Some(raw) = header_str(req.headers(), ACCEPT.as_str())? else {
        return Ok(MediaType::Json);
    };
    let mut offers: Vec<(f32, usize, &str)> = Vec::new();
    for (i, item) in raw.split(',').enumerate() {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if q > 0.0 {
            offers.push((q, i, media));
        }
    }
    offers.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.1.cmp(&b.1))
    });
    for (_, _, media) in offers {
        match media.to_ascii_lowercase().as_str() {
            "application/json" | "application/*" | "*/*" => return Ok(MediaType::Json),
            "application/ld+json" => return Ok(MediaType::JsonLd),
            "application/geo+json" if geo_allowed => return Ok(MediaType::GeoJson),
            _ => {}
        }
    }
    Err(NgsiError::new(
        ErrorKind::NotAcceptable,
        format!("cannot produce any of '{raw}': use application/json or application/ld+json"),
    ))
}

/// Reads the body under the configured size cap.
pub async fn body_bytes(state: &AppState, mut payload: web::Payload) -> Result<web::BytesMut> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| NgsiError::bad_data(format!("could not read the request body: {e}")))?;
        if body.len() + chunk.len() > state.config.max_body_bytes {
            return Err(NgsiError::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "the body is larger than {} bytes",
                    state.config.max_body_bytes
                ),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A JSON body with its resolved @context (from the body or the Link header, by the
/// rules of the Content-Type).
pub struct JsonBody {
    pub value: Value,
    pub ctx: Arc<ActiveContext>,
    pub content_type: MediaType,
}

fn content_type(req: &HttpRequest) -> Result<MediaType> {
    let raw = header_str(req.headers(), CONTENT_TYPE.as_str())?.unwrap_or("");
    let media = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" => Ok(MediaType::Json),
        "application/ld+json" => Ok(MediaType::JsonLd),
        "application/merge-patch+json" => Ok(MediaType::Json),
        "" => Err(NgsiError::new(ErrorKind::UnsupportedMediaType, "Content-Type is missing: use application/json or application/ld+json")),
        other => Err(NgsiError::new(
            ErrorKind::UnsupportedMediaType,
            format!("Content-Type '{other}' is not supported: use application/json or application/ld+json"),
        )),
    }
}

pub async fn json_body(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<JsonBody> {
    let media = content_type(req)?;
    let bytes = body_bytes(state, payload).await?;
    if bytes.is_empty() {
        return Err(NgsiError::invalid("the request body is empty"));
    }
    let mut value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| NgsiError::invalid(format!("the body is not valid JSON: {e}")))?;
    let link = link_context(req)?;
    let body_ctx = take_contexts(&mut value, media)?;
    let user_ctx = match media {
        MediaType::JsonLd => {
            if link.is_some() {
                return Err(NgsiError::bad_data(
                    "with Content-Type application/ld+json the @context goes in the body, not in a Link header",
                ));
            }
            Some(body_ctx.ok_or_else(|| {
                NgsiError::bad_data(
                    "with Content-Type application/ld+json the body must have an @context",
                )
            })?)
        }
        _ => link.map(Value::String),
    };
    let ctx = state.contexts.resolve(user_ctx.as_ref()).await?;
    Ok(JsonBody {
        value,
        ctx,
        content_type: media,
    })
}

/// Removes the @context member(s) of a body (one object, or each item of an array) and
/// returns it; every item of an array must agree.
fn take_contexts(value: &mut Value, media: MediaType) -> Result<Option<Value>> {
    let take = |obj: &mut Map<String, Value>| -> Result<Option<Value>> {
        let ctx = obj.remove("@context");
        if media == MediaType::Json && ctx.is_some() {
            return Err(NgsiError::bad_data(
                "with Content-Type application/json the @context must come in a Link header, not in the body",
            ));
        }
        Ok(ctx)
    };
    match value {
        Value::Object(obj) => take(obj),
        Value::Array(items) => {
            let mut found: Option<Value> = None;
            for item in items.iter_mut() {
                if let Value::Object(obj) = item {
                    match (take(obj)?, &found) {
                        (Some(c), None) => found = Some(c),
                        (None, _) if media == MediaType::JsonLd => {
                            return Err(NgsiError::bad_data(
                                "every entity of an application/ld+json batch needs an @context",
                            ))
                        }
                        _ => {}
                    }
                }
            }
            Ok(found)
        }
        _ => Ok(None),
    }
}

/// Query parameters, checked against the names an endpoint accepts.
pub fn query_params(req: &HttpRequest, allowed: &[&str]) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(NgsiError::bad_data(format!(
                "unknown query parameter '{k}'; this endpoint accepts: {}",
                allowed.join(", ")
            )));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(NgsiError::bad_data(format!(
                "query parameter '{k}' is given twice"
            )));
        }
    }
    Ok(out)
}

/// A comma-separated list parameter.
pub fn list(params: &HashMap<String, String>, name: &str) -> Option<Vec<String>> {
    params.get(name).map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

/// The `options` (and `format`) flags of a request.
pub fn options(params: &HashMap<String, String>) -> Vec<String> {
    let mut opts = list(params, "options").unwrap_or_default();
    if let Some(f) = params.get("format") {
        opts.push(f.clone());
    }
    opts
}

pub fn bool_param(params: &HashMap<String, String>, name: &str) -> Result<bool> {
    match params.get(name).map(String::as_str) {
        None => Ok(false),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(NgsiError::bad_data(format!(
            "{name} must be true or false, not '{other}'"
        ))),
    }
}
