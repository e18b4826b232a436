//! Scope selectors (`scopeQ`, clause 4.19): `/A/B` exactly, `/A/+` one level below,
//! `/A/#` the scope and everything below, `/#` any scope; `;` and, `,` or.

use crate::error::{NgsiError, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct ScopeQuery {
    /// Alternatives (OR) of conjunctions (AND) of patterns.
    any_of: Vec<Vec<String>>,
}

impl ScopeQuery {
    pub fn parse(input: &str) -> Result<Self> {
        let any_of: Vec<Vec<String>> = input
            .split(',')
            .map(|alt| alt.split(';').map(|p| p.trim().to_string()).collect())
            .collect();
        for pattern in any_of.iter().flatten() {
            let ok = pattern.starts_with('/')
                && !pattern.contains(char::is_whitespace)
                && pattern.split('/').skip(1).all(|seg| !seg.is_empty())
                && pattern
                    .split('/')
                    .skip(1)
                    .enumerate()
                    .all(|(i, seg)| seg != "#" || i == pattern.split('/').count() - 2);
            if !ok {
                return Err(NgsiError::bad_data(format!(
                    "invalid scopeQ pattern '{pattern}'"
                )));
            }
        }
        Ok(Self { any_of })
    }

    pub fn matches(&self, scopes: Option<&[String]>) -> bool {
        let scopes = scopes.unwrap_or(&[]);
        self.any_of.iter().any(|all| {
            all.iter()
                .all(|p| scopes.iter().any(|s| pattern_matches(p, s)))
        })
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
        assert!(ScopeQuery::parse("Madrid").is_err());
    }
}
