//! Test harness: temporary directories, an in-process server on 127.0.0.1:0, and a DNS client
//! built on hickory-proto (an implementation independent of Meridian's own encoder) that
//! renders answers as text so tests compare whole answers.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, Record, RecordType};
use meridian::app::{Options, Running, start};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long a test waits for any single answer before calling it lost.
pub const ANSWER_WAIT: Duration = Duration::from_secs(3);

/// The repository root (where the shipped config and zones live).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "meridian-it-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A zone with answers too large for UDP: 40 A records (640 bytes of answer, over the 512
/// limit without EDNS) and 60 long TXT records (over the 1232-byte EDNS limit).
pub fn big_zone() -> String {
    let mut z = String::from(
        "$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\n",
    );
    for i in 0..40 {
        z.push_str(&format!("a40 A 198.51.100.{i}\n"));
    }
    for i in 0..60 {
        z.push_str(&format!("txt TXT \"record {i:02} padded to be long enough for the test\"\n"));
    }
    z
}

/// The GeoIP fixture, as CSV: built into an MMDB by Meridian's own writer for each test.
pub const GEO_CSV: &str = "cidr,country,continent,subdivision,lat,lon
10.1.0.0/16,DE,EU,DE-HE,50.11,8.68
10.2.0.0/16,US,NA,US-WA,47.61,-122.33
10.3.0.0/16,US,NA,US-TX,29.76,-95.37
10.4.0.0/16,JP,AS,,35.68,139.77
2001:db8:4::/48,DE,EU,,,
";

/// Traffic-managed names in `tm.test.`, one or more per routing method.
pub const PROFILES: &str = r#"
[[profile]]
name = "prio.tm.test."
method = "priority"
ttl = 30
[[profile.endpoint]]
name = "a"
address = ["192.0.2.1", "2001:db8::1"]
priority = 1
[[profile.endpoint]]
name = "b"
address = "192.0.2.2"
priority = 2

[[profile]]
name = "sticky.tm.test."
method = "weighted"
sticky = "client-subnet"
[[profile.endpoint]]
name = "x"
address = "198.51.100.1"
[[profile.endpoint]]
name = "y"
address = "198.51.100.2"
weight = 3

[[profile]]
name = "geo.tm.test."
method = "geographic"
[[profile.endpoint]]
name = "eu"
address = "192.0.2.11"
geo = ["GEO-EU"]
[[profile.endpoint]]
name = "us"
address = "192.0.2.12"
geo = ["US"]
[[profile.endpoint]]
name = "wa"
address = "192.0.2.13"
geo = ["US-WA"]
[[profile.endpoint]]
name = "world"
address = "192.0.2.14"
geo = ["WORLD"]

[[profile]]
name = "perf.tm.test."
method = "performance"
[[profile.endpoint]]
name = "ams"
address = "192.0.2.21"
location = "westeurope"
[[profile.endpoint]]
name = "sea"
address = "192.0.2.22"
location = [47.6, -122.3]

[[profile]]
name = "multi.tm.test."
method = "multivalue"
max_answers = 2
[[profile.endpoint]]
name = "m1"
address = "192.0.2.41"
[[profile.endpoint]]
name = "m2"
address = "192.0.2.42"
[[profile.endpoint]]
name = "m3"
address = "192.0.2.43"

[[profile]]
name = "subnet.tm.test."
method = "subnet"
[[profile.endpoint]]
name = "office"
address = "192.0.2.31"
subnets = ["10.0.0.0/8"]
[[profile.endpoint]]
name = "internet"
address = "192.0.2.32"

[[profile]]
name = "alias.tm.test."
method = "priority"
[[profile.endpoint]]
name = "in-zone"
cname = "target.tm.test."
[[profile.endpoint]]
name = "elsewhere"
cname = "app.example.net."

[[profile]]
name = "nested.tm.test."
method = "priority"
[[profile.endpoint]]
name = "child"
profile = "child.nested.tm.test."
min_child_endpoints = 2
[[profile.endpoint]]
name = "backup"
address = "192.0.2.52"

