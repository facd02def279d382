//! The fwknop client's rc file (`~/.fwknoprc`): stanzas of `VARIABLE value` lines.
//!
//! Behaviour learnt by running fwknop 2.6.10 (`--test` mode), not from its source:
//!
//! - `[name]` starts a stanza; stanza names match case-insensitively; a name used twice is one
//!   stanza (later lines override earlier ones). `[default]` applies to every named stanza, which
//!   overrides it.
//! - Leading blanks are skipped; empty lines and lines starting with `#` are comments; lines
//!   before the first stanza are ignored.
//! - A line is `VARIABLE`, blanks, value. Only the **first word** of the value is kept: it ends
//!   at a blank, `;` or `#` (`KEY pass word` gives the key `pass`, `HMAC_KEY a;b` gives `a`,
//!   `ACCESS tcp/22, udp/53` gives `tcp/22,`). Quotes are not special.
//! - Variable names are upper case; an unknown name is an error (fwknop: `Parameter error`),
//!   and `VARIABLE=value` is not valid syntax.
//! - A file readable by group or others gets a warning, not an error.
//!
//! Parsing is pure; the caller reads the file. Key values never appear in error messages.

use std::net::IpAddr;

use knock_core::proto::ProtoPort;
use knock_core::spa::{HmacDigest, decode_key_base64};

use super::args::{
    parse_access, parse_digest, parse_encryption_mode, parse_fw_timeout, parse_server_port,
};
use super::{Allow, KeyMaterial};

/// A problem in the rc file, with the file and (when known) the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {msg}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct RcError {
    pub file: String,
    pub line: Option<usize>,
    pub msg: String,
}

/// One `VARIABLE value` line of a selected stanza.
#[derive(Clone, PartialEq, Eq)]
pub struct RcEntry {
    pub var: String,
    pub value: String,
    pub line: usize,
}

impl std::fmt::Debug for RcEntry {
    /// Values may be keys: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.var, self.line)
    }
}

/// The settings a stanza gives, already validated. `None`: not set in the stanza.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcSettings {
    pub spa_server: Option<String>,
    pub access: Option<Vec<ProtoPort>>,
    pub allow: Option<Allow>,
    pub key: Option<KeyMaterial>,
    pub hmac_key: Option<KeyMaterial>,
    pub hmac_digest: Option<HmacDigest>,
    pub digest: Option<HmacDigest>,
    pub server_port: Option<u16>,
    pub fw_timeout: Option<u32>,
    pub user: Option<String>,
    pub use_hmac: Option<bool>,
    pub legacy: Option<bool>,
    pub verbose: Option<bool>,
}

/// Variables that change nothing in what this client sends (HTTP IP resolution helpers, GPG
/// details, saving arguments): accepted and ignored.
const IGNORED: &[&str] = &[
    "RESOLVE_HTTP_ONLY",
    "RESOLVE_URL",
    "WGET_CMD",
    "HTTP_USER_AGENT",
    "USE_WGET_USER_AGENT",
    "GPG_SIGNING_PW",
    "GPG_SIGNING_PW_BASE64",
    "GPG_SIGNER",
    "GPG_RECIPIENT",
    "GPG_HOMEDIR",
    "GPG_EXE",
    "USE_GPG_AGENT",
    "NO_SAVE_ARGS",
];

/// fwknop features this client does not have: an error when set to `Y`, fine when `N`.
const UNSUPPORTED_WHEN_YES: &[&str] = &[
    "USE_GPG",
    "RESOLVE_IP_HTTPS",
    "RAND_PORT",
    "NAT_LOCAL",
    "NAT_RAND_PORT",
];

/// fwknop features this client does not have: an error whenever present.
const UNSUPPORTED: &[&str] = &[
    "SPA_SOURCE_PORT",
    "TIME_OFFSET",
    "SPOOF_SOURCE_IP",
    "KEY_FILE",
    "HMAC_KEY_FILE",
    "NAT_ACCESS",
    "NAT_PORT",
    "HTTP_PROXY",
];

/// Names of every stanza in the file, in order of first appearance, as written.
pub fn stanza_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(Ok(name)) = stanza_header(line)
            && !names.iter().any(|n| n.eq_ignore_ascii_case(name))
        {
            names.push(name.to_string());
        }
    }
    names
}

/// `Some(Ok(name))` for a `[name]` line, `Some(Err(()))` for a broken header, `None` otherwise.
fn stanza_header(line: &str) -> Option<Result<&str, ()>> {
    let t = line.trim_start_matches([' ', '\t']);
    let rest = t.strip_prefix('[')?;
    match rest.split_once(']') {
        Some((name, _)) if !name.trim().is_empty() => Some(Ok(name.trim())),
        _ => Some(Err(())),
    }
}

