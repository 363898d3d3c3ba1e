//! The hot path, per kind of answer: `resolve` on a warm snapshot built from the shipped
//! default configuration, including the snapshot load each query does.
//!
//! Run: `cargo bench --bench resolve`
//!
//! Wall-clock figures on a shared machine drift by tens of percent from run to run. For a
//! comparison that does not, count instructions: with `RESOLVE_ITERATIONS=n` (and optionally
//! `RESOLVE_CASE=name`) the bench skips criterion and runs each case `n` times inside
//! `count_case`, which callgrind can be told to measure alone:
//!
//! ```sh
//! RESOLVE_ITERATIONS=1000 RESOLVE_CASE=static_a valgrind --tool=callgrind \
//!   --collect-atstart=no --toggle-collect='*count_case*' --callgrind-out-file=/dev/null \
//!   target/release/deps/resolve-* --bench 2>&1 | grep 'Collected'
//! ```
//!
//! (instructions per query = collected / n). With `RESOLVE_TURN=1` and
//! `--toggle-collect='*count_turn*'` the same is counted for the UDP worker's whole turn
//! around `resolve` (metrics, latency sampling).
//!
//! Ratios to the static answer, which is what the targets are stated in, are measured best
//! with `RESOLVE_RATIO=rounds` (e.g. 200): in one process, each case and `static_a` take turns
//! in chunks of 20,000 answers, and the fastest chunk of each is compared, so that a shared
//! machine's drift, which comes in bursts far longer than a chunk, falls on both alike.
//!
//! Comparing two builds, run their bench binaries alternately. Code layout alone can move a
//! case by several percent between builds that differ elsewhere, so a change worth less than
//! that needs a second opinion: the same pair built with every function and block aligned
//! (`RUSTFLAGS="-C llvm-args=-align-all-functions=6 -C llvm-args=-align-all-nofallthru-blocks=6"`,
//! in a separate `CARGO_TARGET_DIR`). A change that wins in one layout and loses in the other
//! has not been shown to win.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use meridian::dns::resolve::{Request, Transport, resolve};
use meridian::state::{Shared, load};
use meridian::traffic::policy::Rng;
use std::hint::black_box;
use std::path::Path;
use std::str::FromStr;

fn query(name: &str, rtype: RecordType, edns: bool) -> Vec<u8> {
    query_ecs(name, rtype, edns, None)
}

