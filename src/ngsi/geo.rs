//! Geo-queries (clause 4.10): `georel`, `geometry`, `coordinates`, `geoproperty`, checked
//! with the `geo` crate; distances in metres on WGS84 (haversine).

use geo::{
    Closest, ClosestPoint, Contains, Coord, Geometry, HaversineDistance, Intersects, LineString,
    MultiLineString, MultiPoint, MultiPolygon, Point, Polygon, Within,
};
use serde_json::Value;

use crate::error::{NgsiError, Result};
use crate::jsonld::ActiveContext;
use crate::ngsi::attribute::validate_geometry;
use crate::ngsi::Entity;

#[derive(Debug, Clone, PartialEq)]
pub enum GeoRel {
    Near { max: Option<f64>, min: Option<f64> },
    Within,
    Contains,
    Intersects,
    Disjoint,
    Equals,
    Overlaps,
}

#[derive(Debug, Clone)]
pub struct GeoQuery {
    pub rel: GeoRel,
    pub geometry: Geometry<f64>,
    /// Expanded name of the GeoProperty tested.
    pub property: String,
}

impl GeoQuery {
    /// Builds a geo-query from the request's `georel`, `geometry`, `coordinates` and
    /// `geoproperty` values.
    pub fn parse(
        georel: &str,
        geometry: &str,
        coordinates: &str,
        property: Option<&str>,
        ctx: &ActiveContext,
    ) -> Result<Self> {
        let rel = parse_rel(georel)?;
        let coords: Value = serde_json::from_str(coordinates)
            .map_err(|e| NgsiError::bad_data(format!("coordinates are not a JSON array: {e}")))?;
        let geojson = serde_json::json!({ "type": geometry, "coordinates": coords });
        validate_geometry("geoQ", &geojson)?;
        let geometry = to_geometry(&geojson)
            .ok_or_else(|| NgsiError::bad_data("geoQ geometry is not supported"))?;
        Ok(Self {
            rel,
            geometry,
            property: ctx.expand(property.unwrap_or("location")),
        })
    }

    /// A box [min_x, max_x, min_y, max_y] every matching geometry's box overlaps, when
    /// the relation allows one (not for `disjoint` or a `near` with only a minimum).
    pub fn prefilter_box(&self) -> Option<[f64; 4]> {
        use geo::BoundingRect;
        let rect = self.geometry.bounding_rect()?;
        let (mut b, margin_m) = match self.rel {
            GeoRel::Near { max: Some(m), .. } => {
                ([rect.min().x, rect.max().x, rect.min().y, rect.max().y], m)
            }
            GeoRel::Near { max: None, .. } | GeoRel::Disjoint => return None,
            _ => (
                [rect.min().x, rect.max().x, rect.min().y, rect.max().y],
                0.0,
            ),
        };
        // Metres to degrees, generously (10% margin, latitude-corrected longitude).
        let dlat = margin_m * 1.1 / 111_320.0;
        let cos = b[2]
            .abs()
            .max(b[3].abs())
            .min(89.0)
            .to_radians()
            .cos()
            .max(0.01);
        let dlon = margin_m * 1.1 / (111_320.0 * cos);
        b[0] -= dlon;
        b[1] += dlon;
        b[2] -= dlat;
        b[3] += dlat;
        Some(b)
    }

    pub fn matches(&self, entity: &Entity) -> bool {
        let Some(instances) = entity.attrs.get(&self.property) else {
            return false;
        };
        instances
            .iter()
            .filter_map(|a| a.get("value"))
            .filter_map(to_geometry)
            .any(|g| self.test(&g))
    }

    /// Whether `decide_by_box` can answer for this query: `near` around a point.
    pub fn decides_by_box(&self) -> bool {
        matches!(
            (&self.rel, &self.geometry),
            (GeoRel::Near { .. }, Geometry::Point(_))
        )
    }