/// The entries of `[default]` and then of stanza `name` (when given), in file order.
///
/// Fails when `name` is given but the file has no such stanza, or on a malformed line inside a
/// selected stanza.
pub fn stanza_entries(text: &str, file: &str, name: Option<&str>) -> Result<Vec<RcEntry>, RcError> {
    let err = |line: usize, msg: String| RcError {
        file: file.to_string(),
        line: Some(line),
        msg,
    };
    let mut defaults = Vec::new();
    let mut named = Vec::new();
    let mut found = false;
    // Which list the current stanza feeds (None: a stanza we do not use, or no stanza yet).
    let mut current: Option<bool> = None;
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = raw.trim_start_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(h) = stanza_header(line) {
            let h =
                h.map_err(|()| err(lineno, "bad stanza header (expected [name])".to_string()))?;
            current = if h.eq_ignore_ascii_case("default") {
                Some(false)
            } else if name.is_some_and(|n| n.eq_ignore_ascii_case(h)) {
                found = true;
                Some(true)
            } else {
                None
            };
            continue;
        }
        let Some(is_named) = current else {
            continue;
        };
        let var_end = line
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(line.len());
        let var = &line[..var_end];
        let value: String = line[var_end..]
            .trim_start()
            .chars()
            .take_while(|c| !c.is_ascii_whitespace() && *c != ';' && *c != '#')
            .collect();
        if value.is_empty() {
            // Show the name only: what follows a `=` may be a key.
            let shown = var.split('=').next().unwrap_or_default();
            return Err(err(
                lineno,
                format!(
                    "{shown}: expected `VARIABLE value` (a name, blanks, then the value; \
                     `VARIABLE=value` is not fwknop's syntax)"
                ),
            ));
        }
        let entry = RcEntry {
            var: var.to_string(),
            value,
            line: lineno,
        };
        if is_named {
            named.push(entry);
        } else {
            defaults.push(entry);
        }
    }
    if let Some(n) = name
        && !found
        && !n.eq_ignore_ascii_case("default")
    {
        let names = stanza_names(text);
        return Err(RcError {
            file: file.to_string(),
            line: None,
            msg: format!(
                "no stanza [{n}] (the file has {})",
                if names.is_empty() {
                    "no stanza".to_string()
                } else {
                    names
                        .iter()
                        .map(|s| format!("[{s}]"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        });
    }
    defaults.extend(named);
    Ok(defaults)
}

fn parse_yes_no(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(true),
        "n" | "no" => Ok(false),
        _ => Err(format!("expected Y or N, got \"{v}\"")),
    }
}

/// Turns the selected entries into settings; later entries override earlier ones.
pub fn settings(entries: &[RcEntry], file: &str) -> Result<RcSettings, RcError> {
    let mut s = RcSettings::default();
    for e in entries {
        let v = e.value.as_str();
        let fail = |msg: String| RcError {
            file: file.to_string(),
            line: Some(e.line),
            msg: format!("{}: {msg}", e.var),
        };
        match e.var.as_str() {
            "SPA_SERVER" => s.spa_server = Some(v.to_string()),
            "ACCESS" => s.access = Some(parse_access(v).map_err(fail)?.0),
            "ALLOW_IP" => {
                s.allow = Some(if v.eq_ignore_ascii_case("source") {
                    Allow::Source
                } else if v.eq_ignore_ascii_case("resolve") {
                    return Err(fail(
                        "`resolve` (asking a web service for this host's address, fwknop's -R) \
                         is not supported; give the address, or `source`"
                            .into(),
                    ));
                } else {
                    Allow::Ip(v.parse::<IpAddr>().map_err(|_| {
                        fail(format!(
                            "\"{v}\" is not an IP address (nor `source` or `resolve`)"
                        ))
                    })?)
                })
            }
            "KEY" => s.key = Some(KeyMaterial::new(v.as_bytes().to_vec())),
            "KEY_BASE64" => {
                s.key = Some(KeyMaterial::new(
                    decode_key_base64("encryption key", v).map_err(|e| fail(e.to_string()))?,
                ))
            }
            "HMAC_KEY" => s.hmac_key = Some(KeyMaterial::new(v.as_bytes().to_vec())),
            "HMAC_KEY_BASE64" => {
                s.hmac_key = Some(KeyMaterial::new(
                    decode_key_base64("HMAC key", v).map_err(|e| fail(e.to_string()))?,
                ))
            }
            "HMAC_DIGEST_TYPE" => s.hmac_digest = Some(parse_digest(v).map_err(fail)?),
            "DIGEST_TYPE" => s.digest = Some(parse_digest(v).map_err(fail)?),
            "SPA_SERVER_PORT" => s.server_port = Some(parse_server_port(v).map_err(fail)?),
            "SPA_SERVER_PROTO" => {
                if !v.eq_ignore_ascii_case("udp") {
                    return Err(fail(format!(
                        "\"{v}\" is not supported: this client sends SPA over UDP only"
                    )));
                }
            }
            "FW_TIMEOUT" => s.fw_timeout = Some(parse_fw_timeout(v).map_err(fail)?),
            "SPOOF_USER" => s.user = Some(v.to_string()),
            "USE_HMAC" => s.use_hmac = Some(parse_yes_no(v).map_err(fail)?),
            "ENCRYPTION_MODE" => s.legacy = Some(parse_encryption_mode(v).map_err(fail)?.legacy),
            "VERBOSE" => {
                s.verbose = Some(
                    parse_yes_no(v)
                        .or_else(|e| v.parse::<u32>().map(|n| n > 0).map_err(|_| e))
                        .map_err(fail)?,
                )
            }
            var if IGNORED.contains(&var) => {}
            var if UNSUPPORTED_WHEN_YES.contains(&var) => {
                if parse_yes_no(v).map_err(fail)? {
                    return Err(fail("this fwknop feature is not supported by knock".into()));
                }
            }
            var if UNSUPPORTED.contains(&var) => {
                return Err(fail("this fwknop feature is not supported by knock".into()));
            }
            var => {
                return Err(RcError {
                    file: file.to_string(),
                    line: Some(e.line),
                    msg: format!("unknown variable {var} (fwknop variables are upper case)"),
                });
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use knock_core::proto::Protocol;

    const F: &str = "/home/a/.fwknoprc";

    fn load(text: &str, name: Option<&str>) -> Result<RcSettings, RcError> {
        let entries = stanza_entries(text, F, name)?;
        settings(&entries, F)
    }

    fn pp(proto: Protocol, port: u16) -> ProtoPort {
        ProtoPort { proto, port }
    }

    const SAMPLE: &str = "\
# a comment
KEY ignored-outside-any-stanza
[default]
HMAC_DIGEST_TYPE  SHA512
SPA_SERVER_PORT   62999

[Server1]
  SPA_SERVER     198.18.250.1
ACCESS        tcp/22,udp/53 tcp/80
\tALLOW_IP      198.18.250.9   # trailing comment
KEY           pass word
HMAC_KEY      hkey;more
SPOOF_USER    bob
FW_TIMEOUT    77
USE_HMAC      Y

[other]
SPA_SERVER 198.18.250.2
KEY_BASE64 cGFzc3dvcmQ=
HMAC_KEY_BASE64 aG1hY2tleQ # comment
ALLOW_IP source
SPA_SERVER_PORT 1000
";

    #[test]
    fn default_then_named_first_word_of_values() {
        let s = load(SAMPLE, Some("server1")).unwrap();
        assert_eq!(s.spa_server.as_deref(), Some("198.18.250.1"));
        assert_eq!(
            s.access,
            Some(vec![pp(Protocol::Tcp, 22), pp(Protocol::Udp, 53)])
        );
        assert_eq!(s.allow, Some(Allow::Ip("198.18.250.9".parse().unwrap())));
        // fwknop keeps the first word: the keys are "pass" and "hkey" (checked against
        // fwknop 2.6.10 by decrypting its packets).
        assert_eq!(s.key.as_ref().unwrap().bytes(), b"pass");
        assert_eq!(s.hmac_key.as_ref().unwrap().bytes(), b"hkey");
        assert_eq!(s.user.as_deref(), Some("bob"));
        assert_eq!(s.fw_timeout, Some(77));
        assert_eq!(s.use_hmac, Some(true));
        // From [default].
        assert_eq!(s.hmac_digest, Some(HmacDigest::Sha512));
        assert_eq!(s.server_port, Some(62999));
    }

    #[test]
    fn named_overrides_default_and_base64_keys() {
        let s = load(SAMPLE, Some("OTHER")).unwrap();
        assert_eq!(s.server_port, Some(1000));
        assert_eq!(s.hmac_digest, Some(HmacDigest::Sha512));
        assert_eq!(s.allow, Some(Allow::Source));
        assert_eq!(s.key.as_ref().unwrap().bytes(), b"password");
        assert_eq!(s.hmac_key.as_ref().unwrap().bytes(), b"hmackey");
        assert_eq!(s.access, None);
    }

    #[test]
    fn default_only() {
        let s = load(SAMPLE, None).unwrap();
        assert_eq!(s.server_port, Some(62999));
        assert_eq!(s.spa_server, None);
        assert_eq!(s.key, None);
    }

    #[test]
    fn repeated_stanza_later_lines_win() {
        let t = "[a]\nALLOW_IP 198.18.0.4\nKEY k\n[b]\nKEY x\n[A]\nALLOW_IP 198.18.0.5\n";
        let s = load(t, Some("a")).unwrap();
        assert_eq!(s.allow, Some(Allow::Ip("198.18.0.5".parse().unwrap())));
        assert_eq!(s.key.unwrap().bytes(), b"k");
        assert_eq!(stanza_names(t), ["a", "b"]);
    }

    #[test]
    fn missing_stanza_lists_the_others() {
        let e = load(SAMPLE, Some("nosuch")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/home/a/.fwknoprc: no stanza [nosuch] (the file has [default], [Server1], [other])"
        );
        let e = load("", Some("x")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/home/a/.fwknoprc: no stanza [x] (the file has no stanza)"
        );
    }

    #[test]
    fn syntax_errors_name_the_line_not_the_value() {
        let e = load("[s]\nKEY=topsecret\n", Some("s")).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(
            e.to_string()
                .starts_with("/home/a/.fwknoprc:2: KEY: expected `VARIABLE value`")
        );
        assert!(!e.to_string().contains("topsecret"), "{e}");
        let e = load("[s]\nACCESS\n", Some("s")).unwrap_err();
        assert!(e.to_string().contains(":2: ACCESS: expected"), "{e}");
        let e = load("[s\n", Some("s")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/home/a/.fwknoprc:1: bad stanza header (expected [name])"
        );
        // Errors in stanzas that are not used do not matter.
        assert!(load("[s]\nKEY k\n[t]\nBROKEN\n", Some("s")).is_ok());
    }

    #[test]
    fn unknown_and_lower_case_variables() {
        let e = load("[s]\naccess tcp/22\n", Some("s")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/home/a/.fwknoprc:2: unknown variable access (fwknop variables are upper case)"
        );
        assert!(load("[s]\nBOGUS x\n", Some("s")).is_err());
    }

    #[test]
    fn bad_values_name_variable_and_line() {
        let cases = [
            ("ACCESS tcp/99999", "ACCESS: "),
            ("ACCESS tcp/22,", "ACCESS: "),
            (
                "ALLOW_IP host.example",
                "ALLOW_IP: \"host.example\" is not an IP address",
            ),
            ("ALLOW_IP resolve", "ALLOW_IP: `resolve`"),
            (
                "HMAC_DIGEST_TYPE sha224",
                "HMAC_DIGEST_TYPE: unknown digest",
            ),
            ("SPA_SERVER_PORT 0", "SPA_SERVER_PORT: "),
            (
                "SPA_SERVER_PROTO tcp",
                "SPA_SERVER_PROTO: \"tcp\" is not supported",
            ),
            ("FW_TIMEOUT 200000", "FW_TIMEOUT: "),
            ("USE_HMAC maybe", "USE_HMAC: expected Y or N"),
            ("USE_GPG Y", "USE_GPG: this fwknop feature is not supported"),
            ("NAT_ACCESS 10.0.0.1,22", "NAT_ACCESS: this fwknop feature"),
            ("ENCRYPTION_MODE ecb", "ENCRYPTION_MODE: "),
        ];
        for (line, want) in cases {
            let e = load(&format!("[s]\n{line}\n"), Some("s")).unwrap_err();
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("{F}:2: {want}")),
                "{line}: {text}"
            );
        }
    }

    #[test]
    fn bad_base64_key_is_not_echoed() {
        let e = load("[s]\nKEY_BASE64 s3cr3t!!\n", Some("s")).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with(&format!(
                "{F}:2: KEY_BASE64: the encryption key is not valid base64"
            )),
            "{text}"
        );
        assert!(!text.contains("s3cr3t"), "{text}");
        let e = load("[s]\nHMAC_KEY_BASE64 s3cr3t!!\n", Some("s")).unwrap_err();
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }

    #[test]
    fn harmless_and_disabled_features_are_accepted() {
        let t = "[s]\nUSE_GPG N\nRESOLVE_IP_HTTPS N\nRESOLVE_URL https://x/\nWGET_CMD /usr/bin/wget\n\
                 SPA_SERVER_PROTO UDP\nVERBOSE Y\nENCRYPTION_MODE legacy\nDIGEST_TYPE sha1\n";
        let s = load(t, Some("s")).unwrap();
        assert_eq!(s.verbose, Some(true));
        assert_eq!(s.legacy, Some(true));
        assert_eq!(s.digest, Some(HmacDigest::Sha1));
        assert_eq!(
            load("[s]\nVERBOSE 0\n", Some("s")).unwrap().verbose,
            Some(false)
        );
    }

    #[test]
    fn debug_never_shows_values() {
        let entries = stanza_entries("[s]\nKEY hunter2\n", F, Some("s")).unwrap();
        assert!(!format!("{entries:?}").contains("hunter2"));
        let s = settings(&entries, F).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
