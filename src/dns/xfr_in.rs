//! Incoming zone transfers, the wire side of secondary mode: the SOA, AXFR and IXFR requests
//! (signed when the zone has a `primary_key`), reading the answer stream into whole records,
//! applying an incremental answer (RFC 1995) to the zone being served, and writing the result
//! as a master file: the copy the zone is then served from and restarts from.
//!
//! Everything here is pure: sockets, timers and files are `control::refresh`'s.
//!
//! Records are kept as one form throughout: owner (lowercased) and type, class, TTL, RDLENGTH
//! and RDATA, every name written out — the form `Zone::canonical` and `Zone::soa_with` give,
//! so the zone being served is the base an IXFR applies to, with no second copy of it.

use crate::dns::name::{MAX_NAME_LEN, Name, fmt_wire};
use crate::dns::tsig;
use crate::dns::zone::Zone;
use crate::dns::zone::rdata::{
    T_A, T_AAAA, T_AXFR, T_CNAME, T_DNAME, T_IXFR, T_MX, T_NS, T_PTR, T_SOA, T_SPF, T_SRV, T_TXT,
    type_name,
};
use std::fmt::Write as _;

const CLASS_IN: u16 = 1;
/// The most records a transfer may hold, so that a runaway primary is an error rather than a
/// server out of memory.
pub const MAX_RECORDS: usize = 1 << 22;

/// A request: its bytes, and the MAC its answers chain to when it was signed.
#[derive(Debug)]
pub struct Request {
    pub msg: Vec<u8>,
    pub id: u16,
    pub mac: Option<tsig::Mac>,
}

/// What is asked of a primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    Soa,
    Axfr,
    /// An IXFR from the version whose SOA record (names written out) is given.
    Ixfr,
}

/// The request for `zone`: its question (SOA, AXFR or IXFR), for IXFR the zone's current SOA
/// record in the authority section (RFC 1995 §3), signed with `key` at `now` when given.
pub fn request(
    id: u16,
    zone: &Name,
    ask: Ask,
    current_soa: Option<&[u8]>,
    key: Option<&tsig::Key>,
    now: u64,
) -> Request {
    let mut m = Vec::with_capacity(512);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0u16.to_be_bytes());
    let ns = u16::from(ask == Ask::Ixfr && current_soa.is_some());
    m.extend_from_slice(&[0, 1, 0, 0]);
    m.extend_from_slice(&ns.to_be_bytes());
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(zone.wire());
    let qtype = match ask {
        Ask::Soa => T_SOA,
        Ask::Axfr => T_AXFR,
        Ask::Ixfr => T_IXFR,
    };
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    if let (1, Some(soa)) = (ns, current_soa) {
        m.extend_from_slice(soa);
    }
    let mut mac = None;
    if let Some(k) = key {
        let len = m.len();
        m.resize(len + tsig::record_len(k, 0), 0);
        let (len, signed) =
            tsig::sign(&mut m, len, k, tsig::Chain::Request(tsig::Mac::EMPTY), now, 0, &[]);
        m.truncate(len);
        mac = Some(signed);
    }
    Request { msg: m, id, mac }
}

