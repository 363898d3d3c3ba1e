//! The hot path: one query in, one answer out, written into the caller's buffer.
//!
//! `resolve` is synchronous and pure given the snapshot, the client and the RNG: it never
//! awaits, never locks and never allocates (a test with a counting allocator holds it to that).
//! It decodes only the header, the question and OPT, finds the zone and node, and encodes the
//! answer directly: static RRsets are copied pre-encoded; traffic-managed names ask `policy`
//! which endpoints answer and write their records. Owner names are compression pointers into
//! names already in the message, so nothing is re-encoded per query.

mod decode;

use crate::dns::name::is_suffix;
use crate::dns::zone::rdata::{
    T_A, T_AAAA, T_ANY, T_AXFR, T_CNAME, T_DS, T_IXFR, T_NS, T_OPT, T_SOA, T_TXT,
};
use crate::dns::zone::{Authority, Found, Labels, Node, RRset, Zone};
use crate::dns::{cookie, tsig};
use crate::state::Snapshot;
use crate::traffic::policy::{self, Client, Outcome, Rng, Selection, Target, Trace};
use decode::{Ecs, Edns, HEADER_LEN, OPT_COOKIE, OPT_ECS, OPT_NSID, Options, Query, Reject};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Response codes Meridian sends (RFC 1035 §4.1.1, RFC 6891 §9 for BADVERS).
pub mod rcode {
    pub const NOERROR: u16 = 0;
    pub const FORMERR: u16 = 1;
    pub const SERVFAIL: u16 = 2;
    pub const NXDOMAIN: u16 = 3;
    pub const NOTIMP: u16 = 4;
    pub const REFUSED: u16 = 5;
    /// RFC 8945: a signed request that failed verification.
    pub const NOTAUTH: u16 = 9;
    pub const BADVERS: u16 = 16;

    /// The mnemonic, for people.
    pub fn name(rcode: u16) -> &'static str {
        match rcode {
            NOERROR => "NOERROR",
            FORMERR => "FORMERR",
            SERVFAIL => "SERVFAIL",
            NXDOMAIN => "NXDOMAIN",
            NOTIMP => "NOTIMP",
            REFUSED => "REFUSED",
            NOTAUTH => "NOTAUTH",
            BADVERS => "BADVERS",
            _ => "RCODE?",
        }
    }
}

/// The transport a query came over; it decides the size limit of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Where a query came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The packet's source address (the resolver's, usually).
    pub src: IpAddr,
    pub transport: Transport,
    /// Seconds since the Unix epoch, for DNS cookies and TSIG (0 when neither is configured:
    /// the clock is not read).
    pub now: u32,
}

/// What `resolve` produced: the answer's length in the output buffer and its rcode (for
/// metrics and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub len: usize,
    pub rcode: u16,
    pub truncated: bool,
    /// Bytes of the question section echoed after the header (0 for header-only answers).
    pub question_len: usize,
    /// What response rate limiting counts this answer under.
    pub rrl: RrlKey,
    /// The query carried a server cookie we made for its source address (RFC 7873): the
    /// source is not spoofed, so rate limiting lets the answer through.
    pub cookie: bool,
}

/// What response rate limiting counts an answer under, as BIND's and NSD's RRL do: otherwise
/// a flood of random names would give every name its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RrlKey {
    /// A positive answer, NODATA or a referral: per question (name, type and class).
    Question,
    /// NXDOMAIN, or an answer synthesised from a wildcard: per zone. `apex_at` is where the
    /// zone's name starts in the echoed question's name.
    Zone { apex_at: u8 },
    /// An error (FORMERR, NOTIMP, REFUSED, SERVFAIL, BADVERS): per client prefix only.
    Error,
}

impl Answer {
    /// The bytes of `out` (the buffer this answer was written into) that rate limiting keys
    /// on beside the client prefix and the rcode.
    pub fn rrl_name<'o>(&self, out: &'o [u8]) -> &'o [u8] {
        let question = &out[HEADER_LEN..HEADER_LEN + self.question_len];
        match self.rrl {
            RrlKey::Question => question,
            // The zone's name: a suffix of the question name (which ends 4 bytes before the
            // question does).
            RrlKey::Zone { apex_at } => &question[apex_at as usize..self.question_len - 4],
            RrlKey::Error => &[],
        }
    }
}

/// Class CHAOS, and the names in it that say which server answered (RFC 4892), in wire form.
const CLASS_CH: u16 = 3;
const ID_SERVER: &[u8] = b"\x02id\x06server\x00";
const HOSTNAME_BIND: &[u8] = b"\x08hostname\x04bind\x00";

/// The most CNAMEs followed inside a zone before the chain is cut short.
const MAX_CHAIN: usize = 8;
/// The smallest UDP payload every client accepts (RFC 1035 §4.2.1).
const MIN_UDP: usize = 512;
const OPT_LEN: usize = 11;

const QR: u16 = 0x8000;
const AA: u16 = 0x0400;
const TC: u16 = 0x0200;
const OPCODE: u16 = 0x7800;
const RD: u16 = 0x0100;
const CD: u16 = 0x0010;
/// Opcode, RD and CD are echoed from the query.
const ECHO_FLAGS: u16 = OPCODE | RD | CD;

/// Answers `query`, writing the response into `out` (which should be 65535 bytes, the largest
/// DNS message, so that TCP answers are never cut). Returns `None` when nothing should be sent.
#[inline]
pub fn resolve(
    snap: &Snapshot,
    query: &[u8],
    req: Request,
    rng: &mut Rng,
    out: &mut [u8],
) -> Option<Answer> {
    resolve_traced(snap, query, req, rng, out, &mut ())
}

