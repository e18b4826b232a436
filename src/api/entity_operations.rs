//! `/entityOperations`: batch create, upsert, update, delete and merge. Each entity
//! succeeds or fails on its own; a mixed result is a 207 listing each failure.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::extract::{self, query_params, MediaType};
use super::problem::problem_body;
use super::{response, State};
use crate::error::{NgsiError, Result};
use crate::jsonld::ActiveContext;
use crate::ngsi::entity::{parse_body, BodyKind};
use crate::ngsi::ids::validate_uri;
use crate::ngsi::operations::{self, UpdateReport};
use crate::ngsi::{time, Entity};
use crate::store::{Effect, Outcome, WriteOp, WriteResult};

/// Most entities in one batch request.
const MAX_BATCH: usize = 10_000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/entityOperations/create", web::post().to(create))
        .route("/entityOperations/upsert", web::post().to(upsert))
        .route("/entityOperations/update", web::post().to(update))
        .route("/entityOperations/delete", web::post().to(delete))
        .route("/entityOperations/merge", web::post().to(merge))
        .route(
            "/entityOperations/query",
            web::post().to(super::entity_query::query_post),
        );
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Batch {
    Create,
    UpsertReplace,
    UpsertUpdate,
    Update { no_overwrite: bool },
    Merge,
}

