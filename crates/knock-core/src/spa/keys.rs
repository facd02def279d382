//! Keys, hash algorithms and OpenSSL's `EVP_BytesToKey` as fwknop uses them.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, KeyInit, Mac, SimpleHmac};
use sha2::Digest;

/// Longest encryption key fwknop accepts (bytes, after base64 decoding).
pub const MAX_ENC_KEY_LEN: usize = 32;
/// Longest HMAC key fwknop accepts (bytes, after base64 decoding).
pub const MAX_HMAC_KEY_LEN: usize = 128;
/// In legacy mode (`-M legacy`) shorter keys are right-padded with ASCII `0` to this length.
pub const LEGACY_KEY_LEN: usize = 16;

/// A hash algorithm fwknop offers, both for the HMAC over the wire text (`HMAC_DIGEST_TYPE`,
/// `--hmac-digest-type`) and for the digest inside the plaintext (`-m`, `--digest-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HmacDigest {
    Md5,
    Sha1,
    /// fwknop's default for both the HMAC and the inner digest.
    Sha256,
    Sha384,
    Sha512,
    Sha3_256,
    Sha3_512,
}

/// The algorithm of the digest inside the plaintext: the same family as [`HmacDigest`].
pub type DigestType = HmacDigest;

impl HmacDigest {
    /// Every algorithm, in fwknop's numbering order.
    pub const ALL: [HmacDigest; 7] = [
        HmacDigest::Md5,
        HmacDigest::Sha1,
        HmacDigest::Sha256,
        HmacDigest::Sha384,
        HmacDigest::Sha512,
        HmacDigest::Sha3_256,
        HmacDigest::Sha3_512,
    ];

    /// Lower-case name as accepted by [`FromStr`]: `md5`, `sha1`, ..., `sha3_256`, `sha3_512`.
    pub fn as_str(self) -> &'static str {
        match self {
            HmacDigest::Md5 => "md5",
            HmacDigest::Sha1 => "sha1",
            HmacDigest::Sha256 => "sha256",
            HmacDigest::Sha384 => "sha384",
            HmacDigest::Sha512 => "sha512",
            HmacDigest::Sha3_256 => "sha3_256",
            HmacDigest::Sha3_512 => "sha3_512",
        }
    }

    /// Length of the raw hash output in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HmacDigest::Md5 => 16,
            HmacDigest::Sha1 => 20,
            HmacDigest::Sha256 | HmacDigest::Sha3_256 => 32,
            HmacDigest::Sha384 => 48,
            HmacDigest::Sha512 | HmacDigest::Sha3_512 => 64,
        }
    }

    /// Length of the output in unpadded base64, as it appears on the wire and in the
    /// plaintext (22, 27, 43, 64 or 86 characters).
    pub fn b64_len(self) -> usize {
        (self.output_len() * 4).div_ceil(3)
    }

    /// Hashes the concatenation of `parts`.
    pub(crate) fn hash(self, parts: &[&[u8]]) -> HashOut {
        match self {
            HmacDigest::Md5 => hash_with::<md5::Md5>(parts),
            HmacDigest::Sha1 => hash_with::<sha1::Sha1>(parts),
            HmacDigest::Sha256 => hash_with::<sha2::Sha256>(parts),
            HmacDigest::Sha384 => hash_with::<sha2::Sha384>(parts),
            HmacDigest::Sha512 => hash_with::<sha2::Sha512>(parts),
            HmacDigest::Sha3_256 => hash_with::<sha3::Sha3_256>(parts),
            HmacDigest::Sha3_512 => hash_with::<sha3::Sha3_512>(parts),
        }
    }

    /// Standard HMAC (RFC 2104: keys longer than a block are hashed first) over the
    /// concatenation of `parts`.
    pub(crate) fn hmac(self, key: &[u8], parts: &[&[u8]]) -> HashOut {
        match self {
            HmacDigest::Md5 => mac_with::<Hmac<md5::Md5>>(key, parts),
            HmacDigest::Sha1 => mac_with::<Hmac<sha1::Sha1>>(key, parts),
            HmacDigest::Sha256 => mac_with::<Hmac<sha2::Sha256>>(key, parts),
            HmacDigest::Sha384 => mac_with::<Hmac<sha2::Sha384>>(key, parts),
            HmacDigest::Sha512 => mac_with::<Hmac<sha2::Sha512>>(key, parts),
            HmacDigest::Sha3_256 => mac_with::<SimpleHmac<sha3::Sha3_256>>(key, parts),
            HmacDigest::Sha3_512 => mac_with::<SimpleHmac<sha3::Sha3_512>>(key, parts),
        }
    }
}

