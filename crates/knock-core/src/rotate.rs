//! Rotating knock sequences derived from a shared secret and the wall clock.
//!
//! Derivation (other clients implement it too, so it is fixed):
//!
//! ```text
//! T    = floor(unix_time / step)
//! h_j  = HMAC-SHA256(secret, b"knock-seq-v1" || u64_be(T) || u32_be(j))     for j = 0, 1, 2, ...
//! c_j  = lo + (u32_be(h_j[0..4]) mod (hi - lo + 1))
//! sequence(T) = the first `length` DISTINCT values among c_0, c_1, c_2, ...
//! ```
//!
//! Every knock of the sequence uses the spec's protocol.

use crate::proto::Protocol;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Domain separation label hashed before the step number.
pub const LABEL: &[u8] = b"knock-seq-v1";

/// Smallest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Why a secret file's text is not a usable secret (the caller names the file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("is not base64: {0}")]
    NotBase64(String),
    #[error(
        "holds {0} bytes, at least {MIN_SECRET_BYTES} are needed (create one with `knock --new-secret`)"
    )]
    TooShort(usize),
}

/// Decodes a secret file's text: standard base64, whitespace (line breaks) ignored, at least
/// [`MIN_SECRET_BYTES`] bytes. The daemon's doors and the client read secrets through this.
pub fn decode_secret(text: &str) -> Result<Vec<u8>, SecretError> {
    use base64::Engine as _;
    let compact: String = text.split_whitespace().collect();
    let secret = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| SecretError::NotBase64(e.to_string()))?;
    if secret.len() < MIN_SECRET_BYTES {
        return Err(SecretError::TooShort(secret.len()));
    }
    Ok(secret)
}

/// Longest rotating sequence accepted (the same limit as knockd's fixed sequences).
pub const MAX_LENGTH: usize = 32;

/// Upper bound on the number of HMAC candidates tried for one step. With `length <= 32` and a
/// range of at least `length` ports the expected number is below 130; reaching this bound would
/// take an astronomically unlikely secret, and is reported as an error rather than looping.
pub const MAX_CANDIDATES: u32 = 1 << 20;

/// A door whose sequence changes every `step` seconds.
#[derive(Clone, PartialEq, Eq)]
pub struct RotatingSpec {
    /// The shared secret (HMAC key). Must not be empty.
    pub secret: Vec<u8>,
    /// Number of knocks, 1..=[`MAX_LENGTH`].
    pub length: usize,
    /// Lowest port of the range (inclusive).
    pub lo: u16,
    /// Highest port of the range (inclusive); `hi - lo + 1` must be at least `length`.
    pub hi: u16,
    /// Seconds per step, at least 1.
    pub step: u64,
    /// Protocol of every knock.
    pub proto: Protocol,
}

impl std::fmt::Debug for RotatingSpec {
    /// Never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingSpec")
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("length", &self.length)
            .field("lo", &self.lo)
            .field("hi", &self.hi)
            .field("step", &self.step)
            .field("proto", &self.proto)
            .finish()
    }
}

/// Why a [`RotatingSpec`] is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotateError {
    #[error("rotating sequence: the secret is empty")]
    EmptySecret,
    #[error("rotating sequence: length {0} is out of range (1..={MAX_LENGTH})")]
    Length(usize),
    #[error("rotating sequence: port range {lo}-{hi} is reversed")]
    ReversedRange { lo: u16, hi: u16 },
    #[error(
        "rotating sequence: port range {lo}-{hi} has {size} ports, fewer than the {length} distinct knocks asked for"
    )]
    RangeTooSmall {
        lo: u16,
        hi: u16,
        size: u32,
        length: usize,
    },
    #[error("rotating sequence: step must be at least 1 second")]
    ZeroStep,
    #[error(
        "rotating sequence: no {length} distinct ports found in {MAX_CANDIDATES} candidates for step {t}"
    )]
    Exhausted { t: u64, length: usize },
}

impl RotatingSpec {
    /// Number of ports in the range.
    pub fn range_size(&self) -> u32 {
        u32::from(self.hi).saturating_sub(u32::from(self.lo)) + 1
    }

    /// Checks every constraint the derivation needs.
    pub fn validate(&self) -> Result<(), RotateError> {
        if self.secret.is_empty() {
            return Err(RotateError::EmptySecret);
        }
        if self.length == 0 || self.length > MAX_LENGTH {
            return Err(RotateError::Length(self.length));
        }
        if self.lo > self.hi {
            return Err(RotateError::ReversedRange {
                lo: self.lo,
                hi: self.hi,
            });
        }
        let size = self.range_size();
        if (size as usize) < self.length {
            return Err(RotateError::RangeTooSmall {
                lo: self.lo,
                hi: self.hi,
                size,
                length: self.length,
            });
        }
        if self.step == 0 {
            return Err(RotateError::ZeroStep);
        }
        Ok(())
    }

