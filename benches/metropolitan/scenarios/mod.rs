//! The scenarios of the run. A scenario is one small file implementing
//! `Scenario`; adding one means writing that file and listing it in `all()`.

pub mod batch_upsert;
mod create;
mod footprint;
mod get_by_id;
mod million;
mod notification_receiver;
mod notifications;
mod patch_attrs;
mod queries;
mod startup;
mod store_floor;
mod temporal;
mod temporal_history;
mod territory_loader;

use futures_util::future::LocalBoxFuture;
use reqwest::RequestBuilder;

use crate::bench_context::BenchContext;
use crate::figures::Figure;
use crate::limits;
use crate::options::Options;

pub trait Scenario {
    /// Name on the command line (`--scenarios key,...`).
    fn key(&self) -> &'static str;
    /// One line for `--list`.
    fn summary(&self) -> &'static str;
    /// Long scenarios run only when asked for by name (or by a flag).
    fn runs_by_default(&self) -> bool {
        true
    }
    fn run<'a>(&'a self, bench: &'a mut BenchContext) -> LocalBoxFuture<'a, Vec<Figure>>;
}

/// Every scenario, in the order of a default run: limits first (on an idle
/// machine), then the broker scenarios, each building on the store the
/// previous ones left.
pub fn all() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(limits::TrivialHttp),
        Box::new(limits::BareSqlite),
        Box::new(store_floor::StoreFloor),
        Box::new(create::Create),
        Box::new(batch_upsert::BatchUpsert),
        Box::new(patch_attrs::PatchAttrs),
        Box::new(get_by_id::GetById),
        Box::new(queries::Queries),
        Box::new(footprint::Footprint),
        Box::new(startup::Startup),
        Box::new(temporal::Temporal),
        Box::new(notifications::Notifications),
        Box::new(million::Million),
    ]
}

/// The scenarios `options` ask for, or an error naming the unknown ones.
pub fn select(options: &Options) -> Result<Vec<Box<dyn Scenario>>, String> {
    if options.scenarios.is_empty() {
        return Ok(all()
            .into_iter()
            .filter(|scenario| {
                scenario.runs_by_default()
                    || (options.wants_million() && scenario.key() == "million")
            })
            .collect());
    }
    let mut available = all();
    let mut chosen = Vec::new();
    for wanted in &options.scenarios {
        let wanted = wanted.trim();
        match available
            .iter()
            .position(|scenario| scenario.key() == wanted)
        {
            Some(position) => chosen.push(available.remove(position)),
            None => {
                let known: Vec<&str> = all().iter().map(|scenario| scenario.key()).collect();
                return Err(format!(
                    "unknown or repeated scenario `{wanted}`; known: {}",
                    known.join(", ")
                ));
            }
        }
    }
    Ok(chosen)
}

/// Adds the `--sdm-context` Link header to a broker request, if asked for.
pub fn with_context_link(request: RequestBuilder, link: Option<&'static str>) -> RequestBuilder {
    match link {
        Some(link) => request.header("Link", link),
        None => request,
    }
}

/// Request bodies serialized before a run, shared by the load workers.
pub fn serialize(value: &serde_json::Value) -> actix_web::web::Bytes {
    actix_web::web::Bytes::from(serde_json::to_vec(value).expect("a JSON value always serializes"))
}