/// A query, with EDNS Client Subnet when `ecs` is given.
fn query_ecs(name: &str, rtype: RecordType, edns: bool, ecs: Option<(&str, u8)>) -> Vec<u8> {
    let mut m = Message::new(0x4d52, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_str(name).unwrap(), rtype));
    if edns || ecs.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        if let Some((addr, prefix)) = ecs {
            e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
                addr.parse().unwrap(),
                prefix,
                0,
            )));
        }
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn bench(c: &mut Criterion) {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("meridian.toml");
    let shared = Shared::new(load(&config).expect("the shipped configuration loads"));
    let cases = [
        ("static_a", query("api.app.example.com.", RecordType::A, false)),
        ("static_a_edns", query("api.app.example.com.", RecordType::A, true)),
        (
            "static_a_ecs",
            query_ecs("api.app.example.com.", RecordType::A, true, Some(("198.51.100.0", 24))),
        ),
        ("nxdomain", query("nope.app.example.com.", RecordType::A, false)),
        ("nodata", query("api.app.example.com.", RecordType::MX, false)),
        ("cname_chain", query("portal.app.example.com.", RecordType::A, false)),
        ("wildcard", query("some.host.user.app.example.com.", RecordType::A, false)),
        ("referral", query("www.eu.app.example.com.", RecordType::A, false)),
        ("apex_ns", query("app.example.com.", RecordType::NS, true)),
        ("mx", query("app.example.com.", RecordType::MX, true)),
        ("refused", query("www.example.org.", RecordType::A, false)),
        // Traffic-managed names from the shipped configuration (demo GeoIP database).
        ("priority", query("www.app.example.com.", RecordType::A, false)),
        ("weighted", query("canary.app.example.com.", RecordType::A, false)),
        (
            "geographic_ecs",
            query_ecs("geo.app.example.com.", RecordType::A, true, Some(("198.51.100.0", 24))),
        ),
        (
            "priority_ecs",
            query_ecs("www.app.example.com.", RecordType::A, true, Some(("198.51.100.0", 24))),
        ),
    ];
    // The methods the shipped configuration does not use, from a configuration written here.
    let dir = std::env::temp_dir().join(format!("meridian-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("z.zone"),
        "$TTL 300\n@ SOA ns h 1 2 3 4 60\n@ NS ns\nns A 192.0.2.1\n",
    )
    .unwrap();
    let geoip = Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/demo.mmdb");
    let mut toml = format!(
        "[geoip]\ndatabase = \"{}\"\n[[zone]]\nname = \"b.test\"\nfile = \"z.zone\"\n",
        geoip.display()
    );
    let endpoint = |n: usize, extra: &str| {
        format!("[[profile.endpoint]]\nname = \"e{n}\"\naddress = \"192.0.2.{n}\"\n{extra}")
    };
    toml += "[[profile]]\nname = \"perf\"\nmethod = \"performance\"\n";
    for (n, loc) in [(1, "westeurope"), (2, "eastus"), (3, "japaneast"), (4, "australiaeast")] {
        toml += &endpoint(n, &format!("location = \"{loc}\"\n"));
    }
    toml += "[[profile]]\nname = \"multi\"\nmethod = \"multivalue\"\nmax_answers = 2\n";
    for n in 1..=4 {
        toml += &endpoint(n, "");
    }
    toml += "[[profile]]\nname = \"subnet\"\nmethod = \"subnet\"\n";
    for (n, net) in [(1, "10.0.0.0/8"), (2, "172.16.0.0/12"), (3, "198.51.100.0/24")] {
        toml += &endpoint(n, &format!("subnets = [\"{net}\"]\n"));
    }
    toml += &endpoint(4, "");
    toml += "[[profile]]\nname = \"sticky\"\nmethod = \"weighted\"\nsticky = \"client-subnet\"\n";
    for n in 1..=4 {
        toml += &endpoint(n, &format!("weight = {n}\n"));
    }
    toml += "[[profile]]\nname = \"nested\"\nmethod = \"priority\"\n[[profile.endpoint]]\nname = \"child\"\nprofile = \"multi\"\n";
    toml += &endpoint(9, "priority = 2\n");
    toml += "[[profile]]\nname = \"burst\"\nmethod = \"priority\"\n[profile.burst]\nprimary = \"e1\"\noverflow = [\"e2\", \"e3\"]\nwarm_at = 0.6\nburst_at = 0.8\nrelease_at = 0.5\nsticky = \"client-subnet\"\ntransition_ttl = 5\n";
    toml += &endpoint(1, "[profile.endpoint.load]\nsource = \"push\"\ncapacity = 100\n");
    toml += &endpoint(2, "");
    toml += &endpoint(3, "");
    std::fs::write(dir.join("m.toml"), toml).unwrap();
    let more = Shared::new(load(&dir.join("m.toml")).expect("the bench configuration loads"));
    {
        // A burst in progress: half of the client prefixes spill.
        let snap = more.load();
        let pid = snap.policies.profile_by_name("burst.b.test").unwrap();
        snap.signals.set_burst(pid, meridian::traffic::burst::State::Bursting, 0.5);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let more_cases = [
        (
            "performance_ecs",
            query_ecs("perf.b.test.", RecordType::A, true, Some(("198.51.100.0", 24))),
        ),
        ("multivalue", query("multi.b.test.", RecordType::A, false)),
        (
            "subnet_ecs",
            query_ecs("subnet.b.test.", RecordType::A, true, Some(("198.51.100.0", 24))),
        ),
        (
            "weighted_sticky_ecs",
            query_ecs("sticky.b.test.", RecordType::A, true, Some(("198.51.100.0", 24))),
        ),
        ("nested", query("nested.b.test.", RecordType::A, false)),
        (
            "burst_sticky_ecs",
            query_ecs("burst.b.test.", RecordType::A, true, Some(("198.51.100.0", 24))),
        ),
    ];

    if let Ok(rounds) = std::env::var("RESOLVE_RATIO") {
        let rounds: usize = rounds.parse().expect("RESOLVE_RATIO is a count of rounds");
        let only = std::env::var("RESOLVE_CASE").ok();
        let (_, reference) = &cases[0];
        let all = cases.iter().map(|c| (&shared, c)).chain(more_cases.iter().map(|c| (&more, c)));
        for (case_shared, (name, q)) in all.skip(1) {
            if only.as_deref().is_none_or(|o| o == *name) {
                let (base, case) = ratio(&shared, reference, case_shared, q, rounds);
                println!(
                    "{name:<22} {case:7.1} ns  static_a {base:7.1} ns  ratio {:.3}",
                    case / base
                );
            }
        }
        return;
    }

    if let Ok(n) = std::env::var("RESOLVE_ITERATIONS") {
        let n: usize = n.parse().expect("RESOLVE_ITERATIONS is a count");
        let only = std::env::var("RESOLVE_CASE").ok();
        let all = cases.iter().map(|c| (&shared, c)).chain(more_cases.iter().map(|c| (&more, c)));
        for (shared, (name, q)) in all {
            if only.as_deref().is_none_or(|o| o == *name) {
                if std::env::var_os("RESOLVE_TURN").is_some() {
                    count_turn(shared, q, n);
                } else {
                    count_case(shared, q, n);
                }
            }
        }
        return;
    }

    let mut group = c.benchmark_group("resolve");
    group.throughput(Throughput::Elements(1));
    let mut out = vec![0u8; 65535];
    let mut rng = Rng::new(1);
    let req = Request { src: "127.0.0.1".parse().unwrap(), transport: Transport::Udp, now: 0 };
    for (name, q) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| {
                let snap = shared.load();
                resolve(&snap, black_box(q), req, &mut rng, &mut out).map(|a| a.len)
            })
        });
    }
    for (name, q) in &more_cases {
        group.bench_function(*name, |b| {
            b.iter(|| {
                let snap = more.load();
                resolve(&snap, black_box(q), req, &mut rng, &mut out).map(|a| a.len)
            })
        });
    }
    group.finish();
}