    /// Decides a `near` query around a point from a bounding box alone, when the box is
    /// small enough (a point stored in an index rounds to a box of a few centimetres):
    /// `Some(true)` if every geometry inside the box is within the distance bounds,
    /// `Some(false)` if none can be, `None` when the box cannot tell (large boxes, other
    /// relations, or a distance too close to the bound). Exact: the margin covers the
    /// whole box, so the answer is the one `matches` gives on the geometry itself.
    pub fn decide_by_box(&self, b: [f64; 4]) -> Option<bool> {
        let (GeoRel::Near { max, min }, Geometry::Point(center)) = (&self.rel, &self.geometry)
        else {
            return None;
        };
        let [min_x, max_x, min_y, max_y] = b;
        // NaN never comes out of the index, but would make every comparison below false.
        if b.iter().any(|v| v.is_nan()) || min_x > max_x || min_y > max_y {
            return None;
        }
        let diagonal = Point::new(min_x, min_y).haversine_distance(&Point::new(max_x, max_y));
        // Beyond a few metres the box says little and the document decides.
        if diagonal.is_nan() || diagonal > 2.0 {
            return None;
        }
        let middle = Point::new((min_x + max_x) / 2.0, (min_y + max_y) / 2.0);
        let d = center.haversine_distance(&middle);
        // Any point of the box is within `diagonal` of its middle (triangle inequality on
        // the sphere); the centimetre covers rounding in the distance computations.
        let (low, high) = (d - diagonal - 0.01, d + diagonal + 0.01);
        let surely_in = max.is_none_or(|m| high <= m) && min.is_none_or(|m| low >= m);
        let surely_out = max.is_some_and(|m| low > m) || min.is_some_and(|m| high < m);
        if surely_in {
            Some(true)
        } else if surely_out {
            Some(false)
        } else {
            None
        }
    }

    fn test(&self, g: &Geometry<f64>) -> bool {
        let q = &self.geometry;
        match &self.rel {
            GeoRel::Near { max, min } => {
                let d = geometry_distance_m(q, g);
                max.is_none_or(|m| d <= m) && min.is_none_or(|m| d >= m)
            }
            GeoRel::Within => g.is_within(q),
            GeoRel::Contains => q.is_within(g) || g.contains(q),
            GeoRel::Intersects => g.intersects(q),
            GeoRel::Disjoint => !g.intersects(q),
            GeoRel::Equals => g == q,
            // Overlap is between geometries of one dimension sharing part of their interiors.
            GeoRel::Overlaps => {
                dimension(g) == dimension(q)
                    && g.intersects(q)
                    && !g.is_within(q)
                    && !q.is_within(g)
                    && g != q
            }
        }
    }
}

fn parse_rel(georel: &str) -> Result<GeoRel> {
    let mut parts = georel.split(';');
    let name = parts.next().unwrap_or("");
    let bad = |why: &str| NgsiError::bad_data(format!("invalid georel '{georel}': {why}"));
    match name {
        "near" => {
            let (mut max, mut min) = (None, None);
            let parts: Vec<&str> = parts.collect();
            if parts.len() > 1 {
                return Err(bad(
                    "near takes one distance modifier (maxDistance or minDistance)",
                ));
            }
            for p in parts {
                let (k, v) = p
                    .split_once("==")
                    .ok_or_else(|| bad("use near;maxDistance==<metres>"))?;
                let v: f64 = v.parse().map_err(|_| bad("the distance is not a number"))?;
                if !(v.is_finite() && v > 0.0) {
                    return Err(bad("the distance must be a positive number of metres"));
                }
                match k {
                    "maxDistance" => max = Some(v),
                    "minDistance" => min = Some(v),
                    _ => return Err(bad("near takes maxDistance or minDistance")),
                }
            }
            if max.is_none() && min.is_none() {
                return Err(bad("near needs maxDistance or minDistance"));
            }
            Ok(GeoRel::Near { max, min })
        }
        "within" => Ok(GeoRel::Within),
        "contains" => Ok(GeoRel::Contains),
        "intersects" => Ok(GeoRel::Intersects),
        "disjoint" => Ok(GeoRel::Disjoint),
        "equals" => Ok(GeoRel::Equals),
        "overlaps" => Ok(GeoRel::Overlaps),
        _ => Err(bad(
            "unknown relation (near, within, contains, intersects, disjoint, equals, overlaps)",
        )),
    }
}

