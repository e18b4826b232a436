//! Listing and purging entities: `GET /entities`, `POST /entityOperations/query` and
//! `DELETE /entities`, with the full NGSI-LD selection (type expressions, id, idPattern,
//! attrs, q, scopeQ, geoQ) and paging.

use std::collections::{HashMap, HashSet};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::entities::{ensure_tenant, render_options};
use super::extract::{self, bool_param, list, query_params, MediaType};
use super::{response, State};
use crate::error::{ErrorKind, NgsiError, Result};
use crate::jsonld::ActiveContext;
use crate::ngsi::geo::GeoQuery;
use crate::ngsi::ids::validate_uri;
use crate::ngsi::operations::UpdateReport;
use crate::ngsi::query::{EntityQuery, DEFAULT_LIMIT, MAX_LIMIT};
use crate::ngsi::render_stored;
use crate::ngsi::scope::ScopeQuery;
use crate::ngsi::time;
use crate::ngsi::type_expr::TypeExpr;
use crate::store::{Effect, WriteOp};

const QUERY_PARAMS: &[&str] = &[
    "id",
    "type",
    "idPattern",
    "attrs",
    "pick",
    "omit",
    "q",
    "scopeQ",
    "geoQ",
    "georel",
    "geometry",
    "coordinates",
    "geoproperty",
    "geometryProperty",
    "lang",
    "options",
    "format",
    "limit",
    "offset",
    "count",
    "local",
    "csf",
    "datasetId",
    "via",
    "join",
    "joinLevel",
    "containedBy",
    "entityMap",
    "collect",
    "expandValues",
    "orderBy",
    "contextSourceInfo",
];

/// The selection part of a query request, shared with purge.
/// Entity members that are not attributes.
const SYSTEM_MEMBERS: &[&str] = &[
    "createdAt",
    "modifiedAt",
    "deletedAt",
    "observedAt",
    "expiresAt",
];

/// Where a quantifier follows another (`a**`, `a+*`): Rust's regex engine reads it as
/// a repeated repetition, but it is an error in the ECMAScript/POSIX patterns NGSI-LD
/// clients write, so it is refused rather than guessed at. Lazy `*?`, `+?`, `??` and
/// escaped or bracketed characters are fine.
fn stacked_quantifier(pattern: &str) -> Option<usize> {
    let (mut escaped, mut in_class, mut previous_quantifier) = (false, false, false);
    for (i, c) in pattern.char_indices() {
        if escaped {
            escaped = false;
            previous_quantifier = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '*' | '+' if !in_class && previous_quantifier => return Some(i),
            '*' | '+' | '?' | '}' if !in_class => {
                // `?` right after a quantifier makes it lazy, and ends the run.
                previous_quantifier = !(c == '?' && previous_quantifier);
                continue;
            }
            _ => {}
        }
        previous_quantifier = false;
    }
    None
}