[[profile]]
name = "child.nested.tm.test."
method = "priority"
[[profile.endpoint]]
name = "c1"
address = "192.0.2.50"
[[profile.endpoint]]
name = "c2"
address = "192.0.2.51"

[[profile]]
name = "down.tm.test."
method = "priority"
when_all_down = "servfail"
[[profile.endpoint]]
name = "only"
address = "192.0.2.60"

[[profile]]
name = "split.tm.test."
method = "priority"
[[profile.view]]
name = "internal"
networks = ["10.0.0.0/8"]
[[profile.endpoint]]
name = "app"
address = ["192.0.2.80", "2001:db8::80"]
views = { internal = ["10.80.0.1", "fd00::80"] }

[[profile]]
name = "burst.tm.test."
method = "priority"
[profile.burst]
primary = "onprem"
overflow = ["cloud"]
warm_at = 0.6
burst_at = 0.8
release_at = 0.5
sticky = "client-subnet"
transition_ttl = 5
[[profile.endpoint]]
name = "onprem"
address = "192.0.2.70"
[profile.endpoint.load]
source = "push"
capacity = 100
[[profile.endpoint]]
name = "cloud"
address = "192.0.2.71"
"#;

/// Writes a configuration serving the demo zone, `big.test.` and the traffic-managed
/// `tm.test.` (with a GeoIP database built from [`GEO_CSV`]) on 127.0.0.1:0, with extra
/// `[server]` lines, and returns its path.
/// A loopback port free for both UDP and TCP (bound, then released: the kernel does not hand
/// it out again at once), for a server that must be told its port before it starts.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port free for both UDP and TCP in 100 tries");
}

/// A BIND key file for a new hmac-sha256 key named `name`, made by `tsig-keygen`.
pub fn tsig_keygen(name: &str) -> String {
    let out = std::process::Command::new("/usr/sbin/tsig-keygen")
        .args(["-a", "hmac-sha256", name])
        .output()
        .expect("tsig-keygen is installed by the test command (package bind9)");
    assert!(out.status.success(), "tsig-keygen: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

pub fn write_config(dir: &TempDir, server_extra: &str) -> PathBuf {
    write_config_with(dir, server_extra, "")
}

/// [`write_config`] with more `[[profile]]` tables in `tm.test.` after [`PROFILES`].
pub fn write_config_with(dir: &TempDir, server_extra: &str, profiles: &str) -> PathBuf {
    let demo = repo().join("zones/app.example.com.zone");
    dir.write("big.test.zone", &big_zone());
    dir.write(
        "tm.test.zone",
        "$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\ntarget A 192.0.2.99\n",
    );
    let rows = meridian::traffic::geo::mmdb::parse_csv(GEO_CSV).unwrap();
    std::fs::write(
        dir.path().join("geo.mmdb"),
        meridian::traffic::geo::mmdb::build(&rows, "Test", 1),
    )
    .unwrap();
    dir.write(
        "meridian.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nudp_workers = 2\n{server_extra}\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\
             [geoip]\ndatabase = \"geo.mmdb\"\n\
             [[zone]]\nname = \"app.example.com.\"\nfile = \"{}\"\n\
             [[zone]]\nname = \"big.test.\"\nfile = \"big.test.zone\"\n\
             [[zone]]\nname = \"tm.test.\"\nfile = \"tm.test.zone\"\n{PROFILES}{profiles}",
            demo.display()
        ),
    )
}

/// Builds a query carrying EDNS Client Subnet for `subnet` (`ADDR/PREFIX`).
pub fn query_ecs(name: &str, rtype: &str, subnet: &str) -> Message {
    use hickory_proto::rr::rdata::opt::ClientSubnet;
    let (a, p) = subnet.split_once('/').unwrap();
    let mut m = query(name, rtype, Some(1232));
    let e = m.edns.as_mut().unwrap();
    e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
        a.parse().unwrap(),
        p.parse().unwrap(),
        0,
    )));
    m
}

/// A server running in this process.
pub struct TestServer {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub dir: TempDir,
    _watchdog: Watchdog,
}

