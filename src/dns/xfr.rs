//! Outgoing zone transfers over TCP: AXFR (RFC 5936) and IXFR (RFC 1995), to the networks a
//! zone's `allow_transfer` names and, when it has a `transfer_key`, only to requests signed
//! with it (RFC 8945); everything else goes to `resolve`, which answers REFUSED (or NOTAUTH
//! for a bad signature).
//!
//! A transfer is the zone file's records, SOA first and last, in as many messages as it takes
//! (each at most [`MESSAGE_LIMIT`] bytes, every name compressed against the question), each
//! message signed when the request was, its MAC chained to the one before. IXFR is answered
//! with the SOA alone when the secondary is current, with the differences since its serial
//! when the zone's history (kept across reloads, `Zone::follow`) reaches back to it, and with
//! the whole zone otherwise (RFC 1995 §4).
//!
//! Traffic-managed names are not in the zone file. A secondary receives, for each, the answer
//! a client with no known location gets at the moment of the transfer (its A, AAAA or CNAME
//! records, with the profile's TTL), so that a secondary at another provider answers those
//! names too. It follows a failover at its next transfer, not at once: the serial is the zone
//! file's and does not change with the live answer.

use crate::dns::resolve::{self, Request, Transport};
use crate::dns::tsig;
use crate::dns::zone::Zone;
use crate::dns::zone::rdata::{T_AXFR, T_IXFR, T_SOA};
use crate::state::Snapshot;
use crate::traffic::policy::Rng;
use std::net::IpAddr;

/// The largest message of a transfer, before its TSIG record.
pub const MESSAGE_LIMIT: usize = 16 * 1024;

const QR: u16 = 0x8000;
const AA: u16 = 0x0400;
/// A pointer to the question's name, which in a transfer is the zone's apex.
const APEX: [u8; 2] = [0xc0, 12];

/// Whether `query` asks for a zone transfer (its one question is AXFR or IXFR).
pub fn is_transfer(query: &[u8]) -> bool {
    Question::read(query).is_some_and(|q| matches!(q.qtype, T_AXFR | T_IXFR))
}

/// The messages answering an allowed transfer request, or `None` when `query` is not one
/// (it is then answered as any other query, which for AXFR/IXFR is REFUSED). `now` is
/// seconds since the Unix epoch, for TSIG.
pub fn answer(
    snap: &Snapshot,
    query: &[u8],
    peer: IpAddr,
    now: u32,
    rng: &mut Rng,
) -> Option<Vec<Vec<u8>>> {
    let q = Question::read(query)?;
    if !matches!(q.qtype, T_AXFR | T_IXFR) {
        return None;
    }
    let id = u16::from_be_bytes([query[0], query[1]]);
    let question = &query[12..q.end];
    let zone = snap.zones.zones().iter().find(|z| z.origin().wire().eq_ignore_ascii_case(q.name));
    // Anything but an allowed transfer (a bad signature, a zone not ours, a peer or key not
    // admitted) is answered as any query for AXFR/IXFR is: REFUSED, or NOTAUTH with its TSIG,
    // with OPT as the query had it.
    let signed = match tsig::find(query) {
        Ok(None) => None,
        Ok(Some(s)) => match tsig::verify(&snap.settings.keys, query, &s, now as u64) {
            tsig::Verified::Ok { key, mac } => Some((key, mac)),
            _ => return None,
        },
        Err(_) => return None,
    };
    let Some(z) = zone.filter(|z| {
        let t = &z.transfer;
        t.allow.iter().any(|c| c.contains(peer))
            && t.key.as_ref().is_none_or(|k| signed.is_some_and(|(key, _)| key.name == *k))
    }) else {
        tracing::info!(%peer, "zone transfer refused");
        return None;
    };
    let current =
        q.qtype == T_IXFR && ixfr_serial(query, q.end).is_some_and(|s| !serial_lt(s, z.serial()));
    tracing::info!(
        zone = %z.origin(),
        %peer,
        kind = if q.qtype == T_AXFR { "AXFR" } else { "IXFR" },
        up_to_date = current,
        "zone transfer"
    );
    let mut out = Messages::new(id, question);
    let from = ixfr_serial(query, q.end).filter(|_| q.qtype == T_IXFR);
    // Differences can be sent only when the history reaches back to the secondary's serial,
    // and only for a zone without traffic-managed names: their answers are taken at transfer
    // time, so a zone that has them is always sent whole.
    let managed = z.nodes().any(|(_, n)| n.profile.is_some());
    let chain = from.and_then(|s| z.history.iter().position(|d| d.from == s));
    if current {
        // RFC 1995 §4: the secondary has our serial; the SOA alone says so.
        soa(z, &mut out);
    } else if let (Some(i), false) = (chain, managed) {
        incremental(z, &z.history[i..], &mut out);
    } else {
        records(snap, z, &mut out, now, rng);
    }
    let mut messages = out.finish();
    if let Some((key, mut mac)) = signed {
        for (i, m) in messages.iter_mut().enumerate() {
            let chain = if i == 0 { tsig::Chain::Request(mac) } else { tsig::Chain::Next(mac) };
            let len = m.len();
            m.resize(len + tsig::record_len(key, 0), 0);
            let (len, next) = tsig::sign(m, len, key, chain, now as u64, 0, &[]);
            m.truncate(len);
            mac = next;
        }
    }
    Some(messages)
}

