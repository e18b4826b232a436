//! The temporal API (`/temporal/entities`, clause 5.6.11 ff. and 5.7.3 ff.): attribute
//! history, time queries and aggregates.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{Map, Value};

use super::entities::ensure_tenant;
use super::extract::{self, list, query_params};
use super::{response, State};
use crate::error::{ErrorKind, NgsiError, Result};
use crate::jsonld::ActiveContext;
use crate::ngsi::attribute::{self, Mode};
use crate::ngsi::entity::parse_types;
use crate::ngsi::ids::validate_uri;
use crate::ngsi::query::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::ngsi::temporal::{render, TemporalEntity, TemporalQuery};
use crate::ngsi::time;
use crate::store::{NewInstance, TemporalSelection};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/temporal/entities")
            .route(web::post().to(create))
            .route(web::get().to(query))
            .default_service(web::to(super::method_not_allowed)),
    )
    .route(
        "/temporal/entityOperations/query",
        web::post().to(query_post),
    )
    .service(
        web::resource("/temporal/entities/{id}")
            .route(web::get().to(retrieve))
            .route(web::delete().to(delete))
            .default_service(web::to(super::method_not_allowed)),
    )
    .route("/temporal/entities/{id}/attrs", web::post().to(add_attrs))
    .route(
        "/temporal/entities/{id}/attrs/{attr}",
        web::delete().to(delete_attr),
    )
    .service(
        web::resource("/temporal/entities/{id}/attrs/{attr}/{instance}")
            .route(web::patch().to(patch_instance))
            .route(web::delete().to(delete_instance))
            .default_service(web::to(super::method_not_allowed)),
    );
}

const TEMPORAL_PARAMS: &[&str] = &[
    "id",
    "type",
    "idPattern",
    "attrs",
    "q",
    "scopeQ",
    "geoQ",
    "georel",
    "geometry",
    "coordinates",
    "geoproperty",
    "timerel",
    "timeAt",
    "endTimeAt",
    "timeproperty",
    "lastN",
    "options",
    "format",
    "aggrMethods",
    "aggrPeriodDuration",
    "limit",
    "offset",
    "count",
    "local",
    "lang",
    "pick",
    "omit",
    "datasetId",
];

/// The instances of a temporal body: every attribute value is one instance or an array.
fn instances_of(
    body: &Map<String, Value>,
    ctx: &ActiveContext,
    now: &str,
) -> Result<Vec<NewInstance>> {
    let mut out = Vec::new();
    for (name, raw) in body {
        if attribute::ENTITY_MEMBERS.contains(&name.as_str()) {
            continue;
        }
        attribute::validate_attribute_name(name, ctx)?;
        let items: Vec<&Value> = match raw {
            Value::Array(items) if !items.is_empty() => items.iter().collect(),
            Value::Array(_) => {
                return Err(NgsiError::bad_data(format!(
                    "attribute '{name}' has no instance"
                )))
            }
            other => vec![other],
        };
        for item in items {
            let body = attribute::parse_instance(name, item, ctx, now, Mode::Create, 0)?;
            let dataset_id = body
                .get("datasetId")
                .and_then(Value::as_str)
                .map(str::to_string);
            out.push(NewInstance {
                attr: ctx.expand(name),
                dataset_id,
                body,
                deleted: false,
            });
        }
    }
    Ok(out)
}

/// The entity a temporal body describes at its latest instants (each attribute's last
/// instance per datasetId): what Smart Data Model validation checks.
fn latest_state(entity: &TemporalEntity, add: &[NewInstance]) -> crate::ngsi::Entity {
    let mut attrs: indexmap::IndexMap<String, Vec<crate::ngsi::attribute::Attribute>> =
        indexmap::IndexMap::new();
    for i in add.iter().filter(|i| !i.deleted) {
        let instances = attrs.entry(i.attr.clone()).or_default();
        instances.retain(|a| crate::ngsi::entity::dataset_id(a) != i.dataset_id.as_deref());
        instances.push(i.body.clone());
    }
    crate::ngsi::Entity {
        id: entity.id.clone(),
        types: entity.types.clone(),
        scope: entity.scope.clone(),
        created_at: entity.created_at.clone(),
        modified_at: entity.modified_at.clone(),
        expires_at: None,
        attrs,
    }
}

fn object(value: Value) -> Result<Map<String, Value>> {
    match value {
        Value::Object(o) => Ok(o),
        _ => Err(NgsiError::invalid("the body must be a JSON object")),
    }
}

