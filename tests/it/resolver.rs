//! Through a real resolver: Debian's `unbound` with its subnet cache (RFC 7871) in front of
//! Meridian. What the ECS scope says decides what the cache shares between clients, so a scope
//! that overstates or understates shows here as a wrong answer for a real user.

use crate::harness::*;
use crate::health::until;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// An unbound on 127.0.0.1 forwarding `tm.test.` to Meridian with client subnets, stopped by
/// PID when dropped.
struct Unbound {
    child: Child,
    addr: SocketAddr,
}

impl Unbound {
    fn start(dir: &TempDir, upstream: SocketAddr) -> Unbound {
        // A free port: bind, read it, release it (unbound binds UDP and TCP on it).
        let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let conf = dir.write(
            "unbound.conf",
            &format!(
                "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n\
                 \x20 directory: \"{dir}\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 1\n\
                 \x20 access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  qname-minimisation: no\n\
                 \x20 module-config: \"subnetcache iterator\"\n  send-client-subnet: 127.0.0.1\n\
                 \x20 max-client-subnet-ipv4: 24\n  client-subnet-always-forward: yes\n\
                 \x20 num-threads: 1\n  prefetch: no\n  root-hints: \"\"\n  local-zone: \"test.\" nodefault\n\
                 stub-zone:\n  name: \"tm.test.\"\n  stub-addr: {}@{}\n",
                upstream.ip(),
                upstream.port(),
                dir = dir.path().display()
            ),
        );
        let log = std::fs::File::create(dir.path().join("unbound.log")).unwrap();
        let child = Command::new("unbound")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("unbound is installed (scripts/test.sh installs Debian's unbound)");
        Unbound { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) }
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address a name resolves to, for a client in `subnet`, asking `server` (with RD set, as
/// a stub resolver asks: unbound refuses non-recursive questions it has not cached).
async fn address(server: SocketAddr, name: &str, subnet: &str) -> Option<String> {
    let mut q = query_ecs(name, "A", subnet);
    q.metadata.recursion_desired = true;
    let a = udp_exchange(server, &bytes(&q)).await?;
    render(&a).lines().find_map(|l| l.rsplit_once(" A ").map(|x| x.1.to_string()))
}

/// A sticky burst spilling half of the clients: two client subnets on either side of the
/// spill must get different answers from the resolver's cache, each the one Meridian gives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subnet_cache_keeps_each_side_of_a_sticky_spill() {
    let srv = TestServer::start().await;
    // Wait for the burst task's first tick (it publishes Idle), then hold the share at 0.5 for
    // the whole test: the next tick is 5 s away, and the share is set again before each step.
    until("the burst task's first tick", 5, || {
        let snap = srv.running.as_ref().unwrap().shared().load();
        let pid = snap.policies.profile_by_name("burst.tm.test").unwrap();
        snap.signals.profile(pid).burst().is_some()
    })
    .await;
    let set = || {
        let snap = srv.running.as_ref().unwrap().shared().load();
        let pid = snap.policies.profile_by_name("burst.tm.test").unwrap();
        snap.signals.set_burst(pid, meridian::traffic::burst::State::Bursting, 0.5);
    };
    set();
    // One subnet on each side, as Meridian answers them directly.
    let mut sides: Vec<(String, String)> = Vec::new();
    for i in 0..64 {
        let subnet = format!("10.9.{i}.0/24");
        let a = address(srv.addr, "burst.tm.test.", &subnet).await.unwrap();
        if !sides.iter().any(|(addr, _)| *addr == a) {
            sides.push((a, subnet));
        }
    }
    assert_eq!(sides.len(), 2, "both sides at share 0.5: {sides:?}");

    // Unbound on a free port, ready when it answers; a start that loses its port to another
    // test (the port was free when read) exits, and is tried again on another. Bounded in time.
    let mut unbound = None;
    'attempts: for _ in 0..3 {
        let mut u = Unbound::start(&srv.dir, srv.addr);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            set();
            if u.child.try_wait().ok().flatten().is_some() {
                continue 'attempts;
            }
            let q = address(u.addr, "target.tm.test.", "10.0.0.0/24");
            if tokio::time::timeout(std::time::Duration::from_secs(1), q)
                .await
                .ok()
                .flatten()
                .is_some()
            {
                unbound = Some(u);
                break 'attempts;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        break;
    }
    let Some(unbound) = unbound else {
        panic!(
            "unbound did not answer: {}\n{}",
            std::fs::read_to_string(srv.dir.path().join("unbound.log")).unwrap_or_default(),
            std::fs::read_to_string(srv.dir.path().join("unbound.conf")).unwrap_or_default()
        );
    };
    // The first client's answer goes into the cache; the second, in another /24 on the other
    // side, must not be handed the first one's.
    for (want, subnet) in &sides {
        set();
        let got = address(unbound.addr, "burst.tm.test.", subnet).await;
        assert_eq!(got.as_deref(), Some(want.as_str()), "through the subnet cache, for {subnet}");
    }
    // And again, now from the cache.
    for (want, subnet) in &sides {
        set();
        let got = address(unbound.addr, "burst.tm.test.", subnet).await;
        assert_eq!(got.as_deref(), Some(want.as_str()), "cached, for {subnet}");
    }
    drop(unbound);
    srv.stop().await;
}
