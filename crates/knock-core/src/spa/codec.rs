//! The wire codec: decode (receiver) and encode (sender).

use aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use subtle::ConstantTimeEq;

use super::keys::{HmacDigest, KeyError, SpaKeys};
use super::message::{MessageError, SpaMessage};
use super::replay::{ReplayDigest, replay_digest};

/// Shortest wire text fwknopd 2.6 accepts (`MIN_SPA_DATA_SIZE`).
pub const MIN_WIRE_LEN: usize = 140;
/// Longest wire text accepted (one Ethernet MTU, fwknopd's `MAX_SPA_PACKET_LEN`).
pub const MAX_WIRE_LEN: usize = 1500;
/// The base64 form of `Salted__` plus 4 bits, which every encrypted message starts with and
/// the sender strips.
pub const SALTED_B64_PREFIX: &str = "U2FsdGVkX1";
const SALTED: &[u8; 8] = b"Salted__";
/// Default accepted clock difference (seconds), as fwknopd's `MAX_SPA_PACKET_AGE`.
pub const DEFAULT_MAX_AGE: u64 = 120;

/// The timestamp check of [`decode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Accept timestamps within `now_unix ± max_age` seconds.
    Within { now_unix: u64, max_age: u64 },
    /// Do not look at the timestamp (replaying captured test vectors; never in a daemon).
    Unchecked,
}

/// Why a packet was rejected. Variants are listed in the order the checks run; see
/// [`SpaError::stage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpaError {
    #[error("key configuration: {0}")]
    Keys(#[from] KeyError),
    #[error("size: packet is {len} bytes, shorter than the minimum {min}")]
    TooShort { len: usize, min: usize },
    #[error("size: packet is {len} bytes, longer than the maximum {max}")]
    TooLong { len: usize, max: usize },
    #[error(
        "base64: byte 0x{byte:02x} at offset {offset} is not in the base64 alphabet A-Z a-z 0-9 + /"
    )]
    NotBase64 { offset: usize, byte: u8 },
    #[error("prefix: packet still starts with \"U2FsdGVkX1\" (real clients strip it)")]
    PrefixNotStripped,
    #[error(
        "hmac: {digest} tag does not match (wrong HMAC key, wrong digest type or forged packet)"
    )]
    HmacMismatch { digest: HmacDigest },
    #[error("decode: the encrypted part is not valid unpadded base64: {0}")]
    BadBase64(String),
    #[error("decode: the encrypted data does not start with \"Salted__\"")]
    NotSalted,
    #[error("decrypt: {0} bytes of ciphertext is not a positive multiple of the 16-byte AES block")]
    CiphertextLength(usize),
    #[error("decrypt: bad PKCS#7 padding (wrong encryption key or corrupted data)")]
    BadPadding,
    #[error(
        "plaintext: byte 0x{byte:02x} at offset {offset} is not printable ASCII (wrong encryption key?)"
    )]
    NotPrintable { offset: usize, byte: u8 },
    #[error("digest: the plaintext has no ':' separated digest")]
    NoDigest,
    #[error("digest: a {0}-character digest matches no known algorithm (22, 27, 43, 64 or 86)")]
    UnknownDigestLength(usize),
    #[error("digest: the {0}-character digest does not match the message")]
    DigestMismatch(usize),
    #[error("fields: {0}")]
    Field(#[from] MessageError),
    #[error(
        "age: timestamp {timestamp} is {age} s older than now ({now_unix}); at most {max_age} s allowed"
    )]
    TooOld {
        timestamp: u64,
        now_unix: u64,
        age: u64,
        max_age: u64,
    },
    #[error(
        "age: timestamp {timestamp} is {ahead} s ahead of now ({now_unix}); at most {max_age} s allowed"
    )]
    FromFuture {
        timestamp: u64,
        now_unix: u64,
        ahead: u64,
        max_age: u64,
    },
}

impl SpaError {
    /// The check that failed: `keys`, `size`, `base64`, `prefix`, `hmac`, `decode`, `decrypt`,
    /// `plaintext`, `digest`, `fields` or `age` (handy for counters and logs).
    pub fn stage(&self) -> &'static str {
        match self {
            SpaError::Keys(_) => "keys",
            SpaError::TooShort { .. } | SpaError::TooLong { .. } => "size",
            SpaError::NotBase64 { .. } => "base64",
            SpaError::PrefixNotStripped => "prefix",
            SpaError::HmacMismatch { .. } => "hmac",
            SpaError::BadBase64(_) | SpaError::NotSalted => "decode",
            SpaError::CiphertextLength(_) | SpaError::BadPadding => "decrypt",
            SpaError::NotPrintable { .. } => "plaintext",
            SpaError::NoDigest | SpaError::UnknownDigestLength(_) | SpaError::DigestMismatch(_) => {
                "digest"
            }
            SpaError::Field(_) => "fields",
            SpaError::TooOld { .. } | SpaError::FromFuture { .. } => "age",
        }
    }
}

