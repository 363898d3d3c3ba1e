//! DNS cookies (RFC 7873) with the interoperable server cookie of RFC 9018: version 1, three
//! reserved bytes, a timestamp, and SipHash-2-4 over the client cookie, those eight bytes and
//! the client's address, keyed by a secret from the configuration. Every instance of a fleet
//! given the same secret accepts the cookies the others hand out, so a client behind anycast
//! or a load balancer keeps a valid cookie whichever instance answers.
//!
//! A secret is rolled over in three steps (RFC 9018 §5): add the new one to `accept` on every
//! instance; then make it the `secret` and the old one an `accept`; then drop the old one.

use siphasher::sip::SipHasher24;
use std::hash::Hasher;
use std::net::IpAddr;

/// The length of the server cookies Meridian makes.
pub const SERVER_COOKIE_LEN: usize = 16;

/// A cookie is accepted up to an hour after it was made (RFC 9018 §4.3) ...
const MAX_AGE: i32 = 3600;
/// ... and up to five minutes before, for clocks of a fleet that disagree.
const MAX_AHEAD: i32 = 300;

/// The secrets server cookies are made and checked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieKeys {
    /// Makes new cookies, and accepts them.
    pub secret: [u8; 16],
    /// Accepted too: the secret before a rollover, or the next one before it is used.
    pub accept: Box<[[u8; 16]]>,
}

/// The COOKIE option of a query: the client cookie and the server cookie it sent back, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cookie {
    pub client: [u8; 8],
    pub server: [u8; 32],
    pub server_len: u8,
}

impl Cookie {
    /// Reads the option's data. RFC 7873 §5.2.2: a client cookie alone is 8 bytes; with a
    /// server cookie, 16 to 40. Anything else is malformed (FORMERR).
    pub fn parse(data: &[u8]) -> Option<Cookie> {
        if data.len() != 8 && !(16..=40).contains(&data.len()) {
            return None;
        }
        let mut c = Cookie { client: [0; 8], server: [0; 32], server_len: 0 };
        c.client.copy_from_slice(&data[..8]);
        let server = &data[8..];
        c.server[..server.len()].copy_from_slice(server);
        c.server_len = server.len() as u8;
        Some(c)
    }

    pub fn server(&self) -> &[u8] {
        &self.server[..self.server_len as usize]
    }
}

fn hash(secret: &[u8; 16], client: &[u8; 8], head: &[u8; 8], ip: IpAddr) -> [u8; 8] {
    let mut h = SipHasher24::new_with_key(secret);
    h.write(client);
    h.write(head);
    match ip {
        IpAddr::V4(a) => h.write(&a.octets()),
        IpAddr::V6(a) => h.write(&a.octets()),
    }
    // SipHash's output, as the reference implementation writes it.
    h.finish().to_le_bytes()
}

/// Seconds since the Unix epoch, as server cookies count them (RFC 9018 §4.3, wrapping in 2106).
pub fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

/// The server cookie for `client` at `ip`, made at `now` (seconds since the Unix epoch).
pub fn make(secret: &[u8; 16], client: &[u8; 8], ip: IpAddr, now: u32) -> [u8; SERVER_COOKIE_LEN] {
    let mut head = [1, 0, 0, 0, 0, 0, 0, 0];
    head[4..].copy_from_slice(&now.to_be_bytes());
    let mut out = [0; SERVER_COOKIE_LEN];
    out[..8].copy_from_slice(&head);
    out[8..].copy_from_slice(&hash(secret, client, &head, ip));
    out
}