/// The longest a test may keep a server running. Every wait in the tests is bounded, so only
/// a bug (a hang) gets here; then the whole test binary is stopped with a message naming the
/// server, so that CI fails at once instead of stalling until its own limit (the test
/// command counts a binary that printed no result as failed).
pub const TEST_LIMIT: Duration = Duration::from_secs(240);

/// Aborts the process if its server outlives [`TEST_LIMIT`]; disarmed on drop.
struct Watchdog(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Watchdog {
    fn arm(addr: SocketAddr) -> Watchdog {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let test = std::thread::current().name().unwrap_or("?").to_string();
        std::thread::spawn(move || {
            let until = std::time::Instant::now() + TEST_LIMIT;
            while std::time::Instant::now() < until {
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            eprintln!(
                "error: test {test} kept its server ({addr}) running for more than {TEST_LIMIT:?}: a hang; stopping the test binary"
            );
            std::process::abort();
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with("").await
    }

    pub async fn start_with(server_extra: &str) -> TestServer {
        let dir = TempDir::new();
        let config = write_config(&dir, server_extra);
        Self::start_config(dir, config).await
    }

    pub async fn start_config(dir: TempDir, config: PathBuf) -> TestServer {
        let running = start(Options { config, reload_on_sighup: false })
            .await
            .unwrap_or_else(|e| panic!("server did not start: {e}"));
        let addr = running.addrs()[0];
        let watchdog = Watchdog::arm(addr);
        TestServer { running: Some(running), addr, dir, _watchdog: watchdog }
    }

    pub async fn udp(&self, msg: &[u8]) -> Option<Vec<u8>> {
        udp_exchange(self.addr, msg).await
    }

    pub async fn tcp(&self, msg: &[u8]) -> Option<Vec<u8>> {
        tcp_exchange(self.addr, msg).await
    }

    pub fn runtime(&self) -> &std::sync::Arc<meridian::control::runtime::Runtime> {
        self.running.as_ref().unwrap().runtime()
    }

    /// The snapshot the server answers from now.
    pub fn snapshot(&self) -> std::sync::Arc<meridian::state::Snapshot> {
        self.running.as_ref().unwrap().shared().load_full()
    }

    /// The live object of endpoint `key` (`profile/endpoint`) in the current snapshot.
    pub fn endpoint(&self, key: &str) -> Option<std::sync::Arc<meridian::live::EndpointLive>> {
        let snap = self.running.as_ref().unwrap().shared().load();
        let id = snap.policies.endpoint_by_key(&key.parse().unwrap())?;
        Some(snap.signals.endpoint(id).clone())
    }

    /// Endpoint `key`'s status as routing reads it in the current snapshot.
    pub fn status(&self, key: &str) -> Option<meridian::traffic::policy::Status> {
        let snap = self.running.as_ref().unwrap().shared().load();
        let id = snap.policies.endpoint_by_key(&key.parse().unwrap())?;
        Some(snap.signals.status(id))
    }

    /// Endpoint `key`'s load as the burst task reads it: utilisation while fresh.
    pub fn utilisation(&self, key: &str) -> Option<f64> {
        let snap = self.running.as_ref().unwrap().shared().load();
        let id = snap.policies.endpoint_by_key(&key.parse().unwrap())?;
        let cfg = snap.policies.endpoints[id as usize].load.as_ref()?;
        let now = meridian::control::load::now();
        meridian::control::load::fresh_load(snap.signals.endpoint(id), cfg, now)
            .map(|v| v / cfg.capacity)
    }

    /// Endpoint `key`'s load detail.
    pub fn load(&self, key: &str) -> Option<meridian::live::Load> {
        Some(self.endpoint(key)?.detail().load.clone())
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

pub async fn udp_exchange(addr: SocketAddr, msg: &[u8]) -> Option<Vec<u8>> {
    let bind = if addr.is_ipv6() { "[::1]:0" } else { "127.0.0.1:0" };
    let sock = UdpSocket::bind(bind).await.unwrap();
    sock.send_to(msg, addr).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(ANSWER_WAIT, sock.recv(&mut buf)).await.ok()?.ok()?;
    buf.truncate(n);
    Some(buf)
}

pub async fn tcp_exchange(addr: SocketAddr, msg: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&frame(msg)).await.unwrap();
    read_frame(&mut s).await
}

/// A length-prefixed TCP frame (RFC 1035 §4.2.2).
pub fn frame(msg: &[u8]) -> Vec<u8> {
    let mut f = (msg.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(msg);
    f
}

/// Reads one frame; `None` when the connection closes or nothing comes in time.
pub async fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let fut = async {
        let len = s.read_u16().await.ok()? as usize;
        let mut buf = vec![0u8; len];
        s.read_exact(&mut buf).await.ok()?;
        Some(buf)
    };
    tokio::time::timeout(ANSWER_WAIT, fut).await.ok()?
}

/// Builds a query. `edns`: `None` for no OPT, or the advertised payload size.
pub fn query(name: &str, rtype: &str, edns: Option<u16>) -> Message {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_str(name).unwrap(), RecordType::from_str(rtype).unwrap()));
    if let Some(payload) = edns {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        m.set_edns(e);
    }
    m
}

pub fn bytes(m: &Message) -> Vec<u8> {
    m.to_vec().unwrap()
}

/// Adds an EDNS option that Meridian does not know (it must be ignored).
pub fn with_unknown_option(mut m: Message) -> Message {
    let e = m.edns.as_mut().expect("query has EDNS");
    e.options_mut().insert(EdnsOption::Unknown(65001, vec![1, 2, 3]));
    m
}

fn record(r: &Record) -> String {
    format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data)
}

/// Renders an answer as text, one line per item:
/// `NOERROR aa` (rcode and flags), then `an:`, `ns:`, `ar:` records, then `edns:` if present.
pub fn render(answer: &[u8]) -> String {
    let m = Message::from_vec(answer).unwrap_or_else(|e| panic!("unparseable answer: {e}"));
    let h = &m.metadata;
    let mut flags = Vec::new();
    if h.authoritative {
        flags.push("aa");
    }
    if h.truncation {
        flags.push("tc");
    }
    if h.recursion_desired {
        flags.push("rd");
    }
    let rcode = match u16::from(h.response_code) {
        0 => "NOERROR".to_string(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        16 => "BADVERS".into(),
        n => format!("RCODE{n}"),
    };
    let mut out = format!("{rcode} {}", flags.join(","));
    for (tag, section) in [("an", &m.answers), ("ns", &m.authorities), ("ar", &m.additionals)] {
        for r in section.iter() {
            out.push_str(&format!("\n{tag}: {}", record(r)));
        }
    }
    if let Some(e) = &m.edns {
        out.push_str(&format!("\nedns: payload={} version={}", e.max_payload(), e.version()));
        if let Some(EdnsOption::Subnet(s)) =
            e.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet)
        {
            out.push_str(&format!(" ecs={}/{}/{}", s.addr(), s.source_prefix(), s.scope_prefix()));
        }
    }
    out.trim_end().to_string()
}

/// The body of `GET path` from an HTTP/1.1 server at `addr` (empty on any failure).
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return String::new() };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    r.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
}

/// `GET path` from an HTTP server at `addr`, its body read as JSON (`None` on any failure).
pub fn get_json(addr: &str, path: &str) -> Option<serde_json::Value> {
    serde_json::from_str(&http_get(addr, path)).ok()
}

/// A daemon started by a test (NSD, Knot), stopped by its PID when dropped.
pub struct Daemon(pub std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `dig` at 127.0.0.1:`port`, one try of one second, no recursion asked; its output.
pub fn dig_at(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=1", "+tries=1", "+norec"])
        .args(args)
        .output()
        .expect("dig is installed by the test command");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Waits (at most 30 s) until `dig +short` of `args` at `port` says `want`; on failure the
/// panic shows the files `logs`.
pub fn dig_until(what: &str, port: u16, args: &[&str], want: &str, logs: &[&Path]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = dig_at(port, &[args, &["+short"]].concat());
        if got.trim() == want {
            return;
        }
        if std::time::Instant::now() > deadline {
            let logs: Vec<String> =
                logs.iter().map(|p| std::fs::read_to_string(p).unwrap_or_default()).collect();
            panic!("{what}: {args:?} is {got:?}, never {want:?}\nlogs:\n{}", logs.join("\n---\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
