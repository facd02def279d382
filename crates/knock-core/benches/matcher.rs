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

/// (name, doors, percentage of events that are new first knocks, events per call)
///
/// With a batch size of 1 each event goes through `Matcher::process`; larger batches go
/// through `Matcher::process_batch`, as the daemon does with the frames of one capture
/// wake-up. Times are always per event.
const CASES: [(&str, usize, u64, usize); 6] = [
    ("mix_1door", 1, 50, 1),
    ("mix_1door_batch64", 1, 50, 64),
    ("lookup_1door", 1, 0, 1),
    ("first_knock_1door", 1, 100, 1),
    ("mix_3doors", 3, 50, 1),
    ("mix_3doors_batch64", 3, 50, 64),
];

fn per_event(c: &mut Criterion) {
    let only = std::env::var("MATCHER_BENCH_CASE").ok();
    for (name, ndoors, new_pct, batch) in CASES {
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
            let mut next_event = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                now += 1;
                if (x >> 40) % 100 >= new_pct {
                    let back = (x >> 1) % sources as u64;
                    ev(now / 1_000_000, src(next_new - 1 - back), SECOND)
                } else {
                    next_new += 1;
                    ev(now / 1_000_000, src(next_new - 1), FIRST)
                }
            };
            let mut events: Vec<Event> = Vec::with_capacity(batch);
            g.bench_function(BenchmarkId::from_parameter(tracked), |b| {
                if batch == 1 {
                    b.iter(|| {
                        let e = next_event();
                        out.clear();
                        m.process(black_box(&e), &mut out);
                        black_box(out.len())
                    })
                } else {
                    // One measured iteration = one event, processed in batches.
                    b.iter_custom(|iters| {
                        let start = std::time::Instant::now();
                        let mut left = iters;
                        while left > 0 {
                            let n = left.min(batch as u64);
                            left -= n;
                            events.clear();
                            events.extend((0..n).map(|_| next_event()));
                            out.clear();
                            m.process_batch(black_box(&events), &mut out);
                            black_box(out.len());
                        }
                        start.elapsed()
                    })
                }
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
