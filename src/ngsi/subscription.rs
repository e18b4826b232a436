//! Subscriptions (NGSI-LD 1.8 clause 5.2.12, 5.8): the model, its validation, its
//! representation, and what a write means for one subscription (matching). Knows
//! neither HTTP nor SQL.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::attribute::{self, Attribute};
use super::entity::Entity;
use super::geo::GeoQuery;
use super::ids::{validate_name, validate_type_name, validate_uri};
use super::q::{self, Expr};
use super::render::{self, Format, RenderOptions};
use super::scope::ScopeQuery;
use super::time;
use super::type_expr::TypeExpr;
use crate::error::{NgsiError, Result};
use crate::jsonld::ActiveContext;

pub const TRIGGERS: &[&str] = &[
    "entityCreated",
    "entityUpdated",
    "entityDeleted",
    "attributeCreated",
    "attributeUpdated",
    "attributeDeleted",
];
const DEFAULT_TRIGGERS: &[&str] = &["attributeCreated", "attributeUpdated"];
pub const NULL_URI: &str = "urn:ngsi-ld:null";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct EntitySelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_pattern: Option<String>,
    /// Expanded type IRI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    /// A type selector with operators (`A|B`, `A;B`, clause 4.17) as written; expanded
    /// with the request context when compiled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_query: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receiver_info: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifier_info: Vec<KeyValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct NotificationParams {
    /// Expanded attribute names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Vec<String>>,
    /// `id`/`type` as they are, attribute names expanded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omit: Option<Vec<String>>,
    pub format: String,
    #[serde(default)]
    pub sys_attrs: bool,
    #[serde(default)]
    pub show_changes: bool,
    pub endpoint: Endpoint,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<EntitySelector>,
    /// Expanded attribute names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watched_attributes: Option<Vec<String>>,
    pub notification_trigger: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_interval: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo_q: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    pub is_active: bool,
    pub notification: NotificationParams,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttling: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_id: Option<Vec<String>>,
    /// The context notifications are compacted with (a URL).
    pub jsonld_context: String,
    /// The context the names of the request were expanded with (a URL); q is expanded
    /// with it.
    pub request_context: String,
    pub created_at: String,
    pub modified_at: String,
}

/// Delivery bookkeeping kept beside the subscription.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStatus {
    pub times_sent: u64,
    pub times_failed: u64,
    pub last_notification: Option<String>,
    pub last_success: Option<String>,
    pub last_failure: Option<String>,
    /// Notifications dropped because the subscription's queue was full.
    pub dropped: u64,
}

impl Subscription {
    /// active / paused / expired (clause 5.2.12).
    pub fn status(&self, now: &str) -> &'static str {
        if self.is_expired(now) {
            "expired"
        } else if !self.is_active {
            "paused"
        } else {
            "active"
        }
    }

    pub fn is_expired(&self, now: &str) -> bool {
        self.expires_at.as_deref().is_some_and(|t| t <= now)
    }

    /// Types named by the entity selectors; `None` if some selector takes any type.
    pub fn selected_types(&self) -> Option<Vec<String>> {
        if self.entities.is_empty() || self.entities.iter().any(|e| e.r#type.is_none()) {
            return None;
        }
        Some(
            self.entities
                .iter()
                .filter_map(|e| e.r#type.clone())
                .collect(),
        )
    }

    pub fn format(&self) -> Format {
        match self.notification.format.as_str() {
            "keyValues" | "simplified" => Format::KeyValues,
            "concise" => Format::Concise,
            _ => Format::Normalized,
        }
    }
}

fn bad(detail: impl Into<String>) -> NgsiError {
    NgsiError::bad_data(detail)
}

fn string_member(obj: &Map<String, Value>, name: &str) -> Result<Option<String>> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("{name} must be a string"))),
    }
}

fn names_member(
    obj: &Map<String, Value>,
    name: &str,
    ctx: &ActiveContext,
) -> Result<Option<Vec<String>>> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|i| match i.as_str() {
                Some(s) => {
                    validate_name(s, name)?;
                    Ok(ctx.expand(s))
                }
                None => Err(bad(format!("{name} must be an array of attribute names"))),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(_) => Err(bad(format!(
            "{name} must be a non-empty array of attribute names"
        ))),
    }
}

fn positive_number(obj: &Map<String, Value>, name: &str) -> Result<Option<f64>> {
    match obj.get(name) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(n) if n > 0.0 && n.is_finite() => Ok(Some(n)),
            _ => Err(bad(format!("{name} must be a number greater than 0"))),
        },
    }
}