pub fn selection(params: &HashMap<String, String>, ctx: &ActiveContext) -> Result<EntityQuery> {
    let mut q = EntityQuery::default();
    match params.get("type").map(String::as_str) {
        // `*` is every type (clause 4.17): no type restriction.
        Some("*") | None => {}
        Some(types) => q.types = Some(TypeExpr::parse(types, ctx)?),
    }
    if params.get("attrs").is_some_and(|a| a.trim().is_empty()) {
        return Err(NgsiError::bad_data(
            "attrs must name at least one attribute",
        ));
    }
    // Context source filters only select registrations; this broker has none, but a
    // malformed filter is still the client's error (it has the q syntax).
    if let Some(csf) = params.get("csf") {
        crate::ngsi::q::parse(csf)
            .map_err(|e| NgsiError::bad_data(format!("csf: {}", e.detail)))?;
    }
    if let Some(ids) = list(params, "id") {
        for id in &ids {
            validate_uri(id, "entity id")?;
        }
        q.ids = Some(ids);
    }
    if let Some(p) = params.get("idPattern") {
        regex::Regex::new(p).map_err(|e| {
            NgsiError::bad_data(format!("idPattern is not a valid regular expression: {e}"))
        })?;
        if let Some(at) = stacked_quantifier(p) {
            return Err(NgsiError::bad_data(format!(
                "idPattern is not a valid regular expression: nothing to repeat at position {at}"
            )));
        }
        q.id_pattern = Some(p.clone());
    }
    if let Some(attrs) = list(params, "attrs") {
        if let Some(core) = attrs.iter().find(|a| *a == "id" || *a == "type") {
            return Err(NgsiError::bad_data(format!(
                "attrs lists attributes; '{core}' is an entity member (use pick)"
            )));
        }
        if !attrs.is_empty() {
            q.attrs = Some(attrs.iter().map(|a| ctx.expand(a)).collect());
        }
    }
    if let Some(text) = params.get("q") {
        let mut expr = crate::ngsi::q::parse(text)?;
        crate::ngsi::q::expand(&mut expr, ctx);
        q.q = Some(expr);
    }
    if let Some(text) = params.get("scopeQ") {
        q.scope_q = Some(ScopeQuery::parse(text)?);
    }
    match (
        params.get("georel"),
        params.get("geometry"),
        params.get("coordinates"),
    ) {
        (None, None, None) => {}
        (Some(rel), Some(geometry), Some(coords)) => {
            let prop = params.get("geoproperty").map(String::as_str);
            q.geo_q = Some(GeoQuery::parse(rel, geometry, coords, prop, ctx)?);
        }
        _ => {
            return Err(NgsiError::bad_data(
                "a geo-query needs georel, geometry and coordinates together",
            ))
        }
    }
    Ok(q)
}

fn number_param(params: &HashMap<String, String>, name: &str, default: usize) -> Result<usize> {
    match params.get(name) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().map_err(|_| {
            NgsiError::bad_data(format!("{name} must be a non-negative integer, not '{v}'"))
        }),
    }
}

pub async fn query(state: State, req: HttpRequest) -> Result<HttpResponse> {
    let params = query_params(&req, QUERY_PARAMS)?;
    let ctx = extract::context(&state, &req).await?;
    run_query(&state, &req, params, ctx).await
}

/// `POST /entityOperations/query`: the same selection, sent as a Query object.
pub async fn query_post(
    state: State,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let mut params = query_params(
        &req,
        &[
            "limit", "offset", "count", "options", "format", "local", "lang",
        ],
    )?;
    let body = extract::json_body(&state, &req, payload).await?;
    let obj = &body.value;
    if obj.get("type").and_then(Value::as_str) != Some("Query") {
        return Err(NgsiError::bad_data(
            "the body must have \"type\": \"Query\"",
        ));
    }
    query_object_to_params(obj, &mut params)?;
    run_query(&state, &req, params, body.ctx).await
}