/// Why a transfer was not used. The zone keeps serving what it had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XfrError {
    #[error("malformed answer: {0}")]
    Malformed(&'static str),
    #[error("the primary answered {0}")]
    Rcode(&'static str),
    #[error("TSIG: {0}")]
    Tsig(#[from] tsig::ReplyError),
    #[error("the answer does not start with the zone's SOA")]
    NoSoa,
    #[error("record {0} is outside the zone")]
    OutOfZone(String),
    #[error("record {0} is not of class IN")]
    Class(String),
    #[error("a malformed {0} record at {1}")]
    BadRdata(String, String),
    #[error("more than {MAX_RECORDS} records")]
    TooLarge,
    #[error("records after the closing SOA")]
    Trailing,
    #[error("the stream ended before the closing SOA")]
    Incomplete,
    #[error("the differences do not apply to the zone we have: {0}")]
    Inconsistent(String),
}

/// The header fields of an answer to `req`, checked: an answer (QR), to our ID, opcode QUERY,
/// echoing our question. Returns the rcode and where the answer section starts.
fn header(req: &Request, msg: &[u8]) -> Result<(u16, usize), XfrError> {
    if msg.len() < 12 {
        return Err(XfrError::Malformed("shorter than a header"));
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if id != req.id || flags & 0x8000 == 0 || flags & 0x7800 != 0 {
        return Err(XfrError::Malformed("not an answer to our request"));
    }
    let qd = u16::from_be_bytes([msg[4], msg[5]]);
    let mut p = 12;
    if qd > 1 {
        return Err(XfrError::Malformed("more than one question"));
    }
    if qd == 1 {
        // The question, as we sent it (it may be left out after the first message).
        let ours_end = crate::dns::name::plain_end(&req.msg, 12).expect("our own question") + 4;
        let ours = &req.msg[12..ours_end];
        let theirs = msg.get(12..12 + ours.len()).ok_or(XfrError::Malformed("cut question"))?;
        if !theirs.eq_ignore_ascii_case(ours) {
            return Err(XfrError::Malformed("not our question"));
        }
        p += ours.len();
    }
    Ok((flags & 0xf, p))
}

/// Reads a possibly compressed name at `p` in `msg` into `out` (lowercased when `lower`),
/// returning where the name ends at `p`.
fn read_name(msg: &[u8], mut p: usize, out: &mut Vec<u8>, lower: bool) -> Result<usize, XfrError> {
    let bad = XfrError::Malformed("a bad name");
    let start = out.len();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *msg.get(p).ok_or(bad.clone())? as usize;
        match len & 0xc0 {
            0xc0 => {
                let to = ((len & 0x3f) << 8) | *msg.get(p + 1).ok_or(bad.clone())? as usize;
                end.get_or_insert(p + 2);
                jumps += 1;
                if jumps > 64 || to >= p {
                    return Err(bad); // loops, and pointers forward
                }
                p = to;
            }
            0 => {
                let label = msg.get(p..p + 1 + len).ok_or(bad.clone())?;
                out.extend_from_slice(label);
                if out.len() - start > MAX_NAME_LEN {
                    return Err(bad);
                }
                p += 1 + len;
                if len == 0 {
                    if lower {
                        crate::dns::name::lowercase_in_place(&mut out[start..]);
                    }
                    return Ok(end.unwrap_or(p));
                }
            }
            _ => return Err(bad),
        }
    }
}

/// How many names, after how many fixed bytes, a type's RDATA holds, for the types whose
/// names may be compressed (RFC 3597 §4): RFC 1035's, and those receivers decompress.
fn names_in(rtype: u16) -> Option<(usize, usize, usize)> {
    // (fixed bytes before the names, names, fixed bytes after)
    Some(match rtype {
        T_NS | T_CNAME | T_PTR | T_DNAME | 3 | 4 | 7 | 8 | 9 => (0, 1, 0), // MD MF MB MG MR
        T_SOA => (0, 2, 20),
        14 | 17 => (0, 2, 0),        // MINFO, RP
        T_MX | 18 | 21 => (2, 1, 0), // AFSDB, RT
        26 => (2, 2, 0),             // PX
        T_SRV => (6, 1, 0),
        _ => return None,
    })
}

/// Reads the record at `p`: appends it to `out` in the one form (names written out, owner
/// lowercased) and returns where it ends and its type.
fn read_record(msg: &[u8], p: usize, out: &mut Vec<u8>) -> Result<(usize, u16), XfrError> {
    let start = out.len();
    let p = read_name(msg, p, out, true)?;
    let fixed = msg.get(p..p + 10).ok_or(XfrError::Malformed("a cut record"))?;
    let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
    let rdata = p + 10;
    let end = rdata + rdlen;
    if end > msg.len() {
        return Err(XfrError::Malformed("a cut record"));
    }
    out.extend_from_slice(&fixed[..8]);
    let len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    let describe = |out: &[u8]| {
        let mut s = String::new();
        let _ = fmt_wire(&out[start..], &mut s);
        s
    };
    let malformed = |out: &[u8]| XfrError::BadRdata(type_name(rtype), describe(out));
    match names_in(rtype) {
        Some((before, names, after)) => {
            let mut q = rdata;
            out.extend_from_slice(
                msg.get(q..q + before)
                    .filter(|_| q + before <= end)
                    .ok_or_else(|| malformed(out))?,
            );
            q += before;
            for _ in 0..names {
                if q >= end {
                    return Err(malformed(out));
                }
                q = read_name(msg, q, out, false)?;
            }
            if q + after != end {
                return Err(malformed(out));
            }
            out.extend_from_slice(&msg[q..end]);
        }
        None => {
            let ok = match rtype {
                T_A => rdlen == 4,
                T_AAAA => rdlen == 16,
                _ => true,
            };
            if !ok {
                return Err(malformed(out));
            }
            out.extend_from_slice(&msg[rdata..end]);
        }
    }
    let n = (out.len() - len_at - 2) as u16;
    out[len_at..len_at + 2].copy_from_slice(&n.to_be_bytes());
    Ok((end, rtype))
}

/// A record's parts, from the one form.
struct Parts<'r> {
    owner: &'r [u8],
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata: &'r [u8],
}

fn parts(r: &[u8]) -> Parts<'_> {
    let o = crate::dns::name::plain_end(r, 0).expect("a record in the one form");
    Parts {
        owner: &r[..o],
        rtype: u16::from_be_bytes([r[o], r[o + 1]]),
        class: u16::from_be_bytes([r[o + 2], r[o + 3]]),
        ttl: u32::from_be_bytes([r[o + 4], r[o + 5], r[o + 6], r[o + 7]]),
        rdata: &r[o + 10..],
    }
}