/// Checks an endpoint URI: absolute, http(s) or mqtt(s), with a host.
pub fn validate_endpoint_uri(uri: &str) -> Result<()> {
    let parsed = url::Url::parse(uri)
        .map_err(|e| bad(format!("endpoint.uri '{uri}' is not an absolute URI: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https" | "mqtt" | "mqtts") {
        return Err(bad(format!(
            "endpoint.uri '{uri}' must use http, https, mqtt or mqtts"
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad(format!("endpoint.uri '{uri}' has no host")));
    }
    Ok(())
}

fn key_values(v: Option<&Value>, name: &str) -> Result<Vec<KeyValue>> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let items = v
        .as_array()
        .ok_or_else(|| bad(format!("{name} must be an array of {{key, value}} objects")))?;
    items
        .iter()
        .map(|i| {
            let key = i.get("key").and_then(Value::as_str);
            let value = i.get("value").and_then(Value::as_str);
            match (key, value) {
                (Some(k), Some(v)) if !k.is_empty() => Ok(KeyValue {
                    key: k.to_string(),
                    value: v.to_string(),
                }),
                _ => Err(bad(format!(
                    "each {name} item must be an object with string key and value"
                ))),
            }
        })
        .collect()
}

fn parse_endpoint(v: Option<&Value>) -> Result<Endpoint> {
    let obj = match v {
        Some(Value::Object(o)) => o,
        Some(_) => return Err(bad("notification.endpoint must be an object")),
        None => return Err(bad("notification.endpoint is required")),
    };
    let uri =
        string_member(obj, "uri")?.ok_or_else(|| bad("notification.endpoint.uri is required"))?;
    validate_endpoint_uri(&uri)?;
    let accept = string_member(obj, "accept")?;
    if let Some(a) = &accept {
        if !matches!(
            a.as_str(),
            "application/json" | "application/ld+json" | "application/geo+json"
        ) {
            return Err(bad(format!(
                "endpoint.accept '{a}' must be application/json, application/ld+json or application/geo+json"
            )));
        }
    }
    let timeout = positive_number(obj, "timeout")?;
    let receiver_info = key_values(obj.get("receiverInfo"), "receiverInfo")?;
    for kv in &receiver_info {
        if actix_http_header_invalid(&kv.key, &kv.value) {
            return Err(bad(format!(
                "receiverInfo '{}' is not a valid header",
                kv.key
            )));
        }
    }
    let notifier_info = key_values(obj.get("notifierInfo"), "notifierInfo")?;
    Ok(Endpoint {
        uri,
        accept,
        timeout,
        receiver_info,
        notifier_info,
    })
}

/// Header names are tokens; values are visible text.
fn actix_http_header_invalid(key: &str, value: &str) -> bool {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    !key.chars().all(token) || value.chars().any(|c| c.is_control() && c != '\t')
}

fn parse_members_list(
    obj: &Map<String, Value>,
    name: &str,
    ctx: &ActiveContext,
) -> Result<Option<Vec<String>>> {
    let items: Vec<String> = match obj.get(name) {
        None => return Ok(None),
        Some(Value::String(s)) => s.split(',').map(|s| s.trim().to_string()).collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("notification.{name} must list names")))
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(bad(format!("notification.{name} must list names"))),
    };
    if items.is_empty() {
        return Err(bad(format!("notification.{name} must not be empty")));
    }
    items
        .into_iter()
        .map(|n| {
            validate_name(&n, name)?;
            Ok(if n == "id" || n == "type" {
                n
            } else {
                ctx.expand(&n)
            })
        })
        .collect::<Result<_>>()
        .map(Some)
}

fn parse_notification(v: Option<&Value>, ctx: &ActiveContext) -> Result<NotificationParams> {
    let obj = match v {
        Some(Value::Object(o)) => o,
        Some(_) => return Err(bad("notification must be an object")),
        None => return Err(bad("the subscription has no notification member")),
    };
    let attributes = names_member(obj, "attributes", ctx)?;
    let pick = parse_members_list(obj, "pick", ctx)?;
    let omit = parse_members_list(obj, "omit", ctx)?;
    if attributes.is_some() && (pick.is_some() || omit.is_some()) {
        return Err(bad(
            "notification.attributes cannot be used together with pick or omit",
        ));
    }
    if let (Some(p), Some(o)) = (&pick, &omit) {
        if let Some(both) = p.iter().find(|n| o.contains(n)) {
            return Err(bad(format!(
                "'{}' is both in notification.pick and notification.omit",
                ctx.compact(both)
            )));
        }
    }
    let format = match string_member(obj, "format")? {
        None => "normalized".to_string(),
        Some(f) if matches!(f.as_str(), "normalized" | "concise" | "keyValues") => f,
        Some(f) if f == "simplified" => "keyValues".to_string(),
        Some(f) => {
            return Err(bad(format!(
                "notification.format '{f}' must be normalized, concise or keyValues"
            )))
        }
    };
    let flag = |name: &str| -> Result<bool> {
        match obj.get(name) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(bad(format!("notification.{name} must be true or false"))),
        }
    };
    let show_changes = flag("showChanges")?;
    if show_changes && format == "keyValues" {
        return Err(bad(
            "notification.showChanges cannot be used with the keyValues format (there is no previous value to show)",
        ));
    }
    Ok(NotificationParams {
        attributes,
        pick,
        omit,
        format,
        sys_attrs: flag("sysAttrs")?,
        show_changes,
        endpoint: parse_endpoint(obj.get("endpoint"))?,
    })
}

fn parse_selectors(v: &Value, ctx: &ActiveContext) -> Result<Vec<EntitySelector>> {
    let items = match v {
        Value::Array(a) if !a.is_empty() => a,
        _ => {
            return Err(bad(
                "entities must be a non-empty array of entity selectors",
            ))
        }
    };
    items
        .iter()
        .map(|i| {
            let o = i
                .as_object()
                .ok_or_else(|| bad("each item of entities must be an object"))?;
            let id = string_member(o, "id")?;
            if let Some(id) = &id {
                validate_uri(id, "entities[].id")?;
            }
            let id_pattern = string_member(o, "idPattern")?;
            if let Some(p) = &id_pattern {
                regex::Regex::new(p)
                    .map_err(|e| bad(format!("idPattern '{p}' is not a valid regex: {e}")))?;
            }
            let (r#type, type_query) = match string_member(o, "type")? {
                Some(t) if t.contains([',', '|', ';', '(', ')']) => {
                    TypeExpr::parse(&t, ctx)?;
                    (None, Some(t))
                }
                Some(t) => {
                    validate_type_name(&t)?;
                    (Some(ctx.expand(&t)), None)
                }
                None => return Err(bad("each item of entities must have a type")),
            };
            Ok(EntitySelector {
                id,
                id_pattern,
                r#type,
                type_query,
            })
        })
        .collect()
}

