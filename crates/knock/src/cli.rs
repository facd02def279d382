//! Command line: every option, its validation and the plan it produces.
//!
//! The client has no subcommands: the classic `knock host port...` form must keep working, and
//! further modes (SPA with `-A`, rotating sequences with `--secret-file`) are added as flags.
//! [`Cli`] is the raw clap view; [`Cli::into_mode`] validates it and picks the [`Mode`]. To add
//! a mode, add its flags to [`Cli`], a variant to [`Mode`], and a branch in `into_mode`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use clap::Parser;
use knock_core::proto::{BadPort, Knock, Protocol, UnknownProtocol, parse_port, split_knock_token};

use crate::services::ServiceLookup;

/// The usage line, the same as the classic client's.
pub const USAGE: &str = "knock [options] <host> <port[:proto]> [port[:proto]] ...";

/// Raw command line.
#[derive(Debug, Parser)]
#[command(
    name = "knock",
    version,
    about = "Port-knocking client: hits a sequence of TCP/UDP ports on a host.",
    override_usage = USAGE,
    after_help = "Ports may be numbers or service names (ssh, https); a :tcp or :udp suffix sets the \
protocol of one port (case-insensitive). The host is resolved once; without -4, -6 or --both \
the first address the resolver returns is used (usually IPv6 when the host and this machine have it).\n\n\
example:  knock myserver.example.com 123:tcp 456:udp 789:tcp\n          knock --both -d 200 myserver.example.com ssh:udp 8000 9000",
    disable_version_flag = true
)]
pub struct Cli {
    /// Make ports without a :proto suffix use UDP (default is TCP)
    #[arg(short = 'u', long = "udp")]
    pub udp: bool,

    /// Wait <ms> milliseconds between port hits (not after the last one)
    #[arg(short = 'd', long = "delay", value_name = "ms", default_value_t = 0)]
    pub delay_ms: u64,

    /// Force usage of IPv4
    #[arg(short = '4', long = "ipv4", conflicts_with_all = ["ipv6", "both"])]
    pub ipv4: bool,

    /// Force usage of IPv6
    #[arg(short = '6', long = "ipv6", conflicts_with = "both")]
    pub ipv6: bool,

    /// Knock over IPv4 and IPv6 when the host has both (one sequence per family)
    #[arg(long = "both")]
    pub both: bool,

    /// Send from this local address (repeat once for the other family)
    #[arg(
        short = 'b',
        long = "bind",
        visible_alias = "source",
        value_name = "ADDR",
        action = clap::ArgAction::Append
    )]
    pub bind: Vec<IpAddr>,

    /// Send through this network interface (Linux only: SO_BINDTODEVICE)
    #[arg(short = 'i', long = "interface", value_name = "IF")]
    pub interface: Option<String>,

    /// Be verbose: print each hit as `hitting <proto> <ip>:<port>`
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,

    /// Display version
    #[arg(short = 'V', long = "version", action = clap::ArgAction::Version)]
    pub version: (),

    /// Host name or address to knock on
    #[arg(value_name = "host")]
    pub host: Option<String>,

    /// Ports to hit, in order: number or service name, optional :tcp or :udp
    #[arg(value_name = "port[:proto]")]
    pub ports: Vec<String>,
}

/// Which address families to knock over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// The first address the resolver returns (the classic client's behaviour).
    First,
    /// Only IPv4 (`-4`).
    V4,
    /// Only IPv6 (`-6`).
    V6,
    /// The first IPv4 and the first IPv6 address, when the host has them (`--both`).
    Both,
}

/// Local end of every hit: source addresses (at most one per family) and interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindOptions {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
    pub interface: Option<String>,
}

impl BindOptions {
    /// True when a source address was given for some family.
    pub fn has_source(&self) -> bool {
        self.v4.is_some() || self.v6.is_some()
    }
}

/// A validated classic knock: what to hit, where, how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnockPlan {
    pub host: String,
    pub knocks: Vec<Knock>,
    pub family: Family,
    pub delay: Duration,
    pub verbose: bool,
    pub bind: BindOptions,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Hit a sequence of ports (the classic client).
    Knock(KnockPlan),
}

