//! Wiring: the first snapshot, sockets, worker threads and tasks, reload, and shutdown order.
//! No domain logic lives here.

use crate::control::admin;
use crate::control::runtime::{ReloadInfo, Runtime};
use crate::diag::Diagnostics;
use crate::dns::server::{self, BindError, TcpLimits};
use crate::state::{self, ReloadKind, ReloadRequest, Shared, Snapshot};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

/// Why the server could not start. Each variant maps to an exit code (ripgrep's convention):
/// 1 for invalid configuration, 2 for runtime failures.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Config(Diagnostics),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("{0}")]
    Runtime(#[from] std::io::Error),
    /// A command-line argument that does not make sense.
    #[error("error: {0}")]
    Usage(#[from] crate::tools::explain::ExplainError),
    /// The running server could not be reached, or refused (message, exit code).
    #[error("error: {0}")]
    Remote(String, u8),
}

impl AppError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) => 1,
            AppError::Bind(_) | AppError::Runtime(_) | AppError::Usage(_) => 2,
            AppError::Remote(_, code) => *code,
        }
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: PathBuf,
    /// Reload on SIGHUP. Off for servers embedded in tests, which share one process.
    pub reload_on_sighup: bool,
}

/// A running server. Dropping it without [`Running::shutdown`] leaves its threads running
/// until the process exits.
#[derive(Debug)]
pub struct Running {
    shared: Arc<Shared>,
    rt: Arc<Runtime>,
    addrs: Vec<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    ready: Arc<AtomicBool>,
    stop_udp: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    udp_threads: Vec<JoinHandle<()>>,
    tasks: JoinSet<()>,
    reload_tx: mpsc::Sender<ReloadRequest>,
}

/// Loads the configuration, binds every listener and starts serving. Must be called inside a
/// tokio runtime.
pub async fn start(opts: Options) -> Result<Running, AppError> {
    let path = opts.config.clone();
    let rt = Arc::new(Runtime::default());
    let snapshot = load_blocking(path.clone(), None).await.map_err(AppError::Config)?;
    let server = snapshot.server.clone();
    let admin_config = snapshot.admin.clone();
    let workers = match server.udp_workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let bound = server::bind(&server.listen, workers)?;
    let admin_listener = match admin_config.listen {
        Some(addr) => {
            Some(tokio::net::TcpListener::bind(addr).await.map_err(|source| BindError {
                addr,
                proto: "admin http",
                source,
            })?)
        }
        None => None,
    };
    let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
    let shared = Arc::new(Shared::new(snapshot));
    rt.set_reload_info(ReloadInfo { last_at: Some(SystemTime::now()), last_error: None });

    let stop_udp = Arc::new(AtomicBool::new(false));
    let mut udp_threads = Vec::new();
    for (i, sock) in bound.udp.into_iter().enumerate() {
        let (shared, rt, stop) = (shared.clone(), rt.clone(), stop_udp.clone());
        let t = std::thread::Builder::new()
            .name(format!("udp-{i}"))
            .spawn(move || server::udp_worker(sock, shared, rt, stop))?;
        udp_threads.push(t);
    }

    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let limits = TcpLimits {
        max_connections: server.tcp_max_connections,
        idle_timeout: server.tcp_idle_timeout,
    };
    for listener in bound.tcp {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        tasks.spawn(server::tcp_acceptor(
            listener,
            shared.clone(),
            rt.clone(),
            limits,
            stop_rx.clone(),
        ));
    }

    // Each applied reload bumps this generation, so the health supervisor re-plans its probes.
    let (generation, generation_rx) = watch::channel(0u64);
    tasks.spawn(crate::control::health::supervise(
        shared.clone(),
        generation_rx.clone(),
        stop_rx.clone(),
    ));
    tasks.spawn(crate::control::load::supervise(
        shared.clone(),
        generation_rx.clone(),
        stop_rx.clone(),
    ));
    tasks.spawn(crate::control::notify::run(
        shared.clone(),
        generation_rx.clone(),
        stop_rx.clone(),
    ));
    tasks.spawn(crate::control::bursts::supervise(
        shared.clone(),
        rt.clone(),
        generation_rx.clone(),
        stop_rx.clone(),
    ));
    tasks.spawn(expire_overrides(shared.clone(), rt.clone(), stop_rx.clone()));
    tasks.spawn(crate::control::consensus::run(shared.clone(), stop_rx.clone()));

    let (reload_tx, reload_rx) = mpsc::channel(4);
    tasks.spawn(crate::control::refresh::supervise(
        shared.clone(),
        generation_rx.clone(),
        stop_rx.clone(),
        reload_tx.clone(),
    ));
    let hup = if opts.reload_on_sighup {
        Some(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?)
    } else {
        None
    };
    let reloader = Reloader { path, shared: shared.clone(), rt: rt.clone(), generation };
    tasks.spawn(reloader.run(reload_rx, hup, stop_rx.clone()));

    let ready = Arc::new(AtomicBool::new(false));
    if let Some(listener) = admin_listener {
        let ctx = Arc::new(admin::Context {
            shared: shared.clone(),
            rt: rt.clone(),
            token: admin_config.token.clone(),
            reload: reload_tx.clone(),
            ready: ready.clone(),
        });
        tasks.spawn(admin::serve(listener, ctx, stop_rx.clone()));
    }
    for addr in &bound.addrs {
        info!(%addr, udp_workers = workers, "serving DNS over UDP and TCP");
    }
    if let Some(addr) = admin_addr {
        info!(%addr, "admin API listening");
    }
    ready.store(true, Ordering::Relaxed);
    Ok(Running {
        shared,
        rt,
        addrs: bound.addrs,
        admin_addr,
        ready,
        stop_udp,
        stop,
        udp_threads,
        tasks,
        reload_tx,
    })
}

