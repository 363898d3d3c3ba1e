//! Health monitoring against real endpoints on loopback: status transitions, tolerated
//! failures and recover_after, timeouts, wrong status codes, HTTPS with a self-signed
//! certificate, TCP, custom headers, and the DNS answers before and after. Probes run every
//! second; every wait is bounded and polls.

use crate::fake::Fake;
use crate::harness::*;
use meridian::live::Health;
use meridian::traffic::policy::Status;
use std::time::{Duration, Instant};

/// The zone `hc.test.` that health and live-state tests put their profiles in.
pub const HC_ZONE: &str =
    "$TTL 60\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\n";

/// A server for zone `hc.test.` with `profiles` (TOML).
pub async fn server_with(profiles: &str) -> TestServer {
    let dir = TempDir::new();
    dir.write("hc.zone", HC_ZONE);
    let cfg = dir.write(
        "meridian.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nudp_workers = 1\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [[zone]]\nname = \"hc.test.\"\nfile = \"hc.zone\"\n{profiles}"
        ),
    );
    TestServer::start_config(dir, cfg).await
}

/// Polls `f` every 25 ms until it holds, for at most `secs` seconds.
pub async fn until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn health(srv: &TestServer, key: &str) -> Option<Health> {
    Some(srv.endpoint(key)?.detail().health.clone())
}

pub fn status(srv: &TestServer, key: &str) -> Option<Status> {
    srv.status(key)
}

/// The address in the answer for `name` (or "NODATA").
pub async fn answer(srv: &TestServer, name: &str) -> String {
    let r = render(&srv.udp(&bytes(&query(name, "A", None))).await.expect("an answer"));
    r.lines()
        .find_map(|l| l.rsplit_once(" A ").map(|(_, a)| a.to_string()))
        .unwrap_or_else(|| "NODATA".into())
}

fn priority_profile(a: &Fake, b: &Fake, monitor: &str) -> String {
    format!(
        r#"
[[profile]]
name = "app.hc.test."
method = "priority"
ttl = 5
[profile.monitor]
{monitor}
[[profile.endpoint]]
name = "stack-hub"
address = "{}"
priority = 1
[profile.endpoint.monitor]
port = {}
[[profile.endpoint]]
name = "azure"
address = "{}"
priority = 2
[profile.endpoint.monitor]
port = {}
"#,
        a.addr.ip(),
        a.port(),
        b.addr.ip(),
        b.port()
    )
}