/// The fastest chunk's ns per answer for `base` (on `a`) and for `q` (on `b`), taking turns.
fn ratio(a: &Shared, base: &[u8], b: &Shared, q: &[u8], rounds: usize) -> (f64, f64) {
    const CHUNK: usize = 20_000;
    let mut out = vec![0u8; 65535];
    let mut rng = Rng::new(1);
    let req = Request { src: "127.0.0.1".parse().unwrap(), transport: Transport::Udp, now: 0 };
    let mut chunk = |shared: &Shared, q: &[u8]| {
        let t = std::time::Instant::now();
        for _ in 0..CHUNK {
            let snap = shared.load();
            black_box(resolve(&snap, black_box(q), req, &mut rng, &mut out).map(|a| a.len));
        }
        t.elapsed().as_nanos() as f64 / CHUNK as f64
    };
    let (mut best_base, mut best_case) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..rounds {
        best_base = best_base.min(chunk(a, base));
        best_case = best_case.min(chunk(b, q));
    }
    (best_base, best_case)
}

/// `n` answers to `q`, for counting instructions (see the module's comment).
#[inline(never)]
fn count_case(shared: &Shared, q: &[u8], n: usize) {
    let mut out = vec![0u8; 65535];
    let mut rng = Rng::new(1);
    let req = Request { src: "127.0.0.1".parse().unwrap(), transport: Transport::Udp, now: 0 };
    for _ in 0..n {
        let snap = shared.load();
        black_box(resolve(&snap, black_box(q), req, &mut rng, &mut out).map(|a| a.len));
    }
}

/// `n` turns of the UDP worker for `q` (`RESOLVE_TURN=1`): resolve plus what the server does
/// around it (metrics, the latency sample, RRL off), without the socket.
#[inline(never)]
fn count_turn(shared: &Shared, q: &[u8], n: usize) {
    let rt = meridian::control::runtime::Runtime::default();
    let mut turn = meridian::dns::server::UdpTurn::new(Rng::new(1));
    let mut out = vec![0u8; 65535];
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 5300));
    for _ in 0..n {
        let snap = shared.load();
        black_box(turn.answer(&snap, &rt, black_box(q), peer, &mut out));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
