//! `/subscriptions` (NGSI-LD 1.8 clause 5.8): create, retrieve, query, update, delete.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::extract::{self, query_params};
use super::{response, State};
use crate::error::{ErrorKind, NgsiError, Result};
use crate::jsonld::CORE_CONTEXT_URL;
use crate::jsonld::{documents::short_id, ActiveContext, ContextKind, ContextRecord};
use crate::ngsi::ids::validate_uri;
use crate::ngsi::subscription::{self, Subscription};
use crate::ngsi::{time, Tenant};
use crate::store::SubscriptionRecord;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/subscriptions")
            .route(web::post().to(create))
            .route(web::get().to(list))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/subscriptions/{id}")
            .route(web::get().to(retrieve))
            .route(web::patch().to(update))
            .route(web::delete().to(delete))
            .default_service(web::to(super::method_not_allowed)),
    );
}

const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1000;

fn subscription_id(raw: &str) -> Result<String> {
    validate_uri(raw, "subscription id")?;
    Ok(raw.to_string())
}

fn not_found(id: &str) -> NgsiError {
    NgsiError::not_found(format!("subscription {id} not found"))
}

/// The URL standing for the context a request used: the URL itself, or, for an inline
/// context, a hosted copy (an ImplicitlyCreated context, clause 5.13.2).
async fn context_url(state: &State, ctx: &ActiveContext) -> Result<String> {
    let source = match &ctx.source {
        Value::Array(items) if items.len() == 1 => &items[0],
        other => other,
    };
    match source {
        Value::String(url) => Ok(url.clone()),
        Value::Null => Ok(CORE_CONTEXT_URL.to_string()),
        other => {
            let local_id = short_id(&other.to_string());
            let url = state.contexts.docs.hosted_url(&local_id);
            if state.contexts.docs.find(&local_id).is_none() {
                let record = ContextRecord {
                    tenant: None,
                    url: url.clone(),
                    local_id,
                    kind: ContextKind::ImplicitlyCreated,
                    document: json!({ "@context": other }),
                    created_at: chrono::Utc::now(),
                };
                state.store.put_context(record.clone()).await?;
                state.contexts.docs.insert(record);
            }
            Ok(url)
        }
    }
}

/// A `jsonldContext` must be retrievable now (notifications are compacted with it):
/// LdContextNotAvailable otherwise, even for a URL that looks like a core context.
async fn usable_context(state: &State, url: &str) -> Result<String> {
    state.contexts.docs.load(url).await?;
    state.contexts.resolve(Some(&json!(url))).await?;
    Ok(url.to_string())
}

fn from_record(record: &SubscriptionRecord) -> Result<Subscription> {
    serde_json::from_value(record.doc.clone()).map_err(NgsiError::internal)
}

fn to_doc(sub: &Subscription) -> Result<Value> {
    serde_json::to_value(sub).map_err(NgsiError::internal)
}

