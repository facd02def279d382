//! SPA command-line options, their value parsers (shared with the fwknoprc parser), and the
//! merge of command line, fwknoprc stanza and environment into a [`SpaPlan`].
//!
//! Precedence: command line, then the named stanza, then `[default]`, then built-in defaults.
//! Key options are plain strings for clap and are checked here, so that a bad key never ends up
//! quoted in clap's "invalid value" message.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;
use knock_core::proto::{ProtoPort, parse_port, parse_proto_port};
use knock_core::spa::{HmacDigest, KeyError, SpaKeys, decode_key_base64};

use super::fwknoprc::{self, RcError, RcSettings};
use super::{Allow, DEFAULT_SPA_PORT, KeyMaterial, MAX_FW_TIMEOUT, SpaPlan};
use crate::cli::{BindOptions, Family};
use crate::env::Environment;

/// A list of `proto/port` items (`tcp/22,udp/53`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessList(pub Vec<ProtoPort>);

/// `-M`: the AES mode; only CBC exists in fwknop 2.6's default build, plus its legacy key mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptionMode {
    pub legacy: bool,
}

/// Parses `tcp/22[,udp/53...]`.
pub fn parse_access(s: &str) -> Result<AccessList, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty port list (expected proto/port[,proto/port...], e.g. tcp/22)".into());
    }
    t.split(',')
        .map(|item| {
            if item.trim().is_empty() {
                Err(format!(
                    "empty item in \"{t}\" (expected proto/port[,proto/port...], e.g. tcp/22,udp/53)"
                ))
            } else {
                parse_proto_port(item).map_err(|e| e.to_string())
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(AccessList)
}

/// Parses a digest name (`sha256`, `SHA3_256`, ...).
pub fn parse_digest(s: &str) -> Result<HmacDigest, String> {
    s.parse()
        .map_err(|e: knock_core::spa::UnknownDigest| e.to_string())
}

/// Parses a firewall timeout: whole seconds, 0 to 131072 (fwknop's bounds; 0 = server default).
pub fn parse_fw_timeout(s: &str) -> Result<u32, String> {
    let t = s.trim();
    t.parse::<u32>()
        .ok()
        .filter(|n| *n <= MAX_FW_TIMEOUT && t.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("\"{t}\" is not a number of seconds from 0 to {MAX_FW_TIMEOUT}"))
}

/// Parses the SPA destination port: 1 to 65535.
pub fn parse_server_port(s: &str) -> Result<u16, String> {
    match parse_port(s) {
        Ok(0) => Err("port 0 cannot be sent to".into()),
        Ok(p) => Ok(p),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses `-M` / `ENCRYPTION_MODE`: `cbc` (the default) or `legacy`.
pub fn parse_encryption_mode(s: &str) -> Result<EncryptionMode, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "cbc" => Ok(EncryptionMode { legacy: false }),
        "legacy" => Ok(EncryptionMode { legacy: true }),
        _ => Err(format!(
            "unsupported encryption mode \"{}\" (expected cbc or legacy)",
            s.trim()
        )),
    }
}

/// SPA options. fwknop's option names are accepted as aliases.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "SPA (fwknop-compatible Single Packet Authorization)")]
pub struct SpaArgs {
    /// Send an SPA request to open these ports: proto/port[,proto/port...], e.g. tcp/22,udp/53
    #[arg(short = 'A', long = "access", value_name = "LIST", value_parser = parse_access)]
    pub access: Option<AccessList>,

    /// Address the server should open the ports for
    #[arg(
        short = 'a',
        long = "allow-ip",
        value_name = "IP",
        conflicts_with = "source_ip"
    )]
    pub allow_ip: Option<IpAddr>,

    /// Let the server open the ports for the packet's source address (sends 0.0.0.0)
    #[arg(short = 's', long = "source-ip")]
    pub source_ip: bool,

    /// fwknop's -R (ask a web service for this host's address): refused with an explanation
    #[arg(short = 'R', long = "resolve-ip-https", hide = true)]
    pub resolve_ip: bool,

    /// The SPA server (instead of the <host> argument)
    #[arg(short = 'D', long = "destination", value_name = "HOST")]
    pub destination: Option<String>,

    /// Encryption key, base64
    #[arg(
        long = "key-base64",
        visible_alias = "key-base64-rijndael",
        value_name = "B64",
        conflicts_with = "key"
    )]
    pub key_base64: Option<String>,

    /// Encryption key as a passphrase
    #[arg(long = "key", visible_alias = "key-rijndael", value_name = "PASS")]
    pub key: Option<String>,

    /// HMAC key, base64
    #[arg(
        long = "hmac-key-base64",
        visible_alias = "key-base64-hmac",
        value_name = "B64",
        conflicts_with = "hmac_key"
    )]
    pub hmac_key_base64: Option<String>,

    /// HMAC key as a passphrase
    #[arg(long = "hmac-key", visible_alias = "key-hmac", value_name = "PASS")]
    pub hmac_key: Option<String>,

    /// HMAC algorithm: md5, sha1, sha256 (default), sha384, sha512, sha3_256, sha3_512
    #[arg(
        long = "hmac-digest",
        visible_alias = "hmac-digest-type",
        value_name = "ALG",
        value_parser = parse_digest
    )]
    pub hmac_digest: Option<HmacDigest>,

    /// Digest inside the encrypted message (same names; default sha256)
    #[arg(short = 'm', long = "digest-type", value_name = "ALG", value_parser = parse_digest)]
    pub digest_type: Option<HmacDigest>,

    /// cbc (default) or legacy (fwknop before 2.5 padded short keys)
    #[arg(short = 'M', long = "encryption-mode", value_name = "MODE", value_parser = parse_encryption_mode)]
    pub encryption_mode: Option<EncryptionMode>,

    /// User name in the request [default: $SPOOF_USER, $LOGNAME, $USER, or the account name]
    #[arg(
        short = 'U',
        long = "user",
        visible_alias = "spoof-user",
        value_name = "NAME"
    )]
    pub user: Option<String>,

    /// Ask the server to keep the ports open this long (0 to 131072; 0 = server default)
    #[arg(short = 'f', long = "fw-timeout", value_name = "SECONDS", value_parser = parse_fw_timeout)]
    pub fw_timeout: Option<u32>,

    /// UDP port of the SPA server [default: 62201]
    #[arg(
        short = 'p',
        long = "server-port",
        visible_alias = "spa-port",
        value_name = "PORT",
        value_parser = parse_server_port
    )]
    pub server_port: Option<u16>,

    /// Read settings from this stanza of ~/.fwknoprc (command-line options win)
    #[arg(short = 'n', long = "named-config", value_name = "NAME")]
    pub named_config: Option<String>,

    /// fwknop rc file to read instead of ~/.fwknoprc (its [default] stanza applies)
    #[arg(long = "rc-file", value_name = "PATH")]
    pub rc_file: Option<PathBuf>,

    /// Accepted for fwknop compatibility: knock always authenticates SPA with an HMAC
    #[arg(long = "use-hmac")]
    pub use_hmac: bool,

    /// Print a new SPA key pair (knockd.conf, fwknop and command-line forms) and exit
    #[arg(short = 'k', long = "spa-keygen", visible_alias = "key-gen")]
    pub keygen: bool,
}

