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

#[test]
fn warm_resolve_does_not_allocate() {
    let dir = TempDir::new();
    let shared = Shared::new(load(&write_config(&dir, "")).unwrap());
    let mut unknown_opt = with_unknown_option(query("api.app.example.com.", "A", Some(1232)));
    unknown_opt.metadata.id = 2;
    let queries: Vec<(&str, Vec<u8>, Transport)> = vec![
        ("static A", bytes(&query("api.app.example.com.", "A", None)), Transport::Udp),
        ("static A, EDNS", bytes(&query("api.app.example.com.", "A", Some(1232))), Transport::Udp),
        ("EDNS unknown option", bytes(&unknown_opt), Transport::Udp),
        ("NXDOMAIN", bytes(&query("nope.app.example.com.", "A", Some(1232))), Transport::Udp),
        ("NODATA", bytes(&query("api.app.example.com.", "MX", None)), Transport::Udp),
        ("CNAME chain", bytes(&query("portal.app.example.com.", "A", None)), Transport::Udp),
        ("wildcard", bytes(&query("x.user.app.example.com.", "A", None)), Transport::Udp),
        ("referral", bytes(&query("www.eu.app.example.com.", "A", None)), Transport::Udp),
        ("refused", bytes(&query("example.org.", "A", None)), Transport::Udp),
        ("truncated", bytes(&query("txt.big.test.", "TXT", Some(4096))), Transport::Udp),
        ("tcp large", bytes(&query("txt.big.test.", "TXT", None)), Transport::Tcp),
        ("formerr", vec![0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0], Transport::Udp),
        // Traffic-managed names, GeoIP lookups and ECS included.
        ("priority", bytes(&query("prio.tm.test.", "A", None)), Transport::Udp),
        ("geographic + ECS", bytes(&query_ecs("geo.tm.test.", "A", "10.2.0.0/24")), Transport::Udp),
        (
            "geographic, IPv6 ECS",
            bytes(&query_ecs("geo.tm.test.", "A", "2001:db8:4::/56")),
            Transport::Udp,
        ),
        (
            "performance + ECS",
            bytes(&query_ecs("perf.tm.test.", "A", "10.4.0.0/24")),
            Transport::Udp,
        ),
        (
            "weighted sticky",
            bytes(&query_ecs("sticky.tm.test.", "A", "10.7.7.0/24")),
            Transport::Udp,
        ),
        ("multivalue", bytes(&query("multi.tm.test.", "A", None)), Transport::Udp),
        ("subnet + ECS", bytes(&query_ecs("subnet.tm.test.", "A", "10.9.0.0/24")), Transport::Udp),
        ("cname endpoint", bytes(&query("alias.tm.test.", "A", None)), Transport::Udp),
        ("nested", bytes(&query("nested.tm.test.", "A", None)), Transport::Udp),
        ("managed NODATA", bytes(&query("prio.tm.test.", "MX", None)), Transport::Udp),
        (
            "split horizon, internal",
            bytes(&query_ecs("split.tm.test.", "A", "10.1.2.0/24")),
            Transport::Udp,
        ),
        // A burst in progress: at share 1 every answer spills; below, share 0 keeps them all.
        (
            "burst, spilled (share 1)",
            bytes(&query_ecs("burst.tm.test.", "A", "10.7.1.0/24")),
            Transport::Udp,
        ),
        ("burst, plain query", bytes(&query("burst.tm.test.", "A", None)), Transport::Udp),
    ];
    {
        let snap = shared.load();
        let pid = snap.policies.profile_by_name("burst.tm.test").unwrap();
        snap.signals.set_burst(pid, meridian::traffic::burst::State::Bursting, 1.0);
    }
    let mut out = vec![0u8; 65535];
    let mut rng = Rng::new(1);
    let req = |t: Transport| Request { src: "127.0.0.1".parse().unwrap(), transport: t };
    // Warm up: the first load of the snapshot on a thread may set up per-thread state.
    for (_, q, t) in &queries {
        let snap = shared.load();
        resolve(&snap, q, req(*t), &mut rng, &mut out);
    }
    for (what, q, t) in &queries {
        let before = allocations();
        for _ in 0..100 {
            let snap = shared.load();
            let a = resolve(&snap, q, req(*t), &mut rng, &mut out).expect("an answer");
            assert!(a.len >= 12);
        }
        assert_eq!(allocations() - before, 0, "{what}: resolve allocated");
    }
    // The burst's other path: a share of 0 keeps every answer on the primary.
    {
        let snap = shared.load();
        let pid = snap.policies.profile_by_name("burst.tm.test").unwrap();
        snap.signals.set_burst(pid, meridian::traffic::burst::State::Bursting, 0.0);
    }
    for (what, q, t) in queries.iter().filter(|q| q.0.starts_with("burst")) {
        let before = allocations();
        for _ in 0..100 {
            let snap = shared.load();
            resolve(&snap, q, req(*t), &mut rng, &mut out).expect("an answer");
        }
        assert_eq!(allocations() - before, 0, "{what} at share 0: resolve allocated");
    }
    // The counter works: a real allocation is seen.
    let before = allocations();
    drop(std::hint::black_box(vec![1u8; 10]));
    assert_eq!(allocations() - before, 1);
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
        let req = Request { src: "127.0.0.1".parse().unwrap(), transport };
        let snap = shared.load();
        match resolve(&snap, &msg, req, &mut rng, &mut out) {
            None => dropped += 1,
            Some(a) => {
                answered += 1;
                let limit = if transport == Transport::Udp { 4096 } else { 65535 };
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
