//! What a client asks for when it lists entities: the selection the store pushes down.

use super::geo::GeoQuery;
use super::q::Expr;
use super::scope::ScopeQuery;
use super::type_expr::TypeExpr;
use super::Entity;

/// A selection of entities, with names already expanded.
#[derive(Debug, Clone, Default)]
pub struct EntityQuery {
    /// The type selector, expanded.
    pub types: Option<TypeExpr>,
    /// Any of these ids.
    pub ids: Option<Vec<String>>,
    /// A regular expression the id must match.
    pub id_pattern: Option<String>,
    /// Entities having at least one of these attributes.
    pub attrs: Option<Vec<String>>,
    /// A q expression with expanded names.
    pub q: Option<Expr>,
    pub scope_q: Option<ScopeQuery>,
    pub geo_q: Option<GeoQuery>,
    pub limit: usize,
    pub offset: usize,
    pub count: bool,
}

/// One page of results and, when asked for, the total count.
#[derive(Debug, Default)]
pub struct QueryPage<T> {
    pub items: Vec<T>,
    pub total: Option<u64>,
}

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 1000;

impl EntityQuery {
    /// True when part of the selection is checked entity by entity, after the store's
    /// indexed selection (q, scopeQ, geoQ).
    pub fn has_row_filter(&self) -> bool {
        self.q.is_some() || self.scope_q.is_some() || self.geo_q.is_some()
    }

    /// True if only `q` needs checking entity by entity (a store that decides q exactly
    /// in its own language can then skip the scan).
    pub fn only_q_filter(&self) -> bool {
        self.scope_q.is_none() && self.geo_q.is_none()
    }

    /// The entity-by-entity part of the selection.
    pub fn row_matches(&self, e: &Entity) -> bool {
        self.q.as_ref().is_none_or(|q| super::q::matches(q, e))
            && self
                .scope_q
                .as_ref()
                .is_none_or(|s| s.matches(e.scope.as_deref()))
            && self.geo_q.as_ref().is_none_or(|g| g.matches(e))
    }
}

/// What the store knows of one entity type, for `/types` and `/attributes`.
#[derive(Debug, Clone, Default)]
pub struct TypeStats {
    /// Expanded type IRI.
    pub type_iri: String,
    pub entity_count: u64,
    /// Expanded attribute name → (attribute types seen, entities having it).
    pub attributes: Vec<(String, Vec<String>, u64)>,
}
