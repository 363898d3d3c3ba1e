//! The `meridian` binary: parse the command line, set up logging, run, map errors to exit codes.

use clap::Parser;
use meridian::cli::{Cli, run};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::filter::Targets;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = std::env::var("MERIDIAN_LOG").unwrap_or_else(|_| cli.log.clone());
    let targets: Targets = match filter.parse() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: invalid log filter {filter:?}: {e}");
            return ExitCode::from(2);
        }
    };
    use tracing_subscriber::prelude::*;
    let registry = tracing_subscriber::registry().with(targets);
    if cli.log_format == "json" {
        registry.with(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr)).init();
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .init();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}
