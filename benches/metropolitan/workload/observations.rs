//! The values a sensor reports at one 15-minute step.
//!
//! Values follow a daily cycle plus noise so that later scenarios (temporal
//! daily means, q filters such as `fillingLevel>0.8`) select realistic
//! fractions of the data rather than all or nothing.

use serde_json::{json, Value};

use super::sensor_kinds::SensorKind;
use crate::seeded_rng::SeededRng;

/// One measured attribute: NGSI-LD name, value, UN/CEFACT unit code if any.
pub struct Measurement {
    pub name: &'static str,
    pub value: Value,
    pub unit_code: Option<&'static str>,
}

fn measured(name: &'static str, value: Value, unit_code: Option<&'static str>) -> Measurement {
    Measurement {
        name,
        value,
        unit_code,
    }
}

/// Rounds to a fixed number of decimals so bodies stay short and stable.
fn round(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}

/// Hour of day (0.0–24.0) of a 15-minute step counted from midnight.
fn hour_of_day(step: u64) -> f64 {
    (step % 96) as f64 / 4.0
}

/// A smooth daily curve peaking at `peak_hour`, in [-1, 1].
fn daily_wave(step: u64, peak_hour: f64) -> f64 {
    ((hour_of_day(step) - peak_hour) / 24.0 * std::f64::consts::TAU).cos()
}

pub fn measurements(kind: SensorKind, rng: &mut SeededRng, step: u64) -> Vec<Measurement> {
    match kind {
        SensorKind::WasteFillLevel => {
            // Containers fill over about four days, then are emptied.
            let fill = ((step % 384) as f64 / 384.0 + rng.between(-0.03, 0.03)).clamp(0.0, 1.0);
            vec![
                measured("fillingLevel", json!(round(fill, 2)), Some("P1")),
                measured(
                    "temperature",
                    json!(round(
                        20.0 + 6.0 * daily_wave(step, 15.0) + rng.gaussian(),
                        1
                    )),
                    Some("CEL"),
                ),
            ]
        }
        SensorKind::NoiseMeter => {
            let laeq = 58.0 + 9.0 * daily_wave(step, 18.0) + 2.0 * rng.gaussian();
            vec![
                measured("LAeq", json!(round(laeq, 1)), Some("2N")),
                measured(
                    "LAmax",
                    json!(round(laeq + rng.between(8.0, 25.0), 1)),
                    Some("2N"),
                ),
                measured(
                    "LAS",
                    json!(round(laeq + rng.between(-3.0, 6.0), 1)),
                    Some("2N"),
                ),
            ]
        }
        SensorKind::RiverLevel => {
            let height = 0.6 + 0.1 * daily_wave(step, 6.0) + 0.05 * rng.gaussian();
            vec![
                measured("height", json!(round(height.max(0.0), 3)), Some("MTR")),
                measured(
                    "flow",
                    json!(round((height * 4.2).max(0.0), 2)),
                    Some("MQS"),
                ),
            ]
        }
        SensorKind::Piezometer => vec![
            measured(
                "height",
                json!(round(-12.0 + 0.02 * rng.gaussian(), 3)),
                Some("MTR"),
            ),
            measured(
                "temperature",
                json!(round(15.2 + 0.05 * rng.gaussian(), 2)),
                Some("CEL"),
            ),
        ],
        SensorKind::WaterQuality => vec![
            measured(
                "temperature",
                json!(round(17.0 + 3.0 * daily_wave(step, 16.0), 1)),
                Some("CEL"),
            ),
            measured("pH", json!(round(7.8 + 0.1 * rng.gaussian(), 2)), None),
            measured(
                "conductivity",
                json!(round(540.0 + 15.0 * rng.gaussian(), 0)),
                Some("H61"),
            ),
            measured(
                "turbidity",
                json!(round((3.0 + rng.gaussian()).max(0.1), 2)),
                Some("NTU"),
            ),
        ],
        SensorKind::BikeCounter | SensorKind::PedestrianCounter => {
            let rush = daily_wave(step, 8.5).max(0.0) + daily_wave(step, 17.5).max(0.0);
            let intensity = (rush * 60.0 + rng.between(0.0, 12.0)).round();
            vec![
                measured("intensity", json!(intensity), None),
                measured(
                    "laneDirection",
                    json!(if rng.below(2) == 0 {
                        "forward"
                    } else {
                        "backward"
                    }),
                    None,
                ),
            ]
        }
        SensorKind::UrbanHeat => vec![
            measured(
                "temperature",
                json!(round(
                    24.0 + 7.0 * daily_wave(step, 15.0) + rng.gaussian(),
                    1
                )),
                Some("CEL"),
            ),
            measured(
                "relativeHumidity",
                json!(round(
                    (0.55 - 0.2 * daily_wave(step, 15.0) + 0.03 * rng.gaussian()).clamp(0.0, 1.0),
                    2
                )),
                Some("P1"),
            ),
        ],
        SensorKind::Streetlight => {
            let hour = hour_of_day(step);
            let night = !(7.0..20.5).contains(&hour);
            vec![
                measured("powerState", json!(if night { "on" } else { "off" }), None),
                measured(
                    "illuminanceLevel",
                    json!(if night {
                        round(rng.between(0.5, 1.0), 2)
                    } else {
                        0.0
                    }),
                    Some("P1"),
                ),
                measured(
                    "powerConsumption",
                    json!(if night {
                        round(rng.between(40.0, 75.0), 1)
                    } else {
                        0.0
                    }),
                    Some("WTT"),
                ),
            ]
        }
        SensorKind::ControlCabinet => vec![
            measured(
                "energyConsumed",
                json!(round(150_000.0 + step as f64 * 2.5 + rng.unit(), 1)),
                Some("KWH"),
            ),
            measured(
                "intensityR",
                json!(round(rng.between(10.0, 25.0), 1)),
                Some("AMP"),
            ),
            measured(
                "intensityS",
                json!(round(rng.between(10.0, 25.0), 1)),
                Some("AMP"),
            ),
            measured(
                "intensityT",
                json!(round(rng.between(10.0, 25.0), 1)),
                Some("AMP"),
            ),
        ],
    }
}
