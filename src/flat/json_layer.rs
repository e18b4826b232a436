//! JSON of the current state: an array of flat objects (`id`, `type`, then each
//! attribute's value under its compact name), what open-data portals read as rows.

use serde_json::{json, Value};

use super::geojson_layer::properties;
use super::{source, FlatRequest};
use crate::dump::export::Sink;
use crate::error::{NgsiError, Result};
use crate::store::SharedStore;

pub async fn write(store: &SharedStore, req: &FlatRequest, sink: &mut dyn Sink) -> Result<u64> {
    sink.line(b"[".to_vec()).await?;
    let mut rows = 0u64;
    let mut pages = source::Pages::new(store, &req.tenant, &req.query);
    while let Some(entities) = pages.next().await? {
        let mut out = Vec::new();
        for e in &entities {
            if rows > 0 {
                out.push(b',');
            }
            out.push(b'\n');
            let mut obj = serde_json::Map::new();
            obj.insert("id".into(), json!(e.id));
            obj.extend(properties(e, req));
            serde_json::to_writer(&mut out, &Value::Object(obj)).map_err(NgsiError::internal)?;
            rows += 1;
        }
        sink.line(out).await?;
    }
    sink.line(b"\n]\n".to_vec()).await?;
    Ok(rows)
}
