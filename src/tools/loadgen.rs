//! `meridian loadgen`: a DNS load generator that costs less per query than the servers it
//! measures, so that a run measures the server.
//!
//! One thread drives several connected UDP sockets (or TCP connections, pipelined). Queries
//! leave in batches (`sendmmsg`) and replies come back in batches (`recvmmsg`), through
//! [`sys::Batch`]; the clock is read once per batch, not per query. Each socket has its own
//! 65 536 query IDs: a slot per ID remembers which query it carries and when it left, so a
//! reply is matched by ID *and* question (anything else is counted as mismatched), and a
//! query unanswered after the timeout is counted lost. IDs are reused oldest-freed first, so
//! a late reply to a lost query almost never lands on a new one.
//!
//! Two ways to pace: closed loop (keep `outstanding` queries in flight, as dnsperf's `-q`),
//! or open loop (`rate` queries per second whatever the server does, as dnsperf's `-Q`, still
//! capped by `outstanding`). A run is always bounded: by its duration, and by a count if
//! given; afterwards it waits at most one timeout for the replies still in flight.

use crate::dns::zone::rdata::parse_type;
use crate::sys::{self, Batch};
use crate::traffic::geo::mmdb::parse_cidr;
use serde::Serialize;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

/// The largest reply read over UDP; longer ones are cut (and still matched by their header
/// and question).
const REPLY_SIZE: usize = 4096;
/// IDs per socket or connection.
const IDS: usize = 1 << 16;
/// The EDNS payload size advertised when OPT is sent.
const EDNS_PAYLOAD: u16 = 1232;

/// One line of the query file: its question section on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// QNAME (uncompressed, lower case as written), QTYPE, QCLASS IN.
    pub wire: Vec<u8>,
}

/// Problems in a file, each with its 1-based line.
pub type LineErrors = Vec<(usize, String)>;

