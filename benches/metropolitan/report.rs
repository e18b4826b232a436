//! The run's results as a markdown table (stdout, and pasted into
//! docs/benchmarks.md) and as a JSON file.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::figures::{Figure, Target};
use crate::options::{cores, Options};

#[derive(Debug, Serialize)]
pub struct Report {
    pub generated_at: String,
    pub machine: Machine,
    pub settings: Settings,
    pub rows: Vec<Row>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: Option<String>,
    pub memory_total_mib: Option<u64>,
    pub kernel: Option<String>,
    pub broker_commit: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Settings {
    pub scale: u64,
    pub seed: u64,
    pub requests: usize,
    pub batches: usize,
    pub concurrency: usize,
    pub time_cap_s: u64,
    pub sdm_context: bool,
}

#[derive(Debug, Serialize)]
pub struct Row {
    #[serde(flatten)]
    pub figure: Figure,
    /// Value of the limit the target compares with, if any.
    pub limit_value: Option<f64>,
    pub limit_unit: Option<&'static str>,
    /// `value / limit_value`.
    pub ratio: Option<f64>,
    /// Whether the target is met; `None` without a target or a value.
    pub meets_target: Option<bool>,
}

impl Report {
    pub fn new(options: &Options, figures: Vec<Figure>) -> Self {
        let rows = figures
            .iter()
            .map(|figure| {
                let limit = match figure.target {
                    Some(Target::RatioOfLimit { limit, .. } | Target::ComparedTo { limit }) => {
                        figures.iter().find(|candidate| candidate.key == limit)
                    }
                    _ => None,
                };
                let limit_value = limit.and_then(|limit| limit.value);
                let ratio = match (figure.value, limit_value) {
                    (Some(value), Some(limit)) if limit > 0.0 => Some(value / limit),
                    _ => None,
                };
                let meets_target = match (figure.target, figure.value) {
                    (Some(Target::RatioOfLimit { at_least, .. }), _) => {
                        ratio.map(|ratio| ratio >= at_least)
                    }
                    (Some(Target::AtMost { at_most }), Some(value)) => Some(value <= at_most),
                    (Some(Target::P50AtMostMs { ms }), _) => figure.latency.map(|l| l.p50_ms <= ms),
                    (Some(Target::P99AtMostMs { ms }), _) => figure.latency.map(|l| l.p99_ms <= ms),
                    _ => None,
                };
                Row {
                    figure: figure.clone(),
                    limit_value,
                    limit_unit: limit.map(|limit| limit.unit),
                    ratio,
                    meets_target,
                }
            })
            .collect();
        Self {
            generated_at: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            machine: Machine::describe(),
            settings: Settings {
                scale: options.scale,
                seed: options.seed,
                requests: options.requests,
                batches: options.batches,
                concurrency: options.concurrency(),
                time_cap_s: options.time_cap,
                sdm_context: options.sdm_context,
            },
            rows,
        }
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let machine = &self.machine;
        let _ = writeln!(
            out,
            "Run {} on {} cores ({}), {} MiB RAM, kernel {}; broker commit {}.",
            self.generated_at,
            machine.cores,
            machine.cpu_model.as_deref().unwrap_or("unknown CPU"),
            machine
                .memory_total_mib
                .map_or("?".into(), |mib| mib.to_string()),
            machine.kernel.as_deref().unwrap_or("?"),
            machine.broker_commit.as_deref().unwrap_or("unknown"),
        );
        let settings = &self.settings;
        let _ = writeln!(
            out,
            "Scale x{}, seed {}, {} requests per scenario, {} batches of 1000, concurrency {}, time cap {} s, {}.\n",
            settings.scale,
            settings.seed,
            settings.requests,
            settings.batches,
            settings.concurrency,
            settings.time_cap_s,
            if settings.sdm_context { "Smart Data Models @context in a Link header" } else { "core @context" },
        );
        out.push_str(
            "| Figure | Value | p50 ms | p99 ms | max ms | Limit | Ratio | Target | Met |\n",
        );
        out.push_str("|---|---:|---:|---:|---:|---:|---:|---|---|\n");
        for row in &self.rows {
            let figure = &row.figure;
            let value = figure.value.map_or("not available".into(), |value| {
                format!("{} {}", number(value), figure.unit)
            });
            let (p50, p99, max) =
                figure
                    .latency
                    .map_or(("".into(), "".into(), "".into()), |latency| {
                        (
                            format!("{:.2}", latency.p50_ms),
                            format!("{:.2}", latency.p99_ms),
                            format!("{:.1}", latency.max_ms),
                        )
                    });
            let limit = row.limit_value.map_or(String::new(), |limit| {
                format!("{} {}", number(limit), row.limit_unit.unwrap_or(""))
            });
            let ratio = row
                .ratio
                .map_or(String::new(), |ratio| format!("{:.0}%", ratio * 100.0));
            let target = match figure.target {
                Some(Target::RatioOfLimit { at_least, .. }) => {
                    format!("≥ {:.0}% of limit", at_least * 100.0)
                }
                Some(Target::AtMost { at_most }) => format!("≤ {at_most} {}", figure.unit),
                Some(Target::P50AtMostMs { ms }) => format!("p50 ≤ {ms} ms"),
                Some(Target::P99AtMostMs { ms }) => format!("p99 ≤ {ms} ms"),
                Some(Target::ComparedTo { .. }) | None => String::new(),
            };
            let met = match row.meets_target {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            let _ = writeln!(
                out,
                "| {} | {value} | {p50} | {p99} | {max} | {limit} | {ratio} | {target} | {met} |",
                figure.label
            );
        }
        let notes: Vec<_> = self
            .rows
            .iter()
            .filter_map(|row| {
                row.figure
                    .note
                    .as_ref()
                    .map(|note| (row.figure.label.as_str(), note))
            })
            .collect();
        if !notes.is_empty() {
            out.push_str("\nNotes:\n");
            for (label, note) in notes {
                let _ = writeln!(out, "- {label}: {note}");
            }
        }
        out
    }

    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, json + "\n")
    }
}

/// Readable numbers: thousands grouped, decimals only where they matter.
fn number(value: f64) -> String {
    if value.abs() >= 1000.0 {
        let digits = format!("{:.0}", value.abs());
        let mut grouped = String::new();
        for (position, digit) in digits.chars().enumerate() {
            if position > 0 && (digits.len() - position) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        if value < 0.0 {
            grouped.insert(0, '-');
        }
        grouped
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

impl Machine {
    fn describe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|line| line.starts_with("model name"))
            .and_then(|line| line.split(':').nth(1))
            .map(|model| model.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_total_mib = meminfo
            .lines()
            .find(|line| line.starts_with("MemTotal:"))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map(|kib| kib / 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|release| release.trim().to_owned());
        let broker_commit = git(&["rev-parse", "--short", "HEAD"]).map(|commit| {
            // The broker was built from the work tree, which may differ.
            match git(&[
                "status",
                "--porcelain",
                "--",
                "src",
                "Cargo.toml",
                "Cargo.lock",
            ]) {
                Some(changes) if !changes.is_empty() => format!("{commit} + uncommitted changes"),
                _ => commit,
            }
        });
        Self {
            cores: cores(),
            cpu_model,
            memory_total_mib,
            kernel,
            broker_commit,
        }
    }
}

/// Output of a git command in the current directory, trimmed; `None` when
/// git is missing or fails (e.g. outside a repository).
fn git(args: &[&str]) -> Option<String> {
    std::process::Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
