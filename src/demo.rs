//! `meridian demo-endpoints`: tiny local HTTP apps standing in for the endpoints of the
//! configuration, so that health monitoring can be tried on one machine: start them, stop one,
//! and watch the answers change.

use crate::config::{Config, Protocol, TargetConfig};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{info, warn};

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

/// Serves `200 OK` on every path at each address until the process is stopped.
pub async fn serve(targets: Vec<(String, SocketAddr)>) -> std::io::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for (name, addr) in targets {
        let listener = TcpListener::bind(addr).await?;
        info!(endpoint = %name, %addr, "demo endpoint up; stop it with Ctrl-C");
        tasks.spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else { continue };
                let name = name.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    // One read is enough for a probe's small GET; the answer does not depend on it.
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), s.read(&mut buf)).await;
                    let body = format!("ok from {name}\n");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    if let Err(e) = s.write_all(resp.as_bytes()).await {
                        warn!(error = %e, "demo endpoint write failed");
                    }
                });
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}
