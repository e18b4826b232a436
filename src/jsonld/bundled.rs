//! Context documents compiled into the binary, so the broker works offline.
//!
//! Sources and licences of each file are listed in `contexts/README.md` and
//! `smart-data-models/README.md`.

/// The core context the broker uses when a request brings none (NGSI-LD 1.8).
pub const CORE_CONTEXT_URL: &str =
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld";

const ETSI: &str = "https://uri.etsi.org/ngsi-ld/v1/";
const SDM: &str = "https://raw.githubusercontent.com/smart-data-models/";

macro_rules! file {
    ($path:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $path))
    };
}

/// (URL, document) pairs. URLs are matched exactly, after normalising `http:` to `https:`
/// for the ETSI host (clients use both).
pub fn documents() -> Vec<(String, &'static str)> {
    let core = [
        (
            "ngsi-ld-core-context.jsonld",
            file!("contexts/ngsi-ld-core-context.jsonld"),
        ),
        (
            "ngsi-ld-core-context-v1.3.jsonld",
            file!("contexts/ngsi-ld-core-context-v1.3.jsonld"),
        ),
        (
            "ngsi-ld-core-context-v1.4.jsonld",
            file!("contexts/ngsi-ld-core-context-v1.4.jsonld"),
        ),
        (
            "ngsi-ld-core-context-v1.5.jsonld",
            file!("contexts/ngsi-ld-core-context-v1.5.jsonld"),
        ),
        (
            "ngsi-ld-core-context-v1.6.jsonld",
            file!("contexts/ngsi-ld-core-context-v1.6.jsonld"),
        ),
        (
            "ngsi-ld-core-context-v1.7.jsonld",
            file!("contexts/ngsi-ld-core-context-v1.7.jsonld"),
        ),
        (
            "ngsi-ld-core-context-v1.8.jsonld",
            file!("contexts/ngsi-ld-core-context-v1.8.jsonld"),
        ),
        (
            "ngsi-ld-core-context-v1.9.jsonld",
            file!("contexts/ngsi-ld-core-context-v1.9.jsonld"),
        ),
    ];
    let models = [
        (
            "dataModel.Device",
            file!("smart-data-models/Device/context.jsonld"),
        ),
        (
            "dataModel.Environment",
            file!("smart-data-models/WaterObserved/context.jsonld"),
        ),
        (
            "dataModel.WaterQuality",
            file!("smart-data-models/WaterQualityObserved/context.jsonld"),
        ),
        (
            "dataModel.Weather",
            file!("smart-data-models/WeatherObserved/context.jsonld"),
        ),
        (
            "dataModel.Transportation",
            file!("smart-data-models/TrafficFlowObserved/context.jsonld"),
        ),
        (
            "dataModel.WasteManagement",
            file!("smart-data-models/WasteContainer/context.jsonld"),
        ),
        (
            "dataModel.Streetlighting",
            file!("smart-data-models/Streetlight/context.jsonld"),
        ),
        (
            "dataModel.DCAT-AP",
            file!("smart-data-models/Dataset/context.jsonld"),
        ),
        // The Alert terms the alert evaluator writes (see contexts/README.md).
        (
            "dataModel.Alert",
            file!("contexts/dataModel.Alert-subset.jsonld"),
        ),
    ];
    let mut docs: Vec<(String, &'static str)> = core
        .iter()
        .map(|(name, doc)| (format!("{ETSI}{name}"), *doc))
        .collect();
    for (repo, doc) in models {
        docs.push((format!("{SDM}{repo}/master/context.jsonld"), doc));
    }
    let global = file!("smart-data-models/_common/context.jsonld");
    docs.push(("https://smartdatamodels.org/context.jsonld".into(), global));
    docs.push((
        "https://fiware.github.io/data-models/context.jsonld".into(),
        global,
    ));
    docs.push((
        "https://w3id.org/security/data-integrity/v2".into(),
        file!("contexts/w3id-security-data-integrity-v2.jsonld"),
    ));
    docs
}

/// True for the URLs that denote an NGSI-LD core context (any version).
pub fn is_core_context(url: &str) -> bool {
    let url = url
        .strip_prefix("http://")
        .map_or(url.to_string(), |rest| format!("https://{rest}"));
    url.starts_with(ETSI) && url.contains("ngsi-ld-core-context")
}
