//! The hot path: one query in, one answer out, written into the caller's buffer.
//!
//! `resolve` is synchronous and pure given the snapshot: it never awaits, never locks and never
//! allocates (a test with a counting allocator holds it to that). It decodes only the header,
//! the question and OPT, finds the zone and node, and encodes the answer directly, copying
//! RRsets that were pre-encoded when the snapshot was built. Owner names are compression
//! pointers into names already in the message, so nothing is re-encoded per query.

mod decode;

use crate::name::is_suffix;
use crate::state::Snapshot;
use crate::zone::rdata::{T_ANY, T_AXFR, T_CNAME, T_DS, T_IXFR, T_OPT, T_SOA};
use crate::zone::{Found, Labels, Node, RRset, Zone};
use decode::{Edns, HEADER_LEN, Query, Reject};

/// Response codes Meridian sends (RFC 1035 §4.1.1, RFC 6891 §9 for BADVERS).
pub mod rcode {
    pub const NOERROR: u16 = 0;
    pub const FORMERR: u16 = 1;
    pub const SERVFAIL: u16 = 2;
    pub const NXDOMAIN: u16 = 3;
    pub const NOTIMP: u16 = 4;
    pub const REFUSED: u16 = 5;
    pub const BADVERS: u16 = 16;
}

/// The transport a query came over; it decides the size limit of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What `resolve` produced: the answer's length in the output buffer and its rcode (for
/// metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub len: usize,
    pub rcode: u16,
    pub truncated: bool,
}

/// The most CNAMEs followed inside a zone before the chain is cut short.
const MAX_CHAIN: usize = 8;
/// The smallest UDP payload every client accepts (RFC 1035 §4.2.1).
const MIN_UDP: usize = 512;
const OPT_LEN: usize = 11;

const QR: u16 = 0x8000;
const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
/// Opcode, RD and CD are echoed from the query.
const ECHO_FLAGS: u16 = 0x7800 | 0x0100 | 0x0010;

/// Answers `query`, writing the response into `out` (which should be 65535 bytes, the largest
/// DNS message, so that TCP answers are never cut). Returns `None` when nothing should be sent.
pub fn resolve(
    snap: &Snapshot,
    query: &[u8],
    transport: Transport,
    out: &mut [u8],
) -> Option<Answer> {
    let q = match decode::query(query) {
        Ok(q) => q,
        Err(Reject::Drop) => return None,
        Err(reject) => {
            let (id, flags) = decode::header(query)?;
            let rcode = if reject == Reject::NotImp { rcode::NOTIMP } else { rcode::FORMERR };
            return Some(header_only(out, id, flags, rcode));
        }
    };

    let limit = match (transport, q.edns) {
        (Transport::Tcp, _) => out.len().min(u16::MAX as usize),
        (Transport::Udp, None) => MIN_UDP,
        (Transport::Udp, Some(e)) => {
            (e.payload as usize).clamp(MIN_UDP, snap.settings.udp_payload as usize)
        }
    }
    .min(out.len());
    let reserve = if q.edns.is_some() { OPT_LEN } else { 0 };
    let mut w = Writer {
        buf: out,
        pos: 0,
        limit: limit - reserve,
        counts: [1, 0, 0, 0],
        payload: snap.settings.udp_payload,
    };
    w.header(q.id, q.flags);
    // The question is echoed exactly as sent; it always fits (a query over UDP is at most
    // 512 bytes unless EDNS raised both limits).
    if w.put(q.question).is_err() {
        return Some(header_only(out_of(w), q.id, q.flags, rcode::FORMERR));
    }
    let question_end = w.pos;

    let mut meta = Meta { rcode: rcode::NOERROR, aa: false };
    let truncated = answer(snap, &q, &mut w, &mut meta).is_err();
    if truncated {
        // RFC 2181 §9: what does not fit is not sent partially; the client retries over TCP.
        // Keep the question and OPT so the client can match the reply.
        w.pos = question_end;
        w.counts = [1, 0, 0, 0];
    }
    w.limit += reserve;
    let rc = finish(&mut w, &q, meta, if truncated { TC } else { 0 });
    Some(Answer { len: w.pos, rcode: rc, truncated })
}

fn out_of(w: Writer<'_>) -> &mut [u8] {
    w.buf
}

