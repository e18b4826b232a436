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
use crate::ngsi::temporal::request::TimeRel;
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
    .service(
        web::resource("/temporal/entities/{id}/attrs/{attr}")
            .route(web::delete().to(delete_attr))
            .default_service(web::to(super::method_not_allowed)),
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
    "orderBy",
    "csf",
];

/// An instance whose value is the null marker records that the attribute was deleted
/// at that time (the history of a deletion, clause 5.6.11.4).
fn deletion_instance(
    name: &str,
    item: &Value,
    ctx: &ActiveContext,
    now: &str,
) -> Result<Option<NewInstance>> {
    let Some(obj) = item.as_object() else {
        return Ok(None);
    };
    let kind = obj
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or(attribute::PROPERTY);
    let member = attribute::value_member(kind);
    if obj.get(member).and_then(Value::as_str) != Some(attribute::NULL_URI) {
        return Ok(None);
    }
    let mut body = Map::new();
    body.insert("type".into(), Value::String(kind.to_string()));
    body.insert(member.into(), Value::String(attribute::NULL_URI.into()));
    for meta in ["observedAt", "datasetId"] {
        if let Some(v) = obj.get(meta) {
            let text = v
                .as_str()
                .ok_or_else(|| NgsiError::bad_data(format!("{name}: {meta} must be a string")))?;
            if meta == "observedAt" {
                time::parse_datetime(text).map_err(|_| {
                    NgsiError::bad_data(format!("{name}: observedAt '{text}' is not a date-time"))
                })?;
            } else {
                validate_uri(text, "datasetId")?;
            }
            body.insert(meta.into(), v.clone());
        }
    }
    body.insert("createdAt".into(), Value::String(now.to_string()));
    body.insert("modifiedAt".into(), Value::String(now.to_string()));
    Ok(Some(NewInstance {
        attr: ctx.expand(name),
        dataset_id: obj
            .get("datasetId")
            .and_then(Value::as_str)
            .map(str::to_string),
        body,
        deleted: true,
    }))
}

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
            if let Some(gone) = deletion_instance(name, item, ctx, now)? {
                out.push(gone);
                continue;
            }
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