/// Why the SPA options do not make a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpaError {
    #[error(
        "SPA needs the address to open: give -a/--allow-ip ADDR, or -s/--source-ip to let the \
         server use the packet's source address (fwknop's -R, asking a web service for this \
         host's address, is not supported)"
    )]
    NoAllowIp,
    #[error(
        "-R/--resolve-ip-https is not supported (knock never asks a web service for this host's \
         address): give -a/--allow-ip ADDR, or -s/--source-ip"
    )]
    ResolveUnsupported,
    #[error(
        "no ports to open: give -A/--access (e.g. -A tcp/22), or ACCESS in the fwknoprc stanza"
    )]
    NoAccess,
    #[error(
        "missing <host>: give the SPA server as an argument, with -D/--destination, or as \
         SPA_SERVER in the fwknoprc stanza"
    )]
    NoHost,
    #[error("the SPA server is given twice: <host> \"{0}\" and -D/--destination \"{1}\"")]
    HostTwice(String, String),
    #[error("empty host name")]
    EmptyHost,
    #[error(
        "no encryption key: give --key-base64 or --key (or KEY_BASE64 / KEY in the fwknoprc \
         stanza); knock does not prompt for keys"
    )]
    NoKey,
    #[error(
        "no HMAC key: give --hmac-key-base64 or --hmac-key (or HMAC_KEY_BASE64 / HMAC_KEY in \
         the fwknoprc stanza); knock always sends HMAC-authenticated SPA"
    )]
    NoHmacKey,
    #[error("{flag}: {source}")]
    BadKey {
        flag: &'static str,
        source: KeyError,
    },
    #[error("{0}")]
    Keys(KeyError),
    #[error(
        "the encryption key and the HMAC key are identical; use two different keys \
         (knock --spa-keygen makes a pair)"
    )]
    SameKeys,
    #[error("cannot tell the user name for the request: give -U/--user NAME (or set $USER)")]
    NoUser,
    #[error("-U/--user: the user name is empty")]
    EmptyUser,
    #[error(
        "cannot find the home directory for ~/.fwknoprc ($HOME is not set): give --rc-file PATH"
    )]
    NoHome,
    #[error("cannot read fwknop rc file {path}: {reason}")]
    RcRead { path: String, reason: String },
    #[error(transparent)]
    Rc(#[from] RcError),
    #[error("this request cannot be encoded: {0}")]
    Encode(String),
}

