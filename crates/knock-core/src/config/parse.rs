//! The knockd.conf parser, written by hand to match knockd 0.8's reading of the file.
//!
//! Grammar (see `shared/spec/knockd-compat.md`): lines are trimmed; blank lines and lines
//! starting with `#` are ignored (no inline comments); `[name]` opens a section, `[options]`
//! being the global one and any other name a door; `key = value` splits at the first `=`, keys
//! are case-insensitive and values literal; `UseSyslog` alone is the only key without a value.
//! Unlike knockd, a trailing `\` continues a line (joined with one space), blanks are allowed
//! around commas, and every error names the file, the line and the offending token.

use std::fmt;
use std::net::IpAddr;

use base64::Engine;

use super::*;
use crate::addr::BadNet;
use crate::schedule::{ScheduleError, parse_schedule};
use crate::tcpflags::{FlagRuleError, parse_flag_rule};

/// A configuration error, located: `knockd.conf:4: bad port "notaport" in sequence`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {kind}")]
pub struct ConfigError {
    /// The file name as the caller gave it.
    pub file: String,
    /// 1-based line number (the first line of a continued line).
    pub line: usize,
    pub kind: ErrorKind,
}

/// What is wrong, with the offending token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("syntax error: \"{0}\" is neither a [section] nor a key = value line")]
    Syntax(String),
    #[error("empty section name \"[]\"")]
    EmptySectionName,
    #[error("\"{0}\" appears before any [section]")]
    OutsideSection(String),
    #[error("unknown key \"{0}\" in [options]")]
    UnknownOption(String),
    #[error("unknown key \"{0}\" in door [{1}]")]
    UnknownDoorKey(String, String),
    #[error("\"{0}\" needs a value (\"{0} = ...\")")]
    MissingValue(String),
    #[error("bad port \"{0}\" in {1}")]
    BadPort(String, &'static str),
    #[error("unknown protocol \"{0}\" in {1} (expected tcp or udp)")]
    BadProtocol(String, &'static str),
    #[error("sequence has {0} knocks, at most 32 are allowed")]
    TooManyKnocks(usize),
    #[error("empty sequence")]
    EmptySequence,
    #[error("empty entry in sequence \"{0}\"")]
    EmptySequenceEntry(String),
    #[error("{0} in tcpflags")]
    BadFlags(FlagRuleError),
    #[error("bad value \"{value}\" for {key} (expected {expected})")]
    BadValue {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("{0} in {1}")]
    BadNet(BadNet, String),
    #[error("{0}")]
    BadSchedule(ScheduleError),
    #[error("{key} = {value}: a grant lasts 1 to {MAX_GRANT_SECS} seconds (30 days)")]
    GrantTime { key: &'static str, value: u64 },
    #[error("{key} is {len} bytes long, at most {max} are allowed")]
    KeyTooLong { key: String, len: usize, max: usize },
    #[error(
        "door [{0}] has no sequence (give Sequence, One_Time_Sequences, secret_file, spa_key or schedule)"
    )]
    NoTrigger(String),
    #[error("door [{door}]: {a} and {b} cannot be used together")]
    Conflict {
        door: String,
        a: &'static str,
        b: &'static str,
    },
    #[error("door [{door}]: {key} needs {needs}")]
    Needs {
        door: String,
        key: &'static str,
        needs: &'static str,
    },
}

/// Door keys and their canonical names (aliases map to the same name).
const DOOR_KEYS: &[(&str, &str)] = &[
    ("sequence", "sequence"),
    ("one_time_sequences", "one_time_sequences"),
    ("seq_timeout", "seq_timeout"),
    ("timeout", "seq_timeout"),
    ("tcpflags", "tcpflags"),
    ("start_command", "start_command"),
    ("command", "start_command"),
    ("start_command_6", "start_command_6"),
    ("command_6", "start_command_6"),
    ("cmd_timeout", "cmd_timeout"),
    ("stop_command", "stop_command"),
    ("stop_command_6", "stop_command_6"),
    ("target", "target"),
    ("open", "open"),
    ("open_timeout", "open_timeout"),
    ("from", "from"),
    ("schedule", "schedule"),
    ("secret_file", "secret_file"),
    ("sequence_length", "sequence_length"),
    ("port_range", "port_range"),
    ("step", "step"),
    ("protocol", "protocol"),
    ("spa_key", "spa_key"),
    ("spa_key_base64", "spa_key_base64"),
    ("spa_hmac_key", "spa_hmac_key"),
    ("spa_hmac_key_base64", "spa_hmac_key_base64"),
    ("spa_hmac_digest", "spa_hmac_digest"),
    ("spa_port", "spa_port"),
    ("spa_max_age", "spa_max_age"),
    ("max_open_timeout", "max_open_timeout"),
    ("require_user", "require_user"),
    ("require_source_address", "require_source_address"),
    ("spa_legacy_mode", "spa_legacy_mode"),
    ("spa_require_hmac", "spa_require_hmac"),
    ("spa_allow_command", "spa_allow_command"),
];

