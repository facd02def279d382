//! Rotating sequences: knock the sequence a rotating door expects now.
//!
//! The door and the client share a secret file (base64, at least 32 bytes once decoded; the
//! daemon reads the same format) and the parameters `length`, `range`, `step` and protocol.
//! The sequence of step `T = floor(now / step)` is `knock_core::rotate::sequence_at`; the
//! daemon also accepts the sequences of `T - 1` and `T + 1`, so a sequence computed just
//! before a step boundary still opens.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use knock_core::config::{DEFAULT_ROTATING_LENGTH, DEFAULT_ROTATING_RANGE, DEFAULT_ROTATING_STEP};
use knock_core::proto::Protocol;
use knock_core::rotate::{
    MAX_LENGTH, MIN_SECRET_BYTES, RotateError, RotatingSpec, SecretError, current_step, sequence_at,
};

use crate::cli::KnockPlan;
use crate::env::Environment;

/// Size of a secret made by `--new-secret`.
pub const NEW_SECRET_BYTES: usize = 32;

/// `LO-HI`, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

/// Parses `LO-HI` (ports as `knock_core::proto::parse_port` reads them, LO <= HI).
pub fn parse_range(s: &str) -> Result<PortRange, String> {
    knock_core::proto::parse_port_range(s)
        .map(|(lo, hi)| PortRange { lo, hi })
        .map_err(|e| e.to_string())
}

/// Parses a sequence length: 1 to 32 knocks.
pub fn parse_length(s: &str) -> Result<usize, String> {
    let t = s.trim();
    t.parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_LENGTH).contains(n) && t.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("\"{t}\" is not a number of knocks from 1 to {MAX_LENGTH}"))
}

/// Parses a step: whole seconds, at least 1.
pub fn parse_step(s: &str) -> Result<u64, String> {
    let t = s.trim();
    t.parse::<u64>()
        .ok()
        .filter(|n| *n >= 1 && t.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("\"{t}\" is not a whole number of seconds (at least 1)"))
}

/// Rotating-sequence options.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Rotating sequences")]
pub struct RotatingArgs {
    /// Knock the current sequence of a rotating door sharing this secret (base64 file)
    #[arg(long = "secret-file", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,

    /// Knocks per sequence, as the door's sequence_length [default: 4]
    #[arg(long = "length", value_name = "N", value_parser = parse_length)]
    pub length: Option<usize>,

    /// Port range, as the door's port_range [default: 10000-60000]
    #[arg(long = "range", value_name = "LO-HI", value_parser = parse_range)]
    pub range: Option<PortRange>,

    /// Seconds per sequence, as the door's step [default: 30]
    #[arg(long = "step", value_name = "SECONDS", value_parser = parse_step)]
    pub step: Option<u64>,

    /// Print the current ports instead of knocking (validity on stderr)
    #[arg(long = "print")]
    pub print: bool,

    /// Print a new random secret (base64 of 32 bytes) for a secret file, and exit
    #[arg(long = "new-secret")]
    pub new_secret: bool,
}

/// Why the rotating options do not make a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotatingError {
    #[error("cannot read secret file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("secret file {path} is not base64: {reason}")]
    Base64 { path: String, reason: String },
    #[error(
        "secret file {path} holds {len} bytes, at least {MIN_SECRET_BYTES} are needed (create one with `knock --new-secret`)"
    )]
    Short { path: String, len: usize },
    #[error(transparent)]
    Spec(#[from] RotateError),
}

/// What to do with the current sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotatingAction {
    /// `--print`.
    Print,
    /// Knock it: the plan's `knocks` are filled in with the current sequence when sent.
    Knock(KnockPlan),
}

/// A validated rotating request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatingPlan {
    pub spec: RotatingSpec,
    pub action: RotatingAction,
}

/// The sequence valid at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// Step number `floor(now / step)`.
    pub t: u64,
    pub ports: Vec<u16>,
    /// Seconds until the next step starts (1 to `step`).
    pub remaining: u64,
}

/// The sequence of `spec` at `now` (Unix seconds).
pub fn current(spec: &RotatingSpec, now: u64) -> Result<Current, RotateError> {
    let step = spec.step.max(1);
    let t = current_step(now, step);
    let ports = sequence_at(spec, t)?;
    Ok(Current {
        t,
        ports,
        remaining: step - now % step,
    })
}

