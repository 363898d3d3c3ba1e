//! Query decoding: the header, the one question, and the OPT record, read in place.
//!
//! Only what answering needs is decoded. Nothing here allocates: the lowercased question name
//! lives in a fixed array on the caller's stack.

use crate::dns::cookie::Cookie;
use crate::dns::name::MAX_NAME_LEN;
use crate::dns::zone::Labels;
use crate::dns::zone::rdata::T_OPT;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// EDNS option codes: Name Server Identifier (RFC 5001), Client Subnet (RFC 7871), COOKIE
/// (RFC 7873).
pub(crate) const OPT_NSID: u16 = 3;
pub(crate) const OPT_ECS: u16 = 8;
pub(crate) const OPT_COOKIE: u16 = 10;

/// Which EDNS options this server acts on; the others are ignored like any unknown option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Options {
    pub ecs: bool,
    pub cookies: bool,
}

pub(crate) const HEADER_LEN: usize = 12;

/// Why a message cannot be answered normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// Not even a header: send nothing (SPEC §3, RFC 1035 gives no way to answer it).
    Drop,
    /// A header but a malformed body: FORMERR.
    FormErr,
    /// An opcode other than QUERY: NOTIMP.
    NotImp,
}

/// The EDNS(0) parameters of a query (RFC 6891 §6.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edns {
    pub payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    /// The query asked for the server's NSID.
    pub nsid: bool,
}

/// An EDNS Client Subnet option from a query (RFC 7871 §6), validated.
///
/// The address bytes as sent are not kept: they are the first [`Ecs::addr_len`] bytes of
/// `addr` (validation made every bit past the source prefix zero), and are echoed from there.
/// Keeping a copy cost every ECS answer stalls: bytes stored one at a time and read back as
/// one wide load cannot be forwarded from the store buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ecs {
    pub source: u8,
    /// The address, zero beyond the source prefix; its family is the option's FAMILY.
    pub addr: IpAddr,
}

impl Ecs {
    /// How many address bytes the option carries: `ceil(source / 8)`.
    pub fn addr_len(&self) -> usize {
        (self.source as usize).div_ceil(8)
    }
}

/// A decoded query. `question` is the raw question section as sent, echoed verbatim so the
/// client sees its own letter case (0x20 randomisation).
#[derive(Debug)]
pub(crate) struct Query<'a> {
    pub id: u16,
    /// The request's flag word; the opcode, RD and CD bits are copied into the answer.
    pub flags: u16,
    pub question: &'a [u8],
    /// The question name in wire form, lowercased, in the caller's buffer (returning a
    /// 255-byte array inside the `Result` cost every query a copy of it).
    pub qname: &'a [u8],
    /// Where each label of `qname` starts, recorded while the decoder walked it (in the
    /// caller's buffer, like the name), so that answering does not walk it again.
    pub labels: &'a Labels,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
    pub ecs: Option<Ecs>,
    pub cookie: Option<Cookie>,
    /// The message carries a TSIG record (RFC 8945), to be verified before answering.
    pub tsig: bool,
}

impl Query<'_> {
    pub fn qname(&self) -> &[u8] {
        self.qname
    }
}

#[inline]
fn u16_at(msg: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]))
}

