//! Configuration: one struct, every field a flag and an environment variable.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::store::sqlite::Durability;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "calanque",
    version,
    about = "Calanque, an NGSI-LD context broker"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the broker (the default).
    Serve,
    /// Apply the storage migrations and exit.
    Migrate,
    /// Write a tenant's (or every tenant's) content to a dump file (see
    /// docs/reversibility.md).
    Export(ExportArgs),
    /// Restore a dump written by `export` (all or nothing, unless --resume).
    Import(ImportArgs),
    /// Move an entity, its history and the references to it to a new id.
    Rename(RenameArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct RenameArgs {
    /// Tenant of the entity (default: the default tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// The entity's current id.
    pub old_id: String,
    /// Its new id.
    pub new_id: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// File to write (default: standard output).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Tenant to export (repeatable for a dump; '' is the default tenant). Default: every
    /// tenant for a dump, the default tenant otherwise.
    #[arg(long = "tenant")]
    pub tenants: Vec<String>,
    /// `dump` (everything, restorable), or a flat/GIS layer: `csv-history`, `csv`,
    /// `geojson`, `json`, `shapefile` (zip), `kml`.
    #[arg(long, default_value = "dump")]
    pub format: String,
    /// What a layer holds, as NGSI-LD query parameters, e.g.
    /// `type=WaterObserved&attrs=level&timerel=between&timeAt=...&endTimeAt=...&tz=Europe/Paris`.
    #[arg(long, default_value = "")]
    pub query: String,
    /// @context (URL) compacting the names of a layer (default: the core context).
    #[arg(long)]
    pub context: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// Dump file to read (default: standard input).
    #[arg(long, short)]
    pub input: Option<PathBuf>,
    /// Commit batch by batch instead of all at once: what was imported before a failure
    /// stays, and running the same import again completes it.
    #[arg(long)]
    pub resume: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "CALANQUE_HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Port to listen on (1026 is the FIWARE convention).
    #[arg(long, env = "CALANQUE_PORT", default_value_t = 1026)]
    pub port: u16,
    /// Directory of the embedded store (SQLite file) and other local state.
    #[arg(long, env = "CALANQUE_DATA_DIR", default_value = "./calanque-data")]
    pub data_dir: PathBuf,
    /// A PostgreSQL (15+, with PostGIS) database to store everything in, e.g.
    /// `postgres://user:password@host:5432/calanque`, instead of the embedded SQLite
    /// file. Several brokers may share one database.
    #[arg(long, env = "CALANQUE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// How hard commits wait for the disk (SQLite).
    #[arg(
        long,
        env = "CALANQUE_DURABILITY",
        value_enum,
        default_value = "process"
    )]
    pub durability: Durability,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "CALANQUE_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Base URL clients reach this broker at (for Location headers of hosted contexts).
    #[arg(long, env = "CALANQUE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Timeout for fetching a remote @context, in milliseconds.
    #[arg(
        long,
        env = "CALANQUE_CONTEXT_FETCH_TIMEOUT_MS",
        default_value_t = 5000
    )]
    pub context_fetch_timeout_ms: u64,
    /// Largest remote @context accepted, in bytes.
    #[arg(long, env = "CALANQUE_CONTEXT_MAX_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub context_max_bytes: usize,
    /// Most instances per attribute in one temporal answer; a longer history is paged
    /// (206 Partial Content with a Content-Range).
    #[arg(
        long,
        env = "CALANQUE_TEMPORAL_MAX_INSTANCES",
        default_value_t = 10_000
    )]
    pub temporal_max_instances: usize,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "CALANQUE_WORKERS")]
    pub workers: Option<usize>,
    /// Timeout of one notification attempt (HTTP request or MQTT publish), in ms.
    #[arg(long, env = "CALANQUE_NOTIFY_TIMEOUT_MS", default_value_t = 10_000)]
    pub notify_timeout_ms: u64,
    /// Notifications delivered at the same time, over all endpoints.
    #[arg(long, env = "CALANQUE_NOTIFY_CONCURRENCY", default_value_t = 64)]
    pub notify_concurrency: usize,
    /// Notifications delivered at the same time to one endpoint (scheme, host, port).
    #[arg(
        long,
        env = "CALANQUE_NOTIFY_ENDPOINT_CONCURRENCY",
        default_value_t = 8
    )]
    pub notify_endpoint_concurrency: usize,
    /// Attempts per notification before it is abandoned (and counted as failed).
    #[arg(long, env = "CALANQUE_NOTIFY_MAX_ATTEMPTS", default_value_t = 12)]
    pub notify_max_attempts: u32,
    /// First retry delay, in ms; doubles on each failure (with jitter).
    #[arg(long, env = "CALANQUE_NOTIFY_RETRY_BASE_MS", default_value_t = 500)]
    pub notify_retry_base_ms: u64,
    /// Longest retry delay, in ms.
    #[arg(long, env = "CALANQUE_NOTIFY_RETRY_MAX_MS", default_value_t = 60_000)]
    pub notify_retry_max_ms: u64,
    /// Most notifications queued for one subscription; beyond, new ones are dropped and
    /// counted.
    #[arg(long, env = "CALANQUE_NOTIFY_QUEUE_CAP", default_value_t = 10_000)]
    pub notify_queue_cap: u64,
    /// Refuse to notify loopback, private and link-local addresses (SSRF guard).
    #[arg(
        long,
        env = "CALANQUE_NOTIFY_DENY_PRIVATE",
        default_value_t = false,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub notify_deny_private: bool,
    /// Smart Data Model validation of types no `ValidationPolicy` entity of the tenant
    /// names: off, warn (accepted, logged and counted) or enforce (400).
    #[arg(
        long,
        env = "CALANQUE_VALIDATION_DEFAULT",
        value_enum,
        default_value = "off"
    )]
    pub validation_default: crate::validation::Mode,
    /// Period of the alert evaluator (alert rules of every tenant), in ms.
    #[arg(long, env = "CALANQUE_ALERT_INTERVAL_MS", default_value_t = 10_000)]
    pub alert_interval_ms: u64,
    /// History retention rules, e.g. `*=P5Y,metropole@NoiseLevelObserved=P1Y` (see
    /// `ngsi::retention`); empty keeps every instance forever.
    #[arg(long, env = "CALANQUE_RETENTION", default_value = "")]
    pub retention: String,
    /// How often the retention rules are applied, in seconds.
    #[arg(long, env = "CALANQUE_RETENTION_INTERVAL_SECS", default_value_t = 3600)]
    pub retention_interval_secs: u64,
    /// Bearer token of the admin API (`/admin/...`: dump, restore, rename). The admin API
    /// is off when it is not set.
    #[arg(long, env = "CALANQUE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Log filter, e.g. `info` or `calanque=debug`.
    #[arg(long, env = "CALANQUE_LOG", default_value = "info")]
    pub log: String,
}

