//! What a client asks for when it lists entities: the selection the store pushes down.
//! (scopeQ and geoQ come with the query issue.)

use super::q::Expr;

/// A selection of entities, with names already expanded.
#[derive(Debug, Clone, Default)]
pub struct EntityQuery {
    /// Any of these types (OR).
    pub types: Option<Vec<String>>,
    /// Any of these ids.
    pub ids: Option<Vec<String>>,
    /// A regular expression the id must match.
    pub id_pattern: Option<String>,
    /// Entities having at least one of these attributes.
    pub attrs: Option<Vec<String>>,
    /// A q expression with expanded names.
    pub q: Option<Expr>,
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
