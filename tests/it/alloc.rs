//! The hot path allocates nothing: a counting global allocator (per thread, so parallel tests
//! do not disturb the count) around warm `resolve` calls.

use crate::harness::*;
use meridian::dns::resolve::{Request, Transport, resolve};
use meridian::state::{Shared, load};
use meridian::traffic::policy::Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the allocator also runs while thread-locals are being torn down.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

#[allow(unsafe_code)] // a global allocator can only be written with unsafe
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(|c| c.get())
}

/// Profiles only the allocation test needs: plain (non-sticky) weighted, and a geographic
/// profile that fences everyone outside Europe out (NODATA).
const MORE_PROFILES: &str = r#"
[[profile]]
name = "weighted.tm.test."
method = "weighted"
[[profile.endpoint]]
name = "w1"
address = "198.51.100.11"
[[profile.endpoint]]
name = "w2"
address = "198.51.100.12"
weight = 2

[[profile]]
name = "fenced.tm.test."
method = "geographic"
[[profile.endpoint]]
name = "eu"
address = "192.0.2.91"
geo = ["GEO-EU"]
"#;

/// One measured query: what it is, the bytes, and what the answer must begin with — the
/// rcode line and the first answer record (any of `first`; empty when the answer section
/// must be empty). Checked outside the measured region, so that a fixture change cannot turn
/// a case into REFUSED and still count as measured.
struct Case {
    what: &'static str,
    query: Vec<u8>,
    transport: Transport,
    rcode: &'static str,
    first: &'static [&'static str],
}

fn case(
    what: &'static str,
    query: Vec<u8>,
    transport: Transport,
    rcode: &'static str,
    first: &'static [&'static str],
) -> Case {
    Case { what, query, transport, rcode, first }
}

fn check(c: &Case, answer: &[u8], context: &str) {
    let text = render(answer);
    let mut lines = text.lines();
    assert_eq!(lines.next().map(str::trim_end), Some(c.rcode), "{} ({context}): {text}", c.what);
    let first = text.lines().find_map(|l| l.strip_prefix("an: "));
    match first {
        None => assert!(c.first.is_empty(), "{} ({context}): no answer in {text}", c.what),
        Some(f) => assert!(c.first.contains(&f), "{} ({context}): {f} in {text}", c.what),
    }
}

/// Queries with NSID and COOKIE options (a client cookie alone, and with a valid server
/// cookie made at time 0, the time these tests' requests carry), and the CH identity.
fn option_cases() -> Vec<Case> {
    use hickory_proto::rr::rdata::opt::{EdnsOption, NSIDPayload};
    let client = [1u8, 2, 3, 4, 5, 6, 7, 8];
    let secret = [
        0xe5, 0xe9, 0x73, 0xe5, 0xa6, 0xb2, 0xa4, 0x3f, 0x48, 0xe7, 0xdc, 0x84, 0x9e, 0x37, 0xbf,
        0xcf,
    ];
    let server = meridian::dns::cookie::make(&secret, &client, "127.0.0.1".parse().unwrap(), 0);
    let with = |cookie: Vec<u8>| {
        let mut m = query("api.app.example.com.", "A", Some(1232));
        let opts = m.edns.as_mut().unwrap().options_mut();
        opts.insert(EdnsOption::NSID(NSIDPayload::new(Vec::new()).unwrap()));
        opts.insert(EdnsOption::Unknown(10, cookie));
        bytes(&m)
    };
    // Signed at time 0, the time these tests' requests carry.
    let key = meridian::dns::tsig::Key::new(
        &meridian::dns::name::Name::parse("k.", None).unwrap(),
        meridian::dns::tsig::Algorithm::HmacSha256,
        b"secret-secret-secret-secret",
    );
    let mut signed = bytes(&query("api.app.example.com.", "A", Some(1232)));
    let len = signed.len();
    signed.resize(len + meridian::dns::tsig::record_len(&key, 0), 0);
    let chain = meridian::dns::tsig::Chain::Request(meridian::dns::tsig::Mac::EMPTY);
    let (len, _) = meridian::dns::tsig::sign(&mut signed, len, &key, chain, 0, 0, &[]);
    signed.truncate(len);
    let mut id = query("id.server.", "TXT", Some(1232));
    id.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
    let api: &[&str] = &["api.app.example.com. 300 A 192.0.2.10"];
    vec![
        case("NSID, client cookie", with(client.to_vec()), Transport::Udp, "NOERROR aa", api),
        case(
            "NSID, valid server cookie",
            with([&client[..], &server[..]].concat()),
            Transport::Udp,
            "NOERROR aa",
            api,
        ),
        case("TSIG-signed", signed, Transport::Udp, "NOERROR aa", api),
        case(
            "id.server CH TXT",
            bytes(&id),
            Transport::Udp,
            "NOERROR aa",
            &["id.server. 0 TXT edge"],
        ),
    ]
}

