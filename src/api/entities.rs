//! `/entities`: create, retrieve, list, replace, merge, delete entities and their
//! attributes.

use std::collections::{HashMap, HashSet};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::extract::{self, bool_param, list, query_params, MediaType};
use super::{response, State};
use crate::error::{ErrorKind, NgsiError, Result};
use crate::jsonld::ActiveContext;
use crate::ngsi::attribute::{self, Mode};
use crate::ngsi::entity::{parse_body, parse_types, BodyKind};
use crate::ngsi::ids::validate_uri;
use crate::ngsi::operations::{self, UpdateReport};

use crate::ngsi::projection::ProjectionTree;
use crate::ngsi::render::{Format, RenderOptions};
use crate::ngsi::{time, Entity, Tenant};
use crate::store::{Effect, WriteOp, WriteResult};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/entities")
            .route(web::post().to(create))
            .route(web::get().to(super::entity_query::query))
            .route(web::delete().to(super::entity_query::purge))
            .route(web::put().to(missing_id))
            .route(web::patch().to(missing_id))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/entities/{id}")
            .route(web::get().to(retrieve))
            .route(web::delete().to(delete))
            .route(web::put().to(replace))
            .route(web::patch().to(merge))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/entities/{id}/attrs")
            .route(web::post().to(append_attrs))
            .route(web::patch().to(update_attrs))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/entities/{id}/attrs/{attr}")
            .route(web::patch().to(patch_attr))
            .route(web::put().to(replace_attr))
            .route(web::delete().to(delete_attr))
            .default_service(web::to(super::method_not_allowed)),
    );
}

const RENDER_PARAMS: &[&str] = &[
    "attrs",
    "pick",
    "omit",
    "options",
    "format",
    "lang",
    "type",
    "local",
    "via",
    "join",
    "joinLevel",
    "containedBy",
    "entityMap",
    "collect",
    "geometryProperty",
    "datasetId",
    "scopeQ",
    "expandValues",
    "contextSourceInfo",
];

/// Reads `options`, `format`, `attrs`, `pick`, `omit`, `lang` into render options.
pub fn render_options(
    params: &HashMap<String, String>,
    ctx: &ActiveContext,
) -> Result<RenderOptions> {
    let mut opts = RenderOptions::default();
    let mut formats = Vec::new();
    let representation = |o: &str| match o {
        "keyValues" | "simplified" => Some(Format::KeyValues),
        "concise" => Some(Format::Concise),
        "normalized" => Some(Format::Normalized),
        _ => None,
    };
    for o in list(params, "options").unwrap_or_default() {
        match (representation(&o), o.as_str()) {
            (Some(f), _) => formats.push(f),
            (None, "sysAttrs") => opts.sys_attrs = true,
            (None, "noOverwrite" | "replace" | "update" | "keyValues") => {}
            (None, other) => return Err(NgsiError::invalid(format!("unknown option '{other}'"))),
        }
    }
    // `format` takes precedence over a representation named in `options` (clause 6.3.7).
    if let Some(f) = params.get("format") {
        let f =
            representation(f).ok_or_else(|| NgsiError::invalid(format!("unknown format '{f}'")))?;
        formats = vec![f];
    }
    formats.dedup();
    if formats.len() > 1 {
        return Err(NgsiError::bad_data(
            "options ask for more than one representation",
        ));
    }
    opts.format = formats.first().copied().unwrap_or_default();
    if params.contains_key("attrs") && params.contains_key("pick") {
        return Err(NgsiError::bad_data(
            "attrs and pick cannot be used together",
        ));
    }
    if params.contains_key("attrs") && params.contains_key("omit") {
        return Err(NgsiError::bad_data(
            "attrs and omit cannot be used together",
        ));
    }
    if let Some(attrs) = params.get("attrs") {
        opts.attrs = Some(projection(attrs, "attrs", ctx)?.1);
    }
    let joined = params.get("join").is_some_and(|j| j != "@none");
    let tree_of = |raw: &str, what: &str| -> Result<ProjectionTree> {
        let tree = ProjectionTree::parse(raw, what, ctx)?;
        if tree.has_nesting() && !joined {
            return Err(NgsiError::bad_data(format!(
                "{what}: nested projections need join"
            )));
        }
        let level: usize = params
            .get("joinLevel")
            .and_then(|l| l.parse().ok())
            .unwrap_or(1);
        if tree.nesting_depth() > level {
            return Err(NgsiError::bad_data(format!(
                "{what} nests {} levels of linked entities, deeper than joinLevel {level}",
                tree.nesting_depth()
            )));
        }
        Ok(tree)
    };
    if let Some(pick) = params.get("pick") {
        let tree = tree_of(pick, "pick")?;
        opts.attrs = Some(tree.attrs.clone());
        opts.picked_members = Some(tree.members.clone());
        opts.linked = linked_options(&opts, &tree, true);
    }
    if let Some(omit) = params.get("omit") {
        let tree = tree_of(omit, "omit")?;
        opts.linked.extend(linked_options(&opts, &tree, false));
        // A Relationship with a nested omit stays: only its linked entity loses members.
        let attrs: HashSet<String> = tree
            .attrs
            .into_iter()
            .filter(|a| !tree.nested.contains_key(a))
            .collect();
        let members = tree.members;
        if let Some(picked) = &opts.picked_members {
            if members.iter().any(|m| picked.contains(m)) {
                return Err(NgsiError::bad_data(
                    "the same member cannot be both picked and omitted",
                ));
            }
        }
        if let Some(picked) = &opts.attrs {
            if attrs.iter().any(|a| picked.contains(a)) {
                return Err(NgsiError::bad_data(
                    "the same attribute cannot be both picked and omitted",
                ));
            }
        }
        opts.omit = attrs;
        opts.omit.extend(members);
    }
    if let Some(ds) = params.get("datasetId") {
        let ids: Vec<String> = ds.split(',').map(|s| s.trim().to_string()).collect();
        for id in ids.iter().filter(|d| *d != "@none") {
            validate_uri(id, "datasetId")?;
        }
        opts.dataset_ids = Some(ids);
    }
    opts.lang = params.get("lang").cloned();
    Ok(opts)
}