/// Validates a geoQ; it is kept as written (names expanded when compiled).
fn parse_geo_q(v: &Value, ctx: &ActiveContext) -> Result<Value> {
    let o = v.as_object().ok_or_else(|| bad("geoQ must be an object"))?;
    let geometry = string_member(o, "geometry")?.ok_or_else(|| bad("geoQ.geometry is required"))?;
    let coordinates = match o.get("coordinates") {
        Some(Value::Array(a)) if !a.is_empty() => Value::Array(a.clone()),
        Some(Value::String(s)) => serde_json::from_str::<Value>(s)
            .ok()
            .filter(Value::is_array)
            .ok_or_else(|| bad("geoQ.coordinates is not a JSON array"))?,
        _ => return Err(bad("geoQ.coordinates is required (an array)")),
    };
    let georel = string_member(o, "georel")?.ok_or_else(|| bad("geoQ.georel is required"))?;
    let prop = string_member(o, "geoproperty")?;
    compile_geo_q(
        &json!({ "geometry": geometry, "coordinates": coordinates, "georel": georel, "geoproperty": prop }),
        ctx,
    )?;
    let mut out = json!({ "geometry": geometry, "coordinates": coordinates, "georel": georel });
    if let Some(p) = prop {
        out["geoproperty"] = Value::String(p);
    }
    Ok(out)
}

fn compile_geo_q(v: &Value, ctx: &ActiveContext) -> Result<GeoQuery> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
    let coordinates = v.get("coordinates").cloned().unwrap_or(Value::Null);
    GeoQuery::parse(
        s("georel"),
        s("geometry"),
        &coordinates.to_string(),
        v.get("geoproperty").and_then(Value::as_str),
        ctx,
    )
}

/// Reads a subscription body (the @context already taken out). `id`, the contexts and
/// the timestamps are filled in by the caller.
pub fn parse(body: &Map<String, Value>, ctx: &ActiveContext, now: &str) -> Result<Subscription> {
    let id = match body.get("id") {
        None => format!("urn:ngsi-ld:Subscription:{}", uuid::Uuid::new_v4().simple()),
        Some(Value::String(s)) => {
            validate_uri(s, "subscription id")?;
            s.clone()
        }
        Some(_) => return Err(bad("subscription id must be a URI string")),
    };
    match body.get("type") {
        Some(Value::String(t)) if t == "Subscription" => {}
        None => {
            return Err(bad(
                "the subscription has no type (it must be \"Subscription\")",
            ))
        }
        Some(_) => return Err(bad("the subscription type must be \"Subscription\"")),
    }
    let entities = match body.get("entities") {
        Some(v) => parse_selectors(v, ctx)?,
        None => Vec::new(),
    };
    let watched_attributes = names_member(body, "watchedAttributes", ctx)?;
    let time_interval = positive_number(body, "timeInterval")?;
    if entities.is_empty() && watched_attributes.is_none() {
        return Err(bad(
            "a subscription needs entities or watchedAttributes (or both)",
        ));
    }
    if time_interval.is_some() && watched_attributes.is_some() {
        return Err(bad(
            "timeInterval and watchedAttributes cannot be used together",
        ));
    }
    let throttling = match body.get("throttling") {
        None => None,
        Some(v) => match v.as_f64() {
            Some(n) if n > 0.0 && n.is_finite() => Some(n),
            _ => return Err(bad("throttling must be a number greater than 0")),
        },
    };
    if time_interval.is_some() && throttling.is_some() {
        return Err(bad("timeInterval and throttling cannot be used together"));
    }
    let notification_trigger = match body.get("notificationTrigger") {
        None => DEFAULT_TRIGGERS.iter().map(|s| s.to_string()).collect(),
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut out: Vec<String> = Vec::new();
            for i in items {
                let t = i
                    .as_str()
                    .ok_or_else(|| bad("notificationTrigger must be an array of strings"))?;
                if !TRIGGERS.contains(&t) {
                    return Err(bad(format!(
                        "unknown notificationTrigger '{t}': use {}",
                        TRIGGERS.join(", ")
                    )));
                }
                if !out.iter().any(|o| o == t) {
                    out.push(t.to_string());
                }
            }
            out
        }
        Some(_) => {
            return Err(bad(
                "notificationTrigger must be a non-empty array of trigger names",
            ))
        }
    };
    let q = string_member(body, "q")?;
    if let Some(text) = &q {
        q::parse(&super::percent::decode(text))
            .map_err(|e| bad(format!("invalid q: {}", e.detail)))?;
    }
    if let Some(csf) = body.get("csf") {
        let text = csf.as_str().ok_or_else(|| bad("csf must be a string"))?;
        q::parse(text).map_err(|e| bad(format!("invalid csf: {}", e.detail)))?;
    }
    let geo_q = body.get("geoQ").map(|g| parse_geo_q(g, ctx)).transpose()?;
    let scope_q = string_member(body, "scopeQ")?;
    if let Some(s) = &scope_q {
        ScopeQuery::parse(s)?;
    }
    let lang = string_member(body, "lang")?;
    let is_active = match body.get("isActive") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("isActive must be true or false")),
    };
    let expires_at = match string_member(body, "expiresAt")? {
        None => None,
        Some(s) => {
            let t = time::parse_datetime(&s)
                .map_err(|_| bad(format!("expiresAt '{s}' is not a date-time")))?;
            if t.as_str() <= now {
                return Err(bad(format!("expiresAt '{s}' is in the past")));
            }
            Some(t)
        }
    };
    let dataset_id = match body.get("datasetId") {
        None => None,
        Some(v) => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            let ids = items
                .into_iter()
                .map(|i| match i.as_str() {
                    Some(s) => validate_uri(s, "datasetId").map(|_| s.to_string()),
                    None => Err(bad("datasetId must be URIs")),
                })
                .collect::<Result<Vec<_>>>()?;
            Some(ids)
        }
    };
    if let Some(v) = body.get("jsonldContext") {
        match v.as_str() {
            Some(s) if url::Url::parse(s).is_ok() => {}
            _ => return Err(bad("jsonldContext must be a URI")),
        }
    }
    for (name, what) in [
        ("subscriptionName", "a string"),
        ("description", "a string"),
    ] {
        if body.get(name).is_some_and(|v| !v.is_string()) {
            return Err(bad(format!("{name} must be {what}")));
        }
    }
    Ok(Subscription {
        id,
        subscription_name: string_member(body, "subscriptionName")?,
        description: string_member(body, "description")?,
        entities,
        watched_attributes,
        notification_trigger,
        time_interval,
        q,
        geo_q,
        scope_q,
        lang,
        is_active,
        notification: parse_notification(body.get("notification"), ctx)?,
        expires_at,
        throttling,
        dataset_id,
        jsonld_context: String::new(),
        request_context: String::new(),
        created_at: now.to_string(),
        modified_at: now.to_string(),
    })
}

