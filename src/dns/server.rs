//! Sockets: UDP workers and TCP connections. This module moves bytes; it decides no part of
//! an answer (that is [`crate::dns::resolve`]).
//!
//! UDP: one OS thread per worker, each with its own `SO_REUSEPORT` socket so the kernel spreads
//! datagrams across them, each receiving a batch at a time into its own buffers
//! ([`crate::sys::Batch`]) and calling `resolve` inline for each datagram. No task is spawned
//! and nothing is allocated per datagram.
//!
//! TCP (RFC 7766): one tokio task per connection, queries read as length-prefixed frames and
//! answered in order as they arrive (pipelining), under a connection limit and an idle timeout
//! so that slow or silent clients cannot hold resources for long.

use crate::control::runtime::Runtime;
use crate::dns::metrics::LATENCY_SAMPLE;
use crate::dns::resolve::{Request, RrlKey, Transport, resolve};
use crate::state::{Shared, Snapshot};
use crate::sys::Batch;
use crate::traffic::policy::Rng;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::{debug, warn};

/// Datagrams a UDP worker takes (and answers) per system call, at most.
const UDP_BATCH: usize = 32;
/// The longest UDP query read whole; longer datagrams are cut (and get FORMERR).
const UDP_QUERY: usize = 4096;
/// The longest UDP answer: the largest `udp_payload` the configuration accepts.
const UDP_ANSWER: usize = crate::config::MAX_UDP_PAYLOAD as usize;
/// How often a UDP worker wakes up to check for shutdown when no datagram arrives.
const UDP_POLL: Duration = Duration::from_millis(200);
/// The largest DNS message (and so the largest TCP frame).
const MAX_MESSAGE: usize = 65_535;
/// The answer buffer a TCP connection starts with; a larger answer grows it to the largest.
const FIRST_TCP_ANSWER: usize = 4096;

/// A socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {proto} {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub proto: &'static str,
    #[source]
    pub source: io::Error,
}

/// Bound sockets, ready to serve.
#[derive(Debug)]
pub struct Bound {
    pub udp: Vec<UdpSocket>,
    pub tcp: Vec<TcpListener>,
    /// The address each configured listener ended up on (port 0 resolved).
    pub addrs: Vec<SocketAddr>,
}

/// Binds, for each address, `udp_workers` UDP sockets and one TCP listener on the same port.
/// A port of 0 picks a free port shared by UDP and TCP (used by tests).
pub fn bind(listen: &[SocketAddr], udp_workers: usize) -> Result<Bound, BindError> {
    let mut bound = Bound { udp: Vec::new(), tcp: Vec::new(), addrs: Vec::new() };
    for &addr in listen {
        let mut attempt = 0;
        let (first, tcp, actual) = loop {
            attempt += 1;
            let first =
                udp_socket(addr).map_err(|source| BindError { addr, proto: "udp", source })?;
            let actual =
                first.local_addr().map_err(|source| BindError { addr, proto: "udp", source })?;
            match tcp_listener(actual) {
                Ok(tcp) => break (first, tcp, actual),
                // The kernel's free UDP port may be taken for TCP; pick another pair.
                Err(e)
                    if addr.port() == 0 && attempt < 20 && e.kind() == io::ErrorKind::AddrInUse =>
                {
                    continue;
                }
                Err(source) => {
                    return Err(BindError { addr: actual, proto: "tcp", source });
                }
            }
        };
        bound.udp.push(first);
        for _ in 1..udp_workers.max(1) {
            let s = udp_socket(actual).map_err(|source| BindError {
                addr: actual,
                proto: "udp",
                source,
            })?;
            bound.udp.push(s);
        }
        bound.tcp.push(tcp);
        bound.addrs.push(actual);
    }
    Ok(bound)
}

fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_port(true)?;
    // A larger receive buffer absorbs bursts while a worker is busy; the kernel caps it.
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    s.set_read_timeout(Some(UDP_POLL))?;
    let s: UdpSocket = s.into();
    if addr.ip().is_unspecified() {
        crate::sys::enable_pktinfo(&s, addr.is_ipv6())?;
    }
    // Not fatal: without it answers still go out, with DF set and the path MTU tracked.
    if let Err(e) = crate::sys::omit_path_mtu(&s, addr.is_ipv6()) {
        tracing::warn!(%addr, "could not turn path MTU discovery off on the UDP socket: {e}");
    }
    Ok(s)
}

