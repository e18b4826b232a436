//! The sensor history the temporal scenario stores: which sensors, over which
//! span, and the request bodies that load it (temporal API) and extend it
//! (batch upsert of the next readings).
//!
//! One instance is one sensor's main reading at one 15-minute step, as issue 4
//! counts them: 500 sensors × a year = 500 × 35,040 = 17.5 million instances.

use serde_json::{json, Map, Value};

use crate::workload::{observed_at, sensors_at_scale_one, Sensor, Workload, STEPS_PER_DAY};

/// Id prefix of the sensors whose history is stored (apart from the other
/// copies of the territory).
const HISTORY_PREFIX: &str = "AMP-T";
/// Days of one sensor's readings per `POST /temporal/entities` (960 instances,
/// about 100 KB): large enough for a bulk load, far below the body limit.
pub const DAYS_PER_LOAD_REQUEST: u64 = 10;
/// The district of the district query: the metropolis' largest town.
pub const DISTRICT: &str = "Marseille";
/// 1 July 2025 counted in days from the first observation (21 June).
const JULY_FIRST_DAY: u64 = 10;

pub struct History {
    workload: Workload,
    /// Sensor numbers in the workload, spread evenly over its kinds.
    sensors: Vec<u64>,
    pub days: u64,
}

impl History {
    /// `sensors` sensors taken evenly from the smallest territory that has
    /// that many, so every kind is represented in its realistic share.
    pub fn new(seed: u64, sensors: u64, days: u64) -> Self {
        let sensors = sensors.max(1);
        let scale = sensors.div_ceil(sensors_at_scale_one());
        let workload = Workload::new(seed, scale, HISTORY_PREFIX);
        let total = workload.sensor_count();
        let sensors = (0..sensors).map(|i| i * total / sensors).collect();
        Self {
            workload,
            sensors,
            days: days.max(1),
        }
    }

    pub fn sensor_count(&self) -> u64 {
        self.sensors.len() as u64
    }

    pub fn sensor(&self, index: u64) -> Sensor {
        self.workload.sensor(self.sensors[index as usize])
    }

    pub fn steps(&self) -> u64 {
        self.days * STEPS_PER_DAY
    }

    pub fn instances(&self) -> u64 {
        self.sensor_count() * self.steps()
    }

    /// Requests of the bulk load: every sensor's first chunk of days, then
    /// every sensor's second chunk, and so on (the order readings arrive in).
    pub fn load_requests(&self) -> u64 {
        self.sensor_count() * self.days.div_ceil(DAYS_PER_LOAD_REQUEST)
    }

    /// Body of bulk-load request `index`: one sensor's temporal entity with
    /// its main reading over one chunk of days; returns the body and its
    /// instance count.
    pub fn load_body(&self, index: u64) -> (Value, u64) {
        let sensor = self.sensor(index % self.sensor_count());
        let chunk = index / self.sensor_count();
        let first = chunk * DAYS_PER_LOAD_REQUEST * STEPS_PER_DAY;
        let last = ((chunk + 1) * DAYS_PER_LOAD_REQUEST * STEPS_PER_DAY).min(self.steps());
        let mut name = "";
        let instances: Vec<Value> = (first..last)
            .map(|step| {
                let (attribute, instance) = self.workload.primary_instance(&sensor, step);
                name = attribute;
                instance
            })
            .collect();
        let mut body = Map::new();
        body.insert("id".into(), json!(sensor.entity_id));
        body.insert("type".into(), json!(sensor.spec.entity_type));
        body.insert(name.into(), Value::Array(instances));
        (Value::Object(body), last.saturating_sub(first))
    }

    /// Batch upsert `batch`: every sensor's readings at the step after the
    /// loaded span plus `batch`, each reading with its new `observedAt`.
    /// Returns the body and how many attributes it writes (each records one
    /// instance of history).
    pub fn upsert_batch(&self, batch: u64) -> (Value, u64) {
        let step = self.steps() + batch;
        let mut attributes = 0;
        let entities = (0..self.sensor_count())
            .map(|index| {
                let sensor = self.sensor(index);
                let update = self.workload.observation_update(&sensor, step);
                let mut entity = Map::new();
                entity.insert("id".into(), json!(sensor.entity_id));
                entity.insert("type".into(), json!(sensor.spec.entity_type));
                if let Value::Object(readings) = update {
                    attributes += readings.len() as u64;
                    entity.extend(readings);
                }
                Value::Object(entity)
            })
            .collect();
        (Value::Array(entities), attributes)
    }

    /// The summer month of the district query: July 2025 (the span starts on
    /// 21 June), cut to the loaded span when it is shorter. Returns
    /// (timeAt, endTimeAt).
    pub fn summer_month(&self) -> (String, String) {
        let july_first =
            (JULY_FIRST_DAY * STEPS_PER_DAY).min(self.steps().saturating_sub(STEPS_PER_DAY));
        let end = (july_first + 31 * STEPS_PER_DAY).min(self.steps());
        (observed_at(july_first), observed_at(end))
    }

    /// The stored urban-heat sensor (WeatherObserved) to query alone, and
    /// the ids of the stored urban-heat sensors of the district.
    pub fn weather_sensors(&self) -> (Option<Sensor>, Vec<String>) {
        let weather: Vec<Sensor> = (0..self.sensor_count())
            .map(|index| self.sensor(index))
            .filter(|sensor| sensor.spec.entity_type == "WeatherObserved")
            .collect();
        let district = weather
            .iter()
            .filter(|sensor| sensor.place.town == DISTRICT)
            .map(|sensor| sensor.entity_id.clone())
            .collect();
        (weather.into_iter().next(), district)
    }
}