/// [`resolve`], describing each step to `trace` (used by `meridian explain`; serving passes
/// `()`, which compiles the tracing away).
pub fn resolve_traced<T: Trace>(
    snap: &Snapshot,
    query: &[u8],
    req: Request,
    rng: &mut Rng,
    out: &mut [u8],
    trace: &mut T,
) -> Option<Answer> {
    let opts = Options { ecs: snap.settings.ecs, cookies: snap.settings.cookies.is_some() };
    let mut name = [0u8; crate::dns::name::MAX_NAME_LEN];
    let mut labels = Labels::default();
    // Matched by reference: moving the decoded query out of the `Result` copied it.
    let decoded = decode::query(query, opts, &mut name, &mut labels);
    let q = match &decoded {
        Ok(q) => q,
        Err(Reject::Drop) => {
            trace.note(0, || "no header, or a response: nothing is sent".into());
            return None;
        }
        &Err(reject) => {
            let (id, flags) = decode::header(query)?;
            let (rcode, echo) = match reject {
                // Knot's choice, and the safe one: of an unknown opcode's flags only RD is
                // known to mean what we think it means.
                Reject::NotImp => (rcode::NOTIMP, OPCODE | RD),
                _ => (rcode::FORMERR, ECHO_FLAGS),
            };
            trace.note(0, || format!("malformed or unsupported query: {}", rcode::name(rcode)));
            let mut a = header_only(out, id, flags & echo, rcode);
            if let Some(e) = decode::rejected_edns(query) {
                let mut w = Writer {
                    buf: out,
                    pos: a.len,
                    limit: HEADER_LEN + OPT_LEN,
                    counts: [0; 4],
                    payload: snap.settings.udp_payload,
                    apex: 0,
                    rrset_at: (0, 0),
                };
                // Room for exactly this OPT was allowed, so this cannot fail.
                let _ = w.opt(e, rcode, None, 0, OptExtra::default());
                w.buf[10..12].copy_from_slice(&1u16.to_be_bytes());
                a.len = w.pos;
            }
            return Some(a);
        }
    };

    let limit = match (req.transport, q.edns) {
        (Transport::Tcp, _) => out.len().min(u16::MAX as usize),
        (Transport::Udp, None) => MIN_UDP,
        (Transport::Udp, Some(e)) => {
            (e.payload as usize).clamp(MIN_UDP, snap.settings.udp_payload as usize)
        }
    }
    .min(out.len());
    // The options our OPT carries beyond Client Subnet: NSID when asked for and configured,
    // and a fresh server cookie for a query with a client cookie.
    let mut extra = OptExtra::default();
    let mut cookie_valid = false;
    if let Some(e) = q.edns {
        if e.nsid {
            extra.nsid = snap.settings.nsid.as_deref();
        }
        if let (Some(c), Some(keys)) = (&q.cookie, &snap.settings.cookies) {
            cookie_valid = cookie::valid(keys, &c.client, c.server(), req.src, req.now);
            let mut both = [0u8; 8 + cookie::SERVER_COOKIE_LEN];
            both[..8].copy_from_slice(&c.client);
            both[8..].copy_from_slice(&cookie::make(&keys.secret, &c.client, req.src, req.now));
            extra.cookie = Some(both);
            trace.note(0, || {
                let state = match (c.server_len, cookie_valid) {
                    (0, _) => "a client cookie only",
                    (_, true) => "a valid server cookie",
                    (_, false) => "a server cookie we did not make, or an expired one",
                };
                format!("DNS cookie: {state}; a fresh server cookie goes back")
            });
        }
    }
    // A signed request (RFC 8945 §5.2): verified here; a good one's answer is signed after it
    // is written, a bad one gets NOTAUTH and the TSIG record the RFC prescribes.
    let mut tsig_reply: Option<(tsig::Signed<'_>, tsig::Verified<'_>)> = None;
    let mut tsig_room = 0;
    if q.tsig {
        let s = match tsig::find(query) {
            Ok(Some(s)) => s,
            _ => {
                trace.note(0, || "a TSIG record that is not the last one: FORMERR".into());
                return Some(header_only(out, q.id, q.flags, rcode::FORMERR));
            }
        };
        let v = tsig::verify(&snap.settings.keys, query, &s, req.now as u64);
        tsig_room = match v {
            tsig::Verified::Ok { key, .. } => tsig::record_len(key, 0),
            tsig::Verified::BadTime { key, .. } => tsig::record_len(key, 6),
            tsig::Verified::Unsigned { .. } => tsig::unsigned_len(&s),
        };
        trace.note(0, || format!("TSIG: {v:?}"));
        tsig_reply = Some((s, v));
    }
    let reserve = match (&q.edns, &q.ecs) {
        (None, _) => 0,
        (Some(_), None) => OPT_LEN,
        (Some(_), Some(e)) => OPT_LEN + 8 + e.addr_len(),
    } + extra.len()
        + tsig_room;
    let mut w = Writer {
        buf: out,
        pos: 0,
        limit: limit - reserve,
        counts: [1, 0, 0, 0],
        payload: snap.settings.udp_payload,
        apex: 0,
        rrset_at: (0, 0),
    };
    w.header(q.id, q.flags);
    // The question is echoed exactly as sent; it always fits (a question is at most 259
    // bytes, and every limit is at least 512 less the OPT record).
    if w.put(q.question).is_err() {
        return Some(header_only(w.buf, q.id, q.flags, rcode::FORMERR));
    }
    let question_end = w.pos;

    let client = match &q.ecs {
        Some(e) if e.source > 0 => {
            trace.note(0, || {
                format!(
                    "client: {}/{} from EDNS Client Subnet (query from {})",
                    e.addr, e.source, req.src
                )
            });
            e.addr
        }
        _ => {
            trace.note(0, || {
                format!("client: {} (the query's source address; no usable ECS)", req.src)
            });
            req.src
        }
    };
    let mut meta = Meta { rcode: rcode::NOERROR, aa: false, scope: 0, rrl: RrlKey::Question };
    let result = match tsig_reply {
        Some((_, tsig::Verified::Ok { .. })) | None => {
            answer(snap, q, client, rng, &mut w, &mut meta, trace)
        }
        Some(_) => {
            meta.rcode = rcode::NOTAUTH;
            Ok(())
        }
    };
    let truncated = result.is_err();
    if truncated || meta.rcode == rcode::SERVFAIL {
        // RFC 2181 §9: what does not fit is not sent partially; the client retries over TCP.
        // Keep the question and OPT so the client can match the reply.
        w.pos = question_end;
        w.counts = [1, 0, 0, 0];
    }
    w.limit += reserve;
    if q.ecs.as_ref().is_some_and(|e| e.source == 0) {
        meta.scope = 0;
    }
    let rc = finish(&mut w, q, meta, if truncated { TC } else { 0 }, extra);
    trace.note(0, || {
        format!(
            "{}{}, ECS scope /{}",
            rcode::name(rc),
            if truncated { ", truncated (TC)" } else { "" },
            meta.scope
        )
    });
    let rrl = match rc {
        rcode::NOERROR | rcode::NXDOMAIN => meta.rrl,
        _ => RrlKey::Error,
    };
    // Room for the TSIG record was kept out of the answer's limit.
    match tsig_reply {
        None => {}
        Some((_, tsig::Verified::Ok { key, mac })) => {
            let chain = tsig::Chain::Request(mac);
            w.pos = tsig::sign(w.buf, w.pos, key, chain, req.now as u64, 0, &[]).0;
        }
        Some((s, tsig::Verified::BadTime { key, mac })) => {
            // §5.2.3: signed, with the request's time and ours in Other Data.
            let ours = (req.now as u64).to_be_bytes();
            let chain = tsig::Chain::Request(mac);
            w.pos = tsig::sign(w.buf, w.pos, key, chain, s.time, tsig::BADTIME, &ours[2..]).0;
        }
        Some((s, tsig::Verified::Unsigned { error })) => {
            w.pos = tsig::unsigned(w.buf, w.pos, &s, error);
        }
    }
    Some(Answer {
        len: w.pos,
        rcode: rc,
        truncated,
        question_len: question_end - HEADER_LEN,
        rrl,
        cookie: cookie_valid,
    })
}

