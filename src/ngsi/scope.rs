//! Scope selectors (`scopeQ`, clause 4.19): `/A/B` exactly, `/A/+` one level below,
//! `/A/#` the scope and everything below, `/#` any scope; `;` and, `,` or.

use crate::error::{NgsiError, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum ScopeQuery {
    Pattern(String),
    And(Vec<ScopeQuery>),
    Or(Vec<ScopeQuery>),
}

impl ScopeQuery {
    /// Parses `;` (and), `,` or `|` (or) and parentheses; `;` binds tighter.
    pub fn parse(input: &str) -> Result<Self> {
        let mut pos = 0;
        let q = Self::or(input, &mut pos)?;
        if pos < input.len() {
            return Err(NgsiError::bad_data(format!(
                "invalid scopeQ '{input}' at position {pos}"
            )));
        }
        Ok(q)
    }

    fn or(src: &str, pos: &mut usize) -> Result<Self> {
        let mut items = vec![Self::and(src, pos)?];
        while src[*pos..].starts_with([',', '|']) {
            *pos += 1;
            items.push(Self::and(src, pos)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            ScopeQuery::Or(items)
        })
    }

    fn and(src: &str, pos: &mut usize) -> Result<Self> {
        let mut items = vec![Self::atom(src, pos)?];
        while src[*pos..].starts_with(';') {
            *pos += 1;
            items.push(Self::atom(src, pos)?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            ScopeQuery::And(items)
        })
    }

    fn atom(src: &str, pos: &mut usize) -> Result<Self> {
        if src[*pos..].starts_with('(') {
            *pos += 1;
            let q = Self::or(src, pos)?;
            if !src[*pos..].starts_with(')') {
                return Err(NgsiError::bad_data(format!(
                    "invalid scopeQ '{src}': expected ')'"
                )));
            }
            *pos += 1;
            return Ok(q);
        }
        let rest = &src[*pos..];
        let len = rest.find([',', '|', ';', '(', ')']).unwrap_or(rest.len());
        let pattern = rest[..len].trim();
        let segments: Vec<&str> = pattern.split('/').skip(1).collect();
        let ok = pattern.starts_with('/')
            && !pattern.contains(char::is_whitespace)
            && segments.iter().all(|seg| !seg.is_empty())
            && segments
                .iter()
                .enumerate()
                .all(|(i, seg)| *seg != "#" || i == segments.len() - 1);
        if !ok {
            return Err(NgsiError::bad_data(format!(
                "invalid scopeQ pattern '{pattern}'"
            )));
        }
        *pos += len;
        Ok(ScopeQuery::Pattern(pattern.to_string()))
    }

    pub fn matches(&self, scopes: Option<&[String]>) -> bool {
        let scopes = scopes.unwrap_or(&[]);
        match self {
            ScopeQuery::Pattern(p) => scopes.iter().any(|s| pattern_matches(p, s)),
            ScopeQuery::And(items) => items.iter().all(|i| i.matches(Some(scopes))),
            ScopeQuery::Or(items) => items.iter().any(|i| i.matches(Some(scopes))),
        }
    }
}

fn pattern_matches(pattern: &str, scope: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').skip(1).collect();
    let s: Vec<&str> = scope.split('/').skip(1).collect();
    for (i, seg) in p.iter().enumerate() {
        match *seg {
            "#" => return true,
            "+" => {
                if s.get(i).is_none() {
                    return false;
                }
            }
            other => {
                if s.get(i) != Some(&other) {
                    return false;
                }
            }
        }
    }
    p.len() == s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let scopes = vec!["/Madrid/Gardens/ParqueNorte".to_string()];
        let m = |q: &str| {
            ScopeQuery::parse(q)
                .map(|s| s.matches(Some(&scopes)))
                .unwrap_or(false)
        };
        assert!(m("/Madrid/Gardens/ParqueNorte"));
        assert!(m("/Madrid/#"));
        assert!(m("/#"));
        assert!(m("/Madrid/+/ParqueNorte"));
        assert!(!m("/Madrid"));
        assert!(!m("/Madrid/+"));
        assert!(m("/Paris,/Madrid/#"));
        assert!(!m("/Paris;/Madrid/#"));
        assert!(m("(/Paris|/Madrid/#);/Madrid/Gardens/+"));
        assert!(m("/Paris|/Madrid/#"));
        assert!(ScopeQuery::parse("Madrid").is_err());
        assert!(ScopeQuery::parse("(/A").is_err());
    }
}
