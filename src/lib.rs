//! Calanque: an NGSI-LD context broker.
//!
//! Layers, outside in: `api` (HTTP, actix-web) → `ngsi` (the information model and its
//! operations) and `jsonld` (@context handling) → `store` (SQLite, PostgreSQL).

pub mod api;
pub mod config;
pub mod error;
pub mod jsonld;
pub mod metrics;
pub mod ngsi;
pub mod notify;
pub mod server;
pub mod store;
pub mod validation;
pub mod workers;
