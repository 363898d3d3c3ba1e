//! The local demo: `meridian demo-endpoints` (tiny HTTP apps standing in for the endpoints of
//! the configuration) and `meridian demo-load` (a bounded load generator that resolves through
//! Meridian and sends each request to whichever app it was given).
//!
//! Each demo app answers `200 OK` on every path and exports, at `/metrics`, the rate of the
//! requests it served over the last 5 seconds (`demo_requests_per_second`), so that a load
//! source can read it as a real app's would be read.

use crate::config::{Config, Protocol, TargetConfig};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tracing::{info, warn};

/// The window the exported request rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// The HTTP-monitored address endpoints of `config` (all, or those named), as
/// (endpoint name, address to serve on).
pub fn targets(config: &Config, names: &[String]) -> Vec<(String, SocketAddr)> {
    let mut out = Vec::new();
    for p in &config.profiles {
        for e in &p.endpoints {
            let (TargetConfig::Addresses(addrs), Some(m)) = (&e.target, &e.monitor) else {
                continue;
            };
            if m.protocol != Protocol::Http || !(names.is_empty() || names.contains(&e.name)) {
                continue;
            }
            if let Some(ip) = addrs.first() {
                let addr = SocketAddr::new(*ip, m.port);
                if !out.iter().any(|(_, a)| *a == addr) {
                    out.push((e.name.clone(), addr));
                }
            }
        }
    }
    out
}

/// Serves every target until the process is stopped.
pub async fn serve(targets: Vec<(String, SocketAddr)>) -> std::io::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for (name, addr) in targets {
        let listener = TcpListener::bind(addr).await?;
        info!(endpoint = %name, %addr, "demo endpoint up; stop it with Ctrl-C");
        // Times of recent requests, for the exported rate.
        let served: Arc<Mutex<VecDeque<Instant>>> = Arc::default();
        tasks.spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else { continue };
                tokio::spawn(answer(s, name.clone(), served.clone()));
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn answer(mut s: TcpStream, name: String, served: Arc<Mutex<VecDeque<Instant>>>) {
    let mut buf = [0u8; 4096];
    let n = match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
        Ok(Ok(n)) => n,
        _ => return,
    };
    let path =
        String::from_utf8_lossy(&buf[..n]).split_whitespace().nth(1).unwrap_or("/").to_string();
    let now = Instant::now();
    let body = {
        let mut q = served.lock().unwrap_or_else(|e| e.into_inner());
        while q.front().is_some_and(|t| now.duration_since(*t) > RATE_WINDOW) {
            q.pop_front();
        }
        if path == "/metrics" {
            let rate = q.len() as f64 / RATE_WINDOW.as_secs_f64();
            format!(
                "# HELP demo_requests_per_second Requests served over the last 5 seconds, per second.\n# TYPE demo_requests_per_second gauge\ndemo_requests_per_second{{endpoint=\"{name}\"}} {rate}\n"
            )
        } else {
            // Health probes are not traffic.
            if path != "/health" {
                q.push_back(now);
            }
            format!("ok from {name}\n")
        }
    };
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if let Err(e) = s.write_all(resp.as_bytes()).await {
        warn!(error = %e, "demo endpoint write failed");
    }
}

/// A load shape: requests per second at points in time, linear in between.
pub fn parse_ramp(text: &str) -> Result<Vec<(Duration, f64)>, String> {
    let mut pts = Vec::new();
    for part in text.split(',') {
        let (t, r) = part
            .split_once(':')
            .ok_or_else(|| format!("{part:?}: write TIME:RATE, e.g. 30s:80"))?;
        let t = crate::config::parse_duration(t.trim())
            .ok_or_else(|| format!("{t:?} is not a duration"))?;
        let r: f64 = r
            .trim()
            .parse()
            .ok()
            .filter(|r: &f64| (0.0..=1000.0).contains(r))
            .ok_or_else(|| format!("{r:?}: a rate from 0 to 1000"))?;
        pts.push((t, r));
    }
    if pts.windows(2).any(|w| w[1].0 <= w[0].0) || pts.is_empty() {
        return Err("points must be in increasing time order".into());
    }
    Ok(pts)
}

