//! Calanque: an NGSI-LD context broker.
//!
//! Layers, outside in: `api` (HTTP, actix-web) → `ngsi` (the information model and its
//! operations) and `jsonld` (@context handling) → `store` (SQLite, PostgreSQL).

pub mod api;
pub mod config;
pub mod datasets;
pub mod dump;
pub mod error;
pub mod flat;
pub mod jsonld;
pub mod metrics;
pub mod ngsi;
pub mod notify;
pub mod peers;
pub mod server;
pub mod store;
pub mod validation;
pub mod workers;