/// The header fields needed even for error answers: id and flags. `None` when the message is
/// too short to have a header, or is itself a response (answering responses invites loops).
pub(crate) fn header(msg: &[u8]) -> Option<(u16, u16)> {
    if msg.len() < HEADER_LEN {
        return None;
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & 0x8000 != 0 {
        return None;
    }
    Some((id, flags))
}

/// Decodes a query, the lowercased question name into `name` and where its labels start into
/// `labels`. On `Err`, the caller answers with the header fields from [`header`]. Options
/// `opts` does not turn on are ignored like any unknown option.
pub(crate) fn query<'a>(
    msg: &'a [u8],
    opts: Options,
    name: &'a mut [u8; MAX_NAME_LEN],
    labels: &'a mut Labels,
) -> Result<Query<'a>, Reject> {
    let (id, flags) = header(msg).ok_or(Reject::Drop)?;
    let opcode = (flags >> 11) & 0xf;
    let qdcount = u16_at(msg, 4).unwrap_or(0);
    let (ancount, nscount, arcount) =
        (u16_at(msg, 6).unwrap_or(0), u16_at(msg, 8).unwrap_or(0), u16_at(msg, 10).unwrap_or(0));
    if opcode != 0 {
        return Err(Reject::NotImp);
    }
    if qdcount != 1 {
        return Err(Reject::FormErr);
    }

    // The question name: plain labels only. A compression pointer in the first name of a
    // message can only point backwards into the header, which is never a valid name. The
    // labels are walked first, recording where each starts (for the zone lookup), and then
    // copied in one piece.
    let mut pos = HEADER_LEN;
    let mut count = 0;
    loop {
        let len = *msg.get(pos).ok_or(Reject::FormErr)? as usize;
        if len & 0xc0 != 0 {
            return Err(Reject::FormErr);
        }
        if len != 0 {
            // Below MAX_NAME_LEN (checked on the previous label), so it fits a byte.
            labels.set(count, (pos - HEADER_LEN) as u8);
            count += 1;
        }
        pos += 1 + len;
        if pos - HEADER_LEN > MAX_NAME_LEN {
            return Err(Reject::FormErr);
        }
        if len == 0 {
            break;
        }
    }
    labels.set_count(count);
    let name = &mut name[..pos - HEADER_LEN];
    name.copy_from_slice(msg.get(HEADER_LEN..pos).ok_or(Reject::FormErr)?);
    // Length bytes are at most 63, below 'A', so lowercasing the whole name leaves them be.
    crate::dns::name::lowercase_in_place(name);
    let mut q = Query {
        id,
        flags,
        question: &[],
        qname: name,
        labels,
        qtype: u16_at(msg, pos).ok_or(Reject::FormErr)?,
        qclass: u16_at(msg, pos + 2).ok_or(Reject::FormErr)?,
        edns: None,
        ecs: None,
        cookie: None,
        tsig: false,
    };
    pos += 4;
    q.question = &msg[HEADER_LEN..pos];
    if q.qtype == T_OPT {
        return Err(Reject::FormErr);
    }

    // The usual shape of a query with EDNS: nothing but one OPT record after the question,
    // owned by the root and ending the message. Read in place; any other shape (trailing
    // bytes included) takes the general walk below, which decides the same for this one.
    if (ancount, nscount, arcount) == (0, 0, 1)
        && let [0, t0, t1, p0, p1, _, version, flags, _, l0, l1, list @ ..] = &msg[pos..]
        && u16::from_be_bytes([*t0, *t1]) == T_OPT
        && usize::from(u16::from_be_bytes([*l0, *l1])) == list.len()
    {
        let nsid = check_options(list, opts, &mut q.ecs, &mut q.cookie)?;
        let (payload, dnssec_ok) = (u16::from_be_bytes([*p0, *p1]), flags & 0x80 != 0);
        q.edns = Some(Edns { payload, version: *version, dnssec_ok, nsid });
        return Ok(q);
    }
    // Skip answer and authority records (a query normally has none), then look for OPT.
    for _ in 0..(ancount as usize + nscount as usize) {
        pos = skip_record(msg, pos)?.1;
    }
    for _ in 0..arcount {
        let (rtype, next) = skip_record(msg, pos)?;
        q.tsig |= rtype == crate::dns::tsig::T_TSIG;
        if rtype == T_OPT {
            // RFC 6891 §6.1.1: one OPT, owned by the root name.
            if q.edns.is_some() || msg[pos] != 0 {
                return Err(Reject::FormErr);
            }
            let payload = u16_at(msg, pos + 3).ok_or(Reject::FormErr)?;
            let version = msg[pos + 6];
            let dnssec_ok = msg[pos + 7] & 0x80 != 0;
            let nsid = check_options(&msg[pos + 11..next], opts, &mut q.ecs, &mut q.cookie)?;
            q.edns = Some(Edns { payload, version, dnssec_ok, nsid });
        }
        pos = next;
    }
    Ok(q)
}

/// The EDNS parameters of a message that could not be answered normally (FORMERR, NOTIMP),
/// so that the error reply carries OPT too (RFC 6891 §6.1.1: a responder MUST include one
/// when the request had one). `None` unless the message has exactly one OPT, owned by the
/// root, found by walking its sections as their counts say.
pub(crate) fn rejected_edns(msg: &[u8]) -> Option<Edns> {
    let count = |at| u16_at(msg, at).map(usize::from);
    let (qd, an, ns, ar) = (count(4)?, count(6)?, count(8)?, count(10)?);
    let mut pos = HEADER_LEN;
    for _ in 0..qd {
        pos = skip_name(msg, pos).ok()? + 4;
    }
    for _ in 0..an + ns {
        pos = skip_record(msg, pos).ok()?.1;
    }
    let mut edns = None;
    for _ in 0..ar {
        let (rtype, next) = skip_record(msg, pos).ok()?;
        if rtype == T_OPT {
            if edns.is_some() || msg[pos] != 0 {
                return None;
            }
            let payload = u16_at(msg, pos + 3)?;
            edns = Some(Edns {
                payload,
                version: msg[pos + 6],
                dnssec_ok: msg[pos + 7] & 0x80 != 0,
                nsid: false,
            });
        }
        pos = next;
    }
    edns
}

