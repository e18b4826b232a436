//! Command-line options of the bench (after `cargo bench --bench metropolitan --`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// The Smart Data Models environment context, as a JSON-LD `Link` header.
const SDM_CONTEXT_LINK: &str = "<https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/master/context.jsonld>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\"";

#[derive(Debug, Clone, Parser)]
#[command(
    name = "metropolitan",
    about = "Calanque's metropolitan benchmark: the broker against this machine's own limits"
)]
pub struct Options {
    /// Territory scale: ×1 is the realistic Aix-Marseille-Provence sensor
    /// network (954 entities); the default ×10 gives enough creates for a
    /// steady measurement; ×100 and ×1000 are stress levels.
    #[arg(long, default_value_t = 10)]
    pub scale: u64,

    /// Seed of the workload generator: the same seed gives the same entities.
    #[arg(long, default_value_t = 13)]
    pub seed: u64,

    /// Comma-separated scenarios to run, in the order given (see --list).
    /// Default: every scenario except the long ones (million).
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,

    /// Also run the 1-million-entity scenario (RSS and start-up at 1M;
    /// takes several minutes). Implied by --scale 1000 or more.
    #[arg(long)]
    pub million: bool,

    /// Requests per single-request scenario (GET, PATCH, trivial handlers);
    /// creates are also bounded by the territory's entity count.
    #[arg(long, default_value_t = 50_000)]
    pub requests: usize,

    /// Batches of 1000 entities in the batch upsert scenario and rows/1000 in
    /// the bare SQLite limit.
    #[arg(long, default_value_t = 50)]
    pub batches: usize,

    /// Requests in flight at once (default: twice the number of cores).
    #[arg(long)]
    pub concurrency: Option<usize>,

    /// Time cap of each load run, in seconds: a run stops starting requests
    /// after it, whatever its count.
    #[arg(long, default_value_t = 60)]
    pub time_cap: u64,

    /// Sensors whose history the temporal scenario stores (one main reading
    /// every 15 minutes each).
    /// The default (50 sensors, a year) keeps the run short while the
    /// one-sensor queries still cover the year.
    #[arg(long, default_value_t = 50)]
    pub temporal_sensors: u64,

    /// Days of history the temporal scenario loads per sensor.
    #[arg(long, default_value_t = 365)]
    pub temporal_days: u64,

    /// The temporal scenario at issue 4's full size: 500 sensors × 365 days
    /// (17.5 million instances; long). Overrides --temporal-sensors/--temporal-days.
    #[arg(long)]
    pub temporal_year: bool,

    /// Active subscriptions in the notification scenario.
    #[arg(long, default_value_t = 1000)]
    pub subscriptions: usize,

    /// Attribute updates per ingestion run of the notification scenario
    /// (also bounded by --requests and --time-cap).
    #[arg(long, default_value_t = 10_000)]
    pub notify_updates: usize,

    /// Rounds of the notification scenario: each round ingests on the broker
    /// without subscriptions, then on the one with them; the round with the
    /// median ratio is reported, so a burst of background load on a shared
    /// machine does not decide the figure.
    #[arg(long, default_value_t = 3)]
    pub notify_rounds: usize,

    /// Send the Smart Data Models @context in a `Link` header (the broker
    /// bundles it) instead of letting bodies be read against the core context.
    #[arg(long)]
    pub sdm_context: bool,

    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench/metropolitan.json")]
    pub out: PathBuf,

    /// List the scenarios and exit.
    #[arg(long)]
    pub list: bool,

    /// Print one generated entity of each type (and a PATCH body) and exit.
    #[arg(long)]
    pub sample: bool,

    /// Passed by `cargo bench` to every bench binary; ignored.
    #[arg(long, hide = true)]
    pub bench: bool,
}

impl Options {
    pub fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or_else(|| 2 * cores()).max(1)
    }

    /// The ×1000 territory is about a million entities: at that scale the
    /// million scenario is what the user is after.
    pub fn wants_million(&self) -> bool {
        self.million || self.scale >= 1000
    }

    /// (sensors, days) of the temporal scenario's history.
    pub fn temporal_span(&self) -> (u64, u64) {
        if self.temporal_year {
            (500, 365)
        } else {
            (self.temporal_sensors.max(1), self.temporal_days.max(1))
        }
    }

    pub fn context_link(&self) -> Option<&'static str> {
        self.sdm_context.then_some(SDM_CONTEXT_LINK)
    }

    pub fn time_cap(&self) -> Duration {
        Duration::from_secs(self.time_cap.max(1))
    }
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |count| count.get())
}
