//! Health monitoring: every monitored endpoint is probed on its own task, and its status is
//! written into the live signals that routing reads.
//!
//! Each endpoint's task owns its probe counters and status machine (CheckingEndpoint → Online
//! or Degraded after `tolerated_failures + 1` consecutive failures → Online after
//! `recover_after` successes), so nothing is shared but the results it publishes into the
//! endpoint's one live object (`live::EndpointLive`): the status atomic routing reads and the
//! detail the admin API shows, together. Probes run concurrently and each is cut at its timeout, so a target that hangs
//! delays nobody. The supervisor reconciles the tasks with each new snapshot: new endpoints get
//! a task, removed ones lose theirs, unchanged ones keep probing with their state.

use crate::config::{MonitorConfig, Protocol};
use crate::control::supervise::Bound;
use crate::live::{EndpointKey, EndpointLive, ProbeResult, Status};
use crate::state::{Shared, Snapshot};
use crate::traffic::policy::Target;
use rustls::pki_types::ServerName;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{info, warn};

/// What a probe connects to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProbeTarget {
    Ip(IpAddr),
    /// A CNAME endpoint's target, resolved by the system resolver at each probe.
    Host(String),
}

/// Everything that defines one endpoint's probing; a change restarts its task.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeSpec {
    pub target: ProbeTarget,
    pub monitor: MonitorConfig,
}

/// The probe specs a snapshot asks for, by endpoint key, each with the live object its results
/// go to.
pub fn specs(snap: &Snapshot) -> HashMap<EndpointKey, Bound<ProbeSpec, EndpointLive>> {
    let mut out = HashMap::new();
    for (id, e) in snap.policies.endpoints.iter().enumerate() {
        let Some(monitor) = &e.monitor else { continue };
        let target = match &e.target {
            Target::Addresses { v4, v6 } => match (v4.first(), v6.first()) {
                (Some(a), _) => ProbeTarget::Ip(IpAddr::V4(*a)),
                (None, Some(a)) => ProbeTarget::Ip(IpAddr::V6(*a)),
                (None, None) => continue,
            },
            Target::Cname(n) => ProbeTarget::Host(n.to_string().trim_end_matches('.').to_string()),
            Target::Profile(_) => continue,
        };
        let spec = ProbeSpec { target, monitor: monitor.clone() };
        out.insert(e.key.clone(), Bound { spec, live: snap.signals.endpoint(id as u32).clone() });
    }
    out
}

/// Keeps one probe task per monitored endpoint of the current snapshot, until `stop`.
pub async fn supervise(
    shared: Arc<Shared>,
    reloaded: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
) {
    // Endpoints probed in the last plan: one that is no longer probed forgets its results
    // and reads Unmonitored (served), so a monitor added back later starts afresh.
    let mut probed: HashMap<EndpointKey, Arc<EndpointLive>> = HashMap::new();
    let plan = |snap: &Snapshot| {
        let want = specs(snap);
        for (key, live) in probed.drain() {
            if want.get(&key).is_none_or(|b| !Arc::ptr_eq(&b.live, &live)) {
                live.reset_health(Status::Unmonitored);
            }
        }
        probed = want.iter().map(|(k, b)| (k.clone(), b.live.clone())).collect();
        want
    };
    let start = |key: &EndpointKey, b: &Bound<ProbeSpec, EndpointLive>| {
        Some(tokio::spawn(probe_loop(key.clone(), b.spec.clone(), b.live.clone())))
    };
    crate::control::supervise::supervise(shared, reloaded, stop, plan, start).await;
}

/// The consecutive-result counters and status of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    pub status: Status,
    pub failures: u32,
    pub successes: u32,
}

impl Machine {
    pub fn new(status: Status) -> Machine {
        Machine { status, failures: 0, successes: 0 }
    }

