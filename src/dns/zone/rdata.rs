//! Record data: presentation format → wire format.
//!
//! The types an application zone uses every day (and every type that embeds a domain name,
//! because relative names need the zone's origin) are parsed here; the rest of the types that
//! hickory-proto knows (SSHFP, TLSA, SVCB, HTTPS, NAPTR, ...) go through hickory-proto's parser
//! and encoder; anything else can be written in RFC 3597 generic form (`\# 4 c0000201`).

use super::lex::Token;
use crate::dns::name::{Name, unescape};
use hickory_proto::rr::{RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use std::net::{Ipv4Addr, Ipv6Addr};

pub(crate) const T_A: u16 = 1;
pub(crate) const T_NS: u16 = 2;
pub(crate) const T_CNAME: u16 = 5;
pub(crate) const T_SOA: u16 = 6;
pub(crate) const T_PTR: u16 = 12;
pub(crate) const T_HINFO: u16 = 13;
pub(crate) const T_MX: u16 = 15;
pub(crate) const T_TXT: u16 = 16;
pub(crate) const T_AAAA: u16 = 28;
pub(crate) const T_SRV: u16 = 33;
pub(crate) const T_DNAME: u16 = 39;
pub(crate) const T_OPT: u16 = 41;
pub(crate) const T_DS: u16 = 43;
pub(crate) const T_SPF: u16 = 99;
pub(crate) const T_IXFR: u16 = 251;
pub(crate) const T_AXFR: u16 = 252;
pub(crate) const T_ANY: u16 = 255;
pub(crate) const T_CAA: u16 = 257;

/// Parsed record data: its wire form, and the domain name it points at for the types whose
/// target matters to lookups (CNAME chasing, glue for NS, additional data for MX/SRV).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rdata {
    pub wire: Vec<u8>,
    pub target: Option<Name>,
}

/// An rdata error, optionally at a specific token (otherwise at the record's type).
#[derive(Debug)]
pub(crate) struct RdataError {
    pub token: Option<usize>,
    pub message: String,
}

fn err(token: Option<usize>, message: impl Into<String>) -> RdataError {
    RdataError { token, message: message.into() }
}

/// Parses a record type mnemonic (`A`, `mx`) or RFC 3597 `TYPE65534`.
pub(crate) fn parse_type(text: &str) -> Option<u16> {
    let upper = text.to_ascii_uppercase();
    if let Some(num) = upper.strip_prefix("TYPE") {
        return num.parse().ok();
    }
    match upper.parse::<RecordType>() {
        Ok(RecordType::Unknown(_)) | Err(_) => None,
        Ok(t) => Some(u16::from(t)),
    }
}

/// Presentation name of a type, for messages.
pub fn type_name(code: u16) -> String {
    match RecordType::from(code) {
        RecordType::Unknown(n) => format!("TYPE{n}"),
        t => t.to_string(),
    }
}

/// Parses a TTL: seconds, or BIND's units (`1h30m`, `2d`, `1w`).
pub(crate) fn parse_ttl(text: &str) -> Option<u32> {
    if let Ok(v) = text.parse::<u32>() {
        return Some(v);
    }
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    for c in text.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(num.unwrap_or(0).checked_mul(10)?.checked_add(d as u64)?);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        total = total.checked_add(num.take()?.checked_mul(unit)?)?;
    }
    if num.is_some() {
        return None; // a trailing number without a unit after units ("1h30") is ambiguous
    }
    u32::try_from(total).ok()
}

