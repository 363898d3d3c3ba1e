//! TSIG (RFC 8945): requests signed with a shared key are verified, and their answers signed
//! with it; a request signed with a key we do not know, with a wrong MAC or at a time too far
//! from ours gets NOTAUTH with the TSIG record the RFC prescribes (BADKEY and BADSIG unsigned,
//! BADTIME signed and carrying our time). Zone transfers sign every message of the stream,
//! each MAC chained to the one before (§5.3.1).
//!
//! Keys come from the configuration: `[[key]]` with the secret in base64 from the
//! environment, a file, or a BIND key file (`key "name" { algorithm ...; secret "..."; };`,
//! as `tsig-keygen` writes). Nothing here allocates per message.

use crate::dns::name::{Name, plain_end, wire_end};
use ring::hmac;

pub const T_TSIG: u16 = 250;
const CLASS_ANY: u16 = 255;
/// The fudge our signatures carry, and the most a request's clock may be off by (RFC 8945
/// §10 recommends 300 seconds).
pub const FUDGE: u16 = 300;

/// TSIG error codes (RFC 8945 §3, §5).
pub const BADSIG: u16 = 16;
pub const BADKEY: u16 = 17;
pub const BADTIME: u16 = 18;
pub const BADTRUNC: u16 = 22;

/// The HMAC algorithms (RFC 8945 §6); SHA-1 only for interoperability with old peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HmacSha1,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Algorithm {
    /// The algorithm by its name in configuration and BIND key files.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Some(match name.trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha1" => Algorithm::HmacSha1,
            "hmac-sha256" => Algorithm::HmacSha256,
            "hmac-sha384" => Algorithm::HmacSha384,
            "hmac-sha512" => Algorithm::HmacSha512,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HmacSha1 => "hmac-sha1",
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha384 => "hmac-sha384",
            Algorithm::HmacSha512 => "hmac-sha512",
        }
    }

    /// The algorithm's name in wire form, as it goes into TSIG RDATA and the MAC.
    fn wire(self) -> &'static [u8] {
        match self {
            Algorithm::HmacSha1 => b"\x09hmac-sha1\x00",
            Algorithm::HmacSha256 => b"\x0bhmac-sha256\x00",
            Algorithm::HmacSha384 => b"\x0bhmac-sha384\x00",
            Algorithm::HmacSha512 => b"\x0bhmac-sha512\x00",
        }
    }

    fn ring(self) -> hmac::Algorithm {
        match self {
            Algorithm::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Algorithm::HmacSha256 => hmac::HMAC_SHA256,
            Algorithm::HmacSha384 => hmac::HMAC_SHA384,
            Algorithm::HmacSha512 => hmac::HMAC_SHA512,
        }
    }

    /// The length of a full MAC.
    pub fn mac_len(self) -> usize {
        match self {
            Algorithm::HmacSha1 => 20,
            Algorithm::HmacSha256 => 32,
            Algorithm::HmacSha384 => 48,
            Algorithm::HmacSha512 => 64,
        }
    }
}

/// A shared key.
#[derive(Clone)]
pub struct Key {
    /// Lowercased, as it goes into the MAC.
    pub name: Name,
    pub algorithm: Algorithm,
    hmac: hmac::Key,
    /// A digest of the secret, so that configurations can be compared without the secret.
    fingerprint: [u8; 8],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({} {})", self.name, self.algorithm.name())
    }
}

impl PartialEq for Key {
    fn eq(&self, o: &Key) -> bool {
        (&self.name, self.algorithm, self.fingerprint) == (&o.name, o.algorithm, o.fingerprint)
    }
}

impl Eq for Key {}

impl Key {
    pub fn new(name: &Name, algorithm: Algorithm, secret: &[u8]) -> Key {
        let digest = ring::digest::digest(&ring::digest::SHA256, secret);
        let mut fingerprint = [0; 8];
        fingerprint.copy_from_slice(&digest.as_ref()[..8]);
        Key {
            name: name.to_lowercase(),
            algorithm,
            hmac: hmac::Key::new(algorithm.ring(), secret),
            fingerprint,
        }
    }
}

/// The largest MAC of any algorithm here.
pub const MAX_MAC: usize = 64;