/// Members a PATCH cannot remove.
const MANDATORY: &[&str] = &["id", "type", "notification"];

/// Applies a fragment (PATCH, clause 5.8.2) and validates the result as a whole.
pub fn patch(
    current: &Subscription,
    fragment: &Map<String, Value>,
    ctx: &ActiveContext,
    now: &str,
) -> Result<Subscription> {
    if let Some(id) = fragment.get("id") {
        if id.as_str() != Some(current.id.as_str()) {
            return Err(bad("the id of a subscription cannot be changed"));
        }
    }
    let mut body = render(current, &DeliveryStatus::default(), ctx, now, false);
    // Kept from the current subscription unless the fragment names another one.
    body.remove("jsonldContext");
    for (k, v) in fragment {
        if v.is_null() || v.as_str() == Some(NULL_URI) {
            if MANDATORY.contains(&k.as_str()) {
                return Err(bad(format!("{k} is mandatory and cannot be removed")));
            }
            body.remove(k);
            continue;
        }
        body.insert(k.clone(), v.clone());
    }
    for status_member in ["status", "expiresAt"] {
        if status_member == "expiresAt" {
            // A past expiresAt kept from before is fine unless the fragment sets it.
            if !fragment.contains_key("expiresAt") && current.is_expired(now) {
                body.remove("expiresAt");
            }
        } else {
            body.remove(status_member);
        }
    }
    let mut next = parse(&body, ctx, now)?;
    if !fragment.contains_key("expiresAt") && current.is_expired(now) {
        next.expires_at = current.expires_at.clone();
    }
    next.id = current.id.clone();
    next.created_at = current.created_at.clone();
    next.modified_at = now.to_string();
    next.jsonld_context = current.jsonld_context.clone();
    next.request_context = current.request_context.clone();
    Ok(next)
}