pub(crate) fn parse(rtype: u16, tokens: &[Token], origin: &Name) -> Result<Rdata, RdataError> {
    if tokens.first().is_some_and(|t| t.text == "\\#" && !t.quoted) {
        return generic(tokens);
    }
    let plain = |wire: Vec<u8>| Ok(Rdata { wire, target: None });
    match rtype {
        T_A => {
            expect_count(tokens, 1)?;
            let ip: Ipv4Addr = tokens[0]
                .text
                .parse()
                .map_err(|_| err(Some(0), format!("invalid IPv4 address {:?}", tokens[0].text)))?;
            plain(ip.octets().to_vec())
        }
        T_AAAA => {
            expect_count(tokens, 1)?;
            let ip: Ipv6Addr = tokens[0]
                .text
                .parse()
                .map_err(|_| err(Some(0), format!("invalid IPv6 address {:?}", tokens[0].text)))?;
            plain(ip.octets().to_vec())
        }
        T_NS | T_CNAME | T_PTR | T_DNAME => {
            expect_count(tokens, 1)?;
            let target = name(tokens, 0, origin)?;
            Ok(Rdata { wire: target.wire().to_vec(), target: Some(target) })
        }
        T_MX => {
            expect_count(tokens, 2)?;
            let mut wire = u16_at(tokens, 0, "preference")?.to_be_bytes().to_vec();
            let target = name(tokens, 1, origin)?;
            wire.extend_from_slice(target.wire());
            Ok(Rdata { wire, target: Some(target) })
        }
        T_SRV => {
            expect_count(tokens, 4)?;
            let mut wire = Vec::with_capacity(6 + 32);
            wire.extend_from_slice(&u16_at(tokens, 0, "priority")?.to_be_bytes());
            wire.extend_from_slice(&u16_at(tokens, 1, "weight")?.to_be_bytes());
            wire.extend_from_slice(&u16_at(tokens, 2, "port")?.to_be_bytes());
            let target = name(tokens, 3, origin)?;
            wire.extend_from_slice(target.wire());
            Ok(Rdata { wire, target: Some(target) })
        }
        T_SOA => {
            expect_count(tokens, 7)?;
            let mut wire = name(tokens, 0, origin)?.wire().to_vec();
            wire.extend_from_slice(name(tokens, 1, origin)?.wire());
            let serial = tokens[2]
                .text
                .parse::<u32>()
                .map_err(|_| err(Some(2), format!("invalid serial {:?}", tokens[2].text)))?;
            wire.extend_from_slice(&serial.to_be_bytes());
            for (i, what) in [(3, "refresh"), (4, "retry"), (5, "expire"), (6, "minimum")] {
                let v = parse_ttl(&tokens[i].text)
                    .ok_or_else(|| err(Some(i), format!("invalid {what} {:?}", tokens[i].text)))?;
                wire.extend_from_slice(&v.to_be_bytes());
            }
            plain(wire)
        }
        T_TXT | T_SPF => {
            if tokens.is_empty() {
                return Err(err(None, "TXT record needs at least one character-string"));
            }
            let mut wire = Vec::new();
            for i in 0..tokens.len() {
                char_string(tokens, i, &mut wire)?;
            }
            plain(wire)
        }
        T_HINFO => {
            expect_count(tokens, 2)?;
            let mut wire = Vec::new();
            char_string(tokens, 0, &mut wire)?;
            char_string(tokens, 1, &mut wire)?;
            plain(wire)
        }
        T_CAA => {
            expect_count(tokens, 3)?;
            let flags = tokens[0]
                .text
                .parse::<u8>()
                .map_err(|_| err(Some(0), format!("invalid CAA flags {:?}", tokens[0].text)))?;
            let tag = &tokens[1].text;
            if tag.is_empty() || tag.len() > 15 || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(err(Some(1), format!("invalid CAA tag {tag:?}: 1-15 letters/digits")));
            }
            let mut wire = vec![flags, tag.len() as u8];
            wire.extend_from_slice(tag.as_bytes());
            wire.extend_from_slice(&decode_text(&tokens[2].text).map_err(|m| err(Some(2), m))?);
            plain(wire)
        }
        T_OPT | T_ANY | T_AXFR | T_IXFR => {
            Err(err(None, format!("{} is not a record type for zone data", type_name(rtype))))
        }
        _ => via_hickory(rtype, tokens),
    }
}

fn expect_count(tokens: &[Token], n: usize) -> Result<(), RdataError> {
    if tokens.len() == n {
        Ok(())
    } else if tokens.len() < n {
        Err(err(None, format!("expected {n} rdata fields, found {}", tokens.len())))
    } else {
        Err(err(Some(n), format!("expected {n} rdata fields, found {}", tokens.len())))
    }
}

fn name(tokens: &[Token], i: usize, origin: &Name) -> Result<Name, RdataError> {
    Name::parse(&tokens[i].text, Some(origin))
        .map_err(|e| err(Some(i), format!("invalid name {:?}: {e}", tokens[i].text)))
}

fn u16_at(tokens: &[Token], i: usize, what: &str) -> Result<u16, RdataError> {
    tokens[i]
        .text
        .parse()
        .map_err(|_| err(Some(i), format!("invalid {what} {:?}: expected 0-65535", tokens[i].text)))
}

