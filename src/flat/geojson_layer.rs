//! GeoJSON of the current state: a FeatureCollection, one Feature per entity (its
//! `location`, else its first GeoProperty; null when it has none), the attribute values
//! as properties under their compact names.

use serde_json::{json, Map, Value};

use super::{source, values, FlatRequest};
use crate::dump::export::Sink;
use crate::error::{NgsiError, Result};
use crate::ngsi::Entity;
use crate::store::SharedStore;

/// The properties of an entity: `type`, then each attribute's value.
pub fn properties(e: &Entity, req: &FlatRequest) -> Map<String, Value> {
    let mut props = Map::new();
    props.insert("type".into(), json!(values::types(e, &req.ctx)));
    for (name, instances) in &e.attrs {
        if req.attrs.as_ref().is_some_and(|a| !a.contains(name)) {
            continue;
        }
        let Some(v) = values::main_instance(instances).and_then(values::value) else {
            continue;
        };
        props.insert(req.ctx.compact(name), v.clone());
    }
    props
}

pub fn feature(e: &Entity, req: &FlatRequest) -> geojson::Feature {
    geojson::Feature {
        bbox: None,
        geometry: values::geometry(e)
            .and_then(|g| serde_json::from_value::<geojson::Geometry>(g.clone()).ok()),
        id: Some(geojson::feature::Id::String(e.id.clone())),
        properties: Some(properties(e, req)),
        foreign_members: None,
    }
}

pub async fn write(store: &SharedStore, req: &FlatRequest, sink: &mut dyn Sink) -> Result<u64> {
    sink.line(br#"{"type":"FeatureCollection","features":["#.to_vec())
        .await?;
    let mut rows = 0u64;
    let mut pages = source::Pages::new(store, &req.tenant, &req.query);
    while let Some(entities) = pages.next().await? {
        let mut out = Vec::new();
        for e in &entities {
            if rows > 0 {
                out.push(b',');
            }
            out.push(b'\n');
            serde_json::to_writer(&mut out, &feature(e, req)).map_err(NgsiError::internal)?;
            rows += 1;
        }
        sink.line(out).await?;
    }
    sink.line(b"\n]}\n".to_vec()).await?;
    Ok(rows)
}
