//! The admin API, outside the NGSI-LD prefix: dump and restore of the whole store,
//! entity rename. Off unless `--admin-token` is set; every call needs
//! `Authorization: Bearer <token>`.

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::{extract, State};
use crate::dump::export::Sink;
use crate::dump::import::Importer;
use crate::error::{ErrorKind, NgsiError, Result};
use crate::ngsi::Tenant;

pub const PREFIX: &str = "/admin";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(PREFIX)
            .route("/export", web::get().to(export))
            .route("/import", web::post().to(import))
            .route("/rename", web::post().to(rename)),
    );
}

/// Checks the bearer token (compared by digest, so timing says nothing of it).
pub fn authorize(state: &State, req: &HttpRequest) -> Result<()> {
    let Some(token) = state.config.admin_token.as_deref() else {
        return Err(NgsiError::not_found(
            "the admin API is off: start the broker with --admin-token to use it",
        ));
    };
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(given) = given else {
        return Err(NgsiError::new(
            ErrorKind::Unauthorized,
            "the admin API needs 'Authorization: Bearer <admin token>'",
        ));
    };
    if Sha256::digest(given.as_bytes()) != Sha256::digest(token.as_bytes()) {
        return Err(NgsiError::new(
            ErrorKind::Forbidden,
            "this token does not grant the admin API",
        ));
    }
    Ok(())
}

/// Lines gathered into chunks of about this size before they go to the client.
const CHUNK: usize = 64 * 1024;

struct ChannelSink {
    tx: tokio::sync::mpsc::Sender<std::result::Result<web::Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChannelSink {
    async fn send(&mut self) -> Result<()> {
        let chunk = web::Bytes::from(std::mem::take(&mut self.buf));
        self.tx
            .send(Ok(chunk))
            .await
            .map_err(|_| NgsiError::bad_data("the client went away"))
    }
}

#[async_trait::async_trait]
impl Sink for ChannelSink {
    async fn line(&mut self, bytes: Vec<u8>) -> Result<()> {
        self.buf.extend_from_slice(&bytes);
        if self.buf.len() >= CHUNK {
            self.send().await?;
        }
        Ok(())
    }
}

/// `GET /admin/export[?tenant=a,b]`: the dump, streamed (all tenants by default).
async fn export(state: State, req: HttpRequest) -> Result<HttpResponse> {
    authorize(&state, &req)?;
    let params = extract::query_params(&req, &["tenant"])?;
    let tenants = match extract::list(&params, "tenant") {
        None => None,
        Some(names) => Some(
            names
                .iter()
                .map(|t| Tenant::parse(Some(t)))
                .collect::<Result<Vec<_>>>()?,
        ),
    };
    // A channel of a few chunks: the export runs no further ahead of the client.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let store = state.store.clone();
    actix_web::rt::spawn(async move {
        let mut sink = ChannelSink {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let done = crate::dump::export::export(&store, tenants, &mut sink).await;
        let done = match done {
            Ok(_) => sink.send().await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            // The client sees a dump without its end record: import refuses it.
            tracing::warn!(error = %e.detail, "export stopped");
            let _ = sink.tx.send(Err(std::io::Error::other(e.detail))).await;
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(body))
}

/// `POST /admin/import[?resume=true]`: restores a dump sent as the body, streamed.
async fn import(state: State, req: HttpRequest, mut payload: web::Payload) -> Result<HttpResponse> {
    authorize(&state, &req)?;
    let params = extract::query_params(&req, &["resume"])?;
    let resume = extract::bool_param(&params, "resume")?;
    let mut importer = Importer::start(state.store.clone(), resume).await?;
    let result = feed(&state, &mut importer, &mut payload).await;
    let result = match result {
        Ok(()) => importer.finish().await,
        Err(e) => {
            importer.abort().await;
            Err(e)
        }
    };
    // What was imported must be seen by the running broker: stored contexts and
    // subscriptions are kept in memory too.
    if result.is_ok() || resume {
        refresh(&state).await?;
    }
    Ok(HttpResponse::Ok().json(result?))
}

async fn feed(state: &State, importer: &mut Importer, payload: &mut web::Payload) -> Result<()> {
    let max_line = state.config.max_body_bytes;
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| NgsiError::bad_data(format!("could not read the request body: {e}")))?;
        let mut rest: &[u8] = &chunk;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            pending.extend_from_slice(&rest[..pos]);
            rest = &rest[pos + 1..];
            let line = std::str::from_utf8(&pending)
                .map_err(|_| NgsiError::bad_data("the dump is not UTF-8"))?;
            importer.line(line.trim_end_matches('\r')).await?;
            pending.clear();
        }
        pending.extend_from_slice(rest);
        if pending.len() > max_line {
            return Err(NgsiError::new(
                ErrorKind::PayloadTooLarge,
                format!("a line of the dump is longer than {max_line} bytes"),
            ));
        }
    }
    if !pending.is_empty() {
        let line = std::str::from_utf8(&pending)
            .map_err(|_| NgsiError::bad_data("the dump is not UTF-8"))?;
        importer.line(line).await?;
    }
    Ok(())
}

async fn refresh(state: &State) -> Result<()> {
    state.contexts.docs.restore(state.store.contexts().await?);
    state.contexts.invalidate();
    state
        .subscriptions
        .load(&state.store, &state.contexts)
        .await
}

/// `POST /admin/rename` with `{"oldId": ..., "newId": ...}` in the `NGSILD-Tenant`
/// tenant: moves the entity, its history and the references to it; answers the record.
async fn rename(state: State, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse> {
    authorize(&state, &req)?;
    let tenant = extract::tenant(&req)?;
    let (body, _) = extract::plain_json_body(&state, &req, payload).await?;
    let id = |key: &str| -> Result<String> {
        let v = body
            .get(key)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| NgsiError::bad_data(format!("the body needs '{key}' (an entity id)")))?;
        crate::ngsi::ids::validate_uri(v, key)?;
        Ok(v.to_string())
    };
    let (old, new) = (id("oldId")?, id("newId")?);
    if old == new {
        return Err(NgsiError::bad_data("oldId and newId are the same"));
    }
    let row = state.store.rename_entity(&tenant, &old, &new).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "oldId": row.old_id, "newId": row.new_id, "renamedAt": row.renamed_at,
        "rewritten": row.rewritten,
    })))
}