async fn create(state: State, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse> {
    let tenant = extract::tenant(&req)?;
    query_params(&req, &["local"])?;
    let body = extract::json_body(&state, &req, payload).await?;
    let obj = body.value;
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
    // Clause 5.5.4: the null marker removes a member only in fragments (partial
    // update, merge); a temporal entity is not one.
    for member in ["expiresAt", "scope"] {
        if obj.get(member).and_then(Value::as_str) == Some(attribute::NULL_URI) {
            return Err(NgsiError::bad_data(format!(
                "{member} cannot be urn:ngsi-ld:null in a temporal entity"
            )));
        }
    }
    let now = time::now();
    let add = instances_of(&obj, &body.ctx, &now)?;
    let scope = obj.get("scope").map(scope_of).transpose()?.flatten();
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

/// The scope of a temporal entity: scopes as the core API writes them, or the scope's
/// own history (Property instances with observedAt), of which the latest is kept.
fn scope_of(raw: &Value) -> Result<Option<Vec<String>>> {
    let bad =
        || NgsiError::bad_data("scope must be a string, an array of strings or scope instances");
    let plain = |v: &Value| {
        serde_json::from_value::<ScopeValue>(v.clone())
            .ok()
            .map(ScopeValue::into_vec)
    };
    if let Some(scopes) = plain(raw) {
        return Ok(Some(scopes));
    }
    let instances: Vec<&Value> = match raw {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![raw],
        _ => return Err(bad()),
    };
    let mut latest: Option<(&str, Vec<String>)> = None;
    for inst in instances {
        let value = inst.get("value").and_then(plain).ok_or_else(bad)?;
        let at = inst.get("observedAt").and_then(Value::as_str).unwrap_or("");
        if latest.as_ref().is_none_or(|(t, _)| at >= *t) {
            latest = Some((at, value));
        }
    }
    Ok(latest.map(|(_, v)| v))
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
    // System members are not attributes: a list of them alone would select everything.
    const SYSTEM: &[&str] = &[
        "createdAt",
        "modifiedAt",
        "deletedAt",
        "observedAt",
        "instanceId",
    ];
    if list(params, "attrs").is_some_and(|a| a.iter().all(|n| SYSTEM.contains(&n.as_str()))) {
        return Err(NgsiError::bad_data(
            "attrs names only system members (createdAt, modifiedAt...), not attributes",
        ));
    }
    Ok(TemporalSelection {
        types,
        ids: q.ids,
        id_pattern: q.id_pattern,
        attrs: list(params, "attrs").map(|a| a.iter().map(|n| ctx.expand(n)).collect()),
        limit,
        offset: number(params, "offset", 0)?,
        id_descending: order_by(params)?,
    })
}

/// `orderBy` of a temporal query: only the entity id may order it (clause 5.7.4.4),
/// ascending unless `;desc`.
fn order_by(params: &HashMap<String, String>) -> Result<Option<bool>> {
    let Some(raw) = params.get("orderBy") else {
        return Ok(None);
    };
    match raw.trim() {
        "id" | "id;asc" => Ok(Some(false)),
        "id;desc" => Ok(Some(true)),
        other => Err(NgsiError::bad_data(format!(
            "orderBy '{other}': temporal queries can only be ordered by id (id, id;asc or id;desc)"
        ))),
    }
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
    let projection = Projection::parse(&params, &ctx)?;
    // pick naming core members only (`pick=id`) shows no attribute at all.
    let no_attribute_picked = projection.picked_attrs.as_ref().is_some_and(Vec::is_empty);
    if projection.picked_attrs.is_some() && !no_attribute_picked {
        sel.attrs = projection.picked_attrs.clone();
    }
    if let Some(id) = &single {
        sel.ids = Some(vec![id.clone()]);
        sel.limit = 1;
        sel.offset = 0;
    } else if sel.types.is_none()
        && sel.attrs.is_none()
        && !params.contains_key("q")
        && !params.contains_key("georel")
        && !extract::bool_param(&params, "local")?
    {
        // Clause 5.7.4.4: ids alone would ask for every broker's history.
        return Err(NgsiError::bad_data(
            "give at least one of type, attrs, q or geoQ (or local=true)",
        ));
    }
    ensure_tenant(state, &tenant).await?;
    let mut filtered_total: Option<u64> = None;
    // q, scopeQ and geoQ are judged on the attribute instances in the asked window
    // (clause 5.7.4.4), not on the current state: the candidates' history is read once
    // in full, checked in memory, and the answer is then built for the survivors.
    if ["q", "scopeQ", "georel"]
        .iter()
        .any(|k| params.contains_key(*k))
    {
        let filter = super::entity_query::selection(&params, &ctx)?;
        let mut candidates = sel.clone();
        candidates.attrs = None;
        candidates.limit = i64::MAX as usize;
        candidates.offset = 0;
        let history = state
            .store
            .temporal_query(&tenant, &candidates, &tq.for_filtering())
            .await?;
        let ids: Vec<String> = history
            .iter()
            .filter(|r| filter.row_matches(&r.as_entity()))
            .map(|r| r.entity.id.clone())
            .collect();
        if ids.is_empty() {
            if let Some(id) = &single {
                return Err(NgsiError::not_found(format!(
                    "{id} has no history matching the query"
                )));
            }
            let body = Value::Array(Vec::new());
            return response::json(StatusCode::OK, media, &ctx, &body);
        }
        filtered_total = Some(ids.len() as u64);
        sel.ids = Some(ids);
    }
    let mut results = state.store.temporal_query(&tenant, &sel, &tq).await?;
    let total = if single.is_none() && extract::bool_param(&params, "count")? {
        Some(match filtered_total {
            Some(n) => n,
            None => count_matches(state, &tenant, &sel, &tq).await?,
        })
    } else {
        None
    };
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
    // datasetId keeps the instances of the listed datasets (`@none`: the default one).
    if let Some(wanted) = list(&params, "datasetId") {
        for id in wanted.iter().filter(|d| *d != "@none") {
            validate_uri(id, "datasetId")?;
        }
        let keep = |ds: &Option<String>| match ds {
            Some(d) => wanted.contains(d),
            None => wanted.iter().any(|w| w == "@none"),
        };
        for r in results.iter_mut() {
            r.instances.retain(|i| keep(&i.dataset_id));
            r.aggregates.retain(|a| keep(&a.dataset_id));
        }
        if single.is_none() {
            results.retain(|r| !r.instances.is_empty() || !r.aggregates.is_empty());
        }
    }
    if no_attribute_picked {
        for r in results.iter_mut() {
            r.instances.clear();
            r.aggregates.clear();
        }
    }
    if !projection.omitted_attrs.is_empty() {
        for r in results.iter_mut() {
            r.instances
                .retain(|i| !projection.omitted_attrs.contains(&i.attr));
            r.aggregates
                .retain(|a| !projection.omitted_attrs.contains(&a.attr));
        }
    }
    if single.is_some()
        && projection.is_used()
        && results
            .iter()
            .all(|r| r.instances.is_empty() && r.aggregates.is_empty())
    {
        return Err(NgsiError::not_found(
            "the projection (pick/omit) leaves no attribute of the entity",
        ));
    }
    // Attributes an entity has in the asked window, before a page cuts them.
    let attrs_before: Vec<Vec<(String, String)>> = results.iter().map(attribute_kinds).collect();
    let window = crate::ngsi::temporal::paginate(
        &mut results,
        state.config.temporal_max_instances,
        tq.last_n.is_some(),
        tq.timeproperty,
    );
    let rendered: Vec<Value> = results
        .iter()
        .zip(attrs_before)
        .map(|(r, before)| {
            let mut v = render::render(r, &ctx, &tq);
            // An attribute whose instances all fall after this page is still listed,
            // empty, so that the client knows to ask for the next page.
            for (attr, kind) in before {
                let name = ctx.compact(&attr);
                if !v.contains_key(&name) {
                    v.insert(name, render::empty_attribute(&kind, &tq));
                }
            }
            projection.apply_to_members(&mut v);
            response::with_context(v, media, &ctx)
        })
        .collect();
    let body = match single {
        Some(id) => rendered
            .into_iter()
            .next()
            .ok_or_else(|| NgsiError::not_found(format!("no temporal representation of {id}")))?,
        None => Value::Array(rendered),
    };
    let Some((from, to)) = window else {
        let mut b = response::builder(StatusCode::OK, media, &ctx);
        if let Some(total) = total {
            b.insert_header(("NGSILD-Results-Count", total.to_string()));
        }
        let text = serde_json::to_string(&body).map_err(NgsiError::internal)?;
        return Ok(b.body(text));
    };
    // Clause 6.3.10: the range starts where the asked window starts, in the order of
    // the answer (the upper bound when lastN reads newest first), and ends at the last
    // instance returned, where the client continues.
    let from = match (tq.last_n.is_some(), &tq.timerel) {
        (false, Some(TimeRel::After(t) | TimeRel::Between(t, _))) => *t,
        (true, Some(TimeRel::Before(t) | TimeRel::Between(_, t))) => *t,
        _ => from,
    };
    // A partial answer: the client continues from the end of this window.
    let text = serde_json::to_string(&body).map_err(NgsiError::internal)?;
    let mut b = response::builder(StatusCode::PARTIAL_CONTENT, media, &ctx);
    if let Some(total) = total {
        b.insert_header(("NGSILD-Results-Count", total.to_string()));
    }
    Ok(b.insert_header((
        "Content-Range",
        format!(
            "date-time {}-{}/{}",
            time::from_micros(from),
            time::from_micros(to),
            // Clause 6.3.10: the size is lastN when asked, otherwise unknown.
            tq.last_n.map_or("*".to_string(), |n| n.to_string())
        ),
    ))
    .body(text))
}

/// The (attribute, attribute type) pairs of a history.
fn attribute_kinds(r: &crate::ngsi::temporal::TemporalResult) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for i in &r.instances {
        if !out.iter().any(|(a, _)| *a == i.attr) {
            let kind = i
                .body
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or(attribute::PROPERTY);
            out.push((i.attr.clone(), kind.to_string()));
        }
    }
    out
}

/// How many entities a temporal query selects, whatever the page: every candidate is
/// read with its newest instance per attribute only.
async fn count_matches(
    state: &State,
    tenant: &crate::ngsi::Tenant,
    sel: &TemporalSelection,
    tq: &TemporalQuery,
) -> Result<u64> {
    let mut all = sel.clone();
    all.limit = i64::MAX as usize;
    all.offset = 0;
    let mut probe = tq.for_filtering();
    probe.last_n = Some(1);
    let found = state.store.temporal_query(tenant, &all, &probe).await?;
    let window = tq.timerel.is_some() || sel.attrs.is_some();
    Ok(found
        .iter()
        .filter(|r| !window || !r.instances.is_empty())
        .count() as u64)
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
    let obj = body.value;
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
                "aggrMethods" | "aggrPeriodDuration" => {
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
    // Aggregation parameters: at the top level, in temporalQ, or (1.9) in aggrParams.
    let aggr_params = match obj.get("aggrParams") {
        Some(Value::Object(a)) => Some(a),
        Some(_) => return Err(NgsiError::bad_data("aggrParams must be an object")),
        None => None,
    };
    for key in ["aggrMethods", "aggrPeriodDuration"] {
        if let Some(v) = obj
            .get(key)
            .or_else(|| aggr_params.and_then(|a| a.get(key)))
        {
            params.insert(key.into(), text(v)?);
        }
    }
    // Asking for aggregation methods is asking for aggregated values, unless the
    // request names a representation itself.
    if params.contains_key("aggrMethods")
        && !params.contains_key("format")
        && !params.contains_key("options")
    {
        params.insert("format".into(), "aggregatedValues".into());
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
    let obj = body.value;
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

/// The number inside an instance id; an id this broker never gives cannot name one
/// of its instances (404, clause 5.6.12).
fn instance_number(raw: &str) -> Result<i64> {
    validate_uri(raw, "instanceId")?;
    raw.strip_prefix("urn:ngsi-ld:attribute:instance:")
        .unwrap_or(raw)
        .parse()
        .map_err(|_| NgsiError::not_found(format!("no attribute instance {raw}")))
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
    crate::ngsi::ids::validate_name(&attr, "attribute name")?;
    let instance = instance_number(&instance)?;
    let body = extract::json_body(&state, &req, payload).await?;
    let obj = body.value;
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
    crate::ngsi::ids::validate_name(&attr, "attribute name")?;
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

/// `pick` and `omit` of a temporal request (clause 4.21): attributes are chosen before
/// the history is read, the core members `id` and `type` on the rendered entity.
#[derive(Debug, Default)]
struct Projection {
    picked_attrs: Option<Vec<String>>,
    picked_members: Option<std::collections::HashSet<String>>,
    omitted_attrs: std::collections::HashSet<String>,
    omitted_members: std::collections::HashSet<String>,
}

impl Projection {
    fn parse(params: &HashMap<String, String>, ctx: &ActiveContext) -> Result<Self> {
        let mut p = Projection::default();
        for member in ["pick", "omit"] {
            if params.contains_key("attrs") && params.contains_key(member) {
                return Err(NgsiError::bad_data(format!(
                    "attrs and {member} cannot be used together"
                )));
            }
        }
        if let Some(raw) = params.get("pick") {
            let (members, attrs) = super::entities::projection(raw, "pick", ctx)?;
            p.picked_attrs = Some(attrs.into_iter().collect());
            p.picked_members = Some(members);
        }
        if let Some(raw) = params.get("omit") {
            let (members, attrs) = super::entities::projection(raw, "omit", ctx)?;
            let picked_twice = p
                .picked_members
                .as_ref()
                .is_some_and(|m| !m.is_disjoint(&members))
                || p.picked_attrs
                    .as_ref()
                    .is_some_and(|a| a.iter().any(|n| attrs.contains(n)));
            if picked_twice {
                return Err(NgsiError::bad_data(
                    "the same member cannot be both picked and omitted",
                ));
            }
            p.omitted_attrs = attrs;
            p.omitted_members = members;
        }
        Ok(p)
    }

    fn is_used(&self) -> bool {
        self.picked_attrs.is_some() || !self.omitted_attrs.is_empty()
    }

    fn apply_to_members(&self, obj: &mut Map<String, Value>) {
        for member in ["id", "type"] {
            let dropped = self.omitted_members.contains(member)
                || self
                    .picked_members
                    .as_ref()
                    .is_some_and(|m| !m.contains(member));
            if dropped {
                obj.remove(member);
            }
        }
    }
}
