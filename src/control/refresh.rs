//! Secondary mode: one task per zone that comes from primaries, keeping it current.
//!
//! At start, on the SOA's refresh timer and whenever a primary sends NOTIFY, the task asks
//! the primaries in turn for the zone's SOA; when one has a later serial it transfers the
//! zone (IXFR from the version being served when there is one, else AXFR; an IXFR that does
//! not apply falls back to AXFR), checks it, writes it to the zone's `file` (atomically: the
//! last good copy, which a restart serves from at once) and asks the reload task to rebuild
//! the zones. A failed or invalid transfer changes nothing but the zone's error record; the
//! next try comes after the SOA's retry. When no primary has answered for the SOA's expire,
//! the zone is marked expired and rebuilt as unavailable (SERVFAIL) until one answers again.
//!
//! The zone's data has one home, the copy on disk, read into the snapshot by the reload task
//! like any zone file; what this task learns (when, how, errors) lives in the zone's
//! `live::ZoneLive`.

use crate::config::Secondary;
use crate::dns::name::Name;
use crate::dns::tsig;
use crate::dns::xfr_in::{self, Ask, Received, XfrError};
use crate::live::ZoneLive;
use crate::state::{ReloadKind, ReloadRequest, Shared, Snapshot};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

/// How long one primary gets to answer an SOA query over UDP, and to accept a connection.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a transfer may wait for its next message, and take in all.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(15);
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(300);
/// Until the zone has an SOA of its own to take timers from: how soon to try again.
const PENDING_RETRY: Duration = Duration::from_secs(10);
/// The shortest timer an SOA may set; a zero refresh must not become a busy loop.
const MIN_TIMER: Duration = Duration::from_secs(1);

type Spec = crate::control::supervise::Bound<(Secondary, PathBuf), ZoneLive>;

/// Runs one refresh task per secondary zone of the current snapshot until `stop`.
pub async fn supervise(
    shared: Arc<Shared>,
    reloaded: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
    reload: mpsc::Sender<ReloadRequest>,
) {
    let plan = |snap: &Snapshot| -> HashMap<Name, Spec> {
        snap.secondaries
            .iter()
            .map(|s| {
                let spec = Spec { spec: (s.spec.clone(), s.file.clone()), live: s.live.clone() };
                (s.origin.clone(), spec)
            })
            .collect()
    };
    let start = |zone: &Name, b: &Spec| {
        let task = Task {
            zone: zone.clone(),
            spec: b.spec.0.clone(),
            file: b.spec.1.clone(),
            live: b.live.clone(),
            shared: shared.clone(),
            reload: reload.clone(),
        };
        Some(tokio::spawn(task.run()))
    };
    crate::control::supervise::supervise(shared.clone(), reloaded, stop, plan, start).await;
}

struct Task {
    zone: Name,
    spec: Secondary,
    file: PathBuf,
    live: Arc<ZoneLive>,
    shared: Arc<Shared>,
    reload: mpsc::Sender<ReloadRequest>,
}

