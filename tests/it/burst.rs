//! Cloud bursting over the wire: a pushed load drives the lifecycle, answers spill and come
//! back, webhooks are signed, retried and fired once per event, and load sources read real
//! HTTP endpoints (JSON and Prometheus text) with stale values reading as unknown.

use crate::admin::http;
use crate::harness::*;
use crate::health::{server_with, until};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A webhook receiver: records each request (head, body) and answers 500 to the first
/// `fail_first` of them, 200 after.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<(String, String)>>>,
}

async fn receiver(fail_first: usize) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head, then the body its Content-Length announces.
            let (head, body) = loop {
                let Ok(n) = s.read(&mut chunk).await else { break (String::new(), String::new()) };
                if n == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((h, b)) = text.split_once("\r\n\r\n") {
                    let len: usize = h
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if b.len() >= len {
                        break (h.to_string(), b[..len].to_string());
                    }
                }
            };
            let n = {
                let mut v = g.lock().unwrap();
                v.push((head, body));
                v.len()
            };
            let status = if n <= fail_first { "500 Nope" } else { "200 OK" };
            let _ = s
                .write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
        }
    });
    Receiver { port, got }
}

fn state(srv: &TestServer) -> String {
    let snap = srv.running.as_ref().unwrap().shared().load();
    snap.signals.burst_state(0).as_str().to_string()
}