/// The serial of an SOA record in the one form.
pub fn soa_serial(r: &[u8]) -> u32 {
    let n = r.len();
    u32::from_be_bytes([r[n - 20], r[n - 19], r[n - 18], r[n - 17]])
}

/// The refresh, retry and expire of an SOA record in the one form, seconds.
pub fn soa_timers(r: &[u8]) -> (u32, u32, u32) {
    let n = r.len();
    let at = |i: usize| u32::from_be_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]]);
    (at(n - 16), at(n - 12), at(n - 8))
}

/// Reads the SOA of `zone` from the answer to an SOA request (already checked for TSIG).
pub fn soa_answer(req: &Request, zone: &Name, msg: &[u8]) -> Result<Box<[u8]>, XfrError> {
    let (rcode, mut p) = header(req, msg)?;
    if rcode != 0 {
        return Err(XfrError::Rcode(crate::dns::resolve::rcode::name(rcode)));
    }
    let an = u16::from_be_bytes([msg[6], msg[7]]);
    for _ in 0..an {
        let mut rec = Vec::new();
        let (end, rtype) = read_record(msg, p, &mut rec)?;
        if rtype == T_SOA && parts(&rec).owner == zone.wire() {
            return Ok(rec.into());
        }
        p = end;
    }
    Err(XfrError::NoSoa)
}

/// What a transfer came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// IXFR answered with the SOA alone: the zone is current.
    Current,
    /// The whole zone, SOA first.
    Full(Vec<Box<[u8]>>),
    /// RFC 1995 differences, oldest first.
    Incremental(Vec<Step>),
}

/// One version to the next: the records deleted and added (SOAs not among them), and the
/// new SOA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub deleted: Vec<Box<[u8]>>,
    pub added: Vec<Box<[u8]>>,
    pub soa: Box<[u8]>,
}

/// Reads a transfer's stream message by message.
#[derive(Debug)]
pub struct Stream<'r> {
    req: &'r Request,
    zone: Name,
    /// The serial the request said we have (IXFR), to tell an incremental answer.
    ours: Option<u32>,
    records: Vec<Box<[u8]>>,
    done: bool,
    messages: usize,
}