async fn create(state: State, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse> {
    let tenant = extract::tenant(&req)?;
    query_params(&req, &["local"])?;
    let body = extract::json_body(&state, &req, payload).await?;
    let obj = object(body.value)?;
    let id = match obj.get("id") {
        Some(Value::String(id)) => {
            validate_uri(id, "entity id")?;
            id.clone()
        }
        _ => return Err(NgsiError::bad_data("the temporal entity needs an id URI")),
    };
    let types = parse_types(
        obj.get("type")
            .ok_or_else(|| NgsiError::bad_data("the temporal entity needs a type"))?,
        &body.ctx,
    )?;
    let now = time::now();
    let add = instances_of(&obj, &body.ctx, &now)?;
    let scope = obj
        .get("scope")
        .and_then(|s| serde_json::from_value::<ScopeValue>(s.clone()).ok())
        .map(ScopeValue::into_vec);
    let entity = TemporalEntity {
        id: id.clone(),
        types,
        scope,
        created_at: now.clone(),
        modified_at: now,
        deleted_at: None,
    };
    state
        .store
        .check_entity(&tenant, &latest_state(&entity, &add))?;
    let created = state.store.temporal_add(&tenant, entity, add).await?;
    if created {
        Ok(HttpResponse::Created()
            .insert_header((
                "Location",
                format!("{}/temporal/entities/{id}", super::BASE),
            ))
            .finish())
    } else {
        Ok(HttpResponse::NoContent().finish())
    }
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ScopeValue {
    One(String),
    Many(Vec<String>),
}

impl ScopeValue {
    fn into_vec(self) -> Vec<String> {
        match self {
            ScopeValue::One(s) => vec![s],
            ScopeValue::Many(v) => v,
        }
    }
}

fn number(params: &HashMap<String, String>, name: &str, default: usize) -> Result<usize> {
    params.get(name).map_or(Ok(default), |v| {
        v.parse().map_err(|_| {
            NgsiError::bad_data(format!("{name} must be a non-negative integer, not '{v}'"))
        })
    })
}

/// The entity selection and paging of a temporal request.
fn selection(params: &HashMap<String, String>, ctx: &ActiveContext) -> Result<TemporalSelection> {
    let limit = number(params, "limit", DEFAULT_LIMIT)?;
    if limit > MAX_LIMIT {
        return Err(NgsiError::new(
            ErrorKind::TooManyResults,
            format!("limit must not exceed {MAX_LIMIT}"),
        ));
    }
    // The entity part is the entity query's (same parameters, same validation).
    let q = super::entity_query::selection(params, ctx)?;
    let types = match &q.types {
        Some(expr) => Some(expr.as_alternatives().ok_or_else(|| {
            NgsiError::unsupported(
                "temporal queries take a list of types (A,B), not ';' combinations",
            )
        })?),
        None => None,
    };
    Ok(TemporalSelection {
        types,
        ids: q.ids,
        id_pattern: q.id_pattern,
        attrs: list(params, "attrs").map(|a| a.iter().map(|n| ctx.expand(n)).collect()),
        limit,
        offset: number(params, "offset", 0)?,
    })
}

async fn respond(
    state: &State,
    req: &HttpRequest,
    params: HashMap<String, String>,
    ctx: std::sync::Arc<ActiveContext>,
    single: Option<String>,
) -> Result<HttpResponse> {
    let tenant = extract::tenant(req)?;
    let media = extract::accept(req, false)?;
    let mut tq = TemporalQuery::parse(&params, &extract::options(&params))?;
    tq.max_instances = Some(state.config.temporal_max_instances);
    let mut sel = selection(&params, &ctx)?;
    // q, scopeQ and geoQ select on the entities' current state (the entity query
    // decides them, with its indexes); the history of the selected entities follows.
    if ["q", "scopeQ", "georel"]
        .iter()
        .any(|k| params.contains_key(*k))
    {
        let mut eq = super::entity_query::selection(&params, &ctx)?;
        eq.limit = usize::MAX;
        let tenant = extract::tenant(req)?;
        ensure_tenant(state, &tenant).await?;
        let ids = state.store.ids(&tenant, &eq).await?;
        sel.ids = Some(match sel.ids.take() {
            Some(wanted) => wanted.into_iter().filter(|i| ids.contains(i)).collect(),
            None => ids,
        });
        if sel.ids.as_ref().is_some_and(Vec::is_empty) && single.is_none() {
            let body = Value::Array(Vec::new());
            return response::json(StatusCode::OK, extract::accept(req, false)?, &ctx, &body);
        }
    }
    if let Some(id) = &single {
        sel.ids = Some(vec![id.clone()]);
        sel.limit = 1;
        sel.offset = 0;
    } else if sel.types.is_none()
        && sel.ids.is_none()
        && sel.id_pattern.is_none()
        && sel.attrs.is_none()
    {
        return Err(NgsiError::bad_data(
            "give at least one of type, id, idPattern or attrs",
        ));
    }
    ensure_tenant(state, &tenant).await?;
    let mut results = state.store.temporal_query(&tenant, &sel, &tq).await?;
    // A query returns the entities that have history in the asked window; a retrieval
    // of one entity with attrs it never had is a 404.
    let window = tq.timerel.is_some() || sel.attrs.is_some();
    if single.is_none()
        && window
        && tq.format != crate::ngsi::temporal::request::TemporalFormat::Aggregated
    {
        results.retain(|r| !r.instances.is_empty());
    }
    if single.is_some()
        && sel.attrs.is_some()
        && results
            .iter()
            .all(|r| r.instances.is_empty() && r.aggregates.is_empty())
    {
        return Err(NgsiError::not_found(
            "the entity has no history of the requested attributes",
        ));
    }
    let mut window = None;
    for r in results.iter_mut() {
        let max = state.config.temporal_max_instances;
        if let Some(w) =
            crate::ngsi::temporal::paginate(r, max, tq.last_n.is_some(), tq.timeproperty)
        {
            window = Some(w);
        }
    }
    let rendered: Vec<Value> = results
        .iter()
        .map(|r| response::with_context(render::render(r, &ctx, &tq), media, &ctx))
        .collect();
    let body = match single {
        Some(id) => rendered
            .into_iter()
            .next()
            .ok_or_else(|| NgsiError::not_found(format!("no temporal representation of {id}")))?,
        None => Value::Array(rendered),
    };
    let Some((from, to)) = window else {
        return response::json(StatusCode::OK, media, &ctx, &body);
    };
    // A partial answer: the client continues from the end of this window.
    let text = serde_json::to_string(&body).map_err(NgsiError::internal)?;
    Ok(response::builder(StatusCode::PARTIAL_CONTENT, media, &ctx)
        .insert_header((
            "Content-Range",
            format!(
                "date-time {}-{}/*",
                time::from_micros(from),
                time::from_micros(to)
            ),
        ))
        .body(text))
}

async fn retrieve(state: State, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse> {
    validate_uri(&path, "entity id")?;
    let params = query_params(&req, TEMPORAL_PARAMS)?;
    let ctx = extract::context(&state, &req).await?;
    respond(&state, &req, params, ctx, Some(path.into_inner())).await
}

async fn query(state: State, req: HttpRequest) -> Result<HttpResponse> {
    let params = query_params(&req, TEMPORAL_PARAMS)?;
    let ctx = extract::context(&state, &req).await?;
    respond(&state, &req, params, ctx, None).await
}

/// `POST /temporal/entityOperations/query`: a Query object with a `temporalQ`.
async fn query_post(state: State, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse> {
    let mut params = query_params(
        &req,
        &[
            "limit", "offset", "count", "options", "format", "local", "lang",
        ],
    )?;
    let body = extract::json_body(&state, &req, payload).await?;
    let obj = object(body.value)?;
    if obj.get("type").and_then(Value::as_str) != Some("Query") {
        return Err(NgsiError::bad_data(
            "the body must have \"type\": \"Query\"",
        ));
    }
    let text = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Array(a) => Ok(a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(",")),
        _ => Err(NgsiError::bad_data(
            "Query members must be strings, numbers or arrays of strings",
        )),
    };
    if let Some(Value::Array(selectors)) = obj.get("entities") {
        let (mut types, mut ids) = (Vec::new(), Vec::new());
        for sel in selectors {
            if let Some(t) = sel.get("type") {
                types.push(text(t)?);
            }
            if let Some(Value::String(id)) = sel.get("id") {
                ids.push(id.clone());
            }
            if let Some(Value::String(p)) = sel.get("idPattern") {
                params.insert("idPattern".into(), p.clone());
            }
        }
        if !types.is_empty() {
            params.insert("type".into(), types.join(","));
        }
        if !ids.is_empty() {
            params.insert("id".into(), ids.join(","));
        }
    }
    if let Some(attrs) = obj.get("attrs") {
        params.insert("attrs".into(), text(attrs)?);
    }
    if let Some(Value::Object(tq)) = obj.get("temporalQ") {
        for (k, v) in tq {
            match k.as_str() {
                "timerel" | "timeAt" | "endTimeAt" | "timeproperty" => {
                    params.insert(k.clone(), text(v)?);
                }
                "lastN" => match v.as_u64() {
                    Some(n) => {
                        params.insert(k.clone(), n.to_string());
                    }
                    None => return Err(NgsiError::bad_data("lastN must be a positive integer")),
                },
                other => {
                    return Err(NgsiError::bad_data(format!(
                        "unknown member '{other}' in temporalQ"
                    )))
                }
            }
        }
    }
    for key in ["aggrMethods", "aggrPeriodDuration"] {
        if let Some(v) = obj.get(key) {
            params.insert(key.into(), text(v)?);
        }
    }
    respond(&state, &req, params, body.ctx, None).await
}

async fn delete(state: State, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse> {
    let tenant = extract::tenant(&req)?;
    validate_uri(&path, "entity id")?;
    query_params(&req, &["local"])?;
    ensure_tenant(&state, &tenant).await?;
    if !state.store.temporal_delete_entity(&tenant, &path).await? {
        return Err(NgsiError::not_found(format!(
            "no temporal representation of {path}"
        )));
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn add_attrs(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let tenant = extract::tenant(&req)?;
    validate_uri(&path, "entity id")?;
    query_params(&req, &["local"])?;
    let body = extract::json_body(&state, &req, payload).await?;
    let obj = object(body.value)?;
    ensure_tenant(&state, &tenant).await?;
    let sel = TemporalSelection {
        ids: Some(vec![path.to_string()]),
        limit: 1,
        ..Default::default()
    };
    let existing = state
        .store
        .temporal_query(
            &tenant,
            &sel,
            &TemporalQuery {
                last_n: Some(1),
                ..Default::default()
            },
        )
        .await?;
    let Some(current) = existing.into_iter().next() else {
        return Err(NgsiError::not_found(format!(
            "no temporal representation of {path}"
        )));
    };
    let now = time::now();
    let add = instances_of(&obj, &body.ctx, &now)?;
    if add.is_empty() {
        return Err(NgsiError::bad_data("the body has no attribute instance"));
    }
    let entity = TemporalEntity {
        modified_at: now,
        ..current.entity
    };
    state.store.temporal_add(&tenant, entity, add).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn delete_attr(
    state: State,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let tenant = extract::tenant(&req)?;
    let (id, attr) = path.into_inner();
    validate_uri(&id, "entity id")?;
    let params = query_params(&req, &["datasetId", "deleteAll", "local"])?;
    let ctx = extract::context(&state, &req).await?;
    attribute::validate_attribute_name(&attr, &ctx)?;
    let all = extract::bool_param(&params, "deleteAll")?;
    ensure_tenant(&state, &tenant).await?;
    let n = state
        .store
        .temporal_delete_attribute(
            &tenant,
            &id,
            &ctx.expand(&attr),
            params.get("datasetId").map(String::as_str),
            all,
        )
        .await?;
    if n == 0 {
        return Err(NgsiError::not_found(format!(
            "no history of {attr} on {id}"
        )));
    }
    Ok(HttpResponse::NoContent().finish())
}

fn instance_number(raw: &str) -> Result<i64> {
    raw.strip_prefix("urn:ngsi-ld:attribute:instance:")
        .unwrap_or(raw)
        .parse()
        .map_err(|_| NgsiError::bad_data(format!("'{raw}' is not an instance id of this broker")))
}

async fn patch_instance(
    state: State,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let tenant = extract::tenant(&req)?;
    let (id, attr, instance) = path.into_inner();
    validate_uri(&id, "entity id")?;
    query_params(&req, &["local"])?;
    let instance = instance_number(&instance)?;
    let body = extract::json_body(&state, &req, payload).await?;
    let obj = object(body.value)?;
    let name = body.ctx.expand(&attr);
    let raw = obj.get(&attr).cloned().unwrap_or(Value::Object(obj));
    let patch = attribute::parse_instance(&attr, &raw, &body.ctx, &time::now(), Mode::Partial, 0)?;
    ensure_tenant(&state, &tenant).await?;
    if !state
        .store
        .temporal_patch_instance(&tenant, &id, &name, instance, patch)
        .await?
    {
        return Err(NgsiError::not_found(format!(
            "no instance {instance} of {attr} on {id}"
        )));
    }
    Ok(HttpResponse::NoContent().finish())
}

async fn delete_instance(
    state: State,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse> {
    let tenant = extract::tenant(&req)?;
    let (id, attr, instance) = path.into_inner();
    validate_uri(&id, "entity id")?;
    query_params(&req, &["local"])?;
    let instance = instance_number(&instance)?;
    let ctx = extract::context(&state, &req).await?;
    ensure_tenant(&state, &tenant).await?;
    if !state
        .store
        .temporal_delete_instance(&tenant, &id, &ctx.expand(&attr), instance)
        .await?
    {
        return Err(NgsiError::not_found(format!(
            "no instance {instance} of {attr} on {id}"
        )));
    }
    Ok(HttpResponse::NoContent().finish())
}