const ROTATING_KEYS: &[&str] = &["sequence_length", "port_range", "step", "protocol"];
const SPA_KEYS: &[&str] = &[
    "spa_hmac_key",
    "spa_hmac_key_base64",
    "spa_hmac_digest",
    "spa_port",
    "spa_max_age",
    "max_open_timeout",
    "require_user",
    "require_source_address",
    "spa_legacy_mode",
    "spa_require_hmac",
    "spa_allow_command",
];

/// One logical line: text and the number of its first physical line.
struct Line {
    no: usize,
    text: String,
}

/// Joins continued lines (trailing `\`) and numbers the result.
fn logical_lines(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut pending: Option<Line> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        let (piece, continues) = match trimmed.strip_suffix('\\') {
            Some(head) => (head.trim_end(), true),
            None => (trimmed, false),
        };
        let line = match pending.take() {
            Some(mut acc) => {
                if !piece.is_empty() {
                    if !acc.text.is_empty() {
                        acc.text.push(' ');
                    }
                    acc.text.push_str(piece);
                }
                acc
            }
            None => Line {
                no: i + 1,
                text: piece.to_string(),
            },
        };
        // A comment line never continues: knockd has no continuations, and a `#` line ending
        // in `\` must not swallow the next directive.
        if continues && !line.text.starts_with('#') {
            pending = Some(line);
        } else {
            out.push(line);
        }
    }
    out.extend(pending);
    out
}

/// A door's raw directives, validated when the section ends.
struct DoorDraft {
    name: String,
    line: usize,
    /// (canonical key, value, line), in file order; later lines win.
    values: Vec<(&'static str, String, usize)>,
}

impl DoorDraft {
    fn get(&self, key: &str) -> Option<(&str, usize)> {
        self.values
            .iter()
            .rev()
            .find(|(k, _, _)| *k == key)
            .map(|(_, v, l)| (v.as_str(), *l))
    }

    fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// Parses the text of a knockd.conf; `file` is only used in error messages.
pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
    let err = |line: usize, kind: ErrorKind| ConfigError {
        file: file.to_string(),
        line,
        kind,
    };
    let mut config = Config::default();
    enum Section {
        None,
        Options,
        Door(DoorDraft),
    }
    let mut section = Section::None;

    for Line { no, text } in logical_lines(text) {
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        if text.starts_with('[') && text.ends_with(']') {
            let name = text[1..text.len() - 1].trim();
            if name.is_empty() {
                return Err(err(no, ErrorKind::EmptySectionName));
            }
            if let Section::Door(draft) = std::mem::replace(&mut section, Section::None) {
                config
                    .doors
                    .push(finish_door(draft).map_err(|(l, k)| err(l, k))?);
            }
            section = if name == "options" {
                Section::Options
            } else {
                Section::Door(DoorDraft {
                    name: name.to_string(),
                    line: no,
                    values: Vec::new(),
                })
            };
            continue;
        }
        let (key, value) = match text.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), Some(v.trim().to_string())),
            None => (text.clone(), None),
        };
        if value.is_none() && !key.eq_ignore_ascii_case("usesyslog") {
            let shown = text.clone();
            return Err(err(
                no,
                match &section {
                    Section::None => ErrorKind::OutsideSection(shown),
                    _ if key.contains(char::is_whitespace) => ErrorKind::Syntax(shown),
                    _ => ErrorKind::MissingValue(shown),
                },
            ));
        }
        match &mut section {
            Section::None => return Err(err(no, ErrorKind::OutsideSection(key))),
            Section::Options => {
                set_option(&mut config.options, &key, value.as_deref()).map_err(|k| err(no, k))?
            }
            Section::Door(draft) => {
                let canonical = DOOR_KEYS
                    .iter()
                    .find(|(alias, _)| alias.eq_ignore_ascii_case(&key))
                    .map(|&(_, c)| c)
                    .ok_or_else(|| {
                        err(
                            no,
                            ErrorKind::UnknownDoorKey(key.clone(), draft.name.clone()),
                        )
                    })?;
                let value = value.ok_or_else(|| err(no, ErrorKind::MissingValue(key.clone())))?;
                draft.values.push((canonical, value, no));
            }
        }
    }
    if let Section::Door(draft) = section {
        config
            .doors
            .push(finish_door(draft).map_err(|(l, k)| err(l, k))?);
    }
    Ok(config)
}