/// The subscription as a client sees it, names compacted with `ctx`.
pub fn render(
    s: &Subscription,
    status: &DeliveryStatus,
    ctx: &ActiveContext,
    now: &str,
    sys_attrs: bool,
) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("id".into(), json!(s.id));
    o.insert("type".into(), json!("Subscription"));
    if let Some(n) = &s.subscription_name {
        o.insert("subscriptionName".into(), json!(n));
    }
    if let Some(d) = &s.description {
        o.insert("description".into(), json!(d));
    }
    if !s.entities.is_empty() {
        let items: Vec<Value> = s
            .entities
            .iter()
            .map(|e| {
                let mut m = Map::new();
                if let Some(id) = &e.id {
                    m.insert("id".into(), json!(id));
                }
                if let Some(p) = &e.id_pattern {
                    m.insert("idPattern".into(), json!(p));
                }
                if let Some(t) = &e.r#type {
                    m.insert("type".into(), json!(ctx.compact(t)));
                }
                if let Some(t) = &e.type_query {
                    m.insert("type".into(), json!(t));
                }
                Value::Object(m)
            })
            .collect();
        o.insert("entities".into(), Value::Array(items));
    }
    let compact_all =
        |names: &[String]| -> Value { names.iter().map(|n| json!(ctx.compact(n))).collect() };
    if let Some(w) = &s.watched_attributes {
        o.insert("watchedAttributes".into(), compact_all(w));
    }
    o.insert(
        "notificationTrigger".into(),
        json!(s.notification_trigger.clone()),
    );
    if let Some(t) = s.time_interval {
        o.insert("timeInterval".into(), number(t));
    }
    if let Some(q) = &s.q {
        o.insert("q".into(), json!(q));
    }
    if let Some(g) = &s.geo_q {
        o.insert("geoQ".into(), g.clone());
    }
    if let Some(sq) = &s.scope_q {
        o.insert("scopeQ".into(), json!(sq));
    }
    if let Some(l) = &s.lang {
        o.insert("lang".into(), json!(l));
    }
    // isActive is shown when it differs from its default (true), like other defaults.
    if !s.is_active {
        o.insert("isActive".into(), json!(false));
    }
    o.insert("status".into(), json!(s.status(now)));
    if let Some(e) = &s.expires_at {
        o.insert("expiresAt".into(), json!(e));
    }
    if let Some(t) = s.throttling {
        o.insert("throttling".into(), number(t));
    }
    if let Some(d) = &s.dataset_id {
        o.insert("datasetId".into(), json!(d));
    }
    let n = &s.notification;
    let mut nm = Map::new();
    if let Some(a) = &n.attributes {
        nm.insert("attributes".into(), compact_all(a));
    }
    let members = |names: &[String]| -> Value {
        names
            .iter()
            .map(|m| {
                if m == "id" || m == "type" {
                    json!(m)
                } else {
                    json!(ctx.compact(m))
                }
            })
            .collect()
    };
    if let Some(p) = &n.pick {
        nm.insert("pick".into(), members(p));
    }
    if let Some(p) = &n.omit {
        nm.insert("omit".into(), members(p));
    }
    nm.insert("format".into(), json!(n.format));
    if n.sys_attrs {
        nm.insert("sysAttrs".into(), json!(true));
    }
    if n.show_changes {
        nm.insert("showChanges".into(), json!(true));
    }
    let mut ep = Map::new();
    ep.insert("uri".into(), json!(n.endpoint.uri));
    ep.insert(
        "accept".into(),
        json!(n.endpoint.accept.as_deref().unwrap_or("application/json")),
    );
    if let Some(t) = n.endpoint.timeout {
        ep.insert("timeout".into(), number(t));
    }
    if !n.endpoint.receiver_info.is_empty() {
        ep.insert("receiverInfo".into(), json!(n.endpoint.receiver_info));
    }
    if !n.endpoint.notifier_info.is_empty() {
        ep.insert("notifierInfo".into(), json!(n.endpoint.notifier_info));
    }
    nm.insert("endpoint".into(), Value::Object(ep));
    if status.times_sent > 0 {
        let failed = status.last_failure.is_some()
            && status.last_failure.as_deref() >= status.last_success.as_deref();
        nm.insert("status".into(), json!(if failed { "failed" } else { "ok" }));
    }
    if status.times_sent > 0 {
        nm.insert("timesSent".into(), json!(status.times_sent));
    }
    if status.times_failed > 0 {
        nm.insert("timesFailed".into(), json!(status.times_failed));
    }
    for (k, v) in [
        ("lastNotification", &status.last_notification),
        ("lastSuccess", &status.last_success),
        ("lastFailure", &status.last_failure),
    ] {
        if let Some(v) = v {
            nm.insert(k.into(), json!(v));
        }
    }
    if status.dropped > 0 {
        nm.insert("droppedNotifications".into(), json!(status.dropped));
    }
    o.insert("notification".into(), Value::Object(nm));
    o.insert("jsonldContext".into(), json!(s.jsonld_context));
    if sys_attrs {
        o.insert("createdAt".into(), json!(s.created_at));
        o.insert("modifiedAt".into(), json!(s.modified_at));
    }
    o
}

fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

// ---------------------------------------------------------------------------------
// Matching

/// What a write did to an entity, in the terms of notification triggers.
#[derive(Debug, Default, Clone)]
pub struct Change {
    pub entity_created: bool,
    pub entity_deleted: bool,
    pub created: HashSet<String>,
    pub updated: HashSet<String>,
    pub deleted: HashSet<String>,
    /// Deleted instances: (attribute, datasetId, attribute type).
    pub deleted_instances: Vec<(String, Option<String>, String)>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        !self.entity_created
            && !self.entity_deleted
            && self.created.is_empty()
            && self.updated.is_empty()
            && self.deleted.is_empty()
    }
}

fn instance_key(a: &Attribute) -> Option<&str> {
    a.get("datasetId").and_then(Value::as_str)
}

fn kind_of(a: &Attribute) -> String {
    a.get("type")
        .and_then(Value::as_str)
        .unwrap_or(attribute::PROPERTY)
        .to_string()
}

/// Compares the entity before and after a write.
pub fn derive_change(before: Option<&Entity>, after: Option<&Entity>) -> Change {
    let mut c = Change::default();
    match (before, after) {
        (None, Some(a)) => {
            c.entity_created = true;
            c.created.extend(a.attrs.keys().cloned());
        }
        (Some(b), None) => {
            c.entity_deleted = true;
            for (name, instances) in &b.attrs {
                c.deleted.insert(name.clone());
                for i in instances {
                    c.deleted_instances.push((
                        name.clone(),
                        instance_key(i).map(str::to_string),
                        kind_of(i),
                    ));
                }
            }
        }
        (Some(b), Some(a)) => {
            for (name, after_instances) in &a.attrs {
                match b.attrs.get(name) {
                    None => {
                        c.created.insert(name.clone());
                    }
                    Some(before_instances) => {
                        for i in after_instances {
                            match before_instances
                                .iter()
                                .find(|p| instance_key(p) == instance_key(i))
                            {
                                None => {
                                    c.created.insert(name.clone());
                                }
                                Some(p) if p != i => {
                                    c.updated.insert(name.clone());
                                }
                                Some(_) => {}
                            }
                        }
                    }
                }
            }
            for (name, before_instances) in &b.attrs {
                let after_instances = a.attrs.get(name);
                for i in before_instances {
                    let gone = after_instances
                        .is_none_or(|ai| !ai.iter().any(|x| instance_key(x) == instance_key(i)));
                    if gone {
                        c.deleted.insert(name.clone());
                        c.deleted_instances.push((
                            name.clone(),
                            instance_key(i).map(str::to_string),
                            kind_of(i),
                        ));
                    }
                }
            }
        }
        (None, None) => {}
    }
    c
}