    /// Applies one probe result; returns the new status when it changed.
    pub fn step(&mut self, ok: bool, m: &MonitorConfig) -> Option<Status> {
        let before = self.status;
        if ok {
            self.failures = 0;
            self.successes += 1;
            let online = match self.status {
                Status::Degraded => self.successes >= m.recover_after,
                _ => true,
            };
            if online {
                self.status = Status::Online;
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.failures > m.tolerated_failures {
                self.status = Status::Degraded;
            }
        }
        (self.status != before).then_some(self.status)
    }
}

async fn probe_loop(key: EndpointKey, spec: ProbeSpec, live: Arc<EndpointLive>) {
    // Status carries over when only the probe task restarts (a reload that changed nothing
    // of this endpoint's monitor keeps the task itself).
    if live.status() == Status::Unmonitored {
        // A monitor added by a reload to an endpoint that had none.
        live.reset_health(Status::CheckingEndpoint);
    }
    // From this instance's own verdict: a consensus may have set the status answers follow.
    let mut machine = Machine::new(live.verdict());
    let mut ticker = tokio::time::interval(spec.monitor.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let started = Instant::now();
        let outcome = match tokio::time::timeout(spec.monitor.timeout, probe(&spec)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {:?}", spec.monitor.timeout)),
        };
        let latency = started.elapsed();
        let (ok, status_code, error) = match outcome {
            Ok(code) => match (code, spec.monitor.protocol) {
                (_, Protocol::Tcp) => (true, None, None),
                (Some(c), _)
                    if spec.monitor.expected_status.iter().any(|&(a, b)| (a..=b).contains(&c)) =>
                {
                    (true, Some(c), None)
                }
                (Some(c), _) => (false, Some(c), Some(format!("unexpected status {c}"))),
                (None, _) => (false, None, Some("no status line".into())),
            },
            Err(e) => (false, None, Some(e)),
        };
        let changed = machine.step(ok, &spec.monitor);
        let result =
            ProbeResult { at: SystemTime::now(), ok, status_code, error: error.clone(), latency };
        // The one object every snapshot holding this endpoint reads: nothing to look up, and
        // nothing a reload could lose.
        live.record_probe(result, changed);
        if let Some(to) = changed {
            let reason = match &error {
                None => format!("{} consecutive successful probe(s)", machine.successes),
                Some(e) => format!("{} consecutive failed probe(s), last: {e}", machine.failures),
            };
            if to == Status::Degraded {
                warn!(endpoint = %key, status = to.as_str(), %reason, "endpoint status changed");
            } else {
                info!(endpoint = %key, status = to.as_str(), %reason, "endpoint status changed");
            }
        }
    }
}

/// One probe: `Ok(Some(status))` for HTTP(S), `Ok(None)` for a TCP connect, `Err` for a
/// failure. The caller bounds it with the monitor's timeout.
async fn probe(spec: &ProbeSpec) -> Result<Option<u16>, String> {
    let m = &spec.monitor;
    let stream = match &spec.target {
        ProbeTarget::Ip(ip) => TcpStream::connect(SocketAddr::new(*ip, m.port)).await,
        ProbeTarget::Host(h) => TcpStream::connect((h.as_str(), m.port)).await,
    }
    .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let host = match &spec.target {
        ProbeTarget::Ip(IpAddr::V6(a)) => format!("[{a}]"),
        ProbeTarget::Ip(a) => a.to_string(),
        ProbeTarget::Host(h) => h.clone(),
    };
    let host_header =
        m.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("host")).map(|(_, v)| v.clone());
    match m.protocol {
        Protocol::Tcp => Ok(None),
        Protocol::Http => {
            http_get(stream, m, host_header.as_deref().unwrap_or(&host)).await.map(Some)
        }
        Protocol::Https => {
            let sni_text = host_header.as_deref().unwrap_or(match &spec.target {
                ProbeTarget::Ip(_) => "",
                ProbeTarget::Host(h) => h,
            });
            let sni = match (&spec.target, ServerName::try_from(sni_text.to_string())) {
                (_, Ok(n)) if !sni_text.is_empty() => n,
                (ProbeTarget::Ip(ip), _) => ServerName::IpAddress((*ip).into()),
                (ProbeTarget::Host(h), _) => return Err(format!("invalid TLS server name {h:?}")),
            };
            let connector = tokio_rustls::TlsConnector::from(tls_config(m.verify_tls));
            let tls = connector.connect(sni, stream).await.map_err(|e| format!("TLS: {e}"))?;
            http_get(tls, m, host_header.as_deref().unwrap_or(&host)).await.map(Some)
        }
    }
}

/// Sends a GET and reads the status line; the body is never read.
async fn http_get<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    m: &MonitorConfig,
    host: &str,
) -> Result<u16, String> {
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Meridian-Monitor/1.0\r\nConnection: close\r\n",
        m.path
    );
    for (k, v) in m.headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    crate::control::http::exchange(&mut s, req.as_bytes(), false).await.map(|(code, _)| code)
}

/// TLS client configurations, built once: verifying against the bundled Mozilla roots, or
/// (the default, as Traffic Manager does) accepting any certificate.
fn tls_config(verify: bool) -> Arc<rustls::ClientConfig> {
    static VERIFY: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    static ANY: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let provider = || Arc::new(rustls::crypto::ring::default_provider());
    if verify {
        VERIFY
            .get_or_init(|| {
                let roots =
                    rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
                let c = rustls::ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default protocol versions")
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Arc::new(c)
            })
            .clone()
    } else {
        ANY.get_or_init(|| {
            let c = rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(crate::control::http::AnyCertificate(
                    provider(),
                )))
                .with_no_client_auth();
            Arc::new(c)
        })
        .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn monitor(tolerated: u32, recover: u32) -> MonitorConfig {
        MonitorConfig {
            protocol: Protocol::Http,
            port: 80,
            path: "/".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            tolerated_failures: tolerated,
            recover_after: recover,
            expected_status: vec![(200, 299)],
            headers: vec![],
            verify_tls: false,
            consensus: false,
        }
    }

    /// Runs a sequence of probe results (`+` success, `-` failure) and renders the statuses.
    fn run(tolerated: u32, recover: u32, seq: &str) -> String {
        let m = monitor(tolerated, recover);
        let mut machine = Machine::new(Status::CheckingEndpoint);
        seq.chars()
            .map(|c| {
                machine.step(c == '+', &m);
                match machine.status {
                    Status::CheckingEndpoint => 'C',
                    Status::Online => 'O',
                    Status::Degraded => 'D',
                    _ => '?',
                }
            })
            .collect()
    }

    #[test]
    fn status_machine() {
        // Default: 3 failures tolerated, the 4th degrades; one success recovers.
        assert_eq!(run(3, 1, "+---+----+"), "OOOOOOOODO");
        assert_eq!(run(3, 1, "----"), "CCCD");
        // No tolerance: the first failure degrades.
        assert_eq!(run(0, 1, "+-+"), "ODO");
        // recover_after 3: it takes three successes in a row to come back.
        assert_eq!(run(0, 3, "-++-+++"), "DDDDDDO");
    }
}
