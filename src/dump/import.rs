//! Reads a dump line by line and restores it in batches. Without `resume`, the batches
//! are staged and applied in one transaction at the end: a file that is truncated, of
//! another version or bad in the middle leaves nothing behind. With `resume`, each batch
//! is committed as it comes (a re-run after a failure completes the import: every item
//! replaces what has its key, so nothing is duplicated).

use super::{entity_form, Header, Record, Summary, FORMAT, VERSION};
use crate::error::{ErrorKind, NgsiError, Result};
use crate::jsonld::ContextRecord;
use crate::ngsi::ids::validate_uri;
use crate::ngsi::temporal::TemporalEntity;
use crate::ngsi::{time, Tenant};
use crate::store::dump::{
    HistoryRow, RenameRow, RestoreItem, RestoreSession, SubscriptionRow, TenantRow,
};
use crate::store::SharedStore;

/// Items sent to the store at a time.
const BATCH: usize = 500;

pub struct Importer {
    store: SharedStore,
    session: Option<RestoreSession>,
    line: u64,
    header: bool,
    /// The record count the end line announced.
    end: Option<u64>,
    batch: Vec<RestoreItem>,
    summary: Summary,
}

fn at_line(line: u64, e: NgsiError) -> NgsiError {
    NgsiError::new(e.kind, format!("line {line}: {}", e.detail))
}

fn bad(detail: impl Into<String>) -> NgsiError {
    NgsiError::bad_data(detail)
}

fn micros(s: &str, what: &str) -> Result<i64> {
    time::parse(s)
        .map(time::micros)
        .map_err(|_| bad(format!("{what} '{s}' is not a date-time")))
}

fn tenant_name(name: &str) -> Result<String> {
    if name.is_empty() {
        return Ok(String::new());
    }
    Ok(Tenant::parse(Some(name))?.as_str().to_string())
}

impl Importer {
    pub async fn start(store: SharedStore, resume: bool) -> Result<Self> {
        let session = if resume {
            None
        } else {
            Some(store.restore_begin().await?)
        };
        Ok(Self {
            store,
            session,
            line: 0,
            header: false,
            end: None,
            batch: Vec::with_capacity(BATCH),
            summary: Summary::default(),
        })
    }

    /// Reads the next line (without its newline).
    pub async fn line(&mut self, text: &str) -> Result<()> {
        self.line += 1;
        let line = self.line;
        self.read(text).await.map_err(|e| at_line(line, e))
    }

    async fn read(&mut self, text: &str) -> Result<()> {
        if text.trim().is_empty() {
            return Ok(());
        }
        if self.end.is_some() {
            return Err(bad("there is more after the end record"));
        }
        if !self.header {
            let h: Header = serde_json::from_str(text).map_err(|e| {
                bad(format!(
                    "not a {FORMAT} header (is this a Calanque dump?): {e}"
                ))
            })?;
            if h.format != FORMAT {
                return Err(bad(format!(
                    "the format is '{}', expected '{FORMAT}'",
                    h.format
                )));
            }
            if h.version != VERSION {
                return Err(bad(format!(
                    "dump format version {} is not supported (this broker reads version {VERSION})",
                    h.version
                )));
            }
            self.header = true;
            return Ok(());
        }
        let record: Record =
            serde_json::from_str(text).map_err(|e| bad(format!("invalid record: {e}")))?;
        if let Record::End { records } = record {
            if records != self.summary.records() {
                return Err(bad(format!(
                    "the end record announces {records} records, the file holds {}",
                    self.summary.records()
                )));
            }
            self.end = Some(records);
            return Ok(());
        }
        self.summary.count(&record);
        let item = item(record)?;
        self.batch.push(item);
        if self.batch.len() >= BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.store.restore(self.session.as_ref(), batch).await
    }

    /// Checks the file was whole and makes the import visible.
    pub async fn finish(mut self) -> Result<Summary> {
        let result = self.complete().await;
        if result.is_err() {
            self.abort().await;
        }
        result
    }