fn tcp_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Serves UDP on `sock` until `stop` is set. Runs on its own OS thread.
///
/// Datagrams are taken in batches: one `recvmmsg` waits for the first and takes whatever else
/// has already arrived (never waiting for a batch to fill, so a lone query is answered as fast
/// as before), every one is answered in turn, and the answers leave in one `sendmmsg`.
pub fn udp_worker(sock: UdpSocket, shared: Arc<Shared>, rt: Arc<Runtime>, stop: Arc<AtomicBool>) {
    // A socket on a wildcard address answers from the address each query was sent to.
    let pktinfo = sock.local_addr().is_ok_and(|a| a.ip().is_unspecified());
    let mut queries = Batch::new(UDP_BATCH, UDP_QUERY, pktinfo);
    let mut answers = Batch::new(UDP_BATCH, UDP_ANSWER, pktinfo);
    let mut turn = UdpTurn::new(Rng::from_entropy());
    while !stop.load(Ordering::Relaxed) {
        let n = match queries.recv(&sock, true) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                continue;
            }
            Err(e) => {
                // Errors here are per-datagram (an ICMP error reported late, a signal); the
                // socket itself stays usable.
                debug!(error = %e, "udp receive failed");
                continue;
            }
        };
        let snap = shared.load();
        for i in 0..n {
            let Some(peer) = queries.peer(i) else { continue };
            let Some(out) = answers.slot() else { break };
            // A datagram cut at UDP_QUERY bytes is answered as the malformed message it now is
            // (FORMERR); no DNS query is that long.
            if let Some(len) = turn.answer(&snap, &rt, queries.data(i), peer, out) {
                answers.push(len, peer, queries.local(i));
            }
        }
        drop(snap);
        if answers.is_empty() {
            continue;
        }
        if let (_, Some(e)) = answers.send(&sock) {
            debug!(error = %e, "udp send failed");
        }
    }
}

/// Everything a UDP worker does with one datagram between receiving and sending it: resolve,
/// count (metrics and the latency histogram), rate-limit (drop or slip) and, when sampled, log.
/// Kept apart from the socket loop so that the allocation test measures exactly the per-query
/// work of the server, not only `resolve`.
#[derive(Debug)]
pub struct UdpTurn {
    rng: Rng,
    /// Response rate limiting: this worker's own table, built when the configuration asks for
    /// it (and rebuilt if a reload changes its settings).
    limiter: Option<crate::dns::rrl::Limiter>,
    epoch: Instant,
    /// Answers computed, for timing one in `LATENCY_SAMPLE`.
    answered: u32,
}

impl UdpTurn {
    pub fn new(rng: Rng) -> UdpTurn {
        UdpTurn { rng, limiter: None, epoch: Instant::now(), answered: 0 }
    }

    /// Answers `query` from `peer` into `out`; returns the length to send, or `None` when
    /// nothing is sent (no answer, or dropped by rate limiting).
    pub fn answer(
        &mut self,
        snap: &Snapshot,
        rt: &Runtime,
        query: &[u8],
        peer: SocketAddr,
        out: &mut [u8],
    ) -> Option<usize> {
        let req = Request { src: peer.ip(), transport: Transport::Udp, now: clock(snap) };
        if crate::dns::xfr::is_notify(query)
            && let Some(len) = notify(snap, query, peer, req.now, out)
        {
            return Some(len);
        }
        // One answer in LATENCY_SAMPLE is timed (and every one that is logged).
        let log = snap.server.query_log > 0.0 && self.rng.unit() < snap.server.query_log;
        let timed = self.answered.is_multiple_of(LATENCY_SAMPLE);
        self.answered = self.answered.wrapping_add(1);
        let started = (timed || log).then(Instant::now);
        let answer = resolve(snap, query, req, &mut self.rng, out);
        let took = started.map(|t| t.elapsed());
        rt.metrics.record(Transport::Udp, answer, took.filter(|_| timed));
        let answer = answer?;
        let mut len = answer.len;
        // A valid server cookie proves the source address is not spoofed: nothing to limit.
        if let Some(cfg) = snap.server.rrl
            && !answer.cookie
        {
            if self.limiter.as_ref().is_none_or(|l| l.config() != cfg) {
                self.limiter = Some(crate::dns::rrl::Limiter::new(cfg));
            }
            let key = answer.rrl_name(out);
            let class = match answer.rrl {
                RrlKey::Error => crate::dns::rrl::ERRORS,
                _ => answer.rcode,
            };
            let second = self.epoch.elapsed().as_secs() as u32;
            let verdict = self.limiter.as_mut().map(|l| l.check(peer.ip(), key, class, second));
            match verdict {
                Some(crate::dns::rrl::Verdict::Drop) => {
                    rt.metrics.rrl(true);
                    return None;
                }
                Some(crate::dns::rrl::Verdict::Slip) => {
                    rt.metrics.rrl(false);
                    len = crate::dns::rrl::slip(out, answer.question_len);
                }
                _ => {}
            }
        }
        // Formatting a log line allocates; it happens only for the sampled share.
        if log {
            log_query(peer, Transport::Udp, &out[..len], took.unwrap_or_default());
        }
        Some(len)
    }
}

