//! Start-up and shutdown: open the store, restore state, serve until a signal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpServer};

use crate::api::{self, AppState};
use crate::config::Config;
use crate::error::{NgsiError, Result};
use crate::jsonld::{ContextDocuments, ContextResolver};
use crate::notify::SubscriptionIndex;
use crate::store::postgres::{PgStore, Postgres};
use crate::store::sqlite::{Sqlite, SqliteStore};
use crate::store::{ContextRepo, ContextRepository, Guards, SharedStore};
use crate::validation::ModelValidator;
use tokio_util::sync::CancellationToken;

/// The SQLite file, or the PostgreSQL database named by `--database-url`; either way
/// migrated to the current schema.
pub fn open_store(config: &Config) -> Result<SharedStore> {
    if let Some(url) = &config.database_url {
        let store = PgStore::open(url)?;
        return Ok(Arc::new(Postgres(Arc::new(store))));
    }
    let store = SqliteStore::open(&config.sqlite_path(), config.durability)?;
    Ok(Arc::new(Sqlite(Arc::new(store))))
}

pub fn migrate(config: &Config) -> std::result::Result<(), String> {
    open_store(config).map(|_| ()).map_err(|e| e.detail)?;
    tracing::info!(storage = %config.storage_description(), "migrations applied");
    Ok(())
}

pub fn run(config: Config) -> std::result::Result<(), String> {
    let started = Instant::now();
    actix_web::rt::System::new().block_on(async move {
        let store = open_store(&config).map_err(|e| e.detail)?;
        let index = Arc::new(SubscriptionIndex::new(config.notify_queue_cap));
        store.set_write_observer(index.clone());
        let state = build_state(config.clone(), store.clone(), index.clone())
            .await
            .map_err(|e| e.detail)?;
        index
            .load(&store, &state.contexts)
            .await
            .map_err(|e| e.detail)?;
        crate::peers::follow(store.clone(), index.clone(), state.contexts.clone());
        let validator = ModelValidator::new(&state.contexts, config.validation_default)
            .await
            .map_err(|e| e.detail)?;
        validator.load(&store).await.map_err(|e| e.detail)?;
        let rules = crate::workers::alerts::rule::RuleCheck::new(state.contexts.core());
        store.set_write_guard(Arc::new(Guards(vec![Arc::new(validator), Arc::new(rules)])));
        let cancel = CancellationToken::new();
        let worker = crate::notify::worker::spawn(
            store.clone(),
            index.clone(),
            config.notify(&state.instance_id),
            cancel.clone(),
        );
        let alerts = crate::workers::alerts::spawn(
            store.clone(),
            state.contexts.clone(),
            Duration::from_millis(config.alert_interval_ms),
            cancel.clone(),
        );
        let retention = crate::workers::retention::spawn(
            store.clone(),
            config.retention_policy(),
            Duration::from_secs(config.retention_interval_secs),
            cancel.clone(),
        );
        let state = web::Data::new(state);
        let workers = config
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let server = HttpServer::new(move || {
            App::new()
                .wrap_fn(crate::api::trim_trailing_slash)
                .wrap_fn(crate::api::tenant_and_length)
                .wrap_fn(crate::api::metrics::count_responses)
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(config_limit(&state)))
                .configure(api::routes)
        })
        .workers(workers)
        .shutdown_timeout(10)
        .bind((config.host.as_str(), config.port))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", config.host, config.port))?;
        tracing::info!(
            address = %format!("{}:{}", config.host, config.port),
            storage = %config.storage_description(),
            startup_ms = started.elapsed().as_millis() as u64,
            "calanque is ready"
        );
        // actix stops gracefully on SIGINT/SIGTERM: in-flight requests finish first;
        // then the notification worker finishes the deliveries it holds.
        let served = server.run().await.map_err(|e| e.to_string());
        cancel.cancel();
        if let Some(retention) = retention {
            let _ = retention.await;
        }
        if let Err(e) = worker.await {
            tracing::error!(error = %e, "the notification worker failed");
        }
        if let Err(e) = alerts.await {
            tracing::error!(error = %e, "the alert evaluator failed");
        }
        if let Err(e) = store.close().await {
            tracing::warn!(error = %e.detail, "the store did not close cleanly");
        }
        served
    })
}

fn config_limit(state: &web::Data<AppState>) -> usize {
    state.config.max_body_bytes
}

pub async fn build_state(
    config: Config,
    store: SharedStore,
    subscriptions: Arc<SubscriptionIndex>,
) -> Result<AppState> {
    let contexts = context_resolver(&config, &store).await?;
    let instance_id = format!(
        "calanque-{}",
        crate::jsonld::documents::short_id(&config.storage_description())
    );
    Ok(AppState {
        started: std::time::Instant::now(),
        instance_id,
        store,
        contexts: Arc::new(contexts),
        config,
        subscriptions,
    })
}

/// The @context machinery over the store's contexts (the broker's, or a CLI command's).
pub async fn context_resolver(config: &Config, store: &SharedStore) -> Result<ContextResolver> {
    let hosted_prefix = format!("{}{}/jsonldContexts/", config.public_url(), api::BASE);
    let docs = Arc::new(ContextDocuments::new(
        hosted_prefix,
        Duration::from_millis(config.context_fetch_timeout_ms),
        config.context_max_bytes,
    ));
    let repo: Arc<dyn ContextRepository> = Arc::new(ContextRepo(store.clone()));
    docs.restore(repo.contexts().await?);
    ContextResolver::new(docs, repo)
        .await
        .map_err(|e| NgsiError::internal(e.detail))
}
