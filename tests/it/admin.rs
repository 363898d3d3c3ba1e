//! The admin HTTP API and metrics, through real HTTP requests.

use crate::fake::Fake;
use crate::harness::*;
use crate::health::{answer, server_with, status, until};
use meridian::traffic::policy::Status;
use serde_json::Value;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP request; returns the status code and body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    tokio::time::timeout(ANSWER_WAIT, s.read_to_string(&mut resp))
        .await
        .expect("admin answered in time")
        .unwrap();
    let code = resp.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap_or_default();
    (code, body)
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn admin(srv: &TestServer) -> SocketAddr {
    srv.running.as_ref().unwrap().admin_addr().expect("admin API on")
}

/// The value of one metric line (name with labels, exactly as rendered).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_overrides_and_expiry() {
    let (a, b) = (Fake::http("127.0.0.61").await, Fake::http("127.0.0.62").await);
    let profile = format!(
        "[[profile]]\nname = \"app.hc.test.\"\nmethod = \"priority\"\n[profile.monitor]\ninterval = \"1s\"\ntimeout = \"500ms\"\n\
         [[profile.endpoint]]\nname = \"stack-hub\"\naddress = \"127.0.0.61\"\npriority = 1\n[profile.endpoint.monitor]\nport = {}\n\
         [[profile.endpoint]]\nname = \"azure\"\naddress = \"127.0.0.62\"\npriority = 2\n[profile.endpoint.monitor]\nport = {}\n\
         [[profile.endpoint]]\nname = \"spare\"\naddress = \"127.0.0.63\"\npriority = 3\nenabled = false\nmonitor = false\n",
        a.port(),
        b.port()
    );
    let srv = server_with(&profile).await;
    let api = admin(&srv);
    assert_eq!(http(api, "GET", "/healthz", None, None).await.0, 200);
    assert_eq!(http(api, "GET", "/readyz", None, None).await.0, 200);
    until("probes done", 5, || {
        status(&srv, "app.hc.test./azure") == Some(Status::Online)
            && status(&srv, "app.hc.test./stack-hub") == Some(Status::Online)
    })
    .await;

    let (code, body) = http(api, "GET", "/v1/status", None, None).await;
    assert_eq!(code, 200);
    let v = json(&body);
    let eps = &v["profiles"][0]["endpoints"];
    assert_eq!(v["profiles"][0]["name"], "app.hc.test.");
    assert_eq!(eps[0]["name"], "stack-hub");
    assert_eq!(eps[0]["status"], "Online");
    assert_eq!(eps[0]["last_probe"]["status_code"], 200);
    assert_eq!(eps[0]["last_probe"]["ok"], true);
    assert!(eps[0]["last_probe"]["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(eps[0]["since"].as_str().unwrap().ends_with('Z'));
    assert_eq!(eps[2]["status"], "Disabled");
    assert_eq!(eps[2]["monitored"], false);
    assert!(v["last_reload_error"].is_null());

    // Disable the on-premises endpoint for ten minutes, with a reason: long enough that the
    // checks below never race the expiry.
    let (code, body) = http(
        api,
        "PUT",
        "/v1/profiles/app.hc.test/endpoints/stack-hub",
        None,
        Some(r#"{"enabled": false, "reason": "patching", "expires_in": "10m"}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let e = json(&body);
    assert_eq!(e["status"], "Disabled");
    assert_eq!(e["override"]["reason"], "patching");
    assert!((599..=600).contains(&e["override"]["expires_in_seconds"].as_u64().unwrap()), "{e}");
    assert_eq!(answer(&srv, "app.hc.test.").await, "127.0.0.62");
    let (_, m) = http(api, "GET", "/metrics", None, None).await;
    assert_eq!(metric(&m, "meridian_admin_overrides"), Some(1.0));
    // An override lapses by itself: the same one with a one-second expiry, and only a wait.
    let (code, body) = http(
        api,
        "PUT",
        "/v1/profiles/app.hc.test/endpoints/stack-hub",
        None,
        Some(r#"{"enabled": false, "reason": "patching", "expires_in": 1}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    until("override expired", 4, || {
        srv.endpoint("app.hc.test./stack-hub").unwrap().detail().admin.is_none()
    })
    .await;
    assert_eq!(answer(&srv, "app.hc.test.").await, "127.0.0.61");
    let (_, body) = http(api, "GET", "/v1/status", None, None).await;
    assert!(json(&body)["profiles"][0]["endpoints"][0]["override"].is_null());

    // Enabling an endpoint the configuration disables is an override too; it serves.
    http(
        api,
        "PUT",
        "/v1/profiles/app.hc.test./endpoints/stack-hub",
        None,
        Some(r#"{"enabled": false}"#),
    )
    .await;
    http(
        api,
        "PUT",
        "/v1/profiles/APP.hc.test/endpoints/azure",
        None,
        Some(r#"{"enabled": false}"#),
    )
    .await;
    let (code, _) = http(
        api,
        "PUT",
        "/v1/profiles/app.hc.test/endpoints/spare",
        None,
        Some(r#"{"enabled": true}"#),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(answer(&srv, "app.hc.test.").await, "127.0.0.63");
    // Setting it back to what the configuration says clears the override.
    http(
        api,
        "PUT",
        "/v1/profiles/app.hc.test/endpoints/stack-hub",
        None,
        Some(r#"{"enabled": true}"#),
    )
    .await;
    assert_eq!(answer(&srv, "app.hc.test.").await, "127.0.0.61");
    assert!(srv.endpoint("app.hc.test./stack-hub").unwrap().detail().admin.is_none());

    // Bad requests get 4xx and a JSON error naming the problem.
    let cases: &[(&str, &str, Option<&str>, u16, &str)] = &[
        (
            "PUT",
            "/v1/profiles/nope.hc.test/endpoints/x",
            Some(r#"{"enabled": true}"#),
            404,
            "no profile",
        ),
        (
            "PUT",
            "/v1/profiles/app.hc.test/endpoints/x",
            Some(r#"{"enabled": true}"#),
            404,
            "has no endpoint \"x\"",
        ),
        ("PUT", "/v1/profiles/app.hc.test/endpoints/azure", Some("{"), 400, "not JSON"),
        (
            "PUT",
            "/v1/profiles/app.hc.test/endpoints/azure",
            Some(r#"{"enabled": "no"}"#),
            400,
            "\"enabled\": true or false is required",
        ),
        (
            "PUT",
            "/v1/profiles/app.hc.test/endpoints/azure",
            Some(r#"{"enabled": false, "expires_in": "soon"}"#),
            400,
            "not a duration",
        ),
        (
            "PUT",
            "/v1/profiles/app.hc.test/endpoints/azure",
            Some(r#"{"enabled": false, "expires_in": 18446744073709551615}"#),
            400,
            "at most a year",
        ),
        (
            "PUT",
            "/v1/profiles/app.hc.test/endpoints/azure",
            Some(r#"{"enabled": false, "expires_in": "100000000000d"}"#),
            400,
            "expires_in",
        ),
        (
            "PUT",
            "/v1/profiles/app.hc.test/endpoints/azure",
            Some(r#"{"enabled": false, "colour": 1}"#),
            400,
            "unknown field \"colour\"",
        ),
        ("DELETE", "/v1/status", None, 405, "DELETE is not allowed"),
        ("GET", "/v2/anything", None, 404, "no such resource"),
        ("GET", "/v1/explain?name=app.hc.test", None, 400, "explain needs"),
    ];
    for (method, path, body, want, says) in cases {
        let (code, text) = http(api, method, path, None, *body).await;
        assert_eq!(code, *want, "{method} {path}: {text}");
        assert!(json(&text)["error"].as_str().unwrap().contains(says), "{method} {path}: {text}");
    }
    let big = "x".repeat(70_000);
    assert_eq!(
        http(api, "PUT", "/v1/profiles/app.hc.test/endpoints/azure", None, Some(&big)).await.0,
        413
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_required_when_configured() {
    let dir = TempDir::new();
    let cfg = write_config(&dir, "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let token = "correct-horse-battery-staple";
    std::fs::write(
        &cfg,
        text.replace(
            "[admin]\nlisten = \"127.0.0.1:0\"\n",
            &format!("[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{token}\"\n"),
        ),
    )
    .unwrap();
    let srv = TestServer::start_config(dir, cfg).await;
    let api = admin(&srv);
    for path in ["/v1/status", "/metrics", "/v1/explain?name=prio.tm.test&client=10.0.0.1"] {
        let (code, body) = http(api, "GET", path, None, None).await;
        assert_eq!(code, 401, "{path}");
        assert!(body.contains("bearer token"), "{body}");
        assert_eq!(http(api, "GET", path, Some("wrong-token-wrong-token"), None).await.0, 401);
        assert_eq!(http(api, "GET", path, Some(token), None).await.0, 200, "{path}");
    }
    // Liveness and readiness stay open for load balancers.
    assert_eq!(http(api, "GET", "/healthz", None, None).await.0, 200);
    assert_eq!(http(api, "GET", "/readyz", None, None).await.0, 200);
    srv.stop().await;

    // Off loopback without a token, the configuration is refused.
    let dir = TempDir::new();
    dir.write("z.zone", "$TTL 60\n@ SOA ns h 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n");
    let cfg = dir.write(
        "m.toml",
        "[admin]\nlisten = \"0.0.0.0:8053\"\n[[zone]]\nname = \"x.test\"\nfile = \"z.zone\"\n",
    );
    let err = meridian::state::load(&cfg).unwrap_err().to_string();
    assert!(err.contains("m.toml:2:10: the admin API on 0.0.0.0:8053 is reachable from other machines but has no token"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_explain_and_metrics() {
    let srv = TestServer::start().await;
    let api = admin(&srv);

    // Metrics count exactly what was asked.
    for _ in 0..7 {
        srv.udp(&bytes(&query("nope.app.example.com.", "A", None))).await.unwrap();
    }
    for _ in 0..5 {
        srv.udp(&bytes(&query("prio.tm.test.", "A", None))).await.unwrap();
    }
    srv.tcp(&bytes(&query("example.org.", "A", None))).await.unwrap();
    let (code, m) = http(api, "GET", "/metrics", None, None).await;
    assert_eq!(code, 200);
    assert_eq!(
        metric(&m, r#"meridian_dns_queries_total{transport="udp",rcode="NXDOMAIN"}"#),
        Some(7.0)
    );
    assert_eq!(
        metric(&m, r#"meridian_dns_queries_total{transport="udp",rcode="NOERROR"}"#),
        Some(5.0)
    );
    assert_eq!(
        metric(&m, r#"meridian_dns_queries_total{transport="tcp",rcode="REFUSED"}"#),
        Some(1.0)
    );
    assert_eq!(metric(&m, r#"meridian_profile_queries_total{profile="prio.tm.test."}"#), Some(5.0));
    assert_eq!(
        metric(&m, r#"meridian_endpoint_answers_total{profile="prio.tm.test.",endpoint="a"}"#),
        Some(5.0)
    );
    assert_eq!(
        metric(&m, r#"meridian_endpoint_answers_total{profile="prio.tm.test.",endpoint="b"}"#),
        Some(0.0)
    );
    // Latency is measured on one answer in 16 of each UDP worker and TCP connection, the
    // first among them: at least one of the 13, never more than there were.
    let timed = metric(&m, r#"meridian_dns_answer_duration_seconds_count"#).unwrap();
    assert!((1.0..=13.0).contains(&timed), "{timed} answers timed");
    assert_eq!(
        metric(
            &m,
            r#"meridian_endpoint_status{profile="prio.tm.test.",endpoint="a",status="Unmonitored"}"#
        ),
        Some(1.0)
    );
    assert!(m.contains("# TYPE meridian_dns_answer_duration_seconds histogram"));

    // Explain through the API uses the live status.
    let snap = srv.running.as_ref().unwrap().shared().load();
    let a = snap.policies.endpoint_by_key(&"prio.tm.test./a".parse().unwrap()).unwrap();
    snap.signals.set_status(a, Status::Degraded);
    let (code, body) =
        http(api, "GET", "/v1/explain?name=prio.tm.test&type=A&client=10.1.2.3%2F24", None, None)
            .await;
    assert_eq!(code, 200, "{body}");
    let e = json(&body);
    assert_eq!(e["records"][0], "answer: prio.tm.test. 30 IN A 192.0.2.2");
    assert!(
        e["trace"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("endpoint a: unavailable (status Degraded)")),
        "{body}"
    );
    assert_eq!(e["ecs_scope"], 0);
    // Explanations are not counted as queries.
    let (_, m) = http(api, "GET", "/metrics", None, None).await;
    assert_eq!(metric(&m, r#"meridian_profile_queries_total{profile="prio.tm.test."}"#), Some(5.0));

    // Reload: fine, then broken (422, diagnostics, shown in status), then fine again.
    let (code, body) = http(api, "POST", "/v1/reload", None, None).await;
    assert_eq!((code, json(&body)["reloaded"].as_bool()), (200, Some(true)));
    let zone = srv.dir.path().join("tm.test.zone");
    let good = std::fs::read_to_string(&zone).unwrap();
    std::fs::write(&zone, format!("{good}target CNAME elsewhere\n")).unwrap();
    let (code, body) = http(api, "POST", "/v1/reload", None, None).await;
    assert_eq!(code, 422, "{body}");
    let d = json(&body);
    assert!(
        d["diagnostics"][0]
            .as_str()
            .unwrap()
            .contains("tm.test.zone:6:1: target.tm.test. has a CNAME and other data"),
        "{body}"
    );
    let (_, body) = http(api, "GET", "/v1/status", None, None).await;
    assert!(
        json(&body)["last_reload_error"].as_str().unwrap().contains("has a CNAME and other data")
    );
    let (_, m) = http(api, "GET", "/metrics", None, None).await;
    assert_eq!(metric(&m, "meridian_reloads_total"), Some(1.0));
    assert_eq!(metric(&m, "meridian_reload_failures_total"), Some(1.0));
    std::fs::write(&zone, good).unwrap();
    assert_eq!(http(api, "POST", "/v1/reload", None, None).await.0, 200);
    let (_, body) = http(api, "GET", "/v1/status", None, None).await;
    assert!(json(&body)["last_reload_error"].is_null());
    // The exposition passes Prometheus's own checker (format and naming conventions).
    let (_, m) = http(api, "GET", "/metrics", None, None).await;
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (the test command installs prometheus)");
    use std::io::Write;
    promtool.stdin.take().unwrap().write_all(m.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Counters survive reloads.
    let (_, m) = http(api, "GET", "/metrics", None, None).await;
    assert_eq!(metric(&m, r#"meridian_profile_queries_total{profile="prio.tm.test."}"#), Some(5.0));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_shows_profiles_and_a_chart() {
    let srv = TestServer::start().await;
    let api = admin(&srv);
    let rt = srv.runtime().clone();
    let sample = || rt.sample_history(&srv.running.as_ref().unwrap().shared().load());
    let (code, page) = http(api, "GET", "/", None, None).await;
    assert_eq!(code, 200);
    assert!(
        page.starts_with("<!doctype html>") && page.contains("<h2>prio.tm.test.</h2>"),
        "{page}"
    );
    assert!(page.contains("after two samples"), "no chart before two samples");
    // Two samples around some traffic: the chart appears, with a line for the endpoint that
    // answered.
    sample();
    for _ in 0..20 {
        srv.udp(&bytes(&query("prio.tm.test.", "A", None))).await.unwrap();
    }
    sample();
    let (_, page) = http(api, "GET", "/", None, None).await;
    // A chart per burst profile, with its thresholds; then every endpoint's answers.
    assert!(page.contains(">burst.tm.test. (burst)</text>"), "{page}");
    assert!(page.contains(">target 65 %</text>") && page.contains(">burst_at 80 %</text>"));
    let (_, all) = page.split_once(">answers per second, every endpoint</text>").expect("{page}");
    assert_eq!(all.matches("<polyline").count(), 1, "one endpoint answered");
    assert!(all.contains("prio.tm.test./a</text>"));
    srv.stop().await;
}

/// Everything the page shows from configuration or requests is escaped: an endpoint named with
/// markup and an override reason with a script tag appear as text, never as markup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_escapes_names_and_reasons() {
    let profile = "[[profile]]\nname = \"app.hc.test.\"\nmethod = \"priority\"\n\
                   [[profile.endpoint]]\nname = \"<b>web&co</b>\"\naddress = \"192.0.2.10\"\npriority = 1\n";
    let srv = server_with(profile).await;
    let api = admin(&srv);
    let (code, body) = http(
        api,
        "PUT",
        "/v1/profiles/app.hc.test/endpoints/%3Cb%3Eweb%26co%3C%2Fb%3E",
        None,
        Some(r#"{"enabled": false, "reason": "<script>alert(1)</script>"}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (_, page) = http(api, "GET", "/", None, None).await;
    assert!(page.contains("&lt;b&gt;web&amp;co&lt;/b&gt;"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{page}");
    assert!(!page.contains("<b>web") && !page.contains("<script>alert"), "{page}");
    srv.stop().await;
}

/// Runs `script` with Debian's python3 (where the test command installs prometheus_client),
/// `input` on its stdin; panics with its output if it fails.
fn python(script: &str, input: &str) -> String {
    use std::io::Write;
    let mut p = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    p.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// The exposition holds up to strict readers: prometheus_client's text parser sees every
/// family once (its samples together), its OpenMetrics parser (strict about grouping,
/// metadata and `# EOF`) accepts the negotiated OpenMetrics form, build and process metrics
/// are there, and a real Prometheus scrapes it and answers PromQL over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_conformant_and_scraped_by_prometheus() {
    let srv = TestServer::start().await;
    let api = admin(&srv);
    for _ in 0..5 {
        srv.udp(&bytes(&query("prio.tm.test.", "A", None))).await.unwrap();
    }
    let (_, text) = http(api, "GET", "/metrics", None, None).await;
    let families = python(
        "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\n\
         names = [f.name for f in p(sys.stdin.read())]\n\
         dup = sorted({n for n in names if names.count(n) > 1})\n\
         assert not dup, 'families split or repeated: %s' % dup\n\
         print('\\n'.join(names))",
        &text,
    );
    for want in [
        "meridian_build_info",
        "process_resident_memory_bytes",
        "process_cpu_seconds",
        "process_open_fds",
        "process_start_time_seconds",
        "meridian_dns_queries",
    ] {
        assert!(families.lines().any(|l| l == want), "no family {want} in:\n{families}");
    }
    assert!(text.contains("meridian_build_info{version=\""), "{text}");
    // OpenMetrics, when asked for it.
    let mut s = tokio::net::TcpStream::connect(api).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    let (head, om) = resp.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(om.ends_with("# EOF\n"));
    let checked = python(
        "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as p\n\
         fams = list(p(sys.stdin.read()))\nprint(len(fams), sum(len(f.samples) for f in fams))",
        om,
    );
    let n: Vec<usize> = checked.split_whitespace().map(|x| x.parse().unwrap()).collect();
    assert!(n[0] >= 20 && n[1] >= n[0], "OpenMetrics families and samples: {checked}");

    // A real Prometheus scrapes it, and PromQL sees what was counted.
    let prom = crate::burst::start_prometheus(api.port());
    let url = format!("http://127.0.0.1:{}", prom.port);
    let ask =
        |q: &str| meridian::config::LoadSource::Prometheus { url: url.clone(), query: q.into() };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let queries = loop {
        match meridian::control::load::fetch_value(&ask("sum(meridian_dns_queries_total)")).await {
            Ok(v) if v >= 5.0 => break v,
            other => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "prometheus never had the samples: {other:?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    };
    assert!(queries >= 5.0);
    let build =
        meridian::control::load::fetch_value(&ask("max(meridian_build_info)")).await.unwrap();
    assert_eq!(build, 1.0);
    let up = meridian::control::load::fetch_value(&ask("max(up)")).await.unwrap();
    assert_eq!(up, 1.0, "the scrape succeeded");
    srv.stop().await;
}

/// The status page opens in a real browser (Debian's headless Chromium) when a token is set:
/// HTTP Basic with the token as the password renders the page and its chart; a wrong token
/// gets nothing of it. `/healthz` and `/readyz` stay public.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_in_a_browser_with_a_token() {
    let token = "0123456789abcdef-in-a-browser";
    let dir = TempDir::new();
    let cfg = write_config(&dir, "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replacen("[admin]\n", &format!("[admin]\ntoken = \"{token}\"\n"), 1);
    std::fs::write(&cfg, text).unwrap();
    let srv = TestServer::start_config(dir, cfg).await;
    let api = admin(&srv);
    assert_eq!(http(api, "GET", "/healthz", None, None).await.0, 200);
    assert_eq!(http(api, "GET", "/readyz", None, None).await.0, 200);
    assert_eq!(http(api, "GET", "/", None, None).await.0, 401);
    // Two history samples around some traffic, so that the chart is drawn.
    let rt = srv.runtime().clone();
    rt.sample_history(&srv.running.as_ref().unwrap().shared().load());
    for _ in 0..20 {
        srv.udp(&bytes(&query("prio.tm.test.", "A", None))).await.unwrap();
    }
    rt.sample_history(&srv.running.as_ref().unwrap().shared().load());
    let browse = move |password: String| {
        let profile = TempDir::new();
        let out = std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
            ])
            .args(["--disable-component-update", "--no-first-run", "--timeout=20000"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--dump-dom")
            .arg(format!("http://operator:{password}@{api}/"))
            .output()
            .expect("chromium is installed (the test command installs Debian's chromium)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let page = tokio::task::spawn_blocking(move || browse(token.to_string())).await.unwrap();
    assert!(page.contains("<h1>Meridian</h1>"), "the page did not render:\n{page}");
    assert!(page.contains("<svg") && page.contains("answers per second, every endpoint"), "{page}");
    let page =
        tokio::task::spawn_blocking(move || browse("0123456789abcdef-wrong".into())).await.unwrap();
    assert!(!page.contains("<h1>Meridian</h1>") && !page.contains("<svg"), "{page}");
    srv.stop().await;
}

/// The Grafana dashboard (`deploy/grafana/meridian.json`) queries only metrics Meridian
/// exports: every metric name in every panel's PromQL is a family of `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_dashboard_queries_exported_metrics() {
    let srv = TestServer::start().await;
    let (_, text) = http(admin(&srv), "GET", "/metrics", None, None).await;
    let families: std::collections::BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/meridian.json")).unwrap(),
    )
    .unwrap();
    let mut used = std::collections::BTreeSet::new();
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            // Metric names: identifiers starting with meridian_ or process_.
            let mut rest = expr;
            while let Some(i) = rest.find(|c: char| c.is_ascii_alphabetic()) {
                let word: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[i + word.len().max(1)..];
                if word.starts_with("meridian_") || word.starts_with("process_") {
                    used.insert(word);
                }
            }
        }
    }
    assert!(used.len() >= 20, "{used:?}");
    for name in &used {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| families.contains(f)))
            .unwrap_or(name);
        assert!(
            families.contains(family),
            "the dashboard queries {name}, which Meridian does not export"
        );
    }
    srv.stop().await;
}