    /// Whether `port` lies in the door's range.
    #[inline]
    pub fn in_range(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

/// The step number `floor(unix / step)`; a zero `step` is treated as 1.
#[inline]
pub fn current_step(unix: u64, step: u64) -> u64 {
    unix / step.max(1)
}

/// The sequence (ports) of step `t`.
pub fn sequence_at(spec: &RotatingSpec, t: u64) -> Result<Vec<u16>, RotateError> {
    let mut out = Vec::with_capacity(spec.length);
    sequence_into(spec, t, &mut out)?;
    Ok(out)
}

/// Like [`sequence_at`], writing into `out` (cleared first) so a caller can reuse its buffer.
pub fn sequence_into(spec: &RotatingSpec, t: u64, out: &mut Vec<u16>) -> Result<(), RotateError> {
    spec.validate()?;
    out.clear();
    // HMAC accepts keys of any length; the error branch cannot happen but is not unwrapped.
    let keyed =
        Hmac::<Sha256>::new_from_slice(&spec.secret).map_err(|_| RotateError::EmptySecret)?;
    let size = spec.range_size();
    let mut j: u32 = 0;
    while out.len() < spec.length {
        if j >= MAX_CANDIDATES {
            out.clear();
            return Err(RotateError::Exhausted {
                t,
                length: spec.length,
            });
        }
        let mut mac = keyed.clone();
        mac.update(LABEL);
        mac.update(&t.to_be_bytes());
        mac.update(&j.to_be_bytes());
        let h = mac.finalize().into_bytes();
        let word = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        // `size` <= 65536 and the remainder < size, so the sum fits in u16.
        let port = (u32::from(spec.lo) + word % size) as u16;
        if !out.contains(&port) {
            out.push(port);
        }
        j += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(secret: Vec<u8>, length: usize, lo: u16, hi: u16, step: u64) -> RotatingSpec {
        RotatingSpec {
            secret,
            length,
            lo,
            hi,
            step,
            proto: Protocol::Tcp,
        }
    }

    fn secret_00_1f() -> Vec<u8> {
        (0u8..32).collect()
    }

    // Vectors computed independently with Python's hmac/hashlib (see the report / README) and
    // pinned here; any change in the derivation breaks them.
    #[test]
    fn pinned_vectors() {
        let s = spec(secret_00_1f(), 4, 10000, 60000, 30);
        let t = current_step(1_795_646_666, 30);
        assert_eq!(t, 59_854_888);
        assert_eq!(sequence_at(&s, t).unwrap(), VEC1);
        assert_eq!(
            sequence_at(&s, t - 1).unwrap(),
            [58188, 44863, 45493, 57059]
        );
        assert_eq!(
            sequence_at(&s, t + 1).unwrap(),
            [27143, 42197, 41925, 29688]
        );

        let s2 = spec(
            b"correct horse battery staple".to_vec(),
            6,
            20000,
            20009,
            60,
        );
        let t2 = current_step(1_700_000_000, 60);
        assert_eq!(t2, 28_333_333);
        assert_eq!(sequence_at(&s2, t2).unwrap(), VEC2);

        let s3 = spec(vec![0xff; 1], 3, 0, 65535, 1);
        assert_eq!(sequence_at(&s3, 0).unwrap(), VEC3);
    }

    const VEC1: [u16; 4] = [33600, 44638, 36429, 17820];
    const VEC2: [u16; 6] = [20008, 20006, 20007, 20002, 20004, 20000];
    const VEC3: [u16; 3] = [60322, 462, 28111];

    #[test]
    fn deterministic_distinct_in_range() {
        let s = spec(secret_00_1f(), 8, 1000, 1015, 30);
        for t in 0..200 {
            let a = sequence_at(&s, t).unwrap();
            let b = sequence_at(&s, t).unwrap();
            assert_eq!(a, b);
            assert_eq!(a.len(), 8);
            let mut sorted = a.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 8, "{a:?}");
            assert!(a.iter().all(|&p| (1000..=1015).contains(&p)));
        }
        // Different steps give different sequences (with overwhelming probability for a wide
        // range); this checks T is actually hashed.
        let w = spec(secret_00_1f(), 4, 10000, 60000, 30);
        assert_ne!(sequence_at(&w, 1).unwrap(), sequence_at(&w, 2).unwrap());
        // And the secret too.
        let mut other = w.clone();
        other.secret[0] ^= 1;
        assert_ne!(sequence_at(&w, 1).unwrap(), sequence_at(&other, 1).unwrap());
    }

    #[test]
    fn full_range_terminates() {
        // length == range size: a permutation of the whole range.
        let s = spec(secret_00_1f(), 32, 500, 531, 10);
        let mut v = sequence_at(&s, 7).unwrap();
        v.sort_unstable();
        assert_eq!(v, (500..=531).collect::<Vec<u16>>());
        let edge = spec(secret_00_1f(), 2, 65534, 65535, 10);
        let mut e = sequence_at(&edge, 3).unwrap();
        e.sort_unstable();
        assert_eq!(e, vec![65534, 65535]);
    }

    #[test]
    fn validation() {
        assert_eq!(
            spec(vec![], 4, 1, 100, 30).validate(),
            Err(RotateError::EmptySecret)
        );
        assert_eq!(
            spec(vec![1], 0, 1, 100, 30).validate(),
            Err(RotateError::Length(0))
        );
        assert_eq!(
            spec(vec![1], 33, 1, 100, 30).validate(),
            Err(RotateError::Length(33))
        );
        assert_eq!(
            spec(vec![1], 4, 100, 1, 30).validate(),
            Err(RotateError::ReversedRange { lo: 100, hi: 1 })
        );
        let small = spec(vec![1], 4, 10, 12, 30);
        assert_eq!(
            small.validate(),
            Err(RotateError::RangeTooSmall {
                lo: 10,
                hi: 12,
                size: 3,
                length: 4
            })
        );
        assert!(sequence_at(&small, 1).is_err());
        assert_eq!(
            spec(vec![1], 4, 1, 100, 0).validate(),
            Err(RotateError::ZeroStep)
        );
        assert!(spec(vec![1], 4, 1, 4, 1).validate().is_ok());
        assert_eq!(spec(vec![1], 1, 0, 65535, 1).range_size(), 65536);
        assert!(!format!("{:?}", spec(vec![0xAB; 3], 4, 1, 100, 30)).contains("171"));
    }

    #[test]
    fn steps() {
        assert_eq!(current_step(0, 30), 0);
        assert_eq!(current_step(29, 30), 0);
        assert_eq!(current_step(30, 30), 1);
        assert_eq!(current_step(100, 0), 100);
    }
}
