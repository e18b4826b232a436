//! Where context documents come from: the bundled copies, the contexts users stored
//! through `/jsonldContexts`, and remote URLs (fetched once, then kept).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use serde_json::Value;

use super::bundled;
use crate::error::{ErrorKind, NgsiError, Result};

/// How a context got into the broker (NGSI-LD 1.8 clause 5.13.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ContextKind {
    Hosted,
    Cached,
    ImplicitlyCreated,
}

impl ContextKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContextKind::Hosted => "Hosted",
            ContextKind::Cached => "Cached",
            ContextKind::ImplicitlyCreated => "ImplicitlyCreated",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Hosted" => Some(ContextKind::Hosted),
            "Cached" => Some(ContextKind::Cached),
            "ImplicitlyCreated" => Some(ContextKind::ImplicitlyCreated),
            _ => None,
        }
    }
}

/// A context document the broker keeps, with the bookkeeping `/jsonldContexts` reports.
#[derive(Debug)]
pub struct StoredContext {
    /// The tenant that hosts it (`Hosted` contexts are private to their tenant);
    /// `None` for contexts every tenant shares (cached, implicitly created).
    pub tenant: Option<String>,
    pub local_id: String,
    pub url: String,
    pub kind: ContextKind,
    pub document: Arc<Value>,
    pub created_at: DateTime<Utc>,
    pub hits: AtomicU64,
    pub last_usage: RwLock<Option<DateTime<Utc>>>,
}

impl StoredContext {
    pub fn touch(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
        *self.last_usage.write() = Some(Utc::now());
    }
}

/// A row as persisted by the store.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ContextRecord {
    pub tenant: Option<String>,
    pub local_id: String,
    pub url: String,
    pub kind: ContextKind,
    pub document: Value,
    pub created_at: DateTime<Utc>,
}

pub struct ContextDocuments {
    bundled: HashMap<String, Arc<Value>>,
    stored: RwLock<HashMap<String, Arc<StoredContext>>>,
    client: reqwest::Client,
    max_bytes: usize,
    /// Prefix of the URLs this broker serves hosted contexts at.
    hosted_prefix: String,
}