/// Parses dnsperf's query format: one `NAME TYPE` per line (the type defaults to A), blank
/// lines and lines starting with `;` or `#` skipped. Errors carry their 1-based line.
pub fn parse_queries(text: &str) -> Result<Vec<Question>, LineErrors> {
    let (mut out, mut errors) = (Vec::new(), Vec::new());
    for (i, line) in content_lines(text) {
        let mut words = line.split_whitespace();
        let name = words.next().unwrap_or_default();
        let rtype = words.next().unwrap_or("A");
        if let Some(extra) = words.next() {
            errors.push((i + 1, format!("unexpected {extra:?}: a line is NAME [TYPE]")));
            continue;
        }
        let name = match crate::dns::name::Name::parse(name, Some(&crate::dns::name::Name::root()))
        {
            Ok(n) => n,
            Err(e) => {
                errors.push((i + 1, format!("invalid name {name:?}: {e}")));
                continue;
            }
        };
        let Some(code) = parse_type(rtype) else {
            errors.push((i + 1, format!("unknown record type {rtype:?}")));
            continue;
        };
        let mut wire = name.wire().to_vec();
        wire.extend_from_slice(&code.to_be_bytes());
        wire.extend_from_slice(&1u16.to_be_bytes());
        out.push(Question { wire });
    }
    if errors.is_empty() && out.is_empty() {
        errors.push((1, "no queries: write one NAME [TYPE] per line".into()));
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// Parses an EDNS Client Subnet as `ADDRESS/PREFIX` (host bits must be clear).
pub fn parse_subnet(text: &str) -> Result<(IpAddr, u8), String> {
    parse_cidr(text.trim())
}

/// Parses a subnet file for `--ecs-file`: one `ADDRESS/PREFIX` per line, comments as in the
/// query file. Errors carry their 1-based line.
pub fn parse_subnets(text: &str) -> Result<Vec<(IpAddr, u8)>, LineErrors> {
    let (mut out, mut errors) = (Vec::new(), Vec::new());
    for (i, line) in content_lines(text) {
        match parse_subnet(line) {
            Ok(s) => out.push(s),
            Err(e) => errors.push((i + 1, e)),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

/// The lines that say something, trimmed, with their 0-based index: blank lines and lines
/// starting with `;` or `#` (dnsperf's comments) are skipped.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .map(str::trim)
        .enumerate()
        .filter(|(_, l)| !(l.is_empty() || l.starts_with(';') || l.starts_with('#')))
}

/// What to send, where, and for how long.
#[derive(Debug, Clone)]
pub struct Options {
    pub server: SocketAddr,
    pub queries: Vec<Question>,
    /// Query `k` carries `ecs[k % len]` (and so OPT) when the list is not empty.
    pub ecs: Vec<(IpAddr, u8)>,
    /// Send OPT even without ECS.
    pub edns: bool,
    pub tcp: bool,
    /// UDP sockets, or TCP connections.
    pub sockets: usize,
    /// Queries in flight at most, over all sockets.
    pub outstanding: usize,
    /// Queries per second (open loop); `None` sends as fast as replies allow.
    pub rate: Option<f64>,
    pub duration: Duration,
    pub count: Option<u64>,
    /// After this long without a reply, a query is lost.
    pub timeout: Duration,
    /// Datagrams per system call.
    pub batch: usize,
}

impl Options {
    /// Checks the numbers a user gave; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.sockets == 0 || self.sockets > 256 {
            return Err(format!("--sockets must be 1 to 256, not {}", self.sockets));
        }
        if self.outstanding == 0 || self.outstanding > self.sockets * (IDS - 1) {
            return Err(format!(
                "--outstanding must be 1 to {} for {} sockets, not {}",
                self.sockets * (IDS - 1),
                self.sockets,
                self.outstanding
            ));
        }
        if self.batch == 0 || self.batch > 1024 {
            return Err(format!("--batch must be 1 to 1024, not {}", self.batch));
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0)
        {
            return Err(format!("--rate must be a positive number of queries per second, not {r}"));
        }
        if self.duration.is_zero() {
            return Err("--duration must be more than zero".into());
        }
        if self.timeout.is_zero() {
            return Err("--timeout must be more than zero".into());
        }
        if self.queries.is_empty() {
            return Err("no queries to send".into());
        }
        if self.count == Some(0) {
            return Err("--count must be at least 1".into());
        }
        Ok(())
    }
}

/// Latencies in a log-linear histogram of nanoseconds: exact below 64 ns, then 32 buckets per
/// power of two (each within about 3 % of its value), up to about 18 minutes.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const SUB: u32 = 5; // 2^5 = 32 buckets per power of two
const EXACT: u64 = 1 << (SUB + 1);

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; Self::index(u64::MAX >> 24) + 1], total: 0, max: 0 }
    }
}

impl Histogram {
    fn index(ns: u64) -> usize {
        if ns < EXACT {
            return ns as usize;
        }
        let e = 63 - ns.leading_zeros(); // ≥ SUB + 1
        let sub = (ns >> (e - SUB)) & ((1 << SUB) - 1);
        (EXACT + (e - SUB - 1) as u64 * (1 << SUB) + sub) as usize
    }

    /// The largest value bucket `i` holds.
    fn upper(i: usize) -> u64 {
        let i = i as u64;
        if i < EXACT {
            return i;
        }
        let e = (i - EXACT) / (1 << SUB) + SUB as u64 + 1;
        let sub = (i - EXACT) % (1 << SUB);
        let base = (1u64 << e) | (sub << (e - SUB as u64));
        base + (1u64 << (e - SUB as u64)) - 1
    }

