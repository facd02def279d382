//! SPA codec throughput: how fast junk, forged and replayed packets are rejected, and how
//! long a valid packet takes to accept. Run: `cargo bench -p knock-core --bench spa`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use knock_core::proto::parse_proto_port;
use knock_core::spa::{
    Freshness, ReplayCache, ReplayVerdict, SpaKeys, SpaMessage, decode, encode,
    rand16_from_entropy, replay_digest,
};

const NOW: u64 = 1_800_000_000;
const FRESH: Freshness = Freshness::Within {
    now_unix: NOW,
    max_age: 120,
};

fn keys() -> SpaKeys {
    SpaKeys::new((0u8..32).collect::<Vec<_>>(), Some((64u8..128).collect())).expect("keys")
}

fn message(n: u64) -> SpaMessage {
    let mut e = [0u8; 16];
    e[..8].copy_from_slice(&n.to_le_bytes());
    SpaMessage::access(
        rand16_from_entropy(e),
        "alice",
        NOW,
        "198.18.0.1".parse().expect("ip"),
        vec![parse_proto_port("tcp/22").expect("port")],
        None,
    )
}

/// A small deterministic generator for junk.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn bench(c: &mut Criterion) {
    let keys = keys();
    let valid = encode(&keys, &message(0), [7; 8]).expect("encode");
    assert_eq!(valid.len(), 204);
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = 0x1234_5678_9abc_def0u64;
    // 64 junk packets of 204 base64 characters: they reach the HMAC check and fail there.
    let junk_b64: Vec<Vec<u8>> = (0..64)
        .map(|_| {
            (0..204)
                .map(|_| B64[(xorshift(&mut s) % 64) as usize])
                .collect()
        })
        .collect();
    // 64 binary junk packets: fail the alphabet check at once.
    let junk_bin: Vec<Vec<u8>> = (0..64)
        .map(|_| (0..204).map(|_| xorshift(&mut s) as u8).collect())
        .collect();
    // Forged: a valid packet with one character changed (HMAC fails).
    let forged: Vec<Vec<u8>> = (0..64)
        .map(|i| {
            let mut t = valid.clone().into_bytes();
            let p = (i * 3) % t.len();
            t[p] = if t[p] == b'A' { b'B' } else { b'A' };
            t
        })
        .collect();

    let mut g = c.benchmark_group("spa");
    g.throughput(Throughput::Elements(1));

    let mut i = 0usize;
    g.bench_function("reject_junk_base64_at_hmac", |b| {
        b.iter(|| {
            i = (i + 1) % junk_b64.len();
            black_box(decode(black_box(&junk_b64[i]), &keys, FRESH).is_err())
        })
    });
    g.bench_function("reject_junk_binary_at_alphabet", |b| {
        b.iter(|| {
            i = (i + 1) % junk_bin.len();
            black_box(decode(black_box(&junk_bin[i]), &keys, FRESH).is_err())
        })
    });
    g.bench_function("reject_forged_at_hmac", |b| {
        b.iter(|| {
            i = (i + 1) % forged.len();
            black_box(decode(black_box(&forged[i]), &keys, FRESH).is_err())
        })
    });
    g.bench_function("reject_too_short", |b| {
        b.iter(|| black_box(decode(black_box(&valid.as_bytes()[..100]), &keys, FRESH).is_err()))
    });

    // Replayed: a genuine packet seen before. It passes HMAC, decryption and parsing; the
    // cache rejects it.
    let mut cache = ReplayCache::new(120, 100_000);
    let d = decode(valid.as_bytes(), &keys, FRESH).expect("valid");
    assert!(cache.check_and_insert(d.replay_digest, d.message.timestamp, NOW));
    g.bench_function("reject_replayed_full_decode_plus_cache", |b| {
        b.iter(|| {
            let d = decode(black_box(valid.as_bytes()), &keys, FRESH).expect("valid");
            let v = cache.check(d.replay_digest, d.message.timestamp, NOW);
            assert_eq!(v, ReplayVerdict::Replayed);
        })
    });

    g.bench_function("accept_valid_decode", |b| {
        b.iter(|| black_box(decode(black_box(valid.as_bytes()), &keys, FRESH).expect("valid")))
    });

    // Steady state of a busy door: 1000 fresh packets per second with a 120 s window, so
    // about 120,000 live entries while old ones are pruned.
    let mut n = 0u64;
    let mut busy = ReplayCache::new(120, 1_000_000);
    g.bench_function("replay_cache_insert_fresh_1000_per_s", |b| {
        b.iter(|| {
            n += 1;
            let now = NOW + n / 1000;
            let digest = replay_digest(&n.to_le_bytes());
            black_box(busy.check_and_insert(digest, now, now))
        })
    });

    let msg = message(1);
    g.bench_function("encode_valid", |b| {
        b.iter(|| black_box(encode(&keys, black_box(&msg), [9; 8]).expect("encode")))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