impl ContextDocuments {
    pub fn new(hosted_prefix: String, fetch_timeout: Duration, max_bytes: usize) -> Self {
        let bundled = bundled::documents()
            .into_iter()
            .filter_map(|(url, text)| match serde_json::from_str::<Value>(text) {
                Ok(doc) => Some((url, Arc::new(doc))),
                Err(e) => {
                    tracing::error!(%url, error = %e, "bundled context is not valid JSON");
                    None
                }
            })
            .collect();
        let client = reqwest::Client::builder()
            .timeout(fetch_timeout)
            .connect_timeout(fetch_timeout)
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let http = matches!(attempt.url().scheme(), "http" | "https");
                if !http || attempt.previous().len() >= 5 {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .unwrap_or_default();
        Self {
            bundled,
            stored: RwLock::new(HashMap::new()),
            client,
            max_bytes,
            hosted_prefix,
        }
    }

    /// A context reference as an absolute URL: a path (`/ngsi-ld/v1/jsonldContexts/..`)
    /// names a document on this broker.
    pub fn absolute(&self, reference: &str) -> String {
        match reference.strip_prefix('/') {
            Some(path) => {
                let origin = self
                    .hosted_prefix
                    .split("/ngsi-ld/v1/")
                    .next()
                    .unwrap_or_default();
                format!("{origin}/{path}")
            }
            None => reference.to_string(),
        }
    }

    pub fn hosted_url(&self, local_id: &str) -> String {
        format!("{}{}", self.hosted_prefix, local_id)
    }

    /// Loads the records persisted by the store at start-up.
    pub fn restore(&self, records: Vec<ContextRecord>) {
        let mut stored = self.stored.write();
        for r in records {
            stored.insert(r.url.clone(), Arc::new(stored_from(r)));
        }
    }

    /// Replaces every stored context with these (after another broker changed them).
    pub fn replace_all(&self, records: Vec<ContextRecord>) {
        let fresh: HashMap<String, Arc<StoredContext>> = records
            .into_iter()
            .map(|r| (r.url.clone(), Arc::new(stored_from(r))))
            .collect();
        *self.stored.write() = fresh;
    }

    pub fn insert(&self, record: ContextRecord) -> Arc<StoredContext> {
        let entry = Arc::new(stored_from(record));
        self.stored.write().insert(entry.url.clone(), entry.clone());
        entry
    }

    pub fn remove(&self, url: &str) -> Option<Arc<StoredContext>> {
        self.stored.write().remove(url)
    }

    pub fn list(&self) -> Vec<Arc<StoredContext>> {
        let mut all: Vec<_> = self.stored.read().values().cloned().collect();
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.url.cmp(&b.url)));
        all
    }

    /// Whether a tenant may see this context.
    pub fn visible_to(c: &StoredContext, tenant: &str) -> bool {
        c.tenant.as_deref().is_none_or(|t| t == tenant)
    }

    /// Finds a stored context by its local id or its URL.
    pub fn find(&self, id_or_url: &str) -> Option<Arc<StoredContext>> {
        let stored = self.stored.read();
        stored
            .get(id_or_url)
            .or_else(|| stored.values().find(|c| c.local_id == id_or_url))
            .cloned()
    }

    /// A hosted context named by another spelling of this broker's address (clients
    /// reach it as 127.0.0.1, a host name, a proxy...): served locally, not re-fetched.
    fn hosted_here(&self, url: &str) -> Option<Arc<StoredContext>> {
        let (_, id) = url.rsplit_once("/ngsi-ld/v1/jsonldContexts/")?;
        self.find(id).filter(|c| c.kind == ContextKind::Hosted)
    }

    pub fn is_core(&self, url: &str) -> bool {
        bundled::is_core_context(url)
    }

    /// A core context this broker has a copy of (a version it knows).
    pub fn is_known_core(&self, url: &str) -> bool {
        self.is_core(url) && self.bundled(url).is_some()
    }

    fn bundled(&self, url: &str) -> Option<Arc<Value>> {
        let https = url
            .strip_prefix("http://")
            .map(|rest| format!("https://{rest}"));
        self.bundled
            .get(url)
            .or_else(|| https.as_deref().and_then(|u| self.bundled.get(u)))
            .cloned()
    }

    /// The document behind a URL. A remote one is fetched once and then kept as a
    /// `Cached` context; the returned flag says whether that happened now (so the caller
    /// can persist it).
    pub async fn load(&self, url: &str) -> Result<(Arc<Value>, Option<ContextRecord>)> {
        if let Some(doc) = self.bundled(url) {
            return Ok((doc, None));
        }
        if let Some(entry) = self
            .stored
            .read()
            .get(url)
            .cloned()
            .or_else(|| self.hosted_here(url))
        {
            entry.touch();
            return Ok((entry.document.clone(), None));
        }
        let doc = self.fetch(url).await?;
        let record = ContextRecord {
            tenant: None,
            local_id: short_id(url),
            url: url.to_string(),
            kind: ContextKind::Cached,
            document: doc,
            created_at: Utc::now(),
        };
        let entry = self.insert(record.clone());
        entry.touch();
        Ok((entry.document.clone(), Some(record)))
    }

    /// Fetches a remote context: http(s) only, bounded in time and size.
    pub async fn fetch(&self, url: &str) -> Result<Value> {
        let unavailable = |why: String| {
            NgsiError::new(
                ErrorKind::LdContextNotAvailable,
                format!("@context {url} could not be retrieved: {why}"),
            )
        };
        let parsed = url::Url::parse(url).map_err(|e| unavailable(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(unavailable("only http and https URLs are fetched".into()));
        }
        let mut response = self
            .client
            .get(parsed)
            .header("Accept", "application/ld+json, application/json;q=0.9")
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!(
                "the server answered {}",
                response.status()
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable(e.to_string()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > self.max_bytes {
                return Err(unavailable(format!("larger than {} bytes", self.max_bytes)));
            }
        }
        // Retrieved but unusable is the client's bad data, not an unavailable context.
        let invalid = |why: String| {
            NgsiError::bad_data(format!(
                "@context {url} is not a valid JSON-LD context: {why}"
            ))
        };
        let doc: Value =
            serde_json::from_slice(&body).map_err(|e| invalid(format!("not JSON: {e}")))?;
        if !doc.is_object() || doc.get("@context").is_none() {
            return Err(invalid("the document has no @context member".into()));
        }
        Ok(doc)
    }
}

fn stored_from(r: ContextRecord) -> StoredContext {
    StoredContext {
        tenant: r.tenant,
        local_id: r.local_id,
        url: r.url,
        kind: r.kind,
        document: Arc::new(r.document),
        created_at: r.created_at,
        hits: AtomicU64::new(0),
        last_usage: RwLock::new(None),
    }
}

/// A stable short id for a URL: the first 16 hex digits of its SHA-256.
pub fn short_id(url: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(url.as_bytes())[..8])
}