/// What one refresh came to.
enum Outcome {
    /// A primary has our serial (or an older one).
    Current,
    /// A transfer was stored and is being served.
    Transferred { kind: &'static str, serial: u32, from: SocketAddr },
}

/// The SOA timers, clamped: refresh, retry, expire.
#[derive(Clone, Copy)]
struct Timers {
    refresh: Duration,
    retry: Duration,
    expire: Duration,
}

impl Timers {
    fn from_soa(soa: &[u8]) -> Timers {
        let (refresh, retry, expire) = xfr_in::soa_timers(soa);
        let d = |s: u32| Duration::from_secs(s as u64).max(MIN_TIMER);
        Timers { refresh: d(refresh), retry: d(retry), expire: d(expire) }
    }
}

impl Task {
    async fn run(self) {
        // The last timers seen: an expired zone is not in the snapshot to read them from.
        let mut timers: Option<Timers> = None;
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = self.live.wait_notify() => info!(zone = %self.zone, "NOTIFY: refreshing now"),
            }
            let snap = self.shared.load_full();
            let served = snap.zones.zones().iter().find(|z| *z.origin() == self.zone);
            if let Some(z) = served {
                timers = Some(Timers::from_soa(&z.soa_with(z.serial())));
            }
            let result = self.refresh(&snap).await;
            drop(snap);
            let now = SystemTime::now();
            let wait = match result {
                Ok(outcome) => {
                    {
                        let mut d = self.live.detail();
                        d.refreshed = Some(now);
                        d.last_error = None;
                        if let Outcome::Transferred { kind, from, .. } = &outcome {
                            d.transferred = Some(now);
                            d.kind = Some(kind);
                            d.from = Some(*from);
                            d.transfers += 1;
                        }
                    }
                    if let Outcome::Transferred { kind, serial, from } = outcome {
                        info!(zone = %self.zone, kind, serial, %from, "zone transferred");
                    }
                    // The copy's modification time is the last confirmation, for a restart.
                    touch(&self.file);
                    let was_expired = std::mem::take(&mut self.live.detail().expired);
                    if was_expired {
                        info!(zone = %self.zone, "a primary answered: serving the zone again");
                        let _ = self.rebuild().await;
                    }
                    let z = self.shared.load();
                    let served = z.zones.zones().iter().find(|z| *z.origin() == self.zone);
                    if let Some(z) = served {
                        timers = Some(Timers::from_soa(&z.soa_with(z.serial())));
                    }
                    timers.map_or(PENDING_RETRY, |t| t.refresh)
                }
                Err(e) => {
                    warn!(zone = %self.zone, error = %e, "zone refresh failed; keeping what we have");
                    let refreshed = {
                        let mut d = self.live.detail();
                        d.failures += 1;
                        d.last_error = Some(e);
                        d.failed = Some(now);
                        d.refreshed
                    };
                    match timers {
                        None => PENDING_RETRY,
                        Some(t) => {
                            let since = refreshed
                                .and_then(|r| now.duration_since(r).ok())
                                .unwrap_or_default();
                            let expired = self.live.expired();
                            if since >= t.expire && !expired {
                                warn!(zone = %self.zone, expire = ?t.expire, "no primary has answered for the SOA's expire: the zone answers SERVFAIL");
                                self.live.detail().expired = true;
                                let _ = self.rebuild().await;
                            }
                            // Wake at the expiry too, so it is not passed by a long retry.
                            let to_expiry = t.expire.saturating_sub(since);
                            if expired || to_expiry.is_zero() {
                                t.retry
                            } else {
                                t.retry.min(to_expiry)
                            }
                        }
                    }
                }
            };
            next = tokio::time::Instant::now() + wait;
        }
    }

    /// One refresh: each primary in turn until one answers.
    async fn refresh(&self, snap: &Snapshot) -> Result<Outcome, String> {
        let served = snap.zones.zones().iter().find(|z| *z.origin() == self.zone);
        let ours = served.map(|z| (z.serial(), z.soa_with(z.serial())));
        let key = match &self.spec.key {
            Some(name) => match snap.settings.keys.iter().find(|k| k.name == *name) {
                Some(k) => Some(k.clone()),
                None => return Err(format!("primary_key {name} is not configured")),
            },
            None => None,
        };
        let mut errors = Vec::new();
        for &primary in &self.spec.primaries {
            match self.from(primary, ours.as_ref(), key.as_ref()).await {
                Ok(o) => return Ok(o),
                Err(e) => errors.push(format!("{primary}: {e}")),
            }
        }
        Err(errors.join("; "))
    }

    /// Refreshes from one primary.
    async fn from(
        &self,
        primary: SocketAddr,
        ours: Option<&(u32, Box<[u8]>)>,
        key: Option<&tsig::Key>,
    ) -> Result<Outcome, String> {
        let theirs = soa(primary, &self.zone, key).await?;
        let serial = xfr_in::soa_serial(&theirs);
        if let Some((mine, _)) = ours
            && !crate::dns::xfr::serial_lt(*mine, serial)
        {
            if *mine != serial {
                warn!(zone = %self.zone, %primary, ours = mine, theirs = serial, "the primary's serial is older than ours; keeping ours");
            }
            return Ok(Outcome::Current);
        }
        // IXFR from the version being served, when there is one; AXFR when it cannot be
        // applied, or the primary will not do IXFR.
        if let Some((mine, soa)) = ours {
            match transfer(primary, &self.zone, Ask::Ixfr, Some((*mine, soa)), key).await {
                Ok(Received::Current) => return Ok(Outcome::Current),
                Ok(Received::Full(records)) => {
                    return self.store(records, "AXFR-style IXFR", primary).await;
                }
                Ok(Received::Incremental(steps)) => {
                    let snap = self.shared.load_full();
                    let base = snap.zones.zones().iter().find(|z| *z.origin() == self.zone);
                    match base.map(|z| xfr_in::apply(z, &steps)) {
                        Some(Ok(records)) if base.is_some_and(|z| z.serial() == *mine) => {
                            return self.store(records, "IXFR", primary).await;
                        }
                        Some(Err(e)) => {
                            warn!(zone = %self.zone, %primary, error = %e, "IXFR does not apply; trying AXFR");
                        }
                        _ => {}
                    }
                }
                Err(e) => {
                    info!(zone = %self.zone, %primary, error = %e, "IXFR failed; trying AXFR");
                }
            }
        }
        match transfer(primary, &self.zone, Ask::Axfr, None, key).await? {
            Received::Full(records) => self.store(records, "AXFR", primary).await,
            _ => Err("the AXFR answer was not a whole zone".into()),
        }
    }

    /// Writes a received zone as the copy and has it served; on any problem the copy before
    /// is put back and the old data keeps serving.
    async fn store(
        &self,
        records: Vec<Box<[u8]>>,
        kind: &'static str,
        from: SocketAddr,
    ) -> Result<Outcome, String> {
        let serial = xfr_in::soa_serial(&records[0]);
        let header = format!(
            "zone {} serial {serial}, {kind} from {from} at {}\nwritten by meridian (secondary mode): changes here are replaced by the next transfer",
            self.zone,
            humantime::format_rfc3339_seconds(SystemTime::now()),
        );
        let text = xfr_in::render(&self.zone, &records, &header);
        // The same checks as any zone file, before anything is replaced.
        let (zone, file) = (self.zone.clone(), self.file.clone());
        let checked = tokio::task::spawn_blocking(move || {
            crate::dns::zone::parse(&zone, &file, &text).map(|_| text)
        })
        .await
        .map_err(|e| e.to_string())?;
        let text = checked.map_err(|d| format!("the transferred zone is not valid: {d}"))?;
        let before = std::fs::read(&self.file).ok();
        write_atomically(&self.file, text.as_bytes())
            .map_err(|e| format!("cannot write the copy {}: {e}", self.file.display()))?;
        // A primary answered: an expired zone is served again by this very rebuild.
        let was_expired = std::mem::take(&mut self.live.detail().expired);
        if was_expired {
            info!(zone = %self.zone, "a primary answered: serving the zone again");
        }
        match self.rebuild().await {
            Ok(()) => Ok(Outcome::Transferred { kind, serial, from }),
            Err(e) => {
                self.live.detail().expired = was_expired;
                match before {
                    Some(b) => {
                        let _ = write_atomically(&self.file, &b);
                    }
                    None => {
                        let _ = std::fs::remove_file(&self.file);
                    }
                }
                Err(format!("the transferred zone could not be served: {e}"))
            }
        }
    }

    /// Asks the reload task to rebuild the zones, and waits for the outcome.
    async fn rebuild(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        let req = ReloadRequest { kind: ReloadKind::Zones, reply: tx };
        self.reload.send(req).await.map_err(|_| "shutting down".to_string())?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(d)) => Err(d.to_string()),
            Err(_) => Err("shutting down".into()),
        }
    }
}

