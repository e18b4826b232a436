//! The Smart Data Models bundled under `smart-data-models/`: their names, schemas and
//! subject @context.

macro_rules! file {
    ($path:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/smart-data-models/",
            $path
        ))
    };
}

pub struct Model {
    /// The entity type, as the model's context names it (`WaterObserved`).
    pub name: &'static str,
    /// The subject repository (`dataModel.Environment`): where the @context comes from.
    pub subject: &'static str,
    pub schema: &'static str,
}

impl Model {
    /// The subject @context URL (compiled in, see `jsonld::bundled`).
    pub fn context_url(&self) -> String {
        format!(
            "https://raw.githubusercontent.com/smart-data-models/{}/master/context.jsonld",
            self.subject
        )
    }
}

pub const MODELS: &[Model] = &[
    Model {
        name: "Device",
        subject: "dataModel.Device",
        schema: file!("Device/schema.json"),
    },
    Model {
        name: "DeviceModel",
        subject: "dataModel.Device",
        schema: file!("DeviceModel/schema.json"),
    },
    Model {
        name: "WaterObserved",
        subject: "dataModel.Environment",
        schema: file!("WaterObserved/schema.json"),
    },
    Model {
        name: "NoiseLevelObserved",
        subject: "dataModel.Environment",
        schema: file!("NoiseLevelObserved/schema.json"),
    },
    Model {
        name: "AirQualityObserved",
        subject: "dataModel.Environment",
        schema: file!("AirQualityObserved/schema.json"),
    },
    Model {
        name: "WaterQualityObserved",
        subject: "dataModel.WaterQuality",
        schema: file!("WaterQualityObserved/schema.json"),
    },
    Model {
        name: "WeatherObserved",
        subject: "dataModel.Weather",
        schema: file!("WeatherObserved/schema.json"),
    },
    Model {
        name: "TrafficFlowObserved",
        subject: "dataModel.Transportation",
        schema: file!("TrafficFlowObserved/schema.json"),
    },
    Model {
        name: "WasteContainer",
        subject: "dataModel.WasteManagement",
        schema: file!("WasteContainer/schema.json"),
    },
    Model {
        name: "Streetlight",
        subject: "dataModel.Streetlighting",
        schema: file!("Streetlight/schema.json"),
    },
    Model {
        name: "StreetlightControlCabinet",
        subject: "dataModel.Streetlighting",
        schema: file!("StreetlightControlCabinet/schema.json"),
    },
    Model {
        name: "Dataset",
        subject: "dataModel.DCAT-AP",
        schema: file!("Dataset/schema.json"),
    },
    Model {
        name: "DataService",
        subject: "dataModel.DCAT-AP",
        schema: file!("DataService/schema.json"),
    },
    Model {
        name: "Distribution",
        subject: "dataModel.DCAT-AP",
        schema: file!("Distribution/schema.json"),
    },
];

/// The shared schemas the models `$ref`, by every URL they are referenced under.
pub const SHARED: &[(&str, &str)] = &[
    (
        "https://smart-data-models.github.io/data-models/common-schema.json",
        file!("_common/common-schema.json"),
    ),
    (
        "https://smart-data-models.github.io/dataModel.Device/device-schema.json",
        file!("_subjects/dataModel.Device/device-schema.json"),
    ),
    (
        "https://smart-data-models.github.io/dataModel.Environment/Environment-schema.json",
        file!("_subjects/dataModel.Environment/Environment-schema.json"),
    ),
    (
        "https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/Environment-schema.json",
        file!("_subjects/dataModel.Environment/Environment-schema.json"),
    ),
    (
        "https://smart-data-models.github.io/dataModel.Weather/weather-schema.json",
        file!("_subjects/dataModel.Weather/weather-schema.json"),
    ),
];

pub fn find(name: &str) -> Option<&'static Model> {
    MODELS.iter().find(|m| m.name == name)
}
