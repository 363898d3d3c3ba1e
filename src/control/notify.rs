//! NOTIFY (RFC 1996): when a zone's serial changes (and once at start), each secondary in its
//! `notify` list is told over UDP, signed with the zone's `transfer_key` when it has one, and
//! told again until it acknowledges: up to [`ATTEMPTS`] tries, each waiting twice as long.
//! The secondary then asks for the zone (IXFR or AXFR) as it always does.

use crate::dns::name::Name;
use crate::dns::tsig;
use crate::state::Shared;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// Tries per secondary and serial, the first waiting a second for the answer, each next one
/// twice as long as the one before.
pub const ATTEMPTS: u32 = 5;
const FIRST_WAIT: Duration = Duration::from_secs(1);

const OPCODE_NOTIFY: u16 = 4 << 11;
const AA: u16 = 0x0400;

/// Runs until `stop`: NOTIFYs for every zone whose serial is new since the last snapshot.
pub async fn run(
    shared: Arc<Shared>,
    mut generation: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut told: HashMap<Name, u32> = HashMap::new();
    loop {
        let snap = shared.load_full();
        for z in snap.zones.zones() {
            let serial = z.serial();
            if z.transfer.notify.is_empty() || told.get(z.origin()) == Some(&serial) {
                continue;
            }
            told.insert(z.origin().clone(), serial);
            let key = z
                .transfer
                .key
                .as_ref()
                .and_then(|k| snap.settings.keys.iter().find(|key| key.name == *k).cloned());
            // The SOA goes in the answer section (RFC 1996 §3.7), so the secondary knows the
            // serial before it asks.
            let soa: Arc<[u8]> = z.soa_with(serial).into();
            for &to in &z.transfer.notify {
                let (zone, key, stop) = (z.origin().clone(), key.clone(), stop.clone());
                tokio::spawn(notify(to, zone, soa.clone(), serial, key, stop));
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            r = generation.changed() => if r.is_err() { return },
        }
    }
}

/// The NOTIFY message for `zone` (question: the zone's SOA; answer: `soa`, the record),
/// signed with `key` if given.
pub fn message(id: u16, zone: &Name, soa: &[u8], key: Option<&tsig::Key>, now: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(512);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&(OPCODE_NOTIFY | AA).to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
    m.extend_from_slice(zone.wire());
    m.extend_from_slice(&6u16.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(soa);
    if let Some(k) = key {
        let len = m.len();
        m.resize(len + tsig::record_len(k, 0), 0);
        let (len, _) =
            tsig::sign(&mut m, len, k, tsig::Chain::Request(tsig::Mac::EMPTY), now, 0, &[]);
        m.truncate(len);
    }
    m
}

async fn notify(
    to: SocketAddr,
    zone: Name,
    soa: Arc<[u8]>,
    serial: u32,
    key: Option<tsig::Key>,
    mut stop: watch::Receiver<bool>,
) {
    let bind: SocketAddr =
        if to.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
    let Ok(sock) = tokio::net::UdpSocket::bind(bind).await else {
        warn!(%to, %zone, "NOTIFY: cannot open a UDP socket");
        return;
    };
    let mut wait = FIRST_WAIT;
    for attempt in 1..=ATTEMPTS {
        let id: u16 = rand_id();
        let now = crate::dns::cookie::unix_now() as u64;
        let msg = message(id, &zone, &soa, key.as_ref(), now);
        if sock.send_to(&msg, to).await.is_ok() {
            let mut buf = [0u8; 4096];
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let got = tokio::select! {
                    _ = stop.changed() => return,
                    r = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)) => r,
                };
                match got {
                    Ok(Ok((n, from))) if from == to && n >= 12 => {
                        let flags = u16::from_be_bytes([buf[2], buf[3]]);
                        let same = u16::from_be_bytes([buf[0], buf[1]]) == id
                            && flags & 0x8000 != 0
                            && flags & 0x7800 == OPCODE_NOTIFY;
                        if same {
                            let rcode = flags & 0xf;
                            info!(%to, %zone, serial, rcode, attempt, "NOTIFY answered");
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        wait *= 2;
    }
    warn!(%to, %zone, serial, attempts = ATTEMPTS, "NOTIFY was never answered");
}

fn rand_id() -> u16 {
    let mut b = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u16::from_be_bytes(b)
}