impl Running {
    /// The addresses actually bound, one per configured listener.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The admin API's address, when it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Process-wide records: counters, the last reload, the status page's history.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.rt
    }

    /// Reloads the configuration and zones, exactly as SIGHUP does.
    pub async fn reload(&self) -> Result<(), Diagnostics> {
        let (tx, rx) = oneshot::channel();
        if self.reload_tx.send(ReloadRequest { kind: ReloadKind::Full, reply: tx }).await.is_err() {
            return Ok(()); // shutting down
        }
        rx.await.unwrap_or(Ok(()))
    }

    /// The first step of stopping: `/readyz` answers 503 from now on, while DNS and the admin
    /// API go on serving (for `[server] drain`).
    pub fn begin_drain(&self) {
        self.ready.store(false, Ordering::Relaxed);
    }

    /// Stops accepting, lets in-flight TCP queries finish, and joins every worker.
    pub async fn shutdown(mut self) {
        self.ready.store(false, Ordering::Relaxed);
        self.stop_udp.store(true, Ordering::Relaxed);
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        let threads = std::mem::take(&mut self.udp_threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        info!("stopped");
    }
}

/// Runs the server until SIGINT or SIGTERM.
pub fn serve(opts: Options) -> Result<(), AppError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(1, |n| n.get()).min(4))
        .thread_name("meridian")
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let running = start(opts).await?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => info!("SIGINT received; shutting down"),
            _ = term.recv() => info!("SIGTERM received; shutting down"),
        }
        running.begin_drain();
        let drain = running.shared().load().server.drain;
        if !drain.is_zero() {
            info!(drain = ?drain, "draining: /readyz answers 503, still serving");
            // A second signal means "now": an operator should never wait on a drain.
            tokio::select! {
                _ = tokio::time::sleep(drain) => {}
                _ = tokio::signal::ctrl_c() => info!("second signal; stopping now"),
                _ = term.recv() => info!("second signal; stopping now"),
            }
        }
        running.shutdown().await;
        Ok(())
    });
    // Everything that answers has stopped and drained; what may be left are blocking-pool
    // threads still in a system call (a name lookup, a probe's connect): they hold nothing,
    // and waiting for them made exit take seconds.
    rt.shutdown_timeout(Duration::from_millis(100));
    result
}

/// Lapses operators' overrides whose time is up, and samples answer counts for the status
/// page every 10 seconds.
async fn expire_overrides(shared: Arc<Shared>, rt: Arc<Runtime>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut sample = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => admin::expire_overrides(&shared, &rt),
            _ = sample.tick() => rt.sample_history(&shared.load()),
        }
    }
}

/// How often watched files are looked at, and how long they must stay unchanged (size and
/// modification time) before a change is loaded: a file still being written is waited for.
pub const WATCH_POLL: Duration = Duration::from_millis(250);
pub const WATCH_SETTLE: Duration = Duration::from_secs(1);

/// What a watched file looks like from outside: its modification time and size (`None` when
/// it cannot be read).
type Stamps = Vec<Option<(SystemTime, u64)>>;

fn stamps(paths: &[PathBuf]) -> Stamps {
    paths
        .iter()
        .map(|p: &PathBuf| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        })
        .collect()
}

/// The one task that owns reloading, so two reloads never race to swap.
struct Reloader {
    path: PathBuf,
    shared: Arc<Shared>,
    rt: Arc<Runtime>,
    generation: watch::Sender<u64>,
}