/// A MAC, kept to chain the next one to it.
#[derive(Debug, Clone, Copy)]
pub struct Mac {
    bytes: [u8; MAX_MAC],
    len: u8,
}

impl Mac {
    pub const EMPTY: Mac = Mac { bytes: [0; MAX_MAC], len: 0 };

    fn new(b: &[u8]) -> Mac {
        let mut m = Mac::EMPTY;
        m.bytes[..b.len()].copy_from_slice(b);
        m.len = b.len() as u8;
        m
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// A TSIG record at the end of a message, read in place.
#[derive(Debug, Clone, Copy)]
pub struct Signed<'a> {
    /// Where the record starts: the message it signs is everything before.
    pub start: usize,
    /// The key name and algorithm name in wire form, as sent.
    pub key: &'a [u8],
    pub algorithm: &'a [u8],
    pub time: u64,
    pub fudge: u16,
    pub mac: &'a [u8],
    pub original_id: u16,
    pub error: u16,
    pub other: &'a [u8],
}

fn u16_at(m: &[u8], p: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*m.get(p)?, *m.get(p + 1)?]))
}

/// A message whose TSIG record is malformed or not the last record (RFC 8945 §5.1: FORMERR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Finds the TSIG record of `msg`. `Ok(None)`: not signed.
pub fn find(msg: &[u8]) -> Result<Option<Signed<'_>>, Malformed> {
    let count = |at| u16_at(msg, at).map(usize::from).ok_or(Malformed);
    let (qd, an, ns, ar) = (count(4)?, count(6)?, count(8)?, count(10)?);
    let mut p = 12;
    for _ in 0..qd {
        p = wire_end(msg, p).ok_or(Malformed)? + 4;
    }
    let total = an + ns + ar;
    for i in 0..total {
        let start = p;
        let owner_end = wire_end(msg, p).ok_or(Malformed)?;
        let rtype = u16_at(msg, owner_end).ok_or(Malformed)?;
        let rdlen = u16_at(msg, owner_end + 8).ok_or(Malformed)? as usize;
        let rdata = owner_end + 10;
        let end = rdata + rdlen;
        if end > msg.len() {
            return Err(Malformed);
        }
        if rtype == T_TSIG {
            if i != total - 1 || i < an + ns {
                return Err(Malformed);
            }
            let key_end = plain_end(msg, start).ok_or(Malformed)?;
            if key_end != owner_end || u16_at(msg, owner_end + 2) != Some(CLASS_ANY) {
                return Err(Malformed);
            }
            let alg_end = plain_end(msg, rdata).filter(|&e| e <= end).ok_or(Malformed)?;
            let r = &msg[alg_end..end];
            if r.len() < 16 {
                return Err(Malformed);
            }
            let time = u64::from_be_bytes([0, 0, r[0], r[1], r[2], r[3], r[4], r[5]]);
            let fudge = u16_at(r, 6).ok_or(Malformed)?;
            let mac_len = u16_at(r, 8).ok_or(Malformed)? as usize;
            let mac = r.get(10..10 + mac_len).ok_or(Malformed)?;
            let rest = &r[10 + mac_len..];
            let original_id = u16_at(rest, 0).ok_or(Malformed)?;
            let error = u16_at(rest, 2).ok_or(Malformed)?;
            let other_len = u16_at(rest, 4).ok_or(Malformed)? as usize;
            let other = rest.get(6..6 + other_len).ok_or(Malformed)?;
            if 6 + other_len != rest.len() {
                return Err(Malformed);
            }
            return Ok(Some(Signed {
                start,
                key: &msg[start..key_end],
                algorithm: &msg[rdata..alg_end],
                time,
                fudge,
                mac,
                original_id,
                error,
                other,
            }));
        }
        p = end;
    }
    Ok(None)
}

