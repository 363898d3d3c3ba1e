//! Reload: a good configuration is swapped in atomically; a bad one changes nothing and says
//! why; queries in flight during reloads are all answered.

use crate::harness::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const ZONE: &str =
    "$TTL 60\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\napi A 192.0.2.10\n";

fn config(extra_zone_key: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[[zone]]\nname = \"reload.test\"\nfile = \"z.zone\"\n{extra_zone_key}[admin]\nlisten = \"127.0.0.1:0\"\n"
    )
}

async fn api(srv: &TestServer) -> String {
    render(&srv.udp(&bytes(&query("api.reload.test.", "A", None))).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_reload_swaps_bad_reload_keeps_serving() {
    let dir = TempDir::new();
    dir.write("z.zone", ZONE);
    let cfg = dir.write("meridian.toml", &config(""));
    let srv = TestServer::start_config(dir, cfg).await;
    let running = srv.running.as_ref().unwrap();
    assert_eq!(api(&srv).await, "NOERROR aa\nan: api.reload.test. 60 A 192.0.2.10");

    srv.dir.write("z.zone", &ZONE.replace("192.0.2.10", "192.0.2.99"));
    running.reload().await.expect("valid reload");
    assert_eq!(api(&srv).await, "NOERROR aa\nan: api.reload.test. 60 A 192.0.2.99");

    // A broken zone file: the error names the zone file's line; the old data keeps serving.
    srv.dir.write("z.zone", &format!("{ZONE}www CNAME api\nwww A 192.0.2.7\nbad A 999.1.1.1\n"));
    let err = running.reload().await.expect_err("broken zone must be rejected").to_string();
    assert!(err.contains("z.zone:6:1: www.reload.test. has a CNAME and other data"), "{err}");
    assert!(err.contains("z.zone:8:7: invalid IPv4 address \"999.1.1.1\""), "{err}");
    assert_eq!(api(&srv).await, "NOERROR aa\nan: api.reload.test. 60 A 192.0.2.99");

    // A broken configuration: same.
    srv.dir.write("z.zone", ZONE);
    srv.dir.write("meridian.toml", &config("colour = \"blue\"\n"));
    let err = running.reload().await.expect_err("bad config must be rejected").to_string();
    assert!(err.contains("meridian.toml:6:1: unknown field `colour`"), "{err}");
    assert_eq!(api(&srv).await, "NOERROR aa\nan: api.reload.test. 60 A 192.0.2.99");

    // Fixed again: the next reload applies.
    srv.dir.write("meridian.toml", &config(""));
    running.reload().await.unwrap();
    assert_eq!(api(&srv).await, "NOERROR aa\nan: api.reload.test. 60 A 192.0.2.10");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_lose_no_query() {
    use crate::fake::Fake;
    // A static name, and a traffic-managed one whose endpoint is probed (Online): reloads also
    // re-plan probes, and must not disturb either.
    let app = Fake::http("127.0.0.81").await;
    let dir = TempDir::new();
    dir.write("z.zone", ZONE);
    let profile = format!(
        "[[profile]]\nname = \"www.reload.test.\"\nmethod = \"priority\"\n[profile.monitor]\nport = {}\ninterval = \"1s\"\ntimeout = \"500ms\"\n\
         [[profile.endpoint]]\nname = \"app\"\naddress = \"127.0.0.81\"\n",
        app.port()
    );
    let cfg = dir.write("meridian.toml", &format!("{}{profile}", config("")));
    let srv = Arc::new(TestServer::start_config(dir, cfg).await);
    crate::health::until("the endpoint Online", 5, || {
        crate::health::status(&srv, "www.reload.test./app")
            == Some(meridian::traffic::policy::Status::Online)
    })
    .await;
    let done = Arc::new(AtomicBool::new(false));

    // A steady query stream, bounded in count, running while the reloads happen.
    let load = {
        let (srv, done) = (srv.clone(), done.clone());
        tokio::spawn(async move {
            let queries = [
                (
                    bytes(&query("api.reload.test.", "A", None)),
                    "NOERROR aa\nan: api.reload.test. 60 A 192.0.2.",
                ),
                (
                    bytes(&query("www.reload.test.", "A", None)),
                    "NOERROR aa\nan: www.reload.test. 60 A 127.0.0.81",
                ),
            ];
            let (mut sent, mut bad) = (0u32, Vec::new());
            while !done.load(Ordering::Relaxed) && sent < 20_000 {
                let (q, want) = &queries[sent as usize % 2];
                sent += 1;
                match srv.udp(q).await {
                    Some(a) => {
                        let r = render(&a);
                        if !r.starts_with(want) {
                            bad.push(r);
                        }
                    }
                    None => bad.push("lost".into()),
                }
            }
            (sent, bad)
        })
    };
    let running = srv.running.as_ref().unwrap();
    for i in 0..20 {
        let addr = if i % 2 == 0 { "192.0.2.11" } else { "192.0.2.10" };
        srv.dir.write("z.zone", &ZONE.replace("192.0.2.10", addr));
        running.reload().await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let (sent, bad) = load.await.unwrap();
    assert!(sent > 20, "the load loop barely ran ({sent} queries)");
    assert!(
        bad.is_empty(),
        "{} of {sent} queries failed: {:?}",
        bad.len(),
        &bad[..bad.len().min(3)]
    );
    // The probed endpoint's health carried over every reload.
    assert_eq!(
        crate::health::status(&srv, "www.reload.test./app"),
        Some(meridian::traffic::policy::Status::Online)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_overrides_carry_over_reloads() {
    use crate::fake::Fake;
    use crate::health::{answer, health, server_with, status, until};
    use meridian::traffic::policy::Status;
    let (a, b, c) = (
        Fake::http("127.0.0.71").await,
        Fake::http("127.0.0.72").await,
        Fake::http("127.0.0.73").await,
    );
    let endpoint = |name: &str, f: &Fake, prio: u32| {
        format!(
            "[[profile.endpoint]]\nname = \"{name}\"\naddress = \"{}\"\npriority = {prio}\n[profile.endpoint.monitor]\nport = {}\n",
            f.addr.ip(),
            f.port()
        )
    };
    let head = |ttl: u32| {
        format!(
            "[[profile]]\nname = \"app.hc.test.\"\nmethod = \"priority\"\nttl = {ttl}\n[profile.monitor]\ninterval = \"1s\"\ntimeout = \"500ms\"\ntolerated_failures = 0\n"
        )
    };
    let srv =
        server_with(&format!("{}{}{}", head(5), endpoint("a", &a, 1), endpoint("b", &b, 2))).await;
    let running = srv.running.as_ref().unwrap();
    a.stop();
    until("a Degraded", 5, || status(&srv, "app.hc.test./a") == Some(Status::Degraded)).await;
    until("b Online", 5, || status(&srv, "app.hc.test./b") == Some(Status::Online)).await;
    srv.endpoint("app.hc.test./b").unwrap().set_override(Some(meridian::live::AdminOverride {
        enabled: false,
        reason: Some("test".into()),
        set_at: std::time::SystemTime::now(),
        expires_at: None,
    }));

    // Reload with a changed TTL, b kept, and c new: a stays Degraded and b stays disabled
    // straight away (no re-probing from scratch); c starts CheckingEndpoint (served).
    let cfg = srv.dir.path().join("meridian.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let base = text.split("[[profile]]").next().unwrap().to_string();
    std::fs::write(
        &cfg,
        format!(
            "{base}{}{}{}{}",
            head(7),
            endpoint("a", &a, 1),
            endpoint("b", &b, 2),
            endpoint("c", &c, 3)
        ),
    )
    .unwrap();
    running.reload().await.unwrap();
    let snap = running.shared().load();
    let id = |k: &str| snap.policies.endpoint_by_key(&k.parse().unwrap()).unwrap();
    assert_eq!(snap.signals.status(id("app.hc.test./a")), Status::Degraded);
    assert_eq!(
        snap.signals.admin(id("app.hc.test./b")),
        meridian::traffic::policy::Override::Disabled
    );
    assert!(matches!(
        snap.signals.status(id("app.hc.test./c")),
        Status::CheckingEndpoint | Status::Online
    ));
    drop(snap);
    let r = render(&srv.udp(&bytes(&query("app.hc.test.", "A", None))).await.unwrap());
    assert_eq!(r, "NOERROR aa\nan: app.hc.test. 7 A 127.0.0.73");
    until("c Online", 5, || status(&srv, "app.hc.test./c") == Some(Status::Online)).await;

    // Remove b: it is no longer probed, and its state is forgotten.
    std::fs::write(
        &cfg,
        format!("{base}{}{}{}", head(7), endpoint("a", &a, 1), endpoint("c", &c, 3)),
    )
    .unwrap();
    running.reload().await.unwrap();
    until("b forgotten", 3, || health(&srv, "app.hc.test./b").is_none()).await;
    let hits = b.hits();
    let c_before = health(&srv, "app.hc.test./c").unwrap().probes_ok;
    until("c probed twice more", 5, || {
        health(&srv, "app.hc.test./c").unwrap().probes_ok >= c_before + 2
    })
    .await;
    assert!(b.hits() <= hits + 1, "a removed endpoint is still being probed");
    assert_eq!(answer(&srv, "app.hc.test.").await, "127.0.0.73");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reloads_on_file_change() {
    let dir = TempDir::new();
    dir.write("z.zone", ZONE);
    let cfg =
        dir.write("meridian.toml", &config("").replace("[server]\n", "[server]\nwatch = true\n"));
    let srv = TestServer::start_config(dir, cfg).await;
    assert_eq!(api(&srv).await, "NOERROR aa\nan: api.reload.test. 60 A 192.0.2.10");
    srv.dir.write("z.zone", &ZONE.replace("192.0.2.10", "192.0.2.77"));
    // The file is polled every second; the answer changes within a few.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if api(&srv).await.ends_with("192.0.2.77") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the change was not picked up");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    srv.stop().await;
}

/// Waits (bounded) until `name` is answered with `want`.
async fn answers(srv: &TestServer, name: &str, want: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = render(&srv.udp(&bytes(&query(name, "A", None))).await.unwrap());
        if got == want {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{name}: still {got:?}, never {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A zone split with `$INCLUDE`: a change to an included file is a reload, and so is the fix
/// of a file that a failed reload newly included (which no snapshot had watched yet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_included_files() {
    let dir = TempDir::new();
    let head = "$TTL 60\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\n";
    dir.write("z.zone", &format!("{head}$INCLUDE hosts/api.zone\n"));
    dir.write("hosts/api.zone", "api A 192.0.2.10\n");
    let cfg =
        dir.write("meridian.toml", &config("").replace("[server]\n", "[server]\nwatch = true\n"));
    let srv = TestServer::start_config(dir, cfg).await;
    let rt = srv.runtime().clone();
    assert_eq!(api(&srv).await, "NOERROR aa\nan: api.reload.test. 60 A 192.0.2.10");

    srv.dir.write("hosts/api.zone", "api A 192.0.2.77\n");
    answers(&srv, "api.reload.test.", "NOERROR aa\nan: api.reload.test. 60 A 192.0.2.77").await;

    // A new include whose file is broken: the reload fails, the old data keeps serving.
    let failures = || rt.metrics.reload_failures.load(Ordering::Relaxed);
    let before = failures();
    srv.dir.write("hosts/new.zone", "new A 192.0.2.300\n");
    srv.dir.write("z.zone", &format!("{head}$INCLUDE hosts/api.zone\n$INCLUDE hosts/new.zone\n"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while failures() == before {
        assert!(std::time::Instant::now() < deadline, "the broken include was never tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = rt.reload_info().last_error.unwrap_or_default();
    assert!(err.contains("new.zone:1:7: invalid IPv4 address"), "{err}");
    assert_eq!(api(&srv).await, "NOERROR aa\nan: api.reload.test. 60 A 192.0.2.77");
    // Fixing only the included file is enough.
    srv.dir.write("hosts/new.zone", "new A 192.0.2.30\n");
    answers(&srv, "new.reload.test.", "NOERROR aa\nan: new.reload.test. 60 A 192.0.2.30").await;
    srv.stop().await;
}

fn watched_config(dir: &TempDir) -> std::path::PathBuf {
    dir.write(
        "meridian.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\nwatch = true\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [[zone]]\nname = \"reload.test\"\nfile = \"z.zone\"\n\
         [[zone]]\nname = \"slow.test\"\nfile = \"slow.zone\"\n",
    )
}

/// A zone large enough that reading it takes a noticeable time, so that a write can land
/// while a reload is under way.
fn slow_zone(records: usize) -> String {
    let mut z =
        String::from("$TTL 60\n@ SOA ns hostmaster 1 3600 600 86400 60\n@ NS ns\nns A 192.0.2.1\n");
    for i in 0..records {
        z.push_str(&format!("h{i} A 198.51.{}.{}\n", i / 250 % 250, i % 250));
    }
    z
}

/// A writer that writes a zone in pieces, pausing between them (not write-then-rename): the
/// watcher waits for the file to settle, so no partial zone is ever served or even loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_waits_for_a_slow_writer() {
    let dir = TempDir::new();
    dir.write("z.zone", ZONE);
    dir.write("slow.zone", &slow_zone(10));
    let cfg = watched_config(&dir);
    let srv = TestServer::start_config(dir, cfg).await;
    let rt = srv.runtime().clone();
    let reloads = || rt.metrics.reloads.load(Ordering::Relaxed);
    let before = reloads();
    let path = srv.dir.path().join("z.zone");
    let new = ZONE.replace("192.0.2.10", "192.0.2.77");
    let (a, b) = new.split_at(new.find("api").unwrap());
    // Truncate and write the first half: the file now has an SOA and NS but no `api`.
    std::fs::write(&path, a).unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Meanwhile the old data keeps serving: never the half-written zone's NXDOMAIN.
        assert_eq!(api(&srv).await, "NOERROR aa\nan: api.reload.test. 60 A 192.0.2.10");
    }
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    std::io::Write::write_all(&mut f, b.as_bytes()).unwrap();
    drop(f);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while api(&srv).await != "NOERROR aa\nan: api.reload.test. 60 A 192.0.2.77" {
        assert!(std::time::Instant::now() < deadline, "the finished file was never loaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(reloads() - before, 1, "one reload, for the finished file only");
    srv.stop().await;
}

/// A write that lands while a reload is reading the files is not missed: the watcher's
/// stamps were taken before the reload read anything, so the change shows afterwards and is
/// loaded by another reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_a_write_that_lands_during_a_reload() {
    let dir = TempDir::new();
    dir.write("z.zone", ZONE);
    dir.write("slow.zone", &slow_zone(60_000));
    let cfg = watched_config(&dir);
    let srv = TestServer::start_config(dir, cfg).await;
    let running = srv.running.as_ref().unwrap();
    // Time one reload, to write in the middle of the next one: z.zone is read first, then
    // the slow zone.
    let t = std::time::Instant::now();
    running.reload().await.unwrap();
    let took = t.elapsed();
    let path = srv.dir.path().join("z.zone");
    let writer = tokio::spawn(async move {
        tokio::time::sleep(took / 2).await;
        std::fs::write(&path, ZONE.replace("192.0.2.10", "192.0.2.88")).unwrap();
    });
    running.reload().await.unwrap();
    writer.await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while api(&srv).await != "NOERROR aa\nan: api.reload.test. 60 A 192.0.2.88" {
        assert!(std::time::Instant::now() < deadline, "the write during the reload was missed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    srv.stop().await;
}

/// `watch = true` also follows the configuration file itself and the GeoIP database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_the_config_and_the_geoip_database() {
    let dir = TempDir::new();
    let cfg = write_config(&dir, "watch = true");
    let srv = TestServer::start_config(dir, cfg.clone()).await;
    let ask = |name: &'static str, ecs: &'static str| {
        let q = bytes(&query_ecs(name, "A", ecs));
        let srv = &srv;
        async move { render(&srv.udp(&q).await.unwrap()) }
    };
    let changes_to = |want: &'static str, name: &'static str, ecs: &'static str| {
        let ask = &ask;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let a = ask(name, ecs).await;
                if a.contains(want) {
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "still {a}, never {want}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    // Japan is not mapped: the WORLD endpoint.
    assert!(ask("geo.tm.test.", "10.4.0.0/24").await.contains(" A 192.0.2.14"));
    // A new database places 10.4.0.0/16 in Germany: the EU endpoint, with no reload asked for.
    let rows = meridian::traffic::geo::mmdb::parse_csv(
        &GEO_CSV.replace("10.4.0.0/16,JP,AS,,35.68,139.77", "10.4.0.0/16,DE,EU,,50.11,8.68"),
    )
    .unwrap();
    std::fs::write(
        srv.dir.path().join("geo.mmdb"),
        meridian::traffic::geo::mmdb::build(&rows, "Test", 2),
    )
    .unwrap();
    changes_to(" A 192.0.2.11", "geo.tm.test.", "10.4.0.0/24").await;
    // The configuration file: the priority profile's first endpoint gets a new address.
    let text = std::fs::read_to_string(&cfg).unwrap();
    let edited =
        text.replacen("address = [\"192.0.2.1\", \"2001:db8::1\"]", "address = \"192.0.2.101\"", 1);
    assert_ne!(text, edited);
    std::fs::write(&cfg, edited).unwrap();
    changes_to("prio.tm.test. 30 A 192.0.2.101", "prio.tm.test.", "10.1.0.0/24").await;
    srv.stop().await;
}
