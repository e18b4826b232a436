use clap::Parser;

use calanque::config::{Cli, Command};

// Request handling allocates many small, short-lived JSON values on several threads;
// glibc's allocator spent a third of query CPU consolidating and unlinking chunks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Export and import may use standard output for the dump: logs go to stderr there.
    let to_stderr = matches!(cli.command, Some(Command::Export(_) | Command::Import(_)));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if to_stderr {
        fmt.with_writer(std::io::stderr).init();
    } else {
        fmt.init();
    }
    if let Err(e) = cli.config.validate() {
        eprintln!("calanque: {e}");
        return std::process::ExitCode::from(2);
    }
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => calanque::server::run(cli.config),
        Command::Migrate => calanque::server::migrate(&cli.config),
        Command::Export(args) => calanque::dump::cli::export(&cli.config, &args),
        Command::Import(args) => calanque::dump::cli::import(&cli.config, &args),
        Command::Rename(args) => calanque::dump::cli::rename(&cli.config, &args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("calanque: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