/// Writes the OPT record (when the query had one) and the header flags and counts.
fn finish(w: &mut Writer<'_>, q: &Query<'_>, meta: Meta, extra_flags: u16) -> u16 {
    let Meta { rcode, aa } = meta;
    if let Some(e) = q.edns {
        // Space for OPT was reserved, so this cannot fail.
        let _ = w.opt(e, rcode);
        w.counts[3] += 1;
    }
    let flags = QR | (q.flags & ECHO_FLAGS) | if aa { AA } else { 0 } | extra_flags | (rcode & 0xf);
    w.buf[2..4].copy_from_slice(&flags.to_be_bytes());
    for (i, c) in w.counts.iter().enumerate() {
        w.buf[4 + 2 * i..6 + 2 * i].copy_from_slice(&c.to_be_bytes());
    }
    rcode
}

/// A response with no sections: for FORMERR and NOTIMP, where the question may be unreadable.
fn header_only(out: &mut [u8], id: u16, flags: u16, rcode: u16) -> Answer {
    out[..HEADER_LEN].fill(0);
    out[0..2].copy_from_slice(&id.to_be_bytes());
    let f = QR | (flags & ECHO_FLAGS) | rcode;
    out[2..4].copy_from_slice(&f.to_be_bytes());
    Answer { len: HEADER_LEN, rcode, truncated: false }
}

/// The rcode and AA bit of an answer, decided before its sections are written so that a
/// truncated answer keeps them.
#[derive(Clone, Copy)]
struct Meta {
    rcode: u16,
    aa: bool,
}

/// Fills the answer, authority and additional sections and sets `meta`; `Err` when they do
/// not fit.
fn answer(snap: &Snapshot, q: &Query<'_>, w: &mut Writer<'_>, meta: &mut Meta) -> Result<(), Full> {
    if q.edns.is_some_and(|e| e.version > 0) {
        meta.rcode = rcode::BADVERS;
        return Ok(());
    }
    // Class IN only (CH "version.bind" and the like are not ours), and no zone transfers.
    if q.qclass != 1 || matches!(q.qtype, T_AXFR | T_IXFR) {
        meta.rcode = rcode::REFUSED;
        return Ok(());
    }
    let qname = q.qname();
    let labels = Labels::new(qname);
    let Some((zone, apex_label)) = snap.zones.find(qname, &labels) else {
        meta.rcode = rcode::REFUSED;
        return Ok(());
    };
    meta.aa = true;

    // The name currently being answered: the question name, then each CNAME target in turn.
    // `at` is where an uncompressed copy of it sits in the message, for compression pointers.
    let mut cur = Cur { name: qname, labels, apex_label, at: HEADER_LEN };
    for step in 0..=MAX_CHAIN {
        match zone.lookup(cur.name, &cur.labels, cur.apex_label, q.qtype == T_DS) {
            Found::Referral { node, label } => {
                if step > 0 {
                    // A CNAME led into a delegated child: the answer so far stands.
                    return Ok(());
                }
                meta.aa = false;
                let ns = node.rrset(crate::zone::rdata::T_NS).expect("a delegation point has NS");
                let owner = cur.suffix(label);
                w.rrset(owner, ns, 2)?;
                // Glue is not optional in a referral (RFC 9471): if it does not fit, truncate.
                return w.extra(ns);
            }
            Found::NxDomain => {
                // RFC 6604: after a CNAME chain the rcode describes the last name.
                meta.rcode = rcode::NXDOMAIN;
                return negative(zone, &cur, w);
            }
            Found::Node { node, .. } => {
                if q.qtype == T_ANY {
                    // RFC 8482: one RRset, never the whole node.
                    return match node.rrsets.first() {
                        Some(rr) => w.rrset(cur.owner(), rr, 1).map(drop),
                        None => negative(zone, &cur, w),
                    };
                }
                if let Some(rr) = node.rrset(q.qtype) {
                    w.rrset(cur.owner(), rr, 1)?;
                    // Additional data is a courtesy: leave it out rather than truncate.
                    let mark = (w.pos, w.counts);
                    if w.extra(rr).is_err() {
                        (w.pos, w.counts) = mark;
                    }
                    return Ok(());
                }
                match cname(node) {
                    Some((rr, target)) if step < MAX_CHAIN => {
                        let rdata_at = w.rrset(cur.owner(), rr, 1)? + 10;
                        if !is_suffix(target, zone.origin().wire()) {
                            // Chains are followed inside the zone only; the resolver does the rest.
                            return Ok(());
                        }
                        let zone_labels = cur.labels.count() - cur.apex_label;
                        let labels = Labels::new(target);
                        let apex_label = labels.count() - zone_labels;
                        cur = Cur { name: target, labels, apex_label, at: rdata_at };
                    }
                    Some(_) => return Ok(()),
                    None => return negative(zone, &cur, w),
                }
            }
        }
    }
    Ok(())
}

