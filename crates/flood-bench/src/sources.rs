//! Spoofed source addresses of the flood: a deterministic, random-looking set of distinct
//! addresses inside the benchmark ranges, cycled.
//!
//! - IPv4: 198.18.0.0/24, 198.18.255.0/24 and 198.19.0.0/16 (66,048 addresses): inside
//!   198.18.0.0/15, never in the lab's own 198.18.k.0/24 subnets (k = 1..=254).
//! - IPv6: 2001:2:0:8000::/49, inside 2001:2::/48 and outside the lab's 2001:2:0:k::/64.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Number of IPv4 addresses available for spoofing.
pub const V4_POOL: u64 = 256 + 256 + 65536;

/// A stride coprime with [`V4_POOL`] (= 2^9 * 3 * 43): `i * STRIDE mod V4_POOL` is a permutation.
const V4_STRIDE: u64 = 40_499;

/// splitmix64: a bijection on u64 with good mixing.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How many distinct sources the flood uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distinct {
    /// `n` sources, cycled: packet `p` comes from source `p mod n`.
    Cycle(u64),
    /// Every packet from a new source (IPv4 sources repeat after the pool is used up).
    Unique,
}

/// The source set: `v6_percent` % of the sources are IPv6, evenly spread.
#[derive(Debug, Clone, Copy)]
pub struct Sources {
    pub distinct: Distinct,
    pub v6_percent: u8,
    pub seed: u64,
}

impl Sources {
    /// Checks that the set is possible: at most [`V4_POOL`] distinct IPv4 sources.
    pub fn new(distinct: Distinct, v6_percent: u8, seed: u64) -> Result<Sources, String> {
        if v6_percent > 100 {
            return Err(format!("IPv6 share {v6_percent}% is over 100%"));
        }
        if let Distinct::Cycle(n) = distinct {
            if n == 0 {
                return Err("the number of distinct sources must be at least 1".into());
            }
            let v4 = n - Self::v6_before(n, v6_percent);
            if v4 > V4_POOL {
                return Err(format!(
                    "{n} distinct sources with {v6_percent}% IPv6 need {v4} IPv4 addresses, but the \
                     spoofing range has {V4_POOL}; raise the IPv6 share or lower the count"
                ));
            }
        }
        Ok(Sources {
            distinct,
            v6_percent,
            seed,
        })
    }

    /// Number of IPv6 sources among source indices `0..i`.
    fn v6_before(i: u64, pct: u8) -> u64 {
        ((i as u128 * u128::from(pct)) / 100) as u64
    }

    /// Source index used by packet number `p`.
    pub fn index_of_packet(&self, p: u64) -> u64 {
        match self.distinct {
            Distinct::Cycle(n) => p % n,
            Distinct::Unique => p,
        }
    }

    /// Whether source index `i` is IPv6.
    pub fn is_v6(&self, i: u64) -> bool {
        Self::v6_before(i + 1, self.v6_percent) > Self::v6_before(i, self.v6_percent)
    }

    /// The address of source index `i`.
    pub fn addr(&self, i: u64) -> IpAddr {
        let v6_ord = Self::v6_before(i, self.v6_percent);
        if self.is_v6(i) {
            let low = mix64(v6_ord ^ self.seed);
            let hi_mix = mix64(v6_ord.wrapping_add(self.seed.rotate_left(17)));
            let g4 = 0x8000 | (hi_mix as u16 & 0x7fff);
            let hi: u64 = (0x2001u64 << 48) | (0x0002u64 << 32) | u64::from(g4);
            IpAddr::V6(Ipv6Addr::from((u128::from(hi) << 64) | u128::from(low)))
        } else {
            let v4_ord = i - v6_ord;
            let k = (v4_ord.wrapping_add(self.seed) % V4_POOL) * V4_STRIDE % V4_POOL;
            IpAddr::V4(v4_pool(k))
        }
    }