/// Walks a name starting at `pos` (labels, ending in the root label or a compression pointer);
/// returns where what follows it starts.
fn skip_name(msg: &[u8], mut pos: usize) -> Result<usize, Reject> {
    let mut hops = 0;
    loop {
        let len = *msg.get(pos).ok_or(Reject::FormErr)? as usize;
        match len & 0xc0 {
            0x00 if len == 0 => return Ok(pos + 1),
            0x00 => pos += 1 + len,
            0xc0 => return Ok(pos + 2),
            _ => return Err(Reject::FormErr),
        }
        hops += 1;
        if hops > 127 {
            return Err(Reject::FormErr);
        }
    }
}

/// Walks a resource record starting at `pos`; returns its type and where the next one starts.
fn skip_record(msg: &[u8], pos: usize) -> Result<(u16, usize), Reject> {
    let pos = skip_name(msg, pos)?;
    let rtype = u16_at(msg, pos).ok_or(Reject::FormErr)?;
    let rdlen = u16_at(msg, pos + 8).ok_or(Reject::FormErr)? as usize;
    let end = pos + 10 + rdlen;
    if end > msg.len() {
        return Err(Reject::FormErr);
    }
    Ok((rtype, end))
}

/// Checks the option list of an OPT record is well formed (RFC 6891 §6.1.2) and reads Client
/// Subnet and COOKIE; returns whether NSID was asked for. Unknown options are ignored, as the
/// RFC requires.
fn check_options(
    mut list: &[u8],
    opts: Options,
    ecs: &mut Option<Ecs>,
    cookie: &mut Option<Cookie>,
) -> Result<bool, Reject> {
    let mut nsid = false;
    while !list.is_empty() {
        let code = u16_at(list, 0).ok_or(Reject::FormErr)?;
        let len = u16_at(list, 2).ok_or(Reject::FormErr)? as usize;
        let data = list.get(4..4 + len).ok_or(Reject::FormErr)?;
        match code {
            OPT_ECS if opts.ecs => {
                if ecs.is_some() {
                    return Err(Reject::FormErr);
                }
                *ecs = Some(client_subnet(data)?);
            }
            // RFC 7873 §5.2.2: a malformed COOKIE option is FORMERR; so is a second one.
            OPT_COOKIE if opts.cookies => {
                if cookie.is_some() {
                    return Err(Reject::FormErr);
                }
                *cookie = Some(Cookie::parse(data).ok_or(Reject::FormErr)?);
            }
            // RFC 5001 §2.1: the request's NSID option is empty.
            OPT_NSID => nsid = true,
            _ => {}
        }
        list = &list[4 + len..];
    }
    Ok(nsid)
}

/// RFC 7871 §6: FAMILY, SOURCE PREFIX-LENGTH, SCOPE PREFIX-LENGTH (0 in queries), then exactly
/// enough address bytes for the source prefix, with the bits past it zero. Anything else is
/// FORMERR (§7.1.1 leaves no room for guessing).
#[inline]
fn client_subnet(d: &[u8]) -> Result<Ecs, Reject> {
    let (head, addr) = d.split_first_chunk::<4>().ok_or(Reject::FormErr)?;
    let [f0, f1, source, scope] = *head;
    let family = u16::from_be_bytes([f0, f1]);
    let width = match family {
        1 => 32,
        2 => 128,
        _ => return Err(Reject::FormErr),
    };
    if source > width || scope != 0 || addr.len() != (source as usize).div_ceil(8) {
        return Err(Reject::FormErr);
    }
    if source % 8 != 0 && addr[addr.len() - 1] & (0xff >> (source % 8)) != 0 {
        return Err(Reject::FormErr);
    }
    // The bytes are assembled in registers, rather than copied into an array that is then
    // read back whole. IPv4, nearly every option: each of the four bytes is sent or zero.
    let addr = match family {
        1 => {
            let b = |i: usize| addr.get(i).copied().unwrap_or(0);
            IpAddr::V4(Ipv4Addr::new(b(0), b(1), b(2), b(3)))
        }
        _ => {
            // Folded into an integer (at most 16 bytes, checked above). No bytes (source 0)
            // shifts a zero by the whole width: no shift at all.
            let v = addr.iter().fold(0u128, |v, &b| v << 8 | b as u128);
            IpAddr::V6(Ipv6Addr::from(v.checked_shl(128 - 8 * addr.len() as u32).unwrap_or(0)))
        }
    };
    Ok(Ecs { source, addr })
}