fn cname(node: &Node) -> Option<(&RRset, &[u8])> {
    let rr = node.rrset(T_CNAME)?;
    Some((rr, rr.target.as_ref()?.wire()))
}

/// NXDOMAIN and NODATA carry the zone's SOA in the authority section, with the negative TTL.
fn negative(zone: &Zone, cur: &Cur<'_>, w: &mut Writer<'_>) -> Result<(), Full> {
    let apex = cur.suffix(cur.apex_label);
    w.name(apex)?;
    w.put(&zone.soa_negative)?;
    w.counts[2] += 1;
    debug_assert_eq!(u16::from_be_bytes([zone.soa_negative[0], zone.soa_negative[1]]), T_SOA);
    Ok(())
}

/// The name being answered and where it sits in the message.
struct Cur<'a> {
    name: &'a [u8],
    labels: Labels,
    apex_label: usize,
    at: usize,
}

/// A name to write: its wire bytes, and where an uncompressed copy already is in the message.
#[derive(Clone, Copy)]
struct NameRef<'a> {
    wire: &'a [u8],
    at: usize,
}

impl<'a> Cur<'a> {
    fn owner(&self) -> NameRef<'a> {
        NameRef { wire: self.name, at: self.at }
    }

    fn suffix(&self, label: usize) -> NameRef<'a> {
        let off = self.labels.offset(self.name, label);
        NameRef { wire: &self.name[off..], at: self.at + off }
    }
}

/// The answer ran past the size limit.
#[derive(Debug)]
struct Full;

/// A bounds-checked cursor over the output buffer.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
    limit: usize,
    /// QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT.
    counts: [u16; 4],
    /// The UDP payload size Meridian advertises in OPT.
    payload: u16,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), Full> {
        let end = self.pos + bytes.len();
        if end > self.limit {
            return Err(Full);
        }
        self.buf[self.pos..end].copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    fn header(&mut self, id: u16, flags: u16) {
        self.buf[..HEADER_LEN].fill(0);
        self.buf[0..2].copy_from_slice(&id.to_be_bytes());
        self.buf[2..4].copy_from_slice(&flags.to_be_bytes());
        self.pos = HEADER_LEN;
    }

    /// A name as a compression pointer to its earlier copy, or in full when the copy is past
    /// the 14-bit pointer range.
    fn name(&mut self, n: NameRef<'_>) -> Result<(), Full> {
        if n.wire.len() == 1 {
            return self.put(&[0]);
        }
        if n.at < 0x4000 {
            self.put(&(0xc000 | n.at as u16).to_be_bytes())
        } else {
            self.put(n.wire)
        }
    }

    /// Writes every record of `rr` with `owner`; returns the position of the last record's
    /// start (after its owner), for callers that point into its rdata.
    fn rrset(&mut self, owner: NameRef<'_>, rr: &RRset, section: usize) -> Result<usize, Full> {
        let mut tails = &rr.tails[..];
        let mut last = self.pos;
        for _ in 0..rr.count {
            let len = 10 + u16::from_be_bytes([tails[8], tails[9]]) as usize;
            self.name(owner)?;
            last = self.pos;
            self.put(&tails[..len])?;
            tails = &tails[len..];
        }
        self.counts[section] += rr.count;
        Ok(last)
    }

    /// The RRset's in-zone address records (glue), into the additional section.
    fn extra(&mut self, rr: &RRset) -> Result<(), Full> {
        self.put(&rr.extra)?;
        self.counts[3] += rr.extra_count;
        Ok(())
    }

    fn opt(&mut self, e: Edns, rcode: u16) -> Result<(), Full> {
        let payload = self.payload;
        let ext = (rcode >> 4) as u8;
        let flags: u8 = if e.dnssec_ok { 0x80 } else { 0 };
        self.put(&[0, 0, T_OPT as u8])?;
        self.put(&payload.to_be_bytes())?;
        self.put(&[ext, 0, flags, 0, 0, 0])
    }
}