/// A subscription ready for matching: q parsed and expanded, patterns compiled.
#[derive(Debug)]
pub struct CompiledSubscription {
    pub sub: Subscription,
    pub q: Option<Expr>,
    patterns: Vec<Option<regex::Regex>>,
    /// One per selector: its type selector, compiled.
    pub types: Vec<Option<TypeExpr>>,
    geo: Option<GeoQuery>,
    scope: Option<ScopeQuery>,
}

impl CompiledSubscription {
    /// `request_ctx` is the context the subscription's names were written with.
    pub fn compile(sub: Subscription, request_ctx: &ActiveContext) -> Result<Self> {
        let q = match &sub.q {
            Some(text) => {
                let mut e = q::parse(&super::percent::decode(text))?;
                q::expand(&mut e, request_ctx);
                Some(e)
            }
            None => None,
        };
        let patterns = sub
            .entities
            .iter()
            .map(|e| e.id_pattern.as_deref().map(regex::Regex::new).transpose())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("invalid idPattern: {e}")))?;
        let geo = sub
            .geo_q
            .as_ref()
            .map(|g| compile_geo_q(g, request_ctx))
            .transpose()?;
        let scope = sub.scope_q.as_deref().map(ScopeQuery::parse).transpose()?;
        let types = sub
            .entities
            .iter()
            .map(|e| match (&e.r#type, &e.type_query) {
                (Some(t), _) => Ok(Some(TypeExpr::Type(t.clone()))),
                (None, Some(q)) => TypeExpr::parse(q, request_ctx).map(Some),
                (None, None) => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            sub,
            q,
            patterns,
            types,
            geo,
            scope,
        })
    }

    /// True if some entity selector selects the entity (or there are none).
    pub fn selects(&self, e: &Entity) -> bool {
        if self.sub.entities.is_empty() {
            return true;
        }
        self.sub
            .entities
            .iter()
            .zip(&self.patterns)
            .zip(&self.types)
            .any(|((sel, pat), ty)| {
                ty.as_ref().is_none_or(|t| t.matches(&e.types))
                    && sel.id.as_ref().is_none_or(|id| *id == e.id)
                    && pat.as_ref().is_none_or(|p| p.is_match(&e.id))
            })
    }

    /// The types a write's entity must have for this subscription to possibly match;
    /// `None` if any type may match (the index then always considers it).
    pub fn index_types(&self) -> Option<Vec<String>> {
        if self.types.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        for t in &self.types {
            out.extend(t.as_ref()?.as_alternatives()?);
        }
        Some(out)
    }

    /// True if the entity passes q, geoQ and scopeQ.
    pub fn filters_pass(&self, e: &Entity) -> bool {
        if let Some(q) = &self.q {
            if !q::matches(q, e) {
                return false;
            }
        }
        if let Some(g) = &self.geo {
            if !g.matches(e) {
                return false;
            }
        }
        if let Some(sq) = &self.scope {
            if !sq.matches(e.scope.as_deref()) {
                return false;
            }
        }
        true
    }

    /// True if the change fires one of the subscription's triggers, given its
    /// watchedAttributes.
    pub fn triggered_by(&self, c: &Change, e: &Entity) -> bool {
        let watched = self.sub.watched_attributes.as_ref();
        let watched_in = |set: &HashSet<String>| -> bool {
            match watched {
                None => !set.is_empty(),
                Some(w) => w.iter().any(|a| set.contains(a)),
            }
        };
        let entity_has_watched =
            || watched.is_none_or(|w| w.iter().any(|a| e.attrs.contains_key(a)));
        self.sub
            .notification_trigger
            .iter()
            .any(|t| match t.as_str() {
                "entityCreated" => c.entity_created && entity_has_watched(),
                "entityDeleted" => c.entity_deleted && entity_has_watched(),
                "entityUpdated" => {
                    !c.entity_created
                        && !c.entity_deleted
                        && (watched.is_none()
                            || watched_in(&c.created)
                            || watched_in(&c.updated)
                            || watched_in(&c.deleted))
                }
                "attributeCreated" => watched_in(&c.created),
                "attributeUpdated" => watched_in(&c.updated),
                "attributeDeleted" => watched_in(&c.deleted),
                _ => false,
            })
    }
}

/// The entity a notification shows for a write: the entity after it, with deleted
/// attribute instances as null-valued instances; after a deletion, every attribute as
/// null (and `deletedAt`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifiedEntity {
    pub entity: Entity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Entity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
}

/// The null instance a notification shows for a deleted one: same type, the null value,
/// its system timestamps and `deletedAt`; with `datasetId` when only that instance went.
fn null_instance(deleted: &Attribute, keep_dataset: bool, now: &str) -> Attribute {
    let kind = kind_of(deleted);
    let mut a = Map::new();
    a.insert("type".into(), json!(kind));
    let null = if kind == attribute::LANGUAGE_PROPERTY {
        json!({ "@none": NULL_URI })
    } else {
        json!(NULL_URI)
    };
    a.insert(attribute::value_member(&kind).into(), null);
    if keep_dataset {
        if let Some(d) = instance_key(deleted) {
            a.insert("datasetId".into(), json!(d));
        }
    }
    for member in ["createdAt", "modifiedAt"] {
        if let Some(v) = deleted.get(member) {
            a.insert(member.into(), v.clone());
        }
    }
    a.insert("deletedAt".into(), json!(now));
    a
}