    pub fn record(&mut self, ns: u64) {
        let ns = ns.min(u64::MAX >> 24);
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0..=1): the top of the bucket it falls in, so never
    /// under-stated by more than the bucket's width; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::upper(i).min(self.max);
            }
        }
        self.max
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// From the first query to when sending stopped, in seconds.
    pub seconds: f64,
    pub sent: u64,
    /// Replies matched to their query (by ID and question).
    pub answered: u64,
    /// Queries with no reply within the timeout (or still unanswered when the run ended).
    pub lost: u64,
    /// Replies that matched no query in flight: an unknown ID, another question, not a
    /// response, too short; a reply arriving after its query was counted lost is one too.
    pub mismatched: u64,
    /// Answers with TC set (UDP).
    pub truncated: u64,
    /// Answered per second over `seconds`.
    pub qps: f64,
    /// Answers by RCODE (the header's four bits), by name: `{"NOERROR": 10, …}`.
    pub rcodes: std::collections::BTreeMap<String, u64>,
    /// Round-trip times of the answered queries, microseconds.
    pub latency_us: Latency,
    /// System calls the kernel refused (sends and receives), and TCP connections lost.
    pub send_errors: u64,
    pub recv_errors: u64,
    pub reconnects: u64,
    /// The last such error, for the user to read.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Report {
    /// The human summary `meridian loadgen` prints.
    pub fn text(&self) -> String {
        let mut s = format!(
            "sent {}  answered {}  lost {}  mismatched {}  in {:.2} s\n\
             {:.0} queries per second answered\n\
             latency µs: p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}\n",
            self.sent,
            self.answered,
            self.lost,
            self.mismatched,
            self.seconds,
            self.qps,
            self.latency_us.p50,
            self.latency_us.p90,
            self.latency_us.p99,
            self.latency_us.p999,
            self.latency_us.max,
        );
        let rcodes: Vec<String> = self.rcodes.iter().map(|(k, v)| format!("{k} {v}")).collect();
        s += &format!(
            "rcodes: {}\n",
            if rcodes.is_empty() { "none".into() } else { rcodes.join("  ") }
        );
        if self.truncated > 0 {
            s += &format!("truncated (TC): {}\n", self.truncated);
        }
        if self.send_errors + self.recv_errors + self.reconnects > 0 {
            s += &format!(
                "errors: send {}  receive {}  reconnects {}  (last: {})\n",
                self.send_errors,
                self.recv_errors,
                self.reconnects,
                self.last_error.as_deref().unwrap_or("-")
            );
        }
        s
    }
}

fn rcode_name(code: u8) -> String {
    const NAMES: [&str; 11] = [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
        "NXRRSET", "NOTAUTH", "NOTZONE",
    ];
    NAMES.get(code as usize).map_or_else(|| format!("RCODE{code}"), |n| n.to_string())
}

/// A query in flight: `seq` (0 when the ID is free) tells it from an earlier query that had
/// the same ID.
#[derive(Clone, Copy, Default)]
struct Slot {
    seq: u64,
    /// Nanoseconds since the run started.
    sent: u64,
    /// Which question it asked, for matching the reply.
    question: u32,
}

/// One socket's IDs.
struct Flight {
    slots: Vec<Slot>,
    /// Free IDs, oldest-freed first.
    free: VecDeque<u16>,
    /// (ID, seq) in the order sent: the timeout is the same for all, so the oldest is first.
    order: VecDeque<(u16, u64)>,
    in_flight: usize,
}

impl Flight {
    fn new() -> Flight {
        Flight {
            slots: vec![Slot::default(); IDS],
            free: (0..IDS).map(|i| i as u16).collect(),
            order: VecDeque::new(),
            in_flight: 0,
        }
    }

    fn take(&mut self, seq: u64, sent: u64, question: u32) -> Option<u16> {
        let id = self.free.pop_front()?;
        self.slots[id as usize] = Slot { seq, sent, question };
        self.order.push_back((id, seq));
        self.in_flight += 1;
        Some(id)
    }

    fn release(&mut self, id: u16) {
        self.slots[id as usize].seq = 0;
        self.free.push_back(id);
        self.in_flight -= 1;
    }

    /// Counts as lost the queries sent at or before `before` that are still unanswered.
    fn expire(&mut self, before: u64, lost: &mut u64) {
        while let Some(&(id, seq)) = self.order.front() {
            let slot = self.slots[id as usize];
            if slot.seq != seq {
                self.order.pop_front(); // answered already
            } else if slot.sent <= before {
                self.order.pop_front();
                self.release(id);
                *lost += 1;
            } else {
                break;
            }
        }
    }
}