/// (answers naming the cloud endpoint, of `n`) and the TTLs seen.
async fn split(srv: &TestServer, n: usize) -> (usize, Vec<u32>) {
    let (mut cloud, mut ttls) = (0, Vec::new());
    for _ in 0..n {
        let a = hickory_proto::op::Message::from_vec(
            &srv.udp(&bytes(&query("app.hc.test.", "A", None))).await.unwrap(),
        )
        .unwrap();
        let r = &a.answers[0];
        if r.data.to_string() == "192.0.2.2" {
            cloud += 1;
        }
        if !ttls.contains(&r.ttl) {
            ttls.push(r.ttl);
        }
    }
    (cloud, ttls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_lifecycle_end_to_end() {
    let hook = receiver(1).await;
    let marker = TempDir::new();
    let idle_file = marker.path().join("idle.json");
    let profile = format!(
        r#"
[[profile]]
name = "app.hc.test."
method = "priority"
ttl = 1
[profile.burst]
primary = "onprem"
overflow = "cloud"
warm_at = 0.6
burst_at = 0.8
release_at = 0.4
target = 0.7
sustain = "300ms"
cooldown = "300ms"
interval = "100ms"
max_step = 0.25
max_share = 0.5
transition_ttl = 2
[profile.burst.on_warm]
url = "http://127.0.0.1:{}/hooks/warm"
secret = "s3cret-for-tests"
[profile.burst.on_idle]
exec = ["sh", "-c", "cat >> {}"]
[[profile.endpoint]]
name = "onprem"
address = "192.0.2.1"
priority = 1
[profile.endpoint.load]
source = "push"
capacity = 100
half_life = "50ms"
[[profile.endpoint]]
name = "cloud"
address = "192.0.2.2"
priority = 2
"#,
        hook.port,
        idle_file.display()
    );
    let srv = server_with(&profile).await;
    let api = srv.running.as_ref().unwrap().admin_addr().unwrap();
    let push = |v: f64| async move {
        let (code, body) = http(
            api,
            "PUT",
            "/v1/profiles/app.hc.test/endpoints/onprem/load",
            None,
            Some(&format!("{{\"value\": {v}}}")),
        )
        .await;
        assert_eq!(code, 200, "{body}");
    };
    assert_eq!(state(&srv), "Idle");
    assert_eq!(split(&srv, 50).await, (0, vec![1]));
    // Idle, nothing can spill: no draw is taken.
    let (_, e) = http(api, "GET", "/v1/explain?name=app.hc.test&client=10.0.0.1", None, None).await;
    assert!(e.contains("burst: state Idle, share 0.000, no draw: kept on the primary"), "{e}");

    // Demand rises: Warming (on_warm), then Bursting with half of the answers spilled.
    push(95.0).await;
    until("Bursting", 5, || state(&srv) == "Bursting").await;
    until("share at max_share", 5, || {
        srv.running.as_ref().unwrap().shared().load().signals.burst_share(0) >= 0.5
    })
    .await;
    let (cloud, ttls) = split(&srv, 400).await;
    assert!((120..280).contains(&cloud), "{cloud} of 400 answers spilled at share 0.5");
    assert_eq!(ttls, vec![2], "answers carry transition_ttl during a burst");
    let (_, body) = http(api, "GET", "/v1/status", None, None).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["profiles"][0]["burst"]["state"], "Bursting");
    assert_eq!(v["profiles"][0]["burst"]["share"], 0.5);
    assert!(
        (v["profiles"][0]["endpoints"][0]["load"]["utilisation"].as_f64().unwrap() - 0.95).abs()
            < 0.01,
        "{body}"
    );
    let (_, m) = http(api, "GET", "/metrics", None, None).await;
    assert!(
        m.contains(r#"meridian_burst_state{profile="app.hc.test.",state="Bursting"} 1"#),
        "{m}"
    );
    assert!(m.contains(r#"meridian_burst_share{profile="app.hc.test."} 0.5"#));
    // explain shows how the burst decided the answer.
    let (_, e) = http(api, "GET", "/v1/explain?name=app.hc.test&client=10.0.0.1", None, None).await;
    assert!(e.contains("burst: state Bursting, share 0.500, draw "), "{e}");

    // on_warm: retried after the receiver's 500, delivered once, signed.
    until("on_warm delivered", 5, || hook.got.lock().unwrap().len() >= 2).await;
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "one failure, one delivery: {got:?}");
    let (head, body) = &got[1];
    assert!(head.starts_with("POST /hooks/warm HTTP/1.1"), "{head}");
    let event: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!((event["event"].as_str(), event["state"].as_str()), (Some("warm"), Some("Warming")));
    assert_eq!(event["primary"][0], "onprem");
    assert_eq!(event["overflow"][0], "cloud");
    let want = format!(
        "x-meridian-signature: {}",
        meridian::control::load::sign("s3cret-for-tests", body.as_bytes())
    );
    assert!(head.to_ascii_lowercase().contains(&want), "{head}\nwanted {want}");

    // Demand falls: Draining, the share steps down, then Idle after the longest TTL, and
    // on_idle runs once with the event on its stdin.
    push(10.0).await;
    until("Draining", 5, || state(&srv) == "Draining").await;
    until("Idle", 8, || state(&srv) == "Idle").await;
    assert_eq!(split(&srv, 50).await, (0, vec![1]));
    until("on_idle ran", 5, || {
        idle_file.exists() && std::fs::read_to_string(&idle_file).unwrap().contains("\"idle\"")
    })
    .await;
    let idle: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&idle_file).unwrap().trim()).unwrap();
    assert_eq!(idle["event"], "idle");
    assert_eq!(hook.got.lock().unwrap().len(), 2, "on_warm fired once for the one warm event");
    let (_, body) = http(api, "GET", "/v1/status", None, None).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["profiles"][0]["burst"]["transitions"], 4);
    assert_eq!(v["profiles"][0]["burst"]["webhooks_delivered"], 2);
    let (_, m) = http(api, "GET", "/metrics", None, None).await;
    assert!(m.contains("meridian_webhooks_total{result=\"delivered\"} 2"), "{m}");
    assert!(m.contains("meridian_webhooks_total{result=\"failed\"} 0"), "{m}");
    srv.stop().await;
}

