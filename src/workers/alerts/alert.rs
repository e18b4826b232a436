//! Alerts as NGSI-LD entities of the Smart Data Model `Alert` (dataModel.Alert).
//!
//! Term IRIs are those of the upstream dataModel.Alert @context
//! (`https://raw.githubusercontent.com/smart-data-models/dataModel.Alert/master/context.jsonld`),
//! of which `contexts/dataModel.Alert-subset.jsonld` (compiled in under that URL) keeps
//! the terms used here. The attributes the model lacks (`alertStatus`, `refRule`,
//! `refDevice`) are in the NGSI-LD default vocabulary, so `q=alertStatus=="open"` works
//! with any context.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::rule::Rule;
use crate::error::Result;
use crate::jsonld::active::DEFAULT_VOCAB;
use crate::jsonld::ActiveContext;
use crate::ngsi::entity::{parse_body, BodyKind};
use crate::ngsi::operations::{self, UpdateReport};
use crate::ngsi::Entity;
use crate::store::{Effect, WriteOp};

const ALERT_NS: &str = "https://smartdatamodels.org/dataModel.Alert/";
const SDM_NS: &str = "https://smartdatamodels.org/";
const DESCRIPTION: &str = "http://purl.org/dc/terms/description";
const LOCATION: &str = "https://uri.etsi.org/ngsi-ld/location";

pub fn alert_type() -> String {
    format!("{ALERT_NS}Alert")
}
fn alert(term: &str) -> String {
    format!("{ALERT_NS}{term}")
}
fn own(term: &str) -> String {
    format!("{DEFAULT_VOCAB}{term}")
}
pub fn status_attr() -> String {
    own("alertStatus")
}
pub fn rule_attr() -> String {
    own("refRule")
}
pub fn source_attr() -> String {
    alert("alertSource")
}

/// The relationship object of an attribute's default instance.
pub fn object_of(e: &Entity, iri: &str) -> Option<String> {
    e.value_of(iri).and_then(Value::as_str).map(str::to_string)
}

/// One alert per (rule, entity, episode): the same episode always gets the same id, so
/// raising it twice (after a restart, say) finds it there and writes nothing.
pub fn alert_id(rule: &str, entity: &str, episode_us: i64) -> String {
    let digest = Sha256::digest(format!("{rule}\n{entity}").as_bytes());
    let short = hex::encode(&digest[..8]);
    format!("urn:ngsi-ld:Alert:{short}:{episode_us}")
}

/// The Device an entity names with `refDevice` (whatever vocabulary expanded it).
fn ref_device(e: &Entity) -> Option<String> {
    e.attrs
        .keys()
        .find(|k| k.ends_with("/refDevice") || k.ends_with("#refDevice"))
        .and_then(|k| object_of(e, k))
}

fn datetime(t: &str) -> Value {
    json!({ "type": "Property", "value": { "@type": "DateTime", "@value": t } })
}

/// The write that raises an alert on `source` (no-op if that episode's alert exists).
pub fn raise(
    rule: &Rule,
    source: &Entity,
    episode_start: &str,
    episode_us: i64,
    description: String,
    ctx: &ActiveContext,
    now: &str,
) -> Result<WriteOp> {
    let id = alert_id(&rule.id, &source.id, episode_us);
    let mut body = Map::new();
    body.insert("id".into(), json!(id));
    body.insert("type".into(), json!(alert_type()));
    let prop = |v: Value| json!({ "type": "Property", "value": v });
    body.insert(alert("category"), prop(json!(rule.category)));
    body.insert(alert("subCategory"), prop(json!(rule.sub_category)));
    body.insert(alert("severity"), prop(json!(rule.severity)));
    body.insert(
        alert("alertSource"),
        json!({ "type": "Relationship", "object": source.id }),
    );
    body.insert(
        rule_attr(),
        json!({ "type": "Relationship", "object": rule.id }),
    );
    if let Some(device) = ref_device(source) {
        body.insert(
            own("refDevice"),
            json!({ "type": "Relationship", "object": device }),
        );
    }
    body.insert(alert("dateIssued"), datetime(now));
    body.insert(format!("{SDM_NS}validFrom"), datetime(episode_start));
    body.insert(status_attr(), prop(json!("open")));
    body.insert(DESCRIPTION.into(), prop(json!(description)));
    if let Some(attr) = rule.reported_attribute() {
        if let Some(v) = source
            .value_of(&attr)
            .filter(|v| v.is_number() || v.is_string())
        {
            body.insert(alert("measuredValue"), prop(v.clone()));
        }
    }
    if let Some(loc) = source.instance(LOCATION) {
        let mut loc = loc.clone();
        loc.retain(|k, _| k == "type" || k == "value");
        body.insert(LOCATION.into(), Value::Object(loc));
    }
    let fragment = parse_body(&body, ctx, now, BodyKind::Entity)?;
    let entity = Entity::create(fragment, now)?;
    Ok(WriteOp::new(id, move |current| match current {
        Some(_) => Ok(Effect::Keep(UpdateReport::default())),
        None => Ok(Effect::Put(entity.clone(), UpdateReport::default())),
    }))
}

/// The write that closes an open alert (return to normal); no-op if it is not open.
pub fn close(alert_id: &str, ctx: &ActiveContext, now: &str) -> Result<WriteOp> {
    let mut body = Map::new();
    body.insert(
        status_attr(),
        json!({ "type": "Property", "value": "closed" }),
    );
    body.insert(alert("validTo"), datetime(now));
    let fragment = parse_body(&body, ctx, now, BodyKind::Fragment { allow_null: false })?;
    let now = now.to_string();
    let status = status_attr();
    Ok(WriteOp::new(alert_id, move |current| match current {
        Some(mut e) if e.value_of(&status) == Some(&json!("open")) => {
            let report = operations::append(&mut e, fragment.clone(), false, &now);
            Ok(Effect::Put(e, report))
        }
        _ => Ok(Effect::Keep(UpdateReport::default())),
    }))
}