fn bad_value(key: &str, value: &str, expected: &'static str) -> ErrorKind {
    ErrorKind::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        expected,
    }
}

fn parse_u64(key: &str, value: &str, expected: &'static str) -> Result<u64, ErrorKind> {
    let v = value.trim();
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_value(key, v, expected));
    }
    v.parse().map_err(|_| bad_value(key, v, expected))
}

fn parse_bool(key: &str, value: &str) -> Result<bool, ErrorKind> {
    match value.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "on" | "1" => Ok(true),
        "no" | "n" | "false" | "off" | "0" => Ok(false),
        _ => Err(bad_value(key, value.trim(), "yes or no")),
    }
}

fn set_option(opts: &mut Options, key: &str, value: Option<&str>) -> Result<(), ErrorKind> {
    let k = key.to_ascii_lowercase();
    let need = || {
        value
            .map(str::to_string)
            .ok_or_else(|| ErrorKind::MissingValue(key.into()))
    };
    match k.as_str() {
        "usesyslog" => {
            opts.use_syslog = match value {
                None => true,
                Some(v) => parse_bool(key, v)?,
            }
        }
        "logfile" => opts.log_file = Some(need()?),
        "pidfile" => opts.pid_file = Some(need()?),
        "interface" => opts.interface = Some(need()?),
        "state_capacity" => {
            let v = need()?;
            let n = parse_u64(key, &v, "a number of attempts, at least 1")?;
            if n == 0 || n > u64::from(u32::MAX) {
                return Err(bad_value(key, &v, "a number of attempts, at least 1"));
            }
            opts.state_capacity = Some(n as usize);
        }
        "nft_table" => {
            let v = need()?;
            if !is_nft_name(&v) {
                return Err(bad_value(
                    key,
                    &v,
                    "a table name of letters, digits, _ and -",
                ));
            }
            opts.nft_table = Some(v);
        }
        "nft_chain" => {
            let v = need()?;
            let parts: Vec<&str> = v.split_whitespace().collect();
            match parts.as_slice() {
                [family, table, chain]
                    if matches!(*family, "inet" | "ip" | "ip6")
                        && is_nft_name(table)
                        && is_nft_name(chain) =>
                {
                    opts.nft_chain = Some(NftChainRef {
                        family: family.to_string(),
                        table: table.to_string(),
                        chain: chain.to_string(),
                    })
                }
                _ => {
                    return Err(bad_value(
                        key,
                        &v,
                        "\"FAMILY TABLE CHAIN\", e.g. inet filter input",
                    ));
                }
            }
        }
        "nft_cleanup" => opts.nft_cleanup = parse_bool(key, &need()?)?,
        "status_socket" => opts.status_socket = Some(need()?),
        "spa_replay_file" => opts.spa_replay_file = Some(need()?),
        _ => return Err(ErrorKind::UnknownOption(key.to_string())),
    }
    Ok(())
}

fn is_nft_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && s.as_bytes()[0].is_ascii_alphabetic()
}

fn decode_key(
    key: &'static str,
    value: &str,
    base64: bool,
    max: usize,
) -> Result<KeyBytes, ErrorKind> {
    let bytes = if base64 {
        base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|_| bad_value(key, value.trim(), "standard base64"))?
    } else {
        value.as_bytes().to_vec()
    };
    if bytes.is_empty() {
        return Err(bad_value(key, value, "a non-empty key"));
    }
    if bytes.len() > max {
        return Err(ErrorKind::KeyTooLong {
            key: key.to_string(),
            len: bytes.len(),
            max,
        });
    }
    Ok(KeyBytes(bytes))
}