/// Why a port token was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Protocol(#[from] UnknownProtocol),
    #[error(transparent)]
    Port(#[from] BadPort),
    #[error("unknown service \"{0}\"")]
    UnknownService(String),
}

/// A command line that parses but does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    #[error("missing <host>\nusage: {USAGE}")]
    MissingHost,
    #[error("no ports to knock on {0}\nusage: {USAGE}")]
    NoPorts(String),
    #[error("port \"{token}\": {source}")]
    Token { token: String, source: TokenError },
    #[error("empty host name")]
    EmptyHost,
    #[error("--bind given twice for IP{family} ({first} and {second})")]
    BindTwice {
        family: &'static str,
        first: IpAddr,
        second: IpAddr,
    },
    #[error("--bind {addr} is not an IP{wanted} address, but {flag} asks for IP{wanted}")]
    BindFamily {
        addr: IpAddr,
        flag: &'static str,
        wanted: &'static str,
    },
    #[error(
        "--both with --bind needs one IPv4 and one IPv6 source address (got only {0}); \
         drop --both or add --bind for the other family"
    )]
    BothNeedsTwoSources(IpAddr),
    #[error("empty interface name")]
    EmptyInterface,
    #[error("interface name \"{0}\" is too long (at most 15 bytes)")]
    InterfaceTooLong(String),
}

/// Parses one knock token: `port[:proto]`, where port is a number or a service name.
///
/// The protocol defaults to `default_proto`; a suffix always wins. Port and protocol syntax is
/// `knock_core::proto`'s; only service names are handled here. A token starting with a letter is
/// a service name, anything else must be a port number.
pub fn parse_token(
    token: &str,
    default_proto: Protocol,
    services: &dyn ServiceLookup,
) -> Result<Knock, TokenError> {
    let (port, proto) = split_knock_token(token)?;
    let proto = proto.unwrap_or(default_proto);
    let port = if port.starts_with(|c: char| c.is_ascii_alphabetic()) {
        services
            .port(port, proto)
            .ok_or_else(|| TokenError::UnknownService(port.to_string()))?
    } else {
        parse_port(port)?
    };
    Ok(Knock::new(port, proto))
}

