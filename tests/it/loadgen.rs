//! `meridian loadgen` against the in-process server (UDP and TCP, closed and open loop, ECS
//! reaching the geographic profile) and against a loopback server that drops, repeats and
//! mis-answers on purpose, to show that lost and mismatched replies are counted as such.

use crate::cli::meridian;
use crate::harness::*;
use meridian::tools::loadgen::{self, Options, Report};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// The shipped configuration on free loopback ports, its paths made absolute.
async fn shipped() -> TestServer {
    let dir = TempDir::new();
    let root = repo();
    let text = std::fs::read_to_string(root.join("meridian.toml"))
        .unwrap()
        .replace("127.0.0.1:5353", "127.0.0.1:0")
        .replace("127.0.0.1:8053", "127.0.0.1:0")
        .replace("\"zones/", &format!("\"{}/zones/", root.display()))
        .replace("\"geoip/", &format!("\"{}/geoip/", root.display()));
    let config = dir.write("meridian.toml", &text);
    TestServer::start_config(dir, config).await
}

fn options(server: SocketAddr, queries: &str) -> Options {
    Options {
        server,
        queries: loadgen::parse_queries(queries).unwrap(),
        ecs: Vec::new(),
        edns: false,
        tcp: false,
        sockets: 3,
        outstanding: 50,
        rate: None,
        duration: Duration::from_secs(20),
        count: None,
        timeout: Duration::from_secs(2),
        batch: 16,
    }
}

/// Runs the generator on its own thread (it blocks) while the server runs on the test's.
async fn run(opts: Options) -> Report {
    tokio::task::spawn_blocking(move || loadgen::run(&opts).unwrap()).await.unwrap()
}

const MIX: &str = "api.app.example.com A\nmail.app.example.com MX\nnope.app.example.com A\n\
                   www.app.example.com A\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_is_answered_and_counted_over_udp_and_tcp() {
    let srv = shipped().await;
    let before = srv.runtime().metrics.answered();
    for tcp in [false, true] {
        let mut opts = options(srv.addr, MIX);
        opts.tcp = tcp;
        opts.count = Some(4000);
        let r = run(opts).await;
        assert_eq!(
            (r.sent, r.answered, r.lost, r.mismatched),
            (4000, 4000, 0, 0),
            "tcp {tcp}: {r:?}"
        );
        // One name in four does not exist.
        assert_eq!(r.rcodes.get("NOERROR"), Some(&3000), "{r:?}");
        assert_eq!(r.rcodes.get("NXDOMAIN"), Some(&1000), "{r:?}");
        assert!(r.latency_us.p50 > 0.0 && r.latency_us.p50 <= r.latency_us.p99);
        assert!(r.latency_us.p99 <= r.latency_us.p999 && r.latency_us.p999 <= r.latency_us.max);
        assert!(r.qps > 0.0 && r.seconds > 0.0);
    }
    // The server saw exactly those queries.
    assert_eq!(srv.runtime().metrics.answered() - before, 8000);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_subnets_reach_the_geographic_profile_in_turn() {
    let srv = shipped().await;
    let mut opts = options(srv.addr, "geo.app.example.com A\n");
    // The demo database: 127.0.1.0/24 is Germany (GEO-EU), 127.0.0.0/24 the United States
    // (GEO-NA), 127.0.3.0/24 Japan (no endpoint of its own: WORLD).
    opts.ecs = ["127.0.1.0/24", "127.0.0.0/24", "127.0.3.0/24"]
        .iter()
        .map(|s| loadgen::parse_subnet(s).unwrap())
        .collect();
    opts.count = Some(3000);
    let r = run(opts).await;
    assert_eq!((r.answered, r.lost, r.mismatched), (3000, 0, 0), "{r:?}");
    for e in ["europe", "north-america", "global"] {
        let n = srv.endpoint(&format!("geo.app.example.com./{e}")).unwrap().answers();
        assert_eq!(n, 1000, "{e}");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_run_keeps_its_rate() {
    let srv = shipped().await;
    let mut opts = options(srv.addr, MIX);
    opts.rate = Some(2000.0);
    opts.count = Some(400);
    let r = run(opts).await;
    assert_eq!((r.sent, r.answered, r.lost), (400, 400, 0), "{r:?}");
    // Query k leaves no sooner than k / rate: the 400th at 199.5 ms at the earliest. (A
    // floor, which pacing guarantees; not a speed limit.)
    assert!(r.seconds >= 0.199, "{r:?}");
    srv.stop().await;
}

/// A server that drops query 10k, answers query 10k+1 with another question only (the right
/// ID: it must still not count), and answers query 10k+2 twice; the rest once. Stops after `total` queries.
fn unreliable_server(total: usize) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let addr = sock.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        for i in 0..total {
            let Ok((n, from)) = sock.recv_from(&mut buf) else { return };
            let mut reply = buf[..n].to_vec();
            reply[2] |= 0x84; // QR, AA
            match i % 10 {
                0 => continue,
                1 => {
                    let mut other = reply.clone();
                    other[13] ^= 0x20; // the question name's first letter, in the other case
                    sock.send_to(&other, from).unwrap();
                }
                2 => {
                    sock.send_to(&reply, from).unwrap();
                    sock.send_to(&reply, from).unwrap();
                }
                _ => {
                    sock.send_to(&reply, from).unwrap();
                }
            }
        }
    });
    (addr, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_and_mismatched_replies_are_counted_as_such() {
    let (addr, server) = unreliable_server(500);
    let mut opts = options(addr, "api.app.example.com A\n");
    opts.sockets = 1; // one socket, so the server's order is the generator's
    opts.outstanding = 1; // and one query at a time, so query k is the server's k-th
    opts.count = Some(500);
    opts.timeout = Duration::from_millis(50);
    let r = run(opts).await;
    server.join().unwrap();
    assert_eq!(r.sent, 500);
    assert_eq!(r.lost, 100, "{r:?}");
    assert_eq!(r.answered, 400, "{r:?}");
    // 50 answers to another question and 50 repeats of an answer already taken.
    assert_eq!(r.mismatched, 100, "{r:?}");
    assert_eq!(r.rcodes.get("NOERROR"), Some(&400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_reports_json_and_names_bad_lines() {
    let srv = shipped().await;
    let dir = TempDir::new();
    let data = dir.write("queries.txt", MIX);
    let ecs = dir.write("ecs.txt", "# clients\n127.0.1.0/24\n127.0.3.0/24\n");
    let server = srv.addr.to_string();
    let args: Vec<String> = [
        "loadgen",
        "-d",
        data.to_str().unwrap(),
        "-s",
        &server,
        "-n",
        "500",
        "--ecs-file",
        ecs.to_str().unwrap(),
        "--json",
    ]
    .map(String::from)
    .into();
    let out =
        tokio::task::spawn_blocking(move || meridian().args(args).output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sent"], 500);
    assert_eq!(v["answered"], 500);
    assert_eq!(v["lost"], 0);
    assert_eq!(v["rcodes"]["NXDOMAIN"], 125);
    assert!(v["latency_us"]["p99"].as_f64().unwrap() > 0.0);
    srv.stop().await;

    let bad = dir.write("bad.txt", "api.app.example.com A\nx.example BOGUS\n");
    let out =
        meridian().args(["loadgen", "-d", bad.to_str().unwrap(), "-n", "1"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.txt:2") && err.contains("BOGUS"), "{err}");
    let out = meridian()
        .args(["loadgen", "-d", data.to_str().unwrap(), "--ecs", "10.0.0.1/8", "-n", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("host bits"));
}