fn rate_at(pts: &[(Duration, f64)], t: Duration) -> f64 {
    match pts.iter().position(|p| p.0 > t) {
        None => pts.last().map_or(0.0, |p| p.1),
        Some(0) => pts[0].1,
        Some(i) => {
            let ((t0, a), (t1, b)) = (pts[i - 1], pts[i]);
            a + (b - a) * (t - t0).as_secs_f64() / (t1 - t0).as_secs_f64()
        }
    }
}

/// Resolves `name` through the `servers` (in turn) for every request, from `clients` client
/// addresses (in turn), and sends it to the address it was given (port `port`); prints the
/// split every `report`. Stops at the end of the ramp.
pub async fn load(
    servers: &[SocketAddr],
    clients: u8,
    name: &str,
    port: u16,
    ramp: Vec<(Duration, f64)>,
    report: Duration,
) -> std::io::Result<()> {
    let end = ramp.last().map_or(Duration::ZERO, |p| p.0);
    let first = *servers.first().ok_or_else(|| std::io::Error::other("no server"))?;
    let mut socks = Vec::new();
    if clients > 1 {
        // One client per /24 of loopback, as many resolvers would be.
        for i in 1..=clients {
            socks.push(UdpSocket::bind((std::net::Ipv4Addr::new(127, 0, i, 1), 0)).await?);
        }
    } else {
        // Any local address: the server may be on loopback or across a (container) network.
        socks.push(UdpSocket::bind(if first.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).await?);
    }
    let mut turn = 0usize;
    let query = query_bytes(name);
    let start = Instant::now();
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    let mut next_report = report;
    let mut sent = 0.0f64;
    let tick = Duration::from_millis(20);
    println!("{:>6} {:>6}  split (answers from Meridian, requests served)", "time", "rate");
    while start.elapsed() <= end {
        let t = start.elapsed();
        // Send as many requests as the ramp asks for by now.
        sent += rate_at(&ramp, t) * tick.as_secs_f64();
        while sent >= 1.0 {
            sent -= 1.0;
            let (sock, server) = (&socks[turn % socks.len()], servers[turn % servers.len()]);
            turn += 1;
            let target = match resolve(sock, server, &query).await {
                Some(ip) => {
                    let ok = tokio::time::timeout(
                        Duration::from_secs(1),
                        get(SocketAddr::new(ip, port)),
                    )
                    .await
                    .is_ok_and(|r| r);
                    format!("{ip}{}", if ok { "" } else { " (failed)" })
                }
                None => "no answer".into(),
            };
            *counts.entry(target).or_default() += 1;
        }
        if t >= next_report {
            let total: u32 = counts.values().sum();
            let split: Vec<String> = counts
                .iter()
                .map(|(k, v)| format!("{k} {:.0}%", 100.0 * *v as f64 / total.max(1) as f64))
                .collect();
            println!("{:>5.0}s {:>6.1}  {}", t.as_secs_f64(), rate_at(&ramp, t), split.join(", "));
            counts.clear();
            next_report += report;
        }
        tokio::time::sleep(tick).await;
    }
    Ok(())
}

fn query_bytes(name: &str) -> Vec<u8> {
    let mut q = vec![0x4d, 0x44, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The first A record of the answer, if any.
async fn resolve(sock: &UdpSocket, server: SocketAddr, query: &[u8]) -> Option<IpAddr> {
    sock.send_to(query, server).await.ok()?;
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await.ok()?.ok()?;
    let msg = hickory_proto::op::Message::from_vec(&buf[..n]).ok()?;
    msg.answers.iter().find_map(|r| r.data.ip_addr())
}

async fn get(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr).await else { return false };
    if s.write_all(b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 256];
    matches!(s.read(&mut buf).await, Ok(n) if n > 12 && buf.starts_with(b"HTTP/1.1 200"))
}