pub fn notified_entity(
    before: Option<&Entity>,
    after: Option<&Entity>,
    _change: &Change,
    with_previous: bool,
    now: &str,
) -> Option<NotifiedEntity> {
    let base = after.or(before)?;
    let mut entity = base.clone();
    let deleted_at = after.is_none().then(|| now.to_string());
    if after.is_none() {
        entity.attrs.clear();
    }
    if let Some(b) = before {
        for (name, instances) in &b.attrs {
            match after.and_then(|a| a.attrs.get(name)) {
                // The whole attribute is gone: one null instance stands for it.
                None => {
                    if let Some(first) = instances.first() {
                        entity
                            .attrs
                            .insert(name.clone(), vec![null_instance(first, false, now)]);
                    }
                }
                Some(remaining) => {
                    for i in instances {
                        if !remaining.iter().any(|r| instance_key(r) == instance_key(i)) {
                            entity
                                .attrs
                                .entry(name.clone())
                                .or_default()
                                .push(null_instance(i, true, now));
                        }
                    }
                }
            }
        }
    }
    Some(NotifiedEntity {
        entity,
        previous: if with_previous { before.cloned() } else { None },
        deleted_at,
    })
}

/// Renders one notified entity for a subscription (format, attributes, pick/omit,
/// sysAttrs, lang, datasetId, showChanges).
pub fn render_notified(
    n: &NotifiedEntity,
    sub: &Subscription,
    ctx: &ActiveContext,
) -> Map<String, Value> {
    let mut entity = n.entity.clone();
    let params = &sub.notification;
    if n.deleted_at.is_some() && !params.show_changes {
        // A deleted entity shows its watched attributes (as null), not all of them.
        let watched = sub.watched_attributes.as_deref().unwrap_or_default();
        entity.attrs.retain(|name, _| watched.contains(name));
    }
    if !params.sys_attrs {
        for instances in entity.attrs.values_mut() {
            for i in instances.iter_mut() {
                i.remove("deletedAt");
            }
        }
    }
    if let Some(ids) = &sub.dataset_id {
        for instances in entity.attrs.values_mut() {
            instances.retain(|i| instance_key(i).is_some_and(|d| ids.iter().any(|x| x == d)));
        }
        entity.attrs.retain(|_, v| !v.is_empty());
    }
    let mut opts = RenderOptions {
        format: sub.format(),
        sys_attrs: params.sys_attrs,
        lang: sub.lang.clone(),
        ..Default::default()
    };
    if let Some(a) = &params.attributes {
        opts.attrs = Some(a.iter().cloned().collect());
    }
    if let Some(p) = &params.pick {
        opts.attrs = Some(
            p.iter()
                .filter(|m| *m != "id" && *m != "type")
                .cloned()
                .collect(),
        );
        opts.picked_members = Some(
            p.iter()
                .filter(|m| *m == "id" || *m == "type")
                .cloned()
                .collect(),
        );
    }
    if let Some(o) = &params.omit {
        opts.omit = o.iter().cloned().collect();
    }
    let mut out = render::render_entity(&entity, ctx, &opts);
    if opts.format == Format::KeyValues {
        // Several instances in keyValues: a `dataset` map by datasetId (`@none` for the
        // default instance).
        for (name, instances) in &entity.attrs {
            let key = ctx.compact(name);
            if instances.len() < 2 || !out.contains_key(&key) {
                continue;
            }
            let mut by_dataset = Map::new();
            for i in instances {
                let id = instance_key(i).unwrap_or("@none").to_string();
                by_dataset.insert(id, render::render_attribute(i, ctx, &opts));
            }
            out.insert(key, json!({ "dataset": by_dataset }));
        }
    }
    if opts.sys_attrs && opts.format == Format::KeyValues {
        out.insert("createdAt".into(), json!(entity.created_at));
        out.insert("modifiedAt".into(), json!(entity.modified_at));
    }
    if let Some(d) = &n.deleted_at {
        out.insert("deletedAt".into(), json!(d));
    }
    if params.show_changes && opts.format != Format::KeyValues {
        if let Some(prev) = &n.previous {
            add_previous(&mut out, &entity, prev, ctx);
        }
    }
    out
}

fn previous_member(kind: &str) -> &'static str {
    match kind {
        attribute::RELATIONSHIP => "previousObject",
        attribute::LANGUAGE_PROPERTY => "previousLanguageMap",
        attribute::JSON_PROPERTY => "previousJson",
        attribute::VOCAB_PROPERTY => "previousVocab",
        attribute::LIST_PROPERTY => "previousValueList",
        attribute::LIST_RELATIONSHIP => "previousObjectList",
        _ => "previousValue",
    }
}