/// Decodes `\X` and `\DDD` escapes in a character-string.
fn decode_text(raw: &str) -> Result<Vec<u8>, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let (v, used) =
                unescape(&bytes[i + 1..]).ok_or_else(|| format!("bad escape in {raw:?}"))?;
            out.push(v);
            i += 1 + used;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn char_string(tokens: &[Token], i: usize, wire: &mut Vec<u8>) -> Result<(), RdataError> {
    let data = decode_text(&tokens[i].text).map_err(|m| err(Some(i), m))?;
    if data.len() > 255 {
        return Err(err(
            Some(i),
            format!("character-string is {} bytes; the limit is 255", data.len()),
        )
        .hint_split());
    }
    wire.push(data.len() as u8);
    wire.extend_from_slice(&data);
    Ok(())
}

impl RdataError {
    fn hint_split(mut self) -> Self {
        self.message.push_str(" (split it into several quoted strings)");
        self
    }
}

/// RFC 3597 §5: `\# <length> <hex>...`.
fn generic(tokens: &[Token]) -> Result<Rdata, RdataError> {
    let len: usize = tokens
        .get(1)
        .and_then(|t| t.text.parse().ok())
        .ok_or_else(|| err(Some(1), "\\# must be followed by the rdata length"))?;
    let hex: String = tokens[2..].iter().map(|t| t.text.as_str()).collect();
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(err(Some(2.min(tokens.len() - 1)), "generic rdata must be hex digits"));
    }
    let wire: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0))
        .collect();
    if wire.len() != len {
        return Err(err(Some(1), format!("\\# says {len} bytes but {} follow", wire.len())));
    }
    Ok(Rdata { wire, target: None })
}

fn via_hickory(rtype: u16, tokens: &[Token]) -> Result<Rdata, RdataError> {
    let mut text = String::new();
    for t in tokens {
        if !text.is_empty() {
            text.push(' ');
        }
        if t.quoted {
            text.push('"');
            text.push_str(&t.text);
            text.push('"');
        } else {
            text.push_str(&t.text);
        }
    }
    let rt = RecordType::from(rtype);
    let rdata = RData::try_from_str(rt, &text).map_err(|e| {
        err(
            None,
            format!("invalid {} rdata: {e} (or write it as \\# <len> <hex>)", type_name(rtype)),
        )
    })?;
    let mut wire = Vec::new();
    let mut enc = BinEncoder::new(&mut wire);
    rdata
        .emit(&mut enc)
        .map_err(|e| err(None, format!("cannot encode {} rdata: {e}", type_name(rtype))))?;
    Ok(Rdata { wire, target: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Token> {
        super::super::lex::lex(s).unwrap().remove(0).tokens
    }

    fn wire(rtype: &str, text: &str) -> Result<Vec<u8>, String> {
        let origin = Name::parse("example.com.", None).unwrap();
        parse(parse_type(rtype).unwrap(), &toks(text), &origin)
            .map(|r| r.wire)
            .map_err(|e| e.message)
    }

    #[test]
    fn common_types() {
        assert_eq!(wire("A", "192.0.2.1").unwrap(), [192, 0, 2, 1]);
        assert_eq!(wire("MX", "10 mail").unwrap()[..3], [0, 10, 4]);
        assert_eq!(wire("TXT", "\"a b\" c").unwrap(), b"\x03a b\x01c");
        assert_eq!(wire("TXT", "\"\\065\\\"\"").unwrap(), b"\x02A\"");
        assert_eq!(wire("CAA", "0 issue \"ca.example.net\"").unwrap()[..7], *b"\x00\x05issue");
        assert_eq!(wire("TYPE65280", "\\# 2 abcd").unwrap(), [0xab, 0xcd]);
        assert_eq!(wire("SSHFP", "1 1 0123456789abcdef").unwrap().len(), 2 + 8);
    }

    #[test]
    fn errors_name_the_field() {
        assert!(wire("A", "300.1.1.1").unwrap_err().contains("invalid IPv4"));
        assert!(wire("MX", "10").unwrap_err().contains("expected 2"));
        assert!(wire("TYPE1", "\\# 3 abcd").unwrap_err().contains("says 3 bytes"));
    }

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("3600"), Some(3600));
        assert_eq!(parse_ttl("1h30m"), Some(5400));
        assert_eq!(parse_ttl("1W"), Some(604_800));
        assert_eq!(parse_ttl("1h30"), None);
        assert_eq!(parse_ttl("x"), None);
    }
}