/// The parts of the command line SPA shares with the other modes.
#[derive(Debug, Clone)]
pub struct Common {
    pub host: Option<String>,
    pub family: Family,
    pub bind: BindOptions,
    pub verbose: bool,
}

impl SpaArgs {
    /// Options that select SPA mode by themselves.
    pub fn selects_spa(&self) -> bool {
        self.access.is_some() || self.named_config.is_some() || self.rc_file.is_some()
    }

    /// Long names of the SPA options given (not counting the ones that select SPA mode, nor
    /// `--spa-keygen`), for "needs -A" errors.
    pub fn others_given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let mut add = |given: bool, name| {
            if given {
                v.push(name);
            }
        };
        add(self.allow_ip.is_some(), "-a/--allow-ip");
        add(self.source_ip, "-s/--source-ip");
        add(self.resolve_ip, "-R/--resolve-ip-https");
        add(self.destination.is_some(), "-D/--destination");
        add(self.key_base64.is_some(), "--key-base64");
        add(self.key.is_some(), "--key");
        add(self.hmac_key_base64.is_some(), "--hmac-key-base64");
        add(self.hmac_key.is_some(), "--hmac-key");
        add(self.hmac_digest.is_some(), "--hmac-digest");
        add(self.digest_type.is_some(), "-m/--digest-type");
        add(self.encryption_mode.is_some(), "-M/--encryption-mode");
        add(self.user.is_some(), "-U/--user");
        add(self.fw_timeout.is_some(), "-f/--fw-timeout");
        add(self.server_port.is_some(), "-p/--server-port");
        add(self.use_hmac, "--use-hmac");
        v
    }

    /// Merges the options, the fwknoprc stanza (with `-n` or `--rc-file`) and the environment
    /// into a plan. Also returns warnings (an rc file readable by others).
    pub fn into_plan(
        self,
        common: Common,
        env: &dyn Environment,
    ) -> Result<(SpaPlan, Vec<String>), SpaError> {
        let mut warnings = Vec::new();
        let rc = self.load_rc(env, &mut warnings)?;

        let host = match (common.host, self.destination) {
            (Some(a), Some(b)) => return Err(SpaError::HostTwice(a, b)),
            (Some(h), None) | (None, Some(h)) => Some(h),
            (None, None) => rc.spa_server.clone(),
        }
        .ok_or(SpaError::NoHost)?;
        let host = host.trim().to_string();
        if host.is_empty() {
            return Err(SpaError::EmptyHost);
        }

        let access = self
            .access
            .map(|a| a.0)
            .or(rc.access.clone())
            .ok_or(SpaError::NoAccess)?;
        if self.resolve_ip {
            return Err(SpaError::ResolveUnsupported);
        }
        let allow = match (self.allow_ip, self.source_ip) {
            (Some(ip), _) => Allow::Ip(ip),
            (None, true) => Allow::Source,
            (None, false) => rc.allow.ok_or(SpaError::NoAllowIp)?,
        };

        let enc = key_from(
            self.key_base64.as_deref(),
            "--key-base64",
            "encryption key",
            self.key,
        )?
        .or(rc.key.clone())
        .ok_or(SpaError::NoKey)?;
        let hmac = key_from(
            self.hmac_key_base64.as_deref(),
            "--hmac-key-base64",
            "HMAC key",
            self.hmac_key,
        )?
        .or(rc.hmac_key.clone())
        .ok_or(SpaError::NoHmacKey)?;
        if enc == hmac {
            return Err(SpaError::SameKeys);
        }
        let legacy = self
            .encryption_mode
            .map(|m| m.legacy)
            .or(rc.legacy)
            .unwrap_or(false);
        let keys = SpaKeys::new(enc.into_bytes(), Some(hmac.into_bytes()))
            .map_err(SpaError::Keys)?
            .with_hmac_digest(
                self.hmac_digest
                    .or(rc.hmac_digest)
                    .unwrap_or(HmacDigest::Sha256),
            )
            .with_legacy(legacy);

        let user = match self.user.or(rc.user.clone()) {
            Some(u) if u.is_empty() => return Err(SpaError::EmptyUser),
            Some(u) => u,
            None => default_user(env).ok_or(SpaError::NoUser)?,
        };

        let plan = SpaPlan {
            host,
            family: common.family,
            bind: common.bind,
            port: self
                .server_port
                .or(rc.server_port)
                .unwrap_or(DEFAULT_SPA_PORT),
            keys,
            access,
            allow,
            user,
            fw_timeout: self.fw_timeout.or(rc.fw_timeout).filter(|t| *t > 0),
            digest: self.digest_type.or(rc.digest).unwrap_or(HmacDigest::Sha256),
            verbose: common.verbose || rc.verbose == Some(true),
        };
        // Catch what the encoder would refuse (user name, length) before anything is sent.
        plan.packet(0, [0; 16], [0; 8])
            .map_err(|e| SpaError::Encode(e.to_string()))?;
        Ok((plan, warnings))
    }

    fn load_rc(
        &self,
        env: &dyn Environment,
        warnings: &mut Vec<String>,
    ) -> Result<RcSettings, SpaError> {
        if self.named_config.is_none() && self.rc_file.is_none() {
            return Ok(RcSettings::default());
        }
        let path = match &self.rc_file {
            Some(p) => p.clone(),
            None => env.home_dir().ok_or(SpaError::NoHome)?.join(".fwknoprc"),
        };
        let shown = path.display().to_string();
        let text = env.read_file(&path).map_err(|e| SpaError::RcRead {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        if env.readable_by_others(&path) {
            warnings.push(format!(
                "{shown} holds keys and should only be readable by its owner (chmod 600 {shown})"
            ));
        }
        let entries = fwknoprc::stanza_entries(&text, &shown, self.named_config.as_deref())?;
        Ok(fwknoprc::settings(&entries, &shown)?)
    }
}

/// A key from its base64 option or its passphrase option (clap makes them exclusive).
fn key_from(
    b64: Option<&str>,
    flag: &'static str,
    what: &'static str,
    pass: Option<String>,
) -> Result<Option<KeyMaterial>, SpaError> {
    if let Some(b) = b64 {
        return decode_key_base64(what, b)
            .map(|k| Some(KeyMaterial::new(k)))
            .map_err(|source| SpaError::BadKey { flag, source });
    }
    Ok(pass.map(|p| KeyMaterial::new(p.into_bytes())))
}

/// fwknop's default user name: `$SPOOF_USER`, then `$LOGNAME`, `$USER` (`%USERNAME%` on
/// Windows), then the account of the effective uid.
pub fn default_user(env: &dyn Environment) -> Option<String> {
    ["SPOOF_USER", "LOGNAME", "USER", "USERNAME"]
        .iter()
        .filter_map(|v| env.var(v))
        .find(|u| !u.is_empty())
        .or_else(|| env.account_name())
}

#[cfg(test)]
mod tests {
    use super::*;
    use knock_core::proto::Protocol;

    #[test]
    fn access_lists() {
        let pp = |proto, port| ProtoPort { proto, port };
        assert_eq!(
            parse_access("tcp/22"),
            Ok(AccessList(vec![pp(Protocol::Tcp, 22)]))
        );
        assert_eq!(
            parse_access(" tcp/22, UDP/53 "),
            Ok(AccessList(vec![
                pp(Protocol::Tcp, 22),
                pp(Protocol::Udp, 53)
            ]))
        );
        assert_eq!(
            parse_access("tcp/22,").unwrap_err(),
            "empty item in \"tcp/22,\" (expected proto/port[,proto/port...], e.g. tcp/22,udp/53)"
        );
        assert!(parse_access("").unwrap_err().starts_with("empty port list"));
        assert_eq!(
            parse_access("22").unwrap_err(),
            "expected proto/port (e.g. tcp/22), got \"22\""
        );
        assert_eq!(parse_access("tcp/65536").unwrap_err(), "bad port \"65536\"");
        assert!(
            parse_access("icmp/1")
                .unwrap_err()
                .contains("unknown protocol \"icmp\"")
        );
    }

    #[test]
    fn scalar_parsers() {
        assert_eq!(parse_fw_timeout("0"), Ok(0));
        assert_eq!(parse_fw_timeout("131072"), Ok(131_072));
        for bad in ["131073", "-1", "abc", "", "+5", "1.5"] {
            assert_eq!(
                parse_fw_timeout(bad).unwrap_err(),
                format!("\"{bad}\" is not a number of seconds from 0 to 131072")
            );
        }
        assert_eq!(parse_server_port("62201"), Ok(62201));
        assert_eq!(
            parse_server_port("0").unwrap_err(),
            "port 0 cannot be sent to"
        );
        assert_eq!(parse_server_port("x").unwrap_err(), "bad port \"x\"");
        assert_eq!(parse_digest("SHA3_256"), Ok(HmacDigest::Sha3_256));
        assert!(
            parse_digest("sha224")
                .unwrap_err()
                .starts_with("unknown digest")
        );
        assert_eq!(
            parse_encryption_mode("CBC"),
            Ok(EncryptionMode { legacy: false })
        );
        assert_eq!(
            parse_encryption_mode("legacy"),
            Ok(EncryptionMode { legacy: true })
        );
        assert!(parse_encryption_mode("ecb").is_err());
    }

    #[test]
    fn default_user_order() {
        use crate::env::fake::FakeEnv;
        let mut e = FakeEnv::new();
        assert_eq!(default_user(&e), None);
        e.account = Some("acct".into());
        assert_eq!(default_user(&e).as_deref(), Some("acct"));
        let e = e.var("USERNAME", "win");
        assert_eq!(default_user(&e).as_deref(), Some("win"));
        let e = e.var("USER", "u");
        assert_eq!(default_user(&e).as_deref(), Some("u"));
        // fwknop 2.6.10 prefers LOGNAME to USER (observed).
        let e = e.var("LOGNAME", "l");
        assert_eq!(default_user(&e).as_deref(), Some("l"));
        let e = e.var("SPOOF_USER", "s");
        assert_eq!(default_user(&e).as_deref(), Some("s"));
        let e = e.var("SPOOF_USER", "");
        assert_eq!(default_user(&e).as_deref(), Some("l"));
    }
}
