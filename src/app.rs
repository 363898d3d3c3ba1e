//! Wiring: the first snapshot, sockets, worker threads and tasks, reload, and shutdown order.
//! No domain logic lives here.

use crate::admin;
use crate::diag::Diagnostics;
use crate::server::{self, BindError, TcpLimits};
use crate::state::{self, Live, Shared, Snapshot};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
    Usage(#[from] crate::explain::ExplainError),
}

impl AppError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) => 1,
            AppError::Bind(_) | AppError::Runtime(_) | AppError::Usage(_) => 2,
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

type ReloadReply = oneshot::Sender<Result<(), Diagnostics>>;

/// A running server. Dropping it without [`Running::shutdown`] leaves its threads running
/// until the process exits.
#[derive(Debug)]
pub struct Running {
    shared: Arc<Shared>,
    live: Arc<Live>,
    addrs: Vec<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    ready: Arc<AtomicBool>,
    stop_udp: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    udp_threads: Vec<JoinHandle<()>>,
    tasks: JoinSet<()>,
    reload_tx: mpsc::Sender<ReloadReply>,
}

/// Loads the configuration, binds every listener and starts serving. Must be called inside a
/// tokio runtime.
pub async fn start(opts: Options) -> Result<Running, AppError> {
    let path = opts.config.clone();
    let live = Arc::new(Live::default());
    let snapshot = load_blocking(path.clone(), live.clone()).await.map_err(AppError::Config)?;
    let server = snapshot.config.server.clone();
    let admin_config = snapshot.config.admin.clone();
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
    *live.reload.lock().expect("not poisoned") =
        state::ReloadInfo { last_at: Some(SystemTime::now()), last_error: None };

    let stop_udp = Arc::new(AtomicBool::new(false));
    let mut udp_threads = Vec::new();
    for (i, sock) in bound.udp.into_iter().enumerate() {
        let (shared, live, stop) = (shared.clone(), live.clone(), stop_udp.clone());
        let t = std::thread::Builder::new()
            .name(format!("udp-{i}"))
            .spawn(move || server::udp_worker(sock, shared, live, stop))?;
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
            live.clone(),
            limits,
            stop_rx.clone(),
        ));
    }

    // Each applied reload bumps this generation, so the health supervisor re-plans its probes.
    let (generation, generation_rx) = watch::channel(0u64);
    tasks.spawn(crate::health::supervise(
        shared.clone(),
        live.clone(),
        generation_rx.clone(),
        stop_rx.clone(),
    ));
    tasks.spawn(crate::load::supervise(
        shared.clone(),
        live.clone(),
        generation_rx.clone(),
        stop_rx.clone(),
    ));
    tasks.spawn(crate::load::supervise_bursts(
        shared.clone(),
        live.clone(),
        generation_rx,
        stop_rx.clone(),
    ));
    tasks.spawn(expire_overrides(shared.clone(), live.clone(), stop_rx.clone()));

    let (reload_tx, reload_rx) = mpsc::channel(4);
    let hup = if opts.reload_on_sighup {
        Some(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?)
    } else {
        None
    };
    let reloader = Reloader { path, shared: shared.clone(), live: live.clone(), generation };
    tasks.spawn(reloader.run(reload_rx, hup, stop_rx.clone()));

    let ready = Arc::new(AtomicBool::new(false));
    if let Some(listener) = admin_listener {
        let ctx = Arc::new(admin::Context {
            shared: shared.clone(),
            live: live.clone(),
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
        live,
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

    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// Reloads the configuration and zones, exactly as SIGHUP does.
    pub async fn reload(&self) -> Result<(), Diagnostics> {
        let (tx, rx) = oneshot::channel();
        if self.reload_tx.send(tx).await.is_err() {
            return Ok(()); // shutting down
        }
        rx.await.unwrap_or(Ok(()))
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
    rt.block_on(async {
        let running = start(opts).await?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => info!("SIGINT received; shutting down"),
            _ = term.recv() => info!("SIGTERM received; shutting down"),
        }
        running.shutdown().await;
        Ok(())
    })
}

/// Lapses operators' overrides whose time is up, and samples answer counts for the status
/// page every 10 seconds.
async fn expire_overrides(shared: Arc<Shared>, live: Arc<Live>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut sample = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => admin::expire_overrides(&shared, &live),
            _ = sample.tick() => admin::sample_history(&live),
        }
    }
}