fn cases() -> Vec<Case> {
    use Transport::{Tcp, Udp};
    let mut unknown_opt = with_unknown_option(query("api.app.example.com.", "A", Some(1232)));
    unknown_opt.metadata.id = 2;
    let q = |name: &str, rtype: &str, edns: Option<u16>| bytes(&query(name, rtype, edns));
    let ecs = |name: &str, subnet: &str| bytes(&query_ecs(name, "A", subnet));
    let api: &[&str] = &["api.app.example.com. 300 A 192.0.2.10"];
    // A NOTIFY carrying OPT: the NOTIMP reply carries OPT too.
    let mut notify_opt = q("api.app.example.com.", "SOA", Some(1232));
    notify_opt[2] = 4 << 3;
    vec![
        case("static A", q("api.app.example.com.", "A", None), Udp, "NOERROR aa", api),
        case("static A, EDNS", q("api.app.example.com.", "A", Some(1232)), Udp, "NOERROR aa", api),
        case("EDNS unknown option", bytes(&unknown_opt), Udp, "NOERROR aa", api),
        case("NXDOMAIN", q("nope.app.example.com.", "A", Some(1232)), Udp, "NXDOMAIN aa", &[]),
        case("NODATA", q("api.app.example.com.", "MX", None), Udp, "NOERROR aa", &[]),
        case(
            "CNAME chain",
            q("portal.app.example.com.", "A", None),
            Udp,
            "NOERROR aa",
            &["portal.app.example.com. 300 CNAME docs.app.example.com."],
        ),
        case(
            "wildcard",
            q("x.user.app.example.com.", "A", None),
            Udp,
            "NOERROR aa",
            &["x.user.app.example.com. 300 A 192.0.2.80"],
        ),
        case("referral", q("www.eu.app.example.com.", "A", None), Udp, "NOERROR", &[]),
        case("refused", q("example.org.", "A", None), Udp, "REFUSED", &[]),
        case("truncated", q("txt.big.test.", "TXT", Some(4096)), Udp, "NOERROR aa,tc", &[]),
        case(
            "tcp large",
            q("txt.big.test.", "TXT", None),
            Tcp,
            "NOERROR aa",
            &["txt.big.test. 300 TXT record 00 padded to be long enough for the test"],
        ),
        case("formerr", vec![0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0], Udp, "FORMERR", &[]),
        case("notimp with OPT", notify_opt, Udp, "NOTIMP", &[]),
        // Traffic-managed names, GeoIP lookups and ECS included.
        case(
            "priority",
            q("prio.tm.test.", "A", None),
            Udp,
            "NOERROR aa",
            &["prio.tm.test. 30 A 192.0.2.1"],
        ),
        case(
            "weighted, not sticky",
            q("weighted.tm.test.", "A", None),
            Udp,
            "NOERROR aa",
            &["weighted.tm.test. 60 A 198.51.100.11", "weighted.tm.test. 60 A 198.51.100.12"],
        ),
        case(
            "weighted sticky",
            ecs("sticky.tm.test.", "10.7.7.0/24"),
            Udp,
            "NOERROR aa",
            &["sticky.tm.test. 60 A 198.51.100.1", "sticky.tm.test. 60 A 198.51.100.2"],
        ),
        case(
            "geographic + ECS",
            ecs("geo.tm.test.", "10.2.0.0/24"),
            Udp,
            "NOERROR aa",
            &["geo.tm.test. 60 A 192.0.2.13"],
        ),
        case(
            "geographic, IPv6 ECS",
            ecs("geo.tm.test.", "2001:db8:4::/56"),
            Udp,
            "NOERROR aa",
            &["geo.tm.test. 60 A 192.0.2.11"],
        ),
        case("geo-fence NODATA", ecs("fenced.tm.test.", "10.4.0.0/24"), Udp, "NOERROR aa", &[]),
        case(
            "performance + ECS",
            ecs("perf.tm.test.", "10.4.0.0/24"),
            Udp,
            "NOERROR aa",
            &["perf.tm.test. 60 A 192.0.2.22"],
        ),
        case(
            "performance, no client location",
            q("perf.tm.test.", "A", None),
            Udp,
            "NOERROR aa",
            &["perf.tm.test. 60 A 192.0.2.21", "perf.tm.test. 60 A 192.0.2.22"],
        ),
        case(
            "multivalue",
            q("multi.tm.test.", "A", None),
            Udp,
            "NOERROR aa",
            &[
                "multi.tm.test. 60 A 192.0.2.41",
                "multi.tm.test. 60 A 192.0.2.42",
                "multi.tm.test. 60 A 192.0.2.43",
            ],
        ),
        case(
            "subnet + ECS",
            ecs("subnet.tm.test.", "10.9.0.0/24"),
            Udp,
            "NOERROR aa",
            &["subnet.tm.test. 60 A 192.0.2.31"],
        ),
        case(
            "cname endpoint",
            q("alias.tm.test.", "A", None),
            Udp,
            "NOERROR aa",
            &["alias.tm.test. 60 CNAME target.tm.test."],
        ),
        case(
            "nested",
            q("nested.tm.test.", "A", None),
            Udp,
            "NOERROR aa",
            &["nested.tm.test. 60 A 192.0.2.50"],
        ),
        case("managed NODATA", q("prio.tm.test.", "MX", None), Udp, "NOERROR aa", &[]),
        case("all down, servfail", q("down.tm.test.", "A", None), Udp, "SERVFAIL", &[]),
        case(
            "split horizon, internal",
            ecs("split.tm.test.", "10.1.2.0/24"),
            Udp,
            "NOERROR aa",
            &["split.tm.test. 60 A 10.80.0.1"],
        ),
        // A burst in progress: at share 1 every answer spills; at share 0 none does.
        case(
            "burst, spilled (share 1)",
            ecs("burst.tm.test.", "10.7.1.0/24"),
            Udp,
            "NOERROR aa",
            &["burst.tm.test. 5 A 192.0.2.71"],
        ),
        case(
            "burst, plain query",
            q("burst.tm.test.", "A", None),
            Udp,
            "NOERROR aa",
            &["burst.tm.test. 5 A 192.0.2.71"],
        ),
    ]
}

