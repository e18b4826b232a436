//! The metropolitan workload: a deterministic Aix-Marseille-Provence sensor
//! network as FIWARE Smart Data Model entities in NGSI-LD normalized form.
//!
//! The territory at scale ×1 has the realistic sensor inventory of
//! `sensor_kinds::KINDS` (472 sensors); scale ×N multiplies every count.
//! Each sensor yields two entities, its `Device` and the entity it observes
//! (`WasteContainer`, `WaterObserved`, ...), and each kind shares one
//! `DeviceModel`. Any entity, and any sensor's readings at any 15-minute step,
//! can be rebuilt alone from (seed, scale, id prefix), so a run never has to
//! hold the whole territory in memory, not even at ×1000.

mod normalized;
mod observations;
mod sensor_kinds;
mod territory;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::seeded_rng::SeededRng;
pub use sensor_kinds::{sensors_at_scale_one, KindSpec, KINDS};
pub use territory::Place;

/// First observation: midnight UTC on the first day of summer 2025, when
/// the urban-heat sensors matter most.
const FIRST_OBSERVATION_UNIX: i64 = 1_750_464_000;
const STEP_MINUTES: i64 = 15;
/// 15-minute steps in a day.
pub const STEPS_PER_DAY: u64 = 96;

/// Streams of the random generator, so that placing a sensor and reading it
/// never draw from the same numbers.
const PLACEMENT_STREAM: u64 = 1;
const READINGS_STREAM: u64 = 2;

#[derive(Debug, Clone)]
pub struct Workload {
    seed: u64,
    scale: u64,
    /// Distinguishes independent copies of the territory in one store
    /// (e.g. `AMP` for the created one, `AMP-U` for the upserted one).
    id_prefix: String,
}

/// One sensor of the territory and the ids of its entities.
pub struct Sensor {
    /// Position in the whole territory (0-based, all kinds).
    pub number: u64,
    /// Position among the sensors of its kind (0-based).
    pub ordinal: u64,
    pub spec: &'static KindSpec,
    pub place: Place,
    pub battery_level: f64,
    pub entity_id: String,
    pub device_id: String,
    seed: u64,
}

impl Sensor {
    fn readings_rng(&self, step: u64) -> SeededRng {
        SeededRng::for_item(self.seed ^ READINGS_STREAM, self.number, step)
    }
}

impl Workload {
    pub fn new(seed: u64, scale: u64, id_prefix: &str) -> Self {
        Self {
            seed,
            scale: scale.max(1),
            id_prefix: id_prefix.to_owned(),
        }
    }

    /// The smallest territory with at least `entities` entities, for
    /// scenarios that need a given volume rather than a given scale.
    pub fn with_at_least(seed: u64, entities: u64, id_prefix: &str) -> Self {
        let per_scale = 2 * sensors_at_scale_one();
        let scale = entities
            .saturating_sub(KINDS.len() as u64)
            .div_ceil(per_scale);
        Self::new(seed, scale, id_prefix)
    }

    pub fn scale(&self) -> u64 {
        self.scale
    }

    pub fn sensor_count(&self) -> u64 {
        sensors_at_scale_one() * self.scale
    }

    /// DeviceModels first, then each sensor's Device followed by its
    /// observed entity, so a relationship's target is always created first.
    pub fn entity_count(&self) -> u64 {
        KINDS.len() as u64 + 2 * self.sensor_count()
    }

    pub fn sensor(&self, number: u64) -> Sensor {
        let mut first_of_kind = 0;
        let mut spec = &KINDS[KINDS.len() - 1];
        for candidate in KINDS {
            let count = candidate.count_at_scale_one * self.scale;
            if number < first_of_kind + count {
                spec = candidate;
                break;
            }
            first_of_kind += count;
        }
        let ordinal = number - first_of_kind;
        let mut rng = SeededRng::for_item(self.seed, PLACEMENT_STREAM, number);
        let place = territory::place_sensor(&mut rng);
        let battery_level = (rng.between(0.2, 1.0) * 100.0).round() / 100.0;
        Sensor {
            number,
            ordinal,
            spec,
            place,
            battery_level,
            entity_id: format!(
                "urn:ngsi-ld:{}:{}-{:06}",
                spec.entity_type, self.id_prefix, number
            ),
            device_id: format!("urn:ngsi-ld:Device:{}-{:06}", self.id_prefix, number),
            seed: self.seed,
        }
    }

    pub fn device_model_id(&self, spec: &KindSpec) -> String {
        format!("urn:ngsi-ld:DeviceModel:{}-{}", self.id_prefix, spec.slug)
    }

    /// Entity number `index` (0-based, below `entity_count`) with its
    /// readings at the first step.
    pub fn entity(&self, index: u64) -> Value {
        let models = KINDS.len() as u64;
        if index < models {
            let spec = &KINDS[index as usize];
            return normalized::device_model(spec, &self.device_model_id(spec));
        }
        let sensor = self.sensor((index - models) / 2);
        if (index - models) % 2 == 0 {
            normalized::device(&sensor, &self.device_model_id(sensor.spec))
        } else {
            normalized::observed_entity(&sensor, 0, &observed_at(0))
        }
    }

    /// The id of entity number `index`, without building the entity.
    pub fn entity_id(&self, index: u64) -> String {
        let models = KINDS.len() as u64;
        if index < models {
            return self.device_model_id(&KINDS[index as usize]);
        }
        let sensor = self.sensor((index - models) / 2);
        if (index - models) % 2 == 0 {
            sensor.device_id
        } else {
            sensor.entity_id
        }
    }

    /// The sensor's main reading at `step` as a temporal instance, with its
    /// attribute name (one instance per sensor per step, as issue 4 counts them).
    pub fn primary_instance(&self, sensor: &Sensor, step: u64) -> (&'static str, Value) {
        normalized::primary_instance(sensor, step, &observed_at(step))
    }

    /// The PATCH body of one sensor's readings at `step`.
    pub fn observation_update(&self, sensor: &Sensor, step: u64) -> Value {
        normalized::observation_update(sensor, step, &observed_at(step))
    }
}

/// ISO 8601 time of a 15-minute observation step.
pub fn observed_at(step: u64) -> String {
    let first = DateTime::<Utc>::from_timestamp(FIRST_OBSERVATION_UNIX, 0)
        .expect("the first observation time is a valid timestamp");
    // A run never goes near i64::MAX steps; saturate rather than wrap.
    let step = i64::try_from(step).unwrap_or(i64::MAX);
    (first + Duration::minutes(step.saturating_mul(STEP_MINUTES)))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}
