//! The configuration model: what a knockd.conf says, validated.
//!
//! [`parse`] reads the text of a knockd.conf (see `parse.rs` for the grammar); the model below is
//! what the daemon works from. Everything that refers to files (one-time sequence files, secret
//! files, log files) stays a path here: reading them is the daemon's job.

mod parse;

use std::net::IpAddr;

pub use parse::{ConfigError, ErrorKind, parse};

use crate::addr::IpNet;
use crate::proto::{Knock, ProtoPort, Protocol};
use crate::schedule::Schedule;
use crate::tcpflags::FlagRule;

/// knockd's default `Seq_Timeout`, seconds.
pub const DEFAULT_SEQ_TIMEOUT: u64 = 25;
/// Longest `Seq_Timeout` accepted, seconds (a day).
pub const MAX_SEQ_TIMEOUT: u64 = 86_400;
/// knockd's default `Cmd_Timeout`, seconds.
pub const DEFAULT_CMD_TIMEOUT: u64 = 10;
/// knockd's limit on the number of knocks in a sequence.
pub const MAX_SEQUENCE: usize = 32;
/// Default `open_timeout`, seconds.
pub const DEFAULT_OPEN_TIMEOUT: u64 = 30;
/// Longest grant (`open_timeout`, `max_open_timeout`), seconds: 30 days. nftables treats a
/// zero timeout as "forever", so grants last at least 1 s.
pub const MAX_GRANT_SECS: u64 = 30 * 86_400;
/// Default knockd pid file.
pub const DEFAULT_PID_FILE: &str = "/var/run/knockd.pid";
/// Default interface when neither `-i` nor `Interface` says otherwise.
pub const DEFAULT_INTERFACE: &str = "eth0";

/// A whole knockd.conf.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    pub options: Options,
    pub doors: Vec<Door>,
}

/// The `[options]` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options {
    /// `UseSyslog`: log to syslog (ident `knockd`, facility daemon, priority notice).
    pub use_syslog: bool,
    /// `LogFile`: append `[YYYY-MM-DD HH:MM] message` lines here.
    pub log_file: Option<String>,
    /// `PidFile`: written in daemon mode.
    pub pid_file: Option<String>,
    /// `Interface`: where to listen (`-i` overrides it).
    pub interface: Option<String>,
    /// `State_Capacity`: how many knock attempts (source, door) are tracked at once.
    pub state_capacity: Option<usize>,
    /// `Nft_Table`: name of the `inet` table the daemon owns for `open =` grants.
    pub nft_table: Option<String>,
    /// `Nft_Chain`: `family table chain` of an existing user chain to insert the grant rules
    /// into, instead of owning a table.
    pub nft_chain: Option<NftChainRef>,
    /// `Nft_Cleanup`: remove the table (and with it every grant) on a clean shutdown.
    pub nft_cleanup: bool,
    /// `Status_Socket`: path of the unix socket that answers status queries.
    pub status_socket: Option<String>,
    /// `SPA_Replay_File`: where the SPA replay cache is persisted.
    pub spa_replay_file: Option<String>,
}

/// A reference to a user's own nftables chain (`Nft_Chain = inet filter input`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NftChainRef {
    pub family: String,
    pub table: String,
    pub chain: String,
}

/// What makes a door open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A fixed knock sequence (`Sequence =`).
    Sequence(Vec<Knock>),
    /// Sequences read one at a time from a file (`One_Time_Sequences =`).
    OneTime { file: String },
    /// Sequences derived from a shared secret and the clock.
    Rotating(RotatingConf),
    /// fwknop-compatible Single Packet Authorization.
    Spa(Box<SpaConf>),
    /// No trigger: the door is open during its `schedule` for its `from` sources.
    Schedule,
}

/// A rotating door's parameters (`secret_file`, `sequence_length`, `port_range`, `step`, `protocol`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatingConf {
    pub secret_file: String,
    pub length: usize,
    pub port_lo: u16,
    pub port_hi: u16,
    pub step: u64,
    pub protocol: Protocol,
}

/// Default `sequence_length` of rotating doors.
pub const DEFAULT_ROTATING_LENGTH: usize = 4;
/// Default `port_range` of rotating doors.
pub const DEFAULT_ROTATING_RANGE: (u16, u16) = (10000, 60000);
/// Default `step` of rotating doors, seconds.
pub const DEFAULT_ROTATING_STEP: u64 = 30;

/// A key given either as a passphrase or as base64 (already decoded here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBytes(pub Vec<u8>);

/// An SPA door's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaConf {
    /// `spa_key` (passphrase bytes) or `spa_key_base64` (decoded).
    pub key: KeyBytes,
    /// `spa_hmac_key` / `spa_hmac_key_base64`; `None` only with `spa_require_hmac = no`.
    pub hmac_key: Option<KeyBytes>,
    /// `spa_hmac_digest` (`sha256` by default).
    pub hmac_digest: crate::spa::HmacDigest,
    /// `spa_port`, UDP, default 62201.
    pub port: u16,
    /// `spa_max_age`, seconds of clock difference accepted, default 120.
    pub max_age: u64,
    /// `max_open_timeout`: cap for client-requested timeouts, default 300.
    pub max_open_timeout: u64,
    /// `require_user`: only accept requests from this user name.
    pub require_user: Option<String>,
    /// `require_source_address`: refuse `0.0.0.0` ("use the packet's source").
    pub require_source_address: bool,
    /// `spa_legacy_mode`: old clients' key padding (fwknop `-M legacy`).
    pub legacy: bool,
    /// `spa_allow_command` lines: exact commands a command message (type 0) may run.
    pub allowed_commands: Vec<String>,
}

