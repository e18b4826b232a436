//! A geo-query as a PostGIS prefilter on `entity_geo`: the bounding box every match
//! overlaps (planar, as the in-memory predicates are) and, for `near;maxDistance`, a
//! distance test on `geography` in metres. Both select a superset; the rows are
//! re-checked with the in-memory predicates (`ngsi/geo.rs`), which decide.

use geo::{Coord, Geometry, LineString, Polygon};
use serde_json::{json, Value};

use super::sql::Sql;
use crate::ngsi::geo::{GeoQuery, GeoRel};

/// Appends ` AND <prefilter>` to `sql` when the relation allows one.
pub fn prefilter(g: &GeoQuery, sql: &mut Sql) {
    let Some([min_x, max_x, min_y, max_y]) = g.prefilter_box() else {
        // `disjoint`, `near` with only a minimum: anything having the property.
        let attr = sql.bind(g.property.clone());
        sql.push(&format!(" AND e.attrs ? {attr}::text"));
        return;
    };
    let attr = sql.bind(g.property.clone());
    let envelope = format!(
        "ST_MakeEnvelope({}, {}, {}, {}, 4326)",
        sql.bind(min_x),
        sql.bind(min_y),
        sql.bind(max_x),
        sql.bind(max_y)
    );
    let mut cond = format!("g.attr = {attr}::text AND g.geom && {envelope}");
    if let (GeoRel::Near { max: Some(m), .. }, Some(geojson)) = (&g.rel, geojson(&g.geometry)) {
        // PostGIS measures on the spheroid, the broker with haversine on a sphere: the
        // two differ by well under 1%, so the margin keeps this a superset.
        let q = sql.bind(geojson.to_string());
        let d = sql.bind(m * 1.01 + 1.0);
        cond.push_str(&format!(
            " AND ST_DWithin(g.geom::geography, ST_SetSRID(ST_GeomFromGeoJSON({q}::text), 4326)::geography, {d}::float8)"
        ));
    }
    sql.push(&format!(
        " AND e.seq IN (SELECT g.entity FROM entity_geo g WHERE {cond})"
    ));
}

fn coords(c: &Coord<f64>) -> Value {
    json!([c.x, c.y])
}

fn line(l: &LineString<f64>) -> Value {
    Value::Array(l.coords().map(coords).collect())
}

fn polygon(p: &Polygon<f64>) -> Value {
    let mut rings = vec![line(p.exterior())];
    rings.extend(p.interiors().iter().map(line));
    Value::Array(rings)
}

/// A query geometry as GeoJSON (the kinds a geoQ can name).
pub fn geojson(g: &Geometry<f64>) -> Option<Value> {
    let (kind, c) = match g {
        Geometry::Point(p) => ("Point", coords(&p.0)),
        Geometry::LineString(l) => ("LineString", line(l)),
        Geometry::Polygon(p) => ("Polygon", polygon(p)),
        Geometry::MultiPoint(m) => (
            "MultiPoint",
            Value::Array(m.iter().map(|p| coords(&p.0)).collect()),
        ),
        Geometry::MultiLineString(m) => (
            "MultiLineString",
            Value::Array(m.iter().map(line).collect()),
        ),
        Geometry::MultiPolygon(m) => (
            "MultiPolygon",
            Value::Array(m.iter().map(polygon).collect()),
        ),
        _ => return None,
    };
    Some(json!({ "type": kind, "coordinates": c }))
}
