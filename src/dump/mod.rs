//! The dump format: one line-delimited JSON file holding a broker's (or some tenants')
//! whole content, written and read as a stream. See `docs/reversibility.md` for the
//! specification; `export` writes it, `import` reads it back.
//!
//! Line 1 is a header (`format`, `version`); every other line is a record with a `kind`;
//! the last line is the `end` record with the number of records before it, so a file cut
//! anywhere is detected. Names (entity types, attributes, sub-attributes) are expanded
//! IRIs: the dump needs no @context to be read back exactly.

pub mod cli;
pub mod entity_form;
pub mod export;
pub mod import;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::jsonld::ContextKind;
use crate::ngsi::subscription::DeliveryStatus;

/// The `format` of the header line.
pub const FORMAT: &str = "calanque-dump";
/// The version this broker writes and reads.
pub const VERSION: u32 = 1;

/// The first line of a dump.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub exported_at: String,
    /// The tenants the dump holds (the default tenant is `""`).
    pub tenants: Vec<String>,
}

/// One line after the header.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
#[allow(clippy::large_enum_variant)] // one per line, written or read straight away
pub enum Record {
    /// A tenant and its settings.
    Tenant { name: String, created_at: String },
    /// A stored @context (hosted by a tenant, or cached for all when `tenant` is null).
    Context {
        #[serde(default)]
        tenant: Option<String>,
        url: String,
        local_id: String,
        context_kind: ContextKind,
        created_at: String,
        document: Value,
    },
    /// The current state of an entity, NGSI-LD normalized with expanded names and its
    /// system attributes; an attribute is an array when it has several datasetIds.
    Entity { tenant: String, entity: Value },
    /// The temporal representation of an entity (deletedAt set if it was deleted).
    TemporalEntity {
        tenant: String,
        id: String,
        #[serde(rename = "type")]
        types: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<Vec<String>>,
        created_at: String,
        modified_at: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deleted_at: Option<String>,
    },
    /// One attribute instance of the history.
    Instance {
        tenant: String,
        entity_id: String,
        attribute: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dataset_id: Option<String>,
        instance_id: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        observed_at: Option<String>,
        created_at: String,
        modified_at: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deleted_at: Option<String>,
        /// The instance: type, value member, unitCode, sub-attributes (expanded).
        instance: Map<String, Value>,
    },
    /// A subscription as stored, with its delivery status.
    Subscription {
        tenant: String,
        id: String,
        subscription: Value,
        status: DeliveryStatus,
    },
    /// Reserved: context source registrations. This broker implements none, writes none,
    /// and refuses to import one (rather than drop it silently).
    Registration { tenant: String, registration: Value },
    /// An entity renamed by `calanque rename`.
    Rename {
        tenant: String,
        old_id: String,
        new_id: String,
        renamed_at: String,
        rewritten: Vec<String>,
    },
    /// The last line: how many records came before it (header excluded).
    End { records: u64 },
}

/// What an export or import went through, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub tenants: u64,
    pub contexts: u64,
    pub entities: u64,
    pub temporal_entities: u64,
    pub instances: u64,
    pub subscriptions: u64,
    pub renames: u64,
}

impl Summary {
    pub fn count(&mut self, r: &Record) {
        match r {
            Record::Tenant { .. } => self.tenants += 1,
            Record::Context { .. } => self.contexts += 1,
            Record::Entity { .. } => self.entities += 1,
            Record::TemporalEntity { .. } => self.temporal_entities += 1,
            Record::Instance { .. } => self.instances += 1,
            Record::Subscription { .. } => self.subscriptions += 1,
            Record::Rename { .. } => self.renames += 1,
            Record::Registration { .. } | Record::End { .. } => {}
        }
    }

    pub fn records(&self) -> u64 {
        self.tenants
            + self.contexts
            + self.entities
            + self.temporal_entities
            + self.instances
            + self.subscriptions
            + self.renames
    }
}
