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
            .route("/rename", web::post().to(rename))
            .route("/datasets/{name}/keys", web::post().to(new_key)),
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

/// Parameters of a flat/GIS export (NGSI-LD query parameters, `attrs`, `tz`).
const LAYER_PARAMS: &[&str] = &[
    "format",
    "type",
    "id",
    "idPattern",
    "q",
    "scopeQ",
    "georel",
    "geometry",
    "coordinates",
    "geoproperty",
    "attrs",
    "timerel",
    "timeAt",
    "endTimeAt",
    "timeproperty",
    "tz",
];

/// `GET /admin/export[?tenant=a,b]`: the dump, streamed (all tenants by default).
/// With `format=csv-history|csv|geojson|shapefile|kml`: one layer of the request's
/// tenant (`NGSILD-Tenant`), names compacted with its @context (`Link`).
async fn export(state: State, req: HttpRequest) -> Result<HttpResponse> {
    authorize(&state, &req)?;
    let format = url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "format")
        .map(|(_, v)| v.to_string());
    if let Some(f) = format.filter(|f| f != "dump") {
        return export_layer(&state, &req, &f).await;
    }
    let params = extract::query_params(&req, &["tenant", "format"])?;
    let tenants = match extract::list(&params, "tenant") {
        None => None,
        Some(names) => Some(
            names
                .iter()
                .map(|t| Tenant::parse(Some(t)))
                .collect::<Result<Vec<_>>>()?,
        ),
    };
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(stream(state.store.clone(), Job::Dump(tenants))))
}

async fn export_layer(state: &State, req: &HttpRequest, format: &str) -> Result<HttpResponse> {
    let format = crate::flat::FlatFormat::parse(format)?;
    let mut params = extract::query_params(req, LAYER_PARAMS)?;
    params.remove("format");
    let tenant = extract::tenant(req)?;
    let ctx = extract::context(state, req).await?;
    let name = params
        .get("type")
        .cloned()
        .unwrap_or_else(|| "export".into());
    let layer = crate::flat::request(format, tenant, params, ctx, &name)?;
    let file = format!("{}.{}", name.replace(['"', '\\'], ""), format.extension());
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{file}\""),
        ))
        .streaming(stream(state.store.clone(), Job::Layer(Box::new(layer)))))
}

/// What a streamed response writes.
pub enum Job {
    Dump(Option<Vec<Tenant>>),
    Layer(Box<crate::flat::FlatRequest>),
}

/// Runs a writer into a response body through a channel of a few chunks, so it runs no
/// further ahead of the client than that. A failure cuts the body short (a dump then
/// lacks its end record, which import detects).
pub fn stream(
    store: crate::store::SharedStore,
    job: Job,
) -> impl futures_util::Stream<Item = std::result::Result<web::Bytes, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    actix_web::rt::spawn(async move {
        let mut sink = ChannelSink {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let done = match job {
            Job::Dump(tenants) => crate::dump::export::export(&store, tenants, &mut sink)
                .await
                .map(|_| ()),
            Job::Layer(layer) => crate::flat::export(&store, &layer, &mut sink)
                .await
                .map(|_| ()),
        };
        let done = match done {
            Ok(()) => sink.send().await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            tracing::warn!(error = %e.detail, "export stopped");
            let _ = sink.tx.send(Err(std::io::Error::other(e.detail))).await;
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
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

/// `POST /admin/datasets/{name}/keys`: a new read-only API key for one dataset of the
/// `NGSILD-Tenant` tenant. The key is shown once; the broker keeps only its hash.
async fn new_key(state: State, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse> {
    use crate::store::{Effect, WriteOp};
    authorize(&state, &req)?;
    let tenant = extract::tenant(&req)?;
    let name = path.into_inner();
    let (entity, _) = crate::datasets::find(&state.store, &tenant, &name).await?;
    let key = crate::datasets::new_key();
    let hash = crate::datasets::hash_key(&key);
    let op = WriteOp::new(entity.id.clone(), move |current| {
        let mut e = current.ok_or_else(|| NgsiError::not_found("the dataset was deleted"))?;
        crate::datasets::add_key_hash(&mut e, hash.clone());
        Ok(Effect::Put(e, Default::default()))
    });
    for r in state.store.write(&tenant, vec![op]).await? {
        r?;
    }
    Ok(HttpResponse::Created().json(serde_json::json!({"dataset": name, "apiKey": key})))
}
