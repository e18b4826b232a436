//! Entity type selectors (clause 4.17): `A,B` or `A|B` for either, `A;B` for both,
//! parentheses to group. `;` binds tighter than `,` and `|`.

use crate::error::{NgsiError, Result};
use crate::jsonld::ActiveContext;
use crate::ngsi::ids::validate_type_name;

#[derive(Debug, Clone, PartialEq)]
pub enum TypeExpr {
    Type(String),
    And(Vec<TypeExpr>),
    Or(Vec<TypeExpr>),
}

impl TypeExpr {
    /// Parses and expands a selector against a context.
    pub fn parse(input: &str, ctx: &ActiveContext) -> Result<Self> {
        let mut p = Parser {
            src: input,
            pos: 0,
            ctx,
        };
        let e = p.or()?;
        if p.pos < input.len() {
            return Err(p.error("unexpected text"));
        }
        Ok(e)
    }

    /// The plain list of types when the selector is a simple alternative (`A,B`).
    pub fn as_alternatives(&self) -> Option<Vec<String>> {
        match self {
            TypeExpr::Type(t) => Some(vec![t.clone()]),
            TypeExpr::Or(items) => items
                .iter()
                .map(|i| match i {
                    TypeExpr::Type(t) => Some(t.clone()),
                    _ => None,
                })
                .collect(),
            TypeExpr::And(_) => None,
        }
    }

    pub fn matches(&self, types: &[String]) -> bool {
        match self {
            TypeExpr::Type(t) => types.contains(t),
            TypeExpr::And(items) => items.iter().all(|i| i.matches(types)),
            TypeExpr::Or(items) => items.iter().any(|i| i.matches(types)),
        }
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    ctx: &'a ActiveContext,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> NgsiError {
        NgsiError::bad_data(format!(
            "invalid type selector '{}' at position {}: {what}",
            self.src, self.pos
        ))
    }

    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn or(&mut self) -> Result<TypeExpr> {
        let mut items = vec![self.and()?];
        while matches!(self.peek(), Some(',') | Some('|')) {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            TypeExpr::Or(items)
        })
    }

    fn and(&mut self) -> Result<TypeExpr> {
        let mut items = vec![self.atom()?];
        while self.peek() == Some(';') {
            self.pos += 1;
            items.push(self.atom()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            TypeExpr::And(items)
        })
    }

    fn atom(&mut self) -> Result<TypeExpr> {
        if self.peek() == Some('(') {
            self.pos += 1;
            let e = self.or()?;
            if self.peek() != Some(')') {
                return Err(self.error("expected ')'"));
            }
            self.pos += 1;
            return Ok(e);
        }
        let rest = &self.src[self.pos..];
        let len = rest.find([',', '|', ';', '(', ')']).unwrap_or(rest.len());
        let name = rest[..len].trim();
        if name.is_empty() {
            return Err(self.error("expected a type name"));
        }
        validate_type_name(name)?;
        self.pos += len;
        Ok(TypeExpr::Type(self.ctx.expand(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn ctx() -> ActiveContext {
        ActiveContext::new(
            Vec::<(String, String, bool)>::new(),
            Some("urn:t:".into()),
            Value::Null,
        )
    }

    #[test]
    fn parses_precedence_and_groups() {
        let e = TypeExpr::parse("A,B;C", &ctx()).unwrap_or(TypeExpr::Or(vec![]));
        assert!(e.matches(&["urn:t:A".into()]));
        assert!(!e.matches(&["urn:t:B".into()]));
        assert!(e.matches(&["urn:t:B".into(), "urn:t:C".into()]));
        let e = TypeExpr::parse("(A|B);C", &ctx()).unwrap_or(TypeExpr::Or(vec![]));
        assert!(!e.matches(&["urn:t:A".into()]));
        assert!(e.matches(&["urn:t:A".into(), "urn:t:C".into()]));
        assert_eq!(
            TypeExpr::parse("A,B", &ctx())
                .ok()
                .and_then(|e| e.as_alternatives())
                .map(|v| v.len()),
            Some(2)
        );
        assert!(TypeExpr::parse("(A", &ctx()).is_err());
        assert!(TypeExpr::parse("A,", &ctx()).is_err());
    }
}