/// `--print`'s stdout line: the ports, space-separated.
pub fn ports_line(ports: &[u16]) -> String {
    ports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `--print`'s stderr line.
pub fn validity_line(c: &Current, spec: &RotatingSpec) -> String {
    format!(
        "valid for {} more second{} (step {} of {} s)",
        c.remaining,
        if c.remaining == 1 { "" } else { "s" },
        c.t,
        spec.step
    )
}

/// Decodes a secret file's text: base64 with any whitespace, at least 32 bytes.
pub fn decode_secret(text: &str, path: &Path) -> Result<Vec<u8>, RotatingError> {
    let path = path.display().to_string();
    knock_core::rotate::decode_secret(text).map_err(|e| match e {
        SecretError::NotBase64(reason) => RotatingError::Base64 { path, reason },
        SecretError::TooShort(len) => RotatingError::Short { path, len },
    })
}

/// `--new-secret`'s output for these random bytes.
pub fn new_secret_text(bytes: &[u8]) -> String {
    format!("{}\n", STANDARD.encode(bytes))
}

impl RotatingArgs {
    /// Rotating options given without `--secret-file` (they need it), as `--name`s.
    pub fn options_given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.length.is_some() {
            v.push("--length");
        }
        if self.range.is_some() {
            v.push("--range");
        }
        if self.step.is_some() {
            v.push("--step");
        }
        if self.print {
            v.push("--print");
        }
        v
    }

    /// Reads the secret and builds the spec. `udp` is `-u/--udp`; `knock` is the knock plan to
    /// fill (ignored with `--print`).
    pub fn into_plan(
        self,
        path: &Path,
        udp: bool,
        knock: Option<KnockPlan>,
        env: &dyn Environment,
    ) -> Result<RotatingPlan, RotatingError> {
        let text = env.read_file(path).map_err(|e| RotatingError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let secret = decode_secret(&text, path)?;
        let range = self.range.unwrap_or(PortRange {
            lo: DEFAULT_ROTATING_RANGE.0,
            hi: DEFAULT_ROTATING_RANGE.1,
        });
        let spec = RotatingSpec {
            secret,
            length: self.length.unwrap_or(DEFAULT_ROTATING_LENGTH),
            lo: range.lo,
            hi: range.hi,
            step: self.step.unwrap_or(DEFAULT_ROTATING_STEP),
            proto: if udp { Protocol::Udp } else { Protocol::Tcp },
        };
        spec.validate()?;
        let action = match knock {
            Some(k) if !self.print => RotatingAction::Knock(k),
            _ => RotatingAction::Print,
        };
        Ok(RotatingPlan { spec, action })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(secret: Vec<u8>) -> RotatingSpec {
        RotatingSpec {
            secret,
            length: 4,
            lo: 10000,
            hi: 60000,
            step: 30,
            proto: Protocol::Tcp,
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(
            parse_range("10000-60000"),
            Ok(PortRange {
                lo: 10000,
                hi: 60000
            })
        );
        assert_eq!(parse_range(" 5 - 5 "), Ok(PortRange { lo: 5, hi: 5 }));
        assert_eq!(
            parse_range("100").unwrap_err(),
            "\"100\" is not LOW-HIGH (e.g. 10000-60000)"
        );
        assert_eq!(
            parse_range("9-5").unwrap_err(),
            "\"9-5\" is reversed (LOW must not exceed HIGH)"
        );
        assert_eq!(parse_range("1-70000").unwrap_err(), "bad port \"70000\"");
        assert_eq!(parse_range("a-5").unwrap_err(), "bad port \"a\"");
    }

    #[test]
    fn lengths_and_steps() {
        assert_eq!(parse_length("1"), Ok(1));
        assert_eq!(parse_length("32"), Ok(32));
        for bad in ["0", "33", "x", "-1", "+4", ""] {
            assert_eq!(
                parse_length(bad).unwrap_err(),
                format!("\"{bad}\" is not a number of knocks from 1 to 32")
            );
        }
        assert_eq!(parse_step("1"), Ok(1));
        assert_eq!(parse_step("86400"), Ok(86400));
        for bad in ["0", "-5", "1.5", "x"] {
            assert_eq!(
                parse_step(bad).unwrap_err(),
                format!("\"{bad}\" is not a whole number of seconds (at least 1)")
            );
        }
    }

    #[test]
    fn secrets() {
        let p = Path::new("/etc/knock/door.secret");
        let b64 = STANDARD.encode((0u8..32).collect::<Vec<_>>());
        // Whitespace anywhere is ignored.
        let spaced = format!("  {}\n{}\n", &b64[..20], &b64[20..]);
        assert_eq!(
            decode_secret(&spaced, p).unwrap(),
            (0u8..32).collect::<Vec<_>>()
        );
        let e = decode_secret(&STANDARD.encode([1u8; 31]), p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "secret file /etc/knock/door.secret holds 31 bytes, at least 32 are needed (create one with `knock --new-secret`)"
        );
        let e = decode_secret("not base64!", p).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("secret file /etc/knock/door.secret is not base64: "),
            "{e}"
        );
        let e = decode_secret("", p).unwrap_err();
        assert!(matches!(e, RotatingError::Short { len: 0, .. }));
    }

    #[test]
    fn current_sequence_and_validity() {
        // The core's pinned vector: secret 00..1f, 4 knocks in 10000-60000, step 30.
        let s = spec((0u8..32).collect());
        let now = 1_795_646_666;
        let c = current(&s, now).unwrap();
        assert_eq!(c.t, 59_854_888);
        assert_eq!(c.ports, [33600, 44638, 36429, 17820]);
        assert_eq!(c.remaining, 30 - now % 30);
        assert_eq!(ports_line(&c.ports), "33600 44638 36429 17820");
        assert_eq!(
            validity_line(&c, &s),
            format!(
                "valid for {} more seconds (step 59854888 of 30 s)",
                c.remaining
            )
        );
        // The first second of a step: the whole step remains; the last: one second.
        let start = 59_854_888 * 30;
        assert_eq!(current(&s, start).unwrap().remaining, 30);
        let last = current(&s, start + 29).unwrap();
        assert_eq!(last.remaining, 1);
        assert_eq!(last.ports, c.ports);
        assert!(validity_line(&last, &s).starts_with("valid for 1 more second ("));
        assert_ne!(current(&s, start + 30).unwrap().ports, c.ports);
    }

    #[test]
    fn new_secret_round_trips() {
        let bytes = [7u8; NEW_SECRET_BYTES];
        let text = new_secret_text(&bytes);
        assert!(text.ends_with('\n'));
        assert_eq!(decode_secret(&text, Path::new("x")).unwrap(), bytes);
    }
}
