//! CSV of the current state: one row per entity, `id`, `type`, then one column per
//! attribute (its default instance; geometries as GeoJSON text).

use super::{source, values, FlatRequest};
use crate::dump::export::Sink;
use crate::error::{NgsiError, Result};
use crate::ngsi::type_expr::TypeExpr;
use crate::store::SharedStore;

fn csv_err(e: impl std::fmt::Display) -> NgsiError {
    NgsiError::internal(format!("csv: {e}"))
}

fn mentioned(t: &TypeExpr, out: &mut Vec<String>) {
    match t {
        TypeExpr::Type(t) => out.push(t.clone()),
        TypeExpr::And(items) | TypeExpr::Or(items) => items.iter().for_each(|i| mentioned(i, out)),
    }
}

/// The attribute columns (expanded): those asked for, else every attribute the store
/// knows for the selected types, so the header is known before the first row.
pub async fn columns(store: &SharedStore, req: &FlatRequest) -> Result<Vec<String>> {
    if let Some(a) = &req.attrs {
        return Ok(a.clone());
    }
    let mut types = Vec::new();
    if let Some(t) = &req.query.types {
        mentioned(t, &mut types);
    }
    let mut out: Vec<String> = Vec::new();
    for s in store.type_stats(&req.tenant).await? {
        if !types.is_empty() && !types.contains(&s.type_iri) {
            continue;
        }
        for (name, _, _) in s.attributes {
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    Ok(out)
}

pub async fn write(store: &SharedStore, req: &FlatRequest, sink: &mut dyn Sink) -> Result<u64> {
    let cols = columns(store, req).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["id".to_string(), "type".to_string()];
    header.extend(cols.iter().map(|c| req.ctx.compact(c)));
    w.write_record(&header).map_err(csv_err)?;
    sink.line(w.into_inner().map_err(csv_err)?).await?;
    let mut rows = 0u64;
    let mut pages = source::Pages::new(store, &req.tenant, &req.query);
    while let Some(entities) = pages.next().await? {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        for e in &entities {
            let mut row = vec![e.id.clone(), values::types(e, &req.ctx)];
            row.extend(cols.iter().map(|c| values::cell(e, c)));
            w.write_record(&row).map_err(csv_err)?;
            rows += 1;
        }
        sink.line(w.into_inner().map_err(csv_err)?).await?;
    }
    Ok(rows)
}