/// A projection list (`attrs`, `pick`, `omit`) without nesting: the entity members named
/// (`id`, `type`) and the expanded attribute names.
pub(super) fn projection(
    raw: &str,
    what: &str,
    ctx: &ActiveContext,
) -> Result<(HashSet<String>, HashSet<String>)> {
    let tree = ProjectionTree::parse(raw, what, ctx)?;
    if tree.has_nesting() {
        return Err(NgsiError::bad_data(format!(
            "{what}: nested projections need join"
        )));
    }
    Ok((tree.members, tree.attrs))
}

/// The options of entities reached through the Relationships of a nested projection.
fn linked_options(
    parent: &RenderOptions,
    tree: &ProjectionTree,
    pick: bool,
) -> HashMap<String, RenderOptions> {
    tree.nested
        .iter()
        .map(|(relationship, sub)| {
            let mut child = parent.for_linked("");
            if pick {
                let mut attrs = sub.attrs.clone();
                attrs.extend(sub.nested.keys().cloned());
                child.attrs = Some(attrs);
                child.picked_members = Some(sub.members.clone());
            } else {
                // A Relationship carrying a deeper omit stays; its linked entity is trimmed.
                child.omit = sub
                    .attrs
                    .iter()
                    .filter(|a| !sub.nested.contains_key(*a))
                    .chain(&sub.members)
                    .cloned()
                    .collect();
            }
            child.linked = linked_options(&child, sub, pick);
            (relationship.clone(), child)
        })
        .collect()
}

fn entity_id(path: &str) -> Result<String> {
    validate_uri(path, "entity id")?;
    Ok(path.to_string())
}

fn location(id: &str) -> String {
    format!("{}/entities/{}", super::BASE, urlencode(id))
}