    /// The address packet `p` comes from.
    pub fn addr_of_packet(&self, p: u64) -> IpAddr {
        self.addr(self.index_of_packet(p))
    }
}

/// The `k`-th address of the IPv4 pool (`k < V4_POOL`).
fn v4_pool(k: u64) -> Ipv4Addr {
    if k < 256 {
        Ipv4Addr::new(198, 18, 0, k as u8)
    } else if k < 512 {
        Ipv4Addr::new(198, 18, 255, (k - 256) as u8)
    } else {
        let j = k - 512;
        Ipv4Addr::new(198, 19, (j >> 8) as u8, j as u8)
    }
}

/// Whether `a` is one of the addresses the flood may spoof (and never a lab address).
pub fn in_spoof_range(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => {
            let o = v.octets();
            o[0] == 198 && (o[1] == 19 || (o[1] == 18 && (o[2] == 0 || o[2] == 255)))
        }
        IpAddr::V6(v) => {
            let s = v.segments();
            s[0] == 0x2001 && s[1] == 2 && s[2] == 0 && s[3] >= 0x8000
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn whole_v4_pool_is_distinct_and_in_range() {
        let s = Sources::new(Distinct::Cycle(V4_POOL), 0, 7).unwrap();
        let mut seen = HashSet::new();
        for i in 0..V4_POOL {
            let a = s.addr(i);
            assert!(a.is_ipv4());
            assert!(in_spoof_range(a), "{a} out of range");
            assert!(seen.insert(a), "{a} repeated");
        }
        assert!(Sources::new(Distinct::Cycle(V4_POOL + 1), 0, 7).is_err());
        assert!(Sources::new(Distinct::Cycle(0), 0, 7).is_err());
        assert!(Sources::new(Distinct::Cycle(10), 101, 7).is_err());
    }

    #[test]
    fn lab_subnets_are_never_used() {
        for k in 1..=254u8 {
            let lab = IpAddr::V4(Ipv4Addr::new(198, 18, k, 2));
            assert!(!in_spoof_range(lab));
            let lab6 = IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, u16::from(k), 0, 0, 0, 2));
            assert!(!in_spoof_range(lab6));
        }
    }

    #[test]
    fn mix_is_spread_and_distinct() {
        let n = 80_000;
        let s = Sources::new(Distinct::Cycle(n), 30, 1).unwrap();
        let mut seen = HashSet::new();
        let mut v6 = 0;
        for i in 0..n {
            let a = s.addr(i);
            assert!(in_spoof_range(a), "{a}");
            if a.is_ipv6() {
                v6 += 1;
            }
            assert!(seen.insert(a), "{a} repeated at {i}");
        }
        assert_eq!(v6, 24_000);
        // Evenly spread: any 100 consecutive indices hold 30 IPv6 sources.
        assert_eq!((500..600).filter(|&i| s.is_v6(i)).count(), 30);
        // 70,000 IPv4 addresses do not exist.
        assert!(Sources::new(Distinct::Cycle(100_000), 30, 1).is_err());
    }

    #[test]
    fn cycling_repeats_and_unique_does_not() {
        let s = Sources::new(Distinct::Cycle(1000), 50, 3).unwrap();
        assert_eq!(s.addr_of_packet(5), s.addr_of_packet(1005));
        assert_ne!(s.addr_of_packet(5), s.addr_of_packet(6));
        let u = Sources::new(Distinct::Unique, 100, 3).unwrap();
        let mut seen = HashSet::new();
        for p in 0..200_000 {
            assert!(seen.insert(u.addr_of_packet(p)));
        }
    }

    #[test]
    fn seed_changes_the_set() {
        let a = Sources::new(Distinct::Cycle(10), 50, 1).unwrap();
        let b = Sources::new(Distinct::Cycle(10), 50, 2).unwrap();
        assert!((0..10).any(|i| a.addr(i) != b.addr(i)));
    }
}