/// A packet that passed every check of [`decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub message: SpaMessage,
    /// The decrypted plaintext, digest included.
    pub plaintext: String,
    /// The salt from the packet.
    pub salt: [u8; 8],
    /// SHA-256 of the plaintext: the key for [`super::ReplayCache`].
    pub replay_digest: ReplayDigest,
}

/// Decodes and authenticates one SPA packet (the UDP payload).
///
/// Checks, in this order: key configuration, size bounds, base64 alphabet, stripped prefix,
/// the HMAC (constant-time, before anything is decrypted; skipped only when
/// `keys.hmac_key` is `None`), base64 decoding, `Salted__`, AES-256-CBC decryption and
/// PKCS#7 padding, printable ASCII, the inner digest, the fields, then the timestamp.
/// Never panics. Replay protection and policy (allowed users, ports, sources) are the
/// caller's.
pub fn decode(wire: &[u8], keys: &SpaKeys, freshness: Freshness) -> Result<Decoded, SpaError> {
    keys.validate()?;
    if wire.len() < MIN_WIRE_LEN {
        return Err(SpaError::TooShort {
            len: wire.len(),
            min: MIN_WIRE_LEN,
        });
    }
    if wire.len() > MAX_WIRE_LEN {
        return Err(SpaError::TooLong {
            len: wire.len(),
            max: MAX_WIRE_LEN,
        });
    }
    if let Some(offset) = wire.iter().position(|&b| !is_b64_char(b)) {
        return Err(SpaError::NotBase64 {
            offset,
            byte: wire[offset],
        });
    }
    if wire.starts_with(SALTED_B64_PREFIX.as_bytes()) {
        return Err(SpaError::PrefixNotStripped);
    }

    let body = match &keys.hmac_key {
        Some(hkey) => {
            let tag_len = keys.hmac.b64_len();
            // MIN_WIRE_LEN > 86 + the shortest body, so this never underflows; stay safe.
            let split = wire.len().saturating_sub(tag_len);
            let (body, tag) = wire.split_at(split);
            let mac = keys.hmac.hmac(hkey, &[SALTED_B64_PREFIX.as_bytes(), body]);
            let mut buf = [0u8; 88];
            let expected = mac.b64(&mut buf);
            if !bool::from(expected.ct_eq(tag)) {
                return Err(SpaError::HmacMismatch { digest: keys.hmac });
            }
            body
        }
        None => wire,
    };

    let mut full = Vec::with_capacity(SALTED_B64_PREFIX.len() + body.len());
    full.extend_from_slice(SALTED_B64_PREFIX.as_bytes());
    full.extend_from_slice(body);
    let mut data = STANDARD_NO_PAD
        .decode(&full)
        .map_err(|e| SpaError::BadBase64(e.to_string()))?;
    if !data.starts_with(SALTED) {
        return Err(SpaError::NotSalted);
    }
    let ct_len = data.len().saturating_sub(16);
    if data.len() < 32 || ct_len % 16 != 0 {
        return Err(SpaError::CiphertextLength(ct_len));
    }
    let mut salt = [0u8; 8];
    salt.copy_from_slice(&data[8..16]);
    let (aes_key, iv) = keys.derive(&salt);
    let dec = cbc::Decryptor::<Aes256>::new(&aes_key.into(), &iv.into());
    let pt = dec
        .decrypt_padded::<Pkcs7>(&mut data[16..])
        .map_err(|_| SpaError::BadPadding)?;
    if let Some(offset) = pt.iter().position(|&b| !(0x20..=0x7e).contains(&b)) {
        return Err(SpaError::NotPrintable {
            offset,
            byte: pt[offset],
        });
    }
    // All bytes are printable ASCII, so this cannot fail.
    let plaintext = String::from_utf8(pt.to_vec())
        .map_err(|_| SpaError::NotPrintable { offset: 0, byte: 0 })?;

    let (encoded, digest_b64) = plaintext.rsplit_once(':').ok_or(SpaError::NoDigest)?;
    let candidates: &[HmacDigest] = match digest_b64.len() {
        22 => &[HmacDigest::Md5],
        27 => &[HmacDigest::Sha1],
        43 => &[HmacDigest::Sha256, HmacDigest::Sha3_256],
        64 => &[HmacDigest::Sha384],
        86 => &[HmacDigest::Sha512, HmacDigest::Sha3_512],
        n => return Err(SpaError::UnknownDigestLength(n)),
    };
    let mut digest_type = None;
    for &d in candidates {
        let mut buf = [0u8; 88];
        let h = d.hash(&[encoded.as_bytes()]);
        if bool::from(h.b64(&mut buf).ct_eq(digest_b64.as_bytes())) {
            digest_type = Some(d);
            break;
        }
    }
    let digest_type = digest_type.ok_or(SpaError::DigestMismatch(digest_b64.len()))?;

    let message = SpaMessage::parse_fields(encoded, digest_type)?;
    check_freshness(message.timestamp, freshness)?;
    let replay_digest = replay_digest(plaintext.as_bytes());
    Ok(Decoded {
        message,
        plaintext,
        salt,
        replay_digest,
    })
}

