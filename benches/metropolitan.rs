//! The metropolitan benchmark: Calanque under an Aix-Marseille-Provence
//! sensor workload, each figure set beside this machine's own limit measured
//! in the same run. See docs/benchmarks.md.
//!
//! `cargo bench --bench metropolitan [-- --scale N --scenarios a,b --million --out file.json]`

// A bench's crate root looks for modules beside it, in benches/; the
// paths keep this bench's files together under benches/metropolitan/.
#[path = "metropolitan/bench_context.rs"]
mod bench_context;
#[path = "metropolitan/broker.rs"]
mod broker;
#[path = "metropolitan/figures.rs"]
mod figures;
#[path = "metropolitan/latency.rs"]
mod latency;
#[path = "metropolitan/limits/mod.rs"]
mod limits;
#[path = "metropolitan/load_driver.rs"]
mod load_driver;
#[path = "metropolitan/options.rs"]
mod options;
#[path = "metropolitan/process_stats.rs"]
mod process_stats;
#[path = "metropolitan/report.rs"]
mod report;
#[path = "metropolitan/scenarios/mod.rs"]
mod scenarios;
#[path = "metropolitan/seeded_rng.rs"]
mod seeded_rng;
#[path = "metropolitan/workload/mod.rs"]
mod workload;

use std::time::Instant;

use clap::Parser;

use bench_context::BenchContext;
use options::Options;
use report::Report;

// The broker's allocator: the in-process limits and the store floor then
// allocate the way the broker does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let options = Options::parse();
    if options.list {
        for scenario in scenarios::all() {
            let when = if scenario.runs_by_default() {
                ""
            } else {
                " (not by default)"
            };
            println!("{:<14} {}{when}", scenario.key(), scenario.summary());
        }
        return;
    }
    if options.sample {
        print_sample(&options);
        return;
    }
    let selected = match scenarios::select(&options) {
        Ok(selected) => selected,
        Err(message) => {
            eprintln!("metropolitan: {message}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime");
    let report = runtime.block_on(async {
        let mut bench = BenchContext::new(options.clone());
        let mut figures = Vec::new();
        for scenario in &selected {
            eprintln!("metropolitan: {} ...", scenario.key());
            let started = Instant::now();
            figures.extend(scenario.run(&mut bench).await);
            eprintln!(
                "metropolitan: {} done in {:.1} s",
                scenario.key(),
                started.elapsed().as_secs_f64()
            );
        }
        bench.shutdown();
        Report::new(&options, figures)
    });
    println!("{}", report.markdown());
    match report.write_json(&options.out) {
        Ok(()) => eprintln!("metropolitan: results written to {}", options.out.display()),
        Err(err) => {
            eprintln!(
                "metropolitan: cannot write {}: {err}",
                options.out.display()
            );
            std::process::exit(1);
        }
    }
}

/// One entity of each type and one PATCH body, to eyeball the workload.
fn print_sample(options: &Options) {
    let territory =
        workload::Workload::new(options.seed, options.scale, bench_context::TERRITORY_PREFIX);
    let mut seen_types = std::collections::BTreeSet::new();
    let mut sizes = Vec::new();
    for index in 0..territory.entity_count() {
        let entity = territory.entity(index);
        sizes.push(entity.to_string().len());
        let entity_type = entity["type"].as_str().unwrap_or_default().to_owned();
        if seen_types.insert(entity_type) {
            println!(
                "{}",
                serde_json::to_string_pretty(&entity).expect("JSON prints")
            );
        }
    }
    let sensor = territory.sensor(0);
    println!(
        "PATCH {}/attrs\n{}",
        sensor.entity_id,
        serde_json::to_string_pretty(&territory.observation_update(&sensor, 1))
            .expect("JSON prints")
    );
    let mean = sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64;
    eprintln!(
        "scale x{}: {} sensors, {} entities, mean body {:.0} bytes, max {} bytes",
        territory.scale(),
        territory.sensor_count(),
        territory.entity_count(),
        mean,
        sizes.iter().max().unwrap_or(&0)
    );
}