// Boxed batches: a connection is mostly its ID table anyway, and the variants stay alike.
enum Transport {
    Udp { sock: UdpSocket, tx: Box<Batch>, rx: Box<Batch> },
    Tcp { stream: Option<TcpStream>, out: Vec<u8>, written: usize, input: Vec<u8>, retry_at: u64 },
}

struct Conn {
    transport: Transport,
    flight: Flight,
}

/// The run's state: questions, counters, the histogram.
struct Run<'a> {
    opts: &'a Options,
    start: Instant,
    seq: u64,
    report: Report,
    rcodes: [u64; 16],
    latency: Histogram,
    /// A query under construction.
    scratch: Vec<u8>,
}

impl Run<'_> {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Writes query number `self.seq` with `id` into `buf`; returns its length and question.
    fn build(&mut self, id: u16) -> (usize, u32) {
        let opts = self.opts;
        let q = (self.seq % opts.queries.len() as u64) as u32;
        let ecs =
            (!opts.ecs.is_empty()).then(|| opts.ecs[(self.seq % opts.ecs.len() as u64) as usize]);
        let b = &mut self.scratch;
        b.clear();
        let opt = ecs.is_some() || opts.edns;
        b.extend_from_slice(&id.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, opt as u8]);
        b.extend_from_slice(&opts.queries[q as usize].wire);
        if opt {
            b.extend_from_slice(&[0, 0, 41]);
            b.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
            b.extend_from_slice(&[0, 0, 0, 0]);
            match ecs {
                None => b.extend_from_slice(&[0, 0]),
                Some((addr, prefix)) => {
                    let (family, octets): (u16, Vec<u8>) = match addr {
                        IpAddr::V4(a) => (1, a.octets().to_vec()),
                        IpAddr::V6(a) => (2, a.octets().to_vec()),
                    };
                    let n = (prefix as usize).div_ceil(8);
                    let len = 4 + n as u16;
                    b.extend_from_slice(&(4 + len).to_be_bytes());
                    b.extend_from_slice(&8u16.to_be_bytes());
                    b.extend_from_slice(&len.to_be_bytes());
                    b.extend_from_slice(&family.to_be_bytes());
                    b.extend_from_slice(&[prefix, 0]);
                    b.extend_from_slice(&octets[..n]);
                }
            }
        }
        (b.len(), q)
    }

    /// Matches one reply against `flight`, at `now`.
    fn reply(&mut self, flight: &mut Flight, msg: &[u8], now: u64) {
        if msg.len() < 12 || msg[2] & 0x80 == 0 || msg[4..6] != [0, 1] {
            self.report.mismatched += 1;
            return;
        }
        let id = u16::from_be_bytes([msg[0], msg[1]]);
        let slot = flight.slots[id as usize];
        let want = &self.opts.queries[slot.question as usize].wire;
        if slot.seq == 0 || msg.get(12..12 + want.len()) != Some(want.as_slice()) {
            self.report.mismatched += 1;
            return;
        }
        flight.release(id);
        self.report.answered += 1;
        self.rcodes[(msg[3] & 0x0f) as usize] += 1;
        if msg[2] & 0x02 != 0 {
            self.report.truncated += 1;
        }
        self.latency.record(now.saturating_sub(slot.sent));
    }

    fn error(&mut self, e: &io::Error, send: bool) {
        if send {
            self.report.send_errors += 1;
        } else {
            self.report.recv_errors += 1;
        }
        self.report.last_error = Some(e.to_string());
    }
}

