//! Shapefile of the current state, zipped: one layer per geometry family present
//! (points, multipoints, lines, polygons: a Shapefile holds one), each with its .shp,
//! .shx, .dbf and a WGS 84 .prj. DBF columns: `id`, `type`, then the attributes under
//! their compact names cut to the 10 characters DBF allows (made unique), numeric when
//! every value is a number. Written in two passes (the DBF header comes first) through
//! temporary files, then zipped and streamed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use shapefile::dbase::{self, FieldName, FieldValue, TableWriterBuilder};
use shapefile::{Multipoint, Point, Polygon, PolygonRing, Polyline};

use super::kml_layer::geo;
use super::{csv_state, source, values, FlatRequest};
use crate::dump::export::Sink;
use crate::error::{NgsiError, Result};
use crate::ngsi::Entity;
use crate::store::SharedStore;

pub const PRJ_WGS84: &str = r#"GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,298.257223563]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]"#;

fn shp_err(e: impl std::fmt::Display) -> NgsiError {
    NgsiError::internal(format!("shapefile: {e}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    Points,
    Multipoints,
    Lines,
    Polygons,
}

enum Shape {
    Point(Point),
    Multipoint(Multipoint),
    Line(Polyline),
    Polygon(Polygon),
}

fn pt(c: geo_types::Coord<f64>) -> Point {
    Point::new(c.x, c.y)
}

fn shape(g: geo_types::Geometry<f64>) -> Option<(Family, Shape)> {
    use geo_types::Geometry as G;
    let ring = |l: &geo_types::LineString<f64>| l.0.iter().copied().map(pt).collect::<Vec<_>>();
    let rings = |p: &geo_types::Polygon<f64>| {
        std::iter::once(PolygonRing::Outer(ring(p.exterior())))
            .chain(p.interiors().iter().map(|i| PolygonRing::Inner(ring(i))))
            .collect::<Vec<_>>()
    };
    Some(match g {
        G::Point(p) => (Family::Points, Shape::Point(pt(p.0))),
        G::MultiPoint(m) => (
            Family::Multipoints,
            Shape::Multipoint(Multipoint::new(m.0.iter().map(|p| pt(p.0)).collect())),
        ),
        G::LineString(l) => (Family::Lines, Shape::Line(Polyline::new(ring(&l)))),
        G::MultiLineString(m) => (
            Family::Lines,
            Shape::Line(Polyline::with_parts(m.0.iter().map(ring).collect())),
        ),
        G::Polygon(p) => (
            Family::Polygons,
            Shape::Polygon(Polygon::with_rings(rings(&p))),
        ),
        G::MultiPolygon(m) => (
            Family::Polygons,
            Shape::Polygon(Polygon::with_rings(m.0.iter().flat_map(rings).collect())),
        ),
        _ => return None,
    })
}

/// DBF field names: letters, digits and '_', at most 10 characters, unique.
pub fn field_names(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = vec!["id".into(), "type".into()];
    for n in names {
        let clean: String = n
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(10)
            .collect();
        let mut candidate = clean.clone();
        let mut k = 1;
        while out.iter().any(|o| o.eq_ignore_ascii_case(&candidate)) {
            let suffix = k.to_string();
            candidate = format!("{}{suffix}", &clean[..clean.len().min(10 - suffix.len())]);
            k += 1;
        }
        out.push(candidate);
    }
    out.split_off(2)
}

/// Text cut to the 254 bytes a DBF character field holds.
fn cut(mut s: String) -> String {
    if s.len() > 254 {
        let mut end = 254;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

struct Columns {
    attrs: Vec<String>,
    fields: Vec<String>,
    numeric: Vec<bool>,
}

fn builder(cols: &Columns) -> Result<TableWriterBuilder> {
    let name = |n: &str| FieldName::try_from(n).map_err(|e| shp_err(format!("{e:?}")));
    let mut b = TableWriterBuilder::new()
        .add_character_field(name("id")?, 254)
        .add_character_field(name("type")?, 254);
    for (f, numeric) in cols.fields.iter().zip(&cols.numeric) {
        b = if *numeric {
            b.add_numeric_field(name(f)?, 24, 8)
        } else {
            b.add_character_field(name(f)?, 254)
        };
    }
    Ok(b)
}

fn record(e: &Entity, cols: &Columns, req: &FlatRequest) -> dbase::Record {
    let mut r = dbase::Record::default();
    r.insert("id".into(), FieldValue::Character(Some(cut(e.id.clone()))));
    r.insert(
        "type".into(),
        FieldValue::Character(Some(cut(values::types(e, &req.ctx)))),
    );
    for ((attr, field), numeric) in cols.attrs.iter().zip(&cols.fields).zip(&cols.numeric) {
        let v = e
            .attrs
            .get(attr)
            .and_then(|i| values::main_instance(i))
            .and_then(values::value);
        let value = if *numeric {
            FieldValue::Numeric(v.and_then(serde_json::Value::as_f64))
        } else {
            FieldValue::Character(v.map(values::text).map(cut))
        };
        r.insert(field.clone(), value);
    }
    r
}

pub async fn write(store: &SharedStore, req: &FlatRequest, sink: &mut dyn Sink) -> Result<u64> {
    let mut attrs = csv_state::columns(store, req).await?;
    // Geometries are the shapes themselves; DBF holds at most 255 fields.
    attrs.retain(|a| a != values::LOCATION);
    attrs.truncate(250);
    let compact: Vec<String> = attrs.iter().map(|a| req.ctx.compact(a)).collect();
    // Pass 1: which columns are numeric, which geometry families occur.
    let mut numeric = vec![true; attrs.len()];
    let mut seen = vec![false; attrs.len()];
    let mut families = std::collections::BTreeSet::new();
    let mut pages = source::Pages::new(store, &req.tenant, &req.query);
    while let Some(entities) = pages.next().await? {
        for e in &entities {
            let Some((family, _)) = geo(e).and_then(shape) else {
                continue;
            };
            families.insert(family);
            for (i, a) in attrs.iter().enumerate() {
                if let Some(v) = e
                    .attrs
                    .get(a)
                    .and_then(|i| values::main_instance(i))
                    .and_then(values::value)
                {
                    seen[i] = true;
                    numeric[i] &= v.is_number();
                }
            }
        }
    }
    let cols = Columns {
        fields: field_names(&compact),
        numeric: numeric.iter().zip(&seen).map(|(n, s)| *n && *s).collect(),
        attrs,
    };
    let dir = tempfile::tempdir().map_err(shp_err)?;
    let base: String = req
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let layer = |f: Family| {
        dir.path()
            .join(format!("{base}_{}.shp", format!("{f:?}").to_lowercase()))
    };
    // Pass 2: the shapes and their records, one writer per family.
    let mut writers = BTreeMap::new();
    for f in &families {
        let w = shapefile::Writer::from_path(layer(*f), builder(&cols)?).map_err(shp_err)?;
        writers.insert(*f, w);
    }
    let mut rows = 0u64;
    let mut pages = source::Pages::new(store, &req.tenant, &req.query);
    while let Some(entities) = pages.next().await? {
        for e in &entities {
            let Some((family, s)) = geo(e).and_then(shape) else {
                continue;
            };
            let Some(w) = writers.get_mut(&family) else {
                continue;
            };
            let r = record(e, &cols, req);
            match &s {
                Shape::Point(p) => w.write_shape_and_record(p, &r),
                Shape::Multipoint(p) => w.write_shape_and_record(p, &r),
                Shape::Line(p) => w.write_shape_and_record(p, &r),
                Shape::Polygon(p) => w.write_shape_and_record(p, &r),
            }
            .map_err(shp_err)?;
            rows += 1;
        }
    }
    // Dropping the writers completes the files (headers with lengths and counts).
    drop(writers);
    let zip_path = dir.path().join("layer.zip");
    zip_layers(
        &zip_path,
        &families.iter().map(|f| layer(*f)).collect::<Vec<_>>(),
    )?;
    let mut file = std::fs::File::open(&zip_path).map_err(shp_err)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(shp_err)?;
        if n == 0 {
            break;
        }
        sink.line(buf[..n].to_vec()).await?;
    }
    Ok(rows)
}

fn zip_layers(zip_path: &Path, layers: &[std::path::PathBuf]) -> Result<()> {
    let file = std::fs::File::create(zip_path).map_err(shp_err)?;
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default();
    for shp in layers {
        for ext in ["shp", "shx", "dbf"] {
            let path = shp.with_extension(ext);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            zip.start_file(name, opts).map_err(shp_err)?;
            let mut f = std::fs::File::open(&path).map_err(shp_err)?;
            std::io::copy(&mut f, &mut zip).map_err(shp_err)?;
        }
        let prj = shp
            .with_extension("prj")
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        zip.start_file(prj, opts).map_err(shp_err)?;
        zip.write_all(PRJ_WGS84.as_bytes()).map_err(shp_err)?;
    }
    zip.finish().map_err(shp_err)?;
    Ok(())
}
