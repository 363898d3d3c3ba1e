//! The hot path allocates nothing: a counting global allocator (per thread, so parallel tests
//! do not disturb the count) around warm `resolve` calls.

use crate::harness::*;
use meridian::policy::Rng;
use meridian::resolve::{Request, Transport, resolve};
use meridian::state::{Shared, load};
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
        snap.signals.set_burst(pid, meridian::burst::State::Bursting, 1.0);
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
        snap.signals.set_burst(pid, meridian::burst::State::Bursting, 0.0);
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