/// A NOTIFY for one of our secondary zones, answered; an accepted one wakes the zone's
/// refresh task.
fn notify(
    snap: &Snapshot,
    query: &[u8],
    peer: SocketAddr,
    now: u32,
    out: &mut [u8],
) -> Option<usize> {
    let (len, zone) = crate::dns::xfr::notify_in(snap, query, peer.ip(), now, out)?;
    if let Some(i) = zone {
        snap.secondaries[i].live.notified();
    }
    Some(len)
}

/// TCP limits from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
}

/// Accepts TCP connections until `stop` changes, then lets open connections finish the query
/// they are answering (bounded by the idle timeout) and closes them.
pub async fn tcp_acceptor(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    rt: Arc<Runtime>,
    limits: TcpLimits,
    mut stop: watch::Receiver<bool>,
) {
    // The semaphore bounds open connections: past the limit a new connection is closed at once,
    // which tells the client to retry elsewhere instead of leaving it waiting in the backlog.
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let (shared, rt, stop) = (shared.clone(), rt.clone(), stop.clone());
                        conns.spawn(async move {
                            connection(stream, &shared, &rt, limits.idle_timeout, stop).await;
                            drop(permit);
                        });
                    }
                    Err(_) => debug!(%peer, "tcp connection limit reached; closing new connection"),
                },
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    let drain = async { while conns.join_next().await.is_some() {} };
    if timeout(limits.idle_timeout, drain).await.is_err() {
        conns.abort_all();
    }
}