fn connect_tcp(server: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&server, Duration::from_secs(2))?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Runs the load and reports. Errors only when the sockets cannot be set up at all; a server
/// that stops answering shows as lost queries and errors in the report.
pub fn run(opts: &Options) -> io::Result<Report> {
    opts.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let bind: SocketAddr = if opts.server.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let mut conns = Vec::with_capacity(opts.sockets);
    for _ in 0..opts.sockets {
        let transport = if opts.tcp {
            Transport::Tcp {
                stream: Some(connect_tcp(opts.server)?),
                out: Vec::new(),
                written: 0,
                input: Vec::new(),
                retry_at: 0,
            }
        } else {
            let sock = UdpSocket::bind(bind)?;
            sock.connect(opts.server)?;
            sock.set_nonblocking(true)?;
            Transport::Udp {
                sock,
                tx: Box::new(Batch::new(opts.batch, REPLY_SIZE, false)),
                rx: Box::new(Batch::new(opts.batch, REPLY_SIZE, false)),
            }
        };
        conns.push(Conn { transport, flight: Flight::new() });
    }
    let per_conn = opts.outstanding.div_ceil(opts.sockets).min(IDS - 1);
    let mut run = Run {
        opts,
        start: Instant::now(),
        seq: 0,
        report: Report::default(),
        rcodes: [0; 16],
        latency: Histogram::default(),
        scratch: Vec::with_capacity(512),
    };
    let duration = opts.duration.as_nanos() as u64;
    let timeout = opts.timeout.as_nanos() as u64;
    let mut stopped_at: Option<u64> = None;
    let mut next = 0usize; // the connection to send on first, round robin
    loop {
        let now = run.now();
        let in_flight: usize = conns.iter().map(|c| c.flight.in_flight).sum();
        if stopped_at.is_none() && (now >= duration || opts.count.is_some_and(|c| run.seq >= c)) {
            stopped_at = Some(now);
        }
        if let Some(at) = stopped_at
            && (in_flight == 0 || now >= at + timeout)
        {
            break;
        }
        let mut lost = 0;
        for c in &mut conns {
            c.flight.expire(now.saturating_sub(timeout), &mut lost);
        }
        run.report.lost += lost;

        // Send what pacing allows.
        let mut sent_now = 0usize;
        if stopped_at.is_none() {
            let mut allowed = opts.outstanding.saturating_sub(in_flight - lost as usize) as u64;
            if let Some(rate) = opts.rate {
                let due = (now as f64 / 1e9 * rate) as u64 + 1;
                allowed = allowed.min(due.saturating_sub(run.seq));
            }
            if let Some(count) = opts.count {
                allowed = allowed.min(count - run.seq);
            }
            for k in 0..conns.len() {
                if allowed == 0 {
                    break;
                }
                let i = (next + k) % conns.len();
                let n = send(
                    &mut run,
                    &mut conns[i],
                    allowed.min(opts.batch as u64) as usize,
                    per_conn,
                    now,
                );
                allowed -= n as u64;
                sent_now += n;
            }
            next = (next + 1) % conns.len();
        }

        // Take every reply that has arrived.
        let mut got = 0usize;
        for c in &mut conns {
            got += receive(&mut run, c, opts.server);
        }

        if sent_now == 0 && got == 0 {
            // Nothing to do until a reply arrives, the next query is due, or one times out.
            let mut wait = Duration::from_millis(1);
            if let (Some(rate), None) = (opts.rate, stopped_at) {
                let due_at = ((run.seq as f64) / rate * 1e9) as u64;
                wait = wait.min(Duration::from_nanos(due_at.saturating_sub(run.now())));
            }
            if !wait.is_zero() {
                let fds: Vec<BorrowedFd<'_>> = conns.iter().filter_map(|c| c.fd()).collect();
                if fds.is_empty() {
                    std::thread::sleep(wait);
                } else if let Err(e) = sys::wait_readable(&fds, wait) {
                    run.error(&e, false);
                }
            }
        }
    }
    let end = run.now();
    // Whatever is still in flight when the run gives up waiting is lost.
    run.report.lost += conns.iter().map(|c| c.flight.in_flight as u64).sum::<u64>();
    let seconds = stopped_at.unwrap_or(end) as f64 / 1e9;
    let r = &mut run.report;
    r.sent = run.seq;
    r.seconds = seconds;
    r.qps = if seconds > 0.0 { r.answered as f64 / seconds } else { 0.0 };
    for (code, &n) in run.rcodes.iter().enumerate() {
        if n > 0 {
            r.rcodes.insert(rcode_name(code as u8), n);
        }
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    let h = &run.latency;
    r.latency_us = Latency {
        p50: us(h.quantile(0.50)),
        p90: us(h.quantile(0.90)),
        p99: us(h.quantile(0.99)),
        p999: us(h.quantile(0.999)),
        max: us(h.max),
    };
    Ok(run.report)
}

impl Conn {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.transport {
            Transport::Udp { sock, .. } => Some(sock.as_fd()),
            Transport::Tcp { stream, .. } => stream.as_ref().map(|s| s.as_fd()),
        }
    }
}

