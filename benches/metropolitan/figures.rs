//! What a scenario produces: figures, each optionally compared to a limit
//! measured in the same run or to a fixed ceiling.

use serde::Serialize;

use crate::latency::LatencySummary;
use crate::load_driver::LoadResult;

#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Unique name, used by other figures' targets (e.g. `limit.http_get`).
    pub key: &'static str,
    /// Row title in the table.
    pub label: String,
    /// `None` when the scenario could not be measured (see `note`).
    pub value: Option<f64>,
    pub unit: &'static str,
    pub latency: Option<LatencySummary>,
    pub target: Option<Target>,
    /// Errors, time cap, or why the figure is not available.
    pub note: Option<String>,
}

/// What the issue asks of a figure.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// `value / value(limit) >= at_least`.
    RatioOfLimit { limit: &'static str, at_least: f64 },
    /// `value <= at_most` (memory, start-up time).
    AtMost { at_most: f64 },
    /// Median latency at most this many milliseconds (query targets of the issues).
    P50AtMostMs { ms: f64 },
    /// 99th-percentile latency at most this many milliseconds (notification delivery).
    P99AtMostMs { ms: f64 },
    /// No target: the ratio to `limit` is shown for reading (temporal ingestion).
    ComparedTo { limit: &'static str },
}

impl Figure {
    pub fn measured(
        key: &'static str,
        label: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) -> Self {
        Self {
            key,
            label: label.into(),
            value: Some(value),
            unit,
            latency: None,
            target: None,
            note: None,
        }
    }

    pub fn not_available(
        key: &'static str,
        label: impl Into<String>,
        unit: &'static str,
        why: impl Into<String>,
    ) -> Self {
        Self {
            key,
            label: label.into(),
            value: None,
            unit,
            latency: None,
            target: None,
            note: Some(format!("not available: {}", why.into())),
        }
    }

    /// A throughput figure from a load run; `items_per_request` turns
    /// requests/s into entities/s for batches. A run whose endpoint answered
    /// only 404/405/501 becomes "not available".
    pub fn from_load(
        key: &'static str,
        label: impl Into<String>,
        unit: &'static str,
        items_per_request: usize,
        result: &LoadResult,
    ) -> Self {
        let label = label.into();
        if result.endpoint_missing() {
            let why = result
                .first_failure
                .clone()
                .unwrap_or_else(|| "endpoint missing".into());
            return Self::not_available(key, label, unit, why);
        }
        if result.succeeded == 0 {
            let why = result
                .first_failure
                .clone()
                .unwrap_or_else(|| "no request succeeded".into());
            return Self::not_available(key, label, unit, format!("every request failed ({why})"));
        }
        let mut notes = Vec::new();
        if result.failed > 0 {
            notes.push(format!(
                "{} of {} failed, first: {}",
                result.failed,
                result.failed + result.succeeded,
                result.first_failure.as_deref().unwrap_or("?")
            ));
        }
        if result.stopped_by_time_cap {
            notes.push(format!(
                "time cap reached after {} requests",
                result.succeeded + result.failed
            ));
        }
        Self {
            key,
            label,
            value: Some(result.succeeded_per_second() * items_per_request as f64),
            unit,
            latency: result.latency,
            target: None,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        }
    }

    pub fn with_target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    pub fn with_p50_target_ms(self, ms: f64) -> Self {
        self.with_target(Target::P50AtMostMs { ms })
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        let note = note.into();
        self.note = Some(match self.note.take() {
            Some(earlier) => format!("{earlier}; {note}"),
            None => note,
        });
        self
    }
}

/// Memory and disk figures are in MB (10^6 bytes), the unit of the
/// issue's "RSS under 150 MB" target.
pub const MB: f64 = 1_000_000.0;