impl SpaConf {
    /// The keys in the form the SPA codec takes.
    pub fn keys(&self) -> Result<crate::spa::SpaKeys, crate::spa::KeyError> {
        Ok(crate::spa::SpaKeys::new(
            self.key.0.clone(),
            self.hmac_key.as_ref().map(|k| k.0.clone()),
        )?
        .with_hmac_digest(self.hmac_digest)
        .with_legacy(self.legacy))
    }
}

/// Default UDP port of SPA doors (fwknop's).
pub const DEFAULT_SPA_PORT: u16 = 62201;
/// Default accepted clock difference for SPA packets, seconds.
pub const DEFAULT_SPA_MAX_AGE: u64 = 120;
/// Default cap on client-requested SPA timeouts, seconds.
pub const DEFAULT_MAX_OPEN_TIMEOUT: u64 = 300;

/// One door (any section other than `[options]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Door {
    pub name: String,
    /// Line of the section header, for messages.
    pub line: usize,
    pub trigger: Trigger,
    /// `Seq_Timeout` in seconds.
    pub seq_timeout: u64,
    /// `TCPFlags`.
    pub tcp_flags: FlagRule,
    /// `Start_Command` / `Command`.
    pub start_command: Option<String>,
    /// `Start_Command_6` / `Command_6`: `None` falls back to `start_command`; `Some("")` runs
    /// nothing for IPv6 knockers.
    pub start_command_6: Option<String>,
    /// `Cmd_Timeout` in seconds.
    pub cmd_timeout: u64,
    /// `Stop_Command`.
    pub stop_command: Option<String>,
    /// `Stop_Command_6`, same fallback rule as `start_command_6`.
    pub stop_command_6: Option<String>,
    /// `Target`: the address knocks must be sent to, instead of the interface's own.
    pub target: Option<IpAddr>,
    /// `open`: what a completed knock grants in nftables.
    pub open: Vec<ProtoPort>,
    /// `open_timeout` in seconds.
    pub open_timeout: u64,
    /// `from`: who may knock (or, for a scheduled door, who it opens for); empty = anyone.
    pub from: Vec<IpNet>,
    /// `schedule`: local-time windows.
    pub schedule: Option<Schedule>,
}

impl Door {
    /// The start command for a knocker of this family, after the `_6` fallback; `None` when
    /// there is nothing to run.
    pub fn start_command_for(&self, ipv6: bool) -> Option<&str> {
        pick(&self.start_command, &self.start_command_6, ipv6)
    }

    /// The stop command for a knocker of this family, after the `_6` fallback.
    pub fn stop_command_for(&self, ipv6: bool) -> Option<&str> {
        pick(&self.stop_command, &self.stop_command_6, ipv6)
    }

    /// The fixed sequence, when the door has one.
    pub fn sequence(&self) -> Option<&[Knock]> {
        match &self.trigger {
            Trigger::Sequence(s) => Some(s),
            _ => None,
        }
    }
}

fn pick<'a>(v4: &'a Option<String>, v6: &'a Option<String>, ipv6: bool) -> Option<&'a str> {
    let chosen = if ipv6 {
        v6.as_ref().or(v4.as_ref())
    } else {
        v4.as_ref()
    };
    chosen.map(String::as_str).filter(|c| !c.trim().is_empty())
}

/// Replaces the `%NAME%` placeholders of a command (`%IP%`, and for SPA doors `%PORT%`,
/// `%PROTO%`, `%TIMEOUT%`). Unknown placeholders are left as they are.
pub fn expand_command(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (name, value) in vars {
        let placeholder = format!("%{name}%");
        if out.contains(&placeholder) {
            out = out.replace(&placeholder, value);
        }
    }
    out
}

/// Parses a sequence value (`7000,8000:udp,9000`), as in `Sequence =` lines and one-time
/// sequence files. Errors carry the offending token.
pub fn parse_sequence(value: &str) -> Result<Vec<Knock>, ErrorKind> {
    let mut knocks = Vec::new();
    for token in value.split(',') {
        let token = token.trim();
        if token.is_empty() {
            return Err(ErrorKind::EmptySequenceEntry(value.trim().to_string()));
        }
        let (port, proto) = crate::proto::split_knock_token(token)
            .map_err(|e| ErrorKind::BadProtocol(e.0, "sequence"))?;
        let port =
            crate::proto::parse_port(port).map_err(|e| ErrorKind::BadPort(e.0, "sequence"))?;
        knocks.push(Knock::new(port, proto.unwrap_or(Protocol::Tcp)));
    }
    if knocks.len() > MAX_SEQUENCE {
        return Err(ErrorKind::TooManyKnocks(knocks.len()));
    }
    Ok(knocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand() {
        assert_eq!(
            expand_command(
                "iptables -s %IP% -j ACCEPT # %IP% %X%",
                &[("IP", "198.18.0.2")]
            ),
            "iptables -s 198.18.0.2 -j ACCEPT # 198.18.0.2 %X%"
        );
    }

    #[test]
    fn sequences() {
        assert_eq!(
            parse_sequence("7000, 8000:UDP ,9000:tcp").unwrap(),
            vec![
                Knock::new(7000, Protocol::Tcp),
                Knock::new(8000, Protocol::Udp),
                Knock::new(9000, Protocol::Tcp)
            ]
        );
        assert_eq!(
            parse_sequence("7000,,8000"),
            Err(ErrorKind::EmptySequenceEntry("7000,,8000".into()))
        );
        assert_eq!(
            parse_sequence("7000:sctp"),
            Err(ErrorKind::BadProtocol("sctp".into(), "sequence"))
        );
    }
}