/// Escapes what cannot stand in a path segment; URIs' own `:` stay readable.
fn urlencode(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '/' | '?' | '#' | '%' | ' ' | '"' | '<' | '>' => format!("%{:02X}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// The stored entity a write applies to: 404 if absent or not of the `type` selector.
fn existing(current: Option<Entity>, id: &str, wanted_type: Option<&str>) -> Result<Entity> {
    match current {
        Some(e) if wanted_type.is_none_or(|t| e.has_type(t)) => Ok(e),
        Some(_) => Err(NgsiError::not_found(format!(
            "entity {id} is not of the requested type"
        ))),
        None => Err(NgsiError::not_found(format!("entity {id} not found"))),
    }
}

/// An `id` in a write body must name the entity of the URL.
fn same_id(fragment: &crate::ngsi::EntityFragment, url_id: &str) -> Result<()> {
    match &fragment.id {
        Some(id) if id != url_id => Err(NgsiError::bad_data(
            "the id in the body differs from the id in the URL",
        )),
        _ => Ok(()),
    }
}

/// Applies `change` to the stored entity (404 if it is absent or not of the `type`
/// selector) and stores the result; with `keep_unchanged`, a change that updated nothing
/// leaves the entity as it was.
async fn modify(
    state: &State,
    tenant: &Tenant,
    id: String,
    wanted_type: Option<String>,
    now: String,
    keep_unchanged: bool,
    change: impl Fn(&mut Entity, &str) -> Result<UpdateReport> + Send + 'static,
) -> Result<WriteResult> {
    let target = id.clone();
    write_one(
        state,
        tenant,
        WriteOp::new(target, move |current| {
            let mut e = existing(current, &id, wanted_type.as_deref())?;
            let report = change(&mut e, &now)?;
            if keep_unchanged && report.updated.is_empty() {
                Ok(Effect::Keep(report))
            } else {
                Ok(Effect::Put(e, report))
            }
        }),
    )
    .await
}

/// The expanded `type` selector of a write request, if any.
fn type_selector(params: &HashMap<String, String>, ctx: &ActiveContext) -> Option<String> {
    params.get("type").map(|t| ctx.expand(t))
}

/// Runs one write and returns its result (or its error).
pub async fn write_one(state: &State, tenant: &Tenant, op: WriteOp) -> Result<WriteResult> {
    let mut results = state.store.write(tenant, vec![op]).await?;
    results
        .pop()
        .unwrap_or_else(|| Err(NgsiError::internal("the store returned no result")))
}

pub async fn ensure_tenant(state: &State, tenant: &Tenant) -> Result<()> {
    if state.store.tenant_exists(tenant).await? {
        Ok(())
    } else {
        Err(NgsiError::new(
            ErrorKind::NonexistentTenant,
            format!("tenant '{}' does not exist", tenant.as_str()),
        ))
    }
}

async fn create(state: State, req: HttpRequest, payload: web::Payload) -> Result<HttpResponse> {
    let tenant = extract::tenant(&req)?;
    query_params(&req, &["options", "format", "local"])?;
    let body = extract::json_body(&state, &req, payload).await?;
    let now = time::now();
    let fragment = parse_body(&body.value, &body.ctx, &now, BodyKind::Entity)?;
    let entity = Entity::create(fragment, &now)?;
    let id = entity.id.clone();
    write_one(
        &state,
        &tenant,
        WriteOp::new(id.clone(), move |current| match current {
            Some(_) => Err(NgsiError::already_exists(format!(
                "entity {} already exists",
                entity.id
            ))),
            None => Ok(Effect::Put(entity.clone(), UpdateReport::default())),
        }),
    )
    .await?;
    let mut resp = HttpResponse::Created();
    resp.insert_header(("Location", location(&id)));
    if !tenant.is_default() {
        resp.insert_header(("NGSILD-Tenant", tenant.as_str()));
    }
    Ok(resp.finish())
}

async fn retrieve(state: State, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse> {
    let tenant = extract::tenant(&req)?;
    let id = entity_id(&path)?;
    let params = query_params(&req, RENDER_PARAMS)?;
    let media = extract::accept(&req, true)?;
    let ctx = extract::context(&state, &req).await?;
    let opts = render_options(&params, &ctx)?;
    // The tenant is looked up only when the entity is missing: a found entity proves it.
    let Some(entity) = state.store.get(&tenant, &id).await? else {
        ensure_tenant(&state, &tenant).await?;
        return Err(NgsiError::not_found(format!("entity {id} not found")));
    };
    if let Some(types) = params.get("type") {
        let wanted = parse_types(&Value::String(types.clone()), &ctx);
        let matches = types
            .split(',')
            .any(|t| entity.has_type(&ctx.expand(t.trim())));
        if wanted.is_err() || !matches {
            return Err(NgsiError::not_found(format!(
                "entity {id} not found with type {types}"
            )));
        }
    }
    if params.contains_key("geometryProperty") && media != MediaType::GeoJson {
        return Err(NgsiError::bad_data(
            "geometryProperty only applies to Accept: application/geo+json",
        ));
    }
    let body = if let Some((join, level)) = super::join::Join::from_params(&params)? {
        let roots = std::slice::from_ref(&entity);
        let mut items =
            super::join::render(&state, &tenant, roots, &ctx, &opts, media, join, level).await?;
        match join {
            super::join::Join::Flat => Value::Array(items),
            super::join::Join::Inline => items.pop().unwrap_or(Value::Null),
        }
    } else if media == MediaType::GeoJson {
        let geo = params
            .get("geometryProperty")
            .map_or("location", String::as_str);
        let feature = response::geojson_feature(&entity, &ctx, &opts, geo);
        response::geojson_context_preference(feature, extract::prefers_json_body(&req))
    } else {
        response::entity(&entity, &ctx, &opts, media)
    };
    if projection_left_nothing(&body, &opts) {
        return Err(NgsiError::not_found(format!(
            "entity {id} has none of the requested attributes"
        )));
    }
    response::json(StatusCode::OK, media, &ctx, &body)
}

/// A retrieval whose projection (attrs, pick, omit) selected nothing is a 404.
fn projection_left_nothing(body: &Value, opts: &RenderOptions) -> bool {
    let projected = opts.attrs.is_some() || !opts.omit.is_empty();
    if !projected || opts.picked_members.as_ref().is_some_and(|m| !m.is_empty()) {
        return false;
    }
    let body = body.get("properties").unwrap_or(body);
    let members = [
        "id",
        "type",
        "scope",
        "@context",
        "createdAt",
        "modifiedAt",
        "expiresAt",
    ];
    body.as_object()
        .is_some_and(|o| o.keys().all(|k| members.contains(&k.as_str())))
}

async fn delete(state: State, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse> {
    let tenant = extract::tenant(&req)?;
    let id = entity_id(&path)?;
    let params = query_params(&req, &["type", "local"])?;
    let ctx = extract::context(&state, &req).await?;
    ensure_tenant(&state, &tenant).await?;
    let wanted_type = params.get("type").map(|t| ctx.expand(t));
    write_one(
        &state,
        &tenant,
        WriteOp::new(id.clone(), move |current| match current {
            Some(e) if wanted_type.as_ref().is_none_or(|t| e.has_type(t)) => Ok(Effect::Delete),
            _ => Err(NgsiError::not_found(format!("entity {id} not found"))),
        }),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Reads the body of a write on one entity and its `type` selector.
struct EntityWrite {
    tenant: Tenant,
    id: String,
    wanted_type: Option<String>,
    body: extract::JsonBody,
    now: String,
}

async fn entity_write(
    state: &State,
    req: &HttpRequest,
    id: &str,
    payload: web::Payload,
    allowed: &[&str],
) -> Result<(EntityWrite, HashMap<String, String>)> {
    let tenant = extract::tenant(req)?;
    let id = entity_id(id)?;
    let params = query_params(req, allowed)?;
    let body = extract::json_body(state, req, payload).await?;
    ensure_tenant(state, &tenant).await?;
    let wanted_type = type_selector(&params, &body.ctx);
    Ok((
        EntityWrite {
            tenant,
            id,
            wanted_type,
            body,
            now: time::now(),
        },
        params,
    ))
}

async fn replace(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (w, _) = entity_write(&state, &req, &path, payload, &["local", "type"]).await?;
    let fragment = parse_body(&w.body.value, &w.body.ctx, &w.now, BodyKind::Replacement)?;
    same_id(&fragment, &w.id)?;
    modify(
        &state,
        &w.tenant,
        w.id,
        w.wanted_type,
        w.now,
        false,
        move |e, now| {
            operations::replace(e, fragment.clone(), now);
            Ok(UpdateReport::default())
        },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn merge(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (w, _) = entity_write(
        &state,
        &req,
        &path,
        payload,
        &["type", "local", "options", "format"],
    )
    .await?;
    let obj = w.body.value;
    if obj.is_empty() {
        return Err(NgsiError::bad_data("the body has nothing to merge"));
    }
    let fragment = parse_body(
        &obj,
        &w.body.ctx,
        &w.now,
        BodyKind::Fragment { allow_null: true },
    )?;
    same_id(&fragment, &w.id)?;
    modify(
        &state,
        &w.tenant,
        w.id,
        w.wanted_type,
        w.now,
        false,
        move |e, now| {
            let report = operations::merge(e, fragment.clone(), now);
            Ok(report)
        },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The 207 body of a partial attribute operation.
fn update_result(report: &UpdateReport, ctx: &ActiveContext) -> Value {
    json!({
        "updated": report.updated.iter().map(|n| ctx.compact(n)).collect::<Vec<_>>(),
        "notUpdated": report.not_updated.iter().map(|(n, why)| json!({"attributeName": ctx.compact(n), "reason": why})).collect::<Vec<_>>(),
    })
}

fn report_response(report: &UpdateReport, ctx: &ActiveContext) -> Result<HttpResponse> {
    if report.is_complete() {
        Ok(HttpResponse::NoContent().finish())
    } else {
        response::json(
            StatusCode::MULTI_STATUS,
            MediaType::Json,
            ctx,
            &update_result(report, ctx),
        )
    }
}

async fn append_attrs(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (w, params) =
        entity_write(&state, &req, &path, payload, &["options", "type", "local"]).await?;
    let mut no_overwrite = false;
    for o in extract::options(&params) {
        match o.as_str() {
            "noOverwrite" => no_overwrite = true,
            other => {
                return Err(NgsiError::bad_data(format!(
                    "unknown option '{other}' (only noOverwrite applies here)"
                )))
            }
        }
    }
    let fragment = parse_body(
        &w.body.value,
        &w.body.ctx,
        &w.now,
        BodyKind::Fragment { allow_null: false },
    )?;
    same_id(&fragment, &w.id)?;
    let result = modify(
        &state,
        &w.tenant,
        w.id,
        w.wanted_type,
        w.now,
        false,
        move |e, now| {
            let report = operations::append(e, fragment.clone(), no_overwrite, now);
            Ok(report)
        },
    )
    .await?;
    report_response(&result.report, &w.body.ctx)
}

async fn update_attrs(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (w, _) = entity_write(&state, &req, &path, payload, &["options", "type", "local"]).await?;
    let fragment = parse_body(
        &w.body.value,
        &w.body.ctx,
        &w.now,
        BodyKind::Fragment { allow_null: true },
    )?;
    if fragment.attrs.is_empty() && fragment.types.is_empty() && fragment.scope.is_none() {
        return Err(NgsiError::bad_data("the body has no attribute to update"));
    }
    let result = modify(
        &state,
        &w.tenant,
        w.id,
        w.wanted_type,
        w.now,
        true,
        move |e, now| {
            let report = operations::update(e, fragment.clone(), now);
            Ok(report)
        },
    )
    .await?;
    report_response(&result.report, &w.body.ctx)
}

fn attr_path(path: &(String, String), ctx: &ActiveContext) -> Result<(String, String)> {
    let id = entity_id(&path.0)?;
    if path.1 != "scope" {
        crate::ngsi::attribute::validate_attribute_name(&path.1, ctx)?;
    }
    Ok((id, path.1.clone()))
}

async fn patch_attr(
    state: State,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (w, _) = entity_write(&state, &req, &path.0, payload, &["local", "type"]).await?;
    let (_, attr) = attr_path(&path, &w.body.ctx)?;
    let name = w.body.ctx.expand(&attr);
    let explicit_type = w
        .body
        .value
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut instances = attribute::parse(
        &attr,
        &Value::Object(w.body.value),
        &w.body.ctx,
        &w.now,
        Mode::Partial,
    )?;
    let patch = instances
        .pop()
        .ok_or_else(|| NgsiError::bad_data("the body has no attribute"))?;
    modify(
        &state,
        &w.tenant,
        w.id,
        w.wanted_type,
        w.now,
        false,
        move |e, now| {
            operations::patch_attribute(e, &name, patch.clone(), explicit_type.as_deref(), now)?;
            Ok(UpdateReport::default())
        },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn replace_attr(
    state: State,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (w, _) = entity_write(&state, &req, &path.0, payload, &["local", "type"]).await?;
    let (_, attr) = attr_path(&path, &w.body.ctx)?;
    let name = w.body.ctx.expand(&attr);
    let instances = attribute::parse(
        &attr,
        &Value::Object(w.body.value),
        &w.body.ctx,
        &w.now,
        Mode::Create,
    )?;
    modify(
        &state,
        &w.tenant,
        w.id,
        w.wanted_type,
        w.now,
        false,
        move |e, now| {
            operations::replace_attribute(e, &name, instances.clone(), now)?;
            Ok(UpdateReport::default())
        },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn delete_attr(
    state: State,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let tenant = extract::tenant(&req)?;
    let params = query_params(&req, &["datasetId", "deleteAll", "local", "type"])?;
    let ctx = extract::context(&state, &req).await?;
    let (id, attr) = attr_path(&path, &ctx)?;
    let delete_all = bool_param(&params, "deleteAll")?;
    let dataset = params.get("datasetId").cloned();
    if let Some(ds) = &dataset {
        validate_uri(ds, "datasetId")?;
    }
    ensure_tenant(&state, &tenant).await?;
    let wanted = type_selector(&params, &ctx);
    let name = ctx.expand(&attr);
    modify(
        &state,
        &tenant,
        id,
        wanted,
        time::now(),
        false,
        move |e, now| {
            if attr == "scope" {
                if e.scope.take().is_none() {
                    return Err(NgsiError::not_found("the entity has no scope"));
                }
                e.modified_at = now.to_string();
            } else {
                operations::delete_attribute(e, &name, dataset.as_deref(), delete_all, now)?;
            }
            Ok(UpdateReport::default())
        },
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `PUT`/`PATCH /entities` with no id in the path.
async fn missing_id() -> Result<HttpResponse> {
    Err(NgsiError::bad_data(
        "the entity id is missing from the path",
    ))
}
