//! Wiring: the first snapshot, sockets, worker threads and tasks, reload, and shutdown order.
//! No domain logic lives here.

use crate::diag::Diagnostics;
use crate::server::{self, BindError, TcpLimits};
use crate::state::{self, Shared, Snapshot};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
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
            AppError::Bind(_) | AppError::Runtime(_) => 2,
            AppError::Usage(_) => 2,
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
    addrs: Vec<SocketAddr>,
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
    let snapshot = load_blocking(path.clone()).await.map_err(AppError::Config)?;
    let server = snapshot.config.server.clone();
    let workers = match server.udp_workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let bound = server::bind(&server.listen, workers)?;
    let shared = Arc::new(Shared::new(snapshot));

    let stop_udp = Arc::new(AtomicBool::new(false));
    let mut udp_threads = Vec::new();
    for (i, sock) in bound.udp.into_iter().enumerate() {
        let (shared, stop) = (shared.clone(), stop_udp.clone());
        let t = std::thread::Builder::new()
            .name(format!("udp-{i}"))
            .spawn(move || server::udp_worker(sock, shared, stop))?;
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
        tasks.spawn(server::tcp_acceptor(listener, shared.clone(), limits, stop_rx.clone()));
    }

    let (reload_tx, reload_rx) = mpsc::channel(4);
    let hup = if opts.reload_on_sighup {
        Some(tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?)
    } else {
        None
    };
    tasks.spawn(reloader(path, shared.clone(), reload_rx, hup, stop_rx));

    for addr in &bound.addrs {
        info!(%addr, udp_workers = workers, "serving DNS over UDP and TCP");
    }
    Ok(Running { shared, addrs: bound.addrs, stop_udp, stop, udp_threads, tasks, reload_tx })
}

impl Running {
    /// The addresses actually bound, one per configured listener.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
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

/// The one task that owns reloading, so two reloads never race to swap.
async fn reloader(
    path: PathBuf,
    shared: Arc<Shared>,
    mut requests: mpsc::Receiver<ReloadReply>,
    mut hup: Option<tokio::signal::unix::Signal>,
    mut stop: watch::Receiver<bool>,
) {
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
        };
        let result = reload(&path, &shared).await;
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }
}

async fn reload(path: &Path, shared: &Shared) -> Result<(), Diagnostics> {
    match load_blocking(path.to_path_buf()).await {
        Ok(snapshot) => {
            let old = shared.load();
            let (o, n) = (&old.config.server, &snapshot.config.server);
            if (&o.listen, o.udp_workers, o.tcp_max_connections, o.tcp_idle_timeout)
                != (&n.listen, n.udp_workers, n.tcp_max_connections, n.tcp_idle_timeout)
            {
                warn!(
                    "listen addresses, workers and TCP limits changed: they apply after a restart"
                );
            }
            let zones = snapshot.zones.zones().len();
            shared.store(snapshot);
            info!(zones, "configuration reloaded");
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
            Err(diags)
        }
    }
}

/// Builds a snapshot on the blocking pool: zone files can be large, and parsing them must not
/// stall the runtime's workers (TCP connections are served there).
async fn load_blocking(path: PathBuf) -> Result<Snapshot, Diagnostics> {
    match tokio::task::spawn_blocking(move || state::load(&path)).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
