//! The UDP workers' batches seen from outside: many queries arriving at once are each answered
//! once, to their own sender, with their own ID; a lone query is answered at once (no batch is
//! waited for); and a server on a wildcard address answers from the address each query was
//! sent to (IP_PKTINFO / IPV6_PKTINFO), which `dig` insists on.

use crate::harness::*;
use hickory_proto::op::Message;
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// A server for the demo zone on `listen` (a wildcard address, port 0), one UDP worker.
async fn server_on(listen: &str) -> TestServer {
    let dir = TempDir::new();
    let demo = repo().join("zones/app.example.com.zone");
    let config = dir.write(
        "meridian.toml",
        &format!(
            "[server]\nlisten = [\"{listen}\"]\nudp_workers = 1\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\
             [[zone]]\nname = \"app.example.com.\"\nfile = \"{}\"\n",
            demo.display()
        ),
    );
    TestServer::start_config(dir, config).await
}

fn dig_from(server: &str, port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("dig")
        .args([&format!("@{server}"), "-p", &port.to_string(), "+time=2", "+tries=1"])
        .args(args)
        .output()
        .expect("dig is installed by the test command");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_listener_answers_from_the_address_queried() {
    let srv = server_on("0.0.0.0:0").await;
    let port = srv.addr.port();
    // dig drops a reply from any other address than the one it asked ("reply from
    // unexpected source"), so an answer at all proves the source.
    for to in ["127.0.0.1", "127.0.0.2", "127.0.0.53"] {
        let got = dig_from(to, port, &["api.app.example.com", "+short"]);
        assert_eq!(got, "192.0.2.10\n", "via {to}");
    }
    // And checked directly: the reply's source is the queried address and port.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let q = bytes(&query("api.app.example.com.", "A", Some(1232)));
    for to in ["127.0.0.7", "127.1.2.3"] {
        let to: SocketAddr = format!("{to}:{port}").parse().unwrap();
        client.send_to(&q, to).unwrap();
        let mut buf = [0u8; 1500];
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(from, to);
        assert!(render(&buf[..n]).contains("A 192.0.2.10"), "{}", render(&buf[..n]));
    }
    srv.stop().await;

    // IPv6, where the machine has it: [::] answers ::1 from ::1.
    if UdpSocket::bind("[::1]:0").is_ok() {
        let srv = server_on("[::]:0").await;
        let got = dig_from("::1", srv.addr.port(), &["api.app.example.com", "AAAA", "+short"]);
        assert_eq!(got, "2001:db8::10\n");
        srv.stop().await;
    }
}

/// 500 queries from 5 sockets, sent as fast as the kernel takes them (so the worker sees
/// them in batches): every one answered exactly once, to its sender, with its ID and question.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_arriving_together_are_each_answered_once_to_their_sender() {
    let srv = server_on("127.0.0.1:0").await;
    let names = ["api", "mail", "nope", "docs", "portal"];
    let clients: Vec<UdpSocket> = (0..5)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
            s
        })
        .collect();
    let mut want: HashMap<(usize, u16), String> = HashMap::new();
    for round in 0..100u16 {
        for (c, sock) in clients.iter().enumerate() {
            let name = format!("{}.app.example.com.", names[(round as usize + c) % names.len()]);
            let mut m = query(&name, "A", Some(1232));
            let id = round * 8 + c as u16;
            m.metadata.id = id;
            sock.send_to(&bytes(&m), srv.addr).unwrap();
            want.insert((c, id), name);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen: HashMap<(usize, u16), usize> = HashMap::new();
    for (c, sock) in clients.iter().enumerate() {
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            let Ok((n, from)) = sock.recv_from(&mut buf) else { break };
            assert_eq!(from, srv.addr);
            let m = Message::from_vec(&buf[..n]).unwrap();
            let key = (c, m.metadata.id);
            let name = want.get(&key).unwrap_or_else(|| panic!("unexpected answer {key:?}"));
            assert_eq!(&m.queries[0].name().to_string(), name);
            *seen.entry(key).or_default() += 1;
        }
    }
    assert!(seen.values().all(|&n| n == 1), "an answer came twice");
    // Loopback does not drop at this volume (the socket buffer holds 4 MiB).
    assert_eq!(seen.len(), want.len(), "answers missing");
    let answered = srv.runtime().metrics.answered();
    assert!(answered >= 500, "metrics count {answered}");
    srv.stop().await;
}