/// The opcode NOTIFY, in the flags word.
const OPCODE_NOTIFY: u16 = 4 << 11;

/// Whether `query` is a NOTIFY (RFC 1996).
pub fn is_notify(query: &[u8]) -> bool {
    query.len() >= 12 && u16::from_be_bytes([query[2], query[3]]) & 0xf800 == OPCODE_NOTIFY
}

/// Answers a NOTIFY for one of our secondary zones: NOERROR when it comes from one of the
/// zone's primaries (by address; any port) and, when the zone has a `primary_key`, is signed
/// with it; REFUSED for a zone we are not a secondary of or a sender that is not its
/// primary; NOTAUTH for a bad signature. Returns the answer's length in `out` and, when it
/// was accepted, the index of the zone in `snap.secondaries` (the caller wakes its refresh).
/// `None`: not a NOTIFY we can read, or not for one of our secondary zones (answered as any
/// query with an opcode we do not serve: NOTIMP, or FORMERR).
pub fn notify_in(
    snap: &Snapshot,
    query: &[u8],
    peer: IpAddr,
    now: u32,
    out: &mut [u8],
) -> Option<(usize, Option<usize>)> {
    if !is_notify(query) || query[2] & 0x80 != 0 {
        return None;
    }
    let q = Question::read_any(query)?;
    let id = u16::from_be_bytes([query[0], query[1]]);
    let zone = snap
        .secondaries
        .iter()
        .position(|s| s.origin.wire().eq_ignore_ascii_case(q.name))
        .filter(|_| q.qtype == T_SOA)?;
    let signed = match tsig::find(query) {
        Ok(None) => None,
        Ok(Some(s)) => Some((s, tsig::verify(&snap.settings.keys, query, &s, now as u64))),
        Err(_) => return None,
    };
    let secondary = &snap.secondaries[zone];
    let from_primary = secondary.spec.primaries.iter().any(|p| p.ip() == peer);
    let want_key = secondary.spec.key.as_ref();
    let rcode = match (&signed, from_primary) {
        (_, false) => resolve::rcode::REFUSED,
        (Some((_, tsig::Verified::Ok { key, .. })), true)
            if want_key.is_none_or(|k| key.name == *k) =>
        {
            resolve::rcode::NOERROR
        }
        (Some((_, tsig::Verified::Ok { .. })), true) => resolve::rcode::REFUSED,
        (Some(_), true) => resolve::rcode::NOTAUTH,
        (None, true) if want_key.is_none() => resolve::rcode::NOERROR,
        (None, true) => resolve::rcode::REFUSED,
    };
    let question = &query[12..q.end];
    let mut len = 12 + question.len();
    let room = len
        + signed.as_ref().map_or(0, |(s, v)| match v {
            tsig::Verified::Ok { key, .. } | tsig::Verified::BadTime { key, .. } => {
                tsig::record_len(key, 6)
            }
            tsig::Verified::Unsigned { .. } => tsig::unsigned_len(s),
        });
    if out.len() < room {
        return None;
    }
    out[..12].fill(0);
    out[0..2].copy_from_slice(&id.to_be_bytes());
    let aa = if rcode == resolve::rcode::NOERROR { AA } else { 0 };
    out[2..4].copy_from_slice(&(QR | OPCODE_NOTIFY | aa | rcode).to_be_bytes());
    out[4..6].copy_from_slice(&1u16.to_be_bytes());
    out[12..len].copy_from_slice(question);
    len = resolve::echo_opt(snap, query, out, len);
    match signed {
        None => {}
        Some((_, tsig::Verified::Ok { key, mac })) => {
            len = tsig::sign(out, len, key, tsig::Chain::Request(mac), now as u64, 0, &[]).0;
        }
        Some((s, tsig::Verified::BadTime { key, mac })) => {
            let ours = (now as u64).to_be_bytes();
            let chain = tsig::Chain::Request(mac);
            len = tsig::sign(out, len, key, chain, s.time, tsig::BADTIME, &ours[2..]).0;
        }
        Some((s, tsig::Verified::Unsigned { error })) => {
            len = tsig::unsigned(out, len, &s, error);
        }
    }
    tracing::info!(
        zone = %secondary.origin,
        %peer,
        rcode = resolve::rcode::name(rcode),
        "NOTIFY received"
    );
    Some((len, (rcode == resolve::rcode::NOERROR).then_some(zone)))
}

