//! JSON-LD @context handling: where contexts come from, how they are processed, and the
//! cache that makes a context cost nothing after its first use.

pub mod active;
pub mod bundled;
pub mod documents;
mod process;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;

pub use active::ActiveContext;
pub use bundled::CORE_CONTEXT_URL;
pub use documents::{ContextDocuments, ContextKind, ContextRecord, StoredContext};

use crate::error::{NgsiError, Result};
use crate::store::ContextRepository;

/// Most distinct contexts a broker sees are a handful; this bounds a misbehaving client.
const MAX_CACHED_CONTEXTS: usize = 512;

pub struct ContextResolver {
    pub docs: Arc<ContextDocuments>,
    repository: Arc<dyn ContextRepository>,
    core: Arc<ActiveContext>,
    cache: RwLock<HashMap<String, Arc<ActiveContext>>>,
}

impl ContextResolver {
    pub async fn new(
        docs: Arc<ContextDocuments>,
        repository: Arc<dyn ContextRepository>,
    ) -> Result<Self> {
        let core_url = Value::String(CORE_CONTEXT_URL.to_string());
        let (core, _) = process::process(&docs, core_url.clone(), core_url).await?;
        Ok(Self {
            docs,
            repository,
            core: Arc::new(core),
            cache: RwLock::new(HashMap::new()),
        })
    }

    pub fn core(&self) -> Arc<ActiveContext> {
        self.core.clone()
    }

    /// The active context for a client's @context (a URL, an object or an array of both);
    /// `None` means the core context alone.
    pub async fn resolve(&self, user: Option<&Value>) -> Result<Arc<ActiveContext>> {
        let Some(user) = user else {
            return Ok(self.core());
        };
        let absolute = self.absolute_references(user);
        let user = &absolute;
        validate_shape(user)?;
        if let Value::String(url) = user {
            if self.docs.is_core(url) {
                return Ok(self.core());
            }
        }
        // Core contexts named in an array (any version) are the core context, which
        // is always applied last: processing a second copy would redefine its
        // protected terms.
        if let Value::Array(items) = user {
            if items
                .iter()
                .any(|i| i.as_str().is_some_and(|u| self.docs.is_known_core(u)))
            {
                let rest: Vec<Value> = items
                    .iter()
                    .filter(|i| !i.as_str().is_some_and(|u| self.docs.is_known_core(u)))
                    .cloned()
                    .collect();
                if rest.is_empty() {
                    return Ok(self.core());
                }
                return Box::pin(self.resolve(Some(&Value::Array(rest)))).await;
            }
        }
        let key = user.to_string();
        if let Some(hit) = self.cache.read().get(&key).cloned() {
            self.count_use(user);
            return Ok(hit);
        }
        let mut full: Vec<Value> = match user {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        full.push(Value::String(CORE_CONTEXT_URL.to_string()));
        let (active, newly_cached) =
            process::process(&self.docs, Value::Array(full), user.clone()).await?;
        for record in newly_cached {
            if let Err(e) = self.repository.put_context(record).await {
                tracing::warn!(error = %e, "could not persist a cached @context; it stays in memory");
            }
        }
        let active = Arc::new(active);
        let mut cache = self.cache.write();
        if cache.len() >= MAX_CACHED_CONTEXTS {
            cache.clear();
        }
        cache.insert(key, active.clone());
        Ok(active)
    }

    /// Relative references (paths on this broker) made absolute.
    fn absolute_references(&self, ctx: &Value) -> Value {
        match ctx {
            Value::String(s) => Value::String(self.docs.absolute(s)),
            Value::Array(items) => {
                Value::Array(items.iter().map(|i| self.absolute_references(i)).collect())
            }
            other => other.clone(),
        }
    }

    /// Counts a use of each stored context a (cached) client context names, for the
    /// `numberOfHits` of `/jsonldContexts`.
    fn count_use(&self, user: &Value) {
        let urls: Vec<&str> = match user {
            Value::String(s) => vec![s.as_str()],
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for url in urls {
            if let Some(stored) = self.docs.find(url) {
                stored.touch();
            }
        }
    }

    /// Forgets processed contexts, e.g. after a stored context changed.
    pub fn invalidate(&self) {
        self.cache.write().clear();
    }
}

/// A @context member must be a URL, an object, or an array of those.
fn validate_shape(ctx: &Value) -> Result<()> {
    let item_ok = |v: &Value| match v {
        Value::String(s) => url::Url::parse(s).is_ok(),
        Value::Object(_) => true,
        _ => false,
    };
    let ok = match ctx {
        Value::Array(items) => !items.is_empty() && items.iter().all(item_ok),
        other => item_ok(other),
    };
    if ok {
        Ok(())
    } else {
        Err(NgsiError::bad_data(
            "@context must be a URL, an object, or an array of URLs and objects",
        ))
    }
}