/// Maps the members of a Query object onto the equivalent URL parameters.
fn query_object_to_params(
    obj: &serde_json::Map<String, Value>,
    params: &mut HashMap<String, String>,
) -> Result<()> {
    let text = |v: &Value| -> Result<String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Array(items) => Ok(items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")),
            _ => Err(NgsiError::bad_data(
                "Query members must be strings or arrays of strings",
            )),
        }
    };
    if let Some(entities) = obj.get("entities") {
        let selectors = entities
            .as_array()
            .ok_or_else(|| NgsiError::bad_data("entities must be an array"))?;
        let (mut types, mut ids, mut patterns) = (Vec::new(), Vec::new(), Vec::new());
        for sel in selectors {
            let sel = sel
                .as_object()
                .ok_or_else(|| NgsiError::bad_data("each entities item must be an object"))?;
            for (k, v) in sel {
                match k.as_str() {
                    "type" => types.push(text(v)?),
                    "id" => {
                        match v {
                            Value::String(s) => ids.push(s.clone()),
                            // Clause 5.2.33 (1.9): id may list several entities.
                            Value::Array(items) if items.iter().all(Value::is_string) => ids
                                .extend(items.iter().filter_map(Value::as_str).map(str::to_string)),
                            _ => return Err(NgsiError::bad_data(
                                "an entity selector's id must be a string or an array of strings",
                            )),
                        }
                    }
                    "idPattern" => patterns.push(text(v)?),
                    other => {
                        return Err(NgsiError::bad_data(format!(
                            "unknown member '{other}' in an entity selector"
                        )))
                    }
                }
            }
            if !sel.contains_key("type") {
                return Err(NgsiError::bad_data("every entity selector needs a type"));
            }
        }
        // One query answers the union of the selectors when they only differ in ids.
        if patterns.len() > 1 || (!patterns.is_empty() && !ids.is_empty() && selectors.len() > 1) {
            return Err(NgsiError::unsupported(
                "combining several idPattern selectors is not supported; send one",
            ));
        }
        if !types.is_empty() {
            types.dedup();
            params.insert("type".into(), types.join(","));
        }
        if !ids.is_empty() {
            // An id takes precedence over an idPattern (clause 5.2.33).
            params.insert("id".into(), ids.join(","));
        } else if let Some(p) = patterns.pop() {
            params.insert("idPattern".into(), p);
        }
    }
    for key in ["attrs", "pick", "omit", "q", "scopeQ", "lang"] {
        if let Some(v) = obj.get(key) {
            params.insert(key.into(), text(v)?);
        }
    }
    if obj.contains_key("temporalQ") {
        return Err(NgsiError::bad_data(
            "temporalQ belongs to POST /temporal/entityOperations/query only",
        ));
    }
    if let Some(join) = obj.get("join") {
        params.insert("join".into(), text(join)?);
    }
    if let Some(level) = obj.get("joinLevel") {
        let n = level
            .as_u64()
            .filter(|n| *n >= 1)
            .ok_or_else(|| NgsiError::bad_data("joinLevel must be a positive integer"))?;
        params.insert("joinLevel".into(), n.to_string());
    }
    if let Some(ordering) = obj.get("ordering") {
        let ordering = ordering
            .as_object()
            .ok_or_else(|| NgsiError::bad_data("ordering must be an object"))?;
        if let Some(order_by) = ordering.get("orderBy") {
            params.insert("orderBy".into(), text(order_by)?);
        }
        if ordering.get("geometry").is_some_and(|g| !g.is_string()) {
            return Err(NgsiError::bad_data("ordering.geometry must be a string"));
        }
        if ordering.get("coordinates").is_some_and(|c| !c.is_array()) {
            return Err(NgsiError::bad_data("ordering.coordinates must be an array"));
        }
    }
    if let Some(geo) = obj.get("geoQ") {
        let geo = geo
            .as_object()
            .ok_or_else(|| NgsiError::bad_data("geoQ must be an object"))?;
        for (k, v) in geo {
            let value = match (k.as_str(), v) {
                ("coordinates", v) => v.to_string(),
                (_, Value::String(s)) => s.clone(),
                _ => {
                    return Err(NgsiError::bad_data(format!(
                        "geoQ member '{k}' must be a string"
                    )))
                }
            };
            params.insert(k.clone(), value);
        }
    }
    Ok(())
}