fn dimension(g: &Geometry<f64>) -> u8 {
    match g {
        Geometry::Point(_) | Geometry::MultiPoint(_) => 0,
        Geometry::LineString(_) | Geometry::MultiLineString(_) | Geometry::Line(_) => 1,
        _ => 2,
    }
}

/// Distance in metres between two geometries: zero if they meet, else the shortest
/// distance from a vertex of either to the other.
fn geometry_distance_m(a: &Geometry<f64>, b: &Geometry<f64>) -> f64 {
    use geo::CoordsIter;
    if a.intersects(b) {
        return 0.0;
    }
    let from_a = a.coords_iter().map(|c| distance_m(&Point(c), b));
    let from_b = b.coords_iter().map(|c| distance_m(&Point(c), a));
    from_a.chain(from_b).fold(f64::INFINITY, f64::min)
}

/// Distance in metres from a point to the closest point of a geometry.
fn distance_m(p: &Point<f64>, g: &Geometry<f64>) -> f64 {
    let closest = match g.closest_point(p) {
        Closest::Intersection(c) | Closest::SinglePoint(c) => c,
        Closest::Indeterminate => return f64::INFINITY,
    };
    if g.intersects(p) && !matches!(g, Geometry::Point(_) | Geometry::MultiPoint(_)) {
        return 0.0;
    }
    p.haversine_distance(&closest)
}

fn coord(v: &Value) -> Option<Coord<f64>> {
    let a = v.as_array()?;
    Some(Coord {
        x: a.first()?.as_f64()?,
        y: a.get(1)?.as_f64()?,
    })
}

fn line(v: &Value) -> Option<LineString<f64>> {
    v.as_array()?
        .iter()
        .map(coord)
        .collect::<Option<Vec<_>>>()
        .map(LineString::new)
}

fn polygon(v: &Value) -> Option<Polygon<f64>> {
    let rings = v.as_array()?.iter().map(line).collect::<Option<Vec<_>>>()?;
    let mut rings = rings.into_iter();
    Some(Polygon::new(rings.next()?, rings.collect()))
}

