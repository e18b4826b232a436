//! The write guard that checks entities of the bundled models against their schemas.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::models::{Model, MODELS};
use super::policy::{self, Policies};
use super::schemas::SchemaCache;
use super::Mode;
use crate::error::{NgsiError, Result};
use crate::jsonld::active::DEFAULT_VOCAB;
use crate::jsonld::{ActiveContext, ContextResolver};
use crate::ngsi::query::EntityQuery;
use crate::ngsi::render::{render_entity, Format, RenderOptions};
use crate::ngsi::type_expr::TypeExpr;
use crate::ngsi::{Entity, Tenant};
use crate::store::{SharedStore, WriteGuard};

/// Most schema problems named in one refusal.
const MAX_PROBLEMS: usize = 3;

pub struct ModelValidator {
    /// The mode of a model no policy of the tenant names (`--validation-default`).
    default_mode: Mode,
    policies: Policies,
    schemas: SchemaCache,
    /// Expanded type IRI → its model and the context its names compact against.
    types: HashMap<String, (&'static Model, Arc<ActiveContext>)>,
    policy_type: String,
}

impl ModelValidator {
    pub async fn new(contexts: &ContextResolver, default_mode: Mode) -> Result<Self> {
        let mut types = HashMap::new();
        for model in MODELS {
            let url = Value::String(model.context_url());
            let ctx = contexts.resolve(Some(&url)).await?;
            types.insert(ctx.expand(model.name), (model, ctx.clone()));
            // Written without the model's context: names are in the default vocabulary.
            types.insert(
                format!("{DEFAULT_VOCAB}{}", model.name),
                (model, contexts.core()),
            );
        }
        Ok(Self {
            default_mode,
            policies: Policies::default(),
            schemas: SchemaCache::default(),
            types,
            policy_type: policy::policy_type_iri(),
        })
    }

    /// Reads the stored policies of every tenant (start-up).
    pub async fn load(&self, store: &SharedStore) -> Result<()> {
        let mut tenants = store.tenants().await?;
        if !tenants.iter().any(String::is_empty) {
            tenants.push(String::new());
        }
        let query = EntityQuery {
            types: Some(TypeExpr::Type(self.policy_type.clone())),
            limit: usize::MAX,
            ..Default::default()
        };
        for name in tenants {
            let tenant = Tenant::from_stored(&name);
            for e in store.query(&tenant, &query).await?.items {
                match policy::parse(&e) {
                    Ok(p) => self.policies.put(&name, &e.id, p),
                    Err(err) => {
                        tracing::warn!(tenant = %name, id = %e.id, error = %err.detail, "ignoring an invalid stored validation policy")
                    }
                }
            }
        }
        Ok(())
    }

    /// The schema problems of an entity of a model (empty if it conforms).
    fn problems(&self, model: &'static Model, ctx: &ActiveContext, entity: &Entity) -> Vec<String> {
        let validator = match self.schemas.validator(model) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "schema unavailable; entity not validated");
                return Vec::new();
            }
        };
        let instance = key_values(entity, ctx);
        validator
            .iter_errors(&instance)
            .take(MAX_PROBLEMS)
            .map(|e| {
                let at = e.instance_path().to_string();
                let at = if at.is_empty() { "/".to_string() } else { at };
                format!("{at}: {} (schema path {})", e.masked(), e.schema_path())
            })
            .collect()
    }
}

/// The entity as the schemas describe it: key-values, short names, DateTime as strings.
pub fn key_values(entity: &Entity, ctx: &ActiveContext) -> Value {
    let opts = RenderOptions {
        format: Format::KeyValues,
        ..Default::default()
    };
    let mut out = Value::Object(render_entity(entity, ctx, &opts));
    plain_datetimes(&mut out);
    out
}

/// `{"@type": "DateTime", "@value": t}` → `t`, at any depth.
fn plain_datetimes(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(t) = typed_datetime(o) {
                *v = Value::String(t);
                return;
            }
            o.values_mut().for_each(plain_datetimes);
        }
        Value::Array(items) => items.iter_mut().for_each(plain_datetimes),
        _ => {}
    }
}

fn typed_datetime(o: &Map<String, Value>) -> Option<String> {
    let is_dt = matches!(
        o.get("@type").and_then(Value::as_str),
        Some("DateTime" | "Date" | "Time")
    );
    match (is_dt, o.get("@value")) {
        (true, Some(Value::String(s))) if o.len() == 2 => Some(s.clone()),
        _ => None,
    }
}

impl WriteGuard for ModelValidator {
    fn check(&self, tenant: &Tenant, entity: &Entity) -> Result<()> {
        if entity.has_type(&self.policy_type) {
            return policy::parse(entity).map(|_| ());
        }
        for t in &entity.types {
            let Some((model, ctx)) = self.types.get(t) else {
                continue;
            };
            let mode = self
                .policies
                .mode(tenant.as_str(), model.name)
                .unwrap_or(self.default_mode);
            if mode == Mode::Off {
                continue;
            }
            let problems = self.problems(model, ctx, entity);
            if problems.is_empty() {
                continue;
            }
            crate::metrics::validation_failure(model.name, mode);
            let detail = format!(
                "{} does not match the {} Smart Data Model schema: {}",
                entity.id,
                model.name,
                problems.join("; ")
            );
            match mode {
                Mode::Enforce => return Err(NgsiError::bad_data(detail)),
                _ => tracing::warn!(tenant = %tenant.as_str(), "{detail}"),
            }
        }
        Ok(())
    }

    fn stored(&self, tenant: &Tenant, before: Option<&Entity>, after: Option<&Entity>) {
        let is_policy = |e: &&Entity| e.has_type(&self.policy_type);
        match (before.filter(is_policy), after.filter(is_policy)) {
            (_, Some(e)) => match policy::parse(e) {
                Ok(p) => self.policies.put(tenant.as_str(), &e.id, p),
                Err(_) => self.policies.remove(tenant.as_str(), &e.id),
            },
            (Some(e), None) => self.policies.remove(tenant.as_str(), &e.id),
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_datetimes_become_plain_strings_at_any_depth() {
        let mut v = json!({
            "dateObserved": { "@type": "DateTime", "@value": "2024-01-01T00:00:00Z" },
            "list": [{ "@type": "DateTime", "@value": "2024-01-02T00:00:00Z" }],
            "other": { "@type": "DateTime", "@value": "x", "extra": 1 }
        });
        plain_datetimes(&mut v);
        assert_eq!(v["dateObserved"], json!("2024-01-01T00:00:00Z"));
        assert_eq!(v["list"][0], json!("2024-01-02T00:00:00Z"));
        assert!(
            v["other"].is_object(),
            "only exact typed values are flattened"
        );
    }
}
