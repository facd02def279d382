//! Time per packet event with 10, 10,000 and 1,000,000 tracked attempts.
//!
//! The table is filled to capacity with distinct sources at stage 1, then each measured event
//! is, at random, either the next knock of a tracked source (a lookup that advances it or
//! repeats) or the first knock of a new source (a lookup miss, the eviction of the oldest
//! attempt and an insertion). Run with `cargo bench -p knock-core --bench matcher`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use knock_core::matcher::{DoorRule, Event, Matcher, Outcome, Pattern};
use knock_core::proto::{Knock, Protocol};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

const FIRST: Knock = Knock::new(7000, Protocol::Tcp);
const SECOND: Knock = Knock::new(8000, Protocol::Tcp);

fn src(i: u64) -> IpAddr {
    // 2001:2::/48, benchmarking addresses.
    IpAddr::V6(Ipv6Addr::from((0x2001_0002_u128 << 96) | u128::from(i)))
}

fn ev(now_ms: u64, src: IpAddr, knock: Knock) -> Event {
    Event {
        now_ms,
        unix_secs: 1_795_646_666,
        src,
        dst: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
        dst_is_local: true,
        knock,
        tcp_flags: 0x02,
    }
}

fn doors(n: usize) -> Vec<DoorRule> {
    (0..n)
        .map(|d| {
            DoorRule::new(
                Pattern::Fixed(vec![
                    FIRST,
                    SECOND,
                    Knock::new(9000 + d as u16, Protocol::Tcp),
                ]),
                25_000,
            )
        })
        .collect()
}

/// (name, doors, percentage of events that are new first knocks)
const CASES: [(&str, usize, u64); 4] = [
    ("mix_1door", 1, 50),
    ("lookup_1door", 1, 0),
    ("first_knock_1door", 1, 100),
    ("mix_3doors", 3, 50),
];

fn per_event(c: &mut Criterion) {
    let only = std::env::var("MATCHER_BENCH_CASE").ok();
    for (name, ndoors, new_pct) in CASES {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(1));
        for tracked in [10usize, 10_000, 1_000_000] {
            // With several doors sharing the first knock, each source holds one attempt per door.
            let sources = tracked / ndoors;
            let Ok(mut m) = Matcher::new(doors(ndoors), sources * ndoors) else {
                panic!("bad benchmark setup");
            };
            let mut out: Vec<Outcome> = Vec::with_capacity(16);
            for i in 0..sources as u64 {
                out.clear();
                m.process(&ev(0, src(i), FIRST), &mut out);
            }
            assert_eq!(m.stats().tracked, sources * ndoors);
            // Live sources are next_new - sources .. next_new (older ones were evicted).
            let mut next_new = sources as u64;
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
            let mut now = 0u64;
            g.bench_function(BenchmarkId::from_parameter(tracked), |b| {
                b.iter(|| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    now += 1;
                    let e = if (x >> 40) % 100 >= new_pct {
                        let back = (x >> 1) % sources as u64;
                        ev(now / 1_000_000, src(next_new - 1 - back), SECOND)
                    } else {
                        next_new += 1;
                        ev(now / 1_000_000, src(next_new - 1), FIRST)
                    };
                    out.clear();
                    m.process(black_box(&e), &mut out);
                    black_box(out.len())
                })
            });
            let st = m.stats();
            assert_eq!(st.tracked, sources * ndoors);
            eprintln!(
                "  {tracked} tracked: {} packets, {} evictions, {} MiB of table",
                st.packets,
                st.evictions,
                st.table_bytes >> 20
            );
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    targets = per_event
}
criterion_main!(benches);
