//! The NGSI-LD query language (`q`, ETSI GS CIM 009 clause 4.9).
//!
//! Grammar, as parsed here (`;` is AND and binds tighter than `|`, OR):
//!
//! ```text
//! query    := or
//! or       := and ( '|' and )*
//! and      := factor ( ';' factor )*
//! factor   := '(' query ')' | term
//! term     := path [ op operand ]
//! path     := name ( '.' name )* ( '[' name ']' )*
//! op       := '==' | '!=' | '>=' | '>' | '<=' | '<' | '~=' | '!~='
//! operand  := value '..' value | value ( ',' value )*
//! value    := '"' chars '"' | number | 'true' | 'false' | bare (date-time, URI, word)
//! ```
//!
//! A path's first name is an attribute, a `.name` after it a sub-attribute (or metadata
//! such as `observedAt`), `[name]` steps into a compound JSON value.

mod ast;
mod eval;
mod parser;

pub use ast::{Expr, Literal, Op, Operand, Path, Term};
pub(crate) use eval::resolve;
pub use eval::{expand, matches};
pub use parser::parse;
