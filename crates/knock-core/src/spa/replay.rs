//! A bounded replay cache keyed on the decrypted content of packets.
//!
//! fwknop keys its cache on the raw packet text, which a `=` appended to a non-HMAC packet
//! defeats; here the key is SHA-256 of the plaintext, so every wire form of the same request
//! maps to the same entry.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// SHA-256 of a packet's plaintext.
pub type ReplayDigest = [u8; 32];

/// The key under which a plaintext is remembered.
pub fn replay_digest(plaintext: &[u8]) -> ReplayDigest {
    Sha256::digest(plaintext).into()
}

/// First line of the persisted form.
pub const REPLAY_FILE_HEADER: &str = "# knock SPA replay cache v1";

/// Default hard cap on entries (about 3 MB of memory at most).
pub const DEFAULT_MAX_ENTRIES: usize = 65_536;

/// The outcome of [`ReplayCache::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayVerdict {
    /// First time seen: remembered, accept the packet.
    Fresh,
    /// Seen before: reject.
    Replayed,
    /// The packet's timestamp is already outside the window, so the cache cannot remember it
    /// long enough: reject (the age check should have caught it).
    OutsideWindow,
    /// The cache holds `max_entries` live entries: reject rather than forget a live entry
    /// (failing closed; only authenticated packets get this far).
    Full,
}

/// Remembers the packets accepted within the last `window` seconds.
///
/// An entry lives until `now > timestamp + window`, where `timestamp` is the one inside the
/// packet; with `window >= max_age` of the age check, a replay is always either remembered or
/// too old to pass the age check. The number of entries is bounded by the accept rate times
/// `2 × window` (timestamps may be up to `max_age` ahead) and in any case by `max_entries`.
#[derive(Debug, Clone)]
pub struct ReplayCache {
    window: u64,
    max_entries: usize,
    entries: HashMap<ReplayDigest, u64>,
    /// (expiry, digest), ordered by expiry for pruning.
    by_expiry: BTreeSet<(u64, ReplayDigest)>,
}

impl ReplayCache {
    /// An empty cache. `window` should be at least the age check's `max_age`.
    pub fn new(window: u64, max_entries: usize) -> Self {
        ReplayCache {
            window,
            max_entries,
            entries: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    pub fn window(&self) -> u64 {
        self.window
    }

    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `digest` is remembered (without pruning).
    pub fn contains(&self, digest: &ReplayDigest) -> bool {
        self.entries.contains_key(digest)
    }

    /// Drops the entries that expired before `now`.
    pub fn prune(&mut self, now: u64) {
        while let Some(&(expiry, digest)) = self.by_expiry.first() {
            if expiry >= now {
                break;
            }
            self.by_expiry.pop_first();
            self.entries.remove(&digest);
        }
    }

    /// Prunes, then looks `digest` up and remembers it if it is new.
    pub fn check(&mut self, digest: ReplayDigest, msg_timestamp: u64, now: u64) -> ReplayVerdict {
        self.prune(now);
        if self.entries.contains_key(&digest) {
            return ReplayVerdict::Replayed;
        }
        let expiry = msg_timestamp.saturating_add(self.window);
        if expiry < now {
            return ReplayVerdict::OutsideWindow;
        }
        if self.entries.len() >= self.max_entries {
            return ReplayVerdict::Full;
        }
        self.insert(digest, msg_timestamp);
        ReplayVerdict::Fresh
    }

    /// `true` if the packet is new (and now remembered), `false` for a replay or any other
    /// refusal of [`ReplayCache::check`].
    pub fn check_and_insert(&mut self, digest: ReplayDigest, msg_timestamp: u64, now: u64) -> bool {
        self.check(digest, msg_timestamp, now) == ReplayVerdict::Fresh
    }

    fn insert(&mut self, digest: ReplayDigest, msg_timestamp: u64) {
        let expiry = msg_timestamp.saturating_add(self.window);
        if let Some(old) = self.entries.insert(digest, msg_timestamp) {
            self.by_expiry
                .remove(&(old.saturating_add(self.window), digest));
        }
        self.by_expiry.insert((expiry, digest));
    }

    /// The persisted form: a header line, then one `<64 hex digits> <timestamp>` line per
    /// entry, oldest first.
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(32 + self.entries.len() * 78);
        s.push_str(REPLAY_FILE_HEADER);
        s.push('\n');
        for (_, digest) in &self.by_expiry {
            let ts = self.entries.get(digest).copied().unwrap_or_default();
            s.push_str(&entry_line(digest, ts));
        }
        s
    }

    /// Reads [`ReplayCache::to_text`] output. Blank lines and `#` comments are skipped;
    /// entries already expired at `now` are dropped; if more than `max_entries` remain, the
    /// newest are kept (only happens when the cap was lowered).
    pub fn from_text(
        text: &str,
        window: u64,
        max_entries: usize,
        now: u64,
    ) -> Result<Self, ReplayParseError> {
        let mut all: Vec<(u64, ReplayDigest)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let t = raw.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let err = |reason: String| ReplayParseError { line, reason };
            let mut parts = t.split_ascii_whitespace();
            let (Some(hex), Some(ts), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(err(format!(
                    "expected \"<64 hex digits> <timestamp>\", got \"{}\"",
                    t.escape_debug()
                )));
            };
            let digest = parse_hex32(hex).ok_or_else(|| {
                err(format!(
                    "bad digest \"{}\" (expected 64 hex digits)",
                    hex.escape_debug()
                ))
            })?;
            if ts.is_empty() || !ts.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(format!("bad timestamp \"{}\"", ts.escape_debug())));
            }
            let ts: u64 = ts
                .parse()
                .map_err(|_| err(format!("timestamp \"{ts}\" out of range")))?;
            all.push((ts, digest));
        }
        let mut cache = ReplayCache::new(window, max_entries);
        // Newest first, so the cap keeps the newest.
        all.sort_unstable_by(|a, b| b.cmp(a));
        for (ts, digest) in all {
            if cache.entries.len() >= max_entries {
                break;
            }
            if ts.saturating_add(window) < now || cache.entries.contains_key(&digest) {
                continue;
            }
            cache.insert(digest, ts);
        }
        Ok(cache)
    }
}

