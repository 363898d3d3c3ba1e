//! The floor for the whole-server benchmark: a UDP "server" that does no DNS work. It takes
//! whatever datagrams have arrived (one `recvmmsg`), sets the QR bit of each, and sends them
//! straight back (one `sendmmsg`), through the same `meridian::sys::Batch` the server's UDP
//! workers use. What it costs per query is what the kernel and the batched system calls cost;
//! a DNS server can only add to that.
//!
//!   cargo run --release --example reflector -- 127.0.0.1:5399 [SECONDS]
//!
//! It stops by itself after SECONDS (default 600), so a forgotten one does not linger.

use meridian::sys::{Batch, Local};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:5399".into());
    let seconds: u64 = args.next().map_or(600, |s| s.parse().expect("SECONDS is a number"));
    let sock = UdpSocket::bind(&addr)?;
    // Wakes up now and then to see whether its time is up.
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let (mut rx, mut tx) = (Batch::new(32, 4096, false), Batch::new(32, 4096, false));
    let end = Instant::now() + Duration::from_secs(seconds);
    eprintln!("reflecting on {addr} for {seconds} s");
    while Instant::now() < end {
        let n = match rx.recv(&sock, true) {
            Ok(n) => n,
            // An ICMP error for an earlier reply (its client has gone) surfaces here: ignored,
            // as a server would.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        for i in 0..n {
            let (data, Some(peer)) = (rx.data(i), rx.peer(i)) else { continue };
            let Some(slot) = tx.slot() else { break };
            slot[..data.len()].copy_from_slice(data);
            if data.len() > 2 {
                slot[2] |= 0x80;
            }
            tx.push(data.len(), peer, Local::Unknown);
        }
        tx.send(&sock);
    }
    Ok(())
}