async fn run_query(
    state: &State,
    req: &HttpRequest,
    params: HashMap<String, String>,
    ctx: std::sync::Arc<ActiveContext>,
) -> Result<HttpResponse> {
    let tenant = extract::tenant(req)?;
    let media = extract::accept(req, true)?;
    let opts = render_options(&params, &ctx)?;
    if params.contains_key("geometryProperty") && media != MediaType::GeoJson {
        return Err(NgsiError::bad_data(
            "geometryProperty only applies to Accept: application/geo+json",
        ));
    }
    if params.get("joinLevel").is_some_and(|l| l == "0") {
        return Err(NgsiError::bad_data("joinLevel must be at least 1"));
    }
    let local = bool_param(&params, "local")?;
    // Clause 4.17: the type wildcard asks this broker only; `local=false` contradicts it.
    if params.get("type").is_some_and(|t| t == "*")
        && params.get("local").is_some_and(|l| l == "false")
    {
        return Err(NgsiError::bad_data(
            "type=* cannot be combined with local=false",
        ));
    }
    let mut q = selection(&params, &ctx)?;
    // Clause 5.7.2.4: a query must narrow by type, attributes, q or geoQ (ids alone,
    // system members alone or a q on system attributes alone are too wide), unless
    // it is local.
    let narrows_by_attrs = list(&params, "attrs")
        .is_some_and(|a| a.iter().any(|n| !SYSTEM_MEMBERS.contains(&n.as_str())));
    let narrows_by_q = q.q.as_mut().is_some_and(|e| {
        e.paths_mut().iter().any(|p| {
            !SYSTEM_MEMBERS
                .iter()
                .any(|m| p.attr == *m || p.attr == ctx.expand(m))
        })
    });
    if !local
        && q.types.is_none()
        && !params.contains_key("type")
        && !narrows_by_attrs
        && !narrows_by_q
        && q.scope_q.is_none()
        && q.geo_q.is_none()
    {
        return Err(NgsiError::bad_data(
            "give at least one of type, attrs, q, scopeQ or geoQ (or local=true): ids alone are too wide",
        ));
    }
    q.limit = number_param(&params, "limit", DEFAULT_LIMIT)?;
    q.offset = number_param(&params, "offset", 0)?;
    q.count = bool_param(&params, "count")?;
    if q.limit > MAX_LIMIT {
        return Err(NgsiError::new(
            ErrorKind::TooManyResults,
            format!("limit must not exceed {MAX_LIMIT}"),
        ));
    }
    if q.limit == 0 && !q.count {
        return Err(NgsiError::bad_data(
            "limit=0 is only allowed with count=true",
        ));
    }
    let order = params
        .get("orderBy")
        .map(|raw| crate::ngsi::order::OrderBy::parse(raw, &ctx))
        .transpose()?;
    // Ordered answers are sorted in the broker: the store returns every match, the
    // page is cut after sorting.
    let (limit, offset) = (q.limit, q.offset);
    if order.is_some() {
        q.limit = i64::MAX as usize;
        q.offset = 0;
    }
    let join = super::join::Join::from_params(&params)?;
    // The common page (normalized, no join, no sorting) is rendered straight from the
    // stored documents when the store hands them out.
    if order.is_none()
        && join.is_none()
        && media != MediaType::GeoJson
        && render_stored::renders(&opts)
    {
        if let Some(page) = state.store.query_documents(&tenant, &q).await? {
            if page.items.is_empty() && page.total.unwrap_or(0) == 0 {
                ensure_tenant(state, &tenant).await?;
            }
            let context_member =
                (media == MediaType::JsonLd).then(|| response::context_member(&ctx));
            let now = time::parse(&time::now()).map_err(NgsiError::internal)?;
            let mut text =
                Vec::with_capacity(page.items.iter().map(String::len).sum::<usize>() + 2);
            text.push(b'[');
            for (i, doc) in page.items.iter().enumerate() {
                if i > 0 {
                    text.push(b',');
                }
                render_stored::render_document(
                    doc,
                    &ctx,
                    &opts,
                    &now,
                    context_member.as_deref(),
                    &mut text,
                )?;
            }
            text.push(b']');
            return Ok(page_response(
                req,
                &q,
                media,
                &ctx,
                page.total,
                page.items.len(),
                page.total,
                text,
            ));
        }
    }
    let mut page = state.store.query(&tenant, &q).await?;
    let mut selected = page.total;
    if let Some(order) = &order {
        order.sort(&mut page.items);
        let matches = page.items.len() as u64;
        page.items = page.items.into_iter().skip(offset).take(limit).collect();
        // The whole selection was read: the links know whether more follows.
        selected = Some(matches);
        (q.limit, q.offset) = (limit, offset);
    }
    // An empty page may mean an unknown tenant: only then is the tenant looked up.
    if page.items.is_empty() && page.total.unwrap_or(0) == 0 {
        ensure_tenant(state, &tenant).await?;
    }
    let body = if let Some((join, level)) = join {
        Value::Array(
            super::join::render(state, &tenant, &page.items, &ctx, &opts, media, join, level)
                .await?,
        )
    } else if media == MediaType::GeoJson {
        let geo = params
            .get("geometryProperty")
            .map_or("location", String::as_str);
        response::geojson_context_preference(
            response::geojson_collection(
                page.items
                    .iter()
                    .map(|e| response::geojson_feature(e, &ctx, &opts, geo))
                    .collect(),
                &ctx,
            ),
            extract::prefers_json_body(req),
        )
    } else {
        Value::Array(
            page.items
                .iter()
                .map(|e| response::entity(e, &ctx, &opts, media))
                .collect(),
        )
    };
    let text = serde_json::to_string(&body).map_err(NgsiError::internal)?;
    Ok(page_response(
        req,
        &q,
        media,
        &ctx,
        page.total,
        page.items.len(),
        selected,
        text,
    ))
}