const HUB: &str = "app.hc.test./stack-hub";
const AZURE: &str = "app.hc.test./azure";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_follows_probes_with_tolerance_and_recovery() {
    let (hub, azure) = (Fake::http("127.0.0.51").await, Fake::http("127.0.0.52").await);
    let monitor = "protocol = \"http\"\npath = \"/health\"\ninterval = \"1s\"\ntimeout = \"500ms\"\ntolerated_failures = 1\nrecover_after = 2";
    let srv = server_with(&priority_profile(&hub, &azure, monitor)).await;
    until("both endpoints Online", 5, || {
        status(&srv, HUB) == Some(Status::Online) && status(&srv, AZURE) == Some(Status::Online)
    })
    .await;
    assert_eq!(answer(&srv, "app.hc.test.").await, "127.0.0.51");

    // The target fails exactly the probes scripted, then answers 200 again; the transition
    // count tells what happened in between, however late this test looks.
    let transitions = || health(&srv, HUB).unwrap().transitions;
    let settled = |hub: &Fake, srv: &TestServer| {
        hub.script_left() == 0 && status(srv, HUB) == Some(Status::Online)
    };
    let t0 = transitions();
    assert_eq!(t0, 1, "CheckingEndpoint→Online");

    // One failure is tolerated (tolerated_failures = 1): no transition at all.
    let ok = health(&srv, HUB).unwrap().probes_ok;
    hub.script(&[503]);
    until("the scripted failure and a success after it", 5, || {
        hub.script_left() == 0 && health(&srv, HUB).unwrap().probes_ok > ok
    })
    .await;
    assert_eq!(transitions(), t0, "one failure is tolerated");
    assert_eq!(status(&srv, HUB), Some(Status::Online));
    assert_eq!(answer(&srv, "app.hc.test.").await, "127.0.0.51");

    // Two failures degrade it (the answer moves to the public cloud). Then recover_after = 2:
    // one success is not enough, so after 503 503 200 503 503 the endpoint was Degraded once
    // and came back once (+2); with recover_after = 1 it would have flapped (+4).
    hub.script(&[503, 503, 200, 503, 503]);
    until("stack-hub Degraded", 5, || status(&srv, HUB) == Some(Status::Degraded)).await;
    assert_eq!(answer(&srv, "app.hc.test.").await, "127.0.0.52");
    let last = health(&srv, HUB).unwrap().last_probe.unwrap();
    assert_eq!(last.error.as_deref(), Some("unexpected status 503"));
    until("stack-hub Online again", 12, || settled(&hub, &srv)).await;
    assert_eq!(transitions(), t0 + 2, "Online→Degraded→Online, once each");
    assert_eq!(answer(&srv, "app.hc.test.").await, "127.0.0.51");

    // Taken down entirely (connection refused): the same failover.
    hub.stop();
    until("stack-hub Degraded when down", 5, || status(&srv, HUB) == Some(Status::Degraded)).await;
    let err = health(&srv, HUB).unwrap().last_probe.unwrap().error.unwrap();
    assert!(err.contains("connect") && err.contains("refused"), "{err}");
    assert_eq!(answer(&srv, "app.hc.test.").await, "127.0.0.52");
    hub.start();
    until("stack-hub back", 5, || status(&srv, HUB) == Some(Status::Online)).await;
    assert_eq!(answer(&srv, "app.hc.test.").await, "127.0.0.51");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_target_is_cut_at_the_timeout_and_delays_no_one() {
    let (hub, azure) = (Fake::http("127.0.0.53").await, Fake::http("127.0.0.54").await);
    hub.hang();
    let monitor = "interval = \"1s\"\ntimeout = \"400ms\"\ntolerated_failures = 0";
    let srv = server_with(&priority_profile(&hub, &azure, monitor)).await;
    until("the hanging endpoint Degraded", 5, || status(&srv, HUB) == Some(Status::Degraded)).await;
    let p = health(&srv, HUB).unwrap().last_probe.unwrap();
    assert_eq!(p.error.as_deref(), Some("no answer within 400ms"));
    // It waited for the timeout (a lower bound: cut no earlier), whatever the machine's speed.
    assert!(p.latency >= Duration::from_millis(380), "{:?}", p.latency);
    // Meanwhile the other endpoint keeps being probed, and succeeds: its probes do not wait
    // behind the hanging one (the wait is bounded, the speed is not asserted).
    let before = health(&srv, AZURE).unwrap().probes_ok;
    until("two more probes of azure", 5, || health(&srv, AZURE).unwrap().probes_ok >= before + 2)
        .await;
    let q = health(&srv, AZURE).unwrap().last_probe.unwrap();
    assert!(q.ok, "{q:?}");
    assert_eq!(answer(&srv, "app.hc.test.").await, "127.0.0.54");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_self_signed_tcp_headers_and_expected_status() {
    let dir = TempDir::new();
    let tls = Fake::https("127.0.0.55", dir.path()).await;
    let tcp = Fake::tcp("127.0.0.56").await;
    let redirect = Fake::http("127.0.0.57").await;
    redirect.set_status(301);
    let profiles = format!(
        r#"
[[profile]]
name = "tls.hc.test."
method = "multivalue"
[profile.monitor]
protocol = "https"
port = {tls_port}
path = "/probe"
interval = "1s"
timeout = "800ms"
tolerated_failures = 0
headers = {{ Host = "app.example.com", X-Probe = "yes" }}
[[profile.endpoint]]
name = "lax"
address = "127.0.0.55"
[[profile.endpoint]]
name = "strict"
address = "127.0.0.55"
[profile.endpoint.monitor]
verify_tls = true

[[profile]]
name = "tcp.hc.test."
method = "priority"
[profile.monitor]
protocol = "tcp"
port = {tcp_port}
interval = "1s"
timeout = "500ms"
tolerated_failures = 0
[[profile.endpoint]]
name = "db"
address = "127.0.0.56"

[[profile]]
name = "moved.hc.test."
method = "priority"
[profile.monitor]
port = {redirect_port}
interval = "1s"
timeout = "500ms"
tolerated_failures = 0
expected_status = ["200-299", "301-302"]
[[profile.endpoint]]
name = "old"
address = "127.0.0.57"
[[profile.endpoint]]
name = "strict-codes"
address = "127.0.0.57"
[profile.endpoint.monitor]
expected_status = ["200"]
"#,
        tls_port = tls.port(),
        tcp_port = tcp.port(),
        redirect_port = redirect.port()
    );
    let srv = server_with(&profiles).await;
    // HTTPS: the self-signed certificate is accepted unless verify_tls is on.
    until("lax HTTPS Online", 5, || status(&srv, "tls.hc.test./lax") == Some(Status::Online)).await;
    until("strict HTTPS Degraded", 5, || {
        status(&srv, "tls.hc.test./strict") == Some(Status::Degraded)
    })
    .await;
    let err = health(&srv, "tls.hc.test./strict").unwrap().last_probe.unwrap().error.unwrap();
    assert!(err.starts_with("TLS:") && err.contains("certificate"), "{err}");
    // The probe sent the configured path and headers, Host included, over TLS.
    let req = tls.requests().into_iter().next().unwrap();
    assert!(req.starts_with("GET /probe HTTP/1.1\r\n"), "{req}");
    assert!(
        req.contains("\r\nHost: app.example.com\r\n") && req.contains("\r\nX-Probe: yes\r\n"),
        "{req}"
    );
    assert_eq!(req.matches("Host:").count(), 1, "{req}");
    // TCP: a connect is a success; a refused one is not.
    until("TCP Online", 5, || status(&srv, "tcp.hc.test./db") == Some(Status::Online)).await;
    tcp.stop();
    until("TCP Degraded", 5, || status(&srv, "tcp.hc.test./db") == Some(Status::Degraded)).await;
    // expected_status: 301 is fine for one endpoint, not for the other.
    until("301 accepted", 5, || status(&srv, "moved.hc.test./old") == Some(Status::Online)).await;
    until("301 rejected", 5, || {
        status(&srv, "moved.hc.test./strict-codes") == Some(Status::Degraded)
    })
    .await;
    srv.stop().await;
}
