//! fwknop-compatible Single Packet Authorization (SPA), pure.
//!
//! The wire format is fwknop 2.6's (`FKO protocol 3.0.0`) with AES-256-CBC (OpenSSL's
//! `Salted__` format, `EVP_BytesToKey` with MD5) and encrypt-then-MAC HMAC (the project's
//! `fwknop-spa.md` spec describes it). This module has no I/O and reads no clock: the caller
//! passes the current time to [`decode`] and the randomness to [`encode`].
//!
//! - [`decode`]: receiver side; rejects with a typed [`SpaError`] naming the failed stage.
//!   The HMAC is verified in constant time before anything is decrypted.
//! - [`encode`]: sender side; produces packets a real `fwknopd` 2.6.10 accepts.
//! - [`ReplayCache`]: bounded replay protection keyed on the plaintext, persistable as text.
//! - [`Policy`]: what an authenticated request may do at a door (user, source, ports, timeout).
//!
//! ```
//! use knock_core::proto::parse_proto_port;
//! use knock_core::spa::*;
//!
//! let keys = SpaKeys::new(b"an encryption key".to_vec(), Some(b"an hmac key".to_vec()))?
//!     .with_hmac_digest(HmacDigest::Sha256);
//! let now = 1_800_000_000;
//! // Client: randomness comes from the caller (e.g. getrandom).
//! let msg = SpaMessage::access(
//!     rand16_from_entropy([42; 16]),
//!     "alice",
//!     now,
//!     "198.18.0.7".parse()?,
//!     vec![parse_proto_port("tcp/22")?],
//!     Some(60),
//! );
//! let wire = encode(&keys, &msg, [7; 8])?;
//!
//! // Door: authenticate, decrypt, parse, check the clock, then the replay cache.
//! let decoded = decode(wire.as_bytes(), &keys, Freshness::Within { now_unix: now + 3, max_age: 120 })?;
//! assert_eq!(decoded.message, msg);
//! let mut cache = ReplayCache::new(120, DEFAULT_MAX_ENTRIES);
//! assert!(cache.check_and_insert(decoded.replay_digest, decoded.message.timestamp, now + 3));
//! assert!(!cache.check_and_insert(decoded.replay_digest, decoded.message.timestamp, now + 4));
//!
//! let err = decode(b"junk", &keys, Freshness::Unchecked).unwrap_err();
//! assert_eq!(err.stage(), "size");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod codec;
mod keys;
mod message;
mod policy;
mod replay;

pub use codec::{
    DEFAULT_MAX_AGE, Decoded, EncodeError, Freshness, MAX_WIRE_LEN, MIN_WIRE_LEN,
    SALTED_B64_PREFIX, SpaError, check_freshness, decode, encode, encode_plaintext,
};
pub use keys::{
    DigestType, HmacDigest, KeyError, LEGACY_KEY_LEN, MAX_ENC_KEY_LEN, MAX_HMAC_KEY_LEN, SpaKeys,
    UnknownDigest, decode_key_base64, evp_bytes_to_key,
};
pub use message::{
    FKO_PROTOCOL_VERSION, MAX_USER_B64_LEN, MessageError, MessageKind, MessageType, NatTarget,
    SpaMessage, rand16_from_entropy,
};
pub use policy::{Decision, Policy, Refusal};
pub use replay::{
    DEFAULT_MAX_ENTRIES, REPLAY_FILE_HEADER, ReplayCache, ReplayDigest, ReplayParseError,
    ReplayVerdict, entry_line, replay_digest,
};