impl Reloader {
    async fn run(
        self,
        mut requests: mpsc::Receiver<ReloadRequest>,
        mut hup: Option<tokio::signal::unix::Signal>,
        mut stop: watch::Receiver<bool>,
    ) {
        // With `watch = true`, the files are polled: a change of modification time or size,
        // once it has settled, is a reload. Polling needs no platform watcher and catches
        // editors that replace files.
        let mut poll = tokio::time::interval(WATCH_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Files a failed reload named that the snapshot does not have (a new zone file, or one
        // a zone file newly includes): fixing them must reload too.
        let mut also: Vec<PathBuf> = Vec::new();
        let watched = |snap: &Snapshot, also: &[PathBuf]| -> Vec<PathBuf> {
            snap.sources.iter().chain(also).cloned().collect()
        };
        let mut seen = stamps(&watched(&self.shared.load(), &also));
        // A change seen but not yet settled: the stamps then, and when they last moved.
        let mut settling: Option<(Stamps, tokio::time::Instant)> = None;
        loop {
            let request = tokio::select! {
                _ = stop.changed() => return,
                r = requests.recv() => match r {
                    Some(req) => Some(req),
                    None => return,
                },
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    info!("SIGHUP received; reloading");
                    None
                }
                _ = poll.tick() => {
                    let snap = self.shared.load();
                    if !snap.server.watch {
                        continue;
                    }
                    let now = stamps(&watched(&snap, &also));
                    if now == seen {
                        settling = None;
                        continue;
                    }
                    match &settling {
                        Some((s, since)) if *s == now && since.elapsed() >= WATCH_SETTLE => {}
                        Some((s, _)) if *s == now => continue,
                        _ => {
                            settling = Some((now, tokio::time::Instant::now()));
                            continue;
                        }
                    }
                    info!("a watched file changed; reloading");
                    None
                }
            };
            settling = None;
            // Stamps taken before anything is read: a write that lands while the reload reads
            // the files shows as a difference afterwards, and is loaded by the next poll.
            let old_sources = watched(&self.shared.load(), &also);
            let before = stamps(&old_sources);
            let (kind, reply) = match request {
                Some(ReloadRequest { kind, reply }) => (kind, Some(reply)),
                None => (ReloadKind::Full, None),
            };
            let result = self.reload(kind).await;
            also = match &result {
                Ok(()) => Vec::new(),
                Err(diags) => {
                    let snap = self.shared.load();
                    let mut named: Vec<PathBuf> = diags
                        .0
                        .iter()
                        .map(|d| d.loc.file.clone())
                        .filter(|f| !snap.sources.contains(f))
                        .collect();
                    named.sort();
                    named.dedup();
                    named
                }
            };
            seen = if stamps(&old_sources) != before {
                info!("a watched file changed during the reload; it will be loaded again");
                before
            } else {
                stamps(&watched(&self.shared.load(), &also))
            };
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        }
    }

    async fn reload(&self, kind: ReloadKind) -> Result<(), Diagnostics> {
        use std::sync::atomic::Ordering::Relaxed;
        let old = self.shared.load_full();
        let result = match kind {
            ReloadKind::Full => load_blocking(self.path.clone(), Some(old.clone())).await,
            ReloadKind::Zones => rebuild_blocking(old.clone()).await,
        };
        let mut info = self.rt.reload_info();
        info.last_at = Some(SystemTime::now());
        let outcome = match result {
            Ok(snapshot) => {
                let (o, n) = (&old.server, &snapshot.server);
                if (&o.listen, o.udp_workers, o.tcp_max_connections, o.tcp_idle_timeout)
                    != (&n.listen, n.udp_workers, n.tcp_max_connections, n.tcp_idle_timeout)
                    || old.admin != snapshot.admin
                {
                    warn!(
                        "listen addresses, workers, TCP limits and the admin API apply after a restart"
                    );
                }
                let (zones, profiles) =
                    (snapshot.zones.zones().len(), snapshot.policies.profiles.len());
                let retired = snapshot.retired_from(&old);
                // Endpoints the new snapshot shares with the old one hold the same live
                // objects: every write made while it was built is already in it.
                self.shared.store(snapshot);
                self.rt.retire(retired);
                self.generation.send_modify(|g| *g += 1);
                self.rt.metrics.reloads.fetch_add(1, Relaxed);
                info.last_error = None;
                match kind {
                    ReloadKind::Full => info!(zones, profiles, "configuration reloaded"),
                    ReloadKind::Zones => info!(zones, "zones reloaded"),
                }
                Ok(())
            }
            Err(diags) => {
                for d in &diags.0 {
                    error!("{d}");
                }
                error!(
                    problems = diags.len(),
                    "reload failed; still serving the previous configuration"
                );
                self.rt.metrics.reload_failures.fetch_add(1, Relaxed);
                info.last_error = Some(diags.to_string());
                Err(diags)
            }
        };
        self.rt.set_reload_info(info);
        outcome
    }
}

/// Rebuilds the zones of `prev` under its own configuration, on the blocking pool.
async fn rebuild_blocking(prev: Arc<Snapshot>) -> Result<Snapshot, Diagnostics> {
    match tokio::task::spawn_blocking(move || state::rebuild_zones(&prev)).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Builds a snapshot on the blocking pool: zone files can be large, and parsing them must not
/// stall the runtime's workers (TCP connections are served there). Live objects are taken
/// from `prev` by key.
async fn load_blocking(
    path: PathBuf,
    prev: Option<Arc<Snapshot>>,
) -> Result<Snapshot, Diagnostics> {
    match tokio::task::spawn_blocking(move || state::load_with(&path, prev.as_deref())).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
