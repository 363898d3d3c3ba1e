//! The per-worker PRNG and the stable hashes sticky choices use.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

/// A small, fast PRNG (wyrand), one per worker, passed by `&mut` so that decisions are
/// reproducible from a seed in tests and in `explain`.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Seeded from the clock and a per-call counter, for serving.
    pub fn from_entropy() -> Rng {
        use std::sync::atomic::AtomicU64;
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(mix(t ^ COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)))
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = (self.0 as u128).wrapping_mul((self.0 ^ 0xe703_7ed1_a0b4_28db) as u128);
        ((t >> 64) ^ t) as u64
    }

    /// A uniform draw in `[0, 1)`.
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform draw in `0..n` (n > 0).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// A stable 64-bit hash (FNV-1a then a finaliser): the same on every machine and version, so
/// every instance makes the same sticky choice.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

#[inline]
pub(super) const fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The sticky hash of a client prefix under `seed`, `mix(low ^ mix(high ^ seed))`, given
/// `seed_mixed = mix(seed)`: an IPv4 prefix's high half is 0, so its inner mix is that
/// precomputed one, and the hash costs one mix instead of two. The same value either way.
#[inline]
pub(super) fn prefix_hash(prefix: u128, seed: u64, seed_mixed: u64) -> u64 {
    let high = (prefix >> 64) as u64;
    let inner = if high == 0 { seed_mixed } else { mix(high ^ seed) };
    mix(prefix as u64 ^ inner)
}

/// The client prefix sticky choices hash: /24 for IPv4, /56 for IPv6 (what resolvers send in
/// ECS), and its length.
#[inline]
pub(super) fn sticky_prefix(addr: IpAddr) -> (u128, u8) {
    match addr {
        IpAddr::V4(a) => ((u32::from(a) & 0xffff_ff00) as u128, 24),
        IpAddr::V6(a) => (u128::from(a) & !((1u128 << 72) - 1), 56),
    }
}

/// The uniform draw in `(0, 1]` a sticky hash stands for: never 0, so its logarithm is finite.
/// One hash in 2^53 rounds to 1, where both logarithms below give −0 and the endpoint scores −∞
/// (picked only when every candidate does).
#[inline]
pub(super) fn open_unit(h: u64) -> f64 {
    // Below 2^53, so the signed conversion (one instruction) is exact.
    (((h >> 11) as i64) as f64 + 0.5) / (1u64 << 53) as f64
}

/// The largest relative error of [`neg_ln`] (the bound its test checks, with room to spare):
/// the polynomial's truncation (under 1e-13 of the result) and a few roundings, which matter
/// most where `e·ln 2` and `ln c` nearly cancel (`u` just under 1).
pub(super) const NEG_LN_ERROR: f64 = 1e-12;

/// Intervals of the mantissa `[1, 2)` the logarithm is reduced by.
const LN_BITS: u32 = 7;

/// For interval `j`, its reference point `c` (`1` for the first, `2` for the last, the middle
/// otherwise), as `(c, 1/c, ln c)`. The ends are exact so that the result is exactly 0 at `u = 1`
/// and relatively accurate as `u` nears 1 from below. Computed at compile time.
static LN_TABLE: [(f64, f64, f64); 1 << LN_BITS] = ln_table();

const fn ln_table() -> [(f64, f64, f64); 1 << LN_BITS] {
    let n = 1 << LN_BITS;
    let mut t = [(1.0, 1.0, 0.0); 1 << LN_BITS];
    let mut j = 1;
    while j < n {
        let c = if j == n - 1 { 2.0 } else { 1.0 + (j as f64 + 0.5) / n as f64 };
        // ln c = 2·atanh(s), s = (c−1)/(c+1) ≤ 1/3: forty terms are far past f64's precision.
        let s = (c - 1.0) / (c + 1.0);
        let (mut sum, mut pow, mut k) = (0.0, s, 0);
        while k < 40 {
            sum += pow / (2 * k + 1) as f64;
            pow *= s * s;
            k += 1;
        }
        t[j] = (c, 1.0 / c, if j == n - 1 { std::f64::consts::LN_2 } else { 2.0 * sum });
        j += 1;
    }
    t
}