impl<'r> Stream<'r> {
    pub fn new(req: &'r Request, zone: &Name, ours: Option<u32>) -> Stream<'r> {
        Stream {
            req,
            zone: zone.to_lowercase(),
            ours,
            records: Vec::new(),
            done: false,
            messages: 0,
        }
    }

    /// Takes the next message; `Ok(true)` once the stream is complete.
    pub fn add(&mut self, msg: &[u8]) -> Result<bool, XfrError> {
        let (rcode, mut p) = header(self.req, msg)?;
        if rcode != 0 {
            return Err(XfrError::Rcode(crate::dns::resolve::rcode::name(rcode)));
        }
        self.messages += 1;
        let an = u16::from_be_bytes([msg[6], msg[7]]);
        for _ in 0..an {
            if self.done {
                return Err(XfrError::Trailing);
            }
            let mut rec = Vec::with_capacity(64);
            let (end, rtype) = read_record(msg, p, &mut rec)?;
            p = end;
            let r = parts(&rec);
            let mut shown = String::new();
            let _ = fmt_wire(r.owner, &mut shown);
            if !crate::dns::name::is_suffix(r.owner, self.zone.wire()) {
                return Err(XfrError::OutOfZone(format!("{shown} {}", type_name(rtype))));
            }
            if r.class != CLASS_IN {
                return Err(XfrError::Class(format!("{shown} {}", type_name(rtype))));
            }
            if self.records.is_empty() && !(rtype == T_SOA && r.owner == self.zone.wire()) {
                return Err(XfrError::NoSoa);
            }
            if self.records.len() >= MAX_RECORDS {
                return Err(XfrError::TooLarge);
            }
            self.records.push(rec.into());
            self.done = self.closed();
        }
        // IXFR answered with one SOA no newer than ours: nothing follows (RFC 1995 §4).
        if !self.done && self.records.len() == 1 && self.ours.is_some() {
            let s = soa_serial(&self.records[0]);
            if !crate::dns::xfr::serial_lt(self.ours.unwrap_or(s), s) {
                self.done = true;
            }
        }
        Ok(self.done)
    }

    /// Whether the last record read closes the stream: an SOA of the first one's serial, at
    /// a place where a closing SOA can be.
    fn closed(&self) -> bool {
        let n = self.records.len();
        let last = &self.records[n - 1];
        if n < 2 || !self.is_apex_soa(last) || soa_serial(last) != soa_serial(&self.records[0]) {
            return false;
        }
        if !self.incremental() {
            return true;
        }
        // Incremental: SOA(new) [SOA(a) deleted… SOA(b) added…]+ SOA(new). The closing SOA
        // comes after a step's added part whose SOA was the new one.
        let soas: Vec<usize> = (1..n - 1).filter(|&i| self.is_apex_soa(&self.records[i])).collect();
        soas.len().is_multiple_of(2)
            && soas.last().is_some_and(|&i| soa_serial(&self.records[i]) == soa_serial(last))
    }

    fn is_apex_soa(&self, r: &[u8]) -> bool {
        let p = parts(r);
        p.rtype == T_SOA && p.owner == self.zone.wire()
    }

    /// An IXFR answer in incremental form: the second record is an SOA (of our serial).
    fn incremental(&self) -> bool {
        self.ours.is_some() && self.records.get(1).is_some_and(|r| self.is_apex_soa(r))
    }

    /// How many messages were read.
    pub fn messages(&self) -> usize {
        self.messages
    }

    /// The stream's content, once complete.
    pub fn finish(self) -> Result<Received, XfrError> {
        if !self.done {
            return Err(XfrError::Incomplete);
        }
        if self.records.len() == 1 {
            return Ok(Received::Current);
        }
        if !self.incremental() {
            let mut all = self.records;
            all.pop(); // the closing SOA
            return Ok(Received::Full(all));
        }
        let mut steps = Vec::new();
        let body = &self.records[1..self.records.len() - 1];
        let mut i = 0;
        while i < body.len() {
            // body[i] is a step's old SOA; then deletions up to its new SOA; then additions up
            // to the next step's old SOA (or the end).
            let mut j = i + 1;
            while j < body.len() && !self.is_apex_soa(&body[j]) {
                j += 1;
            }
            let mut k = j + 1;
            while k < body.len() && !self.is_apex_soa(&body[k]) {
                k += 1;
            }
            let soa = body.get(j).ok_or(XfrError::Malformed("a step without its new SOA"))?;
            steps.push(Step {
                deleted: body[i + 1..j].to_vec(),
                added: body[j + 1..k.min(body.len())].to_vec(),
                soa: soa.clone(),
            });
            i = k;
        }
        Ok(Received::Incremental(steps))
    }
}

/// A record with its TTL left out: what an IXFR deletion is matched by.
fn without_ttl(r: &[u8]) -> Vec<u8> {
    let o = crate::dns::name::plain_end(r, 0).expect("a record in the one form");
    let mut v = r.to_vec();
    v[o + 4..o + 8].fill(0);
    // Names inside RDATA compare without case (RFC 4343).
    v.make_ascii_lowercase();
    v
}

/// The zone `base` (being served) with `steps` applied: the new SOA first, then every other
/// record. The steps must start at `base`'s serial, and every deletion must be of a record
/// the zone has; otherwise the caller falls back to AXFR.
pub fn apply(base: &Zone, steps: &[Step]) -> Result<Vec<Box<[u8]>>, XfrError> {
    let mut serial = base.serial();
    let mut records: Vec<Box<[u8]>> = base.canonical();
    let mut soa: Box<[u8]> = base.soa_with(serial);
    for step in steps {
        let mut index: std::collections::HashMap<Vec<u8>, usize> =
            records.iter().enumerate().map(|(i, r)| (without_ttl(r), i)).collect();
        let mut gone = vec![false; records.len()];
        for d in &step.deleted {
            match index.remove(&without_ttl(d)) {
                Some(i) => gone[i] = true,
                None => {
                    let mut s = String::new();
                    let _ = fmt_wire(parts(d).owner, &mut s);
                    let t = type_name(parts(d).rtype);
                    return Err(XfrError::Inconsistent(format!(
                        "serial {serial} has no {s} {t} to delete"
                    )));
                }
            }
        }
        let mut next: Vec<Box<[u8]>> =
            records.into_iter().zip(gone).filter(|(_, g)| !g).map(|(r, _)| r).collect();
        next.extend(step.added.iter().cloned());
        records = next;
        serial = soa_serial(&step.soa);
        soa = step.soa.clone();
    }
    let mut out = Vec::with_capacity(records.len() + 1);
    out.push(soa);
    out.extend(records);
    Ok(out)
}

/// The zone as master-file text: absolute names, one record per line, the SOA first. Types
/// the zone parser reads natively are written in their usual form; the rest in RFC 3597
/// generic form (`\# len hex`), which says exactly what was received.
pub fn render(zone: &Name, records: &[Box<[u8]>], header: &str) -> String {
    let mut out = String::with_capacity(records.len() * 48 + 256);
    for line in header.lines() {
        let _ = writeln!(out, "; {line}");
    }
    let _ = writeln!(out, "$ORIGIN {zone}");
    for r in records {
        let p = parts(r);
        let _ = fmt_wire(p.owner, &mut out);
        let _ = write!(out, " {} IN {} ", p.ttl, type_name(p.rtype));
        rdata_text(p.rtype, p.rdata, &mut out);
        out.push('\n');
    }
    out
}

fn rdata_text(rtype: u16, d: &[u8], out: &mut String) {
    let u16_at = |i: usize| u16::from_be_bytes([d[i], d[i + 1]]);
    match rtype {
        T_A => {
            let _ = write!(out, "{}", std::net::Ipv4Addr::new(d[0], d[1], d[2], d[3]));
        }
        T_AAAA => {
            let a: [u8; 16] = d.try_into().expect("checked when read");
            let _ = write!(out, "{}", std::net::Ipv6Addr::from(a));
        }
        T_NS | T_CNAME | T_PTR | T_DNAME => {
            let _ = fmt_wire(d, out);
        }
        T_MX => {
            let _ = write!(out, "{} ", u16_at(0));
            let _ = fmt_wire(&d[2..], out);
        }
        T_SRV => {
            let _ = write!(out, "{} {} {} ", u16_at(0), u16_at(2), u16_at(4));
            let _ = fmt_wire(&d[6..], out);
        }
        T_SOA => {
            let m = crate::dns::name::plain_end(d, 0).expect("checked when read");
            let r = crate::dns::name::plain_end(d, m).expect("checked when read");
            let _ = fmt_wire(&d[..m], out);
            out.push(' ');
            let _ = fmt_wire(&d[m..r], out);
            let n = |i: usize| u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
            let _ = write!(out, " {} {} {} {} {}", n(r), n(r + 4), n(r + 8), n(r + 12), n(r + 16));
        }
        T_TXT | T_SPF if text_strings(d) => {
            let mut p = 0;
            while p < d.len() {
                let len = d[p] as usize;
                if p > 0 {
                    out.push(' ');
                }
                out.push('"');
                for &b in &d[p + 1..p + 1 + len] {
                    match b {
                        b'"' | b'\\' => {
                            out.push('\\');
                            out.push(b as char);
                        }
                        0x20..=0x7e => out.push(b as char),
                        _ => {
                            let _ = write!(out, "\\{b:03}");
                        }
                    }
                }
                out.push('"');
                p += 1 + len;
            }
        }
        _ => {
            let _ = write!(out, "\\# {}", d.len());
            if !d.is_empty() {
                out.push(' ');
                for b in d {
                    let _ = write!(out, "{b:02x}");
                }
            }
        }
    }
}

/// Whether TXT RDATA is a well-formed, non-empty run of character-strings.
fn text_strings(d: &[u8]) -> bool {
    let mut p = 0;
    while p < d.len() {
        p += 1 + d[p] as usize;
    }
    p == d.len() && !d.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn zone(text: &str) -> Zone {
        let origin = Name::parse("example.", None).unwrap();
        zone_parse(&origin, text)
    }

    fn zone_parse(origin: &Name, text: &str) -> Zone {
        crate::dns::zone::parse(origin, Path::new("t.zone"), text).expect("a valid zone")
    }

    const ZONE: &str = "$TTL 300\n\
        @ IN SOA ns1 hostmaster 7 3600 600 86400 60\n\
        @ NS ns1\n\
        @ NS ns.other.net.\n\
        ns1 A 192.0.2.1\n\
        ns1 AAAA 2001:db8::1\n\
        @ MX 10 mail\n\
        mail A 192.0.2.25\n\
        _sip._tcp SRV 10 5 5060 sip\n\
        sip CNAME www\n\
        www A 192.0.2.80\n\
        txt TXT \"hello world\" \"quote \\\" back\\\\slash\" \"\\200\\001\"\n\
        spf TYPE99 \"v=spf1 -all\"\n\
        ptr PTR www\n\
        caa CAA 0 issue \"ca.example\"\n\
        sshfp SSHFP 1 1 0123456789abcdef0123456789abcdef01234567\n\
        odd TYPE65280 \\# 3 010203\n\
        sub NS ns.sub\n\
        ns.sub A 192.0.2.53\n";

    /// The whole zone, SOA first, in the one form.
    fn records(z: &Zone) -> Vec<Box<[u8]>> {
        let mut all = vec![z.soa_with(z.serial())];
        all.extend(z.canonical());
        all
    }

    #[test]
    fn a_rendered_zone_reads_back_as_the_same_records() {
        let z = zone(ZONE);
        let text = render(z.origin(), &records(&z), "a test");
        let again = zone(&text);
        assert_eq!(again.canonical(), z.canonical(), "{text}");
        assert_eq!(again.serial(), 7);
        assert!(text.contains("txt.example. 300 IN TXT \"hello world\" \"quote \\\" back\\\\slash\" \"\\200\\001\""), "{text}");
        assert!(text.contains("odd.example. 300 IN TYPE65280 \\# 3 010203"), "{text}");
    }

    /// A message as a primary sends it: our question, then `records` in the answer section,
    /// compressed the simple way (every name written out: the reader must take both).
    fn message(req: &Request, records: &[Box<[u8]>]) -> Vec<u8> {
        let q_end = crate::dns::name::plain_end(&req.msg, 12).unwrap() + 4;
        let mut m = req.msg[..q_end].to_vec();
        m[2] = 0x84; // QR AA
        m[3] = 0;
        m[4..12].copy_from_slice(&[0, 1, 0, records.len() as u8, 0, 0, 0, 0]);
        for r in records {
            m.extend_from_slice(r);
        }
        m
    }

    #[test]
    fn an_axfr_stream_across_messages_is_the_whole_zone() {
        let z = zone(ZONE);
        let origin = z.origin().clone();
        let req = request(7, &origin, Ask::Axfr, None, None, 0);
        let all = records(&z);
        let mut s = Stream::new(&req, &origin, None);
        let (a, b) = all.split_at(5);
        assert!(!s.add(&message(&req, a)).unwrap());
        let mut rest = b.to_vec();
        rest.push(all[0].clone());
        assert!(s.add(&message(&req, &rest)).unwrap());
        assert_eq!(s.finish().unwrap(), Received::Full(all));
    }

    #[test]
    fn broken_streams_are_errors_and_name_what_is_wrong() {
        let z = zone(ZONE);
        let origin = z.origin().clone();
        let req = request(7, &origin, Ask::Axfr, None, None, 0);
        let all = records(&z);
        let other = zone_parse(
            &Name::parse("other.", None).unwrap(),
            "@ 60 SOA a b 1 2 3 4 5\n@ 60 NS a\na 60 A 192.0.2.9\n",
        );
        let foreign = other.canonical()[0].clone();
        // (records in one message, what it must come to)
        let cases: Vec<(Vec<Box<[u8]>>, &str)> = vec![
            (all[1..].to_vec(), "does not start with the zone's SOA"),
            (vec![all[0].clone(), foreign, all[0].clone()], "outside the zone"),
            (vec![all[0].clone(), all[1].clone()], "ended before the closing SOA"),
            (
                vec![all[0].clone(), all[1].clone(), all[0].clone(), all[2].clone()],
                "after the closing SOA",
            ),
        ];
        for (recs, want) in cases {
            let mut s = Stream::new(&req, &origin, None);
            let got = s.add(&message(&req, &recs)).and_then(|_| s.finish().map(|_| ()));
            let e = got.expect_err(want).to_string();
            assert!(e.contains(want), "{e} should say {want}");
        }
        // Someone else's answer.
        let mut s = Stream::new(&req, &origin, None);
        let mut m = message(&req, &all);
        m[0] ^= 1;
        assert!(s.add(&m).unwrap_err().to_string().contains("not an answer to our request"));
        // An error rcode.
        let mut m = message(&req, &[]);
        m[3] = 5;
        let mut s = Stream::new(&req, &origin, None);
        assert_eq!(s.add(&m).unwrap_err(), XfrError::Rcode("REFUSED"));
        // A compression pointer loop.
        let mut m = message(&req, &[]);
        m[7] = 1;
        m.extend_from_slice(&[0xc0, (m.len() & 0xff) as u8]);
        let mut s = Stream::new(&req, &origin, None);
        assert!(matches!(s.add(&m), Err(XfrError::Malformed(_))));
    }

    #[test]
    fn mutated_streams_never_panic() {
        let z = zone(ZONE);
        let origin = z.origin().clone();
        let req = request(7, &origin, Ask::Ixfr, Some(&z.soa_with(7)), None, 0);
        let mut all = records(&z);
        all.push(all[0].clone());
        let good = message(&req, &all);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..5000 {
            let mut m = good.clone();
            for _ in 0..1 + round % 4 {
                let at = (next() as usize) % m.len();
                m[at] = next() as u8;
            }
            if round % 7 == 0 {
                m.truncate((next() as usize) % m.len());
            }
            let mut st = Stream::new(&req, &origin, Some(7));
            if let Ok(true) = st.add(&m)
                && let Ok(r) = st.finish()
            {
                let recs = match r {
                    Received::Full(r) => r,
                    Received::Incremental(steps) => apply(&z, &steps).unwrap_or_default(),
                    Received::Current => continue,
                };
                if !recs.is_empty() {
                    let _ = render(&origin, &recs, "");
                }
            }
        }
    }

    #[test]
    fn compressed_names_are_written_out() {
        let origin = Name::parse("example.", None).unwrap();
        let req = request(1, &origin, Ask::Soa, None, None, 0);
        let mut m = message(&req, &[]);
        m[7] = 1;
        // SOA: owner -> question name; mname ns1.<ptr>; rname a.<ptr>
        m.extend_from_slice(&[0xc0, 12, 0, 6, 0, 1, 0, 0, 0, 60]);
        let rd = [&b"\x03ns1\xc0\x0c"[..], b"\x01a\xc0\x0c", &[0; 20]].concat();
        m.extend_from_slice(&(rd.len() as u16).to_be_bytes());
        m.extend_from_slice(&rd);
        let soa = soa_answer(&req, &origin, &m).unwrap();
        let text = render(&origin, &[soa], "");
        assert!(text.contains("example. 60 IN SOA ns1.example. a.example. 0 0 0 0 0"), "{text}");
    }

    fn versions() -> (Zone, Zone) {
        let v1 = zone(ZONE);
        let v2 = zone(
            &ZONE
                .replace("SOA ns1 hostmaster 7", "SOA ns1 hostmaster 8")
                .replace("www A 192.0.2.80", "www A 192.0.2.81\nnew A 192.0.2.99"),
        );
        (v1, v2)
    }

    fn step(from: &Zone, to: &Zone) -> Step {
        let (a, b) = (from.canonical(), to.canonical());
        Step {
            deleted: a.iter().filter(|r| !b.contains(r)).cloned().collect(),
            added: b.iter().filter(|r| !a.contains(r)).cloned().collect(),
            soa: to.soa_with(to.serial()),
        }
    }

    #[test]
    fn an_incremental_answer_applies_to_the_served_zone() {
        let (v1, v2) = versions();
        let origin = v1.origin().clone();
        let soa1 = v1.soa_with(7);
        let req = request(9, &origin, Ask::Ixfr, Some(&soa1), None, 0);
        let s = step(&v1, &v2);
        let mut recs = vec![v2.soa_with(8), soa1.clone()];
        recs.extend(s.deleted.iter().cloned());
        recs.push(v2.soa_with(8));
        recs.extend(s.added.iter().cloned());
        recs.push(v2.soa_with(8));
        let mut st = Stream::new(&req, &origin, Some(7));
        assert!(st.add(&message(&req, &recs)).unwrap());
        let Received::Incremental(steps) = st.finish().unwrap() else { panic!("incremental") };
        assert_eq!(steps, vec![s]);
        let applied = apply(&v1, &steps).unwrap();
        let text = render(&origin, &applied, "");
        let again = zone(&text);
        assert_eq!(again.canonical(), v2.canonical());
        assert_eq!(again.serial(), 8);
        // Applied to the wrong version, a deletion is missing: an error, so AXFR follows.
        let e = apply(&v2, &steps).unwrap_err();
        assert!(matches!(e, XfrError::Inconsistent(_)), "{e}");
    }

    #[test]
    fn an_ixfr_answered_with_one_soa_means_current_and_axfr_style_means_full() {
        let (v1, v2) = versions();
        let origin = v1.origin().clone();
        let soa1 = v1.soa_with(7);
        let req = request(9, &origin, Ask::Ixfr, Some(&soa1), None, 0);
        let mut st = Stream::new(&req, &origin, Some(7));
        assert!(st.add(&message(&req, std::slice::from_ref(&soa1))).unwrap());
        assert_eq!(st.finish().unwrap(), Received::Current);
        // AXFR-style: the second record is not an SOA.
        let mut all = records(&v2);
        all.push(v2.soa_with(8));
        let mut st = Stream::new(&req, &origin, Some(7));
        assert!(st.add(&message(&req, &all)).unwrap());
        assert!(matches!(st.finish().unwrap(), Received::Full(r) if r.len() == all.len() - 1));
    }

    #[test]
    fn signed_requests_verify_signed_streams() {
        use crate::dns::tsig::{Algorithm, Chain, Key, ReplyCheck, ReplyError, record_len, sign};
        let key = Key::new(&Name::parse("k.", None).unwrap(), Algorithm::HmacSha256, b"secret");
        let other = Key::new(&Name::parse("k.", None).unwrap(), Algorithm::HmacSha256, b"nope");
        let z = zone(ZONE);
        let origin = z.origin().clone();
        let req = request(3, &origin, Ask::Axfr, None, Some(&key), 1000);
        let all = records(&z);
        // The primary's side: each message signed, chained (as `dns::xfr` does).
        let mut mac = req.mac.unwrap();
        let mut msgs = Vec::new();
        for (i, part) in [&all[..3], &all[3..]].iter().enumerate() {
            let mut m = message(&req, part);
            let len = m.len();
            m.resize(len + record_len(&key, 0), 0);
            let chain = if i == 0 { Chain::Request(mac) } else { Chain::Next(mac) };
            let (len, next) = sign(&mut m, len, &key, chain, 1000, 0, &[]);
            m.truncate(len);
            mac = next;
            msgs.push(m);
        }
        let mut check = ReplyCheck::new(&key, req.mac.unwrap());
        for m in &msgs {
            check.check(m, 1010).unwrap();
        }
        check.finish().unwrap();
        // The same stream checked with another secret, out of order, or too late.
        let mut check = ReplyCheck::new(&other, req.mac.unwrap());
        assert_eq!(check.check(&msgs[0], 1010), Err(ReplyError::BadSig));
        let mut check = ReplyCheck::new(&key, req.mac.unwrap());
        assert_eq!(check.check(&msgs[1], 1010), Err(ReplyError::BadSig));
        let mut check = ReplyCheck::new(&key, req.mac.unwrap());
        assert!(matches!(check.check(&msgs[0], 5000), Err(ReplyError::BadTime(_))));
        // An unsigned answer to a signed request.
        let mut check = ReplyCheck::new(&key, req.mac.unwrap());
        assert_eq!(check.check(&message(&req, &all), 1010), Err(ReplyError::Unsigned));
    }
}