/// Validates a door once its section has ended; errors carry their line.
fn finish_door(d: DoorDraft) -> Result<Door, (usize, ErrorKind)> {
    let name = d.name.clone();
    let conflict = |a, b| {
        (
            d.line,
            ErrorKind::Conflict {
                door: name.clone(),
                a,
                b,
            },
        )
    };
    let needs = |key, needs| {
        (
            d.line,
            ErrorKind::Needs {
                door: name.clone(),
                key,
                needs,
            },
        )
    };
    let num = |key: &'static str,
               default: u64,
               expected: &'static str|
     -> Result<u64, (usize, ErrorKind)> {
        match d.get(key) {
            Some((v, l)) => parse_u64(key, v, expected).map_err(|k| (l, k)),
            None => Ok(default),
        }
    };
    let text = |key: &str| d.get(key).map(|(v, _)| v.to_string());

    let seq_timeout = num("seq_timeout", DEFAULT_SEQ_TIMEOUT, "whole seconds")?;
    if seq_timeout == 0 || seq_timeout > MAX_SEQ_TIMEOUT {
        let l = d.get("seq_timeout").map_or(d.line, |(_, l)| l);
        return Err((
            l,
            bad_value(
                "seq_timeout",
                &seq_timeout.to_string(),
                "1 to 86400 seconds",
            ),
        ));
    }
    let cmd_timeout = num("cmd_timeout", DEFAULT_CMD_TIMEOUT, "whole seconds")?;
    let open_timeout = num("open_timeout", DEFAULT_OPEN_TIMEOUT, "whole seconds")?;
    grant_time(&d, "open_timeout", open_timeout)?;
    let tcp_flags = match d.get("tcpflags") {
        Some((v, l)) => parse_flag_rule(v).map_err(|e| (l, ErrorKind::BadFlags(e)))?,
        None => FlagRule::ANY,
    };
    let target = match d.get("target") {
        Some((v, l)) => Some(
            v.parse::<IpAddr>()
                .map_err(|_| (l, bad_value("target", v, "an IPv4 or IPv6 address")))?,
        ),
        None => None,
    };
    let open = match d.get("open") {
        Some((v, l)) => v
            .split(',')
            .map(|p| {
                crate::proto::parse_proto_port(p).map_err(|e| {
                    (
                        l,
                        match e {
                            crate::proto::ProtoPortError::Port(b) => {
                                ErrorKind::BadPort(b.0, "open")
                            }
                            crate::proto::ProtoPortError::Protocol(u) => {
                                ErrorKind::BadProtocol(u.0, "open")
                            }
                            crate::proto::ProtoPortError::Shape(s) => {
                                bad_value("open", &s, "proto/port, e.g. tcp/22")
                            }
                        },
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let from = match d.get("from") {
        Some((v, l)) => {
            crate::addr::parse_net_list(v).map_err(|e| (l, ErrorKind::BadNet(e, "from".into())))?
        }
        None => Vec::new(),
    };
    let schedule = match d.get("schedule") {
        Some((v, l)) => Some(parse_schedule(v).map_err(|e| (l, ErrorKind::BadSchedule(e)))?),
        None => None,
    };

    let sequence = match d.get("sequence") {
        Some((v, l)) => {
            if v.trim().is_empty() {
                return Err((l, ErrorKind::EmptySequence));
            }
            Some(parse_sequence(v).map_err(|k| (l, k))?)
        }
        None => None,
    };
    let one_time = text("one_time_sequences").filter(|f| !f.is_empty());
    let rotating_requested = d.has("secret_file");
    let spa_requested = d.has("spa_key") || d.has("spa_key_base64");

    if !rotating_requested && let Some(k) = ROTATING_KEYS.iter().find(|k| d.has(k)) {
        return Err(needs(k, "secret_file (it only applies to rotating doors)"));
    }
    if !spa_requested && let Some(k) = SPA_KEYS.iter().find(|k| d.has(k)) {
        return Err(needs(
            k,
            "spa_key or spa_key_base64 (it only applies to SPA doors)",
        ));
    }
    let knock_given = sequence.is_some() || one_time.is_some();
    if rotating_requested && knock_given {
        return Err(conflict("secret_file", "sequence"));
    }
    if spa_requested && (knock_given || rotating_requested) {
        return Err(conflict(
            "spa_key",
            if knock_given {
                "sequence"
            } else {
                "secret_file"
            },
        ));
    }
    let triggered = knock_given || rotating_requested || spa_requested;
    if schedule.is_some() && triggered {
        return Err(conflict("schedule", "a knock sequence or spa_key"));
    }

    let trigger = if let Some(file) = one_time {
        Trigger::OneTime { file }
    } else if let Some(seq) = sequence {
        Trigger::Sequence(seq)
    } else if rotating_requested {
        Trigger::Rotating(rotating(&d)?)
    } else if spa_requested {
        Trigger::Spa(Box::new(spa(&d, &name)?))
    } else if schedule.is_some() {
        if open.is_empty() {
            return Err(needs(
                "schedule",
                "open (a scheduled door is enforced by nftables)",
            ));
        }
        Trigger::Schedule
    } else {
        return Err((d.line, ErrorKind::NoTrigger(name)));
    };

    Ok(Door {
        name: d.name.clone(),
        line: d.line,
        trigger,
        seq_timeout,
        tcp_flags,
        start_command: text("start_command"),
        start_command_6: text("start_command_6"),
        cmd_timeout,
        stop_command: text("stop_command"),
        stop_command_6: text("stop_command_6"),
        target,
        open,
        open_timeout,
        from,
        schedule,
    })
}

/// Grant durations must be ones nftables can hold (1 s to 30 days).
fn grant_time(d: &DoorDraft, key: &'static str, value: u64) -> Result<(), (usize, ErrorKind)> {
    if (1..=MAX_GRANT_SECS).contains(&value) {
        return Ok(());
    }
    let line = d.get(key).map_or(d.line, |(_, l)| l);
    Err((line, ErrorKind::GrantTime { key, value }))
}

fn rotating(d: &DoorDraft) -> Result<RotatingConf, (usize, ErrorKind)> {
    let (secret_file, l) = d.get("secret_file").unwrap_or(("", d.line));
    if secret_file.is_empty() {
        return Err((l, bad_value("secret_file", "", "a path")));
    }
    let length = match d.get("sequence_length") {
        Some((v, l)) => {
            let n = parse_u64("sequence_length", v, "a number of knocks, 1 to 32")
                .map_err(|k| (l, k))?;
            if n == 0 || n > MAX_SEQUENCE as u64 {
                return Err((
                    l,
                    bad_value("sequence_length", v, "a number of knocks, 1 to 32"),
                ));
            }
            n as usize
        }
        None => DEFAULT_ROTATING_LENGTH,
    };
    let (port_lo, port_hi) = match d.get("port_range") {
        Some((v, l)) => {
            let (lo, hi) = crate::proto::parse_port_range(v).map_err(|e| {
                (
                    l,
                    match e {
                        crate::proto::PortRangeError::Port(b) => {
                            ErrorKind::BadPort(b.0, "port_range")
                        }
                        _ => bad_value("port_range", v, "LOW-HIGH ports, e.g. 10000-60000"),
                    },
                )
            })?;
            if usize::from(hi - lo) + 1 < length {
                return Err((
                    l,
                    bad_value(
                        "port_range",
                        v,
                        "LOW-HIGH with room for sequence_length distinct ports",
                    ),
                ));
            }
            (lo, hi)
        }
        None => DEFAULT_ROTATING_RANGE,
    };
    let step = match d.get("step") {
        Some((v, l)) => {
            let n = parse_u64("step", v, "whole seconds, at least 1").map_err(|k| (l, k))?;
            if n == 0 {
                return Err((l, bad_value("step", v, "whole seconds, at least 1")));
            }
            n
        }
        None => DEFAULT_ROTATING_STEP,
    };
    let protocol = match d.get("protocol") {
        Some((v, l)) => v.parse().map_err(|e: crate::proto::UnknownProtocol| {
            (l, ErrorKind::BadProtocol(e.0, "protocol"))
        })?,
        None => Protocol::Tcp,
    };
    Ok(RotatingConf {
        secret_file: secret_file.to_string(),
        length,
        port_lo,
        port_hi,
        step,
        protocol,
    })
}

fn spa(d: &DoorDraft, name: &str) -> Result<SpaConf, (usize, ErrorKind)> {
    let key_of = |plain: &'static str,
                  b64: &'static str,
                  max|
     -> Result<Option<KeyBytes>, (usize, ErrorKind)> {
        match (d.get(plain), d.get(b64)) {
            (Some(_), Some(_)) => Err((
                d.line,
                ErrorKind::Conflict {
                    door: name.to_string(),
                    a: plain,
                    b: b64,
                },
            )),
            (Some((v, l)), None) => decode_key(plain, v, false, max)
                .map(Some)
                .map_err(|k| (l, k)),
            (None, Some((v, l))) => decode_key(b64, v, true, max).map(Some).map_err(|k| (l, k)),
            (None, None) => Ok(None),
        }
    };
    let key = key_of("spa_key", "spa_key_base64", 32)?
        .ok_or((d.line, ErrorKind::NoTrigger(name.to_string())))?;
    let hmac_key = key_of("spa_hmac_key", "spa_hmac_key_base64", 128)?;
    let require_hmac = match d.get("spa_require_hmac") {
        Some((v, l)) => parse_bool("spa_require_hmac", v).map_err(|k| (l, k))?,
        None => true,
    };
    if require_hmac && hmac_key.is_none() {
        return Err((
            d.line,
            ErrorKind::Needs {
                door: name.to_string(),
                key: "spa_key",
                needs: "spa_hmac_key or spa_hmac_key_base64 (or spa_require_hmac = no)",
            },
        ));
    }
    let hmac_digest = match d.get("spa_hmac_digest") {
        Some((v, l)) => v.parse::<crate::spa::HmacDigest>().map_err(|_| {
            (
                l,
                bad_value(
                    "spa_hmac_digest",
                    v,
                    "md5, sha1, sha256, sha384, sha512, sha3_256 or sha3_512",
                ),
            )
        })?,
        None => crate::spa::HmacDigest::Sha256,
    };
    let num = |key: &'static str, default: u64| -> Result<u64, (usize, ErrorKind)> {
        match d.get(key) {
            Some((v, l)) => parse_u64(key, v, "whole seconds").map_err(|k| (l, k)),
            None => Ok(default),
        }
    };
    let port = match d.get("spa_port") {
        Some((v, l)) => {
            crate::proto::parse_port(v).map_err(|e| (l, ErrorKind::BadPort(e.0, "spa_port")))?
        }
        None => DEFAULT_SPA_PORT,
    };
    let flag = |key: &'static str| -> Result<bool, (usize, ErrorKind)> {
        match d.get(key) {
            Some((v, l)) => parse_bool(key, v).map_err(|k| (l, k)),
            None => Ok(false),
        }
    };
    if d.get("open").is_none() && d.get("start_command").is_none() && !d.has("spa_allow_command") {
        return Err((
            d.line,
            ErrorKind::Needs {
                door: name.to_string(),
                key: "spa_key",
                needs: "open or start_command (what a valid request grants)",
            },
        ));
    }
    let max_open_timeout = num("max_open_timeout", DEFAULT_MAX_OPEN_TIMEOUT)?;
    grant_time(d, "max_open_timeout", max_open_timeout)?;
    Ok(SpaConf {
        key,
        hmac_key,
        hmac_digest,
        port,
        max_age: num("spa_max_age", DEFAULT_SPA_MAX_AGE)?,
        max_open_timeout,
        require_user: d
            .get("require_user")
            .map(|(v, _)| v.to_string())
            .filter(|v| !v.is_empty()),
        require_source_address: flag("require_source_address")?,
        legacy: flag("spa_legacy_mode")?,
        allowed_commands: d
            .values
            .iter()
            .filter(|(k, _, _)| *k == "spa_allow_command")
            .map(|(_, v, _)| v.clone())
            .collect(),
    })
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Sequence(seq) => {
                for (i, k) in seq.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{k}")?;
                }
                Ok(())
            }
            Trigger::OneTime { file } => write!(f, "one-time sequences from {file}"),
            Trigger::Rotating(r) => write!(
                f,
                "rotating: {} {} knocks in {}-{}, step {} s",
                r.length, r.protocol, r.port_lo, r.port_hi, r.step
            ),
            Trigger::Spa(s) => write!(f, "SPA on udp/{}", s.port),
            Trigger::Schedule => f.write_str("schedule"),
        }
    }
}
