//! The kinds of sensors deployed on the territory, and how many of each a
//! realistic (×1) metropolis has.
//!
//! Counts follow the open-data inventory the issue describes: about 60 waste
//! containers with fill-level probes, 24 groundwater piezometers, a dozen river
//! level (LiDAR) stations, bike and pedestrian counters, urban-heat weather
//! sensors and a slice of the connected street lighting.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorKind {
    WasteFillLevel,
    NoiseMeter,
    RiverLevel,
    Piezometer,
    WaterQuality,
    BikeCounter,
    PedestrianCounter,
    UrbanHeat,
    Streetlight,
    ControlCabinet,
}

/// What the generator needs to know about one kind of sensor.
pub struct KindSpec {
    pub kind: SensorKind,
    /// Smart Data Model type of the entity the sensor observes or controls.
    pub entity_type: &'static str,
    /// How many such sensors the ×1 territory has.
    pub count_at_scale_one: u64,
    /// Short name used in DeviceModel ids and human-readable names.
    pub slug: &'static str,
    pub label: &'static str,
    pub manufacturer: &'static str,
    pub model_name: &'static str,
    pub controlled_property: &'static [&'static str],
}

#[rustfmt::skip]
pub const KINDS: &[KindSpec] = &[
    KindSpec { kind: SensorKind::WasteFillLevel, entity_type: "WasteContainer", count_at_scale_one: 60,
        slug: "waste-fill", label: "Conteneur", manufacturer: "Sigrenea", model_name: "Fill-level probe FL-2",
        controlled_property: &["fillingLevel", "temperature"] },
    KindSpec { kind: SensorKind::NoiseMeter, entity_type: "NoiseLevelObserved", count_at_scale_one: 24,
        slug: "noise-meter", label: "Sonometre", manufacturer: "Acoem", model_name: "Cube",
        controlled_property: &["noiseLevel"] },
    KindSpec { kind: SensorKind::RiverLevel, entity_type: "WaterObserved", count_at_scale_one: 12,
        slug: "river-lidar", label: "Station hauteur d'eau", manufacturer: "Vega", model_name: "Vegapuls C21",
        controlled_property: &["waterLevel", "waterFlow"] },
    KindSpec { kind: SensorKind::Piezometer, entity_type: "WaterObserved", count_at_scale_one: 24,
        slug: "piezometer", label: "Piezometre", manufacturer: "OTT", model_name: "ecoLog 1000",
        controlled_property: &["waterLevel", "temperature"] },
    KindSpec { kind: SensorKind::WaterQuality, entity_type: "WaterQualityObserved", count_at_scale_one: 12,
        slug: "water-quality", label: "Sonde qualite d'eau", manufacturer: "Hach", model_name: "SC4500",
        controlled_property: &["temperature", "pH", "conductivity", "turbidity"] },
    KindSpec { kind: SensorKind::BikeCounter, entity_type: "TrafficFlowObserved", count_at_scale_one: 24,
        slug: "bike-counter", label: "Compteur velos", manufacturer: "Eco-Counter", model_name: "Zelt",
        controlled_property: &["trafficFlow"] },
    KindSpec { kind: SensorKind::PedestrianCounter, entity_type: "TrafficFlowObserved", count_at_scale_one: 16,
        slug: "pedestrian-counter", label: "Compteur pietons", manufacturer: "Eco-Counter", model_name: "PYRO-Box",
        controlled_property: &["trafficFlow"] },
    KindSpec { kind: SensorKind::UrbanHeat, entity_type: "WeatherObserved", count_at_scale_one: 48,
        slug: "urban-heat", label: "Capteur ilot de chaleur", manufacturer: "Sensirion", model_name: "SHT45 node",
        controlled_property: &["temperature", "humidity"] },
    KindSpec { kind: SensorKind::Streetlight, entity_type: "Streetlight", count_at_scale_one: 240,
        slug: "streetlight-node", label: "Lampadaire", manufacturer: "Citelum", model_name: "Muse node",
        controlled_property: &["light", "energy"] },
    KindSpec { kind: SensorKind::ControlCabinet, entity_type: "StreetlightControlCabinet", count_at_scale_one: 12,
        slug: "cabinet-meter", label: "Armoire d'eclairage", manufacturer: "Siemens", model_name: "Simatic S7 1200",
        controlled_property: &["energy", "electricCurrent"] },
];

/// Number of sensors of every kind together at scale ×1.
pub fn sensors_at_scale_one() -> u64 {
    KINDS.iter().map(|spec| spec.count_at_scale_one).sum()
}