    async fn complete(&mut self) -> Result<Summary> {
        if !self.header {
            return Err(bad("the dump is empty (no header line)"));
        }
        if self.end.is_none() {
            return Err(bad(format!(
                "the dump is truncated: it ends at line {} without its end record",
                self.line
            )));
        }
        let line = self.line;
        self.flush().await.map_err(|e| at_line(line, e))?;
        if let Some(s) = &self.session {
            self.store.restore_commit(s).await?;
        }
        Ok(self.summary.clone())
    }

    /// Stops after an error: drops what was staged or, when resuming, commits the
    /// records read before the error (a re-run then has less left to do).
    pub async fn abort(&mut self) {
        let done = match self.session.take() {
            Some(s) => self.store.restore_abort(&s).await,
            None => self.flush().await,
        };
        if let Err(e) = done {
            tracing::error!(error = %e.detail, "could not finish a failed import");
        }
    }
}

/// A record, checked, as the store restores it.
fn item(record: Record) -> Result<RestoreItem> {
    Ok(match record {
        Record::Tenant { name, created_at } => {
            micros(&created_at, "createdAt")?;
            RestoreItem::Tenant(TenantRow {
                name: tenant_name(&name)?,
                created_at,
            })
        }
        Record::Context {
            tenant,
            url,
            local_id,
            context_kind,
            created_at,
            document,
        } => {
            validate_uri(&url, "context url")?;
            let created_at = time::parse(&created_at)
                .map_err(|_| bad(format!("createdAt '{created_at}' is not a date-time")))?;
            RestoreItem::Context(ContextRecord {
                tenant: tenant.as_deref().map(tenant_name).transpose()?,
                url,
                local_id,
                kind: context_kind,
                document,
                created_at,
            })
        }
        Record::Entity { tenant, entity } => {
            RestoreItem::Entity(tenant_name(&tenant)?, entity_form::from_value(entity)?)
        }
        Record::TemporalEntity {
            tenant,
            id,
            types,
            scope,
            created_at,
            modified_at,
            deleted_at,
        } => {
            validate_uri(&id, "entity id")?;
            RestoreItem::TemporalEntity(
                tenant_name(&tenant)?,
                TemporalEntity {
                    id,
                    types,
                    scope,
                    created_at,
                    modified_at,
                    deleted_at,
                },
            )
        }
        Record::Instance {
            tenant,
            entity_id,
            attribute,
            dataset_id,
            instance_id,
            observed_at,
            created_at,
            modified_at,
            deleted_at,
            instance,
        } => {
            validate_uri(&entity_id, "entity id")?;
            if !instance.contains_key("type") {
                return Err(bad(format!(
                    "instance {instance_id} of {entity_id} has no type"
                )));
            }
            RestoreItem::History(
                tenant_name(&tenant)?,
                HistoryRow {
                    instance_id,
                    entity_id,
                    attr: attribute,
                    dataset_id,
                    observed_us: observed_at
                        .as_deref()
                        .map(|t| micros(t, "observedAt"))
                        .transpose()?,
                    created_us: micros(&created_at, "createdAt")?,
                    modified_us: micros(&modified_at, "modifiedAt")?,
                    deleted_us: deleted_at
                        .as_deref()
                        .map(|t| micros(t, "deletedAt"))
                        .transpose()?,
                    body: instance,
                },
            )
        }
        Record::Subscription {
            tenant,
            id,
            subscription,
            status,
        } => {
            validate_uri(&id, "subscription id")?;
            if !subscription.is_object() {
                return Err(bad(format!("subscription {id} is not an object")));
            }
            RestoreItem::Subscription(
                tenant_name(&tenant)?,
                SubscriptionRow {
                    id,
                    doc: subscription,
                    status,
                },
            )
        }
        Record::Registration { .. } => {
            return Err(NgsiError::new(
                ErrorKind::OperationNotSupported,
                "context source registrations are not implemented by this broker",
            ))
        }
        Record::Rename {
            tenant,
            old_id,
            new_id,
            renamed_at,
            rewritten,
        } => RestoreItem::Rename(
            tenant_name(&tenant)?,
            RenameRow {
                old_id,
                new_id,
                renamed_at,
                rewritten,
            },
        ),
        Record::End { .. } => return Err(bad("misplaced end record")),
    })
}