/// The one task that owns reloading, so two reloads never race to swap.
struct Reloader {
    path: PathBuf,
    shared: Arc<Shared>,
    live: Arc<Live>,
    generation: watch::Sender<u64>,
}

impl Reloader {
    async fn run(
        self,
        mut requests: mpsc::Receiver<ReloadReply>,
        mut hup: Option<tokio::signal::unix::Signal>,
        mut stop: watch::Receiver<bool>,
    ) {
        // With `watch = true`, the files are polled: a change of any modification time is a
        // reload. Polling needs no platform watcher and catches editors that replace files.
        let mut poll = tokio::time::interval(Duration::from_secs(1));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = watched_files(&self.shared.load());
        loop {
            let reply = tokio::select! {
                _ = stop.changed() => return,
                r = requests.recv() => match r {
                    Some(reply) => Some(reply),
                    None => return,
                },
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    info!("SIGHUP received; reloading");
                    None
                }
                _ = poll.tick() => {
                    if !self.shared.load().config.server.watch {
                        continue;
                    }
                    if watched_files(&self.shared.load()) == seen {
                        continue;
                    }
                    info!("a watched file changed; reloading");
                    None
                }
            };
            let result = self.reload().await;
            seen = watched_files(&self.shared.load());
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        }
    }

    async fn reload(&self) -> Result<(), Diagnostics> {
        use std::sync::atomic::Ordering::Relaxed;
        let result = load_blocking(self.path.clone(), self.live.clone()).await;
        let mut info = self.live.reload.lock().map(|g| g.clone()).unwrap_or_default();
        info.last_at = Some(SystemTime::now());
        let outcome = match result {
            Ok(snapshot) => {
                let old = self.shared.load();
                let (o, n) = (&old.config.server, &snapshot.config.server);
                if (&o.listen, o.udp_workers, o.tcp_max_connections, o.tcp_idle_timeout)
                    != (&n.listen, n.udp_workers, n.tcp_max_connections, n.tcp_idle_timeout)
                    || old.config.admin != snapshot.config.admin
                {
                    warn!(
                        "listen addresses, workers, TCP limits and the admin API apply after a restart"
                    );
                }
                let (zones, profiles) =
                    (snapshot.zones.zones().len(), snapshot.policies.profiles.len());
                self.shared.store(snapshot);
                self.generation.send_modify(|g| *g += 1);
                self.live.metrics.reloads.fetch_add(1, Relaxed);
                info.last_error = None;
                info!(zones, profiles, "configuration reloaded");
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
                self.live.metrics.reload_failures.fetch_add(1, Relaxed);
                info.last_error = Some(diags.to_string());
                Err(diags)
            }
        };
        if let Ok(mut g) = self.live.reload.lock() {
            *g = info;
        }
        outcome
    }
}

/// The modification times of the configuration, zone files and GeoIP database.
fn watched_files(snap: &Snapshot) -> Vec<Option<SystemTime>> {
    let c = &snap.config;
    std::iter::once(c.path.as_path())
        .chain(c.zones.iter().map(|z| z.file.as_path()))
        .chain(c.geoip.iter().map(|g| g.database.as_path()))
        .map(|p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// Builds a snapshot on the blocking pool: zone files can be large, and parsing them must not
/// stall the runtime's workers (TCP connections are served there).
async fn load_blocking(path: PathBuf, live: Arc<Live>) -> Result<Snapshot, Diagnostics> {
    match tokio::task::spawn_blocking(move || state::load_with(&path, &live)).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