/// What a signed request came to.
#[derive(Debug, Clone, Copy)]
pub enum Verified<'k> {
    /// Good: answer, and sign the answer with `key`, chained to `mac`.
    Ok { key: &'k Key, mac: Mac },
    /// NOTAUTH with an unsigned TSIG carrying `error` (BADKEY, BADSIG, BADTRUNC).
    Unsigned { error: u16 },
    /// NOTAUTH, signed with `key`, error BADTIME, our time in Other Data (§5.2.3).
    BadTime { key: &'k Key, mac: Mac },
}

/// The variables after the message in a MAC (RFC 8945 §4.3.3): key name, class, TTL,
/// algorithm, time signed, fudge, error, other data.
fn variables(ctx: &mut hmac::Context, key: &Key, time: u64, fudge: u16, error: u16, other: &[u8]) {
    ctx.update(key.name.wire());
    ctx.update(&CLASS_ANY.to_be_bytes());
    ctx.update(&0u32.to_be_bytes());
    ctx.update(key.algorithm.wire());
    ctx.update(&time.to_be_bytes()[2..]);
    ctx.update(&fudge.to_be_bytes());
    ctx.update(&error.to_be_bytes());
    ctx.update(&(other.len() as u16).to_be_bytes());
    ctx.update(other);
}

/// `msg[..start]` as it was signed: its ID the original one and ARCOUNT less the TSIG.
fn unsigned_header(msg: &[u8], original_id: u16) -> [u8; 12] {
    let mut h = [0u8; 12];
    h.copy_from_slice(&msg[..12]);
    h[0..2].copy_from_slice(&original_id.to_be_bytes());
    let ar = u16::from_be_bytes([h[10], h[11]]).saturating_sub(1);
    h[10..12].copy_from_slice(&ar.to_be_bytes());
    h
}

fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Verifies a signed request (RFC 8945 §5.2) at `now` (seconds since the Unix epoch).
pub fn verify<'k>(keys: &'k [Key], msg: &[u8], s: &Signed<'_>, now: u64) -> Verified<'k> {
    let key = keys.iter().find(|k| {
        k.name.wire().eq_ignore_ascii_case(s.key)
            && k.algorithm.wire().eq_ignore_ascii_case(s.algorithm)
    });
    let Some(key) = key else {
        return Verified::Unsigned { error: BADKEY };
    };
    let full = key.algorithm.mac_len();
    // §5.2.2.1: a truncated MAC must keep at least half and at least 10 bytes; we accept only
    // whole ones, as do most servers, and say so with BADTRUNC.
    if s.mac.len() != full {
        return Verified::Unsigned { error: if s.mac.len() > full { BADSIG } else { BADTRUNC } };
    }
    let mut ctx = hmac::Context::with_key(&key.hmac);
    ctx.update(&unsigned_header(msg, s.original_id));
    ctx.update(&msg[12..s.start]);
    variables(&mut ctx, key, s.time, s.fudge, s.error, s.other);
    if !equal(ctx.sign().as_ref(), s.mac) {
        return Verified::Unsigned { error: BADSIG };
    }
    let mac = Mac::new(s.mac);
    if now.abs_diff(s.time) > s.fudge as u64 {
        return Verified::BadTime { key, mac };
    }
    Verified::Ok { key, mac }
}

/// Checks the answers to a request we signed (RFC 8945 §5.3): the first against the
/// request's MAC with every variable, each later one (a transfer's stream) against the MAC
/// before it with only the timers, any unsigned messages in between folded into the next
/// signed one's MAC. At most 99 unsigned messages may come in a row, and the last message
/// must be signed ([`ReplyCheck::finish`]).
#[derive(Debug)]
pub struct ReplyCheck<'k> {
    key: &'k Key,
    prior: Mac,
    first: bool,
    /// The MAC being built over unsigned messages since the last signed one.
    pending: Option<hmac::Context>,
    unsigned: usize,
}

/// Why an answer to a signed request is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("the answer is not signed")]
    Unsigned,
    #[error("the answer's TSIG record is malformed")]
    Malformed,
    #[error("the answer is signed with another key")]
    OtherKey,
    #[error("the answer's TSIG reports error {0} (16 BADSIG, 17 BADKEY, 18 BADTIME)")]
    Error(u16),
    #[error("the answer's signature does not verify")]
    BadSig,
    #[error("the answer was signed {0} s away from our clock, more than its fudge")]
    BadTime(u64),
    #[error("more than 99 unsigned messages in a row")]
    TooManyUnsigned,
}

