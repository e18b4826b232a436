//! Smart Data Model validation: entities of the bundled models checked against their
//! JSON Schemas, per tenant and entity type, in `off`, `warn` or `enforce` mode.
//!
//! The schemas describe the key-values (concise) form with short names, so the entity
//! is checked as a client of the model would see it: rendered key-values, names compacted
//! against the model's own @context (or the core context when the entity's type is the
//! default-vocabulary one, i.e. it was written without the model's context), DateTime
//! values as plain strings. See `docs/alerts.md`.

pub mod guard;
pub mod models;
pub mod policy;
pub mod schemas;

pub use guard::ModelValidator;

use crate::error::{NgsiError, Result};

/// What happens to an entity that does not match its model's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum Mode {
    /// Not checked.
    #[default]
    Off,
    /// Accepted; the problem is logged and counted.
    Warn,
    /// Refused with 400 BadRequestData naming the schema path and the message.
    Enforce,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "off" => Ok(Mode::Off),
            "warn" => Ok(Mode::Warn),
            "enforce" => Ok(Mode::Enforce),
            other => Err(NgsiError::bad_data(format!(
                "validation mode '{other}' is not one of off, warn, enforce"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Warn => "warn",
            Mode::Enforce => "enforce",
        }
    }
}
