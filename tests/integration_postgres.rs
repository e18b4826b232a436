//! The integration tests of `tests/integration.rs`, every one of them, on PostgreSQL +
//! PostGIS: each broker gets a database of its own in a throwaway cluster started by
//! the harness (`integration/pg_cluster.rs`). Run with
//! `cargo test --test integration_postgres`. Without PostgreSQL/PostGIS installed, the
//! harness says so loudly and the tests run on SQLite.
//!
//! `multi_instance` runs only here: two brokers on one database.
//!
//! Snapshots (a few large outputs) live in `tests/integration/snapshots/`. After an
//! intended change of output, review them with `cargo insta review` (or re-run with
//! `INSTA_UPDATE=always` and read the diff) and commit the `.snap` files; never set
//! `INSTA_FORCE_PASS`.
//!
//! Broker processes do not outlive the test run: each has a watchdog (see `common`).

/// Which backend `common` starts brokers on.
const POSTGRES: bool = true;

#[path = "integration/common.rs"]
mod common;
#[path = "integration/pg_cluster.rs"]
mod pg_cluster;

#[path = "integration/alerts.rs"]
mod alerts;
#[path = "integration/attribute_types.rs"]
mod attribute_types;
#[path = "integration/attributes.rs"]
mod attributes;
#[path = "integration/batch.rs"]
mod batch;
#[path = "integration/contexts.rs"]
mod contexts;
#[path = "integration/datasets.rs"]
mod datasets;
#[path = "integration/devices.rs"]
mod devices;
#[path = "integration/discovery.rs"]
mod discovery;
#[path = "integration/dump_workload.rs"]
mod dump_workload;
#[path = "integration/entities.rs"]
mod entities;
#[path = "integration/errors.rs"]
mod errors;
#[path = "integration/flat_exports.rs"]
mod flat_exports;
#[path = "integration/geo_queries.rs"]
mod geo_queries;
#[path = "integration/jsonld_contexts_api.rs"]
mod jsonld_contexts_api;
#[path = "integration/linked_entities.rs"]
mod linked_entities;
#[path = "integration/multi_instance.rs"]
mod multi_instance;
#[path = "integration/operational.rs"]
mod operational;
#[path = "integration/persistence.rs"]
mod persistence;
#[path = "integration/query.rs"]
mod query;
#[path = "integration/query_language.rs"]
mod query_language;
#[path = "integration/rename.rs"]
mod rename;
#[path = "integration/representations.rs"]
mod representations;
#[path = "integration/retention.rs"]
mod retention;
#[path = "integration/reversibility.rs"]
mod reversibility;
#[path = "integration/subscriptions.rs"]
mod subscriptions;
#[path = "integration/temporal.rs"]
mod temporal;
#[path = "integration/temporal_paging.rs"]
mod temporal_paging;
#[path = "integration/tenancy.rs"]
mod tenancy;
#[path = "integration/validation.rs"]
mod validation;