impl Config {
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("calanque.db")
    }

    /// The retention policy (already checked by `validate`).
    pub fn retention_policy(&self) -> crate::ngsi::retention::RetentionPolicy {
        crate::ngsi::retention::RetentionPolicy::parse(&self.retention).unwrap_or_default()
    }

    /// Where the data lives, for logs (a database URL without its password).
    pub fn storage_description(&self) -> String {
        match &self.database_url {
            Some(url) => match url::Url::parse(url) {
                Ok(mut u) => {
                    if u.password().is_some() {
                        let _ = u.set_password(Some("***"));
                    }
                    u.to_string()
                }
                Err(_) => "postgres (unparsable URL)".into(),
            },
            None => self.sqlite_path().display().to_string(),
        }
    }

    pub fn public_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| {
            let host = if self.host == "0.0.0.0" {
                "localhost"
            } else {
                self.host.as_str()
            };
            format!("http://{host}:{}", self.port)
        })
    }

    pub fn notify(&self, instance_id: &str) -> crate::notify::NotifyConfig {
        crate::notify::NotifyConfig {
            timeout_ms: self.notify_timeout_ms,
            concurrency: self.notify_concurrency,
            endpoint_concurrency: self.notify_endpoint_concurrency,
            max_attempts: self.notify_max_attempts.max(1),
            retry_base_ms: self.notify_retry_base_ms,
            retry_max_ms: self.notify_retry_max_ms,
            deny_private: self.notify_deny_private,
            instance_id: instance_id.to_string(),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.temporal_max_instances == 0 {
            return Err("temporal-max-instances must be at least 1".into());
        }
        if self.alert_interval_ms < 10 {
            return Err("alert-interval-ms must be at least 10".into());
        }
        if self.max_body_bytes < 1024 {
            return Err("max-body-bytes must be at least 1024".into());
        }
        crate::ngsi::retention::RetentionPolicy::parse(&self.retention)
            .map_err(|e| format!("retention: {}", e.detail))?;
        if self.retention_interval_secs == 0 {
            return Err("retention-interval-secs must be at least 1".into());
        }
        if self.admin_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err("admin-token must be at least 16 characters".into());
        }
        if let Some(url) = &self.database_url {
            if !crate::store::postgres::is_postgres_url(url) {
                return Err("database-url must be a postgres:// or postgresql:// URL".into());
            }
        }
        if let Some(url) = &self.public_url {
            url::Url::parse(url).map_err(|e| format!("public-url is not a URL: {e}"))?;
        }
        Ok(())
    }
}