/// Sends up to `n` queries on `c` (fewer when its IDs or its share of `outstanding` run out,
/// or a TCP connection is still writing); returns how many left.
fn send(run: &mut Run<'_>, c: &mut Conn, n: usize, per_conn: usize, now: u64) -> usize {
    let n = n.min(per_conn.saturating_sub(c.flight.in_flight));
    if n == 0 {
        return 0;
    }
    match &mut c.transport {
        Transport::Udp { sock, tx, .. } => {
            for _ in 0..n {
                let Some(id) = c.flight.free.front().copied() else { break };
                let (len, q) = run.build(id);
                let Some(slot) = tx.slot() else { break };
                slot[..len].copy_from_slice(&run.scratch[..len]);
                tx.push_connected(len);
                run.seq += 1;
                c.flight.take(run.seq, now, q);
            }
            let queued = tx.len();
            let (_, err) = tx.send(sock);
            // A datagram the kernel refused stays in flight and will count as lost.
            if let Some(e) = err {
                run.error(&e, true);
            }
            queued
        }
        Transport::Tcp { stream, out, written, retry_at, input } => {
            if stream.is_none() {
                if now < *retry_at {
                    return 0;
                }
                match connect_tcp(run.opts.server) {
                    Ok(s) => {
                        *stream = Some(s);
                        out.clear();
                        *written = 0;
                        input.clear();
                        run.report.reconnects += 1;
                    }
                    Err(e) => {
                        run.error(&e, true);
                        *retry_at = now + 100_000_000;
                        return 0;
                    }
                }
            }
            let Some(s) = stream.as_mut() else { return 0 };
            let mut queued = 0;
            // New queries only once the previous ones are all written: the kernel's send
            // buffer is what bounds the pipeline, not a queue of ours.
            if *written == out.len() {
                out.clear();
                *written = 0;
                for _ in 0..n {
                    let Some(id) = c.flight.free.front().copied() else { break };
                    let (len, q) = run.build(id);
                    out.extend_from_slice(&(len as u16).to_be_bytes());
                    out.extend_from_slice(&run.scratch[..len]);
                    run.seq += 1;
                    c.flight.take(run.seq, now, q);
                    queued += 1;
                }
            }
            while *written < out.len() {
                match s.write(&out[*written..]) {
                    Ok(0) => break,
                    Ok(k) => *written += k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // The queries on this connection will time out as lost.
                        run.error(&e, true);
                        *stream = None;
                        break;
                    }
                }
            }
            queued
        }
    }
}