impl Cli {
    /// Validates the command line and returns the mode it asks for.
    pub fn into_mode(self, services: &dyn ServiceLookup) -> Result<Mode, CliError> {
        let host = self.host.ok_or(CliError::MissingHost)?;
        let host = host.trim().to_string();
        if host.is_empty() {
            return Err(CliError::EmptyHost);
        }
        if self.ports.is_empty() {
            return Err(CliError::NoPorts(host));
        }
        let default_proto = if self.udp {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        let knocks = self
            .ports
            .iter()
            .map(|t| {
                parse_token(t, default_proto, services).map_err(|source| CliError::Token {
                    token: t.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let family = match (self.ipv4, self.ipv6, self.both) {
            (true, _, _) => Family::V4,
            (_, true, _) => Family::V6,
            (_, _, true) => Family::Both,
            _ => Family::First,
        };
        let bind = bind_options(&self.bind, self.interface, family)?;
        Ok(Mode::Knock(KnockPlan {
            host,
            knocks,
            family,
            delay: Duration::from_millis(self.delay_ms),
            verbose: self.verbose,
            bind,
        }))
    }
}

fn bind_options(
    addrs: &[IpAddr],
    interface: Option<String>,
    family: Family,
) -> Result<BindOptions, CliError> {
    let mut bind = BindOptions::default();
    for &addr in addrs {
        match addr {
            IpAddr::V4(a) => {
                if let Some(first) = bind.v4 {
                    return Err(CliError::BindTwice {
                        family: "v4",
                        first: first.into(),
                        second: addr,
                    });
                }
                bind.v4 = Some(a);
            }
            IpAddr::V6(a) => {
                if let Some(first) = bind.v6 {
                    return Err(CliError::BindTwice {
                        family: "v6",
                        first: first.into(),
                        second: addr,
                    });
                }
                bind.v6 = Some(a);
            }
        }
    }
    let mismatch = |addr: IpAddr, flag, wanted| CliError::BindFamily { addr, flag, wanted };
    match family {
        Family::V4 => {
            if let (None, Some(a)) = (bind.v4, bind.v6) {
                return Err(mismatch(a.into(), "-4", "v4"));
            }
        }
        Family::V6 => {
            if let (Some(a), None) = (bind.v4, bind.v6) {
                return Err(mismatch(a.into(), "-6", "v6"));
            }
        }
        Family::Both => match (bind.v4, bind.v6) {
            (Some(a), None) => return Err(CliError::BothNeedsTwoSources(a.into())),
            (None, Some(a)) => return Err(CliError::BothNeedsTwoSources(a.into())),
            _ => {}
        },
        Family::First => {}
    }
    if let Some(name) = &interface {
        if name.is_empty() {
            return Err(CliError::EmptyInterface);
        }
        if name.len() > 15 {
            return Err(CliError::InterfaceTooLong(name.clone()));
        }
    }
    bind.interface = interface;
    Ok(bind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::Services;
    use clap::error::ErrorKind;

    fn services() -> Services {
        Services::from_text("ssh 22/tcp\nssh 22/udp\nodd 7777/udp\nodd 7778/tcp\n")
    }

    fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("knock").chain(args.iter().copied()))
    }

    fn plan(args: &[&str]) -> KnockPlan {
        match cli(args).unwrap().into_mode(&services()).unwrap() {
            Mode::Knock(p) => p,
        }
    }

    fn mode_err(args: &[&str]) -> CliError {
        cli(args).unwrap().into_mode(&services()).unwrap_err()
    }

    fn clap_err(args: &[&str]) -> clap::Error {
        cli(args).unwrap_err()
    }

    fn k(port: u16, proto: Protocol) -> Knock {
        Knock::new(port, proto)
    }
    use Protocol::{Tcp, Udp};

    #[test]
    fn defaults() {
        let p = plan(&["host.example", "7000"]);
        assert_eq!(
            p,
            KnockPlan {
                host: "host.example".into(),
                knocks: vec![k(7000, Tcp)],
                family: Family::First,
                delay: Duration::ZERO,
                verbose: false,
                bind: BindOptions::default(),
            }
        );
    }

    #[test]
    fn ports_and_protocol_suffixes_in_order() {
        let p = plan(&[
            "h",
            "123:tcp",
            "456:udp",
            "789:TCP",
            "1000:UDP",
            "0",
            "65535:Udp",
        ]);
        assert_eq!(
            p.knocks,
            vec![
                k(123, Tcp),
                k(456, Udp),
                k(789, Tcp),
                k(1000, Udp),
                k(0, Tcp),
                k(65535, Udp)
            ]
        );
        // Repeats are kept.
        assert_eq!(plan(&["h", "1", "1", "1"]).knocks, vec![k(1, Tcp); 3]);
    }

    #[test]
    fn udp_flag_changes_the_default_only() {
        for flag in ["-u", "--udp"] {
            let p = plan(&[flag, "h", "1", "2:tcp", "3:udp"]);
            assert_eq!(p.knocks, vec![k(1, Udp), k(2, Tcp), k(3, Udp)]);
        }
    }

    #[test]
    fn delay() {
        assert_eq!(
            plan(&["-d", "250", "h", "1"]).delay,
            Duration::from_millis(250)
        );
        assert_eq!(
            plan(&["--delay", "5", "h", "1"]).delay,
            Duration::from_millis(5)
        );
        assert_eq!(plan(&["--delay=0", "h", "1"]).delay, Duration::ZERO);
        assert_eq!(plan(&["-d10", "h", "1"]).delay, Duration::from_millis(10));
        for bad in ["-5", "x", "1.5", ""] {
            let e = clap_err(&["-d", bad, "h", "1"]);
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::InvalidValue
                        | ErrorKind::ValueValidation
                        | ErrorKind::UnknownArgument
                ),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn families() {
        assert_eq!(plan(&["-4", "h", "1"]).family, Family::V4);
        assert_eq!(plan(&["--ipv4", "h", "1"]).family, Family::V4);
        assert_eq!(plan(&["-6", "h", "1"]).family, Family::V6);
        assert_eq!(plan(&["--ipv6", "h", "1"]).family, Family::V6);
        assert_eq!(plan(&["--both", "h", "1"]).family, Family::Both);
    }

    #[test]
    fn conflicting_families() {
        for args in [
            &["-4", "-6", "h", "1"][..],
            &["-46", "h", "1"],
            &["-4", "--both", "h", "1"],
            &["--both", "-6", "h", "1"],
        ] {
            let e = clap_err(args);
            assert_eq!(e.kind(), ErrorKind::ArgumentConflict, "{args:?}: {e}");
        }
    }

    #[test]
    fn verbose() {
        assert!(plan(&["-v", "h", "1"]).verbose);
        assert!(plan(&["--verbose", "h", "1"]).verbose);
        // Options may follow the positionals, as with getopt.
        assert!(plan(&["h", "1", "-v"]).verbose);
    }

    #[test]
    fn version_and_help() {
        assert_eq!(clap_err(&["-V"]).kind(), ErrorKind::DisplayVersion);
        assert_eq!(clap_err(&["--version"]).kind(), ErrorKind::DisplayVersion);
        let h = clap_err(&["-h"]);
        assert_eq!(h.kind(), ErrorKind::DisplayHelp);
        assert_eq!(clap_err(&["--help"]).kind(), ErrorKind::DisplayHelp);
        let text = h.to_string();
        assert!(text.contains(USAGE), "{text}");
        for opt in [
            "--udp",
            "--delay <ms>",
            "--ipv4",
            "--ipv6",
            "--both",
            "--bind <ADDR>",
            "--interface <IF>",
            "--verbose",
            "--version",
            "--help",
            "example:",
        ] {
            assert!(text.contains(opt), "help lacks {opt}: {text}");
        }
    }

    #[test]
    fn service_names() {
        let p = plan(&["h", "ssh", "ssh:udp", "odd", "odd:udp", "https"]);
        // https is not in the test file: built-in table.
        assert_eq!(
            p.knocks,
            vec![
                k(22, Tcp),
                k(22, Udp),
                k(7778, Tcp),
                k(7777, Udp),
                k(443, Tcp)
            ]
        );
        // -u makes the lookup use udp.
        assert_eq!(plan(&["-u", "h", "odd"]).knocks, vec![k(7777, Udp)]);
    }

    #[test]
    fn unknown_service() {
        let e = mode_err(&["h", "1", "nosuchservice:udp"]);
        assert_eq!(
            e,
            CliError::Token {
                token: "nosuchservice:udp".into(),
                source: TokenError::UnknownService("nosuchservice".into())
            }
        );
        assert_eq!(
            e.to_string(),
            "port \"nosuchservice:udp\": unknown service \"nosuchservice\""
        );
    }

    #[test]
    fn bad_ports() {
        for bad in ["70000", "65536", "12a", "1.5", "+5", "", ":udp", "007000"] {
            let e = mode_err(&["h", bad]);
            assert!(
                matches!(&e, CliError::Token { token, source: TokenError::Port(_) } if token == bad),
                "{bad}: {e:?}"
            );
            assert!(
                e.to_string()
                    .starts_with(&format!("port \"{bad}\": bad port")),
                "{e}"
            );
        }
        // A negative number looks like an option to the parser.
        assert_eq!(clap_err(&["h", "-1"]).kind(), ErrorKind::UnknownArgument);
    }

    #[test]
    fn unknown_protocol_names_the_token() {
        let e = mode_err(&["h", "7000:icmp"]);
        assert_eq!(
            e.to_string(),
            "port \"7000:icmp\": unknown protocol \"icmp\" (expected tcp or udp)"
        );
        let e = mode_err(&["h", "7000:"]);
        assert!(
            e.to_string()
                .starts_with("port \"7000:\": unknown protocol"),
            "{e}"
        );
        let e = mode_err(&["h", "ssh:sctp"]);
        assert!(e.to_string().contains("\"sctp\""), "{e}");
    }

    #[test]
    fn missing_host_and_ports() {
        assert_eq!(mode_err(&[]), CliError::MissingHost);
        assert!(mode_err(&[]).to_string().contains(USAGE));
        assert_eq!(mode_err(&["-v"]), CliError::MissingHost);
        assert_eq!(mode_err(&["h"]), CliError::NoPorts("h".into()));
        assert_eq!(
            mode_err(&["-u", "h"]).to_string(),
            format!("no ports to knock on h\nusage: {USAGE}")
        );
        assert_eq!(mode_err(&[" ", "1"]), CliError::EmptyHost);
    }

    #[test]
    fn unknown_option() {
        assert_eq!(
            clap_err(&["-x", "h", "1"]).kind(),
            ErrorKind::UnknownArgument
        );
    }

    #[test]
    fn bind_addresses() {
        let p = plan(&["-b", "198.18.1.1", "h", "1"]);
        assert_eq!(p.bind.v4, Some("198.18.1.1".parse().unwrap()));
        assert_eq!(p.bind.v6, None);
        let p = plan(&[
            "--source",
            "2001:2::1",
            "--bind=198.18.1.1",
            "--both",
            "h",
            "1",
        ]);
        assert_eq!(p.bind.v4, Some("198.18.1.1".parse().unwrap()));
        assert_eq!(p.bind.v6, Some("2001:2::1".parse().unwrap()));
        assert!(p.bind.has_source());
        let p = plan(&["-6", "-b", "2001:2::1", "h", "1"]);
        assert_eq!(p.bind.v6, Some("2001:2::1".parse().unwrap()));
    }

    #[test]
    fn bind_errors() {
        assert_eq!(
            clap_err(&["-b", "not-an-ip", "h", "1"]).kind(),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            clap_err(&["-b", "h", "1"]).kind(),
            ErrorKind::ValueValidation
        );
        assert!(matches!(
            mode_err(&["-b", "198.18.1.1", "-b", "198.18.1.2", "h", "1"]),
            CliError::BindTwice { family: "v4", .. }
        ));
        assert!(matches!(
            mode_err(&["-b", "2001:2::1", "-b", "2001:2::2", "h", "1"]),
            CliError::BindTwice { family: "v6", .. }
        ));
        assert_eq!(
            mode_err(&["-4", "-b", "2001:2::1", "h", "1"]).to_string(),
            "--bind 2001:2::1 is not an IPv4 address, but -4 asks for IPv4"
        );
        assert!(matches!(
            mode_err(&["-6", "-b", "198.18.1.1", "h", "1"]),
            CliError::BindFamily { flag: "-6", .. }
        ));
        assert!(matches!(
            mode_err(&["--both", "-b", "198.18.1.1", "h", "1"]),
            CliError::BothNeedsTwoSources(_)
        ));
        assert!(matches!(
            mode_err(&["--both", "-b", "2001:2::1", "h", "1"]),
            CliError::BothNeedsTwoSources(_)
        ));
    }

    #[test]
    fn interface() {
        assert_eq!(
            plan(&["-i", "eth0", "h", "1"]).bind.interface.as_deref(),
            Some("eth0")
        );
        assert_eq!(
            plan(&["--interface", "wg0", "h", "1"])
                .bind
                .interface
                .as_deref(),
            Some("wg0")
        );
        assert_eq!(mode_err(&["-i", "", "h", "1"]), CliError::EmptyInterface);
        assert!(matches!(
            mode_err(&["-i", "abcdefghijklmnop", "h", "1"]),
            CliError::InterfaceTooLong(_)
        ));
        assert_eq!(clap_err(&["h", "1", "-i"]).kind(), ErrorKind::InvalidValue);
    }
}