/// One entry of the persisted form (`<64 hex digits> <timestamp>\n`): what a caller appends
/// to the file when it accepts a packet, instead of rewriting the whole cache;
/// [`ReplayCache::from_text`] reads appended and duplicate lines.
pub fn entry_line(digest: &ReplayDigest, ts: u64) -> String {
    let mut s = String::with_capacity(80);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    let _ = writeln!(s, " {ts}");
    s
}

fn parse_hex32(s: &str) -> Option<ReplayDigest> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// A malformed line in a persisted replay cache.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replay cache line {line}: {reason}")]
pub struct ReplayParseError {
    pub line: usize,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> ReplayDigest {
        replay_digest(&[n])
    }

    #[test]
    fn fresh_then_replayed() {
        let mut c = ReplayCache::new(120, 10);
        assert!(c.check_and_insert(d(1), 1000, 1000));
        assert_eq!(c.check(d(1), 1000, 1001), ReplayVerdict::Replayed);
        assert!(c.check_and_insert(d(2), 1000, 1001));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn expiry_and_window() {
        let mut c = ReplayCache::new(120, 10);
        assert!(c.check_and_insert(d(1), 1000, 1000));
        // Still remembered at the last second the age check would accept it.
        assert_eq!(c.check(d(1), 1000, 1120), ReplayVerdict::Replayed);
        // Gone afterwards (the age check rejects it from then on).
        c.prune(1121);
        assert!(c.is_empty());
        assert_eq!(c.check(d(1), 1000, 1121), ReplayVerdict::OutsideWindow);
        assert!(c.is_empty());
        // Future timestamps live until their own timestamp + window.
        assert!(c.check_and_insert(d(3), 2000, 1900));
        c.prune(2100);
        assert!(c.contains(&d(3)));
        c.prune(2121);
        assert!(!c.contains(&d(3)));
    }

    #[test]
    fn hard_cap_fails_closed() {
        let mut c = ReplayCache::new(120, 3);
        for i in 0..3 {
            assert!(c.check_and_insert(d(i), 1000, 1000));
        }
        assert_eq!(c.check(d(9), 1000, 1000), ReplayVerdict::Full);
        assert_eq!(c.check(d(0), 1000, 1000), ReplayVerdict::Replayed);
        // Room again once old entries expire.
        assert_eq!(c.check(d(9), 1200, 1200), ReplayVerdict::Fresh);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn persistence_round_trip() {
        let mut c = ReplayCache::new(120, 100);
        for i in 0..5u8 {
            assert!(c.check_and_insert(d(i), 1000 + u64::from(i) * 10, 1000));
        }
        let text = c.to_text();
        assert!(text.starts_with(REPLAY_FILE_HEADER));
        assert_eq!(text.lines().count(), 6);
        let mut back = ReplayCache::from_text(&text, 120, 100, 1000).unwrap();
        assert_eq!(back.len(), 5);
        for i in 0..5u8 {
            assert_eq!(back.check(d(i), 1000, 1000), ReplayVerdict::Replayed);
        }
        assert_eq!(back.to_text(), text);
        // Loading later drops what expired meanwhile (1000 + 120 < 1125; 1010 + 120 >= 1125).
        let later = ReplayCache::from_text(&text, 120, 100, 1125).unwrap();
        assert_eq!(later.len(), 4);
        assert!(!later.contains(&d(0)));
        // A lowered cap keeps the newest.
        let capped = ReplayCache::from_text(&text, 120, 2, 1000).unwrap();
        assert!(capped.contains(&d(4)) && capped.contains(&d(3)) && !capped.contains(&d(2)));
    }

    #[test]
    fn parse_errors_name_the_line() {
        let good = format!("{} 5", "ab".repeat(32));
        let cases = [
            (format!("# c\n\n{good}\nzz 5\n"), 4, "bad digest"),
            (
                format!("{good}\n{} x\n", "ab".repeat(32)),
                2,
                "bad timestamp",
            ),
            (format!("{good}\n{}\n", "ab".repeat(32)), 2, "expected"),
            (format!("{good} 7\n"), 1, "expected"),
            (format!("{} 5\n", "ab".repeat(31)), 1, "bad digest"),
            (
                format!("{} 99999999999999999999999\n", "ab".repeat(32)),
                1,
                "out of range",
            ),
        ];
        for (text, line, what) in cases {
            let e = ReplayCache::from_text(&text, 120, 10, 0).unwrap_err();
            assert_eq!(e.line, line, "{e}");
            assert!(e.to_string().contains(what), "{e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("replay cache line {line}:")),
                "{e}"
            );
        }
        assert!(
            ReplayCache::from_text(&format!("{REPLAY_FILE_HEADER}\n{good}\n"), 120, 10, 0).is_ok()
        );
    }
}