/// Sets a file's modification time to now.
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Writes `bytes` to `path` so that a reader sees the old file or the new one, whole: a
/// temporary file beside it, synced, renamed over it.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".meridian-tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn rand_id() -> u16 {
    let mut b = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u16::from_be_bytes(b)
}

fn unix_now() -> u64 {
    crate::dns::cookie::unix_now() as u64
}

/// The zone's SOA as `primary` has it: over UDP, once more over TCP when truncated.
async fn soa(
    primary: SocketAddr,
    zone: &Name,
    key: Option<&tsig::Key>,
) -> Result<Box<[u8]>, String> {
    let req = xfr_in::request(rand_id(), zone, Ask::Soa, None, key, unix_now());
    let bind: SocketAddr =
        if primary.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
    let sock = tokio::net::UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    sock.connect(primary).await.map_err(|e| e.to_string())?;
    sock.send(&req.msg).await.map_err(|e| format!("SOA query: {e}"))?;
    let mut buf = vec![0u8; 65535];
    let deadline = tokio::time::Instant::now() + QUERY_TIMEOUT;
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(format!("SOA query: {e}")),
            Err(_) => return Err(format!("no answer to the SOA query in {QUERY_TIMEOUT:?}")),
        };
        let msg = &buf[..n];
        if n < 12 || msg[..2] != req.id.to_be_bytes() {
            continue; // not ours: a late answer to an earlier query
        }
        if msg[2] & 0x02 != 0 {
            break; // truncated: ask over TCP
        }
        return check_soa(&req, zone, msg, key);
    }
    let mut conn = connect(primary).await?;
    send(&mut conn, &req.msg).await?;
    let msg = receive(&mut conn).await?;
    check_soa(&req, zone, &msg, key)
}