/// Appends an OPT record with no options to the message `out[..len]` (counting it in
/// ARCOUNT) when `query` carried a valid one, as every reply to such a query must (RFC 6891
/// §6.1.1); for replies written outside `resolve` (NOTIFY). Returns the new length.
pub fn echo_opt(snap: &Snapshot, query: &[u8], out: &mut [u8], len: usize) -> usize {
    let Some(e) = decode::rejected_edns(query) else { return len };
    if out.len() < len + OPT_LEN {
        return len;
    }
    let mut w = Writer {
        buf: out,
        pos: len,
        limit: len + OPT_LEN,
        counts: [0; 4],
        payload: snap.settings.udp_payload,
        apex: 0,
        rrset_at: (0, 0),
    };
    let _ = w.opt(e, rcode::NOERROR, None, 0, OptExtra::default());
    let pos = w.pos;
    let ar = u16::from_be_bytes([out[10], out[11]]) + 1;
    out[10..12].copy_from_slice(&ar.to_be_bytes());
    pos
}

/// The options of an answer's OPT besides Client Subnet.
#[derive(Debug, Default, Clone, Copy)]
struct OptExtra<'a> {
    nsid: Option<&'a [u8]>,
    /// The client cookie and our server cookie.
    cookie: Option<[u8; 8 + cookie::SERVER_COOKIE_LEN]>,
}

impl OptExtra<'_> {
    /// Their length on the wire.
    fn len(&self) -> usize {
        self.nsid.map_or(0, |n| 4 + n.len()) + self.cookie.map_or(0, |c| 4 + c.len())
    }
}

