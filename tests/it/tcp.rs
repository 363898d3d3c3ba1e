//! TCP per RFC 7766: pipelining, idle timeout, connection limit, and broken frames that must
//! not affect other clients. Waits are bounded (`ANSWER_WAIT`), never fixed sleeps.

use crate::harness::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMITS: &str = "tcp_idle_timeout = \"500ms\"\ntcp_max_connections = 3\n";

/// True when the server closes `s` within `ANSWER_WAIT`.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(ANSWER_WAIT, s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

fn query_with_id(name: &str, id: u16) -> Vec<u8> {
    let mut q = bytes(&query(name, "A", None));
    q[..2].copy_from_slice(&id.to_be_bytes());
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_queries_all_answered() {
    let srv = TestServer::start_with(LIMITS).await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    // Ten queries in one write, before reading anything.
    let names = ["api", "nope", "portal", "x.user", "mail"];
    let mut burst = Vec::new();
    for id in 0..10u16 {
        let name = format!("{}.app.example.com.", names[id as usize % names.len()]);
        burst.extend_from_slice(&frame(&query_with_id(&name, 100 + id)));
    }
    s.write_all(&burst).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..10 {
        let a = read_frame(&mut s).await.expect("an answer for every pipelined query");
        ids.push(u16::from_be_bytes([a[0], a[1]]));
    }
    ids.sort();
    assert_eq!(ids, (100..110).collect::<Vec<_>>());
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    // An idle timeout of 2 s: a connection idle for a small part of it is still served, and
    // one left idle is closed by the server (within the bounded wait).
    let srv = TestServer::start_with("tcp_idle_timeout = \"2s\"\n").await;
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    s.write_all(&frame(&query_with_id("api.app.example.com.", 1))).await.unwrap();
    assert!(read_frame(&mut s).await.is_some());
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.write_all(&frame(&query_with_id("api.app.example.com.", 2))).await.unwrap();
    assert!(read_frame(&mut s).await.is_some(), "closed long before the idle timeout");
    assert!(closed_by_server(&mut s).await, "idle connection was not closed");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_closes_extra_connections() {
    let srv = TestServer::start_with("tcp_idle_timeout = \"5s\"\ntcp_max_connections = 2\n").await;
    let q = frame(&query_with_id("api.app.example.com.", 7));
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        s.write_all(&q).await.unwrap();
        assert!(read_frame(&mut s).await.is_some());
        held.push(s);
    }
    let mut extra = TcpStream::connect(srv.addr).await.unwrap();
    assert!(closed_by_server(&mut extra).await, "a connection past the limit was kept open");
    // The connections within the limit keep working, and UDP is unaffected.
    for s in &mut held {
        s.write_all(&q).await.unwrap();
        assert!(read_frame(s).await.is_some());
    }
    assert!(srv.udp(&query_with_id("api.app.example.com.", 8)).await.is_some());
    // Once one closes, a new connection is accepted again.
    drop(held.pop());
    let deadline = Instant::now() + ANSWER_WAIT;
    loop {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        let _ = s.write_all(&q).await;
        if read_frame(&mut s).await.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "slot was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_frames_do_not_affect_others() {
    let srv = TestServer::start_with(LIMITS).await;
    let q = query_with_id("api.app.example.com.", 9);

    // A frame that announces 100 bytes and stops after 20: cut off at the idle timeout.
    let mut stalled = TcpStream::connect(srv.addr).await.unwrap();
    stalled.write_all(&100u16.to_be_bytes()).await.unwrap();
    stalled.write_all(&q[..20.min(q.len())]).await.unwrap();
    assert!(closed_by_server(&mut stalled).await);

    // A frame too short to hold a header: the connection is closed.
    let mut short = TcpStream::connect(srv.addr).await.unwrap();
    short.write_all(&[0, 4, 1, 2, 3, 4]).await.unwrap();
    assert!(closed_by_server(&mut short).await);

    // A full-size frame of garbage gets FORMERR, and the connection stays usable.
    let mut big = TcpStream::connect(srv.addr).await.unwrap();
    let mut junk = vec![0xffu8; 65535];
    junk[2] = 0; // a query, opcode 0
    big.write_all(&frame(&junk)).await.unwrap();
    let a = read_frame(&mut big).await.expect("an answer to a large malformed frame");
    assert_eq!(a[3] & 0x0f, 1);
    big.write_all(&frame(&q)).await.unwrap();
    assert!(read_frame(&mut big).await.is_some());

    // A client that closes mid-frame does not disturb anything.
    let mut gone = TcpStream::connect(srv.addr).await.unwrap();
    gone.write_all(&[0, 50, 1, 2]).await.unwrap();
    drop(gone);
    assert!(srv.tcp(&q).await.is_some());
    srv.stop().await;
}

/// A client that stalls mid-frame holds nobody up: with an idle timeout far longer than any
/// wait here, other clients' answers must arrive while the stalled connection is still open
/// (a server that blocked on it until the timeout would fail this).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_delays_nobody() {
    let srv = TestServer::start_with("tcp_idle_timeout = \"60s\"\n").await;
    let q = query_with_id("api.app.example.com.", 9);
    let mut stalled = TcpStream::connect(srv.addr).await.unwrap();
    stalled.write_all(&100u16.to_be_bytes()).await.unwrap();
    stalled.write_all(&q[..20]).await.unwrap();
    for _ in 0..5 {
        assert!(srv.tcp(&q).await.is_some(), "a TCP client waited behind the stalled one");
        assert!(srv.udp(&q).await.is_some(), "a UDP client waited behind the stalled one");
    }
    // Still open: the answers above did not come from the stalled connection being cut.
    let mut buf = [0u8; 1];
    let still_open =
        tokio::time::timeout(Duration::from_millis(100), stalled.read(&mut buf)).await.is_err();
    assert!(still_open, "the stalled connection was closed long before its idle timeout");
    // Closed by the client, so that shutdown does not wait out the 60 s idle timeout.
    drop(stalled);
    srv.stop().await;
}
