//! CSV of the history: one row per attribute instance, with the observation time in UTC
//! (ISO 8601) and as a local `YYYY-MM-DD HH:MM:SS` that spreadsheets read as a date.

use chrono::{DateTime, Utc};

use super::{source, values, FlatRequest};
use crate::dump::export::Sink;
use crate::error::{NgsiError, Result};
use crate::ngsi::temporal::TemporalResult;
use crate::ngsi::time;
use crate::ngsi::type_expr::TypeExpr;
use crate::store::{SharedStore, TemporalSelection};

pub const COLUMNS: [&str; 8] = [
    "entityId",
    "entityType",
    "attribute",
    "datasetId",
    "value",
    "unitCode",
    "observedAt",
    "observedAtLocal",
];

fn csv_err(e: impl std::fmt::Display) -> NgsiError {
    NgsiError::internal(format!("csv: {e}"))
}

/// Types OR'ed, as the temporal store selects them.
pub(super) fn type_list(t: &TypeExpr) -> Option<Vec<String>> {
    match t {
        TypeExpr::Type(t) => Some(vec![t.clone()]),
        TypeExpr::Or(items) => items
            .iter()
            .map(type_list)
            .try_fold(Vec::new(), |mut acc, l| {
                acc.extend(l?);
                Some(acc)
            }),
        TypeExpr::And(_) => None,
    }
}

pub async fn write(store: &SharedStore, req: &FlatRequest, sink: &mut dyn Sink) -> Result<u64> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS).map_err(csv_err)?;
    sink.line(w.into_inner().map_err(csv_err)?).await?;
    let mut rows = 0u64;
    let types = match &req.query.types {
        None => None,
        Some(t) => Some(type_list(t).ok_or_else(|| {
            NgsiError::bad_data("csv-history selects types with ',' or '|' only")
        })?),
    };
    let by_history = !req.query.has_row_filter() && req.query.ids.is_none();
    let mut sel = TemporalSelection {
        types,
        attrs: req.attrs.clone(),
        limit: source::PAGE,
        ..Default::default()
    };
    if by_history {
        // Every history of the types, deleted entities included.
        loop {
            let page = store.temporal_query(&req.tenant, &sel, &req.window).await?;
            rows += write_page(&page, req, sink).await?;
            if page.len() < source::PAGE {
                break;
            }
            sel.offset += page.len();
        }
    } else {
        // q or geoQ select on the current state: the histories of those entities.
        let mut pages = source::Pages::new(store, &req.tenant, &req.query);
        while let Some(entities) = pages.next().await? {
            sel.ids = Some(entities.into_iter().map(|e| e.id).collect());
            sel.types = None;
            let page = store.temporal_query(&req.tenant, &sel, &req.window).await?;
            rows += write_page(&page, req, sink).await?;
        }
    }
    Ok(rows)
}

async fn write_page(
    page: &[TemporalResult],
    req: &FlatRequest,
    sink: &mut dyn Sink,
) -> Result<u64> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    let mut rows = 0;
    for r in page {
        let types = r
            .entity
            .types
            .iter()
            .map(|t| req.ctx.compact(t))
            .collect::<Vec<_>>()
            .join(",");
        for i in r.instances.iter().filter(|i| i.deleted_at.is_none()) {
            let (utc, local) = match i.observed_at {
                Some(us) => (
                    time::from_micros(us),
                    DateTime::<Utc>::from_timestamp_micros(us)
                        .map(|t| {
                            t.with_timezone(&req.zone)
                                .format("%Y-%m-%d %H:%M:%S")
                                .to_string()
                        })
                        .unwrap_or_default(),
                ),
                None => (String::new(), String::new()),
            };
            let unit = i.body.get("unitCode").map(values::text).unwrap_or_default();
            w.write_record([
                r.entity.id.as_str(),
                types.as_str(),
                req.ctx.compact(&i.attr).as_str(),
                i.dataset_id.as_deref().unwrap_or(""),
                values::value(&i.body)
                    .map(values::text)
                    .unwrap_or_default()
                    .as_str(),
                unit.as_str(),
                utc.as_str(),
                local.as_str(),
            ])
            .map_err(csv_err)?;
            rows += 1;
        }
    }
    sink.line(w.into_inner().map_err(csv_err)?).await?;
    Ok(rows)
}