/// The clock DNS cookies and TSIG are checked against, read only when one of them is
/// configured.
fn clock(snap: &Snapshot) -> u32 {
    if snap.settings.cookies.is_some() || !snap.settings.keys.is_empty() {
        crate::dns::cookie::unix_now()
    } else {
        0
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    shared: &Shared,
    rt: &Runtime,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let Ok(peer) = stream.peer_addr() else { return };
    let mut rng = Rng::from_entropy();
    // Answers on this connection, for timing one in LATENCY_SAMPLE.
    let mut answered: u32 = 0;
    let (rd, mut wr) = stream.into_split();
    // Buffers grow as the connection needs them: most queries and answers are small, and an
    // idle connection should not hold 128 KiB (issue 12 item 6).
    let mut rd = BufReader::with_capacity(2048, rd);
    let mut query: Vec<u8> = Vec::new();
    let mut out = vec![0u8; 2 + FIRST_TCP_ANSWER];
    if *stop.borrow() {
        return;
    }
    loop {
        let len = tokio::select! {
            biased;
            _ = stop.changed() => return,
            r = timeout(idle, rd.read_u16()) => match r {
                Ok(Ok(len)) => len as usize,
                // Idle past the timeout, closed by the client, or reset.
                _ => return,
            },
        };
        if len < 12 {
            // Too short to hold a DNS header: the stream cannot be trusted to be in frame.
            return;
        }
        if query.len() < len {
            query.resize(len, 0);
        }
        // A frame that stops arriving mid-way is cut off at the idle timeout.
        match timeout(idle, rd.read_exact(&mut query[..len])).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        // A zone transfer: built off the runtime's threads (a zone can be large), then written
        // message by message.
        if crate::dns::xfr::is_transfer(&query[..len]) {
            let snap = shared.load_full();
            let q = query[..len].to_vec();
            let ip = peer.ip();
            let built = tokio::task::spawn_blocking(move || {
                let mut rng = Rng::from_entropy();
                crate::dns::xfr::answer(&snap, &q, ip, clock(&snap), &mut rng)
            })
            .await;
            match built {
                Ok(Some(messages)) => {
                    for m in messages {
                        let frame = [&(m.len() as u16).to_be_bytes()[..], &m].concat();
                        match timeout(idle, wr.write_all(&frame)).await {
                            Ok(Ok(())) => {}
                            _ => return,
                        }
                    }
                    continue;
                }
                // Not allowed: answered below, as any query for AXFR/IXFR is.
                Ok(None) => {}
                Err(_) => return,
            }
        }
        if crate::dns::xfr::is_notify(&query[..len]) {
            let snap = shared.load();
            if let Some(n) = notify(&snap, &query[..len], peer, clock(&snap), &mut out[2..]) {
                drop(snap);
                out[..2].copy_from_slice(&(n as u16).to_be_bytes());
                match timeout(idle, wr.write_all(&out[..2 + n])).await {
                    Ok(Ok(())) => continue,
                    _ => return,
                }
            }
        }
        let answer = {
            // The snapshot guard is dropped before the next await.
            let snap = shared.load();
            let timed = answered.is_multiple_of(LATENCY_SAMPLE);
            answered = answered.wrapping_add(1);
            let started = Instant::now();
            let req = Request { src: peer.ip(), transport: Transport::Tcp, now: clock(&snap) };
            let mut answer = resolve(&snap, &query[..len], req, &mut rng, &mut out[2..]);
            if answer.is_some_and(|a| a.truncated) && out.len() < 2 + MAX_MESSAGE {
                // Over TCP an answer is never cut: with the largest buffer, once more (the
                // connection keeps it).
                out.resize(2 + MAX_MESSAGE, 0);
                answer = resolve(&snap, &query[..len], req, &mut rng, &mut out[2..]);
            }
            let took = started.elapsed();
            rt.metrics.record(Transport::Tcp, answer, Some(took).filter(|_| timed));
            answer.map(|a| (a, took))
        };
        let Some((answer, took)) = answer else { continue };
        out[..2].copy_from_slice(&(answer.len as u16).to_be_bytes());
        let sample = shared.load().server.query_log;
        if sample > 0.0 && rng.unit() < sample {
            log_query(peer, Transport::Tcp, &out[2..2 + answer.len], took);
        }
        match timeout(idle, wr.write_all(&out[..2 + answer.len])).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

/// Logs one answered query (sampled by `query_log`), decoded from the answer itself: client,
/// question, rcode and records. Off the hot path's budget: only sampled queries get here.
fn log_query(peer: SocketAddr, transport: Transport, answer: &[u8], took: Duration) {
    let Ok(m) = hickory_proto::op::Message::from_vec(answer) else { return };
    let Some(q) = m.queries.first() else { return };
    let records: Vec<String> =
        m.answers.iter().map(|r| format!("{} {}", r.record_type(), r.data)).collect();
    tracing::info!(
        target: "meridian::query",
        client = %peer.ip(),
        name = %q.name(),
        qtype = %q.query_type(),
        transport = if transport == Transport::Udp { "udp" } else { "tcp" },
        rcode = crate::dns::resolve::rcode::name(u16::from(m.metadata.response_code)),
        answers = %records.join(", "),
        micros = took.as_micros() as u64,
        "query"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_udp_sockets_ignore_path_mtu_information() {
        for (listen, v6, omit) in [
            ("127.0.0.1:0", false, libc::IP_PMTUDISC_OMIT),
            ("0.0.0.0:0", false, libc::IP_PMTUDISC_OMIT),
            ("[::1]:0", true, libc::IPV6_PMTUDISC_OMIT),
        ] {
            let addr: SocketAddr = listen.parse().unwrap();
            let Ok(bound) = bind(&[addr], 2) else {
                assert!(v6, "cannot bind {listen}");
                continue; // no IPv6 here
            };
            assert_eq!(bound.udp.len(), 2);
            for s in &bound.udp {
                assert_eq!(crate::sys::path_mtu_mode(s, v6).unwrap(), omit, "{listen}");
            }
            // A plain socket keeps the kernel's default, so the check above can tell.
            let plain = UdpSocket::bind(addr).unwrap();
            assert_ne!(crate::sys::path_mtu_mode(&plain, v6).unwrap(), omit, "{listen}");
        }
    }
}