/// Serial number arithmetic (RFC 1982): `a` is before `b`.
pub(crate) fn serial_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

/// The question of a query, read just enough to route it.
struct Question<'a> {
    name: &'a [u8],
    qtype: u16,
    /// Where the question section ends.
    end: usize,
}

impl<'a> Question<'a> {
    /// The question of a QUERY.
    fn read(msg: &'a [u8]) -> Option<Question<'a>> {
        if msg.len() < 12 || msg[2] & 0xf8 != 0 {
            return None;
        }
        Question::read_any(msg)
    }

    /// The one question of a message of any opcode.
    fn read_any(msg: &'a [u8]) -> Option<Question<'a>> {
        if msg.len() < 12 || u16::from_be_bytes([msg[4], msg[5]]) != 1 {
            return None;
        }
        let p = crate::dns::name::plain_end(msg, 12)?;
        let qtype = u16::from_be_bytes([*msg.get(p)?, *msg.get(p + 1)?]);
        msg.get(p + 3)?;
        Some(Question { name: &msg[12..p], qtype, end: p + 4 })
    }
}

/// The serial of the SOA in an IXFR request's authority section (RFC 1995 §3).
fn ixfr_serial(msg: &[u8], mut p: usize) -> Option<u32> {
    let an = u16::from_be_bytes([msg[6], msg[7]]);
    let ns = u16::from_be_bytes([msg[8], msg[9]]);
    for i in 0..(an + ns) {
        p = crate::dns::name::wire_end(msg, p)?;
        let rtype = u16::from_be_bytes([*msg.get(p)?, *msg.get(p + 1)?]);
        let rdlen = u16::from_be_bytes([*msg.get(p + 8)?, *msg.get(p + 9)?]) as usize;
        let end = p + 10 + rdlen;
        if i >= an && rtype == T_SOA && rdlen >= 22 {
            let s = msg.get(end - 20..end - 16)?;
            return Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
        }
        p = end;
    }
    None
}

/// The messages of a transfer being written.
struct Messages<'q> {
    id: u16,
    question: &'q [u8],
    done: Vec<Vec<u8>>,
    cur: Vec<u8>,
    count: u16,
}

impl<'q> Messages<'q> {
    fn new(id: u16, question: &'q [u8]) -> Messages<'q> {
        let mut m = Messages { id, question, done: Vec::new(), cur: Vec::new(), count: 0 };
        m.start();
        m
    }

    fn start(&mut self) {
        self.cur = Vec::with_capacity(MESSAGE_LIMIT + 256);
        self.cur.extend_from_slice(&self.id.to_be_bytes());
        self.cur.extend_from_slice(&(QR | AA).to_be_bytes());
        self.cur.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        self.cur.extend_from_slice(self.question);
        self.count = 0;
    }

    /// One record: `prefix` is its owner's labels before the apex, `tail` its type, class,
    /// TTL, rdata length and rdata, with pointers to the apex at `relocs`.
    fn record(&mut self, prefix: &[u8], tail: &[u8], relocs: impl Iterator<Item = usize>) {
        if self.count > 0 && self.cur.len() + prefix.len() + 2 + tail.len() > MESSAGE_LIMIT {
            self.flush();
            self.start();
        }
        self.cur.extend_from_slice(prefix);
        self.cur.extend_from_slice(&APEX);
        let at = self.cur.len();
        self.cur.extend_from_slice(tail);
        for r in relocs {
            self.cur[at + r..at + r + 2].copy_from_slice(&APEX);
        }
        self.count += 1;
    }

    /// One record written out whole (owner and names in full).
    fn raw(&mut self, record: &[u8]) {
        if self.count > 0 && self.cur.len() + record.len() > MESSAGE_LIMIT {
            self.flush();
            self.start();
        }
        self.cur.extend_from_slice(record);
        self.count += 1;
    }

    fn flush(&mut self) {
        self.cur[6..8].copy_from_slice(&self.count.to_be_bytes());
        self.done.push(std::mem::take(&mut self.cur));
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        self.flush();
        self.done
    }
}

/// RFC 1995 §4's incremental form: our SOA, then for each step the SOA it left and the
/// records deleted, the SOA it reached and the records added, then our SOA again.
fn incremental(z: &Zone, steps: &[crate::dns::zone::Diff], out: &mut Messages<'_>) {
    soa(z, out);
    for d in steps {
        out.raw(&z.soa_with(d.from));
        for r in &d.deleted {
            out.raw(r);
        }
        out.raw(&z.soa_with(d.to));
        for r in &d.added {
            out.raw(r);
        }
    }
    soa(z, out);
}

fn soa(z: &Zone, out: &mut Messages<'_>) {
    let soa = z.apex().rrset(T_SOA).expect("a zone has an SOA");
    for (tail, relocs) in soa.records() {
        out.record(&[], tail, relocs);
    }
}

/// The whole zone: SOA, every other record, the traffic-managed names' answers for an
/// unlocated client, SOA again.
fn records(snap: &Snapshot, z: &Zone, out: &mut Messages<'_>, now: u32, rng: &mut Rng) {
    let apex_len = z.origin().wire().len();
    soa(z, out);
    for (owner, node) in z.nodes() {
        let prefix = &owner[..owner.len() - apex_len];
        for rr in node.rrsets() {
            if rr.rtype == T_SOA && prefix.is_empty() {
                continue;
            }
            for (tail, relocs) in rr.records() {
                out.record(prefix, tail, relocs);
            }
        }
        if node.profile.is_some() {
            for tail in managed(snap, owner, now, rng) {
                out.record(prefix, &tail, std::iter::empty());
            }
        }
    }
    soa(z, out);
}

/// The records a client with no known location is answered for the traffic-managed `name`:
/// what `resolve` writes for A and AAAA queries from 0.0.0.0, owned by the name itself.
fn managed(snap: &Snapshot, name: &[u8], now: u32, rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut tails: Vec<Vec<u8>> = Vec::new();
    let mut out = vec![0u8; 65535];
    for qtype in [1u16, 28] {
        let mut q = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(name);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        let req = Request { src: IpAddr::from([0, 0, 0, 0]), transport: Transport::Tcp, now };
        // Not a client's query: not counted in the profile's and endpoints' metrics.
        let uncounted = &mut crate::traffic::policy::Uncounted;
        let Some(a) = resolve::resolve_traced(snap, &q, req, rng, &mut out, uncounted) else {
            continue;
        };
        let msg = &out[..a.len];
        let ancount = u16::from_be_bytes([msg[6], msg[7]]);
        let mut p = 12 + a.question_len;
        for _ in 0..ancount {
            // Owners are pointers (to the question, or to a CNAME's target before them).
            if msg[p] & 0xc0 != 0xc0 {
                break;
            }
            let owned = msg[p..p + 2] == APEX;
            let len = 10 + u16::from_be_bytes([msg[p + 10], msg[p + 11]]) as usize;
            let tail = msg[p + 2..p + 2 + len].to_vec();
            if owned && !tails.contains(&tail) {
                tails.push(tail);
            }
            p += 2 + len;
        }
    }
    tails
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_arithmetic() {
        for (a, b, lt) in
            [(1, 2, true), (2, 1, false), (5, 5, false), (u32::MAX, 0, true), (0, u32::MAX, false)]
        {
            assert_eq!(serial_lt(a, b), lt, "{a} < {b}");
        }
    }
}