fn check_soa(
    req: &xfr_in::Request,
    zone: &Name,
    msg: &[u8],
    key: Option<&tsig::Key>,
) -> Result<Box<[u8]>, String> {
    if let (Some(k), Some(mac)) = (key, req.mac) {
        tsig::ReplyCheck::new(k, mac).check(msg, unix_now()).map_err(|e| e.to_string())?;
    }
    xfr_in::soa_answer(req, zone, msg).map_err(|e| e.to_string())
}

async fn connect(primary: SocketAddr) -> Result<tokio::net::TcpStream, String> {
    match tokio::time::timeout(QUERY_TIMEOUT, tokio::net::TcpStream::connect(primary)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("cannot connect: {e}")),
        Err(_) => Err(format!("no TCP connection in {QUERY_TIMEOUT:?}")),
    }
}

async fn send(conn: &mut tokio::net::TcpStream, msg: &[u8]) -> Result<(), String> {
    let frame = [&(msg.len() as u16).to_be_bytes()[..], msg].concat();
    conn.write_all(&frame).await.map_err(|e| format!("cannot send: {e}"))
}

async fn receive(conn: &mut tokio::net::TcpStream) -> Result<Vec<u8>, String> {
    let read = async {
        let len = conn.read_u16().await? as usize;
        let mut msg = vec![0u8; len];
        conn.read_exact(&mut msg).await?;
        Ok::<_, std::io::Error>(msg)
    };
    match tokio::time::timeout(MESSAGE_TIMEOUT, read).await {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err("the primary closed the connection mid-transfer".into())
        }
        Ok(Err(e)) => Err(format!("reading the transfer: {e}")),
        Err(_) => Err(format!("no message for {MESSAGE_TIMEOUT:?}")),
    }
}

/// One AXFR or IXFR from `primary`, read whole and checked (TSIG on every message when the
/// zone has a key).
async fn transfer(
    primary: SocketAddr,
    zone: &Name,
    ask: Ask,
    ours: Option<(u32, &[u8])>,
    key: Option<&tsig::Key>,
) -> Result<Received, String> {
    let req = xfr_in::request(rand_id(), zone, ask, ours.map(|o| o.1), key, unix_now());
    let run = async {
        let mut conn = connect(primary).await?;
        send(&mut conn, &req.msg).await?;
        let mut stream = xfr_in::Stream::new(&req, zone, ours.map(|o| o.0));
        let mut check = key.zip(req.mac).map(|(k, mac)| tsig::ReplyCheck::new(k, mac));
        loop {
            let msg = receive(&mut conn).await?;
            if let Some(c) = check.as_mut() {
                c.check(&msg, unix_now()).map_err(|e| XfrError::from(e).to_string())?;
            }
            if stream.add(&msg).map_err(|e| e.to_string())? {
                break;
            }
        }
        if let Some(c) = &check {
            c.finish().map_err(|e| XfrError::from(e).to_string())?;
        }
        stream.finish().map_err(|e| e.to_string())
    };
    match tokio::time::timeout(TRANSFER_TIMEOUT, run).await {
        Ok(r) => r,
        Err(_) => Err(format!("the transfer took longer than {TRANSFER_TIMEOUT:?}")),
    }
}
