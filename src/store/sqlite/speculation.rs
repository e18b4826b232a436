//! Writes prepared off the writer thread.
//!
//! The writer thread is the embedded store's one serial resource, and most of what a
//! write does is not SQL: decoding the stored entity, running the mutation, serializing
//! its result. That part runs first on a reader connection, against the entity as last
//! committed (a guess). In the writer's transaction the guess holds if the entity is
//! still stored exactly as it was read (the same document text, still live); the writer
//! then uses the prepared answer and only runs SQL. Otherwise (another write to the same
//! entity came in between, or an earlier operation of the same batch changed it) the
//! mutation runs again on what is stored now, as it always did.

use rusqlite::Connection;

use super::entities::{self, StoredRow};
use crate::error::{NgsiError, Result};
use crate::ngsi::{Entity, Tenant};
use crate::store::{Effect, WriteOp};

/// A write with, if one could be made, its answer computed off the writer.
pub struct Prepared {
    pub op: WriteOp,
    guess: Option<Guess>,
}

struct Guess {
    /// The live document the mutation was run on (`None`: no live entity).
    seen: Option<String>,
    before: Option<Entity>,
    effect: Result<Effect>,
    /// The stored form of a `Put`'s entity.
    doc: Option<String>,
}

/// What the writer goes on with: the row to overwrite, the entity before the write,
/// the mutation's answer and, when it was prepared, the document to store.
pub struct Decided {
    pub row: Option<i64>,
    pub before: Option<Entity>,
    pub effect: Result<Effect>,
    pub doc: Option<String>,
}

impl Prepared {
    /// A write the writer runs in full (no reader was available).
    pub fn unprepared(op: WriteOp) -> Self {
        Self { op, guess: None }
    }

    /// Runs `op`'s mutation on the entity as committed when `conn`'s read starts.
    pub fn on_reader(conn: &Connection, tenant: &Tenant, op: WriteOp) -> Self {
        let guess = guess(conn, tenant, &op).unwrap_or_else(|e| {
            tracing::debug!("write prepared in the writer: {}", e.detail);
            None
        });
        Self { op, guess }
    }

    /// In the writer's transaction: the prepared answer if the entity is stored as it
    /// was read, else the mutation's answer on what is stored now.
    pub fn decide(self, conn: &Connection, tenant: &Tenant, now: &str) -> Result<Decided> {
        let stored = entities::read_row(conn, tenant, &self.op.entity_id)?;
        let live = stored.as_ref().and_then(|r| r.live_doc(now));
        let row = stored.as_ref().map(|r| r.rowid);
        if let Some(guess) = self.guess {
            if guess.seen.as_deref() == live {
                crate::metrics::write_prepared(true);
                return Ok(Decided {
                    row,
                    before: guess.before,
                    effect: guess.effect,
                    doc: guess.doc,
                });
            }
            crate::metrics::write_prepared(false);
        }
        let current = live.map(entities::decode).transpose()?;
        let before = current.clone();
        Ok(Decided {
            row,
            before,
            effect: (self.op.mutation)(current),
            doc: None,
        })
    }
}

fn guess(conn: &Connection, tenant: &Tenant, op: &WriteOp) -> Result<Option<Guess>> {
    let seen = match entities::read_row(conn, tenant, &op.entity_id)? {
        None => None,
        // An entity or attribute that expires may do so between this read and the
        // writer's: what the mutation saw would not be what it acts on.
        Some(row) if row.may_expire() => return Ok(None),
        Some(StoredRow { doc, .. }) => Some(doc),
    };
    let before = seen.as_deref().map(entities::decode).transpose()?;
    let effect = (op.mutation)(before.clone());
    let doc = match &effect {
        Ok(Effect::Put(entity, _)) => {
            Some(serde_json::to_string(entity).map_err(NgsiError::internal)?)
        }
        _ => None,
    };
    Ok(Some(Guess {
        seen,
        before,
        effect,
        doc,
    }))
}
