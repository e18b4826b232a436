//! Published datasets for open-data portals: `/datasets/{name}.csv|.geojson|.json`
//! (whole files, streamed, with ETag/Last-Modified and 304s) and the DCAT-AP catalogue
//! of the public ones at `/datasets/data.json`. Outside the NGSI-LD prefix; the tenant
//! comes from `NGSILD-Tenant` or `?tenant=`, a key from `X-API-Key`,
//! `Authorization: Apikey <key>` or `?apikey=`.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::admin::{stream, Job};
use super::{extract, State};
use crate::datasets::{self, validator, Dataset};
use crate::error::{ErrorKind, NgsiError, Result};
use crate::flat::{self, FlatFormat};
use crate::ngsi::{time, Tenant};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/datasets/data.json", web::get().to(catalogue))
        .route("/datasets/{file}", web::get().to(serve));
}

fn tenant(req: &HttpRequest, params: &HashMap<String, String>) -> Result<Tenant> {
    match params.get("tenant") {
        Some(t) => Tenant::parse(Some(t)),
        None => extract::tenant(req),
    }
}

fn api_key<'a>(req: &'a HttpRequest, params: &'a HashMap<String, String>) -> Option<&'a str> {
    let h = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    h("X-API-Key")
        .or_else(|| {
            h(header::AUTHORIZATION.as_str()).and_then(|v| {
                v.split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("apikey"))
                    .map(|(_, k)| k)
            })
        })
        .or_else(|| params.get("apikey").map(String::as_str))
        .map(str::trim)
}

fn http_date(broker_time: &str) -> Option<String> {
    time::parse(broker_time)
        .ok()
        .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
}

/// True if the client's copy is current (RFC 9110 13.1.2: If-None-Match wins).
fn not_modified(req: &HttpRequest, etag: &str, last_modified: &str) -> bool {
    let h = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(inm) = h(header::IF_NONE_MATCH.as_str()) {
        return inm
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag);
    }
    match (
        h(header::IF_MODIFIED_SINCE.as_str()),
        time::parse(last_modified),
    ) {
        (Some(ims), Ok(last)) => chrono::DateTime::parse_from_rfc2822(ims)
            .is_ok_and(|since| last.timestamp() <= since.timestamp()),
        _ => false,
    }
}

async fn serve(state: State, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse> {
    let params = extract::query_params(&req, &["tenant", "apikey"])?;
    let tenant = tenant(&req, &params)?;
    let file = path.into_inner();
    let (name, ext) = file.rsplit_once('.').ok_or_else(|| {
        NgsiError::not_found(format!(
            "no dataset file '{file}': use {file}.csv, .geojson or .json"
        ))
    })?;
    let (_, ds) = datasets::find(&state.store, &tenant, name).await?;
    let format = ds.format_for(ext).ok_or_else(|| {
        NgsiError::not_found(format!(
            "dataset '{name}' is served as .csv, .geojson or .json"
        ))
    })?;
    if !ds.public {
        match api_key(&req, &params) {
            None => {
                return Err(NgsiError::new(
                    ErrorKind::Unauthorized,
                    format!("dataset '{name}' needs an API key (X-API-Key, Authorization: Apikey, or ?apikey=)"),
                ))
            }
            Some(k) if !ds.accepts(k) => {
                return Err(NgsiError::new(
                    ErrorKind::Forbidden,
                    format!("this key does not open dataset '{name}'"),
                ))
            }
            Some(_) => {}
        }
    }
    let (layer, window_start) = layer(&state, &ds, format, tenant).await?;
    let extra = format!("{}|{}|{ext}|{window_start}", ds.entity_id, ds.modified_at);
    let v = validator::compute(&state.store, &layer, &extra).await?;
    let last = v.last_modified.max(ds.modified_at.clone());
    let fresh = not_modified(&req, &v.etag, &last);
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, v.etag.clone()))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if let Some(d) = http_date(&last) {
        res.insert_header((header::LAST_MODIFIED, d));
    }
    if fresh {
        return Ok(res.finish());
    }
    Ok(res
        .content_type(format.content_type())
        .streaming(stream(state.store.clone(), Job::Layer(Box::new(layer)))))
}

/// What a dataset holds, as a layer request; and the start of its history window
/// (rounded down to the hour, so the content, and its ETag, hold still within the hour).
async fn layer(
    state: &State,
    ds: &Dataset,
    format: FlatFormat,
    tenant: Tenant,
) -> Result<(flat::FlatRequest, String)> {
    let mut params: HashMap<String, String> = url::form_urlencoded::parse(ds.query.as_bytes())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut window_start = String::new();
    if let (Some(w), FlatFormat::CsvHistory) = (ds.window, format) {
        let now = chrono::Utc::now().timestamp_micros();
        let hour = 3_600_000_000i64;
        let span = w.micros + i64::from(w.months) * 30 * 24 * hour;
        let start = (now - span).div_euclid(hour) * hour;
        window_start = time::from_micros(start);
        params.insert("timerel".into(), "after".into());
        params.insert("timeAt".into(), window_start.clone());
        params.remove("endTimeAt");
    }
    let ctx = state
        .contexts
        .resolve(ds.context.clone().map(Value::String).as_ref())
        .await?;
    let layer = flat::request(format, tenant, params, ctx, &ds.name)?;
    Ok((layer, window_start))
}

/// The DCAT-AP catalogue of the tenant's public datasets.
async fn catalogue(state: State, req: HttpRequest) -> Result<HttpResponse> {
    let params = extract::query_params(&req, &["tenant"])?;
    let tenant = tenant(&req, &params)?;
    let base = format!("{}/datasets", state.config.public_url());
    let suffix = if tenant.is_default() {
        String::new()
    } else {
        format!("?tenant={}", tenant.as_str())
    };
    let mut entries = Vec::new();
    for (_, d) in datasets::all(&state.store, &tenant).await? {
        let Some(d) = d.filter(|d| d.public) else {
            continue;
        };
        let primary = d.format.extension();
        let distributions: Vec<Value> = [primary, "geojson", "json"]
            .iter()
            .enumerate()
            .filter(|(i, ext)| *i == 0 || **ext != primary)
            .filter_map(|(_, ext)| d.format_for(ext).map(|f| (ext, f)))
            .map(|(ext, f)| {
                let url = format!("{base}/{}.{ext}{suffix}", d.name);
                json!({
                    "@type": "dcat:Distribution",
                    "dcat:accessURL": {"@id": url},
                    "dcat:downloadURL": {"@id": url},
                    "dcat:mediaType": f.content_type().split(';').next().unwrap_or_default(),
                    "dct:format": ext.to_uppercase(),
                })
            })
            .collect();
        entries.push(json!({
            "@id": d.entity_id,
            "@type": "dcat:Dataset",
            "dct:identifier": d.name,
            "dct:title": d.title.clone().unwrap_or_else(|| d.name.clone()),
            "dct:description": d.description.clone().unwrap_or_default(),
            "dcat:keyword": d.keywords,
            "dct:modified": d.modified_at,
            "dct:accessRights": {"@id": "http://publications.europa.eu/resource/authority/access-right/PUBLIC"},
            "dcat:distribution": distributions,
        }));
    }
    Ok(HttpResponse::Ok()
        .content_type("application/ld+json")
        .json(json!({
            "@context": {
                "dcat": "http://www.w3.org/ns/dcat#",
                "dct": "http://purl.org/dc/terms/",
            },
            "@id": format!("{base}/data.json{suffix}"),
            "@type": "dcat:Catalog",
            "dct:title": "Calanque published datasets",
            "dcat:dataset": entries,
        })))
}