/// Whether `server` is a cookie one of `keys` made for `client` at `ip`, recently enough.
pub fn valid(keys: &CookieKeys, client: &[u8; 8], server: &[u8], ip: IpAddr, now: u32) -> bool {
    let Ok(server) = <&[u8; SERVER_COOKIE_LEN]>::try_from(server) else {
        return false;
    };
    let head: [u8; 8] = server[..8].try_into().expect("8 bytes");
    if head[0] != 1 {
        return false;
    }
    // Serial number arithmetic (RFC 1982): the timestamp wraps in 2106.
    let made = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let age = now.wrapping_sub(made) as i32;
    if !(-MAX_AHEAD..=MAX_AGE).contains(&age) {
        return false;
    }
    std::iter::once(&keys.secret)
        .chain(keys.accept.iter())
        .any(|k| hash(k, client, &head, ip) == server[8..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn keys(secret: &str) -> CookieKeys {
        CookieKeys { secret: hex(secret).try_into().unwrap(), accept: Box::new([]) }
    }

    /// RFC 9018 Appendix A's vectors: the cookies another implementation made are the ones
    /// made here, and are accepted.
    #[test]
    fn rfc9018_vectors() {
        let cases = [
            // A.1: learning a new server cookie.
            (
                "2464c4abcf10c957",
                "198.51.100.100",
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                1559731985,
                "010000005cf79f111f8130c3eee29480",
            ),
            // A.2: the same client, later.
            (
                "2464c4abcf10c957",
                "198.51.100.100",
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                1559734385,
                "010000005cf7a871d4a564a1442aca77",
            ),
            // A.3: another client.
            (
                "fc93fc62807ddb86",
                "203.0.113.203",
                "e5e973e5a6b2a43f48e7dc849e37bfcf",
                1559734700,
                "010000005cf7a9acf73a7810aca2381e",
            ),
            // A.4: IPv6, before and after the server's secret was rolled over.
            (
                "22681ab97d52c298",
                "2001:db8:220:1:59de:d0f4:8769:82b8",
                "dd3bdf9344b678b185a6f5cb60fca715",
                1559741817,
                "010000005cf7c57926556bd0934c72f8",
            ),
            (
                "22681ab97d52c298",
                "2001:db8:220:1:59de:d0f4:8769:82b8",
                "445536bcd2513298075a5d379663c962",
                1559741961,
                "010000005cf7c609a6bb79d16625507a",
            ),
        ];
        for (client, ip, secret, now, want) in cases {
            let client: [u8; 8] = hex(client).try_into().unwrap();
            let ip: IpAddr = ip.parse().unwrap();
            let k = keys(secret);
            let got = make(&k.secret, &client, ip, now);
            assert_eq!(got.to_vec(), hex(want), "{ip} at {now}");
            assert!(valid(&k, &client, &got, ip, now + 10));
        }
    }

    #[test]
    fn what_is_not_accepted() {
        let k = keys("e5e973e5a6b2a43f48e7dc849e37bfcf");
        let client = [1, 2, 3, 4, 5, 6, 7, 8];
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let now = 1_800_000_000;
        let c = make(&k.secret, &client, ip, now);
        assert!(valid(&k, &client, &c, ip, now));
        // Too old, too far ahead, another address, another client cookie, another secret.
        assert!(!valid(&k, &client, &c, ip, now + 3601));
        assert!(valid(&k, &client, &c, ip, now + 3600));
        assert!(!valid(&k, &client, &c, ip, now - 301));
        assert!(valid(&k, &client, &c, ip, now - 300));
        assert!(!valid(&k, &client, &c, "192.0.2.2".parse().unwrap(), now));
        assert!(!valid(&k, &[0; 8], &c, ip, now));
        assert!(!valid(&keys("00112233445566778899aabbccddeeff"), &client, &c, ip, now));
        // A rollover: the old secret is still accepted while it is listed.
        let mut rolled = keys("00112233445566778899aabbccddeeff");
        rolled.accept = Box::new([k.secret]);
        assert!(valid(&rolled, &client, &c, ip, now));
        // Not version 1, or not 16 bytes.
        let mut v2 = c;
        v2[0] = 2;
        assert!(!valid(&k, &client, &v2, ip, now));
        assert!(!valid(&k, &client, &c[..15], ip, now));
        // Malformed option lengths (RFC 7873 §5.2.2).
        for (len, ok) in
            [(7, false), (8, true), (9, false), (15, false), (16, true), (40, true), (41, false)]
        {
            assert_eq!(Cookie::parse(&vec![0; len]).is_some(), ok, "{len}");
        }
    }
}
