//! The command line: `meridian serve` and `meridian check`.

use crate::app::{self, AppError};
use crate::state;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// An authoritative DNS server that routes traffic like a cloud traffic manager.
#[derive(Debug, Parser)]
#[command(name = "meridian", version, about)]
pub struct Cli {
    /// The configuration file; zone files it names are relative to its directory.
    #[arg(short, long, global = true, default_value = "meridian.toml")]
    pub config: PathBuf,
    /// Log filter: a level (error, warn, info, debug, trace) or per-target directives
    /// such as "info,meridian::server=debug". Overridden by MERIDIAN_LOG.
    #[arg(long, global = true, default_value = "info")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve DNS until SIGINT or SIGTERM; SIGHUP reloads the configuration and zones.
    Serve,
    /// Validate the configuration and every zone file; exit 1 and list every problem if any.
    Check,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), AppError> {
    match cli.command {
        Command::Serve => app::serve(app::Options { config: cli.config, reload_on_sighup: true }),
        Command::Check => {
            let snap = state::load(&cli.config).map_err(AppError::Config)?;
            println!("{}: ok", cli.config.display());
            for z in snap.zones.zones() {
                println!("  zone {}: {} records", z.origin(), z.record_count());
            }
            for addr in &snap.config.server.listen {
                println!("  listen {addr} (udp, tcp)");
            }
            Ok(())
        }
    }
}
