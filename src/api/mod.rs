//! The HTTP API, one file per API area. Handlers are thin: read the request, call the
//! domain and the store, write the response.

pub mod admin;
pub mod datasets;
pub mod entities;
pub mod entity_operations;
pub mod entity_query;
pub mod extract;
pub mod health;
pub mod join;
pub mod jsonld_contexts;
pub mod metrics;
pub mod problem;
pub mod response;
pub mod source_identity;
pub mod subscriptions;
pub mod temporal;
pub mod types_attributes;

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::config::Config;
use crate::error::{ErrorKind, NgsiError};
use crate::jsonld::ContextResolver;
use crate::store::SharedStore;

pub const BASE: &str = "/ngsi-ld/v1";

pub struct AppState {
    pub started: std::time::Instant,
    /// Identifies this broker (its data): stable across restarts of the same store.
    pub instance_id: String,
    pub store: SharedStore,
    pub contexts: Arc<ContextResolver>,
    pub config: Config,
    /// The subscriptions matched against writes (kept in step with the store).
    pub subscriptions: Arc<crate::notify::SubscriptionIndex>,
}

pub type State = web::Data<AppState>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(health::routes)
        .configure(admin::routes)
        .configure(datasets::routes)
        .configure(metrics::routes)
        .service(
            web::scope(BASE)
                .configure(entities::routes)
                .configure(entity_operations::routes)
                .configure(jsonld_contexts::routes)
                .configure(source_identity::routes)
                .configure(types_attributes::routes)
                .configure(temporal::routes)
                .configure(subscriptions::routes)
                .default_service(web::to(unknown_route)),
        )
        .default_service(web::to(unknown_route));
}

async fn unknown_route(req: HttpRequest) -> Result<HttpResponse, NgsiError> {
    if req.path().contains("//") {
        return Err(NgsiError::bad_data(format!(
            "{} has an empty path segment (a missing id?)",
            req.path()
        )));
    }
    Err(NgsiError::new(
        ErrorKind::ResourceNotFound,
        format!("no resource at {} {}", req.method(), req.path()),
    ))
}

/// A resource exists but not with this method.
pub async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, NgsiError> {
    Err(NgsiError::new(
        ErrorKind::MethodNotAllowed,
        format!("{} is not allowed on {}", req.method(), req.path()),
    ))
}

/// Clients (the ETSI suite among them) write collection URLs with a final '/'; route
/// them as without it. Unlike actix's NormalizePath this keeps '//' (an empty id must
/// stay visible so it gets a 400, not a match on another route).
pub fn trim_trailing_slash<S, B>(mut req: actix_web::dev::ServiceRequest, srv: &S) -> S::Future
where
    S: actix_web::dev::Service<
        actix_web::dev::ServiceRequest,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
{
    let path = req.path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let uri = match req.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_string(),
        };
        if let Ok(uri) = uri.parse::<actix_web::http::Uri>() {
            req.match_info_mut().get_mut().update(&uri);
            req.head_mut().uri = uri;
        }
    }
    srv.call(req)
}

/// Echoes `NGSILD-Tenant` on every response, errors included (clause 6.3.14), and asks
/// for a length on bodies that have neither `Content-Length` nor chunked encoding.
pub fn tenant_and_length<S, B>(
    req: actix_web::dev::ServiceRequest,
    srv: &S,
) -> impl std::future::Future<
    Output = Result<
        actix_web::dev::ServiceResponse<actix_web::body::EitherBody<B>>,
        actix_web::Error,
    >,
>
where
    S: actix_web::dev::Service<
        actix_web::dev::ServiceRequest,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    use actix_web::http::{header, Method};
    let tenant = req.headers().get("NGSILD-Tenant").cloned();
    let has_body_method = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    // Clause 6.3.4: a body without Content-Length (chunked included) gets a bare 411.
    let lengthless = has_body_method && !req.headers().contains_key(header::CONTENT_LENGTH);
    let (early, fut) = if lengthless {
        let bare = req.into_response(actix_web::HttpResponse::LengthRequired().finish());
        (Some(bare.map_into_right_body()), None)
    } else {
        (None, Some(srv.call(req)))
    };
    async move {
        let mut res = match fut {
            Some(fut) => fut.await?.map_into_left_body(),
            None => return early.ok_or_else(|| NgsiError::internal("no response").into()),
        };
        if let Some(t) = tenant {
            res.headers_mut()
                .insert(header::HeaderName::from_static("ngsild-tenant"), t);
        }
        Ok(res)
    }
}