impl<'k> ReplyCheck<'k> {
    /// For the answers to a request signed with `key` whose MAC was `request`.
    pub fn new(key: &'k Key, request: Mac) -> ReplyCheck<'k> {
        ReplyCheck { key, prior: request, first: true, pending: None, unsigned: 0 }
    }

    /// Checks the next message at `now` (seconds since the Unix epoch).
    pub fn check(&mut self, msg: &[u8], now: u64) -> Result<(), ReplyError> {
        let s = match find(msg) {
            Ok(Some(s)) => s,
            Ok(None) if self.first => return Err(ReplyError::Unsigned),
            Ok(None) => {
                self.unsigned += 1;
                if self.unsigned > 99 {
                    return Err(ReplyError::TooManyUnsigned);
                }
                let prior = self.prior;
                let key = self.key;
                let ctx = self.pending.get_or_insert_with(|| with_prior(key, prior));
                ctx.update(msg);
                return Ok(());
            }
            Err(Malformed) => return Err(ReplyError::Malformed),
        };
        let key = self.key;
        if !(key.name.wire().eq_ignore_ascii_case(s.key)
            && key.algorithm.wire().eq_ignore_ascii_case(s.algorithm))
        {
            return Err(ReplyError::OtherKey);
        }
        if s.error != 0 {
            return Err(ReplyError::Error(s.error));
        }
        let mut ctx = self.pending.take().unwrap_or_else(|| with_prior(key, self.prior));
        ctx.update(&unsigned_header(msg, s.original_id));
        ctx.update(&msg[12..s.start]);
        if self.first {
            variables(&mut ctx, key, s.time, s.fudge, s.error, s.other);
        } else {
            ctx.update(&s.time.to_be_bytes()[2..]);
            ctx.update(&s.fudge.to_be_bytes());
        }
        if !equal(ctx.sign().as_ref(), s.mac) {
            return Err(ReplyError::BadSig);
        }
        if now.abs_diff(s.time) > s.fudge as u64 {
            return Err(ReplyError::BadTime(now.abs_diff(s.time)));
        }
        self.prior = Mac::new(s.mac);
        self.first = false;
        self.unsigned = 0;
        Ok(())
    }

    /// The stream has ended: its last message must have been signed.
    pub fn finish(&self) -> Result<(), ReplyError> {
        if self.pending.is_some() || self.first { Err(ReplyError::Unsigned) } else { Ok(()) }
    }
}

/// An HMAC context that starts with a prior MAC (its length, then its bytes).
fn with_prior(key: &Key, prior: Mac) -> hmac::Context {
    let mut ctx = hmac::Context::with_key(&key.hmac);
    if prior.len > 0 {
        ctx.update(&(prior.len as u16).to_be_bytes());
        ctx.update(prior.as_bytes());
    }
    ctx
}

/// How a message is signed.
#[derive(Debug, Clone, Copy)]
pub enum Chain {
    /// An answer to a request with MAC `0` (or the first message of a transfer).
    Request(Mac),
    /// A later message of a transfer (§5.3.1): only the timers go into the MAC.
    Next(Mac),
}

/// The TSIG record's length for `key` with a full MAC and `other` bytes of Other Data.
pub fn record_len(key: &Key, other: usize) -> usize {
    key.name.wire().len() + 10 + key.algorithm.wire().len() + 16 + key.algorithm.mac_len() + other
}

/// Signs the message `buf[..len]` with `key`: appends the TSIG record and counts it in
/// ARCOUNT. Returns the new length and the MAC (for the next message of a transfer). `buf`
/// must have room for [`record_len`] more bytes.
pub fn sign(
    buf: &mut [u8],
    len: usize,
    key: &Key,
    chain: Chain,
    time: u64,
    error: u16,
    other: &[u8],
) -> (usize, Mac) {
    let id = u16::from_be_bytes([buf[0], buf[1]]);
    let mut ctx = hmac::Context::with_key(&key.hmac);
    let prior = match chain {
        Chain::Request(m) | Chain::Next(m) => m,
    };
    if prior.len > 0 {
        ctx.update(&(prior.len as u16).to_be_bytes());
        ctx.update(prior.as_bytes());
    }
    ctx.update(&buf[..len]);
    match chain {
        Chain::Request(_) => variables(&mut ctx, key, time, FUDGE, error, other),
        Chain::Next(_) => {
            ctx.update(&time.to_be_bytes()[2..]);
            ctx.update(&FUDGE.to_be_bytes());
        }
    }
    let tag = ctx.sign();
    let mac = Mac::new(tag.as_ref());
    let len = write_record(
        buf,
        len,
        key.name.wire(),
        key.algorithm.wire(),
        time,
        mac.as_bytes(),
        id,
        error,
        other,
    );
    (len, mac)
}

/// An unsigned TSIG record (MAC size 0) for a BADKEY, BADSIG or BADTRUNC answer, naming the
/// request's key and algorithm.
pub fn unsigned(buf: &mut [u8], len: usize, s: &Signed<'_>, error: u16) -> usize {
    let id = u16::from_be_bytes([buf[0], buf[1]]);
    write_record(buf, len, s.key, s.algorithm, s.time, &[], id, error, &[])
}

/// The room an unsigned TSIG for `s` needs.
pub fn unsigned_len(s: &Signed<'_>) -> usize {
    s.key.len() + 10 + s.algorithm.len() + 16
}

#[allow(clippy::too_many_arguments)]
fn write_record(
    buf: &mut [u8],
    mut p: usize,
    key: &[u8],
    algorithm: &[u8],
    time: u64,
    mac: &[u8],
    id: u16,
    error: u16,
    other: &[u8],
) -> usize {
    let mut put = |b: &[u8]| {
        buf[p..p + b.len()].copy_from_slice(b);
        p += b.len();
    };
    put(key);
    put(&T_TSIG.to_be_bytes());
    put(&CLASS_ANY.to_be_bytes());
    put(&0u32.to_be_bytes());
    let rdlen = algorithm.len() + 16 + mac.len() + other.len();
    put(&(rdlen as u16).to_be_bytes());
    put(algorithm);
    put(&time.to_be_bytes()[2..]);
    put(&FUDGE.to_be_bytes());
    put(&(mac.len() as u16).to_be_bytes());
    put(mac);
    put(&id.to_be_bytes());
    put(&error.to_be_bytes());
    put(&(other.len() as u16).to_be_bytes());
    put(other);
    let ar = u16::from_be_bytes([buf[10], buf[11]]) + 1;
    buf[10..12].copy_from_slice(&ar.to_be_bytes());
    p
}

/// The keys of a BIND key file: `key "name" { algorithm hmac-sha256; secret "base64"; };`,
/// any number of them, with `#`, `//` and `/* */` comments. Returns (name, algorithm,
/// base64 secret) triples, or what is wrong.
pub fn parse_bind_keys(text: &str) -> Result<Vec<(String, String, String)>, String> {
    // Tokens: words, quoted strings, and the punctuation `{ } ;`.
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => while chars.next().is_some_and(|c| c != '\n') {},
            '/' => {
                chars.next();
                match chars.next() {
                    Some('/') => while chars.next().is_some_and(|c| c != '\n') {},
                    Some('*') => {
                        let mut prev = ' ';
                        for c in chars.by_ref() {
                            if prev == '*' && c == '/' {
                                break;
                            }
                            prev = c;
                        }
                    }
                    _ => return Err("a stray '/'".into()),
                }
            }
            '{' | '}' | ';' => {
                tokens.push(c.to_string());
                chars.next();
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => s.push(c),
                        None => return Err("an unterminated string".into()),
                    }
                }
                tokens.push(format!("\"{s}"));
            }
            _ => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "{};\"".contains(c) {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                tokens.push(w);
            }
        }
    }
    let unquote = |t: &str| t.strip_prefix('"').unwrap_or(t).to_string();
    let mut keys = Vec::new();
    let mut t = tokens.iter().map(String::as_str).peekable();
    while let Some(word) = t.next() {
        if word != "key" {
            return Err(format!("expected `key`, found {:?}", unquote(word)));
        }
        let name = unquote(t.next().ok_or("a key without a name")?);
        if t.next() != Some("{") {
            return Err(format!("key {name:?}: expected '{{'"));
        }
        let (mut algorithm, mut secret) = (None, None);
        loop {
            match t.next() {
                Some("}") => break,
                Some("algorithm") => algorithm = t.next().map(unquote),
                Some("secret") => secret = t.next().map(unquote),
                Some(other) => return Err(format!("key {name:?}: unknown statement {other:?}")),
                None => return Err(format!("key {name:?}: '{{' is never closed")),
            }
            if t.next() != Some(";") {
                return Err(format!("key {name:?}: expected ';'"));
            }
        }
        if t.peek() == Some(&";") {
            t.next();
        }
        let algorithm = algorithm.ok_or(format!("key {name:?} has no algorithm"))?;
        let secret = secret.ok_or(format!("key {name:?} has no secret"))?;
        keys.push((name, algorithm, secret));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(alg: Algorithm) -> Key {
        Key::new(&Name::parse("xfr.example.", None).unwrap(), alg, b"0123456789abcdef")
    }

    /// A query signed with `sign` (as a client signs: chained to nothing) verifies; changed
    /// by one bit, signed with another key or at another time, it does not.
    #[test]
    fn sign_and_verify_round_trip() {
        for alg in [
            Algorithm::HmacSha1,
            Algorithm::HmacSha256,
            Algorithm::HmacSha384,
            Algorithm::HmacSha512,
        ] {
            let k = key(alg);
            let mut buf = [0u8; 512];
            let q = b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x00\x00\x01\x00\x01";
            buf[..q.len()].copy_from_slice(q);
            let (len, _) =
                sign(&mut buf, q.len(), &k, Chain::Request(Mac::EMPTY), 1_800_000_000, 0, &[]);
            assert_eq!(len, q.len() + record_len(&k, 0));
            let msg = &buf[..len];
            let s = find(msg).unwrap().expect("signed");
            assert_eq!((s.start, s.fudge, s.mac.len()), (q.len(), FUDGE, alg.mac_len()));
            let keys = [k.clone()];
            assert!(
                matches!(verify(&keys, msg, &s, 1_800_000_100), Verified::Ok { .. }),
                "{alg:?}"
            );
            assert!(matches!(verify(&keys, msg, &s, 1_800_000_301), Verified::BadTime { .. }));
            let other = [Key::new(&k.name, alg, b"another secret")];
            assert!(matches!(
                verify(&other, msg, &s, 1_800_000_000),
                Verified::Unsigned { error: BADSIG }
            ));
            let unknown = [Key::new(&Name::parse("other.", None).unwrap(), alg, b"x")];
            assert!(matches!(
                verify(&unknown, msg, &s, 1_800_000_000),
                Verified::Unsigned { error: BADKEY }
            ));
            let mut flipped = msg.to_vec();
            flipped[14] ^= 0x20;
            let s2 = find(&flipped).unwrap().unwrap();
            assert!(matches!(
                verify(&keys, &flipped, &s2, 1_800_000_000),
                Verified::Unsigned { error: BADSIG }
            ));
        }
    }

    #[test]
    fn a_tsig_that_is_not_last_is_formerr() {
        let k = key(Algorithm::HmacSha256);
        let mut buf = [0u8; 512];
        let q = b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01";
        buf[..q.len()].copy_from_slice(q);
        let (len, _) = sign(&mut buf, q.len(), &k, Chain::Request(Mac::EMPTY), 1, 0, &[]);
        // Another record after it: an OPT.
        buf[len..len + 11].copy_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
        buf[11] += 1;
        assert!(find(&buf[..len + 11]).is_err());
        assert!(find(q).unwrap().is_none());
    }

    #[test]
    fn bind_key_files() {
        let text = "# made by tsig-keygen\nkey \"xfr-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0\";\n};\n\
                    /* a second */ key other { algorithm \"hmac-sha512\"; secret \"eHl6\"; }; // end\n";
        assert_eq!(
            parse_bind_keys(text).unwrap(),
            [
                ("xfr-key".into(), "hmac-sha256".into(), "c2VjcmV0".into()),
                ("other".into(), "hmac-sha512".into(), "eHl6".into())
            ]
        );
        for (bad, want) in [
            ("key a { algorithm hmac-sha256; };", "has no secret"),
            ("key a { secret \"x\" }", "expected ';'"),
            ("zone a { };", "expected `key`"),
            ("key a { algorithm x;", "never closed"),
        ] {
            let e = parse_bind_keys(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }
}