/// Writes the OPT record (when the query had one) and the header flags and counts.
fn finish(
    w: &mut Writer<'_>,
    q: &Query<'_>,
    meta: Meta,
    extra_flags: u16,
    extra: OptExtra<'_>,
) -> u16 {
    let Meta { rcode, aa, scope, .. } = meta;
    if let Some(e) = q.edns {
        // Space for OPT was reserved, so this cannot fail.
        let _ = w.opt(e, rcode, q.ecs, scope, extra);
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
/// `flags` are the query's, less what must not be echoed.
fn header_only(out: &mut [u8], id: u16, flags: u16, rcode: u16) -> Answer {
    out[..HEADER_LEN].fill(0);
    out[0..2].copy_from_slice(&id.to_be_bytes());
    let f = QR | (flags & ECHO_FLAGS) | rcode;
    out[2..4].copy_from_slice(&f.to_be_bytes());
    Answer {
        len: HEADER_LEN,
        rcode,
        truncated: false,
        question_len: 0,
        rrl: RrlKey::Error,
        cookie: false,
    }
}

/// The rcode, AA bit and ECS scope of an answer, decided before its sections are written so
/// that a truncated answer keeps them.
#[derive(Clone, Copy)]
struct Meta {
    rcode: u16,
    aa: bool,
    /// How many leading bits of the client address the answer depended on.
    scope: u8,
    rrl: RrlKey,
}

/// Fills the answer, authority and additional sections and sets `meta`; `Err` when they do
/// not fit.
fn answer<T: Trace>(
    snap: &Snapshot,
    q: &Query<'_>,
    client: IpAddr,
    rng: &mut Rng,
    w: &mut Writer<'_>,
    meta: &mut Meta,
    trace: &mut T,
) -> Result<(), Full> {
    if q.edns.is_some_and(|e| e.version > 0) {
        meta.rcode = rcode::BADVERS;
        return Ok(());
    }
    if q.qclass == CLASS_CH
        && let Some(id) = &snap.settings.identity
        && matches!(q.qtype, T_TXT | T_ANY)
        && matches!(q.qname(), ID_SERVER | HOSTNAME_BIND)
    {
        trace.note(0, || "the server's identity (CH TXT)".into());
        meta.aa = true;
        return w.identity(id);
    }
    // Class IN only (CH "version.bind" and the like are not ours), and no zone transfers.
    if q.qclass != 1 || matches!(q.qtype, T_AXFR | T_IXFR) {
        meta.rcode = rcode::REFUSED;
        return Ok(());
    }
    let qname = q.qname();
    // The decoder recorded where the question name's labels start while it walked them.
    let labels = q.labels;
    debug_assert_eq!(*labels, Labels::new(qname));
    let (zone, apex_label) = match snap.zones.find(qname, labels) {
        Some(Authority::Zone(zone, apex_label)) => (zone, apex_label),
        Some(Authority::Unavailable) => {
            trace.note(0, || {
                "a secondary zone with no data (not transferred yet, or expired): SERVFAIL".into()
            });
            meta.rcode = rcode::SERVFAIL;
            return Ok(());
        }
        None => {
            trace.note(0, || "no zone of ours contains the name: REFUSED".into());
            meta.rcode = rcode::REFUSED;
            return Ok(());
        }
    };
    trace.note(0, || format!("zone {}", zone.origin()));
    meta.aa = true;
    // A name is at most 255 bytes, so the zone's offset in it fits a byte.
    let apex_at = labels.offset(qname, apex_label);
    let by_zone = RrlKey::Zone { apex_at: apex_at as u8 };
    // Names in the zone's RDATA end in a pointer to the apex: here, inside the question.
    w.apex = 0xc000 | (HEADER_LEN + apex_at) as u16;

    // The name currently being answered: the question name, then each CNAME target in turn.
    // `at` is where an uncompressed copy of it sits in the message, for compression pointers.
    // Where each CNAME target's label offsets go: `Cur` borrows them rather than carrying
    // 129 bytes it would copy at every step.
    let mut target_labels;
    let mut cur = Cur { name: qname, labels, apex_label, at: HEADER_LEN };
    for step in 0..=MAX_CHAIN {
        let node = match zone.lookup(cur.name, cur.labels, cur.apex_label, q.qtype == T_DS) {
            Found::Referral { node, label } => {
                if step > 0 {
                    // A CNAME led into a delegated child: the answer so far stands.
                    return Ok(());
                }
                meta.aa = false;
                let ns = node.rrset(T_NS).expect("a delegation point has NS");
                w.rrset(cur.suffix(label), ns, 2)?;
                // Glue is not optional in a referral (RFC 9471): if it does not fit, truncate.
                return w.extra(ns);
            }
            Found::NxDomain => {
                // RFC 6604: after a CNAME chain the rcode describes the last name.
                meta.rcode = rcode::NXDOMAIN;
                meta.rrl = by_zone;
                return negative(zone, &cur, w);
            }
            Found::Node { node, wildcard } => {
                if wildcard {
                    meta.rrl = by_zone;
                }
                node
            }
        };
        let next = match node.profile() {
            Some(pid) => managed(snap, q, zone, pid, &cur, client, rng, w, meta, trace)?,
            None => fixed(q, zone, node, &cur, w)?,
        };
        let Some((target, rdata_at)) = next else { return Ok(()) };
        if step == MAX_CHAIN || !is_suffix(target, zone.origin().wire()) {
            // Chains are followed inside the zone only, and only so far; the resolver does
            // the rest.
            return Ok(());
        }
        let zone_labels = cur.labels.count() - cur.apex_label;
        target_labels = Labels::new(target);
        let apex_label = target_labels.count() - zone_labels;
        cur = Cur { name: target, labels: &target_labels, apex_label, at: rdata_at };
    }
    Ok(())
}

/// A name with static data. Returns the CNAME target to follow, if any, and where its copy in
/// the message starts.
fn fixed<'s>(
    q: &Query<'_>,
    zone: &'s Zone,
    node: &'s Node,
    cur: &Cur<'_>,
    w: &mut Writer<'_>,
) -> Result<Option<(&'s [u8], usize)>, Full> {
    if q.qtype == T_ANY {
        // RFC 8482: one RRset, never the whole node.
        match node.rrsets.first() {
            Some(rr) => w.rrset(cur.owner(), rr, 1).map(drop)?,
            None => negative(zone, cur, w)?,
        }
        return Ok(None);
    }
    if let Some(rr) = node.rrset(q.qtype) {
        w.rrset(cur.owner(), rr, 1)?;
        // Additional data is a courtesy: leave it out rather than truncate.
        let mark = (w.pos, w.counts);
        if w.extra(rr).is_err() {
            (w.pos, w.counts) = mark;
        }
        return Ok(None);
    }
    match cname(node) {
        Some((rr, target)) => {
            let rdata_at = w.rrset(cur.owner(), rr, 1)? + 10;
            Ok(Some((target, rdata_at)))
        }
        None => negative(zone, cur, w).map(|()| None),
    }
}

/// A traffic-managed name: ask the profile which endpoints answer this client, and write them.
#[allow(clippy::too_many_arguments)]
fn managed<'s, T: Trace>(
    snap: &'s Snapshot,
    q: &Query<'_>,
    zone: &Zone,
    pid: u32,
    cur: &Cur<'_>,
    client: IpAddr,
    rng: &mut Rng,
    w: &mut Writer<'_>,
    meta: &mut Meta,
    trace: &mut T,
) -> Result<Option<(&'s [u8], usize)>, Full> {
    let profile = &snap.policies.profiles[pid as usize];
    if !matches!(q.qtype, T_A | T_AAAA | T_CNAME | T_ANY) {
        trace.note(0, || {
            format!(
                "{} is traffic-managed; only A, AAAA and CNAME are answered: NODATA",
                profile.name
            )
        });
        negative(zone, cur, w)?;
        return Ok(None);
    }
    // GeoIP is consulted only when the decision needs it.
    let geo = match (&snap.geo, profile.needs_geo) {
        (Some(db), true) => Some(db.lookup(client)),
        _ => None,
    };
    let mut sel = Selection::default();
    policy::select(
        &snap.policies,
        pid,
        &snap.signals,
        &Client { addr: client, geo },
        rng,
        &mut sel,
        trace,
    );
    meta.scope = meta.scope.max(sel.scope);
    // While a burst or its return is under way, answers may carry a shorter TTL so that
    // resolvers follow the share closely.
    let ttl = match &profile.burst {
        Some(b) if snap.signals.burst_state(pid) != crate::traffic::burst::State::Idle => {
            b.transition_ttl.unwrap_or(profile.ttl)
        }
        _ => profile.ttl,
    };
    match sel.outcome {
        Outcome::ServFail => {
            meta.rcode = rcode::SERVFAIL;
            meta.aa = false;
            return Ok(None);
        }
        Outcome::NoData => {
            negative(zone, cur, w)?;
            return Ok(None);
        }
        Outcome::Answer => {}
    }
    if T::COUNTS {
        snap.signals.profile(pid).count_query();
        for &id in sel.chosen() {
            snap.signals.endpoint(id).count_answer();
        }
    }
    let endpoints = &snap.policies.endpoints;
    if let Target::Cname(target) = &endpoints[sel.endpoints[0] as usize].target {
        let rdata_at = w.record(cur.owner(), T_CNAME, ttl, target.wire())?;
        trace.note(0, || format!("answer: CNAME {target}, TTL {ttl}"));
        return Ok((q.qtype != T_CNAME).then_some((target.wire(), rdata_at)));
    }
    let mut written = 0;
    for (i, &id) in sel.chosen().iter().enumerate() {
        let e = &endpoints[id as usize];
        // A client in a view gets the endpoint's addresses for that view.
        let view = e.view_targets.iter().find(|t| t.0 == sel.views[i]);
        if let Target::Addresses { v4: public4, v6: public6 } = &e.target {
            let (v4, v6) = match view {
                Some((_, a, b)) => (a, b),
                None => (public4, public6),
            };
            if matches!(q.qtype, T_A | T_ANY) {
                for &a in v4.iter() {
                    w.a(cur.owner(), ttl, a)?;
                    written += 1;
                }
            }
            if q.qtype == T_AAAA {
                for &a in v6.iter() {
                    w.aaaa(cur.owner(), ttl, a)?;
                    written += 1;
                }
            }
        }
    }
    if written == 0 {
        // The chosen endpoint has no address of the asked family.
        trace.note(0, || "the chosen endpoint has no address of that family: NODATA".into());
        negative(zone, cur, w)?;
    } else {
        trace.note(0, || format!("answer: {written} record(s), TTL {ttl}"));
    }
    Ok(None)
}

