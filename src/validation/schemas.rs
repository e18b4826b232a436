//! Compiled schemas: each model's schema is compiled once, on first use, with its
//! `$ref`s resolved from the bundled files (never over the network).

use std::collections::HashMap;
use std::sync::Arc;

use jsonschema::{Retrieve, Uri, Validator};
use parking_lot::RwLock;
use serde_json::Value;

use super::models::{self, Model};

/// Serves the bundled shared schemas; any other URL is an error (offline by design).
struct Bundled;

impl Retrieve for Bundled {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> std::result::Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let url = uri.as_str();
        let url = url.split('#').next().unwrap_or(url);
        let (_, text) = models::SHARED
            .iter()
            .find(|(u, _)| *u == url)
            .ok_or_else(|| format!("{url} is not bundled (schemas are resolved offline)"))?;
        Ok(serde_json::from_str(text)?)
    }
}

/// Compiled validators by model name.
#[derive(Default)]
pub struct SchemaCache {
    compiled: RwLock<HashMap<&'static str, Arc<Validator>>>,
}

impl SchemaCache {
    pub fn validator(&self, model: &'static Model) -> Result<Arc<Validator>, String> {
        if let Some(v) = self.compiled.read().get(model.name) {
            return Ok(v.clone());
        }
        let schema: Value = serde_json::from_str(model.schema)
            .map_err(|e| format!("the bundled {} schema is not JSON: {e}", model.name))?;
        let validator = jsonschema::options()
            .with_retriever(Bundled)
            .should_validate_formats(true)
            .build(&schema)
            .map_err(|e| format!("the bundled {} schema does not compile: {e}", model.name))?;
        let validator = Arc::new(validator);
        self.compiled.write().insert(model.name, validator.clone());
        Ok(validator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every bundled schema compiles offline, and each model's own key-values example
    /// (where it has one in the bundle) is read without a network.
    #[test]
    fn every_bundled_schema_compiles_offline() {
        let cache = SchemaCache::default();
        for model in models::MODELS {
            assert!(
                cache.validator(model).is_ok(),
                "{}: {:?}",
                model.name,
                cache.validator(model).err()
            );
        }
    }
}