/// Reads every reply waiting on `c`; returns how many arrived.
fn receive(run: &mut Run<'_>, c: &mut Conn, server: SocketAddr) -> usize {
    let mut got = 0;
    match &mut c.transport {
        Transport::Udp { sock, rx, .. } => loop {
            match rx.recv(sock, false) {
                Ok(n) => {
                    let now = run.now();
                    for i in 0..n {
                        // A connected socket only hears its server; checked anyway.
                        if rx.peer(i) == Some(server) {
                            run.reply(&mut c.flight, rx.data(i), now);
                        } else {
                            run.report.mismatched += 1;
                        }
                    }
                    got += n;
                    if n < rx.capacity() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // An ICMP error (nothing listening) surfaces here; the queries it
                    // concerns time out as lost.
                    run.error(&e, false);
                    break;
                }
            }
        },
        Transport::Tcp { stream, input, .. } => {
            let Some(s) = stream.as_mut() else { return 0 };
            let mut buf = [0u8; 16384];
            let mut closed = false;
            loop {
                match s.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(k) => input.extend_from_slice(&buf[..k]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        run.error(&e, false);
                        closed = true;
                        break;
                    }
                }
            }
            let now = run.now();
            let mut at = 0;
            while input.len() >= at + 2 {
                let len = u16::from_be_bytes([input[at], input[at + 1]]) as usize;
                if input.len() < at + 2 + len {
                    break;
                }
                run.reply(&mut c.flight, &input[at + 2..at + 2 + len], now);
                at += 2 + len;
                got += 1;
            }
            input.drain(..at);
            if closed {
                // Reconnected at the next send; what was in flight here times out as lost.
                *stream = None;
            }
        }
    }
    got
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_file_reads_as_dnsperf_writes_it() {
        let q = parse_queries(
            "; comment\nwww.example.com A\n\n# another\nexample.com. mx\nx.example\n",
        )
        .unwrap();
        assert_eq!(q.len(), 3);
        assert_eq!(&q[0].wire[..17], b"\x03www\x07example\x03com\x00");
        assert_eq!(&q[0].wire[17..], &[0, 1, 0, 1]);
        assert_eq!(&q[1].wire[13..], &[0, 15, 0, 1]);
        assert_eq!(&q[2].wire[11..], &[0, 1, 0, 1], "the type defaults to A");
        let errs = parse_queries("ok.example A\nbad..name A\nx.example NOPE\nx A B\n").unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|e| e.0).collect();
        assert_eq!(lines, vec![2, 3, 4], "{errs:?}");
        assert!(parse_queries("; nothing\n").is_err());
    }

    #[test]
    fn the_histogram_is_within_its_bucket_width() {
        for v in [0u64, 1, 63, 64, 65, 100, 1000, 12_345, 999_999, 5_000_000_000] {
            let i = Histogram::index(v);
            assert!(Histogram::upper(i) >= v, "{v}");
            assert!(
                i == 0 || Histogram::upper(i - 1) < v,
                "{v}: bucket {i} is not the first to hold it"
            );
            assert!(Histogram::upper(i) as f64 <= v as f64 * 1.032 + 1.0, "{v}");
        }
        let mut h = Histogram::default();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        for (q, want) in [(0.5, 500_000.0), (0.9, 900_000.0), (0.99, 990_000.0), (0.999, 999_000.0)]
        {
            let got = h.quantile(q) as f64;
            assert!(got >= want && got <= want * 1.032, "q{q}: {got}");
        }
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }

    #[test]
    fn an_ecs_query_carries_the_subnet_truncated_to_its_prefix() {
        let opts = Options {
            server: "127.0.0.1:53".parse().unwrap(),
            queries: parse_queries("a.example A\n").unwrap(),
            ecs: vec![
                parse_subnet("198.51.100.0/22").unwrap(),
                parse_subnet("2001:db8::/33").unwrap(),
            ],
            edns: false,
            tcp: false,
            sockets: 1,
            outstanding: 1,
            rate: None,
            duration: Duration::from_secs(1),
            count: None,
            timeout: Duration::from_secs(1),
            batch: 1,
        };
        let mut run = Run {
            opts: &opts,
            start: Instant::now(),
            seq: 0,
            report: Report::default(),
            rcodes: [0; 16],
            latency: Histogram::default(),
            scratch: Vec::new(),
        };
        for (seq, want) in [
            (0u64, vec![0u8, 1, 22, 0, 198, 51, 100]),
            (1, vec![0, 2, 33, 0, 0x20, 1, 0x0d, 0xb8, 0]),
        ] {
            run.seq = seq;
            let (len, _) = run.build(0x1234);
            let m = hickory_proto::op::Message::from_vec(&run.scratch[..len]).unwrap();
            assert_eq!(m.metadata.id, 0x1234);
            assert!(m.edns.is_some(), "OPT");
            // The option is the message's last bytes: code 8, length, then the data.
            let mut tail = vec![0u8, 8, 0, want.len() as u8];
            tail.extend_from_slice(&want);
            let raw = &run.scratch[len - tail.len()..len];
            assert_eq!(raw, &tail[..], "query {seq}");
        }
    }
}