/// A GeoJSON geometry as a `geo` geometry.
pub fn to_geometry(v: &Value) -> Option<Geometry<f64>> {
    let c = v.get("coordinates")?;
    Some(match v.get("type")?.as_str()? {
        "Point" => Geometry::Point(Point(coord(c)?)),
        "MultiPoint" => Geometry::MultiPoint(MultiPoint(
            c.as_array()?
                .iter()
                .map(|p| coord(p).map(Point))
                .collect::<Option<_>>()?,
        )),
        "LineString" => Geometry::LineString(line(c)?),
        "MultiLineString" => Geometry::MultiLineString(MultiLineString(
            c.as_array()?.iter().map(line).collect::<Option<_>>()?,
        )),
        "Polygon" => Geometry::Polygon(polygon(c)?),
        "MultiPolygon" => Geometry::MultiPolygon(MultiPolygon(
            c.as_array()?.iter().map(polygon).collect::<Option<_>>()?,
        )),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> ActiveContext {
        ActiveContext::new(Vec::<(String, String, bool)>::new(), None, Value::Null)
    }

    fn entity_at(lon: f64, lat: f64) -> Entity {
        serde_json::from_value(json!({
            "id": "urn:x:1", "type": ["T"], "createdAt": "t", "modifiedAt": "t",
            "attrs": { "https://uri.etsi.org/ngsi-ld/default-context/location": [
                { "type": "GeoProperty", "value": { "type": "Point", "coordinates": [lon, lat] } } ] }
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn near_uses_metres() {
        // Vieux-Port of Marseille, and a point about 390 m north of it.
        let q = GeoQuery::parse(
            "near;maxDistance==500",
            "Point",
            "[5.3698,43.2951]",
            None,
            &ctx(),
        );
        let q = q.unwrap_or_else(|e| panic!("{e}"));
        assert!(q.matches(&entity_at(5.3698, 43.2986)));
        assert!(!q.matches(&entity_at(5.3698, 43.3100)));
        let far = GeoQuery::parse(
            "near;minDistance==1000",
            "Point",
            "[5.3698,43.2951]",
            None,
            &ctx(),
        );
        assert!(far.is_ok_and(|q| q.matches(&entity_at(5.3698, 43.3100))));
    }

    /// The boxes an R*Tree keeps are 32-bit floats rounded outwards: whenever a box
    /// decides, it must decide as the exact check on the point does.
    #[test]
    fn box_decisions_agree_with_the_exact_check() {
        let q = GeoQuery::parse(
            "near;maxDistance==500",
            "Point",
            "[5.3698,43.2951]",
            None,
            &ctx(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let down = |v: f64| {
            let f = v as f32;
            if f64::from(f) > v {
                f64::from(f32::from_bits(f.to_bits() - 1))
            } else {
                f64::from(f)
            }
        };
        let up = |v: f64| {
            let f = v as f32;
            if f64::from(f) < v {
                f64::from(f32::from_bits(f.to_bits() + 1))
            } else {
                f64::from(f)
            }
        };
        let (mut decided, mut undecided) = (0, 0);
        for i in 0..4000 {
            // Points on rings from 480 to 520 m, all around the centre.
            let angle = f64::from(i) * 0.618_034 * std::f64::consts::TAU;
            let metres = 480.0 + f64::from(i % 400) * 0.1;
            let lat = 43.2951 + metres * angle.sin() / 111_195.0;
            let lon = 5.3698 + metres * angle.cos() / (111_195.0 * 43.2951_f64.to_radians().cos());
            let exact = q.matches(&entity_at(lon, lat));
            match q.decide_by_box([down(lon), up(lon), down(lat), up(lat)]) {
                Some(verdict) => {
                    assert_eq!(verdict, exact, "at {lon},{lat}");
                    decided += 1;
                }
                None => undecided += 1,
            }
        }
        // Only points within a metre or so of the bound are left to the document.
        assert!(decided > 3800, "{decided} decided, {undecided} not");
        let square = "[[[5.0,43.0],[6.0,43.0],[6.0,44.0],[5.0,44.0],[5.0,43.0]]]";
        let within = GeoQuery::parse("within", "Polygon", square, None, &ctx())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(within.decide_by_box([5.5, 5.5, 43.5, 43.5]), None);
    }

    #[test]
    fn within_and_bad_input() {
        let square = "[[[5.0,43.0],[6.0,43.0],[6.0,44.0],[5.0,44.0],[5.0,43.0]]]";
        let q = GeoQuery::parse("within", "Polygon", square, None, &ctx())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(q.matches(&entity_at(5.5, 43.5)));
        assert!(!q.matches(&entity_at(7.0, 43.5)));
        assert!(GeoQuery::parse("near", "Point", "[5,43]", None, &ctx()).is_err());
        assert!(GeoQuery::parse(
            "within",
            "Polygon",
            "[[[5,43],[6,43],[6,44]]]",
            None,
            &ctx()
        )
        .is_err());
        assert!(GeoQuery::parse("sideways", "Point", "[5,43]", None, &ctx()).is_err());
        assert!(GeoQuery::parse("near;maxDistance==x", "Point", "[5,43]", None, &ctx()).is_err());
    }
}
