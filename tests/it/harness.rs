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

/// Writes a configuration serving the demo zone and `big.test.` on 127.0.0.1:0, with extra
/// `[server]` lines, and returns its path.
pub fn write_config(dir: &TempDir, server_extra: &str) -> PathBuf {
    let demo = repo().join("zones/app.example.com.zone");
    dir.write("big.test.zone", &big_zone());
    dir.write(
        "meridian.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nudp_workers = 2\n{server_extra}\n\
             [[zone]]\nname = \"app.example.com.\"\nfile = \"{}\"\n\
             [[zone]]\nname = \"big.test.\"\nfile = \"big.test.zone\"\n",
            demo.display()
        ),
    )
}

/// A server running in this process.
pub struct TestServer {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub dir: TempDir,
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
        TestServer { running: Some(running), addr, dir }
    }

    pub async fn udp(&self, msg: &[u8]) -> Option<Vec<u8>> {
        udp_exchange(self.addr, msg).await
    }

    pub async fn tcp(&self, msg: &[u8]) -> Option<Vec<u8>> {
        tcp_exchange(self.addr, msg).await
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
    }
    out.trim_end().to_string()
}
