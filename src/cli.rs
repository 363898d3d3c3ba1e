//! The command line: `meridian serve` and `meridian check`.

use crate::app::{self, AppError};
use crate::diag::{Diagnostic, Diagnostics, Loc};
use crate::state;
use crate::tools::explain;
use crate::traffic::geo::mmdb;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// `println!` through [`out`].
macro_rules! outln {
    ($($t:tt)*) => { out(&format!("{}\n", format_args!($($t)*))) };
}

/// Writes to standard output; a reader that went away (`| head`) is not an error.
fn out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// An authoritative DNS server that routes traffic like a cloud traffic manager.
#[derive(Debug, Parser)]
#[command(name = "meridian", version, about)]
pub struct Cli {
    /// The configuration file; zone files it names are relative to its directory.
    #[arg(short, long, global = true, default_value = "meridian.toml")]
    pub config: PathBuf,
    /// Log filter: a level (error, warn, info, debug, trace) or per-target directives
    /// such as "info,meridian::dns::server=debug". Overridden by MERIDIAN_LOG.
    #[arg(long, global = true, default_value = "info")]
    pub log: String,
    /// Log format: human (default) or json (one object per line, for log pipelines).
    #[arg(long, global = true, default_value = "human", value_parser = ["human", "json"])]
    pub log_format: String,
    /// The admin API of the running server (`status`, `reload`, `endpoint`, `load`):
    /// `http(s)://host:port`. Default: MERIDIAN_ADMIN, else the configuration's
    /// `[admin] listen`. The token comes from MERIDIAN_ADMIN_TOKEN or --token-file.
    #[arg(long, global = true)]
    pub admin: Option<String>,
    /// A file holding the admin token
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// A PEM CA to trust for an HTTPS admin API
    #[arg(long, global = true)]
    pub admin_ca: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum EndpointAction {
    /// Take an endpoint out of rotation (an operator override)
    Disable {
        profile: String,
        endpoint: String,
        /// Lapse after this long, e.g. 10m (default: until enabled again)
        #[arg(long = "for")]
        expires_in: Option<String>,
        /// Why (shown in the status)
        #[arg(long)]
        reason: Option<String>,
    },
    /// Put it back (or force it in, with --for)
    Enable {
        profile: String,
        endpoint: String,
        #[arg(long = "for")]
        expires_in: Option<String>,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum LoadAction {
    /// Record a load sample for an endpoint with a push load source
    Push { profile: String, endpoint: String, value: f64 },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the running server's profiles, endpoints, health, load and bursts
    Status {
        /// The JSON of /v1/status as it is
        #[arg(long)]
        json: bool,
    },
    /// Exit 0 when the running server's /readyz says ready, 1 when it says not, 2 when it
    /// cannot be reached (the container image's HEALTHCHECK)
    Ready,
    /// Make the running server reload its configuration and zones (as SIGHUP does)
    Reload,
    /// Disable or enable an endpoint of the running server
    Endpoint {
        #[command(subcommand)]
        action: EndpointAction,
    },
    /// Push a load sample to the running server
    Load {
        #[command(subcommand)]
        action: LoadAction,
    },
    /// Serve DNS until SIGINT or SIGTERM; SIGHUP reloads the configuration and zones.
    Serve,
    /// Validate the configuration and every zone file; exit 1 and list every problem if any.
    Check,
    /// Show how a query would be answered for a client, step by step, through the same code
    /// that serves (endpoints have the status a freshly started server gives them).
    Explain {
        /// The name asked, e.g. www.app.example.com
        name: String,
        /// The record type asked
        #[arg(default_value = "A")]
        rtype: String,
        /// The client: IP (the query's source) or IP/PREFIX (sent as EDNS Client Subnet)
        #[arg(long)]
        client: String,
        /// Seed for the random draw of weighted choices (default: random)
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Run tiny local HTTP apps on the addresses and monitor ports of the configuration's
    /// HTTP-monitored endpoints (all, or the ones named), to try health monitoring locally.
    DemoEndpoints {
        /// Endpoint names (default: every HTTP-monitored address endpoint)
        names: Vec<String>,
    },
    /// Replay a scenario (demand over time, health events, a resolver population caching by
    /// TTL) against a profile in virtual time, with the real routing and burst code; print
    /// the share per endpoint over time and write an SVG chart.
    Simulate {
        /// Scenario files (TOML)
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Print only the burst-quality scorecard, one row per scenario
        #[arg(long)]
        report: bool,
        /// Write the chart here
        #[arg(long)]
        svg: Option<PathBuf>,
        /// About how many rows the table has
        #[arg(long, default_value_t = 30)]
        rows: usize,
    },
    /// A bounded load generator for the demo: resolve NAME through Meridian for every request
    /// and send it to the address given, following a rate ramp; print the split over time.
    DemoLoad {
        /// The name to resolve
        #[arg(default_value = "www.app.example.com")]
        name: String,
        /// Meridian's DNS address; repeat it to spread the queries over several instances, as
        /// resolvers spread theirs over a domain's name servers
        #[arg(long, default_value = "127.0.0.1:5353")]
        server: Vec<std::net::SocketAddr>,
        /// Send from this many client addresses (127.0.N.1, one /24 each; loopback servers
        /// only), so that a sticky spill has clients to split
        #[arg(long, default_value_t = 1)]
        clients: u8,
        /// The apps' port
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Requests per second over time: TIME:RATE points (rate at most 1000), linear in between
        #[arg(long, default_value = "0s:10,20s:10,40s:100,100s:100,120s:10,180s:10")]
        ramp: String,
        /// How often to print the split
        #[arg(long, default_value = "5s")]
        report: String,
    },
    /// Send DNS queries from a dnsperf-format file (one `NAME [TYPE]` per line) to a server,
    /// batched, from several sockets: as fast as it answers (closed loop, --outstanding) or at
    /// a fixed --rate; bounded by --duration and --count. Reports qps, latency percentiles,
    /// lost and mismatched replies and rcodes.
    Loadgen {
        /// The query file
        #[arg(short = 'd', long)]
        data: PathBuf,
        /// The server
        #[arg(short, long, default_value = "127.0.0.1:5353")]
        server: std::net::SocketAddr,
        /// Over TCP (pipelined on each connection) instead of UDP
        #[arg(long)]
        tcp: bool,
        /// UDP sockets, or TCP connections
        #[arg(long, default_value_t = 4)]
        sockets: usize,
        /// Queries in flight at most (all sockets together)
        #[arg(short = 'q', long, default_value_t = 200)]
        outstanding: usize,
        /// Queries per second, whatever the server does (open loop); default: as fast as it
        /// answers
        #[arg(short = 'Q', long)]
        rate: Option<f64>,
        /// How long to send, e.g. 10s
        #[arg(short = 'l', long, default_value = "10s")]
        duration: String,
        /// Stop after this many queries (sooner than --duration)
        #[arg(short = 'n', long)]
        count: Option<u64>,
        /// A query unanswered this long is lost
        #[arg(long, default_value = "2s")]
        timeout: String,
        /// An EDNS Client Subnet (ADDRESS/PREFIX); repeat it, and query k carries the
        /// (k mod N)th
        #[arg(long)]
        ecs: Vec<String>,
        /// Subnets for --ecs from a file, one per line
        #[arg(long)]
        ecs_file: Option<PathBuf>,
        /// Send OPT (EDNS, 1232-byte payload) with every query, not only with ECS
        #[arg(long)]
        edns: bool,
        /// Datagrams per system call
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script: `meridian completions bash > /etc/bash_completion.d/meridian`
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one page per command into a directory:
    /// `meridian man --dir /usr/local/share/man/man1`
    Man {
        /// Write meridian.1 and meridian-COMMAND.1 pages here instead
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Import profiles from elsewhere.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// GeoIP database tools.
    Geoip {
        #[command(subcommand)]
        command: GeoipCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Turn an exported Azure Traffic Manager profile (ARM template or REST/CLI JSON) into a
    /// meridian.toml section on standard output; what cannot be carried over is listed on
    /// standard error.
    Azure {
        /// The exported JSON
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum GeoipCommand {
    /// Write a MaxMind DB (.mmdb) file from a CSV of cidr,country,continent,subdivision,lat,lon
    Build {
        /// The CSV file
        input: PathBuf,
        /// The .mmdb file to write
        #[arg(short, long)]
        output: PathBuf,
        /// The database_type recorded in the file's metadata
        #[arg(long, default_value = "Meridian-GeoIP")]
        database_type: String,
    },
}

/// Runs a parsed command line.
/// Runs an operator command against the running server's admin API.
fn ctl(cli: &Cli, command: &Command) -> Result<(), AppError> {
    use crate::tools::ctl;
    let admin = ctl::Admin::locate(
        cli.admin.clone(),
        cli.token_file.clone(),
        cli.admin_ca.clone(),
        &cli.config,
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = rt.block_on(async {
        let admin = admin?;
        match command {
            Command::Status { json } => ctl::status(&admin, *json).await,
            Command::Reload => ctl::reload(&admin).await,
            Command::Ready => ctl::ready(&admin).await,
            Command::Endpoint {
                action: EndpointAction::Disable { profile, endpoint, expires_in, reason },
            } => {
                ctl::set_endpoint(
                    &admin,
                    profile,
                    endpoint,
                    false,
                    expires_in.as_deref(),
                    reason.as_deref(),
                )
                .await
            }
            Command::Endpoint {
                action: EndpointAction::Enable { profile, endpoint, expires_in, reason },
            } => {
                ctl::set_endpoint(
                    &admin,
                    profile,
                    endpoint,
                    true,
                    expires_in.as_deref(),
                    reason.as_deref(),
                )
                .await
            }
            Command::Load { action: LoadAction::Push { profile, endpoint, value } } => {
                ctl::push_load(&admin, profile, endpoint, *value).await
            }
            _ => unreachable!("only operator commands come here"),
        }
    });
    match result {
        Ok(text) => {
            out(&text);
            Ok(())
        }
        Err(e) => Err(AppError::Remote(e.message, e.code)),
    }
}

pub fn run(cli: Cli) -> Result<(), AppError> {
    if matches!(
        cli.command,
        Command::Status { .. }
            | Command::Ready
            | Command::Reload
            | Command::Endpoint { .. }
            | Command::Load { .. }
    ) {
        return ctl(&cli, &cli.command);
    }
    match cli.command {
        Command::Status { .. }
        | Command::Ready
        | Command::Reload
        | Command::Endpoint { .. }
        | Command::Load { .. } => {
            Ok(()) // carried out above
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "meridian", &mut buf);
            out(&String::from_utf8_lossy(&buf));
            Ok(())
        }
        Command::Man { dir } => {
            use clap::CommandFactory;
            if let Some(dir) = dir {
                clap_mangen::generate_to(Cli::command(), &dir)?;
                outln!("manual pages written to {}", dir.display());
                return Ok(());
            }
            let mut buf = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut buf)?;
            out(&String::from_utf8_lossy(&buf));
            Ok(())
        }
        Command::Serve => app::serve(app::Options { config: cli.config, reload_on_sighup: true }),
        Command::Check => {
            let snap = state::load(&cli.config).map_err(AppError::Config)?;
            outln!("{}: ok", cli.config.display());
            for z in snap.zones.zones() {
                outln!("  zone {}: {} records", z.origin(), z.record_count());
            }
            for s in snap.secondaries.iter() {
                let primaries: Vec<String> =
                    s.spec.primaries.iter().map(|p| p.to_string()).collect();
                let copy = match snap.zones.zones().iter().find(|z| *z.origin() == s.origin) {
                    Some(z) => {
                        format!("serving the copy {}, serial {}", s.file.display(), z.serial())
                    }
                    None => match &s.live.detail().last_error {
                        Some(e) => format!("no usable copy ({e}): SERVFAIL until transferred"),
                        None => "no copy yet: SERVFAIL until transferred".into(),
                    },
                };
                outln!("  zone {}: secondary of {}; {copy}", s.origin, primaries.join(", "));
            }
            for p in snap.policies.profiles.iter() {
                outln!(
                    "  profile {}: {}, {} endpoints{}",
                    p.name,
                    p.method.as_str(),
                    p.endpoints.len(),
                    if p.burst.is_some() { ", burst rule" } else { "" }
                );
            }
            if let Some(g) = &snap.geo {
                outln!("  geoip {}", g.description());
            }
            for addr in &snap.server.listen {
                outln!("  listen {addr} (udp, tcp)");
            }
            Ok(())
        }
        Command::Explain { name, rtype, client, seed } => {
            let snap = state::load(&cli.config).map_err(AppError::Config)?;
            let seed =
                seed.unwrap_or_else(|| crate::traffic::policy::Rng::from_entropy().next_u64());
            let e =
                explain::explain(&snap, &name, &rtype, &client, seed).map_err(AppError::Usage)?;
            out(&format!("{e}\n"));
            Ok(())
        }
        Command::Simulate { scenarios, report, svg, rows } => {
            use crate::tools::simulate;
            if svg.is_some() && scenarios.len() > 1 {
                return Err(AppError::Usage(crate::tools::explain::ExplainError(
                    "--svg draws one scenario: give one".into(),
                )));
            }
            let mut cards = Vec::new();
            for scenario in &scenarios {
                // Each scenario against a fresh server state, as a fresh start would be.
                let snap = state::load(&cli.config).map_err(AppError::Config)?;
                let sc = crate::config::load_scenario(scenario).map_err(AppError::Config)?;
                let outcome = simulate::run(&snap, &sc)
                    .map_err(|e| AppError::Usage(crate::tools::explain::ExplainError(e)))?;
                if report {
                    let name = scenario.file_stem().map_or_else(
                        || scenario.display().to_string(),
                        |s| s.to_string_lossy().into_owned(),
                    );
                    cards.push((name, simulate::scorecard(&outcome)));
                    continue;
                }
                out(&simulate::table(&outcome, rows));
                if let Some(path) = &svg {
                    std::fs::write(path, simulate::svg(&outcome))?;
                    out(&format!("chart written to {}\n", path.display()));
                }
            }
            if report {
                out(&simulate::report(&cards));
            }
            Ok(())
        }
        Command::Import { command: ImportCommand::Azure { file } } => {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                AppError::Config(
                    Diagnostic::new(
                        Loc::new(&file, 1, 1),
                        format!("cannot read {}: {e}", file.display()),
                    )
                    .into(),
                )
            })?;
            let imported = crate::tools::import::azure(&text)
                .map_err(|e| AppError::Config(Diagnostic::new(Loc::new(&file, 1, 1), e).into()))?;
            out(&imported.toml);
            for w in &imported.warnings {
                eprintln!("not carried over: {w}");
            }
            Ok(())
        }
        Command::DemoLoad { name, server, clients, port, ramp, report } => {
            let usage = |e: String| AppError::Usage(crate::tools::explain::ExplainError(e));
            let ramp = crate::tools::demo::parse_ramp(&ramp).map_err(usage)?;
            let report = crate::config::parse_duration(&report)
                .ok_or_else(|| usage(format!("{report:?} is not a duration")))?;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            if clients > 1 && server.iter().any(|s| !s.ip().is_loopback()) {
                return Err(usage(
                    "--clients sends from 127.0.N.1: every --server must be on loopback".into(),
                ));
            }
            rt.block_on(crate::tools::demo::load(&server, clients, &name, port, ramp, report))?;
            Ok(())
        }
        Command::DemoEndpoints { names } => {
            let config = crate::config::load(&cli.config).map_err(AppError::Config)?;
            let targets = crate::tools::demo::targets(&config, &names);
            if targets.is_empty() {
                return Err(AppError::Usage(crate::tools::explain::ExplainError(
                    "no HTTP-monitored address endpoint matches; see [profile.monitor] in the configuration".into(),
                )));
            }
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                tokio::select! {
                    r = crate::tools::demo::serve(targets) => r,
                    _ = tokio::signal::ctrl_c() => Ok(()),
                }
            })?;
            Ok(())
        }
        Command::Loadgen {
            data,
            server,
            tcp,
            sockets,
            outstanding,
            rate,
            duration,
            count,
            timeout,
            ecs,
            ecs_file,
            edns,
            batch,
            json,
        } => {
            use crate::tools::loadgen;
            let usage = |e: String| AppError::Usage(crate::tools::explain::ExplainError(e));
            let read = |file: &PathBuf| {
                std::fs::read_to_string(file).map_err(|e| {
                    AppError::Config(
                        Diagnostic::new(
                            Loc::new(file, 1, 1),
                            format!("cannot read {}: {e}", file.display()),
                        )
                        .into(),
                    )
                })
            };
            let lines = |file: &PathBuf, errs: Vec<(usize, String)>| {
                AppError::Config(Diagnostics(
                    errs.into_iter()
                        .map(|(line, m)| Diagnostic::new(Loc::new(file, line as u32, 1), m))
                        .collect(),
                ))
            };
            let queries = loadgen::parse_queries(&read(&data)?).map_err(|e| lines(&data, e))?;
            let mut subnets = Vec::new();
            for text in &ecs {
                subnets
                    .push(loadgen::parse_subnet(text).map_err(|e| usage(format!("--ecs: {e}")))?);
            }
            if let Some(file) = &ecs_file {
                subnets.extend(loadgen::parse_subnets(&read(file)?).map_err(|e| lines(file, e))?);
            }
            let duration_of = |flag: &str, text: &str| {
                crate::config::parse_duration(text)
                    .ok_or_else(|| usage(format!("{flag}: {text:?} is not a duration")))
            };
            let opts = loadgen::Options {
                server,
                queries,
                ecs: subnets,
                edns,
                tcp,
                sockets,
                outstanding,
                rate,
                duration: duration_of("--duration", &duration)?,
                count,
                timeout: duration_of("--timeout", &timeout)?,
                batch,
            };
            opts.validate().map_err(usage)?;
            let report = loadgen::run(&opts)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            } else {
                out(&report.text());
            }
            Ok(())
        }
        Command::Geoip { command: GeoipCommand::Build { input, output, database_type } } => {
            let text = std::fs::read_to_string(&input).map_err(|e| {
                AppError::Config(
                    Diagnostic::new(
                        Loc::new(&input, 1, 1),
                        format!("cannot read {}: {e}", input.display()),
                    )
                    .into(),
                )
            })?;
            let rows = mmdb::parse_csv(&text).map_err(|errs| {
                AppError::Config(Diagnostics(
                    errs.into_iter()
                        .map(|(line, m)| Diagnostic::new(Loc::new(&input, line as u32, 1), m))
                        .collect(),
                ))
            })?;
            let epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let bytes = mmdb::build(&rows, &database_type, epoch);
            std::fs::write(&output, &bytes)?;
            outln!("{}: {} networks, {} bytes", output.display(), rows.len(), bytes.len());
            Ok(())
        }
    }
}
