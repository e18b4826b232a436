//! Published datasets: named, whole-file exports an open-data portal re-reads on a
//! schedule. A dataset is an entity of the tenant, a DCAT-AP `Dataset` (Smart Data
//! Models), whose attributes say what it holds (see `docs/reversibility.md`):
//!
//! - `name`: the file name in `/datasets/{name}.csv|.geojson|.json`;
//! - `title`, `description`, `keyword`: shown in the catalogue;
//! - `accessRights`: `public`, or anything else for key-protected;
//! - `publication`: `{"query": "<NGSI-LD query string>", "format": "csv|csv-history|geojson|json",
//!   "window": "P7D", "context": "<@context URL>"}`.
//!
//! Attributes are found by their short name (the end of their IRI), so a definition
//! written with the DCAT-AP context or the core one reads the same. API keys are stored
//! only as SHA-256 hashes, in the dataset's own `apiKeyHashes`: a key opens that dataset
//! and no other.

pub mod validator;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{NgsiError, Result};
use crate::flat::values;
use crate::flat::FlatFormat;
use crate::ngsi::attribute;
use crate::ngsi::query::EntityQuery;
use crate::ngsi::temporal::Period;
use crate::ngsi::type_expr::TypeExpr;
use crate::ngsi::{Entity, Tenant};
use crate::store::SharedStore;

/// The DCAT-AP Dataset type of the Smart Data Models.
pub const DATASET_TYPE: &str = "https://smartdatamodels.org/dataModel.DCAT-AP/Dataset";
/// Where a dataset keeps the hashes of its API keys.
pub const KEY_HASHES: &str = "urn:calanque:apiKeyHashes";

#[derive(Debug, Clone)]
pub struct Dataset {
    pub entity_id: String,
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub keywords: Vec<String>,
    pub public: bool,
    /// The format `.csv` serves (csv or csv-history) and the catalogue lists first.
    pub format: FlatFormat,
    /// NGSI-LD query parameters of its content.
    pub query: String,
    /// A history window ending now (csv-history).
    pub window: Option<Period>,
    pub context: Option<String>,
    pub key_hashes: Vec<String>,
    pub modified_at: String,
}

fn local_name(iri: &str) -> &str {
    iri.rsplit(['/', '#']).next().unwrap_or(iri)
}

/// The value of the attribute with this short name.
fn member<'a>(e: &'a Entity, short: &str) -> Option<&'a Value> {
    e.attrs
        .iter()
        .find(|(k, _)| local_name(k) == short)
        .and_then(|(_, i)| values::main_instance(i))
        .and_then(values::value)
}

/// One string, or the first of an array (DCAT-AP models many fields as arrays).
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.iter().find_map(|v| v.as_str().map(str::to_string)),
        _ => None,
    }
}

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new API key (two v4 UUIDs: 244 random bits).
pub fn new_key() -> String {
    format!(
        "cq_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Dataset {
    pub fn from_entity(e: &Entity) -> Result<Self> {
        let bad = |why: &str| NgsiError::bad_data(format!("dataset {}: {why}", e.id));
        let name = text(member(e, "name")).ok_or_else(|| bad("it has no name"))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            return Err(bad("its name must be letters, digits, '-' or '_'"));
        }
        let publication = member(e, "publication")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("it has no publication object"))?;
        let get = |k: &str| publication.get(k).and_then(Value::as_str);
        let format = match get("format") {
            None => FlatFormat::Csv,
            Some(f) => FlatFormat::parse(f)?,
        };
        if matches!(format, FlatFormat::Shapefile | FlatFormat::Kml) {
            return Err(bad(
                "a dataset is served as csv, csv-history, geojson or json",
            ));
        }
        let access = text(member(e, "accessRights")).unwrap_or_default();
        let key_hashes = e
            .attrs
            .get(KEY_HASHES)
            .and_then(|i| values::main_instance(i))
            .and_then(|a| a.get("value"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|h| h.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            entity_id: e.id.clone(),
            name,
            title: text(member(e, "title")),
            description: text(member(e, "description")),
            keywords: match member(e, "keyword") {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect(),
                Some(Value::String(s)) => vec![s.clone()],
                _ => Vec::new(),
            },
            public: access.eq_ignore_ascii_case("public") || access.ends_with("/PUBLIC"),
            format,
            query: get("query").unwrap_or_default().to_string(),
            window: get("window").map(Period::parse).transpose()?,
            context: get("context").map(str::to_string),
            key_hashes,
            modified_at: e.modified_at.clone(),
        })
    }

    /// True if the key opens this dataset.
    pub fn accepts(&self, key: &str) -> bool {
        let h = hash_key(key);
        self.key_hashes.contains(&h)
    }

    /// The format served for a file extension.
    pub fn format_for(&self, ext: &str) -> Option<FlatFormat> {
        match ext {
            "csv" if self.format == FlatFormat::CsvHistory => Some(FlatFormat::CsvHistory),
            "csv" => Some(FlatFormat::Csv),
            "geojson" => Some(FlatFormat::Geojson),
            "json" => Some(FlatFormat::Json),
            _ => None,
        }
    }
}

/// The dataset entities of the tenant (few: read whole).
pub async fn all(store: &SharedStore, tenant: &Tenant) -> Result<Vec<(Entity, Option<Dataset>)>> {
    let query = EntityQuery {
        types: Some(TypeExpr::Type(DATASET_TYPE.into())),
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut pages = crate::flat::source::Pages::new(store, tenant, &query);
    while let Some(page) = pages.next().await? {
        for e in page {
            let d = Dataset::from_entity(&e).ok();
            out.push((e, d));
        }
    }
    Ok(out)
}

/// The dataset of that name.
pub async fn find(store: &SharedStore, tenant: &Tenant, name: &str) -> Result<(Entity, Dataset)> {
    for (e, d) in all(store, tenant).await? {
        if let Some(d) = d.filter(|d| d.name == name) {
            return Ok((e, d));
        }
    }
    Err(NgsiError::not_found(format!(
        "there is no dataset '{name}'"
    )))
}

/// Adds the hash of a key to a dataset entity (a plain attribute update).
pub fn add_key_hash(e: &mut Entity, hash: String) {
    let instances = e.attrs.entry(KEY_HASHES.to_string()).or_default();
    if instances.is_empty() {
        let mut a = attribute::Attribute::new();
        a.insert("type".into(), Value::from(attribute::PROPERTY));
        a.insert("value".into(), Value::Array(Vec::new()));
        instances.push(a);
    }
    if let Some(Value::Array(hashes)) = instances[0].get_mut("value") {
        hashes.push(Value::from(hash));
    }
}