impl fmt::Display for HmacDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of [`HmacDigest::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown digest \"{0}\" (expected md5, sha1, sha256, sha384, sha512, sha3_256 or sha3_512)"
)]
pub struct UnknownDigest(pub String);

impl FromStr for HmacDigest {
    type Err = UnknownDigest;

    /// Parses `md5 sha1 sha256 sha384 sha512 sha3_256 sha3_512`, case-insensitively, also in
    /// fwknop's config spelling (`SHA256`, `SHA3_256`) and with `-` for `_` (`sha3-256`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let norm: String = t
            .chars()
            .map(|c| {
                if c == '-' {
                    '_'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        HmacDigest::ALL
            .into_iter()
            .find(|d| d.as_str() == norm)
            .ok_or_else(|| UnknownDigest(t.to_string()))
    }
}

/// A hash or HMAC output (at most 64 bytes) without allocation.
#[derive(Clone, Copy)]
pub(crate) struct HashOut {
    buf: [u8; 64],
    len: usize,
}

impl HashOut {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Writes the unpadded base64 form into `out` and returns it (at most 86 characters).
    pub(crate) fn b64<'a>(&self, out: &'a mut [u8; 88]) -> &'a [u8] {
        // 64 bytes need 86 characters: the buffer is always large enough, but stay
        // panic-free regardless.
        let n = STANDARD_NO_PAD
            .encode_slice(self.as_bytes(), out)
            .unwrap_or(0);
        &out[..n]
    }
}

fn from_slice(bytes: &[u8]) -> HashOut {
    let mut buf = [0u8; 64];
    let len = bytes.len().min(64);
    buf[..len].copy_from_slice(&bytes[..len]);
    HashOut { buf, len }
}

fn hash_with<D: Digest>(parts: &[&[u8]]) -> HashOut {
    let mut h = D::new();
    for p in parts {
        h.update(p);
    }
    from_slice(&h.finalize())
}

fn mac_with<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> HashOut {
    // HMAC accepts keys of any length, so this never fails; an empty output would only
    // make the comparison fail, never panic.
    match <M as KeyInit>::new_from_slice(key) {
        Ok(mut m) => {
            for p in parts {
                m.update(p);
            }
            from_slice(&m.finalize().into_bytes())
        }
        Err(_) => HashOut {
            buf: [0u8; 64],
            len: 0,
        },
    }
}

/// OpenSSL's `EVP_BytesToKey` with MD5 and one round, for AES-256-CBC:
/// `D1 = MD5(key ‖ salt)`, `D2 = MD5(D1 ‖ key ‖ salt)`, `D3 = MD5(D2 ‖ key ‖ salt)`;
/// returns (AES key `D1 ‖ D2`, IV `D3`).
pub fn evp_bytes_to_key(key: &[u8], salt: &[u8; 8]) -> ([u8; 32], [u8; 16]) {
    let d1 = md5::Md5::new()
        .chain_update(key)
        .chain_update(salt)
        .finalize();
    let d2 = md5::Md5::new()
        .chain_update(d1)
        .chain_update(key)
        .chain_update(salt)
        .finalize();
    let d3 = md5::Md5::new()
        .chain_update(d2)
        .chain_update(key)
        .chain_update(salt)
        .finalize();
    let mut aes_key = [0u8; 32];
    aes_key[..16].copy_from_slice(&d1);
    aes_key[16..].copy_from_slice(&d2);
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&d3);
    (aes_key, iv)
}

/// A problem with the configured keys (not with a packet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the encryption key is empty")]
    EmptyEncKey,
    #[error("the encryption key is {0} bytes long; fwknop allows at most 32")]
    EncKeyTooLong(usize),
    #[error("the HMAC key is empty")]
    EmptyHmacKey,
    #[error("the HMAC key is {0} bytes long; fwknop allows at most 128")]
    HmacKeyTooLong(usize),
    #[error("the {what} is not valid base64: {reason}")]
    Base64 { what: &'static str, reason: String },
}

/// The keys of one SPA door or client stanza.
///
/// `enc_key` is the raw bytes of fwknop's `KEY` (a passphrase) or the decoded `KEY_BASE64`;
/// `hmac_key` the raw bytes of `HMAC_KEY` or the decoded `HMAC_KEY_BASE64` (`None`: fwknop's
/// non-HMAC mode, which a door should only accept when explicitly configured).
#[derive(Clone, PartialEq, Eq)]
pub struct SpaKeys {
    pub enc_key: Vec<u8>,
    pub hmac_key: Option<Vec<u8>>,
    pub hmac: HmacDigest,
    /// fwknop's `-M legacy` / `ENCRYPTION_MODE legacy`: keys shorter than 16 bytes are
    /// right-padded with ASCII `0` before key derivation.
    pub legacy: bool,
}

impl fmt::Debug for SpaKeys {
    /// Never prints key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpaKeys")
            .field("enc_key", &format_args!("<{} bytes>", self.enc_key.len()))
            .field(
                "hmac_key",
                &self
                    .hmac_key
                    .as_ref()
                    .map(|k| format!("<{} bytes>", k.len())),
            )
            .field("hmac", &self.hmac)
            .field("legacy", &self.legacy)
            .finish()
    }
}

impl SpaKeys {
    /// Keys with HMAC-SHA256 and the standard (non-legacy) key handling, validated.
    pub fn new(enc_key: impl Into<Vec<u8>>, hmac_key: Option<Vec<u8>>) -> Result<Self, KeyError> {
        let keys = SpaKeys {
            enc_key: enc_key.into(),
            hmac_key,
            hmac: HmacDigest::Sha256,
            legacy: false,
        };
        keys.validate()?;
        Ok(keys)
    }

    /// Sets the HMAC algorithm.
    pub fn with_hmac_digest(mut self, hmac: HmacDigest) -> Self {
        self.hmac = hmac;
        self
    }

    /// Sets fwknop's legacy key mode.
    pub fn with_legacy(mut self, legacy: bool) -> Self {
        self.legacy = legacy;
        self
    }

    /// Checks the key lengths (1..=32 bytes for the encryption key, 1..=128 for the HMAC key).
    pub fn validate(&self) -> Result<(), KeyError> {
        match self.enc_key.len() {
            0 => return Err(KeyError::EmptyEncKey),
            n if n > MAX_ENC_KEY_LEN => return Err(KeyError::EncKeyTooLong(n)),
            _ => {}
        }
        if let Some(k) = &self.hmac_key {
            match k.len() {
                0 => return Err(KeyError::EmptyHmacKey),
                n if n > MAX_HMAC_KEY_LEN => return Err(KeyError::HmacKeyTooLong(n)),
                _ => {}
            }
        }
        Ok(())
    }

    /// The AES key and IV for `salt`, honouring legacy mode.
    pub fn derive(&self, salt: &[u8; 8]) -> ([u8; 32], [u8; 16]) {
        if self.legacy && self.enc_key.len() < LEGACY_KEY_LEN {
            let mut padded = [b'0'; LEGACY_KEY_LEN];
            padded[..self.enc_key.len()].copy_from_slice(&self.enc_key);
            evp_bytes_to_key(&padded, salt)
        } else {
            evp_bytes_to_key(&self.enc_key, salt)
        }
    }
}

/// Decodes a `KEY_BASE64` / `HMAC_KEY_BASE64` value (standard alphabet, padding optional).
/// `what` names the key in the error message.
pub fn decode_key_base64(what: &'static str, s: &str) -> Result<Vec<u8>, KeyError> {
    let t = s.trim();
    let unpadded = t.trim_end_matches('=');
    // Accept both padded and unpadded spellings, but nothing else.
    let res = if unpadded.len() == t.len() {
        STANDARD_NO_PAD.decode(t)
    } else {
        STANDARD.decode(t)
    };
    res.map_err(|e| KeyError::Base64 {
        what,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_names() {
        for d in HmacDigest::ALL {
            assert_eq!(d.as_str().parse::<HmacDigest>(), Ok(d));
            assert_eq!(d.as_str().to_uppercase().parse::<HmacDigest>(), Ok(d));
        }
        assert_eq!("SHA3_256".parse(), Ok(HmacDigest::Sha3_256));
        assert_eq!(" sha3-512 ".parse(), Ok(HmacDigest::Sha3_512));
        assert!("sha224".parse::<HmacDigest>().is_err());
        assert!("".parse::<HmacDigest>().is_err());
        let lens: Vec<usize> = HmacDigest::ALL.iter().map(|d| d.b64_len()).collect();
        assert_eq!(lens, [22, 27, 43, 64, 86, 43, 86]);
    }

    #[test]
    fn hash_and_hmac_known_answers() {
        let mut b = [0u8; 88];
        // RFC 4231 test case 2 (HMAC-SHA256, key "Jefe").
        let mac = HmacDigest::Sha256.hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        let hex: String = mac.as_bytes().iter().map(|x| format!("{x:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // RFC 4231 test case 6: a 131-byte key (longer than the block) is hashed first.
        let mac = HmacDigest::Sha256.hmac(
            &[0xaa; 131],
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        let hex: String = mac.as_bytes().iter().map(|x| format!("{x:02x}")).collect();
        assert_eq!(
            hex,
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // Same through the SHA-3 path (SimpleHmac): keyed hashes differ per key.
        assert_ne!(
            HmacDigest::Sha3_256.hmac(&[0xaa; 200], &[b"x"]).as_bytes(),
            HmacDigest::Sha3_256.hmac(&[0xab; 200], &[b"x"]).as_bytes()
        );
        // MD5("") base64.
        let h = HmacDigest::Md5.hash(&[b""]);
        assert_eq!(h.b64(&mut b), b"1B2M2Y8AsgTpgAmY7PhCfg");
        // Every output has the advertised length.
        for d in HmacDigest::ALL {
            assert_eq!(d.hash(&[b"x"]).as_bytes().len(), d.output_len());
            assert_eq!(d.hmac(b"k", &[b"x"]).b64(&mut b).len(), d.b64_len());
        }
    }

    #[test]
    fn key_validation() {
        assert_eq!(SpaKeys::new(vec![], None), Err(KeyError::EmptyEncKey));
        assert_eq!(
            SpaKeys::new(vec![1; 33], None),
            Err(KeyError::EncKeyTooLong(33))
        );
        assert_eq!(
            SpaKeys::new(vec![1; 32], Some(vec![])),
            Err(KeyError::EmptyHmacKey)
        );
        assert_eq!(
            SpaKeys::new(vec![1; 32], Some(vec![2; 129])),
            Err(KeyError::HmacKeyTooLong(129))
        );
        assert!(SpaKeys::new(vec![1; 32], Some(vec![2; 128])).is_ok());
        let k = SpaKeys::new(b"secret".to_vec(), Some(b"hmac".to_vec())).unwrap();
        let dbg = format!("{k:?}");
        assert!(
            !dbg.contains("secret") && dbg.contains("<6 bytes>"),
            "{dbg}"
        );
    }

    #[test]
    fn base64_keys() {
        assert_eq!(decode_key_base64("KEY_BASE64", "AAEC"), Ok(vec![0, 1, 2]));
        assert_eq!(decode_key_base64("KEY_BASE64", "AAE="), Ok(vec![0, 1]));
        assert_eq!(decode_key_base64("KEY_BASE64", "AAE"), Ok(vec![0, 1]));
        assert!(decode_key_base64("KEY_BASE64", "AA*E").is_err());
    }

    #[test]
    fn legacy_padding() {
        let salt = [1, 2, 3, 4, 5, 6, 7, 8];
        let legacy = SpaKeys::new(b"short".to_vec(), None)
            .unwrap()
            .with_legacy(true);
        assert_eq!(
            legacy.derive(&salt),
            evp_bytes_to_key(b"short00000000000", &salt)
        );
        let long = SpaKeys::new(b"a-key-of-20-bytes!!!".to_vec(), None)
            .unwrap()
            .with_legacy(true);
        assert_eq!(
            long.derive(&salt),
            evp_bytes_to_key(b"a-key-of-20-bytes!!!", &salt)
        );
        let normal = SpaKeys::new(b"short".to_vec(), None).unwrap();
        assert_eq!(normal.derive(&salt), evp_bytes_to_key(b"short", &salt));
    }
}
