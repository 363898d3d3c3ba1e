//! Live state under churn: probe results, overrides and reloads racing each other. Whatever
//! the timing, every endpoint's served status (seen in DNS answers), `/v1/status` and
//! `/metrics` must end up agreeing with its last probe result and its override.

use crate::admin::http;
use crate::fake::Fake;
use crate::harness::*;
use crate::health::{HC_ZONE, server_with, until};
use meridian::live::{AdminOverride, ProbeResult};
use meridian::traffic::policy::Status;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How many probed endpoints the stress test runs (each in a profile of its own, with an
/// unmonitored fallback, so that its DNS answer shows whether it is served).
const ENDPOINTS: usize = 200;
/// How long targets flip, overrides change and reloads run back to back.
const CHURN: Duration = Duration::from_secs(6);

fn ip(i: usize) -> String {
    format!("127.1.{}.{}", i / 250, i % 250 + 1)
}

fn profiles(fakes: &[Fake], ttl: u32) -> String {
    let mut s = String::new();
    for (i, f) in fakes.iter().enumerate() {
        s += &format!(
            "[[profile]]\nname = \"p{i}.hc.test.\"\nmethod = \"priority\"\nttl = {ttl}\n\
             [profile.monitor]\ninterval = \"1s\"\ntimeout = \"500ms\"\ntolerated_failures = 0\n\
             [[profile.endpoint]]\nname = \"e\"\naddress = \"{}\"\npriority = 1\n[profile.endpoint.monitor]\nport = {}\n\
             [[profile.endpoint]]\nname = \"fallback\"\naddress = \"192.0.2.1\"\npriority = 2\nmonitor = false\n",
            ip(i),
            f.port()
        );
    }
    s
}

/// A small xorshift, seeded, so that a failing run can be replayed.
struct Rand(u64);

impl Rand {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_overrides_and_reloads_racing_lose_nothing() {
    let mut fakes = Vec::new();
    for i in 0..ENDPOINTS {
        fakes.push(Fake::http(&ip(i)).await);
    }
    let srv = server_with(&profiles(&fakes, 30)).await;
    let running = srv.running.as_ref().unwrap();
    let api = running.admin_addr().unwrap();
    let cfg = srv.dir.path().join("meridian.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let head = text.split("[[profile]]").next().unwrap().to_string();
    let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("stress seed {seed}");

    // What each endpoint should end as: its target up or down, and overridden off or not.
    // Targets flip and overrides change in tasks of their own while the reloads run back to
    // back below, so that results land before, during and after every build and swap.
    let up = Arc::new(Mutex::new(vec![true; ENDPOINTS]));
    let disabled = Arc::new(Mutex::new(vec![false; ENDPOINTS]));
    let stop = Arc::new(AtomicBool::new(false));
    let flipper = {
        let (up, stop, fakes) = (up.clone(), stop.clone(), fakes.clone());
        let mut rng = Rand(seed | 1);
        tokio::spawn(async move {
            let mut flips = 0u32;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..5 {
                    let i = rng.below(ENDPOINTS as u64) as usize;
                    let mut up = up.lock().unwrap();
                    up[i] = !up[i];
                    fakes[i].set_status(if up[i] { 200 } else { 503 });
                    flips += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            flips
        })
    };
    let overrider = {
        let (disabled, stop) = (disabled.clone(), stop.clone());
        let mut rng = Rand((seed >> 1) | 1);
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let i = rng.below(ENDPOINTS as u64) as usize;
                let off = rng.below(2) == 0;
                let body = format!(r#"{{"enabled": {}}}"#, !off);
                let path = format!("/v1/profiles/p{i}.hc.test/endpoints/e");
                let (code, b) = http(api, "PUT", &path, None, Some(&body)).await;
                assert_eq!(code, 200, "{b}");
                disabled.lock().unwrap()[i] = off;
                n += 1;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            n
        })
    };
    let mut reloads = 0u32;
    let mut reload_time = Duration::ZERO;
    let started = Instant::now();
    let mut ttl = 30;
    while started.elapsed() < CHURN {
        ttl = if ttl == 30 { 31 } else { 30 };
        std::fs::write(&cfg, format!("{head}{}", profiles(&fakes, ttl))).unwrap();
        let t = Instant::now();
        running.reload().await.expect("the reload is accepted");
        reload_time += t.elapsed();
        reloads += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let flips = flipper.await.unwrap();
    let overrides = overrider.await.unwrap();
    let up = up.lock().unwrap().clone();
    let disabled = disabled.lock().unwrap().clone();
    // Targets now hold still. Two probe intervals later every endpoint has had a probe with
    // its final answer, and no status changes any more.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let (_, status) = http(api, "GET", "/v1/status", None, None).await;
    let status: Value = serde_json::from_str(&status).unwrap();
    let shown: HashMap<String, (String, Option<bool>)> = status["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let e = &p["endpoints"][0];
            let st = e["status"].as_str().unwrap().to_string();
            (p["name"].as_str().unwrap().to_string(), (st, e["last_probe"]["ok"].as_bool()))
        })
        .collect();
    let (_, metrics) = http(api, "GET", "/metrics", None, None).await;
    let mut wrong = Vec::new();
    for i in 0..ENDPOINTS {
        let name = format!("p{i}.hc.test.");
        let want = match (disabled[i], up[i]) {
            (true, _) => Status::Disabled,
            (false, true) => Status::Online,
            (false, false) => Status::Degraded,
        };
        let served = want == Status::Online;
        let dns = render(&srv.udp(&bytes(&query(&name, "A", None))).await.unwrap());
        let dns_served = dns.contains(&format!(" A {}", ip(i)));
        let (api_status, probe_ok) = &shown[&name];
        let series = format!(
            "meridian_endpoint_status{{profile=\"{name}\",endpoint=\"e\",status=\"{}\"}} 1",
            want.as_str()
        );
        if dns_served != served
            || api_status != want.as_str()
            || *probe_ok != Some(up[i])
            || !metrics.lines().any(|l| l == series)
        {
            wrong.push(format!(
                "{name}: want {} (target up {}), DNS served {dns_served}, API {api_status} (last probe ok {probe_ok:?}), metrics {}",
                want.as_str(),
                up[i],
                metrics.lines().any(|l| l == series)
            ));
        }
    }
    eprintln!(
        "{ENDPOINTS} endpoints, {reloads} reloads ({:?} each), {flips} flips, {overrides} overrides: {} mismatches",
        reload_time / reloads.max(1),
        wrong.len()
    );
    assert!(reloads >= 10, "the churn ran {reloads} reloads");
    assert!(wrong.is_empty(), "{} endpoints disagree:\n{}", wrong.len(), wrong.join("\n"));
    srv.stop().await;
}

/// The deterministic version of the race: a probe result and an override are written after
/// the next snapshot was built from the current one and before it is swapped in. The new
/// snapshot must see both, because it holds the same live objects.
#[test]
fn a_write_between_build_and_swap_is_not_lost() {
    let dir = TempDir::new();
    dir.write("hc.zone", HC_ZONE);
    let cfg = dir.write(
        "meridian.toml",
        "[[zone]]\nname = \"hc.test.\"\nfile = \"hc.zone\"\n\
         [[profile]]\nname = \"app.hc.test.\"\nmethod = \"priority\"\n\
         [[profile.endpoint]]\nname = \"a\"\naddress = \"192.0.2.10\"\npriority = 1\n\
         [[profile.endpoint]]\nname = \"b\"\naddress = \"192.0.2.11\"\npriority = 2\n",
    );
    let shared = meridian::state::Shared::new(meridian::state::load(&cfg).unwrap());
    let old = shared.load_full();
    // The reload builds its snapshot...
    let new = meridian::state::load_with(&cfg, Some(&old)).unwrap();
    // ...a probe task and the admin API write through what they hold (the old snapshot's
    // objects)...
    let key = |k: &str| k.parse().unwrap();
    let a = old.policies.endpoint_by_key(&key("app.hc.test./a")).unwrap();
    let b = old.policies.endpoint_by_key(&key("app.hc.test./b")).unwrap();
    let probe = ProbeResult {
        at: SystemTime::now(),
        ok: false,
        status_code: Some(503),
        error: Some("unexpected status 503".into()),
        latency: Duration::from_millis(2),
    };
    old.signals.endpoint(a).record_probe(probe.clone(), Some(Status::Degraded));
    old.signals.endpoint(b).set_override(Some(AdminOverride {
        enabled: false,
        reason: Some("maintenance".into()),
        set_at: SystemTime::now(),
        expires_at: None,
    }));
    // ...and then the swap.
    shared.store(new);
    let now = shared.load();
    let a = now.policies.endpoint_by_key(&key("app.hc.test./a")).unwrap();
    let b = now.policies.endpoint_by_key(&key("app.hc.test./b")).unwrap();
    assert_eq!(now.signals.status(a), Status::Degraded);
    assert_eq!(now.signals.endpoint(a).detail().health.last_probe.as_ref(), Some(&probe));
    assert_eq!(now.signals.admin(b), meridian::traffic::policy::Override::Disabled);
    assert_eq!(
        now.signals.endpoint(b).detail().admin.as_ref().and_then(|o| o.reason.as_deref()),
        Some("maintenance")
    );
}

/// Pruning: after a reload removes an endpoint, its series leave `/metrics` once the grace
/// period is over, and straight away from `/v1/status`; renaming endpoints over and over
/// does not grow the exposition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_endpoints_leave_status_and_metrics() {
    let profile = |n: usize| {
        format!(
            "[[profile]]\nname = \"app.hc.test.\"\nmethod = \"priority\"\n\
             [[profile.endpoint]]\nname = \"e{n}\"\naddress = \"192.0.2.10\"\npriority = 1\n\
             [[profile.endpoint]]\nname = \"f{n}\"\naddress = \"192.0.2.11\"\npriority = 2\n"
        )
    };
    let srv = server_with(&profile(0)).await;
    let running = srv.running.as_ref().unwrap();
    // Long enough for the reloads and a scrape below, short enough for a test.
    srv.runtime().set_retired_grace(Duration::from_secs(3));
    let api = running.admin_addr().unwrap();
    let cfg = srv.dir.path().join("meridian.toml");
    let head =
        std::fs::read_to_string(&cfg).unwrap().split("[[profile]]").next().unwrap().to_string();
    for n in 1..=30 {
        std::fs::write(&cfg, format!("{head}{}", profile(n))).unwrap();
        running.reload().await.unwrap();
    }
    let (_, status) = http(api, "GET", "/v1/status", None, None).await;
    assert!(status.contains("\"e30\"") && !status.contains("\"e29\""), "{status}");
    let (_, m) = http(api, "GET", "/metrics", None, None).await;
    let series = |m: &str| m.lines().filter(|l| l.starts_with("meridian_endpoint_status{")).count();
    // Status gauges are the current endpoints' only: 2 endpoints × 5 statuses.
    assert_eq!(series(&m), 10, "{m}");
    // Answer counters of removed endpoints stay for the grace period (a last scrape sees
    // them), then go.
    let answers =
        |m: &str| m.lines().filter(|l| l.starts_with("meridian_endpoint_answers_total{")).count();
    assert_eq!(answers(&m), 62, "the current 2 and the 60 retired within the grace period");
    let rt = srv.runtime();
    until("the grace period passes", 8, || rt.retired_endpoints().is_empty()).await;
    let (_, m) = http(api, "GET", "/metrics", None, None).await;
    assert_eq!(answers(&m), 2, "{m}");
    srv.stop().await;
}