/// A webhook whose receiver always fails is tried 5 times with doubling back-off (0.5 s, 1 s,
/// 2 s, 4 s), then given up: counted in `/v1/status` and in `meridian_webhooks_total`, and
/// never tried again for that event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_gives_up_after_the_last_retry() {
    let hook = receiver(usize::MAX).await;
    let profile = format!(
        r#"
[[profile]]
name = "app.hc.test."
method = "priority"
[profile.burst]
primary = "onprem"
overflow = "cloud"
warm_at = 0.6
burst_at = 0.8
release_at = 0.4
interval = "100ms"
sustain = "100ms"
[profile.burst.on_warm]
url = "http://127.0.0.1:{}/hooks/warm"
[[profile.endpoint]]
name = "onprem"
address = "192.0.2.1"
priority = 1
[profile.endpoint.load]
source = "push"
capacity = 100
half_life = "50ms"
[[profile.endpoint]]
name = "cloud"
address = "192.0.2.2"
priority = 2
"#,
        hook.port
    );
    let srv = server_with(&profile).await;
    let api = srv.running.as_ref().unwrap().admin_addr().unwrap();
    let (code, body) = http(
        api,
        "PUT",
        "/v1/profiles/app.hc.test/endpoints/onprem/load",
        None,
        Some("{\"value\": 70}"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    until("Warming", 5, || state(&srv) != "Idle").await;
    let failed = || async {
        let (_, body) = http(api, "GET", "/v1/status", None, None).await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["profiles"][0]["burst"]["webhooks_failed"].as_u64()
    };
    // 7.5 s of back-off between the five attempts.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while failed().await != Some(1) {
        assert!(std::time::Instant::now() < deadline, "the webhook was never given up");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(hook.got.lock().unwrap().len(), 5, "five attempts, then given up");
    let (_, m) = http(api, "GET", "/metrics", None, None).await;
    assert!(m.contains("meridian_webhooks_total{result=\"failed\"} 1"), "{m}");
    assert!(m.contains("meridian_webhooks_total{result=\"delivered\"} 0"), "{m}");
    // Given up means given up: no sixth attempt after the last back-off would have ended.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(hook.got.lock().unwrap().len(), 5);
    srv.stop().await;
}

/// An HTTP endpoint serving `body` at every path, until aborted.
async fn serve_body(ip: &str, body: &'static str) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { continue };
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf).await;
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    (port, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_load_sources_and_staleness() {
    let (json_port, json_srv) = serve_body("127.0.0.1", r#"{"stats": {"rps": 250}}"#).await;
    let (prom_port, _prom_srv) = serve_body(
        "127.0.0.1",
        "# TYPE app_rps gauge\napp_rps{site=\"onprem\"} 80\napp_rps{site=\"cloud\"} 5\n",
    )
    .await;
    let profile = format!(
        r#"
[[profile]]
name = "app.hc.test."
method = "priority"
[[profile.endpoint]]
name = "by-json"
address = "192.0.2.1"
[profile.endpoint.load]
source = "http"
url = "http://127.0.0.1:{json_port}/stats"
json_pointer = "/stats/rps"
capacity = 500
interval = "200ms"
half_life = "10ms"
stale_after = "1s"
[[profile.endpoint]]
name = "by-metric"
address = "192.0.2.2"
[profile.endpoint.load]
source = "http"
url = "http://127.0.0.1:{prom_port}/metrics"
metric = "app_rps"
labels = {{ site = "onprem" }}
capacity = 100
interval = "200ms"
"#
    );
    let srv = server_with(&profile).await;
    let util = |k: &str| srv.utilisation(k);
    until("JSON load read", 5, || util("app.hc.test./by-json").is_some()).await;
    until("metric load read", 5, || util("app.hc.test./by-metric").is_some()).await;
    assert!((util("app.hc.test./by-json").unwrap() - 0.5).abs() < 1e-9);
    assert!((util("app.hc.test./by-metric").unwrap() - 0.8).abs() < 1e-9);

    // The JSON source goes away: after stale_after its load is unknown, not zero, and the
    // failures are counted.
    json_srv.abort();
    until("JSON load stale", 5, || util("app.hc.test./by-json").is_none()).await;
    let l = srv.load("app.hc.test./by-json").unwrap();
    assert!(l.failing && l.failures > 0 && l.smoothed == Some(250.0), "{l:?}");
    let api = srv.running.as_ref().unwrap().admin_addr().unwrap();
    let (_, body) = http(api, "GET", "/v1/status", None, None).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let load = &v["profiles"][0]["endpoints"][0]["load"];
    assert_eq!(load["stale"], true, "{body}");
    assert!(load["utilisation"].is_null());
    assert!(load["error"].as_str().unwrap().contains("connect"), "{body}");
    srv.stop().await;
}

/// A real Prometheus server (Debian's `prometheus`), started on loopback and stopped by PID
/// when dropped.
pub struct Prometheus {
    child: std::process::Child,
    pub port: u16,
    _dir: TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_prometheus(scrape_port: u16) -> Prometheus {
    start_prometheus_with(&format!(
        "  - job_name: app\n    static_configs:\n      - targets: ['127.0.0.1:{scrape_port}']\n"
    ))
}

/// A Prometheus scraping every second what `jobs` (YAML items of `scrape_configs`) says.
pub fn start_prometheus_with(jobs: &str) -> Prometheus {
    let dir = TempDir::new();
    let port = free_port();
    dir.write(
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{jobs}"
        ),
    );
    let child = std::process::Command::new("prometheus")
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus is installed (the test command installs Debian's prometheus)");
    Prometheus { child, port, _dir: dir }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_load_source_against_a_real_prometheus() {
    // The app exports its request rate; Prometheus scrapes it every second.
    let (app_port, _app) = serve_body(
        "127.0.0.1",
        "# TYPE app_requests_per_second gauge\napp_requests_per_second{site=\"onprem\"} 420\n",
    )
    .await;
    let prom = start_prometheus(app_port);
    let source = meridian::config::LoadSource::Prometheus {
        url: format!("http://127.0.0.1:{}", prom.port),
        query: "sum(app_requests_per_second{site=\"onprem\"})".into(),
    };
    // Bounded wait for Prometheus to start and scrape.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let value = loop {
        match meridian::control::load::fetch_value(&source).await {
            Ok(v) => break v,
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "prometheus never answered: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    };
    assert_eq!(value, 420.0);
    // A query matching several series is an error, not a guess.
    let many = meridian::config::LoadSource::Prometheus {
        url: format!("http://127.0.0.1:{}", prom.port),
        query: "up or vector(1)".into(),
    };
    assert!(meridian::control::load::fetch_value(&many).await.unwrap_err().contains("series"));

    // The same, configured on an endpoint of a running server.
    let profile = format!(
        "[[profile]]\nname = \"app.hc.test.\"\nmethod = \"priority\"\n[[profile.endpoint]]\nname = \"onprem\"\naddress = \"192.0.2.1\"\n\
         [profile.endpoint.load]\nsource = \"prometheus\"\nurl = \"http://127.0.0.1:{}\"\nquery = 'sum(app_requests_per_second{{site=\"onprem\"}})'\ncapacity = 600\ninterval = \"500ms\"\nstale_after = \"5s\"\n",
        prom.port
    );
    let srv = server_with(&profile).await;
    until("load from Prometheus", 10, || srv.utilisation("app.hc.test./onprem").is_some()).await;
    assert!((srv.utilisation("app.hc.test./onprem").unwrap() - 0.7).abs() < 1e-9);

    // Prometheus goes down: the load turns unknown after stale_after, never zero.
    drop(prom);
    until("load stale without Prometheus", 10, || srv.utilisation("app.hc.test./onprem").is_none())
        .await;
    assert!(srv.load("app.hc.test./onprem").unwrap().failing);
    srv.stop().await;
}

/// Exec hooks are bounded: a hook writing 200 MB keeps 64 KiB and says how much it dropped
/// (memory stays flat); a hook that forks a child and hangs is killed with its child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_hooks_are_bounded() {
    use meridian::control::load::run_with_timeout;
    let sh = |script: &str| vec!["sh".to_string(), "-c".to_string(), script.to_string()];
    let rss = || {
        let s = std::fs::read_to_string("/proc/self/status").unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .unwrap()
            .trim()
            .trim_end_matches(" kB")
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let before = rss();
    // 200 MB on stderr and stdout, then failing: the error carries the kept part only.
    let err = run_with_timeout(
        &sh("head -c 100000000 /dev/zero | tr '\\0' x; head -c 100000000 /dev/zero | tr '\\0' y >&2; exit 3"),
        "{}",
        Duration::from_secs(60),
    )
    .await
    .unwrap_err();
    assert!(err.contains("exit status: 3"), "{}", &err[..200.min(err.len())]);
    assert!(err.len() < 70 * 1024, "{} bytes of error", err.len());
    assert!(err.ends_with("(99934464 more bytes discarded)"), "{}", &err[err.len() - 80..]);
    // Other tests share this process, so the bound is loose; reading the output whole (as
    // before) takes at least 200 MB.
    let grown = rss().saturating_sub(before);
    assert!(grown < 100 * 1024, "RSS grew by {grown} kB while reading 200 MB of hook output");

    // A hook that forks a child which hangs (holding the hook's output) and exits itself:
    // at the timeout the whole group is killed, the child too.
    let dir = TempDir::new();
    let pidfile = dir.path().join("child.pid");
    let script = format!("sleep 300 & echo $! > {}; echo started", pidfile.display());
    let err = run_with_timeout(&sh(&script), "{}", Duration::from_secs(2)).await.unwrap_err();
    assert!(err.contains("ran longer than 2s; its process group was killed"), "{err}");
    let child: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let gone = || {
        !std::path::Path::new(&format!("/proc/{child}")).exists()
            || std::fs::read_to_string(format!("/proc/{child}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    };
    until("the hook's child is gone", 5, gone).await;
    // A hook that ends normally is fine, with its output logged.
    run_with_timeout(
        &sh("cat > /dev/null; echo fine"),
        "{\"event\": \"warm\"}",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
}
