//! Projection lists (`attrs`, `pick`, `omit`, clause 4.21): names separated by `,` or
//! `|`, where a Relationship may carry the projection of the entities it links to in
//! braces, e.g. `id,locatedAt{id,name,isInCountry{description}}` (used with `join`).

use std::collections::{HashMap, HashSet};

use crate::error::{NgsiError, Result};
use crate::jsonld::ActiveContext;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectionTree {
    /// Entity members named (`id`, `type`).
    pub members: HashSet<String>,
    /// Expanded attribute names.
    pub attrs: HashSet<String>,
    /// Expanded Relationship name → the projection of the entities it links to.
    pub nested: HashMap<String, ProjectionTree>,
}

impl ProjectionTree {
    /// `what` names the parameter in errors; `attrs` takes no members and no nesting.
    pub fn parse(raw: &str, what: &str, ctx: &ActiveContext) -> Result<Self> {
        let mut parser = Parser {
            src: raw,
            pos: 0,
            what,
        };
        let tree = parser.list(ctx, 0)?;
        if parser.pos < raw.len() {
            return Err(parser.error("unexpected '}'"));
        }
        if what == "attrs" && (!tree.nested.is_empty() || !tree.members.is_empty()) {
            return Err(NgsiError::bad_data("attrs lists attribute names only"));
        }
        Ok(tree)
    }

    pub fn has_nesting(&self) -> bool {
        !self.nested.is_empty()
    }

    /// How many levels of linked entities the projection reaches into.
    pub fn nesting_depth(&self) -> usize {
        self.nested
            .values()
            .map(|n| 1 + n.nesting_depth())
            .max()
            .unwrap_or(0)
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    what: &'a str,
}

/// Deeper nesting than joinLevel allows (8) cannot select anything.
const MAX_DEPTH: usize = 8;

impl Parser<'_> {
    fn error(&self, why: &str) -> NgsiError {
        NgsiError::bad_data(format!("{} at position {}: {why}", self.what, self.pos))
    }

    fn list(&mut self, ctx: &ActiveContext, depth: usize) -> Result<ProjectionTree> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deep"));
        }
        let mut tree = ProjectionTree::default();
        loop {
            let rest = &self.src[self.pos..];
            let len = rest.find([',', '|', '{', '}']).unwrap_or(rest.len());
            let name = rest[..len].trim().to_string();
            self.pos += len;
            if name.is_empty() {
                return Err(self.error("empty member"));
            }
            match name.as_str() {
                "id" | "type" => {
                    tree.members.insert(name.clone());
                }
                _ => {
                    crate::ngsi::ids::validate_name(&name, "attribute name")?;
                    tree.attrs.insert(ctx.expand(&name));
                }
            }
            if self.src[self.pos..].starts_with('{') {
                if name == "id" || name == "type" {
                    return Err(self.error("only a Relationship can carry a nested projection"));
                }
                self.pos += 1;
                let inner = self.list(ctx, depth + 1)?;
                if !self.src[self.pos..].starts_with('}') {
                    return Err(self.error("expected '}'"));
                }
                self.pos += 1;
                tree.nested.insert(ctx.expand(&name), inner);
            }
            match self.src[self.pos..].chars().next() {
                Some(',' | '|') => self.pos += 1,
                _ => return Ok(tree),
            }
        }
    }
}
