//! Smart Data Model entities in NGSI-LD normalized form.
//!
//! Bodies carry no `@context`: the load driver sends them as
//! `application/json`, read against the core context unless `--sdm-context`
//! adds the Smart Data Models context in a `Link` header.

use serde_json::{json, Map, Value};

use super::observations::{measurements, Measurement};
use super::sensor_kinds::KindSpec;
use super::Sensor;

fn property(value: Value) -> Value {
    json!({ "type": "Property", "value": value })
}

fn relationship(object: &str) -> Value {
    json!({ "type": "Relationship", "object": object })
}

fn point(lon: f64, lat: f64) -> Value {
    json!({ "type": "GeoProperty", "value": { "type": "Point", "coordinates": [lon, lat] } })
}

fn observed_property(measurement: Measurement, observed_at: &str) -> Value {
    let mut attribute = json!({
        "type": "Property",
        "value": measurement.value,
        "observedAt": observed_at,
    });
    if let Some(unit_code) = measurement.unit_code {
        attribute["unitCode"] = json!(unit_code);
    }
    attribute
}

fn address(town: &str) -> Value {
    property(json!({
        "addressLocality": town,
        "addressRegion": "Provence-Alpes-Cote d'Azur",
        "addressCountry": "FR",
    }))
}

pub fn device_model(spec: &KindSpec, id: &str) -> Value {
    json!({
        "id": id,
        "type": "DeviceModel",
        "name": property(json!(format!("{} {}", spec.manufacturer, spec.model_name))),
        "brandName": property(json!(spec.manufacturer)),
        "manufacturerName": property(json!(spec.manufacturer)),
        "modelName": property(json!(spec.model_name)),
        "category": property(json!(["sensor"])),
        "function": property(json!(["sensing"])),
        "controlledProperty": property(json!(spec.controlled_property)),
    })
}

pub fn device(sensor: &Sensor, model_id: &str) -> Value {
    json!({
        "id": sensor.device_id,
        "type": "Device",
        "name": property(json!(format!("{} {} {}", sensor.spec.label, sensor.place.town, sensor.ordinal))),
        "serialNumber": property(json!(format!("{}-{:06}", sensor.spec.slug, sensor.number))),
        "category": property(json!(["sensor"])),
        "controlledProperty": property(json!(sensor.spec.controlled_property)),
        "deviceState": property(json!("ok")),
        "batteryLevel": property(json!(sensor.battery_level)),
        "owner": property(json!(["Metropole Aix-Marseille-Provence"])),
        "location": point(sensor.place.lon, sensor.place.lat),
        "refDeviceModel": relationship(model_id),
        "controlledAsset": relationship(&sensor.entity_id),
    })
}

/// The observed (or controlled) entity with its readings at `step`.
pub fn observed_entity(sensor: &Sensor, step: u64, observed_at: &str) -> Value {
    let mut entity = Map::new();
    entity.insert("id".into(), json!(sensor.entity_id));
    entity.insert("type".into(), json!(sensor.spec.entity_type));
    entity.insert(
        "name".into(),
        property(json!(format!(
            "{} {} {}",
            sensor.spec.label, sensor.place.town, sensor.ordinal
        ))),
    );
    entity.insert("address".into(), address(sensor.place.town));
    entity.insert("location".into(), point(sensor.place.lon, sensor.place.lat));
    entity.insert("dateObserved".into(), property(json!(observed_at)));
    entity.insert("refDevice".into(), relationship(&sensor.device_id));
    for measurement in measurements(sensor.spec.kind, &mut sensor.readings_rng(step), step) {
        entity.insert(
            measurement.name.into(),
            observed_property(measurement, observed_at),
        );
    }
    Value::Object(entity)
}

/// The body of `PATCH /entities/{id}/attrs` carrying the readings at `step`.
pub fn observation_update(sensor: &Sensor, step: u64, observed_at: &str) -> Value {
    let mut attributes = Map::new();
    attributes.insert("dateObserved".into(), property(json!(observed_at)));
    for measurement in measurements(sensor.spec.kind, &mut sensor.readings_rng(step), step) {
        attributes.insert(
            measurement.name.into(),
            observed_property(measurement, observed_at),
        );
    }
    Value::Object(attributes)
}

/// The sensor's main reading at `step` (the first of its kind's measurements,
/// e.g. `temperature` for urban-heat sensors) as one temporal instance.
pub fn primary_instance(sensor: &Sensor, step: u64, observed_at: &str) -> (&'static str, Value) {
    let measurement = measurements(sensor.spec.kind, &mut sensor.readings_rng(step), step)
        .into_iter()
        .next()
        .expect("every sensor kind has at least one measurement");
    (
        measurement.name,
        observed_property(measurement, observed_at),
    )
}
