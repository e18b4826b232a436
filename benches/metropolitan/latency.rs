//! Latency percentiles from the exact list of samples.
//!
//! Runs are bounded (tens of thousands of requests), so keeping every sample
//! and sorting is exact and cheaper to trust than a histogram.

use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencySummary {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// `None` when there is no sample.
    pub fn from_samples(mut samples: Vec<Duration>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |quantile: f64| {
            // Nearest-rank percentile: the smallest sample with at least
            // `quantile` of the samples at or below it.
            let rank = (quantile * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1]
        };
        let millis = |duration: Duration| duration.as_secs_f64() * 1000.0;
        Some(Self {
            samples: samples.len(),
            p50_ms: millis(at(0.50)),
            p99_ms: millis(at(0.99)),
            max_ms: millis(samples[samples.len() - 1]),
        })
    }
}
