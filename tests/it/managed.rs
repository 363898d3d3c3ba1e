//! Traffic-managed names over the wire: every routing method, EDNS Client Subnet (the scope
//! echoed is what the decision depended on), malformed ECS, ECS turned off, and the live
//! status seam (signals written directly, as health probes will).

use crate::harness::*;
use meridian::traffic::policy::Status;

const SOA: &str = "ns: tm.test. 60 SOA ns.tm.test. hostmaster.tm.test. 1 3600 600 86400 60";

async fn ask(srv: &TestServer, name: &str, rtype: &str, ecs: Option<&str>) -> String {
    let q = match ecs {
        Some(subnet) => query_ecs(name, rtype, subnet),
        None => query(name, rtype, Some(1232)),
    };
    render(&srv.udp(&bytes(&q)).await.expect("an answer"))
}

fn edns(ecs: &str) -> String {
    format!("edns: payload=1232 version=0 ecs={ecs}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_with_client_subnet() {
    let srv = TestServer::start().await;
    let cases: Vec<(&str, &str, &str, String)> = vec![
        // Priority ignores location: scope 0.
        (
            "prio.tm.test.",
            "A",
            "10.1.2.0/24",
            format!("NOERROR aa\nan: prio.tm.test. 30 A 192.0.2.1\n{}", edns("10.1.2.0/24/0")),
        ),
        (
            "prio.tm.test.",
            "AAAA",
            "10.1.2.0/24",
            format!("NOERROR aa\nan: prio.tm.test. 30 AAAA 2001:db8::1\n{}", edns("10.1.2.0/24/0")),
        ),
        // Other types at a traffic-managed name: NODATA.
        (
            "prio.tm.test.",
            "MX",
            "10.1.2.0/24",
            format!("NOERROR aa\n{SOA}\n{}", edns("10.1.2.0/24/0")),
        ),
        // Geographic: the scope is the GeoIP network the decision used.
        (
            "geo.tm.test.",
            "A",
            "10.1.2.0/24",
            format!("NOERROR aa\nan: geo.tm.test. 60 A 192.0.2.11\n{}", edns("10.1.2.0/24/16")),
        ),
        (
            "geo.tm.test.",
            "A",
            "10.2.0.0/24",
            format!("NOERROR aa\nan: geo.tm.test. 60 A 192.0.2.13\n{}", edns("10.2.0.0/24/16")),
        ),
        (
            "geo.tm.test.",
            "A",
            "10.3.0.0/24",
            format!("NOERROR aa\nan: geo.tm.test. 60 A 192.0.2.12\n{}", edns("10.3.0.0/24/16")),
        ),
        (
            "geo.tm.test.",
            "A",
            "10.4.0.0/24",
            format!("NOERROR aa\nan: geo.tm.test. 60 A 192.0.2.14\n{}", edns("10.4.0.0/24/16")),
        ),
        (
            "geo.tm.test.",
            "A",
            "2001:db8:4::/56",
            format!("NOERROR aa\nan: geo.tm.test. 60 A 192.0.2.11\n{}", edns("2001:db8:4::/56/48")),
        ),
        // Not in the database: WORLD, valid for the whole empty block around it (/1).
        (
            "geo.tm.test.",
            "A",
            "192.0.2.0/24",
            format!("NOERROR aa\nan: geo.tm.test. 60 A 192.0.2.14\n{}", edns("192.0.2.0/24/1")),
        ),
        // Performance: Frankfurt is nearest Amsterdam; Houston and Tokyo nearest Seattle.
        (
            "perf.tm.test.",
            "A",
            "10.1.0.0/24",
            format!("NOERROR aa\nan: perf.tm.test. 60 A 192.0.2.21\n{}", edns("10.1.0.0/24/16")),
        ),
        (
            "perf.tm.test.",
            "A",
            "10.3.0.0/24",
            format!("NOERROR aa\nan: perf.tm.test. 60 A 192.0.2.22\n{}", edns("10.3.0.0/24/16")),
        ),
        (
            "perf.tm.test.",
            "A",
            "10.4.0.0/24",
            format!("NOERROR aa\nan: perf.tm.test. 60 A 192.0.2.22\n{}", edns("10.4.0.0/24/16")),
        ),
        // Subnet: the matched rule's prefix, or the widest block matching no rule.
        (
            "subnet.tm.test.",
            "A",
            "10.9.0.0/24",
            format!("NOERROR aa\nan: subnet.tm.test. 60 A 192.0.2.31\n{}", edns("10.9.0.0/24/8")),
        ),
        (
            "subnet.tm.test.",
            "A",
            "192.0.2.0/24",
            format!("NOERROR aa\nan: subnet.tm.test. 60 A 192.0.2.32\n{}", edns("192.0.2.0/24/1")),
        ),
        // A CNAME endpoint inside the zone is followed; one outside is not.
        (
            "alias.tm.test.",
            "A",
            "10.1.2.0/24",
            format!(
                "NOERROR aa\nan: alias.tm.test. 60 CNAME target.tm.test.\nan: target.tm.test. 300 A 192.0.2.99\n{}",
                edns("10.1.2.0/24/0")
            ),
        ),
        (
            "alias.tm.test.",
            "CNAME",
            "10.1.2.0/24",
            format!(
                "NOERROR aa\nan: alias.tm.test. 60 CNAME target.tm.test.\n{}",
                edns("10.1.2.0/24/0")
            ),
        ),
        // Nested: the child profile's choice.
        (
            "nested.tm.test.",
            "A",
            "10.1.2.0/24",
            format!("NOERROR aa\nan: nested.tm.test. 60 A 192.0.2.50\n{}", edns("10.1.2.0/24/0")),
        ),
        // Split horizon: internal clients get the private addresses.
        (
            "split.tm.test.",
            "A",
            "10.1.2.0/24",
            format!("NOERROR aa\nan: split.tm.test. 60 A 10.80.0.1\n{}", edns("10.1.2.0/24/8")),
        ),
        (
            "split.tm.test.",
            "AAAA",
            "10.1.2.0/24",
            format!("NOERROR aa\nan: split.tm.test. 60 AAAA fd00::80\n{}", edns("10.1.2.0/24/8")),
        ),
        (
            "split.tm.test.",
            "A",
            "198.51.100.0/24",
            format!(
                "NOERROR aa\nan: split.tm.test. 60 A 192.0.2.80\n{}",
                edns("198.51.100.0/24/1")
            ),
        ),
        // Static data with ECS: scope 0.
        (
            "target.tm.test.",
            "A",
            "10.1.2.0/24",
            format!("NOERROR aa\nan: target.tm.test. 300 A 192.0.2.99\n{}", edns("10.1.2.0/24/0")),
        ),
    ];
    for (name, rtype, ecs, want) in &cases {
        assert_eq!(&ask(&srv, name, rtype, Some(ecs)).await, want, "{name} {rtype} from {ecs}");
    }
    // The same over TCP, for one case.
    let q = bytes(&query_ecs("geo.tm.test.", "A", "10.1.2.0/24"));
    assert_eq!(render(&srv.tcp(&q).await.unwrap()), cases[3].3);

    // Sticky weighted: one client prefix always gets the same endpoint; scope /24.
    let first = ask(&srv, "sticky.tm.test.", "A", Some("10.7.7.0/24")).await;
    assert!(
        first.starts_with("NOERROR aa\nan: sticky.tm.test. "),
        "an answer, not NODATA: {first}"
    );
    assert!(first.ends_with(&edns("10.7.7.0/24/24")), "{first}");
    for _ in 0..10 {
        assert_eq!(ask(&srv, "sticky.tm.test.", "A", Some("10.7.7.0/24")).await, first);
    }
    // Multivalue: two of the three endpoints in one answer.
    let multi = ask(&srv, "multi.tm.test.", "A", None).await;
    assert_eq!(multi.matches("\nan: multi.tm.test. 60 A 192.0.2.4").count(), 2, "{multi}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_status_changes_the_next_answer() {
    let srv = TestServer::start().await;
    let id = |name: &str| {
        let snap = srv.running.as_ref().unwrap().shared().load();
        snap.policies.endpoints.iter().position(|e| e.name == name).unwrap() as u32
    };
    let set = |name: &str, st: Status| {
        let snap = srv.running.as_ref().unwrap().shared().load();
        snap.signals.set_status(id(name), st);
    };
    let a = |s: String| s.lines().find(|l| l.starts_with("an:")).unwrap_or("none").to_string();

    assert_eq!(a(ask(&srv, "prio.tm.test.", "A", None).await), "an: prio.tm.test. 30 A 192.0.2.1");
    set("a", Status::Degraded);
    assert_eq!(a(ask(&srv, "prio.tm.test.", "A", None).await), "an: prio.tm.test. 30 A 192.0.2.2");
    set("a", Status::Online);
    assert_eq!(a(ask(&srv, "prio.tm.test.", "A", None).await), "an: prio.tm.test. 30 A 192.0.2.1");

    // The nested child needs 2 available endpoints; with one down the parent fails over.
    set("c2", Status::Degraded);
    assert_eq!(
        a(ask(&srv, "nested.tm.test.", "A", None).await),
        "an: nested.tm.test. 60 A 192.0.2.52"
    );

    // Geo-fence: Germany's endpoint down means NODATA for German clients, not failover.
    set("eu", Status::Degraded);
    let r = ask(&srv, "geo.tm.test.", "A", Some("10.1.2.0/24")).await;
    assert_eq!(r, format!("NOERROR aa\n{SOA}\n{}", edns("10.1.2.0/24/16")));

    // when_all_down = "servfail".
    set("only", Status::Degraded);
    let r = ask(&srv, "down.tm.test.", "A", None).await;
    assert_eq!(r, "SERVFAIL \nedns: payload=1232 version=0");
    srv.stop().await;
}

/// Raw ECS option bytes, to send what a library would refuse to build.
fn with_raw_ecs(name: &str, options: &[&[u8]]) -> Vec<u8> {
    let mut q = bytes(&query(name, "A", Some(1232)));
    // The OPT record is last and has no options: append ours and fix its RDLENGTH.
    let mut rdata = Vec::new();
    for opt in options {
        rdata.extend_from_slice(&8u16.to_be_bytes());
        rdata.extend_from_slice(&(opt.len() as u16).to_be_bytes());
        rdata.extend_from_slice(opt);
    }
    let l = q.len();
    q[l - 2..].copy_from_slice(&(rdata.len() as u16).to_be_bytes());
    q.extend_from_slice(&rdata);
    q
}

/// Subnet routing that separates loopback sources from everyone else.
const LOOPBACK_PROFILE: &str = r#"
[[profile]]
name = "src.tm.test."
method = "subnet"
[[profile.endpoint]]
name = "loopback"
address = "192.0.2.33"
subnets = ["127.0.0.0/8"]
[[profile.endpoint]]
name = "elsewhere"
address = "192.0.2.34"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_client_subnet_is_formerr() {
    // A profile that tells the packet's source (127.0.0.1) from any ECS address.
    let dir = TempDir::new();
    let config = write_config_with(&dir, "", LOOPBACK_PROFILE);
    let srv = TestServer::start_config(dir, config).await;
    let rcode = |a: Vec<u8>| a[3] & 0x0f;
    let cases: &[(&str, &[&[u8]], u8)] = &[
        ("valid /24", &[&[0, 1, 24, 0, 10, 1, 2]], 0),
        ("valid /0", &[&[0, 1, 0, 0]], 0),
        ("unknown family", &[&[0, 3, 24, 0, 10, 1, 2]], 1),
        ("IPv4 prefix over 32", &[&[0, 1, 33, 0, 10, 1, 2, 3, 4]], 1),
        ("scope set in a query", &[&[0, 1, 24, 8, 10, 1, 2]], 1),
        ("more address bytes than the prefix needs", &[&[0, 1, 16, 0, 10, 1, 2]], 1),
        ("bits set past the prefix", &[&[0, 1, 23, 0, 10, 1, 3]], 1),
        ("too short", &[&[0, 1]], 1),
        ("two ECS options", &[&[0, 1, 24, 0, 10, 1, 2], &[0, 1, 24, 0, 10, 1, 2]], 1),
    ];
    for (what, opts, want) in cases {
        let q = with_raw_ecs("geo.tm.test.", opts);
        assert_eq!(rcode(srv.udp(&q).await.expect(what)), *want, "{what}");
    }
    // ECS /0: the resolver asks us not to use its clients' addresses: scope 0, and the
    // packet's source (127.0.0.1, the loopback endpoint) decides.
    let r = render(&srv.udp(&with_raw_ecs("src.tm.test.", &[&[0, 1, 0, 0]])).await.unwrap());
    assert_eq!(
        r,
        "NOERROR aa\nan: src.tm.test. 60 A 192.0.2.33\nedns: payload=1232 version=0 ecs=0.0.0.0/0/0"
    );
    // While an ECS address decides when there is one (scope /2: the first bits that tell
    // 10.1.2.0 from 127.0.0.0/8).
    let r =
        render(&srv.udp(&with_raw_ecs("src.tm.test.", &[&[0, 1, 24, 0, 10, 1, 2]])).await.unwrap());
    assert_eq!(
        r,
        "NOERROR aa\nan: src.tm.test. 60 A 192.0.2.34\nedns: payload=1232 version=0 ecs=10.1.2.0/24/2"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_subnet_can_be_turned_off() {
    let srv = TestServer::start_with("ecs = false").await;
    // The ECS option is ignored: the decision uses the source (127.0.0.1, not in the
    // database: WORLD) and no ECS is echoed.
    let r = ask(&srv, "geo.tm.test.", "A", Some("10.1.2.0/24")).await;
    assert_eq!(r, "NOERROR aa\nan: geo.tm.test. 60 A 192.0.2.14\nedns: payload=1232 version=0");
    // Even a malformed ECS option is then just an unknown option.
    let q = with_raw_ecs("geo.tm.test.", &[&[0, 9, 99, 9]]);
    assert_eq!(srv.udp(&q).await.unwrap()[3] & 0x0f, 0);
    srv.stop().await;
}

/// A sticky burst at a share strictly between 0 and 1 answers per client prefix, and says so
/// in the ECS scope (/24): two subnets on either side of the spill get different answers, each
/// scoped to its own /24. At share 0 the answer holds for everyone (scope 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_spill_scope_over_udp() {
    let srv = TestServer::start().await;
    let set = |share: f64| {
        let snap = srv.running.as_ref().unwrap().shared().load();
        let pid = snap.policies.profile_by_name("burst.tm.test").unwrap();
        snap.signals.set_burst(pid, meridian::traffic::burst::State::Bursting, share);
    };
    // The profile's burst task publishes Idle (no load pushed) on every tick, the first one at
    // start: wait for it, then set the share before each query (the next tick is 5 s away).
    crate::health::until("the burst task's first tick", 5, || {
        let snap = srv.running.as_ref().unwrap().shared().load();
        let pid = snap.policies.profile_by_name("burst.tm.test").unwrap();
        snap.signals.profile(pid).burst().is_some()
    })
    .await;
    let mut sides = std::collections::BTreeMap::new();
    for i in 0..40 {
        set(0.5);
        let subnet = format!("10.9.{i}.0/24");
        let a = ask(&srv, "burst.tm.test.", "A", Some(&subnet)).await;
        assert!(a.ends_with(&edns(&format!("{subnet}/24"))), "{a}");
        let addr = a.lines().find_map(|l| l.rsplit_once(" A ").map(|x| x.1.to_string())).unwrap();
        sides.entry(addr).or_insert(subnet);
    }
    assert_eq!(sides.len(), 2, "both sides at share 0.5: {sides:?}");
    set(0.0);
    let a = ask(&srv, "burst.tm.test.", "A", Some("10.9.1.0/24")).await;
    assert!(a.ends_with(&edns("10.9.1.0/24/0")), "{a}");
    srv.stop().await;
}