/// `-ln(u)` for `u` in `(0, 1]`, within a relative error of [`NEG_LN_ERROR`], inline and
/// without libm: a sticky choice computes one per endpoint per query, and on that path it is
/// the latency of the logarithm, not its instruction count, that an answer waits for. With
/// `u = m·2^e` and `m` in interval `j` of `[1, 2)` with reference `c`,
/// `ln u = e·ln 2 + ln c + ln(1 + r)`, `r = (m − c)/c`, `|r| < 2^-7`: a table read, a
/// subtraction that is exact, and a fifth-degree polynomial evaluated in parallel halves.
#[inline]
pub(super) fn neg_ln(u: f64) -> f64 {
    let bits = u.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let m = f64::from_bits((bits & ((1 << 52) - 1)) | (1023 << 52));
    let (c, inv_c, ln_c) = LN_TABLE[((bits >> (52 - LN_BITS)) & ((1 << LN_BITS) - 1)) as usize];
    let r = (m - c) * inv_c;
    let r2 = r * r;
    let a = -0.5 + r * (1.0 / 3.0);
    let b = -0.25 + r * 0.2;
    let ln1p = r + r2 * (a + r2 * b);
    -((e as f64 * std::f64::consts::LN_2 + ln_c) + ln1p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within the stated bound of libm's `ln` (itself within an ulp) across the whole range a
    /// hash can give, and a million hashed draws.
    #[test]
    fn neg_ln_is_within_its_bound() {
        let rel = |u: f64| {
            let (want, got) = (-u.ln(), neg_ln(u));
            assert!(got > 0.0, "neg_ln({u:e}) = {got:e}");
            ((got - want) / want).abs()
        };
        let mut worst: f64 = 0.0;
        // The extremes, every interval's edges (both sides) at two exponents, and the last
        // thousand draws below 1, where the result is smallest.
        let mut edges = vec![open_unit(0), open_unit(u64::MAX - (1 << 11)), 1e-9];
        for j in 0..128 {
            for scale in [0.5, 0.25] {
                let u: f64 = (1.0 + j as f64 / 128.0) * scale;
                edges.extend([u, u.next_up(), u.next_down()]);
            }
        }
        let mut u = 1.0f64;
        for _ in 0..1000 {
            u = u.next_down();
            edges.push(u);
        }
        for u in edges {
            worst = worst.max(rel(u));
        }
        assert_eq!(open_unit(u64::MAX), 1.0);
        assert_eq!(neg_ln(1.0).to_bits(), (-1.0f64.ln()).to_bits());
        for i in 0..1_000_000u64 {
            worst = worst.max(rel(open_unit(mix(i))));
        }
        eprintln!("neg_ln: worst relative error {worst:e}");
        assert!(worst < NEG_LN_ERROR, "worst relative error {worst:e}");
    }

    /// The shortcut is the two-mix hash for every prefix: IPv4, IPv6, and IPv6 with a zero
    /// high half (which takes the shortcut too).
    #[test]
    fn prefix_hash_is_the_two_mix_hash() {
        let seeds = [0u64, 1, 0x6d65_7269_6469_616e, stable_hash(b"p/e")];
        let prefixes: [IpAddr; 4] =
            ["198.51.100.7", "0.0.0.0", "2001:db8:1:2::1", "::ff:1"].map(|a| a.parse().unwrap());
        for seed in seeds {
            for addr in prefixes {
                let (prefix, _) = sticky_prefix(addr);
                let want = mix(prefix as u64 ^ mix((prefix >> 64) as u64 ^ seed));
                assert_eq!(prefix_hash(prefix, seed, mix(seed)), want, "{addr} {seed:#x}");
            }
        }
    }
}