async fn create(state: State, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse> {
    let tenant = extract::tenant(&req)?;
    query_params(&req, &[])?;
    let body = extract::json_body(&state, &req, payload).await?;
    let obj = body.value;
    let now = time::now();
    let mut sub = subscription::parse(&obj, &body.ctx, &now)?;
    sub.request_context = context_url(&state, &body.ctx).await?;
    sub.jsonld_context = match obj.get("jsonldContext").and_then(Value::as_str) {
        Some(url) => usable_context(&state, url).await?,
        None => sub.request_context.clone(),
    };
    let entry = state
        .subscriptions
        .prepare(&tenant, sub.clone(), &state.contexts)
        .await?;
    state
        .store
        .create_subscription(&tenant, &sub.id, to_doc(&sub)?)
        .await?;
    state.subscriptions.insert(entry);
    Ok(HttpResponse::Created()
        .insert_header((
            "Location",
            format!("{}/subscriptions/{}", super::BASE, sub.id),
        ))
        .finish())
}

fn sys_attrs(params: &HashMap<String, String>) -> Result<bool> {
    let mut sys = false;
    for o in extract::options(params) {
        match o.as_str() {
            "sysAttrs" => sys = true,
            "normalized" | "keyValues" | "concise" | "simplified" => {}
            other => return Err(NgsiError::bad_data(format!("unknown option '{other}'"))),
        }
    }
    Ok(sys)
}

async fn retrieve(state: State, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse> {
    let tenant = extract::tenant(&req)?;
    let params = query_params(&req, &["options", "format"])?;
    let id = subscription_id(&path.into_inner())?;
    let media = extract::accept(&req, false)?;
    let ctx = extract::context(&state, &req).await?;
    let record = state
        .store
        .get_subscription(&tenant, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let sub = from_record(&record)?;
    let body = subscription::render(
        &sub,
        &record.status,
        &ctx,
        &time::now(),
        sys_attrs(&params)?,
    );
    let text = serde_json::to_string(&response::with_context(body, media, &ctx))
        .map_err(NgsiError::internal)?;
    let mut b = response::builder(StatusCode::OK, media, &ctx);
    if let Some(version) = preferred_version(&req) {
        b.insert_header(("Preference-Applied", format!("ngsi-ld={version}")));
    }
    Ok(b.body(text))
}

/// The `ngsi-ld=<version>` preference of a `Prefer` header (RFC 7240), if any. A
/// subscription has no version fallbacks (4.3.6.8): it is served as it is, and the
/// preference is acknowledged.
fn preferred_version(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all("Prefer")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|pref| {
            let first = pref.split(';').next()?.trim();
            let (name, value) = first.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("ngsi-ld")
                .then(|| value.trim().trim_matches('"').to_string())
        })
}

fn number_param(params: &HashMap<String, String>, name: &str, default: usize) -> Result<usize> {
    match params.get(name) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().map_err(|_| {
            NgsiError::bad_data(format!("{name} must be a non-negative integer, not '{v}'"))
        }),
    }
}

async fn list(state: State, req: HttpRequest) -> Result<HttpResponse> {
    let tenant = extract::tenant(&req)?;
    let params = query_params(&req, &["limit", "offset", "count", "options", "format"])?;
    let media = extract::accept(&req, false)?;
    let ctx = extract::context(&state, &req).await?;
    let limit = number_param(&params, "limit", DEFAULT_LIMIT)?;
    let offset = number_param(&params, "offset", 0)?;
    let count = extract::bool_param(&params, "count")?;
    let sys = sys_attrs(&params)?;
    if limit > MAX_LIMIT {
        return Err(NgsiError::new(
            ErrorKind::TooManyResults,
            format!("limit must not exceed {MAX_LIMIT}"),
        ));
    }
    if limit == 0 && !count {
        return Err(NgsiError::bad_data(
            "limit=0 is only allowed with count=true",
        ));
    }
    ensure_tenant(&state, &tenant).await?;
    let (records, total) = state
        .store
        .list_subscriptions(&tenant, limit, offset)
        .await?;
    let now = time::now();
    let items = records
        .iter()
        .map(|r| {
            let sub = from_record(r)?;
            Ok(response::with_context(
                subscription::render(&sub, &r.status, &ctx, &now, sys),
                media,
                &ctx,
            ))
        })
        .collect::<Result<Vec<Value>>>()?;
    let text = serde_json::to_string(&items).map_err(NgsiError::internal)?;
    let mut b = response::builder(StatusCode::OK, media, &ctx);
    if count {
        b.insert_header(("NGSILD-Results-Count", total.to_string()));
    }
    // Paging links (clause 5.5.9).
    let page_link = |offset: usize, rel: &str| {
        format!(
            "<{}/subscriptions?limit={limit}&offset={offset}>;rel=\"{rel}\";type=\"{}\"",
            super::BASE,
            media.as_str()
        )
    };
    if offset > 0 && limit > 0 {
        b.append_header(("Link", page_link(offset.saturating_sub(limit), "prev")));
    }
    if limit > 0 && ((offset + limit) as u64) < total {
        b.append_header(("Link", page_link(offset + limit, "next")));
    }
    Ok(b.body(text))
}

async fn ensure_tenant(state: &State, tenant: &Tenant) -> Result<()> {
    if state.store.tenant_exists(tenant).await? {
        Ok(())
    } else {
        Err(NgsiError::new(
            ErrorKind::NonexistentTenant,
            format!("tenant '{}' does not exist", tenant.as_str()),
        ))
    }
}

async fn update(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let tenant = extract::tenant(&req)?;
    query_params(&req, &[])?;
    let id = subscription_id(&path.into_inner())?;
    let body = extract::json_body(&state, &req, payload).await?;
    let fragment = body.value;
    if fragment.is_empty() {
        return Err(NgsiError::bad_data("the subscription fragment is empty"));
    }
    let record = state
        .store
        .get_subscription(&tenant, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let current = from_record(&record)?;
    let now = time::now();
    let mut next = subscription::patch(&current, &fragment, &body.ctx, &now)?;
    if fragment.contains_key("q") {
        next.request_context = context_url(&state, &body.ctx).await?;
    }
    if let Some(url) = fragment.get("jsonldContext").and_then(Value::as_str) {
        next.jsonld_context = usable_context(&state, url).await?;
    }
    let entry = state
        .subscriptions
        .prepare(&tenant, next.clone(), &state.contexts)
        .await?;
    if !state
        .store
        .update_subscription(&tenant, &id, to_doc(&next)?)
        .await?
    {
        return Err(not_found(&id));
    }
    state.subscriptions.insert(entry);
    Ok(HttpResponse::NoContent().finish())
}

async fn delete(state: State, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse> {
    let tenant = extract::tenant(&req)?;
    query_params(&req, &[])?;
    let id = subscription_id(&path.into_inner())?;
    if !state.store.delete_subscription(&tenant, &id).await? {
        return Err(not_found(&id));
    }
    state.subscriptions.remove(&tenant, &id);
    Ok(HttpResponse::NoContent().finish())
}