/// A page of entities with its count and paging links. `selected`: how many entities
/// the whole selection holds, when known.
#[allow(clippy::too_many_arguments)]
fn page_response(
    req: &HttpRequest,
    q: &EntityQuery,
    media: MediaType,
    ctx: &ActiveContext,
    total: Option<u64>,
    returned: usize,
    selected: Option<u64>,
    body: impl actix_web::body::MessageBody + 'static,
) -> HttpResponse {
    let mut b = response::builder(StatusCode::OK, media, ctx);
    if let Some(total) = total {
        b.insert_header(("NGSILD-Results-Count", total.to_string()));
    }
    for link in paging_links(req, q, returned, selected, media.as_str()) {
        b.append_header(("Link", link));
    }
    b.body(body)
}

/// `Link` headers to the previous and next pages (clause 6.3.19 / RFC 8288).
fn paging_links(
    req: &HttpRequest,
    q: &EntityQuery,
    returned: usize,
    total: Option<u64>,
    media: &str,
) -> Vec<String> {
    if q.limit == 0 || req.method() != actix_web::http::Method::GET {
        return Vec::new();
    }
    // The client's own parameters, as it encoded them but for the escapes no query needs
    // (clause 4.12's examples, and clients comparing links, write `urn:a:*` plainly),
    // with the page's limit and offset.
    let page_url = |offset: usize| {
        let mut pairs: Vec<String> = req
            .query_string()
            .split('&')
            .filter(|pair| {
                let key = pair.split('=').next().unwrap_or_default();
                !pair.is_empty() && key != "offset" && key != "limit"
            })
            .map(unescape_plain)
            .collect();
        pairs.push(format!("limit={}", q.limit));
        pairs.push(format!("offset={offset}"));
        pairs.sort();
        format!("{}?{}", req.path(), pairs.join("&"))
    };
    let mut links = Vec::new();
    if q.offset > 0 {
        links.push(format!(
            "<{}>; rel=\"prev\";type=\"{media}\"",
            page_url(q.offset.saturating_sub(q.limit))
        ));
    }
    let more = match total {
        Some(t) => (q.offset + returned) < t as usize,
        None => returned == q.limit,
    };
    if more {
        links.push(format!(
            "<{}>; rel=\"next\";type=\"{media}\"",
            page_url(q.offset + q.limit)
        ));
    }
    links
}