fn cname(node: &Node) -> Option<(&RRset, &[u8])> {
    let rr = node.rrset(T_CNAME)?;
    Some((rr, rr.target.as_ref()?.wire()))
}

/// NXDOMAIN and NODATA carry the zone's SOA in the authority section, with the negative TTL.
fn negative(zone: &Zone, cur: &Cur<'_>, w: &mut Writer<'_>) -> Result<(), Full> {
    let apex = cur.suffix(cur.apex_label);
    w.name(apex)?;
    let at = w.pos;
    w.put(&zone.soa_negative)?;
    w.relocate(at, &zone.soa_negative_relocs);
    w.counts[2] += 1;
    debug_assert_eq!(u16::from_be_bytes([zone.soa_negative[0], zone.soa_negative[1]]), T_SOA);
    Ok(())
}

/// The name being answered and where it sits in the message.
struct Cur<'a> {
    name: &'a [u8],
    labels: &'a Labels,
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
    /// The pointer (0xc000 | offset) to the zone's apex in the question, which names in
    /// pre-encoded RDATA end in.
    apex: u16,
    /// Where the last RRset written starts and how long its owner name is there, which
    /// places each of its records for the additional records that point into them.
    rrset_at: (usize, usize),
}

impl Writer<'_> {
    /// Inlined everywhere, so that a put of a fixed-size array is a few moves, not a call
    /// to `memcpy`.
    #[inline(always)]
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

    /// Fills in the apex pointers at `relocs` (offsets from `at`) of bytes just written.
    fn relocate(&mut self, at: usize, relocs: &[u16]) {
        for &r in relocs {
            let p = at + r as usize;
            self.buf[p..p + 2].copy_from_slice(&self.apex.to_be_bytes());
        }
    }

    /// How long `n` is when written by [`Writer::name`].
    fn name_len(n: NameRef<'_>) -> usize {
        match n.wire.len() {
            1 => 1,
            _ if n.at < 0x4000 => 2,
            len => len,
        }
    }

    /// Writes every record of `rr` with `owner` into `section`; returns the position of the
    /// last record's start (after its owner), for callers that point into its rdata.
    fn rrset(&mut self, owner: NameRef<'_>, rr: &RRset, section: usize) -> Result<usize, Full> {
        let start = self.pos;
        let mut tails = &rr.tails[..];
        let mut last = self.pos;
        for _ in 0..rr.count {
            let len = 10 + u16::from_be_bytes([tails[8], tails[9]]) as usize;
            self.name(owner)?;
            last = self.pos;
            self.put(&tails[..len])?;
            tails = &tails[len..];
        }
        // Record `i` is preceded by `i + 1` owners, all written alike.
        let owner_len = Self::name_len(owner);
        for r in rr.relocs.iter() {
            let p = start + owner_len * (r.record as usize + 1) + r.at as usize;
            self.buf[p..p + 2].copy_from_slice(&self.apex.to_be_bytes());
        }
        self.rrset_at = (start, owner_len);
        self.counts[section] += rr.count;
        Ok(last)
    }

    /// One answer record built now (traffic-managed names); returns where its rdata starts.
    fn record(
        &mut self,
        owner: NameRef<'_>,
        rtype: u16,
        ttl: u32,
        rdata: &[u8],
    ) -> Result<usize, Full> {
        self.name(owner)?;
        let at = self.pos + 10;
        if at > self.limit {
            return Err(Full);
        }
        // Type, class IN and TTL as one word built in registers, then RDLENGTH.
        let word = (rtype as u64) << 48 | 1 << 32 | ttl as u64;
        self.buf[at - 10..at - 2].copy_from_slice(&word.to_be_bytes());
        self.buf[at - 2..at].copy_from_slice(&(rdata.len() as u16).to_be_bytes());
        self.pos = at;
        self.put(rdata)?;
        self.counts[1] += 1;
        Ok(at)
    }

    /// An A record of a traffic-managed answer: what [`Writer::record`] writes, built in
    /// registers and stored as one 16-byte word when the owner is a compression pointer (as
    /// it is unless the message is past the pointer's reach). The generic path copies the
    /// RDATA as a slice whose length the compiler cannot see: a `memcpy` call per record.
    #[inline]
    fn a(&mut self, owner: NameRef<'_>, ttl: u32, a: Ipv4Addr) -> Result<(), Full> {
        if owner.wire.len() == 1 || owner.at >= 0x4000 {
            return self.record(owner, T_A, ttl, &a.octets()).map(drop);
        }
        let end = self.pos + 16;
        if end > self.limit {
            return Err(Full);
        }
        // Owner pointer, TYPE, CLASS IN, TTL, RDLENGTH 4, the address.
        let word = (0xc000 | owner.at as u128) << 112
            | (T_A as u128) << 96
            | 1 << 80
            | (ttl as u128) << 48
            | 4 << 32
            | u32::from(a) as u128;
        self.buf[self.pos..end].copy_from_slice(&word.to_be_bytes());
        self.pos = end;
        self.counts[1] += 1;
        Ok(())
    }

    /// An AAAA record of a traffic-managed answer, as [`Writer::a`]: a 12-byte head built in
    /// registers, then the address as one 16-byte copy.
    #[inline]
    fn aaaa(&mut self, owner: NameRef<'_>, ttl: u32, a: Ipv6Addr) -> Result<(), Full> {
        if owner.wire.len() == 1 || owner.at >= 0x4000 {
            return self.record(owner, T_AAAA, ttl, &a.octets()).map(drop);
        }
        let (at, end) = (self.pos, self.pos + 28);
        if end > self.limit {
            return Err(Full);
        }
        // Owner pointer, TYPE, CLASS IN and TTL's high half; TTL's low half and RDLENGTH 16.
        let head =
            (0xc000 | owner.at as u64) << 48 | (T_AAAA as u64) << 32 | 1 << 16 | (ttl >> 16) as u64;
        self.buf[at..at + 8].copy_from_slice(&head.to_be_bytes());
        self.buf[at + 8..at + 12].copy_from_slice(&((ttl & 0xffff) << 16 | 16).to_be_bytes());
        self.buf[at + 12..end].copy_from_slice(&a.octets());
        self.pos = end;
        self.counts[1] += 1;
        Ok(())
    }

    /// The answer to `id.server` or `hostname.bind` CH TXT: one record, TTL 0, owned by the
    /// question's name.
    fn identity(&mut self, id: &[u8]) -> Result<(), Full> {
        self.name(NameRef { wire: ID_SERVER, at: HEADER_LEN })?;
        self.put(&T_TXT.to_be_bytes())?;
        self.put(&CLASS_CH.to_be_bytes())?;
        self.put(&0u32.to_be_bytes())?;
        self.put(&(id.len() as u16 + 1).to_be_bytes())?;
        self.put(&[id.len() as u8])?;
        self.put(id)?;
        self.counts[1] += 1;
        Ok(())
    }

    /// The in-zone address records (glue) of `rr`, the RRset just written, into the
    /// additional section; their owners point at the names in its records.
    fn extra(&mut self, rr: &RRset) -> Result<(), Full> {
        if rr.extra_count == 0 {
            return Ok(());
        }
        let (start, owner_len) = self.rrset_at;
        // The record `i`'s tail is preceded by `i + 1` owners; past a pointer's reach (only in
        // very large TCP answers), the owners are written out instead.
        let end = start + owner_len * rr.count as usize + rr.tails.len();
        if end >= 0x4000 {
            self.put(&rr.extra_plain)?;
        } else {
            let at = self.pos;
            self.put(&rr.extra)?;
            for x in rr.extra_relocs.iter() {
                let target = start + owner_len * (x.record as usize + 1) + x.tail_at as usize;
                let p = at + x.at as usize;
                self.buf[p..p + 2].copy_from_slice(&(0xc000 | target as u16).to_be_bytes());
            }
        }
        self.counts[3] += rr.extra_count;
        Ok(())
    }

    /// The OPT record: our payload size, the extended rcode, DO copied (RFC 3225), and the
    /// Client Subnet option echoed with the scope the answer depended on (RFC 7871 §7.2.1).
    /// NSID (RFC 5001) and COOKIE (RFC 7873) follow when `extra` has them.
    fn opt(
        &mut self,
        e: Edns,
        rcode: u16,
        ecs: Option<Ecs>,
        scope: u8,
        extra: OptExtra<'_>,
    ) -> Result<(), Full> {
        let ecs_len = ecs.map_or(0, |c| 8 + c.addr_len());
        let at = self.pos;
        let end = at + OPT_LEN + ecs_len;
        if end > self.limit {
            return Err(Full);
        }
        // This is written into every answer to an EDNS query, so it goes straight into the
        // message as a few whole words built in registers. Assembled on the stack a byte at a
        // time and then copied, it was read back before those byte stores could be forwarded:
        // a stall in every answer that instruction counts do not show.
        // NAME (the root), TYPE, CLASS (our payload size), then TTL: extended rcode, version
        // 0, the DO bit; then Z's low byte and RDLENGTH.
        let word = (T_OPT as u64) << 40
            | (self.payload as u64) << 24
            | ((rcode >> 4) as u64 & 0xff) << 16
            | if e.dnssec_ok { 0x80 } else { 0 };
        self.buf[at..at + 8].copy_from_slice(&word.to_be_bytes());
        let rdlen = (ecs_len + extra.len()) as u16;
        self.buf[at + 8..at + 11].copy_from_slice(&[0, (rdlen >> 8) as u8, rdlen as u8]);
        self.pos = end;
        if let Some(c) = ecs {
            // OPTION-CODE, OPTION-LENGTH, FAMILY, SOURCE and SCOPE PREFIX-LENGTH, then the
            // address bytes as sent: the leading ones of the address, which is zero past them.
            let n = c.addr_len();
            let (family, addr) = match c.addr {
                IpAddr::V4(a) => (1, u128::from(u32::from(a)) << 96),
                IpAddr::V6(a) => (2, u128::from(a)),
            };
            let word = (OPT_ECS as u64) << 48
                | (4 + n as u64) << 32
                | family << 16
                | (c.source as u64) << 8
                | scope as u64;
            let o = at + OPT_LEN;
            self.buf[o..o + 8].copy_from_slice(&word.to_be_bytes());
            // All 16 bytes in one store where the buffer has room past the option (the bytes
            // past it are overwritten or not sent), else exactly the option's.
            match self.buf.get_mut(o + 8..o + 24) {
                Some(room) => room.copy_from_slice(&addr.to_be_bytes()),
                None => self.buf[o + 8..end].copy_from_slice(&addr.to_be_bytes()[..n]),
            }
        }
        if let Some(n) = extra.nsid {
            self.put(&OPT_NSID.to_be_bytes())?;
            self.put(&(n.len() as u16).to_be_bytes())?;
            self.put(n)?;
        }
        if let Some(c) = extra.cookie {
            self.put(&OPT_COOKIE.to_be_bytes())?;
            self.put(&(c.len() as u16).to_be_bytes())?;
            self.put(&c)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `. A` whose OPT carries `option` (code, then data).
    fn with_option(code: u16, data: &[u8]) -> Vec<u8> {
        with_opt(&[0], 1232, 0, 0, None, &option_list(&[(code, data)]))
    }

    /// An option list on the wire: each option's code, length and data.
    fn option_list(list: &[(u16, &[u8])]) -> Vec<u8> {
        let mut wire = Vec::new();
        for &(code, data) in list {
            wire.extend_from_slice(&code.to_be_bytes());
            wire.extend_from_slice(&(data.len() as u16).to_be_bytes());
            wire.extend_from_slice(data);
        }
        wire
    }

    /// A query for `. A` with one OPT record: its owner, payload size, version and flags
    /// byte, RDLENGTH (the list's length unless given) and option list.
    fn with_opt(
        owner: &[u8],
        payload: u16,
        version: u8,
        flags: u8,
        rdlen: Option<u16>,
        list: &[u8],
    ) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1];
        m.extend_from_slice(owner);
        m.extend_from_slice(&41u16.to_be_bytes());
        m.extend_from_slice(&payload.to_be_bytes());
        m.extend_from_slice(&[0, version, flags, 0]);
        m.extend_from_slice(&rdlen.unwrap_or(list.len() as u16).to_be_bytes());
        m.extend_from_slice(list);
        m
    }

    /// The wide-store A and AAAA writers put down exactly what the generic one does, for
    /// owners written as a pointer (near and at the edge of its reach), in full past it, and
    /// the root; and count nothing when the record does not fit.
    #[test]
    fn address_records_are_what_the_generic_writer_writes() {
        let name = b"\x03www\x07example\x00";
        let owners = [
            NameRef { wire: name, at: HEADER_LEN },
            NameRef { wire: name, at: 0x3fff },
            NameRef { wire: name, at: 0x4000 },
            NameRef { wire: b"\x00", at: HEADER_LEN },
        ];
        let v4: Ipv4Addr = "198.51.100.7".parse().unwrap();
        let v6: Ipv6Addr = "2001:db8::1:2".parse().unwrap();
        fn writer(buf: &mut [u8; 96], limit: usize) -> Writer<'_> {
            Writer {
                buf: &mut buf[..],
                pos: 20,
                limit,
                counts: [1, 0, 0, 0],
                payload: 1232,
                apex: 0,
                rrset_at: (0, 0),
            }
        }
        for owner in owners {
            for ttl in [0, 5, 300, 0x1234_5678, u32::MAX] {
                for limit in [96, 20 + 15, 20 + 27] {
                    let (mut fast, mut generic) = ([0xaau8; 96], [0xaau8; 96]);
                    let (mut f, mut g) = (writer(&mut fast, limit), writer(&mut generic, limit));
                    let got = (f.a(owner, ttl, v4).is_ok(), f.pos, f.counts);
                    let want = (g.record(owner, T_A, ttl, &v4.octets()).is_ok(), g.pos, g.counts);
                    assert_eq!(got.0, want.0, "A at {} ttl {ttl} limit {limit}", owner.at);
                    if want.0 {
                        assert_eq!((got.1, got.2), (want.1, want.2));
                        assert_eq!(fast, generic, "A at {} ttl {ttl}", owner.at);
                    }
                    let (mut fast, mut generic) = ([0xaau8; 96], [0xaau8; 96]);
                    let (mut f, mut g) = (writer(&mut fast, limit), writer(&mut generic, limit));
                    let got = (f.aaaa(owner, ttl, v6).is_ok(), f.pos, f.counts);
                    let want =
                        (g.record(owner, T_AAAA, ttl, &v6.octets()).is_ok(), g.pos, g.counts);
                    assert_eq!(got.0, want.0, "AAAA at {} ttl {ttl} limit {limit}", owner.at);
                    if want.0 {
                        assert_eq!((got.1, got.2), (want.1, want.2));
                        assert_eq!(fast, generic, "AAAA at {} ttl {ttl}", owner.at);
                    } else {
                        assert_eq!(f.counts, [1, 0, 0, 0], "nothing counted when it does not fit");
                    }
                }
            }
        }
    }

    /// The label offsets the decoder records while it walks the question name are the ones
    /// indexing the name afterwards would find: the root, one label, mixed lengths, and the
    /// longest name (127 one-byte labels, 255 bytes); one byte longer is FORMERR.
    #[test]
    fn decoded_labels_are_the_names_labels() {
        let mut long = Vec::new();
        for _ in 0..127 {
            long.extend_from_slice(&[1, b'x']);
        }
        long.push(0);
        let mut too_long = long.clone();
        too_long.insert(0, b'y');
        too_long.insert(0, 1);
        let names: [(&[u8], usize); 5] = [
            (b"\x00", 0),
            (b"\x03COM\x00", 1),
            (b"\x03www\x07Example\x03com\x00", 3),
            (b"\x01a\x3fbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\x02cc\x00", 3),
            (&long, 127),
        ];
        let query = |name: &[u8]| {
            let mut m = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
            m.extend_from_slice(name);
            m.extend_from_slice(&[0, 1, 0, 1]);
            m
        };
        let opts = Options { ecs: false, cookies: false };
        for (name, count) in names {
            let msg = query(name);
            let mut buf = [0u8; crate::dns::name::MAX_NAME_LEN];
            let mut labels = Labels::default();
            let q = decode::query(&msg, opts, &mut buf, &mut labels).expect("a valid query");
            assert_eq!(*q.labels, Labels::new(q.qname), "{name:?}");
            assert_eq!(q.labels.count(), count, "{name:?}");
        }
        let msg = query(&too_long);
        let mut buf = [0u8; crate::dns::name::MAX_NAME_LEN];
        let err = decode::query(&msg, opts, &mut buf, &mut Labels::default()).err();
        assert_eq!(err, Some(Reject::FormErr));
        assert_eq!(Labels::new(&long).count(), 127);
    }

    /// The Client Subnet option goes back as it came, address bytes and all, with the scope
    /// filled in: the echo is rebuilt from the decoded address, so every prefix length that
    /// cuts a byte, or none, is tried in both families.
    #[test]
    fn client_subnet_echoes_the_bytes_sent() {
        let cases: &[(u16, u8, &[u8])] = &[
            (1, 0, &[]),
            (1, 1, &[0x80]),
            (1, 7, &[0xfe]),
            (1, 20, &[198, 51, 0x60]),
            (1, 24, &[198, 51, 100]),
            (1, 32, &[198, 51, 100, 7]),
            (2, 0, &[]),
            (2, 33, &[0x20, 0x01, 0x0d, 0xb8, 0x80]),
            (2, 56, &[0x20, 0x01, 0x0d, 0xb8, 0, 4, 0xab]),
            (2, 127, &[0x20, 1, 0xd, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0xfe]),
            (2, 128, &[0x20, 1, 0xd, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
        ];
        for &(family, source, bytes) in cases {
            let mut data = family.to_be_bytes().to_vec();
            data.extend_from_slice(&[source, 0]);
            data.extend_from_slice(bytes);
            let msg = with_option(OPT_ECS, &data);
            let mut name = [0u8; crate::dns::name::MAX_NAME_LEN];
            let opts = Options { ecs: true, cookies: false };
            let mut labels = Labels::default();
            let q = decode::query(&msg, opts, &mut name, &mut labels).expect("a valid query");
            let ecs = q.ecs.expect("the option was read");
            assert_eq!(ecs.addr_len(), bytes.len(), "/{source}");
            // The address is the bytes sent, zero past them, whatever came before them.
            let mut full = [0u8; 16];
            full[..bytes.len()].copy_from_slice(bytes);
            let want = match family {
                1 => IpAddr::from(<[u8; 4]>::try_from(&full[..4]).unwrap()),
                _ => IpAddr::from(full),
            };
            assert_eq!(ecs.addr, want, "family {family} /{source}");
            for room in [64, HEADER_LEN + OPT_LEN + 8 + bytes.len()] {
                // A buffer with room past the option, and one that ends where it does.
                let mut out = vec![0u8; room];
                let mut w = Writer {
                    buf: &mut out,
                    pos: HEADER_LEN,
                    limit: room,
                    counts: [0; 4],
                    payload: 1232,
                    apex: 0,
                    rrset_at: (0, 0),
                };
                w.opt(q.edns.unwrap(), rcode::NOERROR, Some(ecs), 9, OptExtra::default()).unwrap();
                let end = w.pos;
                let mut want = vec![0, 0, 41, 4, 0xd0, 0, 0, 0, 0];
                want.extend_from_slice(&(4 + data.len() as u16).to_be_bytes());
                want.extend_from_slice(&[0, 8, 0, data.len() as u8]);
                want.extend_from_slice(&data);
                want[18] = 9;
                assert_eq!(&out[HEADER_LEN..end], &want[..], "family {family} /{source}");
            }
        }
        // Bits set past the source prefix, or the wrong number of bytes: FORMERR.
        for data in [&[0, 1, 20, 0, 198, 51, 0x61][..], &[0, 1, 24, 0, 198, 51][..]] {
            let msg = with_option(OPT_ECS, data);
            let mut name = [0u8; crate::dns::name::MAX_NAME_LEN];
            let opts = Options { ecs: true, cookies: false };
            assert_eq!(
                decode::query(&msg, opts, &mut name, &mut Labels::default()).err(),
                Some(Reject::FormErr)
            );
        }
    }

    /// A query whose only record past the question is its OPT, ending the message, is read
    /// in place; the same record followed by a stray byte takes the general walk. Both must
    /// decide alike, for every part of the record and every way its options can be wrong.
    #[test]
    fn the_usual_opt_shape_decodes_as_the_general_walk_does() {
        // (payload, version, flags byte, options, RDLENGTH when not the options' length,
        // owner name)
        type Case<'a> = (u16, u8, u8, &'a [(u16, &'a [u8])], Option<u16>, &'a [u8]);
        let v4: &[u8] = &[0, 1, 24, 0, 198, 51, 100];
        let v6: &[u8] = &[0, 2, 56, 0, 0x20, 1, 0xd, 0xb8, 0, 4, 0xab];
        let cookie: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8];
        let cases: &[Case<'_>] = &[
            (1232, 0, 0, &[], None, &[0]),
            (4096, 0, 0x80, &[], None, &[0]),
            (512, 1, 0x80, &[], None, &[0]),
            (1232, 0, 0, &[(OPT_ECS, v4)], None, &[0]),
            (1400, 0, 0x80, &[(OPT_ECS, v6)], None, &[0]),
            (1232, 0, 0, &[(OPT_NSID, &[]), (OPT_ECS, v4), (OPT_COOKIE, cookie)], None, &[0]),
            (1232, 0, 0, &[(OPT_COOKIE, cookie), (65001, &[9, 9])], None, &[0]),
            // Malformed: a nonzero ECS scope, two ECS options, a short COOKIE.
            (1232, 0, 0, &[(OPT_ECS, &[0, 1, 24, 5, 198, 51, 100])], None, &[0]),
            (1232, 0, 0, &[(OPT_ECS, v4), (OPT_ECS, v4)], None, &[0]),
            (1232, 0, 0, &[(OPT_COOKIE, &[1, 2, 3])], None, &[0]),
            // An option running past RDATA, RDATA running past the message, a non-root owner.
            (1232, 0, 0, &[(OPT_ECS, v4)], Some(9), &[0]),
            (1232, 0, 0, &[(OPT_ECS, v4)], Some(40), &[0]),
            (1232, 0, 0, &[], None, &[1, b'a', 0]),
        ];
        let opts = Options { ecs: true, cookies: true };
        for (i, &(payload, version, flags, options, rdlen, owner)) in cases.iter().enumerate() {
            let mut msg = with_opt(owner, payload, version, flags, rdlen, &option_list(options));
            let decode = |msg: &[u8]| {
                let mut name = [0u8; crate::dns::name::MAX_NAME_LEN];
                let mut labels = Labels::default();
                decode::query(msg, opts, &mut name, &mut labels)
                    .map(|q| (q.edns, q.ecs, q.cookie, q.tsig, q.qtype, q.qclass))
            };
            let usual = decode(&msg);
            msg.push(0);
            assert_eq!(usual, decode(&msg), "case {i}");
            if i < 7 {
                let edns = usual.expect("a valid query").0.expect("with EDNS");
                assert_eq!((edns.payload, edns.version), (payload, version), "case {i}");
                assert_eq!(edns.dnssec_ok, flags & 0x80 != 0, "case {i}");
            } else {
                assert_eq!(usual, Err(Reject::FormErr), "case {i}");
            }
        }
    }
}
