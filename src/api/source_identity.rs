//! `/info/sourceIdentity` (NGSI-LD 1.9 clause 5.15.1): who this broker is, per tenant.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{extract, State};
use crate::error::Result;
use crate::ngsi::time;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/info/sourceIdentity", web::get().to(source_identity));
}

async fn source_identity(state: State, req: HttpRequest) -> Result<HttpResponse> {
    extract::query_params(&req, &[])?;
    let tenant = extract::tenant(&req)?;
    let media = extract::accept(&req, false)?;
    let uptime = state.started.elapsed().as_secs_f64();
    // One alias per tenant, so federated brokers can tell this broker's tenants apart.
    let alias = if tenant.is_default() {
        state.instance_id.clone()
    } else {
        format!("{}:{}", state.instance_id, tenant.as_str())
    };
    let body = json!({
        "id": format!("urn:ngsi-ld:ContextSourceIdentity:{}", state.instance_id),
        "type": "ContextSourceIdentity",
        "contextSourceExtras": { "broker": "calanque", "version": env!("CARGO_PKG_VERSION") },
        "contextSourceUptime": format!("PT{uptime:.3}S"),
        "contextSourceTimeAt": time::now(),
        "contextSourceAlias": alias,
    });
    let ctx = state.contexts.core();
    super::response::json(
        actix_web::http::StatusCode::OK,
        media,
        &ctx,
        &super::response::with_context(body.as_object().cloned().unwrap_or_default(), media, &ctx),
    )
}
