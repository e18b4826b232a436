//! `calanque export` and `calanque import`: the dump format on files or standard
//! streams, against the store of `--data-dir`, with a progress bar on a terminal.

use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};

use async_trait::async_trait;
use indicatif::{ProgressBar, ProgressStyle};

use super::export::Sink;
use super::import::Importer;
use super::Summary;
use crate::config::{Config, ExportArgs, ImportArgs, RenameArgs};
use crate::error::{NgsiError, Result};
use crate::ngsi::Tenant;

fn runtime() -> std::result::Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// A bar on stderr when it is a terminal, else nothing (logs and pipes stay clean).
fn progress(total: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg} {pos} records ({per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(what.to_string());
    bar
}

struct FileSink {
    out: BufWriter<Box<dyn Write + Send>>,
    bar: ProgressBar,
}

#[async_trait]
impl Sink for FileSink {
    async fn line(&mut self, bytes: Vec<u8>) -> Result<()> {
        self.bar.inc(1);
        self.out
            .write_all(&bytes)
            .map_err(|e| NgsiError::bad_data(format!("cannot write the dump: {e}")))
    }
}

fn report(summary: &Summary) -> String {
    serde_json::to_string(summary).unwrap_or_default()
}

pub fn export(config: &Config, args: &ExportArgs) -> std::result::Result<(), String> {
    if args.format != "dump" {
        return export_layer(config, args);
    }
    let tenants = if args.tenants.is_empty() {
        None
    } else {
        Some(
            args.tenants
                .iter()
                .map(|t| Tenant::parse(Some(t)).map_err(|e| e.detail))
                .collect::<std::result::Result<Vec<_>, _>>()?,
        )
    };
    let out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let store = crate::server::open_store(config).map_err(|e| e.detail)?;
    let mut sink = FileSink {
        out: BufWriter::with_capacity(1 << 16, out),
        bar: progress(None, "exporting"),
    };
    let summary = runtime()?.block_on(async {
        let summary = super::export::export(&store, tenants, &mut sink).await?;
        sink.out
            .flush()
            .map_err(|e| NgsiError::bad_data(format!("cannot write the dump: {e}")))?;
        Ok::<_, NgsiError>(summary)
    });
    sink.bar.finish_and_clear();
    let summary = summary.map_err(|e| e.detail)?;
    eprintln!("exported {}", report(&summary));
    Ok(())
}

pub fn import(config: &Config, args: &ImportArgs) -> std::result::Result<(), String> {
    let (input, size): (Box<dyn std::io::Read + Send>, Option<u64>) = match &args.input {
        Some(path) => {
            let f = std::fs::File::open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let size = f.metadata().ok().map(|m| m.len());
            (Box::new(f), size)
        }
        None => (Box::new(std::io::stdin()), None),
    };
    let store = crate::server::open_store(config).map_err(|e| e.detail)?;
    let bar = progress(size, "importing");
    let mut reader = BufReader::with_capacity(1 << 16, input);
    let result = runtime()?.block_on(async {
        let mut importer = Importer::start(store, args.resume).await?;
        let mut line = String::new();
        loop {
            line.clear();
            let n = match reader.read_line(&mut line) {
                Ok(n) => n,
                Err(e) => {
                    importer.abort().await;
                    return Err(NgsiError::bad_data(format!("cannot read the dump: {e}")));
                }
            };
            if n == 0 {
                break;
            }
            bar.inc(n as u64);
            if let Err(e) = importer.line(line.trim_end_matches(['\n', '\r'])).await {
                importer.abort().await;
                return Err(e);
            }
        }
        importer.finish().await
    });
    bar.finish_and_clear();
    let summary = result.map_err(|e| {
        if args.resume {
            format!(
                "import failed (the batches before it are kept; run it again to complete it): {}",
                e.detail
            )
        } else {
            format!("import failed, nothing was imported: {}", e.detail)
        }
    })?;
    eprintln!("imported {}", report(&summary));
    Ok(())
}

pub fn rename(config: &Config, args: &RenameArgs) -> std::result::Result<(), String> {
    let tenant = Tenant::parse(args.tenant.as_deref()).map_err(|e| e.detail)?;
    for id in [&args.old_id, &args.new_id] {
        crate::ngsi::ids::validate_uri(id, "entity id").map_err(|e| e.detail)?;
    }
    let store = crate::server::open_store(config).map_err(|e| e.detail)?;
    let row = runtime()?
        .block_on(store.rename_entity(&tenant, &args.old_id, &args.new_id))
        .map_err(|e| e.detail)?;
    eprintln!(
        "renamed {} to {}; references rewritten in {} entities",
        row.old_id,
        row.new_id,
        row.rewritten.len()
    );
    Ok(())
}

/// `export --format csv|csv-history|geojson|shapefile|kml`: one layer of one tenant.
fn export_layer(config: &Config, args: &ExportArgs) -> std::result::Result<(), String> {
    use crate::flat;
    let format = flat::FlatFormat::parse(&args.format).map_err(|e| e.detail)?;
    let tenant = Tenant::parse(args.tenants.first().map(String::as_str)).map_err(|e| e.detail)?;
    let params: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(args.query.trim_start_matches('?').as_bytes())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let name = params
        .get("type")
        .cloned()
        .unwrap_or_else(|| "export".into());
    let out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let store = crate::server::open_store(config).map_err(|e| e.detail)?;
    let mut sink = FileSink {
        out: BufWriter::with_capacity(1 << 16, out),
        bar: ProgressBar::hidden(),
    };
    let rows = runtime()?.block_on(async {
        let resolver = crate::server::context_resolver(config, &store).await?;
        let ctx = resolver
            .resolve(args.context.clone().map(serde_json::Value::String).as_ref())
            .await?;
        let req = flat::request(format, tenant, params, ctx, &name)?;
        let rows = flat::export(&store, &req, &mut sink).await?;
        sink.out
            .flush()
            .map_err(|e| NgsiError::bad_data(format!("cannot write the export: {e}")))?;
        Ok::<_, NgsiError>(rows)
    });
    let rows = rows.map_err(|e| e.detail)?;
    eprintln!("exported {rows} rows");
    Ok(())
}
