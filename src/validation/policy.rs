//! Validation policies: entities of type `ValidationPolicy` in the tenant, so they are
//! managed over the NGSI-LD API, survive restarts and are exported like any entity.
//!
//! ```json
//! { "id": "urn:ngsi-ld:ValidationPolicy:water", "type": "ValidationPolicy",
//!   "entityType": "WaterObserved", "validationMode": "enforce" }
//! ```
//! `entityType` names a bundled model (or a list of them, or `*` for every model);
//! written with the core context (no @context), so both names are in the default
//! vocabulary. The cache is updated by the store's write guard on every policy write.

use std::collections::HashMap;

use parking_lot::RwLock;
use serde_json::Value;

use super::{models, Mode};
use crate::error::{NgsiError, Result};
use crate::jsonld::active::DEFAULT_VOCAB;
use crate::ngsi::Entity;

pub const POLICY_TYPE: &str = "ValidationPolicy";

pub fn policy_type_iri() -> String {
    format!("{DEFAULT_VOCAB}{POLICY_TYPE}")
}

/// Applies to every bundled model.
const ALL: &str = "*";

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub models: Vec<String>,
    pub mode: Mode,
}

/// Reads a policy entity; an error names what is wrong (the write is refused).
pub fn parse(entity: &Entity) -> Result<Policy> {
    let attr = |name: &str| entity.value_of(&format!("{DEFAULT_VOCAB}{name}"));
    let models = match attr("entityType") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| NgsiError::bad_data("entityType must be a string or strings"))?,
        _ => {
            return Err(NgsiError::bad_data(
                "a ValidationPolicy needs entityType (a model name, a list of them, or *)",
            ))
        }
    };
    for m in &models {
        if m != ALL && models::find(m).is_none() {
            return Err(NgsiError::bad_data(format!(
                "entityType {m} is not a bundled Smart Data Model (see smart-data-models/)"
            )));
        }
    }
    let mode = match attr("validationMode") {
        Some(Value::String(s)) => Mode::parse(s)?,
        _ => {
            return Err(NgsiError::bad_data(
                "a ValidationPolicy needs validationMode: off, warn or enforce",
            ))
        }
    };
    Ok(Policy { models, mode })
}

/// The policies of every tenant, by policy entity id.
#[derive(Default)]
pub struct Policies {
    by_tenant: RwLock<HashMap<String, HashMap<String, Policy>>>,
}

impl Policies {
    /// The mode a tenant asks for a model: a policy naming the model beats `*`; among
    /// several naming it, the strictest wins (deterministic whatever their order).
    pub fn mode(&self, tenant: &str, model: &str) -> Option<Mode> {
        let all = self.by_tenant.read();
        let policies = all.get(tenant)?;
        let strictest = |wanted: &str| {
            policies
                .values()
                .filter(|p| p.models.iter().any(|m| m == wanted))
                .map(|p| p.mode)
                .max_by_key(|m| *m as u8)
        };
        strictest(model).or_else(|| strictest(ALL))
    }

    pub fn put(&self, tenant: &str, id: &str, policy: Policy) {
        self.by_tenant
            .write()
            .entry(tenant.to_string())
            .or_default()
            .insert(id.to_string(), policy);
    }

    pub fn remove(&self, tenant: &str, id: &str) {
        if let Some(p) = self.by_tenant.write().get_mut(tenant) {
            p.remove(id);
        }
    }
}