/// Checks a packet timestamp against `freshness`.
pub fn check_freshness(timestamp: u64, freshness: Freshness) -> Result<(), SpaError> {
    let Freshness::Within { now_unix, max_age } = freshness else {
        return Ok(());
    };
    if timestamp < now_unix {
        let age = now_unix - timestamp;
        if age > max_age {
            return Err(SpaError::TooOld {
                timestamp,
                now_unix,
                age,
                max_age,
            });
        }
    } else {
        let ahead = timestamp - now_unix;
        if ahead > max_age {
            return Err(SpaError::FromFuture {
                timestamp,
                now_unix,
                ahead,
                max_age,
            });
        }
    }
    Ok(())
}

fn is_b64_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// Why a packet could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("key configuration: {0}")]
    Keys(#[from] KeyError),
    #[error("message: {0}")]
    Message(#[from] MessageError),
    #[error(
        "the packet would be {len} bytes, shorter than the {min} fwknopd accepts (use a longer user name, message or digest)"
    )]
    TooShort { len: usize, min: usize },
    #[error("the packet would be {len} bytes, longer than the maximum {max}")]
    TooLong { len: usize, max: usize },
}

/// Builds the wire text for `msg`, exactly as fwknop's client does: plaintext with digest,
/// AES-256-CBC under a key derived from `keys.enc_key` and `salt`, `Salted__` header,
/// unpadded base64 without its first 10 characters, then (with an HMAC key) the HMAC tag.
///
/// The caller supplies the randomness: `salt` (8 random bytes) and `msg.rand` (see
/// [`super::rand16_from_entropy`]).
pub fn encode(keys: &SpaKeys, msg: &SpaMessage, salt: [u8; 8]) -> Result<String, EncodeError> {
    keys.validate()?;
    let plaintext = msg.to_plaintext()?;
    encode_plaintext(keys, plaintext.as_bytes(), salt)
}

/// Encrypts and wraps an already formatted plaintext (digest included). Used by [`encode`];
/// public for tests and tools that need to build unusual packets.
pub fn encode_plaintext(
    keys: &SpaKeys,
    plaintext: &[u8],
    salt: [u8; 8],
) -> Result<String, EncodeError> {
    keys.validate()?;
    let (aes_key, iv) = keys.derive(&salt);
    let enc = cbc::Encryptor::<Aes256>::new(&aes_key.into(), &iv.into());
    // Header, then the plaintext with room for up to one block of padding, encrypted in place.
    let mut data = Vec::with_capacity(16 + plaintext.len() + 16);
    data.extend_from_slice(SALTED);
    data.extend_from_slice(&salt);
    data.extend_from_slice(plaintext);
    data.resize(16 + plaintext.len() + 16, 0);
    let ct_len = enc
        .encrypt_padded::<Pkcs7>(&mut data[16..], plaintext.len())
        .map(<[u8]>::len)
        .map_err(|_| EncodeError::TooLong {
            len: plaintext.len(),
            max: MAX_WIRE_LEN,
        })?;
    data.truncate(16 + ct_len);
    let full = STANDARD_NO_PAD.encode(&data);
    // `Salted__` always encodes to the prefix; strip it.
    let body = full.get(SALTED_B64_PREFIX.len()..).unwrap_or_default();
    let mut wire = String::with_capacity(body.len() + 86);
    wire.push_str(body);
    if let Some(hkey) = &keys.hmac_key {
        let mac = keys
            .hmac
            .hmac(hkey, &[SALTED_B64_PREFIX.as_bytes(), body.as_bytes()]);
        let mut buf = [0u8; 88];
        wire.push_str(std::str::from_utf8(mac.b64(&mut buf)).unwrap_or_default());
    }
    if wire.len() < MIN_WIRE_LEN {
        return Err(EncodeError::TooShort {
            len: wire.len(),
            min: MIN_WIRE_LEN,
        });
    }
    if wire.len() > MAX_WIRE_LEN {
        return Err(EncodeError::TooLong {
            len: wire.len(),
            max: MAX_WIRE_LEN,
        });
    }
    Ok(wire)
}
