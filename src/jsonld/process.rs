//! Runs the JSON-LD context processing algorithm (the `json-ld` crate) and reduces its
//! result to an [`ActiveContext`].

use std::cell::RefCell;

use json_ld::syntax::TryFromJson;
use json_ld::{Id, Iri, IriBuf, LoadError, Loader, Process, RemoteDocument, Term, ValidId};
use serde_json::Value;

use super::active::ActiveContext;
use super::documents::{ContextDocuments, ContextRecord};
use crate::error::{ErrorKind, NgsiError, Result};

/// Serves documents to the JSON-LD processor and remembers what happened on the way.
struct BrokerLoader<'a> {
    docs: &'a ContextDocuments,
    failure: RefCell<Option<NgsiError>>,
    newly_cached: RefCell<Vec<ContextRecord>>,
}

impl Loader for BrokerLoader<'_> {
    async fn load(&self, url: &Iri) -> Result<RemoteDocument<IriBuf>, LoadError> {
        match self.docs.load(url.as_str()).await {
            Ok((doc, record)) => {
                if let Some(record) = record {
                    self.newly_cached.borrow_mut().push(record);
                }
                let json = json_syntax::Value::from_serde_json((*doc).clone());
                Ok(RemoteDocument::new(Some(url.to_owned()), None, json))
            }
            Err(e) => {
                *self.failure.borrow_mut() = Some(e.clone());
                Err(LoadError::new(url.to_owned(), e))
            }
        }
    }
}

/// Processes `full` (the client's context followed by the core context). Returns the
/// active context and the remote contexts fetched for the first time on the way.
pub async fn process(
    docs: &ContextDocuments,
    full: Value,
    source: Value,
) -> Result<(ActiveContext, Vec<ContextRecord>)> {
    refuse_inline_scoped_contexts(&source)?;
    let syntax =
        json_ld::syntax::context::Context::try_from_json(json_syntax::Value::from_serde_json(full))
            .map_err(|e| NgsiError::bad_data(format!("invalid @context: {e}")))?;
    let loader = BrokerLoader {
        docs,
        failure: RefCell::new(None),
        newly_cached: RefCell::new(Vec::new()),
    };
    let processed = syntax.process(&mut (), &loader, None).await;
    let processed = match processed {
        Ok(p) => p.processed,
        Err(e) => {
            if let Some(failure) = loader.failure.take() {
                return Err(failure);
            }
            let kind = match e {
                json_ld::context_processing::Error::LoadingDocumentFailed => {
                    ErrorKind::LdContextNotAvailable
                }
                _ => ErrorKind::BadRequestData,
            };
            return Err(NgsiError::new(kind, format!("invalid @context: {e}")));
        }
    };
    let mut definitions = Vec::new();
    let mut aliases = Vec::new();
    for binding in processed.definitions().iter() {
        if let json_ld::context::BindingRef::Normal(key, def) = binding {
            if let Some(Term::Keyword(_)) = &def.value {
                aliases.push(key.as_str().to_string());
            }
            if let Some(Term::Id(Id::Valid(ValidId::Iri(iri)))) = &def.value {
                definitions.push((
                    key.as_str().to_string(),
                    iri.as_str().to_string(),
                    def.prefix,
                ));
            }
        }
    }
    let vocab = match processed.vocabulary() {
        Some(Term::Id(Id::Valid(ValidId::Iri(iri)))) => Some(iri.as_str().to_string()),
        _ => None,
    };
    let newly_cached = loader.newly_cached.take();
    Ok((
        ActiveContext::new(definitions, vocab, source).with_keyword_aliases(aliases),
        newly_cached,
    ))
}

/// NGSI-LD 5.5.7: a user @context "shall not contain JSON-LD Scoped Contexts". Only
/// the request's inline definitions are checked: remote contexts it refers to (the
/// core context v1.9, the W3C security vocabulary) legitimately use them.
fn refuse_inline_scoped_contexts(source: &Value) -> Result<()> {
    let definitions: Vec<&Value> = match source {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    for definition in definitions {
        let Value::Object(terms) = definition else {
            continue;
        };
        for (term, def) in terms {
            if def.as_object().is_some_and(|d| d.contains_key("@context")) {
                return Err(NgsiError::bad_data(format!(
                    "invalid @context: the term '{term}' has a scoped @context, which NGSI-LD does not allow in a user @context"
                )));
            }
        }
    }
    Ok(())
}
