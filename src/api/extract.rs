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

/// Chooses the response media type from `Accept` (RFC 9110 5.3.2): the highest weight
/// wins, a specific entry overrides a wildcard (so `q=0` excludes), and ties go to the
/// order NGSI-LD lists (6.3.4): JSON, then JSON-LD, then GeoJSON.
pub fn accept(req: &HttpRequest, geo_allowed: bool) -> Result<MediaType> {
    let Some(raw) = header_str(req.headers(), ACCEPT.as_str())? else {
        return Ok(MediaType::Json);
    };
    let mut entries: Vec<(String, f32)> = Vec::new();
    for item in raw.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if media.is_empty() {
            continue;
        }
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        entries.push((media, q));
    }
    let weight = |ours: &str| -> f32 {
        let exact = entries.iter().find(|(m, _)| m == ours).map(|(_, q)| *q);
        exact.unwrap_or_else(|| {
            entries
                .iter()
                .filter(|(m, _)| m == "*/*" || m == "application/*")
                .map(|(_, q)| *q)
                .fold(0.0, f32::max)
        })
    };
    let mut best: Option<(MediaType, f32)> = None;
    for media in [MediaType::Json, MediaType::JsonLd, MediaType::GeoJson] {
        if media == MediaType::GeoJson && !geo_allowed {
            continue;
        }
        let q = weight(media.as_str());
        if q > 0.0 && best.is_none_or(|(_, bq)| q > bq) {
            best = Some((media, q));
        }
    }
    best.map(|(m, _)| m).ok_or_else(|| {
        NgsiError::new(
            ErrorKind::NotAcceptable,
            format!("cannot produce any of '{raw}': use application/json, application/ld+json or application/geo+json"),
        )
    })
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
    /// The body object, its @context taken out.
    pub value: Map<String, Value>,
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

/// A JSON body as sent, with its media type and the Link context, before any @context
/// is looked at (batches resolve one per entity).
pub struct RawBody {
    pub value: Value,
    pub media: MediaType,
    pub link: Option<String>,
}

/// A JSON body (application/json or application/ld+json) read under the size cap,
/// without any @context processing.
pub async fn plain_json_body(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(Value, MediaType)> {
    let media = content_type(req)?;
    let bytes = body_bytes(state, payload).await?;
    if bytes.is_empty() {
        return Err(NgsiError::invalid("the request body is empty"));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| NgsiError::invalid(format!("the body is not valid JSON: {e}")))?;
    Ok((value, media))
}

pub async fn raw_json_body(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<RawBody> {
    let (value, media) = plain_json_body(state, req, payload).await?;
    let link = link_context(req)?;
    if media == MediaType::JsonLd && link.is_some() {
        return Err(NgsiError::bad_data(
            "with Content-Type application/ld+json the @context goes in the body, not in a Link header",
        ));
    }
    Ok(RawBody { value, media, link })
}

/// Takes the @context out of one body object and resolves the context that applies to
/// it, by the rules of the Content-Type (clause 6.3.5).
pub async fn object_context(
    state: &AppState,
    raw: &RawBody,
    obj: Option<&mut Map<String, Value>>,
) -> Result<Arc<ActiveContext>> {
    let inline = obj.and_then(|o| o.remove("@context"));
    let user = match (raw.media, inline) {
        (MediaType::JsonLd, Some(ctx)) => Some(ctx),
        (MediaType::JsonLd, None) => {
            return Err(NgsiError::bad_data("with Content-Type application/ld+json the body must have an @context"))
        }
        (_, Some(_)) => {
            return Err(NgsiError::bad_data(
                "with Content-Type application/json the @context must come in a Link header, not in the body",
            ))
        }
        (_, None) => raw.link.clone().map(Value::String),
    };
    state.contexts.resolve(user.as_ref()).await
}

pub async fn json_body(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<JsonBody> {
    let mut raw = raw_json_body(state, req, payload).await?;
    // Every endpoint reading its body here takes one JSON object: anything else is a
    // malformed request (InvalidRequest), whatever the @context rules would say of it.
    let Value::Object(mut value) = std::mem::take(&mut raw.value) else {
        return Err(NgsiError::invalid("the body must be a JSON object"));
    };
    let ctx = object_context(state, &raw, Some(&mut value)).await?;
    Ok(JsonBody {
        value,
        ctx,
        content_type: raw.media,
    })
}

/// Query parameters, checked against the names an endpoint accepts.
pub fn query_params(req: &HttpRequest, allowed: &[&str]) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(NgsiError::invalid(format!(
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

/// `Prefer: body=json` (clause 6.3.6): a GeoJSON body without its @context, which the
/// Link header then carries.
pub fn prefers_json_body(req: &HttpRequest) -> bool {
    req.headers()
        .get_all("Prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|p| p.trim().eq_ignore_ascii_case("body=json"))
}