/// `text` with the percent-escapes of characters that mean nothing special in a query
/// value (letters, digits, `-._~:*/@!$()`) written plainly; every other escape (`%26`
/// for `&`, `%3D`, `%22`, `%2C`, `%20`, ...) is kept, so the link selects exactly what
/// the request did.
fn unescape_plain(text: &str) -> String {
    crate::ngsi::percent::decode_where(text, |b| {
        b.is_ascii_alphanumeric() || b"-._~:*/@!$()".contains(&b)
    })
}

/// System attributes: they select nothing a purge could be aimed at.
const SYSTEM_ATTRS: &[&str] = &["createdAt", "modifiedAt", "deletedAt", "observedAt"];

/// `DELETE /entities`: deletes the selected entities, or with `drop`/`keep` only some of
/// their attributes.
pub async fn purge(state: State, req: HttpRequest) -> Result<HttpResponse> {
    let tenant = extract::tenant(&req)?;
    let params = query_params(
        &req,
        &[
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
            "local",
            "drop",
            "keep",
        ],
    )?;
    let ctx = extract::context(&state, &req).await?;
    let local = bool_param(&params, "local")?;
    let real_attrs = list(&params, "attrs")
        .is_some_and(|a| a.iter().any(|n| !SYSTEM_ATTRS.contains(&n.as_str())));
    let real_q = match params.get("q") {
        Some(text) => {
            let mut expr = crate::ngsi::q::parse(text)?;
            let system_only = expr
                .paths_mut()
                .iter()
                .all(|p| SYSTEM_ATTRS.contains(&p.attr.as_str()));
            if system_only {
                return Err(NgsiError::bad_data(
                    "a purge q must test at least one attribute that is not a system attribute",
                ));
            }
            true
        }
        None => false,
    };
    if !(params.contains_key("type")
        || real_attrs
        || real_q
        || params.contains_key("geoQ")
        || params.contains_key("scopeQ")
        || local)
    {
        return Err(NgsiError::bad_data(
            "purging needs a selection: give type, a non-system attrs, q, geoQ or scopeQ (id or idPattern alone is not enough), or local=true",
        ));
    }
    let mut q = selection(&params, &ctx)?;
    q.attrs = q.attrs.map(|a| {
        a.into_iter()
            .filter(|n| !SYSTEM_ATTRS.iter().any(|s| ctx.expand(s) == *n))
            .collect()
    });
    if q.attrs.as_ref().is_some_and(Vec::is_empty) {
        q.attrs = None;
    }
    let drop = list(&params, "drop");
    let keep = list(&params, "keep");
    ensure_tenant(&state, &tenant).await?;
    match (drop, keep) {
        (Some(_), Some(_)) => Err(NgsiError::bad_data("drop and keep cannot be used together")),
        (None, None) => {
            state.store.purge(&tenant, &q).await?;
            Ok(HttpResponse::NoContent().finish())
        }
        (drop, keep) => {
            let names: HashSet<String> = drop
                .iter()
                .chain(keep.iter())
                .flatten()
                .map(|n| ctx.expand(n))
                .collect();
            let keep_mode = keep.is_some();
            let ids = state.store.ids(&tenant, &q).await?;
            let now = time::now();
            let ops = ids
                .into_iter()
                .map(|id| {
                    let (names, now) = (names.clone(), now.clone());
                    WriteOp::new(id, move |current| {
                        let Some(mut e) = current else {
                            return Ok(Effect::Keep(UpdateReport::default()));
                        };
                        e.attrs.retain(|name, _| names.contains(name) == keep_mode);
                        e.modified_at = now.clone();
                        Ok(Effect::Put(e, UpdateReport::default()))
                    })
                })
                .collect();
            for r in state.store.write(&tenant, ops).await? {
                r?;
            }
            Ok(HttpResponse::NoContent().finish())
        }
    }
}