/// Sets the burst of `burst.tm.test.` to Bursting at `share`, and the answers the burst cases
/// must give at that share.
fn set_share(shared: &Shared, share: f64, cases: &mut [Case]) {
    let snap = shared.load();
    let pid = snap.policies.profile_by_name("burst.tm.test").unwrap();
    snap.signals.set_burst(pid, meridian::traffic::burst::State::Bursting, share);
    let first: &'static [&'static str] = if share >= 1.0 {
        &["burst.tm.test. 5 A 192.0.2.71"]
    } else {
        &["burst.tm.test. 5 A 192.0.2.70"]
    };
    for c in cases.iter_mut().filter(|c| c.what.starts_with("burst")) {
        c.first = first;
    }
}

/// `down.tm.test.`'s only endpoint is Degraded, so the profile answers SERVFAIL as configured.
fn take_down(shared: &Shared) {
    let snap = shared.load();
    let key: meridian::live::EndpointKey = "down.tm.test./only".parse().unwrap();
    let id = snap.policies.endpoint_by_key(&key).unwrap();
    snap.signals.set_status(id, meridian::live::Status::Degraded);
}

#[test]
fn warm_resolve_does_not_allocate() {
    let dir = TempDir::new();
    // NSID, the CH identity and cookies on, for the cases that use them.
    // And a TSIG key, for a signed query: verifying and signing allocate nothing either.
    dir.write("k.secret", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0\n");
    let extra = "nsid = \"n1\"\nidentity = \"edge\"\n\
                 [server.cookies]\nsecret = \"e5e973e5a6b2a43f48e7dc849e37bfcf\"\n\
                 [[key]]\nname = \"k\"\nalgorithm = \"hmac-sha256\"\nsecret_file = \"k.secret\"\n";
    let shared = Shared::new(load(&write_config_with(&dir, extra, MORE_PROFILES)).unwrap());
    take_down(&shared);
    let mut cases = cases();
    cases.extend(option_cases());
    set_share(&shared, 1.0, &mut cases);
    let mut out = vec![0u8; 65535];
    let mut rng = Rng::new(1);
    let req = |t: Transport| Request { src: "127.0.0.1".parse().unwrap(), transport: t, now: 0 };
    // Warm up: the first load of the snapshot on a thread may set up per-thread state.
    for c in &cases {
        let snap = shared.load();
        resolve(&snap, &c.query, req(c.transport), &mut rng, &mut out);
    }
    let measure = |cases: &[Case], rng: &mut Rng, out: &mut Vec<u8>, context: &str| {
        for c in cases {
            let before = allocations();
            let mut len = 0;
            for _ in 0..100 {
                let snap = shared.load();
                len = resolve(&snap, &c.query, req(c.transport), rng, out).expect("an answer").len;
            }
            let allocated = allocations() - before;
            assert_eq!(allocated, 0, "{} ({context}): resolve allocated", c.what);
            check(c, &out[..len], context);
        }
    };
    measure(&cases, &mut rng, &mut out, "share 1");
    // The burst's other path: a share of 0 keeps every answer on the primary.
    set_share(&shared, 0.0, &mut cases);
    cases.retain(|c| c.what.starts_with("burst"));
    measure(&cases, &mut rng, &mut out, "share 0");
    // The counter works: a real allocation is seen.
    let before = allocations();
    drop(std::hint::black_box(vec![1u8; 10]));
    assert_eq!(allocations() - before, 1);
}

/// The UDP worker's whole per-query turn — resolve, metrics and the latency histogram, the
/// RRL check, slip and drop — allocates nothing either. Only the socket calls are outside.
#[test]
fn warm_server_turn_does_not_allocate() {
    use meridian::control::runtime::Runtime;
    use meridian::dns::server::UdpTurn;
    let dir = TempDir::new();
    // A low limit, so that the measured queries from one client go through all three RRL
    // verdicts: sent, slipped (every second limited answer), dropped.
    let rrl = "[server.rrl]\nresponses_per_second = 5\nslip = 2\n";
    let shared = Shared::new(load(&write_config_with(&dir, rrl, MORE_PROFILES)).unwrap());
    take_down(&shared);
    let mut cases = cases();
    set_share(&shared, 1.0, &mut cases);
    let rt = Runtime::default();
    let mut turn = UdpTurn::new(Rng::new(7));
    let mut out = vec![0u8; 65535];
    let udp: Vec<&Case> = cases.iter().filter(|c| c.transport == Transport::Udp).collect();
    // Warm up from the clients used below, so their RRL slots exist.
    for (i, c) in udp.iter().enumerate() {
        let peer = std::net::SocketAddr::from(([127, 0, (i / 200) as u8, (i % 200) as u8], 5300));
        let snap = shared.load();
        turn.answer(&snap, &rt, &c.query, peer, &mut out);
    }
    for (i, c) in udp.iter().enumerate() {
        // Each case from its own client prefix: the first answers are full, then limited.
        let peer = std::net::SocketAddr::from(([127, 1, i as u8, 1], 5300));
        let before = allocations();
        let (mut sent, mut full) = (0u32, None);
        for _ in 0..100 {
            let snap = shared.load();
            if let Some(len) = turn.answer(&snap, &rt, &c.query, peer, &mut out) {
                sent += 1;
                if full.is_none() {
                    // Keep the first answer for the check below: later ones may be slipped.
                    full = Some(len);
                    out.copy_within(..len, 32768);
                }
            }
        }
        let allocated = allocations() - before;
        assert_eq!(allocated, 0, "{}: the server's turn allocated", c.what);
        let len = full.expect("a first, full answer");
        check(c, &out[32768..32768 + len], "server turn");
        // Some were rate-limited: 5 (or 10, across a clock second) full, the rest alternately
        // slipped and dropped.
        assert!((45..=60).contains(&sent), "{}: {sent} of 100 sent", c.what);
    }
    let (dropped, slipped) = rt.metrics.rrl_counts();
    assert!(slipped > 0 && dropped > 0, "slipped {slipped}, dropped {dropped}");
}

/// Bad input never crashes the resolver: valid queries mutated at random (bytes flipped,
/// truncated, extended, counts changed) and pure noise, straight into `resolve`. Every answer
/// fits its transport's limit and echoes the query's ID with QR set.
#[test]
fn random_and_mutated_messages_never_panic() {
    let dir = TempDir::new();
    let shared = Shared::new(load(&write_config(&dir, "")).unwrap());
    let seeds: Vec<Vec<u8>> = vec![
        bytes(&query("api.app.example.com.", "A", None)),
        bytes(&query_ecs("geo.tm.test.", "A", "10.1.2.0/24")),
        bytes(&query("portal.app.example.com.", "A", Some(1232))),
        bytes(&query("www.eu.app.example.com.", "A", None)),
        bytes(&query("burst.tm.test.", "AAAA", Some(512))),
    ];
    let mut rng = Rng::new(0x5eed);
    let mut out = vec![0u8; 65535];
    let (mut answered, mut dropped) = (0u32, 0u32);
    for i in 0..300_000u32 {
        let mut msg = if i % 10 == 0 {
            (0..rng.below(600)).map(|_| rng.next_u64() as u8).collect::<Vec<u8>>()
        } else {
            seeds[(i as usize) % seeds.len()].clone()
        };
        for _ in 0..=rng.below(4) {
            match rng.below(5) {
                0 if !msg.is_empty() => {
                    let at = rng.below(msg.len() as u64) as usize;
                    msg[at] ^= 1 << rng.below(8);
                }
                1 if !msg.is_empty() => {
                    let at = rng.below(msg.len() as u64) as usize;
                    msg[at] = rng.next_u64() as u8;
                }
                2 => msg.truncate(rng.below(msg.len() as u64 + 1) as usize),
                3 => msg.extend((0..rng.below(40)).map(|_| rng.next_u64() as u8)),
                _ if msg.len() >= 12 => {
                    // Counts are where parsers go wrong most.
                    let at = 4 + 2 * rng.below(4) as usize;
                    msg[at..at + 2].copy_from_slice(&(rng.below(4) as u16).to_be_bytes());
                }
                _ => {}
            }
        }
        let transport = if i % 3 == 0 { Transport::Tcp } else { Transport::Udp };
        let req = Request { src: "127.0.0.1".parse().unwrap(), transport, now: 0 };
        let snap = shared.load();
        match resolve(&snap, &msg, req, &mut rng, &mut out) {
            None => dropped += 1,
            Some(a) => {
                answered += 1;
                // The configured UDP limit (the default, 1232), whatever the query advertises.
                let limit = if transport == Transport::Udp { 1232 } else { 65535 };
                assert!(a.len >= 12 && a.len <= limit, "answer of {} bytes to {msg:02x?}", a.len);
                assert_eq!(out[..2], msg[..2], "id not echoed for {msg:02x?}");
                assert_eq!(out[2] & 0x80, 0x80, "QR not set for {msg:02x?}");
                hickory_proto::op::Message::from_vec(&out[..a.len])
                    .unwrap_or_else(|e| panic!("unparseable answer ({e}) to {msg:02x?}"));
            }
        }
    }
    assert!(answered > 100_000 && dropped > 1_000, "answered {answered}, dropped {dropped}");
}

/// The server's turn times one answer in `LATENCY_SAMPLE` (the first, then every 16th), and
/// counts every one: 100 answers give 100 in `meridian_dns_queries_total` and 7 timed.
#[test]
fn server_turn_times_one_answer_in_sixteen() {
    use meridian::control::runtime::Runtime;
    use meridian::dns::metrics::LATENCY_SAMPLE;
    use meridian::dns::server::UdpTurn;
    let dir = TempDir::new();
    let shared = Shared::new(load(&write_config(&dir, "")).unwrap());
    let rt = Runtime::default();
    let mut turn = UdpTurn::new(Rng::new(7));
    let mut out = vec![0u8; 65535];
    let q = bytes(&query("api.example.test.", "A", None));
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 5300));
    for _ in 0..100 {
        assert!(turn.answer(&shared.load(), &rt, &q, peer, &mut out).is_some());
    }
    let mut text = String::new();
    rt.metrics.render(&mut text);
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<u64>().ok()))
            .unwrap_or_else(|| panic!("{name} in\n{text}"))
    };
    assert_eq!(rt.metrics.answered(), 100);
    assert_eq!(LATENCY_SAMPLE, 16);
    assert_eq!(value("meridian_dns_answer_duration_seconds_count"), 7, "answers 0, 16, … 96");
}
