//! Linked entity retrieval (`join=inline|flat`, `joinLevel`, clause 4.5.23): the
//! entities a Relationship points to, embedded in it or listed beside the result.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::extract::MediaType;
use super::{response, State};
use crate::error::{NgsiError, Result};
use crate::jsonld::ActiveContext;
use crate::ngsi::attribute;
use crate::ngsi::render::{render_entity, Format, RenderOptions};
use crate::ngsi::{Entity, Tenant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    Inline,
    Flat,
}

impl Join {
    pub fn from_params(params: &HashMap<String, String>) -> Result<Option<(Join, usize)>> {
        let join = match params.get("join").map(String::as_str) {
            None => return Ok(None),
            Some("inline") => Join::Inline,
            Some("flat") => Join::Flat,
            Some("@none") => return Ok(None),
            Some(other) => {
                return Err(NgsiError::bad_data(format!(
                    "join must be inline, flat or @none, not '{other}'"
                )))
            }
        };
        let level = match params.get("joinLevel") {
            None => 1,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => {
                    return Err(NgsiError::bad_data(format!(
                        "joinLevel must be a positive integer, not '{l}'"
                    )))
                }
            },
        };
        Ok(Some((join, level.min(8))))
    }
}

/// The objects of an entity's Relationships, in attribute order.
fn targets(e: &Entity) -> Vec<(String, Vec<String>)> {
    e.attrs
        .iter()
        .map(|(name, instances)| {
            let ids = instances
                .iter()
                .filter(|i| i.get("type").and_then(Value::as_str) == Some(attribute::RELATIONSHIP))
                .flat_map(|i| match i.get("object") {
                    Some(Value::String(s)) => vec![s.clone()],
                    Some(Value::Array(a)) => a
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                    _ => Vec::new(),
                })
                .collect();
            (name.clone(), ids)
        })
        .filter(|(_, ids): &(String, Vec<String>)| !ids.is_empty())
        .collect()
}

struct Linker<'a> {
    state: &'a State,
    tenant: &'a Tenant,
    ctx: &'a ActiveContext,
    cache: HashMap<String, Option<Entity>>,
}

impl Linker<'_> {
    async fn fetch(&mut self, id: &str) -> Result<Option<Entity>> {
        if let Some(hit) = self.cache.get(id) {
            return Ok(hit.clone());
        }
        let e = self.state.store.get(self.tenant, id).await?;
        self.cache.insert(id.to_string(), e.clone());
        Ok(e)
    }

    /// Renders an entity with its linked entities embedded, `level` links deep. Only
    /// Relationships the projection keeps are followed; each linked entity is rendered
    /// with the projection nested under its Relationship.
    async fn inline(&mut self, e: &Entity, level: usize, opts: &RenderOptions) -> Result<Value> {
        let mut out = render_entity(e, self.ctx, opts);
        if level == 0 {
            return Ok(Value::Object(out));
        }
        for (name, ids) in targets(e) {
            if !opts.shows_attribute(&name) {
                continue;
            }
            let child_opts = opts.for_linked(&name);
            let key = self.ctx.compact(&name);
            let mut linked = Vec::new();
            for id in &ids {
                if let Some(t) = self.fetch(id).await? {
                    linked.push(Box::pin(self.inline(&t, level - 1, &child_opts)).await?);
                }
            }
            let Some(first) = linked.first().cloned() else {
                continue;
            };
            let embedded = if linked.len() == 1 {
                first
            } else {
                Value::Array(linked)
            };
            match (opts.format, out.get_mut(&key)) {
                (Format::KeyValues, Some(slot)) => *slot = embedded,
                (_, Some(Value::Object(attr))) => {
                    attr.insert("entity".into(), embedded);
                }
                _ => {}
            }
        }
        Ok(Value::Object(out))
    }

    /// The entities reachable from `roots` within `level` links through Relationships
    /// the projection keeps, each with the options it is rendered with.
    async fn flat(
        &mut self,
        roots: &[Entity],
        level: usize,
        opts: &RenderOptions,
    ) -> Result<Vec<(Entity, RenderOptions)>> {
        let mut seen: HashSet<String> = roots.iter().map(|e| e.id.clone()).collect();
        let mut frontier: Vec<(Entity, RenderOptions)> =
            roots.iter().map(|e| (e.clone(), opts.clone())).collect();
        let mut linked = Vec::new();
        for _ in 0..level {
            let mut next = Vec::new();
            for (e, e_opts) in &frontier {
                for (name, ids) in targets(e) {
                    if !e_opts.shows_attribute(&name) {
                        continue;
                    }
                    for id in ids {
                        if seen.insert(id.clone()) {
                            if let Some(t) = self.fetch(&id).await? {
                                next.push((t, e_opts.for_linked(&name)));
                            }
                        }
                    }
                }
            }
            linked.extend(next.iter().cloned());
            frontier = next;
        }
        Ok(linked)
    }
}

/// The response body of a retrieval or query with linked entities.
#[allow(clippy::too_many_arguments)]
pub async fn render(
    state: &State,
    tenant: &Tenant,
    roots: &[Entity],
    ctx: &ActiveContext,
    opts: &RenderOptions,
    media: MediaType,
    join: Join,
    level: usize,
) -> Result<Vec<Value>> {
    let mut linker = Linker {
        state,
        tenant,
        ctx,
        cache: HashMap::new(),
    };
    let with_ctx = |v: Value| match v {
        Value::Object(o) => response::with_context(o, media, ctx),
        other => other,
    };
    match join {
        Join::Inline => {
            let mut out = Vec::with_capacity(roots.len());
            for e in roots {
                out.push(with_ctx(linker.inline(e, level, opts).await?));
            }
            Ok(out)
        }
        Join::Flat => {
            let linked = linker.flat(roots, level, opts).await?;
            Ok(roots
                .iter()
                .map(|e| with_ctx(Value::Object(render_entity(e, ctx, opts))))
                .chain(
                    linked
                        .iter()
                        .map(|(e, o)| with_ctx(Value::Object(render_entity(e, ctx, o)))),
                )
                .collect())
        }
    }
}
