//! Writes a dump: pages through the store by key and hands each line to a sink as it
//! goes, so memory stays flat whatever the size.

use async_trait::async_trait;

use super::{entity_form, Header, Record, Summary, FORMAT, VERSION};
use crate::error::{ErrorKind, NgsiError, Result};
use crate::ngsi::{time, Tenant};
use crate::store::SharedStore;

/// Rows read from the store at a time.
const PAGE: usize = 500;

/// Where the lines go (a file, an HTTP response). Each call gets one line, newline
/// included.
#[async_trait]
pub trait Sink: Send {
    async fn line(&mut self, bytes: Vec<u8>) -> Result<()>;
}

struct Writer<'a> {
    sink: &'a mut dyn Sink,
    summary: Summary,
}

impl Writer<'_> {
    async fn record(&mut self, r: &Record) -> Result<()> {
        self.summary.count(r);
        self.raw(r).await
    }

    async fn raw(&mut self, v: &impl serde::Serialize) -> Result<()> {
        let mut bytes = serde_json::to_vec(v).map_err(NgsiError::internal)?;
        bytes.push(b'\n');
        self.sink.line(bytes).await
    }
}

/// Which tenants to dump: `None` for all of them.
pub async fn export(
    store: &SharedStore,
    tenants: Option<Vec<Tenant>>,
    sink: &mut dyn Sink,
) -> Result<Summary> {
    let known = store.dump_tenants().await?;
    let rows: Vec<_> = match &tenants {
        None => known,
        Some(wanted) => {
            for t in wanted {
                if !t.is_default() && !known.iter().any(|k| k.name == t.as_str()) {
                    return Err(NgsiError::new(
                        ErrorKind::NonexistentTenant,
                        format!("there is no tenant '{}'", t.as_str()),
                    ));
                }
            }
            known
                .into_iter()
                .filter(|k| wanted.iter().any(|t| t.as_str() == k.name))
                .collect()
        }
    };
    let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    let mut w = Writer {
        sink,
        summary: Summary::default(),
    };
    w.raw(&Header {
        format: FORMAT.into(),
        version: VERSION,
        exported_at: time::now(),
        tenants: names.clone(),
    })
    .await?;
    for t in rows {
        w.record(&Record::Tenant {
            name: t.name,
            created_at: t.created_at,
        })
        .await?;
    }
    let mut contexts = store.contexts().await?;
    contexts.retain(|c| tenants.is_none() || c.tenant.as_ref().is_none_or(|t| names.contains(t)));
    contexts.sort_by(|a, b| a.url.cmp(&b.url));
    for c in contexts {
        w.record(&Record::Context {
            tenant: c.tenant,
            url: c.url,
            local_id: c.local_id,
            context_kind: c.kind,
            created_at: time::format(c.created_at),
            document: c.document,
        })
        .await?;
    }
    for name in &names {
        tenant_content(store, &Tenant::from_stored(name), &mut w).await?;
    }
    let records = w.summary.records();
    w.raw(&Record::End { records }).await?;
    Ok(w.summary)
}

async fn tenant_content(store: &SharedStore, tenant: &Tenant, w: &mut Writer<'_>) -> Result<()> {
    let name = tenant.as_str().to_string();
    let mut after: Option<String> = None;
    loop {
        let page = store.dump_entities(tenant, after.as_deref(), PAGE).await?;
        after = page.last().map(|e| e.id.clone());
        for e in &page {
            w.record(&Record::Entity {
                tenant: name.clone(),
                entity: entity_form::to_value(e),
            })
            .await?;
        }
        if page.len() < PAGE {
            break;
        }
    }
    let mut after: Option<String> = None;
    loop {
        let page = store
            .dump_temporal_entities(tenant, after.as_deref(), PAGE)
            .await?;
        after = page.last().map(|e| e.id.clone());
        let full = page.len() == PAGE;
        for e in page {
            w.record(&Record::TemporalEntity {
                tenant: name.clone(),
                id: e.id,
                types: e.types,
                scope: e.scope,
                created_at: e.created_at,
                modified_at: e.modified_at,
                deleted_at: e.deleted_at,
            })
            .await?;
        }
        if !full {
            break;
        }
    }
    let mut after: Option<i64> = None;
    loop {
        let page = store.dump_history(tenant, after, PAGE).await?;
        after = page.last().map(|h| h.instance_id);
        let full = page.len() == PAGE;
        for h in page {
            w.record(&Record::Instance {
                tenant: name.clone(),
                entity_id: h.entity_id,
                attribute: h.attr,
                dataset_id: h.dataset_id,
                instance_id: h.instance_id,
                observed_at: h.observed_us.map(time::from_micros),
                created_at: time::from_micros(h.created_us),
                modified_at: time::from_micros(h.modified_us),
                deleted_at: h.deleted_us.map(time::from_micros),
                instance: h.body,
            })
            .await?;
        }
        if !full {
            break;
        }
    }
    let mut after: Option<String> = None;
    loop {
        let page = store
            .dump_subscriptions(tenant, after.as_deref(), PAGE)
            .await?;
        after = page.last().map(|s| s.id.clone());
        let full = page.len() == PAGE;
        for s in page {
            w.record(&Record::Subscription {
                tenant: name.clone(),
                id: s.id,
                subscription: s.doc,
                status: s.status,
            })
            .await?;
        }
        if !full {
            break;
        }
    }
    for r in store.dump_renames(tenant).await? {
        w.record(&Record::Rename {
            tenant: name.clone(),
            old_id: r.old_id,
            new_id: r.new_id,
            renamed_at: r.renamed_at,
            rewritten: r.rewritten,
        })
        .await?;
    }
    Ok(())
}
