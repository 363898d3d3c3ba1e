//! Response rate limiting (RRL) for UDP: an authoritative server must not become a reflection
//! amplifier for traffic spoofed from a victim's address.
//!
//! Responses of one kind to the same client prefix are counted per second; past
//! `responses_per_second`, they are dropped, except every `slip`-th, which is sent truncated
//! (TC=1, no records) so that a genuine client retries over TCP, where spoofing is impossible.
//! What "one kind" is comes from `resolve::RrlKey`, as in BIND's and NSD's RRL: an answer is
//! counted per question and rcode, NXDOMAIN and wildcard answers per zone (so random names
//! share one budget), and errors per client prefix alone. Each UDP worker owns its limiter: a
//! fixed-size table, no lock, no allocation after start. Collisions overwrite (the table
//! forgets, it never grows), which can only make it more lenient.

use std::net::IpAddr;

/// `[server.rrl]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RrlConfig {
    pub responses_per_second: u32,
    /// Every `slip`-th limited response is sent truncated; 0 drops them all.
    pub slip: u32,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

/// The class every error response is counted under together (no rcode is this large).
pub const ERRORS: u16 = u16::MAX;

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send,
    /// Send it truncated instead.
    Slip,
    Drop,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    key: u64,
    second: u32,
    count: u32,
    limited: u32,
}

/// One UDP worker's limiter.
#[derive(Debug)]
pub struct Limiter {
    cfg: RrlConfig,
    table: Box<[Slot]>,
}

const SLOTS: usize = 1 << 14;

impl Limiter {
    pub fn new(cfg: RrlConfig) -> Limiter {
        Limiter { cfg, table: vec![Slot::default(); SLOTS].into_boxed_slice() }
    }

    pub fn config(&self) -> RrlConfig {
        self.cfg
    }

    /// Judges one response. `name` is what it is counted under beside the client prefix (the
    /// question section as sent, or the zone's name; hashed without regard to letter case, so
    /// 0x20 randomisation does not evade the limit); `class` its rcode, or [`ERRORS`] for every
    /// error alike; `second` is a monotonic count of seconds.
    pub fn check(&mut self, client: IpAddr, name: &[u8], class: u16, second: u32) -> Verdict {
        let prefix: u128 = match client {
            IpAddr::V4(a) => {
                let bits = self.cfg.ipv4_prefix.min(32);
                let m = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
                (u32::from(a) & m) as u128
            }
            IpAddr::V6(a) => {
                let bits = self.cfg.ipv6_prefix.min(128);
                let m = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
                (u128::from(a) & m) | (1 << 127)
            }
        };
        let mut h: u64 = 0xcbf2_9ce4_8422_2325
            ^ prefix as u64
            ^ ((prefix >> 64) as u64).rotate_left(17)
            ^ (class as u64) << 48;
        for &b in name {
            h ^= b.to_ascii_lowercase() as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let slot = &mut self.table[(h as usize) & (SLOTS - 1)];
        if slot.key != h || slot.second != second {
            *slot = Slot { key: h, second, count: 0, limited: 0 };
        }
        slot.count += 1;
        if slot.count <= self.cfg.responses_per_second {
            return Verdict::Send;
        }
        slot.limited += 1;
        if self.cfg.slip > 0 && slot.limited.is_multiple_of(self.cfg.slip) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

/// Turns an answer into its truncated form in place: header and question only, TC=1, no
/// records. Returns the new length.
pub fn slip(answer: &mut [u8], question_len: usize) -> usize {
    answer[2] |= 0x02;
    answer[6..12].fill(0);
    12 + question_len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(rate: u32, slip: u32) -> Limiter {
        Limiter::new(RrlConfig {
            responses_per_second: rate,
            slip,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
        })
    }

    #[test]
    fn limits_per_prefix_question_and_second() {
        let mut l = lim(3, 2);
        let a: IpAddr = "198.51.100.7".parse().unwrap();
        let verdicts: Vec<Verdict> =
            (0..7).map(|_| l.check(a, b"\x03www\x00\x00\x01\x00\x01", 0, 10)).collect();
        use Verdict::*;
        assert_eq!(verdicts, [Send, Send, Send, Drop, Slip, Drop, Slip]);
        // Same /24, the question in other letter case: the same budget.
        assert_eq!(
            l.check("198.51.100.200".parse().unwrap(), b"\x03WwW\x00\x00\x01\x00\x01", 0, 10),
            Drop
        );
        // Another prefix, another question, or the next second: fresh.
        assert_eq!(
            l.check("198.51.101.1".parse().unwrap(), b"\x03www\x00\x00\x01\x00\x01", 0, 10),
            Send
        );
        assert_eq!(l.check(a, b"\x03api\x00\x00\x01\x00\x01", 0, 10), Send);
        assert_eq!(l.check(a, b"\x03www\x00\x00\x01\x00\x01", 0, 11), Send);
        // slip = 0 drops everything past the rate.
        let mut l = lim(1, 0);
        assert_eq!(
            (l.check(a, b"q", 3, 1), l.check(a, b"q", 3, 1), l.check(a, b"q", 3, 1)),
            (Send, Drop, Drop)
        );
    }

    #[test]
    fn ipv6_clients_are_counted_per_configured_prefix() {
        use Verdict::*;
        let q = b"\x03www\x00\x00\x01\x00\x01";
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // The default /56: two addresses in one /56 share a budget; the next /56 does not.
        let mut l = lim(1, 0);
        assert_eq!(l.check(ip("2001:db8:0:ab::1"), q, 0, 5), Send);
        assert_eq!(l.check(ip("2001:db8:0:ff:ffff::9"), q, 0, 5), Drop);
        assert_eq!(l.check(ip("2001:db8:0:100::1"), q, 0, 5), Send);
        // A /64 prefix separates what /56 joined.
        let mut l = Limiter::new(RrlConfig {
            responses_per_second: 1,
            slip: 0,
            ipv4_prefix: 24,
            ipv6_prefix: 64,
        });
        assert_eq!(l.check(ip("2001:db8:0:ab::1"), q, 0, 5), Send);
        assert_eq!(l.check(ip("2001:db8:0:ab:ffff::9"), q, 0, 5), Drop);
        assert_eq!(l.check(ip("2001:db8:0:ac::1"), q, 0, 5), Send);
        // An IPv4 prefix and an IPv6 prefix that starts with the same bits are not one client.
        let mut l = lim(1, 0);
        assert_eq!(l.check(ip("198.51.100.1"), q, 0, 5), Send);
        assert_eq!(l.check(ip("c633:6400::"), q, 0, 5), Send);
    }
}
