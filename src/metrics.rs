//! Counters and gauges exported on `/metrics` (Prometheus text format). One process-wide
//! registry: every part of the broker records into it without plumbing.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

use parking_lot::Mutex;

use crate::validation::Mode;

#[derive(Default)]
struct Registry {
    /// Responses by status class (index 1..=5 for 1xx..5xx).
    responses: [AtomicU64; 6],
    entities_written: AtomicU64,
    /// Writes whose answer was prepared off the SQLite writer: [held, made again].
    writes_prepared: [AtomicU64; 2],
    /// (model, mode) → entities that did not match their schema.
    validation_failures: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// (rule, category) → alerts raised / closed since start.
    alerts_raised: Mutex<BTreeMap<(String, String), u64>>,
    alerts_closed: Mutex<BTreeMap<(String, String), u64>>,
    /// (tenant, rule, category) → open alerts / silent entities at the last evaluation.
    alerts_open: Mutex<BTreeMap<(String, String, String), u64>>,
    silent_now: Mutex<BTreeMap<(String, String), u64>>,
    evaluations: AtomicU64,
    evaluation_micros: AtomicU64,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

pub fn response(status: u16) {
    let class = usize::from(status / 100).min(5);
    REGISTRY.responses[class].fetch_add(1, Ordering::Relaxed);
}

pub fn entity_written() {
    REGISTRY.entities_written.fetch_add(1, Ordering::Relaxed);
}

/// A write prepared off the writer thread: `held` when the entity was still stored as
/// it was read, so the prepared answer was used.
pub fn write_prepared(held: bool) {
    REGISTRY.writes_prepared[usize::from(!held)].fetch_add(1, Ordering::Relaxed);
}

pub fn validation_failure(model: &str, mode: Mode) {
    *REGISTRY
        .validation_failures
        .lock()
        .entry((model.to_string(), mode.as_str()))
        .or_default() += 1;
}

pub fn alert_raised(rule: &str, category: &str) {
    *REGISTRY
        .alerts_raised
        .lock()
        .entry((rule.to_string(), category.to_string()))
        .or_default() += 1;
}

pub fn alert_closed(rule: &str, category: &str) {
    *REGISTRY
        .alerts_closed
        .lock()
        .entry((rule.to_string(), category.to_string()))
        .or_default() += 1;
}

/// The state one evaluation of a rule found.
pub fn rule_state(tenant: &str, rule: &str, category: &str, open: u64, silent: Option<u64>) {
    REGISTRY.alerts_open.lock().insert(
        (tenant.to_string(), rule.to_string(), category.to_string()),
        open,
    );
    if let Some(silent) = silent {
        REGISTRY
            .silent_now
            .lock()
            .insert((tenant.to_string(), rule.to_string()), silent);
    }
}

/// A rule that no longer exists stops being reported.
pub fn forget_rule(tenant: &str, rule: &str) {
    REGISTRY
        .alerts_open
        .lock()
        .retain(|(t, r, _), _| !(t == tenant && r == rule));
    REGISTRY
        .silent_now
        .lock()
        .retain(|(t, r), _| !(t == tenant && r == rule));
}

pub fn evaluation(micros: u64) {
    REGISTRY.evaluations.fetch_add(1, Ordering::Relaxed);
    REGISTRY
        .evaluation_micros
        .fetch_add(micros, Ordering::Relaxed);
}

/// Escapes a label value (backslash, quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Everything, in the Prometheus text exposition format (version 0.0.4).
pub fn render() -> String {
    let r = &*REGISTRY;
    let mut out = String::new();
    let head = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    head(
        &mut out,
        "calanque_http_responses_total",
        "counter",
        "HTTP responses by status class.",
    );
    for (class, n) in r.responses.iter().enumerate().skip(1) {
        let n = n.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "calanque_http_responses_total{{class=\"{class}xx\"}} {n}"
        );
    }
    head(
        &mut out,
        "calanque_entities_written_total",
        "counter",
        "Entity writes stored (created, updated or deleted).",
    );
    let _ = writeln!(
        out,
        "calanque_entities_written_total {}",
        r.entities_written.load(Ordering::Relaxed)
    );
    head(
        &mut out,
        "calanque_writes_prepared_total",
        "counter",
        "Entity writes prepared off the SQLite writer thread, by whether the entity was \
         still stored as read (held) or the writer made them again (stale).",
    );
    for (outcome, n) in ["held", "stale"].iter().zip(&r.writes_prepared) {
        let n = n.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "calanque_writes_prepared_total{{outcome=\"{outcome}\"}} {n}"
        );
    }
    head(
        &mut out,
        "calanque_validation_failures_total",
        "counter",
        "Entities that did not match their Smart Data Model schema, by type and mode.",
    );
    for ((model, mode), n) in r.validation_failures.lock().iter() {
        let _ = writeln!(
            out,
            "calanque_validation_failures_total{{type=\"{}\",mode=\"{mode}\"}} {n}",
            label(model)
        );
    }
    head(
        &mut out,
        "calanque_alerts_raised_total",
        "counter",
        "Alerts raised since start, by rule and category.",
    );
    for ((rule, cat), n) in r.alerts_raised.lock().iter() {
        let _ = writeln!(
            out,
            "calanque_alerts_raised_total{{rule=\"{}\",category=\"{}\"}} {n}",
            label(rule),
            label(cat)
        );
    }
    head(
        &mut out,
        "calanque_alerts_closed_total",
        "counter",
        "Alerts closed (return to normal) since start, by rule and category.",
    );
    for ((rule, cat), n) in r.alerts_closed.lock().iter() {
        let _ = writeln!(
            out,
            "calanque_alerts_closed_total{{rule=\"{}\",category=\"{}\"}} {n}",
            label(rule),
            label(cat)
        );
    }
    head(
        &mut out,
        "calanque_alerts_open",
        "gauge",
        "Open alerts at the last evaluation, by tenant, rule and category.",
    );
    for ((tenant, rule, cat), n) in r.alerts_open.lock().iter() {
        let _ = writeln!(
            out,
            "calanque_alerts_open{{tenant=\"{}\",rule=\"{}\",category=\"{}\"}} {n}",
            label(tenant),
            label(rule),
            label(cat)
        );
    }
    head(
        &mut out,
        "calanque_sensors_silent",
        "gauge",
        "Entities silent past their communication-loss rule's limit, at the last evaluation.",
    );
    for ((tenant, rule), n) in r.silent_now.lock().iter() {
        let _ = writeln!(
            out,
            "calanque_sensors_silent{{tenant=\"{}\",rule=\"{}\"}} {n}",
            label(tenant),
            label(rule)
        );
    }
    head(
        &mut out,
        "calanque_alert_evaluations_total",
        "counter",
        "Alert evaluation passes (all rules of all tenants).",
    );
    let _ = writeln!(
        out,
        "calanque_alert_evaluations_total {}",
        r.evaluations.load(Ordering::Relaxed)
    );
    head(
        &mut out,
        "calanque_alert_evaluation_seconds_total",
        "counter",
        "Wall time spent evaluating alert rules.",
    );
    let _ = writeln!(
        out,
        "calanque_alert_evaluation_seconds_total {:.6}",
        r.evaluation_micros.load(Ordering::Relaxed) as f64 / 1e6
    );
    out
}
