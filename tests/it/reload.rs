//! Reload: a good configuration is swapped in atomically; a bad one changes nothing and says
//! why; queries in flight during reloads are all answered.

use crate::harness::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    let dir = TempDir::new();
    dir.write("z.zone", ZONE);
    let cfg = dir.write("meridian.toml", &config(""));
    let srv = Arc::new(TestServer::start_config(dir, cfg).await);
    let done = Arc::new(AtomicBool::new(false));

    // A steady query stream, bounded in count, running while the reloads happen.
    let load = {
        let (srv, done) = (srv.clone(), done.clone());
        tokio::spawn(async move {
            let q = bytes(&query("api.reload.test.", "A", None));
            let (mut sent, mut bad) = (0u32, Vec::new());
            while !done.load(Ordering::Relaxed) && sent < 20_000 {
                sent += 1;
                match srv.udp(&q).await {
                    Some(a) => {
                        let r = render(&a);
                        if !r.starts_with("NOERROR aa\nan: api.reload.test. 60 A 192.0.2.") {
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
}
