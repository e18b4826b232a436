//! The fast path: a processed @context reduced to the term maps NGSI-LD needs to expand
//! and compact entity types and attribute names, without running JSON-LD algorithms
//! per request.

use std::collections::HashMap;

use serde_json::Value;

/// The default vocabulary of NGSI-LD: terms no context defines expand under it.
pub const DEFAULT_VOCAB: &str = "https://uri.etsi.org/ngsi-ld/default-context/";

#[derive(Debug, Clone)]
pub struct ActiveContext {
    terms: HashMap<String, String>,
    reverse: HashMap<String, String>,
    /// (IRI, prefix term), longest IRI first, for compact IRIs such as `ngsi-ld:foo`.
    prefixes: Vec<(String, String)>,
    vocab: String,
    /// Terms that alias JSON-LD keywords (`id`, `type`...): never entity types or attributes.
    keyword_aliases: std::collections::HashSet<String>,
    /// The context as the client gave it (URL, object or array), echoed in responses.
    pub source: Value,
}

impl ActiveContext {
    /// Builds the maps from (term, IRI, usable-as-prefix) triples.
    pub fn new(
        definitions: impl IntoIterator<Item = (String, String, bool)>,
        vocab: Option<String>,
        source: Value,
    ) -> Self {
        let mut terms = HashMap::new();
        let mut reverse: HashMap<String, String> = HashMap::new();
        let mut prefixes = Vec::new();
        for (term, iri, prefix) in definitions {
            if prefix || iri.ends_with(['/', '#', ':']) {
                prefixes.push((iri.clone(), term.clone()));
            }
            let better = match reverse.get(&iri) {
                Some(existing) => (term.len(), &term) < (existing.len(), existing),
                None => true,
            };
            if better && !term.contains(':') {
                reverse.insert(iri.clone(), term.clone());
            }
            terms.insert(term, iri);
        }
        prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        Self {
            keyword_aliases: Default::default(),
            terms,
            reverse,
            prefixes,
            vocab: vocab.unwrap_or_else(|| DEFAULT_VOCAB.to_string()),
            source,
        }
    }

    /// Expands a term used as a type or attribute name into an IRI.
    pub fn expand(&self, term: &str) -> String {
        if let Some(iri) = self.terms.get(term) {
            return iri.clone();
        }
        if let Some((prefix, suffix)) = term.split_once(':') {
            if suffix.starts_with("//") {
                return term.to_string();
            }
            if let Some(base) = self.terms.get(prefix) {
                return format!("{base}{suffix}");
            }
            // Another absolute IRI (urn:, http:...): kept as it is.
            return term.to_string();
        }
        format!("{}{}", self.vocab, term)
    }

    /// Compacts an IRI back to the shortest term the context offers.
    pub fn compact(&self, iri: &str) -> String {
        if let Some(term) = self.reverse.get(iri) {
            return term.clone();
        }
        if let Some(rest) = iri.strip_prefix(self.vocab.as_str()) {
            if !rest.is_empty() && !rest.contains([':', '/', '#']) && !self.terms.contains_key(rest)
            {
                return rest.to_string();
            }
        }
        for (base, prefix) in &self.prefixes {
            if let Some(rest) = iri.strip_prefix(base.as_str()) {
                if !rest.is_empty() && !rest.starts_with("//") {
                    return format!("{prefix}:{rest}");
                }
            }
        }
        iri.to_string()
    }

    pub fn with_keyword_aliases(mut self, aliases: impl IntoIterator<Item = String>) -> Self {
        self.keyword_aliases.extend(aliases);
        self
    }

    pub fn is_keyword_alias(&self, term: &str) -> bool {
        term.starts_with('@') || self.keyword_aliases.contains(term)
    }

    pub fn defines(&self, term: &str) -> bool {
        self.terms.contains_key(term)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ActiveContext {
        ActiveContext::new(
            [
                (
                    "ngsi-ld".to_string(),
                    "https://uri.etsi.org/ngsi-ld/".to_string(),
                    true,
                ),
                (
                    "location".to_string(),
                    "https://uri.etsi.org/ngsi-ld/location".to_string(),
                    false,
                ),
                (
                    "Building".to_string(),
                    "https://example.org/Building".to_string(),
                    false,
                ),
            ],
            None,
            Value::Null,
        )
    }

    #[test]
    fn expands_defined_terms_prefixes_and_vocab() {
        let c = ctx();
        assert_eq!(
            c.expand("location"),
            "https://uri.etsi.org/ngsi-ld/location"
        );
        assert_eq!(c.expand("ngsi-ld:foo"), "https://uri.etsi.org/ngsi-ld/foo");
        assert_eq!(c.expand("urn:x:y"), "urn:x:y");
        assert_eq!(
            c.expand("speed"),
            "https://uri.etsi.org/ngsi-ld/default-context/speed"
        );
    }

    #[test]
    fn compaction_inverts_expansion() {
        let c = ctx();
        for term in [
            "location",
            "Building",
            "speed",
            "ngsi-ld:foo",
            "http://other.org/x",
        ] {
            assert_eq!(c.compact(&c.expand(term)), term);
        }
    }
}
