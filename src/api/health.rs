//! Operational endpoints outside the NGSI-LD API: health, version, the OpenAPI document.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::State;

const OPENAPI: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/docs/openapi/ngsi-ld-api-1.8.1.patched.yaml"
));

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/version", web::get().to(version))
        .route("/openapi.yaml", web::get().to(openapi));
}

async fn health(state: State) -> HttpResponse {
    match state
        .store
        .tenant_exists(&crate::ngsi::Tenant::default_tenant())
        .await
    {
        Ok(_) => HttpResponse::Ok().json(json!({ "status": "ok" })),
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "unavailable", "detail": e.detail })),
    }
}

async fn version() -> HttpResponse {
    HttpResponse::Ok().json(
        json!({ "name": "calanque", "version": env!("CARGO_PKG_VERSION"), "ngsi-ld": "1.8.1" }),
    )
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(OPENAPI)
}