fn add_previous(out: &mut Map<String, Value>, entity: &Entity, prev: &Entity, ctx: &ActiveContext) {
    for (name, instances) in &entity.attrs {
        let Some(before) = prev.attrs.get(name) else {
            continue;
        };
        let key = ctx.compact(name);
        let Some(rendered) = out.get_mut(&key) else {
            continue;
        };
        let mut slots: Vec<&mut Value> = match rendered {
            Value::Array(items) => items.iter_mut().collect(),
            other => vec![other],
        };
        for (inst, slot) in instances.iter().zip(slots.iter_mut()) {
            let Some(p) = before
                .iter()
                .find(|p| instance_key(p) == instance_key(inst))
            else {
                continue;
            };
            let kind = kind_of(p);
            let member = attribute::value_member(&kind);
            let (Some(old), Some(obj)) = (p.get(member), slot.as_object_mut()) else {
                continue;
            };
            let mut old = old.clone();
            if kind == attribute::VOCAB_PROPERTY {
                if let Value::String(s) = &old {
                    old = json!(ctx.compact(s));
                }
            }
            if inst.get(member) != p.get(member) {
                obj.insert(previous_member(&kind).into(), old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ActiveContext {
        ActiveContext::new(Vec::new(), None, Value::Null)
    }

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn entity(attrs: Value) -> Entity {
        serde_json::from_value(json!({
            "id": "urn:ngsi-ld:T:1", "type": ["https://example.org/T"],
            "createdAt": "2024-01-01T00:00:00.000000Z", "modifiedAt": "2024-01-01T00:00:00.000000Z",
            "attrs": attrs
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    const NOW: &str = "2024-06-01T00:00:00.000000Z";

    #[test]
    fn defaults_and_validation() {
        let s = parse(
            &body(
                json!({ "type": "Subscription", "entities": [{ "type": "T" }],
                          "notification": { "endpoint": { "uri": "http://h/n" } } }),
            ),
            &ctx(),
            NOW,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(s.id.starts_with("urn:ngsi-ld:Subscription:"));
        assert_eq!(s.notification_trigger, DEFAULT_TRIGGERS);
        assert!(s.is_active);
        assert_eq!(s.notification.format, "normalized");
        assert_eq!(s.status(NOW), "active");
        for bad_body in [
            json!({ "type": "Subscription", "entities": [{ "type": "T" }], "notification": { "endpoint": { "uri": "mailto:a@b" } } }),
            json!({ "type": "Subscription", "entities": [{ "type": "T" }], "timeInterval": 0, "notification": { "endpoint": { "uri": "http://h/n" } } }),
            json!({ "type": "Subscription", "entities": [{ "type": "T" }], "notification": { "format": "keyValues", "showChanges": true, "endpoint": { "uri": "http://h/n" } } }),
            json!({ "type": "Subscription", "entities": [{ "type": "T" }], "notification": { "attributes": ["a"], "pick": ["b"], "endpoint": { "uri": "http://h/n" } } }),
        ] {
            assert!(
                parse(&body(bad_body.clone()), &ctx(), NOW).is_err(),
                "{bad_body}"
            );
        }
    }

    #[test]
    fn patch_replaces_members_and_keeps_identity() {
        let s = parse(
            &body(json!({ "id": "urn:x:s", "type": "Subscription", "entities": [{ "type": "T" }], "q": "a>1",
                          "notification": { "format": "keyValues", "endpoint": { "uri": "http://h/n" } } })),
            &ctx(),
            NOW,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let later = "2024-06-02T00:00:00.000000Z";
        let p = patch(
            &s,
            &body(json!({ "isActive": false, "q": null })),
            &ctx(),
            later,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.id, "urn:x:s");
        assert_eq!(p.created_at, NOW);
        assert_eq!(p.modified_at, later);
        assert_eq!(p.status(later), "paused");
        assert!(p.q.is_none());
        assert_eq!(p.notification.format, "keyValues");
        // notification is replaced as a whole: without an endpoint it is invalid.
        assert!(patch(
            &s,
            &body(json!({ "notification": { "format": "normalized" } })),
            &ctx(),
            later
        )
        .is_err());
        assert!(patch(&s, &body(json!({ "notification": null })), &ctx(), later).is_err());
    }

    #[test]
    fn changes_and_null_instances() {
        let before = entity(json!({
            "https://example.org/a": [{ "type": "Property", "value": 1 }],
            "https://example.org/b": [{ "type": "Property", "value": 1 },
                                      { "type": "Property", "value": 2, "datasetId": "urn:ds:2" }],
            "https://example.org/c": [{ "type": "Relationship", "object": "urn:x:o" }]
        }));
        let after = entity(json!({
            "https://example.org/a": [{ "type": "Property", "value": 5 }],
            "https://example.org/b": [{ "type": "Property", "value": 1 }],
            "https://example.org/d": [{ "type": "Property", "value": 0 }]
        }));
        let c = derive_change(Some(&before), Some(&after));
        assert!(c.updated.contains("https://example.org/a"));
        assert!(c.created.contains("https://example.org/d"));
        assert!(
            c.deleted.contains("https://example.org/b")
                && c.deleted.contains("https://example.org/c")
        );
        let n = notified_entity(Some(&before), Some(&after), &c, true, NOW)
            .unwrap_or_else(|| panic!("none"));
        let b = &n.entity.attrs["https://example.org/b"];
        assert_eq!(
            b.len(),
            2,
            "the remaining instance and the deleted one as null"
        );
        assert_eq!(b[1]["value"], NULL_URI);
        assert_eq!(b[1]["datasetId"], "urn:ds:2");
        let gone = &n.entity.attrs["https://example.org/c"];
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0]["object"], NULL_URI);
        assert!(n.previous.is_some());

        let deleted = derive_change(Some(&before), None);
        assert!(deleted.entity_deleted);
        let n = notified_entity(Some(&before), None, &deleted, false, NOW)
            .unwrap_or_else(|| panic!("none"));
        assert_eq!(n.deleted_at.as_deref(), Some(NOW));
        assert!(n.entity.attrs.values().all(|i| i.len() == 1));
    }
}
