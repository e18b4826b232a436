//! `/jsonldContexts`: contexts the broker hosts for its clients, and the remote ones it
//! cached (NGSI-LD 1.8 clause 5.13).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::extract::{self, bool_param, query_params};
use super::State;
use crate::error::{NgsiError, Result};
use crate::jsonld::{
    ContextDocuments, ContextKind, ContextRecord, StoredContext, CORE_CONTEXT_URL,
};
use crate::ngsi::time;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/jsonldContexts")
            .route(web::post().to(add))
            .route(web::get().to(list))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/jsonldContexts/{id:.*}")
            .route(web::get().to(serve))
            .route(web::delete().to(delete))
            .default_service(web::to(super::method_not_allowed)),
    );
}

fn details(c: &StoredContext) -> Value {
    let mut d = json!({
        "URL": c.url,
        "localId": format!("urn:ngsi-ld:jsonldContext:{}", c.local_id),
        "kind": c.kind.as_str(),
        "createdAt": time::format(c.created_at),
    });
    d["numberOfHits"] = json!(c.hits.load(std::sync::atomic::Ordering::Relaxed));
    if let Some(last) = *c.last_usage.read() {
        d["lastUsage"] = json!(time::format(last));
    }
    d
}

fn core_details() -> Value {
    json!({ "URL": CORE_CONTEXT_URL, "localId": "urn:ngsi-ld:jsonldContext:core", "kind": "Cached", "numberOfHits": 0 })
}

async fn add(state: State, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse> {
    query_params(&req, &[])?;
    let (doc, _) = extract::plain_json_body(&state, &req, payload).await?;
    let ctx = doc
        .as_object()
        .and_then(|o| o.get("@context"))
        .ok_or_else(|| NgsiError::invalid("the body must be an object with an @context member"))?;
    let valid_item = |v: &Value| {
        matches!(v, Value::Object(_)) || v.as_str().is_some_and(|s| url::Url::parse(s).is_ok())
    };
    let ok = match ctx {
        Value::Array(items) => !items.is_empty() && items.iter().all(valid_item),
        Value::Object(_) => true,
        _ => false,
    };
    if !ok {
        return Err(NgsiError::bad_data(
            "@context must be an object or an array of URLs and objects",
        ));
    }
    // Check that it processes before hosting it.
    state.contexts.resolve(Some(ctx)).await?;
    let local_id = uuid::Uuid::new_v4().simple().to_string();
    let record = ContextRecord {
        tenant: Some(extract::tenant(&req)?.as_str().to_string()),
        url: state.contexts.docs.hosted_url(&local_id),
        local_id: local_id.clone(),
        kind: ContextKind::Hosted,
        document: json!({ "@context": ctx }),
        created_at: chrono::Utc::now(),
    };
    state.store.put_context(record.clone()).await?;
    state.contexts.docs.insert(record);
    let location = format!("{}/jsonldContexts/{local_id}", super::BASE);
    Ok(HttpResponse::Created()
        .insert_header(("Location", location))
        .finish())
}

async fn list(state: State, req: HttpRequest) -> Result<HttpResponse> {
    let params = query_params(&req, &["details", "kind"])?;
    let with_details = bool_param(&params, "details")?;
    let kind = match params.get("kind") {
        Some(k) => Some(ContextKind::parse(k).ok_or_else(|| {
            NgsiError::bad_data(format!(
                "unknown kind '{k}': use Hosted, Cached or ImplicitlyCreated"
            ))
        })?),
        None => None,
    };
    let mut out = Vec::new();
    if kind.is_none_or(|k| k == ContextKind::Cached) {
        out.push(if with_details {
            core_details()
        } else {
            json!(CORE_CONTEXT_URL)
        });
    }
    let tenant = extract::tenant(&req)?;
    for c in state.contexts.docs.list() {
        if !ContextDocuments::visible_to(&c, tenant.as_str()) {
            continue;
        }
        if kind.is_some_and(|k| k != c.kind) {
            continue;
        }
        out.push(if with_details {
            details(&c)
        } else {
            json!(c.url)
        });
    }
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .json(out))
}

/// The id in the path: a local id, its `urn:ngsi-ld:jsonldContext:` form, or a URL.
fn find(state: &State, req: &HttpRequest, raw: &str) -> Result<std::sync::Arc<StoredContext>> {
    let tenant = extract::tenant(req)?;
    let id = raw
        .strip_prefix("urn:ngsi-ld:jsonldContext:")
        .unwrap_or(raw);
    state
        .contexts
        .docs
        .find(id)
        .filter(|c| ContextDocuments::visible_to(c, tenant.as_str()))
        .ok_or_else(|| NgsiError::not_found(format!("no @context with id {raw}")))
}

fn is_core(raw: &str) -> bool {
    raw == CORE_CONTEXT_URL || raw == "urn:ngsi-ld:jsonldContext:core" || raw == "core"
}

async fn serve(state: State, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse> {
    let params = query_params(&req, &["details"])?;
    let raw = path.into_inner();
    if bool_param(&params, "details")? {
        let body = if is_core(&raw) {
            core_details()
        } else {
            details(&*find(&state, &req, &raw)?)
        };
        return Ok(HttpResponse::Ok()
            .content_type("application/json")
            .json(body));
    }
    if is_core(&raw) {
        let (doc, _) = state.contexts.docs.load(CORE_CONTEXT_URL).await?;
        return Ok(HttpResponse::Ok()
            .content_type("application/json")
            .json(&*doc));
    }
    let c = find(&state, &req, &raw)?;
    Ok(HttpResponse::build(StatusCode::OK)
        .content_type("application/json")
        .json(&*c.document))
}

async fn delete(state: State, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse> {
    let params = query_params(&req, &["reload"])?;
    let reload = bool_param(&params, "reload")?;
    let raw = path.into_inner();
    if is_core(&raw) {
        // The core context is compiled in: "reloading" it is a no-op that succeeds.
        return if reload {
            Ok(HttpResponse::NoContent().finish())
        } else {
            Err(NgsiError::bad_data("the core @context cannot be deleted"))
        };
    }
    let c = match find(&state, &req, &raw) {
        Ok(c) => c,
        Err(_) if reload => {
            return Err(NgsiError::bad_data(format!(
                "no cached @context {raw} to reload"
            )))
        }
        Err(e) => return Err(e),
    };
    if reload {
        if c.kind != ContextKind::Cached {
            return Err(NgsiError::bad_data(
                "only a Cached @context can be reloaded",
            ));
        }
        let doc = state.contexts.docs.fetch(&c.url).await?;
        let record = ContextRecord {
            tenant: c.tenant.clone(),
            local_id: c.local_id.clone(),
            url: c.url.clone(),
            kind: c.kind,
            document: doc,
            created_at: c.created_at,
        };
        state.store.put_context(record.clone()).await?;
        state.contexts.docs.insert(record);
    } else {
        state.store.delete_context(&c.url).await?;
        state.contexts.docs.remove(&c.url);
    }
    state.contexts.invalidate();
    Ok(HttpResponse::NoContent().finish())
}
