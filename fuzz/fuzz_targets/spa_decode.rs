//! Feeds arbitrary bytes to the SPA decoder with fixed keys.
//!
//! Three paths per input: (1) as a wire packet to a door with HMAC (most inputs stop at the
//! alphabet or HMAC check), (2) as a wire packet to a door without HMAC (reaches base64
//! decoding and decryption), (3) as a plaintext wrapped into a correctly encrypted and
//! authenticated packet, so the fuzzer reaches the digest check, and (4) the same with a
//! correct SHA-256 digest appended, so it reaches the field parser.
//! Run: `cargo +nightly fuzz run spa_decode -- -max_total_time=60`.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

use knock_core::spa::{
    Freshness, HmacDigest, SpaKeys, SpaMessage, decode, encode, encode_plaintext,
};

const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let fresh = Freshness::Within {
        now_unix: NOW,
        max_age: 120,
    };
    let Ok(hmac_keys) = SpaKeys::new((0u8..32).collect::<Vec<_>>(), Some((64u8..128).collect()))
    else {
        return;
    };
    let Ok(plain_keys) = SpaKeys::new(b"fwknoptest".to_vec(), None) else {
        return;
    };

    // (1) and (2): raw wire input.
    let _ = decode(data, &hmac_keys, fresh);
    let _ = decode(data, &plain_keys, Freshness::Unchecked);

    // (3): the input is the plaintext of an authentic packet; (4): plus a valid digest.
    let keys = hmac_keys.clone().with_hmac_digest(HmacDigest::Sha256);
    let mut with_digest = data.to_vec();
    with_digest.push(b':');
    with_digest.extend_from_slice(STANDARD_NO_PAD.encode(Sha256::digest(data)).as_bytes());
    for pt in [data, &with_digest[..]] {
        authentic(&keys, pt);
    }

    // The field parser on its own, with the input as text.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = SpaMessage::parse_fields(text, HmacDigest::Sha256);
    }
});

fn authentic(keys: &SpaKeys, data: &[u8]) {
    if let Ok(wire) = encode_plaintext(keys, data, [1, 2, 3, 4, 5, 6, 7, 8]) {
        match decode(wire.as_bytes(), keys, Freshness::Unchecked) {
            Ok(d) => {
                // What was accepted is exactly what was sent, and it encodes back to a
                // packet that decodes to the same message.
                assert_eq!(d.plaintext.as_bytes(), data);
                if let Ok(again) = encode(keys, &d.message, d.salt) {
                    let d2 = decode(again.as_bytes(), keys, Freshness::Unchecked)
                        .expect("re-encoded message must decode");
                    assert_eq!(d2.message, d.message);
                }
            }
            Err(e) => {
                // An authentic packet is never rejected before decryption.
                assert!(
                    !matches!(e.stage(), "size" | "base64" | "prefix" | "hmac"),
                    "authentic packet rejected at {}: {e}",
                    e.stage()
                );
            }
        }
    }
}
