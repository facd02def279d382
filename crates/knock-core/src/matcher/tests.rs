use super::*;
use crate::proto::Protocol::{Tcp, Udp};
use crate::tcpflags::{bits, parse_flag_rule};

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));

fn tcp(port: u16) -> Knock {
    Knock::new(port, Tcp)
}

fn udp(port: u16) -> Knock {
    Knock::new(port, Udp)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn src(n: u32) -> IpAddr {
    // 198.18.0.0/15
    IpAddr::V4(Ipv4Addr::from(0xC612_0000u32 | (n & 0x1_FFFF)))
}

fn ev(now_ms: u64, src: IpAddr, knock: Knock) -> Event {
    Event {
        now_ms,
        unix_secs: 0,
        src,
        dst: LOCAL,
        dst_is_local: true,
        knock,
        tcp_flags: bits::SYN,
    }
}

fn fixed(knocks: &[Knock], timeout_ms: u64) -> DoorRule {
    DoorRule::new(Pattern::Fixed(knocks.to_vec()), timeout_ms)
}

struct H {
    m: Matcher,
}

impl H {
    fn new(doors: Vec<DoorRule>, cap: usize) -> H {
        H {
            m: Matcher::new(doors, cap).unwrap(),
        }
    }

    fn event(&mut self, e: Event) -> Vec<Outcome> {
        let mut out = Vec::new();
        self.m.process(&e, &mut out);
        self.m.check();
        out
    }

    fn knock(&mut self, now: u64, s: IpAddr, k: Knock) -> Vec<Outcome> {
        self.event(ev(now, s, k))
    }

    fn expire(&mut self, now: u64) -> Vec<Outcome> {
        let mut out = Vec::new();
        self.m.expire(now, &mut out);
        self.m.check();
        out
    }
}

fn stage(src: IpAddr, door: usize, stage: u8) -> Outcome {
    Outcome::Stage { src, door, stage }
}

fn open(src: IpAddr, door: usize) -> Outcome {
    Outcome::Open { src, door }
}

fn opened(out: &[Outcome]) -> bool {
    out.iter().any(|o| matches!(o, Outcome::Open { .. }))
}

const SEQ3: [Knock; 3] = [
    Knock::new(7000, Tcp),
    Knock::new(8000, Tcp),
    Knock::new(9000, Tcp),
];

#[test]
fn opens_in_order_with_stages() {
    let mut h = H::new(vec![fixed(&SEQ3, 25_000)], 16);
    let a = src(1);
    assert_eq!(h.knock(0, a, tcp(7000)), vec![stage(a, 0, 1)]);
    assert_eq!(h.m.stats().tracked, 1);
    assert_eq!(h.knock(10, a, tcp(8000)), vec![stage(a, 0, 2)]);
    assert_eq!(h.knock(20, a, tcp(9000)), vec![open(a, 0)]);
    let st = h.m.stats();
    assert_eq!(st.tracked, 0);
    assert_eq!(st.completions, 1);
    assert_eq!(st.packets, 3);
    // A fresh attempt works again afterwards.
    assert_eq!(h.knock(30, a, tcp(9000)), vec![]);
    assert_eq!(h.knock(40, a, tcp(7000)), vec![stage(a, 0, 1)]);
}

#[test]
fn wrong_order_never_opens() {
    let mut h = H::new(vec![fixed(&SEQ3, 25_000)], 16);
    let a = src(1);
    for (i, order) in [[8000, 7000, 9000], [7000, 9000, 8000], [9000, 8000, 7000]]
        .iter()
        .enumerate()
    {
        let mut all = Vec::new();
        for (j, &p) in order.iter().enumerate() {
            all.extend(h.knock((i * 10 + j) as u64, a, tcp(p)));
        }
        assert!(!opened(&all), "{order:?}: {all:?}");
    }
    // 7000 then 9000: the 9000 resets (no outcome), then 8000 is not a first knock.
    let b = src(2);
    assert_eq!(h.knock(100, b, tcp(7000)), vec![stage(b, 0, 1)]);
    assert_eq!(h.knock(101, b, tcp(9000)), vec![]);
    assert_eq!(h.knock(102, b, tcp(8000)), vec![]);
    assert_eq!(h.m.stats().completions, 0);
}

#[test]
fn wrong_knock_resets_and_counts_as_first_knock() {
    let mut h = H::new(vec![fixed(&SEQ3, 25_000)], 16);
    let a = src(1);
    h.knock(0, a, tcp(7000));
    h.knock(1, a, tcp(8000));
    // Expected 9000; 7000 is neither next nor a repeat of 8000: reset, then stage 1 again.
    assert_eq!(h.knock(2, a, tcp(7000)), vec![stage(a, 0, 1)]);
    assert_eq!(h.knock(3, a, tcp(8000)), vec![stage(a, 0, 2)]);
    assert_eq!(h.knock(4, a, tcp(9000)), vec![open(a, 0)]);
}

#[test]
fn knock_on_another_doors_port_resets() {
    let other = [tcp(5555)];
    let mut h = H::new(vec![fixed(&SEQ3, 25_000), fixed(&other, 1000)], 16);
    let a = src(1);
    h.knock(0, a, tcp(7000));
    h.knock(1, a, tcp(8000));
    assert_eq!(h.knock(2, a, tcp(5555)), vec![open(a, 1)]);
    assert_eq!(h.m.stats().tracked, 0);
    assert_eq!(h.knock(3, a, tcp(9000)), vec![]);
}

#[test]
fn repeat_of_last_knock_does_not_reset() {
    let mut h = H::new(vec![fixed(&SEQ3, 25_000)], 16);
    let a = src(1);
    let mut all = Vec::new();
    for p in [7000, 7000, 7000, 8000, 8000, 9000] {
        all.extend(h.knock(0, a, tcp(p)));
    }
    assert_eq!(all, vec![stage(a, 0, 1), stage(a, 0, 2), open(a, 0)]);
    // A repeat of an earlier (not the last) knock does reset.
    h.knock(1, a, tcp(7000));
    h.knock(1, a, tcp(8000));
    assert_eq!(h.knock(1, a, tcp(7000)), vec![stage(a, 0, 1)]);
}

#[test]
fn repeated_knocks_inside_the_sequence() {
    let seq = [tcp(7000), tcp(7000), tcp(8000), tcp(7000)];
    let mut h = H::new(vec![fixed(&seq, 25_000)], 16);
    let a = src(1);
    assert_eq!(h.knock(0, a, tcp(7000)), vec![stage(a, 0, 1)]);
    assert_eq!(h.knock(0, a, tcp(7000)), vec![stage(a, 0, 2)]);
    assert_eq!(h.knock(0, a, tcp(7000)), vec![]); // repeat, expected 8000
    assert_eq!(h.knock(0, a, tcp(8000)), vec![stage(a, 0, 3)]);
    assert_eq!(h.knock(0, a, tcp(8000)), vec![]); // repeat
    assert_eq!(h.knock(0, a, tcp(7000)), vec![open(a, 0)]);
}

#[test]
fn unwatched_ports_are_ignored() {
    let mut h = H::new(vec![fixed(&SEQ3, 25_000)], 16);
    let a = src(1);
    h.knock(0, a, tcp(7000));
    assert_eq!(h.knock(1, a, tcp(22)), vec![]);
    assert_eq!(h.knock(1, a, udp(8000)), vec![]); // udp/8000 is not watched
    h.knock(2, a, tcp(8000));
    assert_eq!(h.knock(3, a, tcp(9000)), vec![open(a, 0)]);
    assert_eq!(h.m.stats().unwatched, 2);
    assert!(h.m.watches(tcp(8000)));
    assert!(!h.m.watches(udp(8000)));
    assert!(!h.m.watches(tcp(22)));
}

#[test]
fn timeout_is_exact_to_the_millisecond() {
    let mut h = H::new(vec![fixed(&SEQ3, 1000)], 16);
    let a = src(1);
    // Last knock exactly timeout_ms after the first: counts.
    h.knock(10_000, a, tcp(7000));
    h.knock(10_500, a, tcp(8000));
    assert_eq!(h.knock(11_000, a, tcp(9000)), vec![open(a, 0)]);
    // One millisecond later: the attempt is dropped, then 9000 is evaluated fresh (nothing).
    h.knock(20_000, a, tcp(7000));
    h.knock(20_500, a, tcp(8000));
    assert_eq!(
        h.knock(21_001, a, tcp(9000)),
        vec![Outcome::Timeout {
            src: a,
            door: 0,
            stage: 2
        }]
    );
    assert_eq!(h.m.stats().tracked, 0);
    assert_eq!(h.m.stats().timeouts, 1);
    // An expired attempt found on a first knock restarts from it.
    h.knock(30_000, a, tcp(7000));
    assert_eq!(
        h.knock(31_001, a, tcp(7000)),
        vec![
            Outcome::Timeout {
                src: a,
                door: 0,
                stage: 1
            },
            stage(a, 0, 1)
        ]
    );
    assert_eq!(h.knock(32_001, a, tcp(8000)), vec![stage(a, 0, 2)]);
    assert_eq!(h.knock(32_001, a, tcp(9000)), vec![open(a, 0)]);
}

#[test]
fn timeout_runs_from_the_first_knock() {
    let mut h = H::new(vec![fixed(&SEQ3, 1000)], 16);
    let a = src(1);
    h.knock(0, a, tcp(7000));
    h.knock(999, a, tcp(8000)); // progress does not extend the deadline
    assert!(matches!(
        h.knock(1001, a, tcp(9000))[..],
        [Outcome::Timeout { stage: 2, .. }]
    ));
}

#[test]
fn expiry_by_timer() {
    let mut h = H::new(
        vec![fixed(&SEQ3, 1000), fixed(&[tcp(7000), tcp(1)], 50)],
        16,
    );
    let a = src(1);
    let b = ip("2001:2::7");
    assert_eq!(h.m.next_deadline(), None);
    h.knock(100, a, tcp(7000)); // door 0 deadline 1101, door 1 deadline 151
    h.knock(120, b, tcp(7000)); // door 0 deadline 1121, door 1 deadline 171
    assert_eq!(h.m.stats().tracked, 4);
    assert_eq!(h.m.next_deadline(), Some(151));
    assert_eq!(h.expire(150), vec![]);
    assert_eq!(
        h.expire(151),
        vec![Outcome::Timeout {
            src: a,
            door: 1,
            stage: 1
        }]
    );
    assert_eq!(h.m.next_deadline(), Some(171));
    assert_eq!(
        h.expire(5000),
        vec![
            Outcome::Timeout {
                src: b,
                door: 1,
                stage: 1
            },
            Outcome::Timeout {
                src: a,
                door: 0,
                stage: 1
            },
            Outcome::Timeout {
                src: b,
                door: 0,
                stage: 1
            },
        ]
    );
    assert_eq!(h.m.next_deadline(), None);
    assert_eq!(h.m.stats().tracked, 0);
    assert_eq!(h.m.stats().timeouts, 4);
}

#[test]
fn clock_never_goes_backwards() {
    let mut h = H::new(vec![fixed(&SEQ3, 1000)], 16);
    let a = src(1);
    h.knock(5000, a, tcp(7000));
    // A stale timestamp is treated as "now", so the attempt is still fine...
    assert_eq!(h.knock(10, a, tcp(8000)), vec![stage(a, 0, 2)]);
    // ...and expiry still uses the latest time seen.
    assert_eq!(h.expire(0), vec![]);
    assert_eq!(h.expire(6001).len(), 1);
}

#[test]
fn attempts_left_for_weeks_cannot_come_back() {
    // Without expire() calls for 2^32 ms, the next packet still sees the attempt as expired
    // (the bucket keeps 32 bits of the deadline; stale attempts are dropped first).
    let mut h = H::new(vec![fixed(&SEQ3, 1000)], 16);
    let a = src(1);
    h.knock(0, a, tcp(7000));
    assert_eq!(
        h.knock((1 << 32) + 500, a, tcp(8000)),
        vec![Outcome::Timeout {
            src: a,
            door: 0,
            stage: 1
        }]
    );
    h.knock(1 << 40, a, tcp(7000));
    // Even a packet to an unwatched port from someone else clears it.
    assert_eq!(
        h.knock((1 << 40) + (1 << 31), src(2), tcp(22)),
        vec![Outcome::Timeout {
            src: a,
            door: 0,
            stage: 1
        }]
    );
    assert_eq!(h.m.stats().tracked, 0);
}

#[test]
fn tcp_flags_mismatch_is_ignored_not_reset() {
    let mut rule = fixed(&SEQ3, 25_000);
    rule.flags = parse_flag_rule("syn,!ack").unwrap();
    let mut h = H::new(vec![rule], 16);
    let a = src(1);
    let with = |now, k, f| Event {
        tcp_flags: f,
        ..ev(now, a, k)
    };
    assert_eq!(h.event(with(0, tcp(7000), bits::SYN)), vec![stage(a, 0, 1)]);
    // SYN+ACK to a wrong port: ignored by this door, no reset.
    assert_eq!(h.event(with(1, tcp(9000), bits::SYN | bits::ACK)), vec![]);
    // ACK to the right port: ignored too, no advance.
    assert_eq!(h.event(with(2, tcp(8000), bits::ACK)), vec![]);
    assert_eq!(h.event(with(3, tcp(8000), bits::SYN)), vec![stage(a, 0, 2)]);
    assert_eq!(
        h.event(with(4, tcp(9000), bits::SYN | bits::PSH)),
        vec![open(a, 0)]
    );
    // A first knock with bad flags starts nothing.
    assert_eq!(h.event(with(5, tcp(7000), bits::RST)), vec![]);
    assert_eq!(h.m.stats().tracked, 0);
}

#[test]
fn udp_ignores_flags() {
    let mut rule = fixed(&[udp(7000), udp(8000)], 25_000);
    rule.flags = parse_flag_rule("syn").unwrap();
    let mut h = H::new(vec![rule], 16);
    let a = src(1);
    let e = |now, k| Event {
        tcp_flags: 0,
        ..ev(now, a, k)
    };
    assert_eq!(h.event(e(0, udp(7000))), vec![stage(a, 0, 1)]);
    assert_eq!(h.event(e(1, udp(8000))), vec![open(a, 0)]);
}

#[test]
fn mixed_tcp_udp() {
    let seq = [tcp(7000), udp(7000), udp(8000), tcp(8000)];
    let mut h = H::new(vec![fixed(&seq, 25_000)], 16);
    let a = src(1);
    let mut all = Vec::new();
    for k in seq {
        all.extend(h.knock(0, a, k));
    }
    assert_eq!(
        all,
        vec![stage(a, 0, 1), stage(a, 0, 2), stage(a, 0, 3), open(a, 0)]
    );
    // Right ports, wrong protocol: no.
    let b = src(2);
    let mut all = Vec::new();
    for k in [tcp(7000), tcp(7000), udp(8000), tcp(8000)] {
        all.extend(h.knock(1, b, k));
    }
    assert!(!opened(&all), "{all:?}");
    assert_eq!(h.knock(2, b, udp(7000)), vec![]); // was reset by udp/8000, not a first knock
}

#[test]
fn single_knock_door_opens_on_first_knock() {
    let mut h = H::new(vec![fixed(&[udp(4242)], 25_000)], 16);
    let a = src(1);
    assert_eq!(h.knock(0, a, udp(4242)), vec![open(a, 0)]);
    assert_eq!(h.knock(0, a, udp(4242)), vec![open(a, 0)]);
    assert_eq!(h.m.stats().tracked, 0);
    assert_eq!(h.m.stats().completions, 2);
}

#[test]
fn target_and_local_destination() {
    let mut targeted = fixed(&[tcp(7000), tcp(8000)], 25_000);
    targeted.target = Some(ip("198.18.5.5"));
    let local = fixed(&[tcp(7000), tcp(9000)], 25_000);
    let mut h = H::new(vec![targeted, local], 16);
    let a = src(1);
    let to = |now, dst: &str, is_local, k| Event {
        dst: ip(dst),
        dst_is_local: is_local,
        ..ev(now, a, k)
    };
    // Local address: only the door without a target counts it.
    assert_eq!(
        h.event(to(0, "198.18.0.1", true, tcp(7000))),
        vec![stage(a, 1, 1)]
    );
    // Routed packet to the target (not local): only the targeted door counts it.
    assert_eq!(
        h.event(to(1, "198.18.5.5", false, tcp(7000))),
        vec![stage(a, 0, 1)]
    );
    // Neither local nor the target: nobody.
    assert_eq!(h.event(to(2, "198.18.9.9", false, tcp(9000))), vec![]);
    assert_eq!(
        h.event(to(3, "198.18.5.5", false, tcp(8000))),
        vec![open(a, 0)]
    );
    assert_eq!(
        h.event(to(4, "198.18.0.1", true, tcp(9000))),
        vec![open(a, 1)]
    );
}

#[test]
fn from_list_restricts_sources() {
    let mut rule = fixed(&[tcp(7000), tcp(8000)], 25_000);
    rule.from = vec![
        "198.18.1.0/24".parse().unwrap(),
        "2001:2::/48".parse().unwrap(),
    ];
    let mut h = H::new(vec![rule], 16);
    for s in ["198.18.2.1", "2001:3::1"] {
        let x = ip(s);
        assert_eq!(h.knock(0, x, tcp(7000)), vec![]);
        assert_eq!(h.knock(0, x, tcp(8000)), vec![]);
    }
    for s in ["198.18.1.9", "2001:2:0:1::9"] {
        let x = ip(s);
        h.knock(0, x, tcp(7000));
        assert_eq!(h.knock(0, x, tcp(8000)), vec![open(x, 0)]);
    }
}

#[test]
fn shared_first_ports_keep_separate_progress() {
    let a_door = fixed(&[tcp(7000), tcp(8000), tcp(9000)], 25_000);
    let b_door = fixed(&[tcp(7000), tcp(8000), tcp(10000)], 25_000);
    let c_door = fixed(&[tcp(7000), tcp(6000)], 25_000);
    let mut h = H::new(vec![a_door, b_door, c_door], 16);
    let s = src(1);
    assert_eq!(
        h.knock(0, s, tcp(7000)),
        vec![stage(s, 0, 1), stage(s, 1, 1), stage(s, 2, 1)]
    );
    // 8000 advances A and B; C expected 6000 so it resets (8000 is not its first knock).
    assert_eq!(
        h.knock(1, s, tcp(8000)),
        vec![stage(s, 0, 2), stage(s, 1, 2)]
    );
    assert_eq!(h.m.stats().tracked, 2);
    assert_eq!(h.knock(2, s, tcp(10000)), vec![open(s, 1)]);
    assert_eq!(h.m.stats().tracked, 0);
}

#[test]
fn sources_are_independent_v4_and_v6() {
    let mut h = H::new(vec![fixed(&SEQ3, 25_000)], 16);
    let a = src(1);
    let b = src(2);
    let c = ip("2001:2::1");
    // v4 198.18.0.1 vs. a v6 address with the same low 32 bits.
    let d = IpAddr::V6(Ipv6Addr::from(u128::from(0xC612_0001u32)));
    h.knock(0, a, tcp(7000));
    h.knock(0, b, tcp(7000));
    h.knock(0, c, tcp(7000));
    assert_eq!(h.knock(1, d, tcp(8000)), vec![]);
    h.knock(1, a, tcp(8000));
    h.knock(1, c, tcp(8000));
    assert_eq!(h.knock(2, b, tcp(9000)), vec![]); // b was at stage 1: reset
    assert_eq!(h.knock(2, c, tcp(9000)), vec![open(c, 0)]);
    assert_eq!(h.knock(2, a, tcp(9000)), vec![open(a, 0)]);
}

#[test]
fn full_table_evicts_the_oldest_attempt() {
    let mut h = H::new(vec![fixed(&SEQ3, 25_000)], 3);
    for i in 1..=4u32 {
        h.knock(u64::from(i), src(i), tcp(7000));
    }
    let st = h.m.stats();
    assert_eq!((st.tracked, st.capacity, st.evictions), (3, 3, 1));
    // src(1) was the oldest and is gone; src(2) is still at stage 1.
    assert_eq!(h.knock(10, src(1), tcp(8000)), vec![]);
    assert_eq!(h.knock(10, src(2), tcp(8000)), vec![stage(src(2), 0, 2)]);
}

#[test]
fn eviction_is_by_first_knock_across_timeouts() {
    let long = fixed(&[tcp(1000), tcp(1001)], 60_000);
    let short = fixed(&[tcp(2000), tcp(2001)], 100);
    let mut h = H::new(vec![long, short], 2);
    h.knock(1, src(1), tcp(1000)); // first knock at 1, deadline 60001
    h.knock(2, src(2), tcp(2000)); // first knock at 2, deadline 103
    h.knock(3, src(3), tcp(2000)); // evicts src(1): oldest first knock, not earliest deadline
    assert_eq!(h.m.stats().evictions, 1);
    assert_eq!(h.knock(4, src(1), tcp(1001)), vec![]);
    assert_eq!(h.knock(4, src(2), tcp(2001)), vec![open(src(2), 1)]);
    assert_eq!(h.knock(4, src(3), tcp(2001)), vec![open(src(3), 1)]);
}

#[test]
fn restarted_attempt_moves_to_the_back() {
    let mut h = H::new(vec![fixed(&SEQ3, 25_000)], 2);
    h.knock(1, src(1), tcp(7000));
    h.knock(2, src(2), tcp(7000));
    h.knock(3, src(1), tcp(9000)); // reset...
    h.knock(3, src(1), tcp(7000)); // ...and a new attempt at 3: src(2) is now the oldest
    h.knock(4, src(3), tcp(7000));
    assert_eq!(h.knock(5, src(2), tcp(8000)), vec![]);
    assert_eq!(h.knock(5, src(1), tcp(8000)), vec![stage(src(1), 0, 2)]);
}

#[test]
fn set_pattern_replaces_and_forgets() {
    let mut h = H::new(
        vec![fixed(&SEQ3, 25_000), fixed(&[tcp(7000), tcp(1)], 25_000)],
        16,
    );
    let a = src(1);
    h.knock(0, a, tcp(7000));
    h.knock(0, a, tcp(8000));
    assert_eq!(h.m.stats().tracked, 2 - 1); // door 1 was reset by 8000
    h.m.set_pattern(0, Pattern::Fixed(vec![udp(1000), udp(2000)]))
        .unwrap();
    h.m.check();
    assert_eq!(h.m.stats().tracked, 0);
    assert!(!h.m.watches(tcp(8000)));
    assert!(!h.m.watches(tcp(9000)));
    assert!(h.m.watches(tcp(7000))); // still door 1's
    assert!(h.m.watches(udp(2000)));
    assert_eq!(h.knock(1, a, tcp(9000)), vec![]);
    h.knock(2, a, udp(1000));
    assert_eq!(h.knock(3, a, udp(2000)), vec![open(a, 0)]);
    // Other doors' attempts survive.
    h.knock(4, a, tcp(7000));
    h.m.set_pattern(0, Pattern::Disabled).unwrap();
    assert_eq!(h.m.stats().tracked, 1);
    assert!(!h.m.watches(udp(1000)));
    assert_eq!(h.knock(5, a, udp(1000)), vec![]);
    assert_eq!(h.knock(6, a, tcp(1)), vec![open(a, 1)]);
    assert_eq!(
        h.m.set_pattern(2, Pattern::Disabled),
        Err(MatcherError::NoSuchDoor { door: 2, count: 2 })
    );
    assert_eq!(
        h.m.set_pattern(0, Pattern::Fixed(vec![])),
        Err(MatcherError::EmptySequence { door: 0 })
    );
}

#[test]
fn disabled_door_watches_nothing() {
    let mut h = H::new(vec![DoorRule::new(Pattern::Disabled, 1000)], 4);
    assert!(h.m.watched().is_empty());
    assert_eq!(h.knock(0, src(1), tcp(7000)), vec![]);
}

#[test]
fn construction_errors() {
    let long: Vec<Knock> = (0..33).map(tcp).collect();
    assert_eq!(
        Matcher::new(vec![fixed(&SEQ3, 1), fixed(&long, 1)], 8).err(),
        Some(MatcherError::TooLong { door: 1, len: 33 })
    );
    assert!(Matcher::new(vec![fixed(&long[..32], 1)], 8).is_ok());
    assert_eq!(
        Matcher::new(vec![fixed(&[], 1)], 8).err(),
        Some(MatcherError::EmptySequence { door: 0 })
    );
    assert_eq!(
        Matcher::new(vec![fixed(&SEQ3, 1)], 0).err(),
        Some(MatcherError::Capacity(0))
    );
    assert_eq!(
        Matcher::new(vec![fixed(&SEQ3, MAX_TIMEOUT_MS + 1)], 8).err(),
        Some(MatcherError::Timeout {
            door: 0,
            timeout_ms: MAX_TIMEOUT_MS + 1
        })
    );
    assert!(Matcher::new(vec![fixed(&SEQ3, MAX_TIMEOUT_MS)], 8).is_ok());
    let bad = RotatingSpec {
        secret: vec![1],
        length: 5,
        lo: 100,
        hi: 102,
        step: 30,
        proto: Tcp,
    };
    let err = Matcher::new(vec![DoorRule::new(Pattern::Rotating(bad), 1)], 8).err();
    assert!(
        matches!(
            err,
            Some(MatcherError::Rotating {
                door: 0,
                source: RotateError::RangeTooSmall { .. }
            })
        ),
        "{err:?}"
    );
    assert!(err.unwrap().to_string().starts_with("door 0: "));
}

#[test]
fn watched_lists_ports_and_ranges() {
    let spec = |lo, hi, proto| RotatingSpec {
        secret: vec![7; 16],
        length: 3,
        lo,
        hi,
        step: 30,
        proto,
    };
    let doors = vec![
        fixed(&[tcp(9000), udp(53), tcp(7000), tcp(9000)], 1),
        fixed(&[tcp(7000), tcp(20005)], 1),
        DoorRule::new(Pattern::Rotating(spec(20000, 20010, Tcp)), 1),
        DoorRule::new(Pattern::Rotating(spec(20011, 20020, Tcp)), 1),
        DoorRule::new(Pattern::Rotating(spec(30000, 30010, Udp)), 1),
    ];
    let m = Matcher::new(doors, 8).unwrap();
    assert_eq!(
        m.watched(),
        vec![
            Watch::Range {
                proto: Tcp,
                lo: 20000,
                hi: 20020
            },
            Watch::Range {
                proto: Udp,
                lo: 30000,
                hi: 30010
            },
            Watch::Port(udp(53)),
            Watch::Port(tcp(7000)),
            Watch::Port(tcp(9000)),
        ]
    );
    assert!(m.watches(tcp(20000)) && m.watches(tcp(20020)) && m.watches(udp(30005)));
    assert!(!m.watches(tcp(19999)) && !m.watches(tcp(20021)) && !m.watches(tcp(30005)));
}

#[test]
fn two_million_distinct_sources_stay_bounded() {
    let mut m = Matcher::new(
        vec![fixed(&SEQ3, 25_000), fixed(&[tcp(7000), udp(1)], 10)],
        1000,
    )
    .unwrap();
    let bytes = m.stats().table_bytes;
    assert!(bytes > 0);
    let mut out = Vec::with_capacity(16);
    for i in 0..2_000_000u64 {
        let s = if i % 2 == 0 {
            IpAddr::V4(Ipv4Addr::from(i as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(0x2001_0002_u128 << 96 | u128::from(i)))
        };
        let k = if i % 3 == 0 { tcp(8000) } else { tcp(7000) };
        out.clear();
        m.process(&ev(i / 100, s, k), &mut out);
        let st = m.stats();
        assert!(st.tracked <= 1000);
        assert_eq!(st.table_bytes, bytes);
        if i % 250_000 == 0 {
            m.check();
        }
    }
    m.check();
    let st = m.stats();
    assert_eq!(st.tracked, 1000);
    assert!(st.evictions > 1_000_000, "{st:?}");
    assert_eq!(out.capacity(), 16);
}

// ---------------------------------------------------------------------------------------------
// Rotating doors
// ---------------------------------------------------------------------------------------------

const UNIX: u64 = 1_795_646_666;

fn rot_spec() -> RotatingSpec {
    RotatingSpec {
        secret: (0u8..32).collect(),
        length: 4,
        lo: 10000,
        hi: 60000,
        step: 30,
        proto: Tcp,
    }
}

fn rot_matcher(cap: usize) -> H {
    H::new(
        vec![DoorRule::new(Pattern::Rotating(rot_spec()), 25_000)],
        cap,
    )
}

fn rev(now_ms: u64, unix: u64, s: IpAddr, port: u16) -> Event {
    Event {
        unix_secs: unix,
        ..ev(now_ms, s, tcp(port))
    }
}

fn send(h: &mut H, now_ms: u64, unix: u64, s: IpAddr, ports: &[u16]) -> Vec<Outcome> {
    let mut all = Vec::new();
    for &p in ports {
        all.extend(h.event(rev(now_ms, unix, s, p)));
    }
    all
}

fn seq_of(t: u64) -> Vec<u16> {
    rotate::sequence_at(&rot_spec(), t).unwrap()
}

#[test]
fn rotating_accepts_previous_current_and_next_step() {
    let t = rotate::current_step(UNIX, 30);
    let mut h = rot_matcher(64);
    let a = src(1);
    for (i, step) in [t - 1, t, t + 1].into_iter().enumerate() {
        let all = send(&mut h, i as u64 * 10, UNIX, a, &seq_of(step));
        assert_eq!(
            all,
            vec![stage(a, 0, 1), stage(a, 0, 2), stage(a, 0, 3), open(a, 0)],
            "step {step}"
        );
    }
    assert_eq!(h.m.stats().completions, 3);
}

#[test]
fn rotating_refuses_steps_two_away() {
    let t = rotate::current_step(UNIX, 30);
    let mut h = rot_matcher(64);
    for step in [t - 2, t + 2, t - 3, t + 10] {
        let all = send(&mut h, 0, UNIX, src(1), &seq_of(step));
        assert!(!opened(&all), "step {step}: {all:?}");
    }
    assert_eq!(h.m.stats().completions, 0);
}

#[test]
fn rotating_pinned_sequence() {
    // The first published vector (see rotate.rs), driven through the matcher.
    let mut h = rot_matcher(64);
    let a = src(1);
    assert!(opened(&send(
        &mut h,
        0,
        UNIX,
        a,
        &[33600, 44638, 36429, 17820]
    )));
    assert!(!opened(&send(
        &mut h,
        0,
        UNIX,
        a,
        &[33600, 44638, 17820, 36429]
    )));
}

#[test]
fn rotating_ascending_sweep_never_opens() {
    let mut h = rot_matcher(64);
    let a = src(1);
    let mut out = Vec::new();
    for port in 10000..=60000u16 {
        out.clear();
        h.m.process(&rev(0, UNIX, a, port), &mut out);
        assert!(!opened(&out), "opened at port {port}");
    }
    assert_eq!(h.m.stats().completions, 0);
    h.m.check();
}

#[test]
fn rotating_random_sweep_never_opens() {
    let mut ports: Vec<u16> = (10000..=60000).collect();
    // Fixed-seed Fisher-Yates (xorshift), reproducible.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..ports.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ports.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut h = rot_matcher(64);
    let all = send(&mut h, 0, UNIX, src(1), &ports);
    assert!(!opened(&all));
}

#[test]
fn rotating_replay_from_another_source_is_refused() {
    let t = rotate::current_step(UNIX, 30);
    let seq = seq_of(t);
    let mut h = rot_matcher(64);
    let (a, b) = (src(1), ip("2001:2::9"));
    assert!(opened(&send(&mut h, 0, UNIX, a, &seq)));
    let replay = send(&mut h, 1, UNIX, b, &seq);
    assert_eq!(replay.last(), Some(&Outcome::Replay { src: b, door: 0 }));
    assert!(!opened(&replay));
    // The same source may open again with the same step's sequence.
    assert_eq!(send(&mut h, 2, UNIX, a, &seq).last(), Some(&open(a, 0)));
    // Another step's sequence is fine for b.
    assert_eq!(
        send(&mut h, 3, UNIX, b, &seq_of(t + 1)).last(),
        Some(&open(b, 0))
    );
    let st = h.m.stats();
    assert_eq!((st.completions, st.replays), (3, 1));
}

#[test]
fn rotating_replay_memory_is_bounded() {
    let mut h = rot_matcher(64);
    for k in 0..50u64 {
        let unix = UNIX + k * 30;
        let t = rotate::current_step(unix, 30);
        assert!(opened(&send(
            &mut h,
            k * 100,
            unix,
            src(k as u32),
            &seq_of(t)
        )));
        let Kind::Rotating(rot) = &h.m.doors[0].kind else {
            panic!()
        };
        let used: Vec<u64> = rot
            .openers
            .iter()
            .filter(|o| o.used)
            .map(|o| o.step)
            .collect();
        assert!(used.len() <= 4);
        assert!(used.iter().all(|&s| s + 2 >= t), "{used:?} at {t}");
    }
}

#[test]
fn rotating_sequences_are_derived_once_per_step() {
    let mut h = rot_matcher(64);
    let a = src(1);
    let derived = |h: &H| {
        let Kind::Rotating(rot) = &h.m.doors[0].kind else {
            panic!()
        };
        (rot.t, rot.seqs.clone())
    };
    send(&mut h, 0, UNIX, a, &[10000, 10001]);
    let t = rotate::current_step(UNIX, 30);
    let (ct, seqs) = derived(&h);
    assert_eq!(ct, Some(t));
    assert_eq!(seqs, [seq_of(t - 1), seq_of(t), seq_of(t + 1)]);
    // Next step: the window shifts.
    send(&mut h, 1, UNIX + 30, a, &[10000]);
    let (ct, seqs) = derived(&h);
    assert_eq!(ct, Some(t + 1));
    assert_eq!(seqs, [seq_of(t), seq_of(t + 1), seq_of(t + 2)]);
    // A jump recomputes everything.
    send(&mut h, 2, UNIX + 3000, a, &[10000]);
    let (ct, seqs) = derived(&h);
    assert_eq!(ct, Some(t + 100));
    assert_eq!(seqs, [seq_of(t + 99), seq_of(t + 100), seq_of(t + 101)]);
}

#[test]
fn rotating_attempt_across_a_step_boundary() {
    let t = rotate::current_step(UNIX, 30);
    let start = t * 30 + 29; // last second of step t
    let mut h = rot_matcher(64);
    let a = src(1);
    // Sequence of t, begun in step t and finished in step t+1: t is still in the window.
    let s = seq_of(t);
    send(&mut h, 0, start, a, &s[..2]);
    assert_eq!(
        send(&mut h, 1, start + 1, a, &s[2..]).last(),
        Some(&open(a, 0))
    );
    // Sequence of t-1, begun in step t and continued in step t+1: t-1 left the window.
    let s = seq_of(t - 1);
    let b = src(2);
    send(&mut h, 2, start, b, &s[..2]);
    assert!(!opened(&send(&mut h, 3, start + 1, b, &s[2..])));
}

#[test]
fn rotating_repeat_and_retry() {
    let t = rotate::current_step(UNIX, 30);
    let s = seq_of(t);
    let mut h = rot_matcher(64);
    let a = src(1);
    // Every knock twice: still opens.
    let doubled: Vec<u16> = s.iter().flat_map(|&p| [p, p]).collect();
    assert_eq!(send(&mut h, 0, UNIX, a, &doubled).last(), Some(&open(a, 0)));
    // A wrong port in the range resets; an immediate retry works.
    let wrong = if s[2] == 10000 { 10001 } else { 10000 };
    send(&mut h, 1, UNIX, a, &[s[0], s[1], wrong]);
    assert_eq!(send(&mut h, 2, UNIX, a, &s).last(), Some(&open(a, 0)));
    // The right ports over the wrong protocol are not even watched.
    let b = src(2);
    let mut out = Vec::new();
    for &p in &s {
        h.m.process(
            &Event {
                unix_secs: UNIX,
                ..ev(3, b, udp(p))
            },
            &mut out,
        );
    }
    assert!(out.is_empty());
    assert_eq!(h.m.stats().unwatched, 4);
}

#[test]
fn rotating_timeout_applies() {
    let t = rotate::current_step(UNIX, 30);
    let s = seq_of(t);
    let mut h = rot_matcher(64);
    let a = src(1);
    send(&mut h, 0, UNIX, a, &s[..3]);
    let last = send(&mut h, 25_001, UNIX, a, &s[3..]);
    assert!(
        matches!(last[..], [Outcome::Timeout { stage: 3, .. }]),
        "{last:?}"
    );
}

#[test]
fn rotating_single_knock_and_tiny_range() {
    // Length 1: the first knock completes; replay protection still applies.
    let spec = RotatingSpec {
        secret: b"k".to_vec(),
        length: 1,
        lo: 40000,
        hi: 40003,
        step: 10,
        proto: Udp,
    };
    let mut h = H::new(
        vec![DoorRule::new(Pattern::Rotating(spec.clone()), 1000)],
        8,
    );
    let t = rotate::current_step(UNIX, 10);
    let p = rotate::sequence_at(&spec, t).unwrap()[0];
    let e = |s| Event {
        unix_secs: UNIX,
        ..ev(0, s, udp(p))
    };
    let first = h.event(e(src(1)));
    assert!(first.contains(&open(src(1), 0)), "{first:?}");
    // With a 4-port range the other window steps may share the port; if another unused step
    // does, src(2) opens with it, otherwise it is a replay. Either way no attempt is stored.
    let second = h.event(e(src(2)));
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(h.m.stats().tracked, 0);
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

mod props {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn knock_strategy() -> impl Strategy<Value = Knock> {
        (0u16..6, prop::bool::ANY)
            .prop_map(|(p, u)| Knock::new(7000 + p, if u { Udp } else { Tcp }))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// (a) The right sequence within the timeout always completes, whatever other sources
        /// send in between.
        #[test]
        fn right_sequence_completes_despite_other_sources(
            seq in prop::collection::vec(knock_strategy(), 1..8),
            noise in prop::collection::vec(
                (1u32..40, knock_strategy(), 0u64..3, prop::bool::ANY), 0..200),
            gaps in prop::collection::vec(0usize..30, 8),
        ) {
            let mut h = H::new(vec![fixed(&seq, 10_000)], 64);
            let me = ip("2001:2::1");
            let mut now = 0;
            let mut noise_it = noise.into_iter();
            let mut opens = 0;
            for (i, &k) in seq.iter().enumerate() {
                for _ in 0..gaps[i] {
                    if let Some((s, k2, dt, v6)) = noise_it.next() {
                        now += dt;
                        let other = if v6 {
                            IpAddr::V6(Ipv6Addr::from(0x2001_0002_u128 << 96 | u128::from(s) << 8))
                        } else {
                            src(s)
                        };
                        h.knock(now, other, k2);
                    }
                }
                now += 1;
                let out = h.knock(now, me, k);
                opens += out.iter().filter(|o| **o == open(me, 0)).count();
                if i + 1 < seq.len() {
                    prop_assert_eq!(opens, 0);
                }
            }
            prop_assert_eq!(opens, 1);
        }

        /// (b) From a fresh state, any ordering of the sequence's knocks other than the
        /// sequence itself never completes.
        #[test]
        fn permutations_never_complete(
            seq in prop::collection::vec(knock_strategy(), 2..8),
            perm in Just((0usize..8).collect::<Vec<usize>>()).prop_shuffle(),
        ) {
            let order: Vec<Knock> = perm.iter().filter(|&&i| i < seq.len()).map(|&i| seq[i]).collect();
            prop_assume!(order != seq);
            let mut h = H::new(vec![fixed(&seq, 10_000)], 16);
            let s = src(3);
            for (i, &k) in order.iter().enumerate() {
                let out = h.knock(i as u64, s, k);
                prop_assert!(!opened(&out), "{:?} opened by {:?}", seq, order);
            }
        }

        /// (c) Tracked attempts and table memory never exceed the capacity, however many
        /// distinct sources knock.
        #[test]
        fn table_stays_bounded(
            cap in 1usize..300,
            seed in any::<u64>(),
            n in 5_000usize..20_000,
        ) {
            let mut m = Matcher::new(
                vec![fixed(&SEQ3, 25_000), fixed(&[tcp(7000), udp(9)], 3), fixed(&[udp(9)], 1)],
                cap,
            ).unwrap();
            let bytes = m.stats().table_bytes;
            let mut out = Vec::new();
            let mut x = seed | 1;
            for i in 0..n {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                let s = if x & 1 == 0 {
                    IpAddr::V4(Ipv4Addr::from((x >> 8) as u32))
                } else {
                    IpAddr::V6(Ipv6Addr::from(u128::from(x) << 40))
                };
                let k = [tcp(7000), tcp(8000), tcp(9000), udp(9)][(x >> 60) as usize % 4];
                out.clear();
                m.process(&ev(i as u64 / 4, s, k), &mut out);
                if i % 7 == 0 {
                    m.expire(i as u64 / 4, &mut out);
                }
                let st = m.stats();
                prop_assert!(st.tracked <= cap);
                prop_assert_eq!(st.capacity, cap);
                prop_assert_eq!(st.table_bytes, bytes);
            }
            m.check();
        }

        /// `process_batch` gives the same outcomes, in the same order, and the same state as
        /// `process` event by event, whatever the batch boundaries.
        #[test]
        fn batches_match_single_events(
            events in prop::collection::vec((0u32..40, knock_strategy(), 0u64..5), 1..300),
            cut in prop::collection::vec(1usize..80, 1..20),
            cap in 1usize..32,
        ) {
            let rules = vec![fixed(&SEQ3, 50), fixed(&[tcp(7000), udp(7001)], 20), fixed(&[udp(7002)], 5)];
            let mut one = Matcher::new(rules.clone(), cap).unwrap();
            let mut many = Matcher::new(rules, cap).unwrap();
            let mut now = 0;
            let evs: Vec<Event> = events
                .iter()
                .map(|&(s, k, dt)| {
                    now += dt;
                    ev(now, src(s), k)
                })
                .collect();
            let mut want = Vec::new();
            for e in &evs {
                one.process(e, &mut want);
            }
            let mut got = Vec::new();
            let mut rest = &evs[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = cut[i % cut.len()].min(rest.len());
                many.process_batch(&rest[..n], &mut got);
                rest = &rest[n..];
                i += 1;
            }
            prop_assert_eq!(got, want);
            prop_assert_eq!(one.stats(), many.stats());
        }

        /// The matcher agrees, outcome for outcome, with a naive unbounded reference model
        /// (a hash map scanned in full) on random traffic, expiry and eviction included.
        #[test]
        fn agrees_with_reference_model(
            doors in prop::collection::vec(
                (prop::collection::vec(knock_strategy(), 1..5), 0u64..60, 0u8..3), 1..4),
            events in prop::collection::vec(
                (0u32..12, knock_strategy(), 0u64..8, 0u8..4, prop::bool::ANY), 1..400),
            cap in 1usize..24,
        ) {
            let rules: Vec<DoorRule> = doors
                .iter()
                .map(|(seq, to, fl)| {
                    let mut r = fixed(seq, *to);
                    r.flags = match fl {
                        0 => FlagRule::ANY,
                        1 => parse_flag_rule("syn").unwrap(),
                        _ => parse_flag_rule("syn,!ack").unwrap(),
                    };
                    r
                })
                .collect();
            let mut h = H::new(rules.clone(), cap);
            let mut model = Model::new(rules, cap);
            let mut now = 0;
            for (s, k, dt, fl, tick) in events {
                now += dt;
                let flags = [bits::SYN, bits::SYN | bits::ACK, bits::ACK, 0][fl as usize];
                let e = Event { tcp_flags: flags, ..ev(now, src(s), k) };
                if tick {
                    let mut got = h.expire(now);
                    let mut want = model.expire(now);
                    // Simultaneous expiries may come out in any order.
                    got.sort_by_key(|o| format!("{o:?}"));
                    want.sort_by_key(|o| format!("{o:?}"));
                    prop_assert_eq!(got, want);
                }
                let got = h.event(e);
                let want = model.process(&e);
                prop_assert_eq!(got, want, "event {:?}", e);
                prop_assert_eq!(h.m.stats().tracked, model.att.len());
                let nd = model.att.values().map(|a| a.first + model.timeout[a.door] + 1).min();
                prop_assert_eq!(h.m.next_deadline(), nd);
            }
        }
    }

    /// Reference model: same rules, written as plainly as possible.
    struct Model {
        rules: Vec<DoorRule>,
        timeout: Vec<u64>,
        class: Vec<usize>,
        cap: usize,
        serial: u64,
        att: HashMap<(IpAddr, usize), Att>,
    }

    struct Att {
        door: usize,
        stage: usize,
        first: u64,
        serial: u64,
    }

    impl Model {
        fn new(rules: Vec<DoorRule>, cap: usize) -> Model {
            let timeout: Vec<u64> = rules.iter().map(|r| r.timeout_ms).collect();
            let class = timeout
                .iter()
                .map(|t| timeout.iter().position(|u| u == t).unwrap())
                .collect();
            Model {
                rules,
                timeout,
                class,
                cap,
                serial: 0,
                att: HashMap::new(),
            }
        }

        fn seq(&self, d: usize) -> &[Knock] {
            match &self.rules[d].pattern {
                Pattern::Fixed(s) => s,
                _ => unreachable!(),
            }
        }

        fn expire(&mut self, now: u64) -> Vec<Outcome> {
            let mut gone: Vec<(IpAddr, usize)> = self
                .att
                .iter()
                .filter(|(_, a)| now > a.first + self.timeout[a.door])
                .map(|(k, _)| *k)
                .collect();
            gone.sort();
            gone.into_iter()
                .map(|k| {
                    let a = self.att.remove(&k).unwrap();
                    Outcome::Timeout {
                        src: k.0,
                        door: k.1,
                        stage: a.stage as u8,
                    }
                })
                .collect()
        }

        fn process(&mut self, e: &Event) -> Vec<Outcome> {
            let mut out = Vec::new();
            let watched = (0..self.rules.len()).any(|d| self.seq(d).contains(&e.knock));
            if !watched {
                return out;
            }
            for d in 0..self.rules.len() {
                if e.knock.proto == Tcp && !self.rules[d].flags.matches(e.tcp_flags) {
                    continue;
                }
                let seq = self.seq(d).to_vec();
                let key = (e.src, d);
                if let Some(a) = self.att.get(&key)
                    && e.now_ms > a.first + self.timeout[d]
                {
                    out.push(Outcome::Timeout {
                        src: e.src,
                        door: d,
                        stage: a.stage as u8,
                    });
                    self.att.remove(&key);
                }
                if let Some(a) = self.att.get_mut(&key) {
                    if seq[a.stage] == e.knock {
                        a.stage += 1;
                        if a.stage == seq.len() {
                            self.att.remove(&key);
                            out.push(Outcome::Open {
                                src: e.src,
                                door: d,
                            });
                        } else {
                            out.push(Outcome::Stage {
                                src: e.src,
                                door: d,
                                stage: a.stage as u8,
                            });
                        }
                        continue;
                    }
                    if seq[a.stage - 1] == e.knock {
                        continue;
                    }
                    self.att.remove(&key);
                }
                if seq[0] == e.knock {
                    if seq.len() == 1 {
                        out.push(Outcome::Open {
                            src: e.src,
                            door: d,
                        });
                        continue;
                    }
                    if self.att.len() == self.cap {
                        let victim = *self
                            .att
                            .iter()
                            .min_by_key(|(_, a)| (a.first, self.class[a.door], a.serial))
                            .unwrap()
                            .0;
                        self.att.remove(&victim);
                    }
                    self.serial += 1;
                    self.att.insert(
                        key,
                        Att {
                            door: d,
                            stage: 1,
                            first: e.now_ms,
                            serial: self.serial,
                        },
                    );
                    out.push(Outcome::Stage {
                        src: e.src,
                        door: d,
                        stage: 1,
                    });
                }
            }
            out
        }
    }
}
