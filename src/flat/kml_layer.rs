//! KML of the current state: one Placemark per entity that has a geometry, named by its
//! id, its attribute values in ExtendedData.

use std::collections::HashMap;

use kml::types::{Element, Placemark};
use kml::{Kml, KmlWriter};

use super::geojson_layer::properties;
use super::{source, values, FlatRequest};
use crate::dump::export::Sink;
use crate::error::{NgsiError, Result};
use crate::ngsi::Entity;
use crate::store::SharedStore;

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The entity's geometry as geo-types (what the KML and Shapefile writers take).
pub fn geo(e: &Entity) -> Option<geo_types::Geometry<f64>> {
    let g: geojson::Geometry = serde_json::from_value(values::geometry(e)?.clone()).ok()?;
    geo_types::Geometry::<f64>::try_from(&g.value).ok()
}

fn placemark(e: &Entity, req: &FlatRequest) -> Option<Placemark> {
    let geometry = kml::types::Geometry::from(geo(e)?);
    let data = properties(e, req)
        .into_iter()
        .map(|(k, v)| Element {
            name: "Data".into(),
            attrs: HashMap::from([("name".to_string(), k)]),
            content: None,
            children: vec![Element {
                name: "value".into(),
                content: Some(values::text(&v)),
                ..Default::default()
            }],
        })
        .collect();
    Some(Placemark {
        name: Some(e.id.clone()),
        geometry: Some(geometry),
        children: vec![Element {
            name: "ExtendedData".into(),
            children: data,
            ..Default::default()
        }],
        ..Default::default()
    })
}

pub async fn write(store: &SharedStore, req: &FlatRequest, sink: &mut dyn Sink) -> Result<u64> {
    let head = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<kml xmlns=\"http://www.opengis.net/kml/2.2\"><Document><name>{}</name>\n",
        escape(&req.name)
    );
    sink.line(head.into_bytes()).await?;
    let mut rows = 0u64;
    let mut pages = source::Pages::new(store, &req.tenant, &req.query);
    while let Some(entities) = pages.next().await? {
        let mut out = Vec::new();
        {
            let mut w: KmlWriter<&mut Vec<u8>> = KmlWriter::from_writer(&mut out);
            for p in entities.iter().filter_map(|e| placemark(e, req)) {
                w.write(&Kml::Placemark(p))
                    .map_err(|e| NgsiError::internal(format!("kml: {e}")))?;
                rows += 1;
            }
        }
        out.push(b'\n');
        sink.line(out).await?;
    }
    sink.line(b"</Document></kml>\n".to_vec()).await?;
    Ok(rows)
}
