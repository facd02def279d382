//! fwknop-compatible Single Packet Authorization (SPA), pure.
//!
//! The wire format is fwknop 2.6's (`FKO protocol 3.0.0`) with AES-256-CBC (OpenSSL's
//! `Salted__` format, `EVP_BytesToKey` with MD5) and encrypt-then-MAC HMAC; see
//! `docs`/the project spec `fwknop-spa.md`. This module has no I/O and reads no clock:
//! the caller passes the current time to [`decode`] and the randomness to [`encode`].
//!
//! - [`decode`]: receiver side; rejects with a typed [`SpaError`] naming the failed stage.
//!   The HMAC is verified in constant time before anything is decrypted.
//! - [`encode`]: sender side; produces packets a real `fwknopd` 2.6.10 accepts.
//! - [`ReplayCache`]: bounded replay protection keyed on the plaintext, persistable as text.

mod codec;
mod keys;
mod message;
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
pub use replay::{
    DEFAULT_MAX_ENTRIES, REPLAY_FILE_HEADER, ReplayCache, ReplayDigest, ReplayParseError,
    ReplayVerdict, replay_digest,
};