async fn create(state: State, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse> {
    query_params(&req, &["local"])?;
    run(state, req, payload, Batch::Create).await
}

async fn upsert(state: State, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse> {
    let params = query_params(&req, &["options", "local"])?;
    let kind = match extract::options(&params).as_slice() {
        [] => Batch::UpsertReplace,
        [o] if o == "replace" => Batch::UpsertReplace,
        [o] if o == "update" => Batch::UpsertUpdate,
        other => {
            return Err(NgsiError::bad_data(format!(
                "options {other:?} do not apply to upsert: use replace or update"
            )))
        }
    };
    run(state, req, payload, kind).await
}

async fn update(state: State, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse> {
    let params = query_params(&req, &["options", "local"])?;
    let no_overwrite = match extract::options(&params).as_slice() {
        [] => false,
        [o] if o == "noOverwrite" => true,
        other => {
            return Err(NgsiError::bad_data(format!(
                "options {other:?} do not apply to update: use noOverwrite"
            )))
        }
    };
    run(state, req, payload, Batch::Update { no_overwrite }).await
}

async fn merge(state: State, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse> {
    query_params(&req, &["local"])?;
    run(state, req, payload, Batch::Merge).await
}

fn items(value: Value) -> Result<Vec<Value>> {
    match value {
        Value::Array(items) if items.is_empty() => Err(NgsiError::bad_data("the batch is empty")),
        Value::Array(items) if items.len() > MAX_BATCH => Err(NgsiError::bad_data(format!(
            "a batch holds at most {MAX_BATCH} entities"
        ))),
        Value::Array(items) => Ok(items),
        _ => Err(NgsiError::bad_data("the body must be a JSON array")),
    }
}

fn prepare(
    obj: Map<String, Value>,
    id: String,
    ctx: &ActiveContext,
    now: &str,
    kind: Batch,
) -> Result<WriteOp> {
    let body_kind = match kind {
        Batch::Merge => BodyKind::Fragment { allow_null: true },
        Batch::Update { .. } => BodyKind::Fragment { allow_null: false },
        _ => BodyKind::Entity,
    };
    let fragment = parse_body(&obj, ctx, now, body_kind)?;
    if id.is_empty() {
        return Err(NgsiError::bad_data("the entity has no id"));
    }
    validate_uri(&id, "entity id")?;
    let now = now.to_string();
    let missing = id.clone();
    Ok(WriteOp::new(id, move |current: Option<Entity>| {
        let not_found = || NgsiError::not_found(format!("entity {missing} not found"));
        match (kind, current) {
            (Batch::Create, Some(_)) => Err(NgsiError::already_exists(format!(
                "entity {missing} already exists"
            ))),
            (Batch::Create | Batch::UpsertReplace | Batch::UpsertUpdate, None) => Ok(Effect::Put(
                Entity::create(fragment.clone(), &now)?,
                UpdateReport::default(),
            )),
            (Batch::UpsertReplace, Some(mut e)) => {
                operations::replace(&mut e, fragment.clone(), &now);
                Ok(Effect::Put(e, UpdateReport::default()))
            }
            (Batch::UpsertUpdate, Some(mut e)) => {
                let report = operations::append(&mut e, fragment.clone(), false, &now);
                Ok(Effect::Put(e, report))
            }
            (Batch::Update { no_overwrite }, Some(mut e)) => {
                let report = operations::append(&mut e, fragment.clone(), no_overwrite, &now);
                Ok(Effect::Put(e, report))
            }
            (Batch::Merge, Some(mut e)) => {
                let report = operations::merge(&mut e, fragment.clone(), &now);
                Ok(Effect::Put(e, report))
            }
            (Batch::Update { .. } | Batch::Merge, None) => Err(not_found()),
        }
    }))
}

fn error_entry(id: &str, e: &NgsiError) -> Value {
    json!({ "entityId": id, "error": problem_body(e.kind, &e.detail) })
}

async fn run(
    state: State,
    req: HttpRequest,
    payload: web::Payload,
    kind: Batch,
) -> Result<HttpResponse> {
    let tenant = extract::tenant(&req)?;
    let mut raw = extract::raw_json_body(&state, &req, payload).await?;
    let items = items(std::mem::take(&mut raw.value))?;
    if items.iter().any(|i| !i.is_object()) {
        return Err(NgsiError::bad_data(
            "every item of the batch must be an entity object (no null)",
        ));
    }
    let now = time::now();
    let mut ids = Vec::with_capacity(items.len());
    let mut slots = Vec::with_capacity(items.len());
    let mut writes = Vec::new();
    let mut last_ctx = None;
    for item in items {
        let Value::Object(mut obj) = item else {
            continue;
        };
        let id = obj
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let prepared = match extract::object_context(&state, &raw, Some(&mut obj)).await {
            Ok(ctx) => {
                let op = prepare(obj, id.clone(), &ctx, &now, kind);
                last_ctx = Some(ctx);
                op
            }
            Err(e) => Err(e),
        };
        match prepared {
            Ok(op) => {
                slots.push(Ok(writes.len()));
                writes.push(op);
            }
            Err(e) => slots.push(Err(e)),
        }
        ids.push(id);
    }
    let ctx = last_ctx.unwrap_or_else(|| state.contexts.core());
    let mut results: Vec<Option<Result<WriteResult>>> = state
        .store
        .write(&tenant, writes)
        .await?
        .into_iter()
        .map(Some)
        .collect();
    let (mut success, mut created, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for (id, slot) in ids.into_iter().zip(slots) {
        let outcome = match slot {
            Ok(i) => results
                .get_mut(i)
                .and_then(Option::take)
                .unwrap_or_else(|| Err(NgsiError::internal("missing batch result"))),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(r) if !r.report.is_complete() => {
                let names: Vec<String> = r
                    .report
                    .not_updated
                    .iter()
                    .map(|(n, _)| ctx.compact(n))
                    .collect();
                let e =
                    NgsiError::bad_data(format!("attributes not updated: {}", names.join(", ")));
                errors.push(error_entry(&id, &e));
            }
            Ok(r) => {
                if r.outcome == Outcome::Created {
                    created.push(id.clone());
                }
                success.push(id);
            }
            Err(e) => errors.push(error_entry(&id, &e)),
        }
    }
    batch_response(kind, success, created, errors, &ctx)
}

fn batch_response(
    kind: Batch,
    success: Vec<String>,
    created: Vec<String>,
    errors: Vec<Value>,
    ctx: &ActiveContext,
) -> Result<HttpResponse> {
    if !errors.is_empty() {
        return response::json(
            StatusCode::MULTI_STATUS,
            MediaType::Json,
            ctx,
            &json!({ "success": success, "errors": errors }),
        );
    }
    match kind {
        Batch::Create => response::json(StatusCode::CREATED, MediaType::Json, ctx, &json!(success)),
        Batch::UpsertReplace | Batch::UpsertUpdate if !created.is_empty() => {
            response::json(StatusCode::CREATED, MediaType::Json, ctx, &json!(created))
        }
        _ => Ok(HttpResponse::NoContent().finish()),
    }
}

async fn delete(state: State, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse> {
    query_params(&req, &["local"])?;
    let tenant = extract::tenant(&req)?;
    let (value, _) = extract::plain_json_body(&state, &req, payload).await?;
    let ctx = state.contexts.core();
    let mut ids = Vec::new();
    let mut errors = Vec::new();
    let mut ops = Vec::new();
    for item in items(value)? {
        let id = item.as_str().unwrap_or_default().to_string();
        if let Err(e) = validate_uri(&id, "entity id") {
            errors.push(json!({ "entityId": id, "error": problem_body(e.kind, &e.detail) }));
            continue;
        }
        let missing = id.clone();
        ops.push(WriteOp::new(id.clone(), move |current| match current {
            Some(_) => Ok(Effect::Delete),
            None => Err(NgsiError::not_found(format!("entity {missing} not found"))),
        }));
        ids.push(id);
    }
    let results = state.store.write(&tenant, ops).await?;
    let mut success = Vec::new();
    for (id, r) in ids.into_iter().zip(results) {
        match r {
            Ok(_) => success.push(id),
            Err(e) => {
                errors.push(json!({ "entityId": id, "error": problem_body(e.kind, &e.detail) }))
            }
        }
    }
    batch_response(
        Batch::Update {
            no_overwrite: false,
        },
        success,
        Vec::new(),
        errors,
        &ctx,
    )
}
