//! The expression tree of a q query.

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Term(Term),
    /// `!attr`: the attribute does not exist (the parser only negates existence).
    Not(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub path: Path,
    /// `None` tests that the attribute exists.
    pub condition: Option<(Op, Operand)>,
}

/// `attr.sub1.sub2[key1][key2]`: names as written, expanded before evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub attr: String,
    pub subs: Vec<String>,
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Matches,
    NotMatches,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    One(Literal),
    List(Vec<Literal>),
    Range(Literal, Literal),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A quoted string.
    Text(String),
    Number(f64),
    Bool(bool),
    /// An unquoted word: a date-time, a URI, or a bare string.
    Bare(String),
}

impl Expr {
    /// Every path in the expression, e.g. to expand names or pick indexes.
    pub fn paths_mut(&mut self) -> Vec<&mut Path> {
        match self {
            Expr::And(items) | Expr::Or(items) => {
                items.iter_mut().flat_map(Expr::paths_mut).collect()
            }
            Expr::Term(t) => vec![&mut t.path],
            Expr::Not(inner) => inner.paths_mut(),
        }
    }
}
