//! Flat and GIS exports of one tenant for spreadsheets and GIS tools: CSV of the history
//! (one row per attribute instance), CSV of the current state (one row per entity),
//! GeoJSON, zipped Shapefile and KML layers. Names are compacted with the request's
//! @context, so columns are short (`level`, not its IRI). Every format is written page
//! by page to a [`Sink`]; only the Shapefile goes through temporary files (its headers
//! are rewritten at the end).

mod csv_history;
mod csv_state;
mod geojson_layer;
mod json_layer;
mod kml_layer;
mod shapefile_layer;
pub mod source;
pub mod values;

use std::collections::HashMap;
use std::sync::Arc;

use chrono_tz::Tz;

use crate::dump::export::Sink;
use crate::error::{NgsiError, Result};
use crate::jsonld::ActiveContext;
use crate::ngsi::query::EntityQuery;
use crate::ngsi::temporal::TemporalQuery;
use crate::ngsi::Tenant;
use crate::store::SharedStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FlatFormat {
    /// One row per attribute instance of the history.
    CsvHistory,
    /// One row per entity, one column per attribute.
    Csv,
    Geojson,
    /// An array of flat objects (id, type, attribute values).
    Json,
    /// .shp, .shx, .dbf and .prj in a zip.
    Shapefile,
    Kml,
}

impl FlatFormat {
    pub fn parse(s: &str) -> Result<Self> {
        <Self as clap::ValueEnum>::from_str(s, true).map_err(|_| {
            NgsiError::bad_data(format!(
                "unknown format '{s}': use dump, csv-history, csv, geojson, shapefile or kml"
            ))
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::CsvHistory | Self::Csv => "text/csv; charset=utf-8",
            Self::Geojson => "application/geo+json",
            Self::Json => "application/json",
            Self::Shapefile => "application/zip",
            Self::Kml => "application/vnd.google-earth.kml+xml",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::CsvHistory | Self::Csv => "csv",
            Self::Geojson => "geojson",
            Self::Json => "json",
            Self::Shapefile => "zip",
            Self::Kml => "kml",
        }
    }
}

/// What to export.
pub struct FlatRequest {
    pub format: FlatFormat,
    pub tenant: Tenant,
    /// Which entities (type, q, geoQ...), names expanded.
    pub query: EntityQuery,
    /// Which attributes (expanded); all when `None`.
    pub attrs: Option<Vec<String>>,
    /// The history's time window (csv-history).
    pub window: TemporalQuery,
    /// The zone of the local date-time column.
    pub zone: Tz,
    pub ctx: Arc<ActiveContext>,
    /// The layer's name (KML document, Shapefile member names).
    pub name: String,
}

/// The request parameters every front end shares: NGSI-LD query parameters (`type`,
/// `q`, `georel`/`geometry`/`coordinates`, `timerel`/`timeAt`/`endTimeAt`), `attrs` as
/// the attributes to export, and `tz` for local times.
pub fn request(
    format: FlatFormat,
    tenant: Tenant,
    mut params: HashMap<String, String>,
    ctx: Arc<ActiveContext>,
    name: &str,
) -> Result<FlatRequest> {
    let attrs = params
        .remove("attrs")
        .map(|a| a.split(',').map(|n| ctx.expand(n.trim())).collect());
    let zone = match params.remove("tz") {
        Some(z) => z
            .parse::<Tz>()
            .map_err(|_| NgsiError::bad_data(format!("unknown time zone '{z}'")))?,
        None => chrono_tz::Europe::Paris,
    };
    let window = TemporalQuery::parse(&params, &[])?;
    let query = crate::api::entity_query::selection(&params, &ctx)?;
    if format == FlatFormat::CsvHistory
        && query
            .types
            .as_ref()
            .is_some_and(|t| csv_history::type_list(t).is_none())
    {
        return Err(NgsiError::bad_data(
            "csv-history selects types with ',' or '|' only",
        ));
    }
    Ok(FlatRequest {
        format,
        tenant,
        query,
        attrs,
        window,
        zone,
        ctx,
        name: name.to_string(),
    })
}

/// Writes the export; returns how many rows (instances, entities or features).
pub async fn export(store: &SharedStore, req: &FlatRequest, sink: &mut dyn Sink) -> Result<u64> {
    match req.format {
        FlatFormat::CsvHistory => csv_history::write(store, req, sink).await,
        FlatFormat::Csv => csv_state::write(store, req, sink).await,
        FlatFormat::Geojson => geojson_layer::write(store, req, sink).await,
        FlatFormat::Json => json_layer::write(store, req, sink).await,
        FlatFormat::Shapefile => shapefile_layer::write(store, req, sink).await,
        FlatFormat::Kml => kml_layer::write(store, req, sink).await,
    }
}
