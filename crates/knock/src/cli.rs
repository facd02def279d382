//! Command line: every option, its validation and the plan it produces.
//!
//! The client has no subcommands: the classic `knock host port...` form must keep working, and
//! the other modes are selected by flags: SPA by `-A` (or `-n`/`--rc-file`), rotating
//! sequences by `--secret-file`, and the two generators `--spa-keygen` and `--new-secret`.
//! [`Cli`] is the raw clap view (SPA options in [`SpaArgs`], rotating ones in
//! [`RotatingArgs`]); [`Cli::into_mode`] picks the [`Mode`], refuses options that make no sense
//! in it, and validates. To add a mode, add its flags, a variant to [`Mode`], and a branch in
//! `into_mode`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use clap::Parser;
use knock_core::proto::{BadPort, Knock, Protocol, UnknownProtocol, parse_port, split_knock_token};

use crate::env::Environment;
use crate::rotating::{RotatingArgs, RotatingError, RotatingPlan};
use crate::services::ServiceLookup;
use crate::spa::SpaPlan;
use crate::spa::args::{Common, SpaArgs, SpaError};

/// The usage line, the same as the classic client's.
pub const USAGE: &str = "knock [options] <host> <port[:proto]> [port[:proto]] ...";

/// Every form of the command, for `--help`.
pub const USAGE_ALL: &str = "knock [options] <host> <port[:proto]> [port[:proto]] ...
       knock -A <proto/port,...> (-a <ip> | -s) <keys> [SPA options] <host>
       knock -n <stanza> [SPA options] [<host>]
       knock --secret-file <file> [--length N] [--range LO-HI] [--step S] [options] <host>
       knock --secret-file <file> [...] --print
       knock --spa-keygen | --new-secret";

/// Raw command line.
#[derive(Debug, Parser)]
#[command(
    name = "knock",
    version,
    about = "Port-knocking client: hits a sequence of TCP/UDP ports on a host, sends \
fwknop-compatible SPA requests, or knocks rotating sequences.",
    override_usage = USAGE_ALL,
    after_help = "Ports may be numbers or service names (ssh, https); a :tcp or :udp suffix sets the \
protocol of one port (case-insensitive); -u sends every hit over UDP, as the classic client does. \
The host is resolved once; without -4, -6 or --both the first address the resolver returns is used \
(usually IPv6 when the host and this machine have it).\n\n\
SPA sends one UDP packet (port 62201) that a door with spa_key or a real fwknopd opens ports \
for; keys come from the command line or from a ~/.fwknoprc stanza (-n). Rotating sequences \
are derived from a secret file shared with a knockd door (secret_file); the door accepts the \
previous, current and next step.\n\n\
examples:\n  knock myserver.example.com 123:tcp 456:udp 789:tcp\n  \
knock --both -d 200 myserver.example.com ssh:udp 8000 9000\n  \
knock -A tcp/22 -a 198.51.100.7 --key-base64 KEY --hmac-key-base64 HMACKEY myserver.example.com\n  \
knock -n myserver -s\n  \
knock --secret-file ~/.knock/myserver.secret --length 4 --range 10000-60000 myserver.example.com",
    disable_version_flag = true
)]
pub struct Cli {
    /// Send every hit over UDP, even port:tcp (classic behaviour); with --secret-file, knock
    /// the rotating sequence over UDP
    #[arg(short = 'u', long = "udp")]
    pub udp: bool,

    /// Wait <ms> milliseconds between port hits (not after the last one)
    #[arg(short = 'd', long = "delay", value_name = "ms")]
    pub delay_ms: Option<u64>,

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

    #[command(flatten)]
    pub spa: SpaArgs,

    #[command(flatten)]
    pub rotating: RotatingArgs,
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
    /// Send an SPA request (`-A`, `-n`).
    Spa(Box<SpaPlan>),
    /// Knock (or print) the current rotating sequence (`--secret-file`).
    Rotating(RotatingPlan),
    /// Print a new SPA key pair (`--spa-keygen`).
    SpaKeygen,
    /// Print a new rotating secret (`--new-secret`).
    NewSecret,
}

/// A validated command line: the mode, and warnings to print on stderr before running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub mode: Mode,
    pub warnings: Vec<String>,
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
    #[error("{0} and {1} cannot be used together")]
    Modes(&'static str, &'static str),
    #[error("{flag} cannot be used with {mode}{why}")]
    NotWith {
        flag: &'static str,
        mode: &'static str,
        why: &'static str,
    },
    #[error("{flag} needs {needs}")]
    Needs {
        flag: &'static str,
        needs: &'static str,
    },
    #[error("unexpected argument{} {} with {mode}{why}", if .args.len() == 1 { "" } else { "s" }, quote_all(.args))]
    Extra {
        args: Vec<String>,
        mode: &'static str,
        why: &'static str,
    },
    #[error(transparent)]
    Spa(#[from] SpaError),
    #[error(transparent)]
    Rotating(#[from] RotatingError),
}

fn quote_all(args: &[String]) -> String {
    args.iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(" ")
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

/// Mode names used in error messages.
const SPA_MODE: &str = "SPA (-A/--access)";
const ROTATING_MODE: &str = "--secret-file";
const PRINT_MODE: &str = "--print";

impl Cli {
    /// Classic options given, as `-x/--long` names (`-v` is allowed everywhere but the
    /// generators, so it is listed last).
    fn knock_options_given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let mut add = |given: bool, name| {
            if given {
                v.push(name);
            }
        };
        add(self.udp, "-u/--udp");
        add(self.delay_ms.is_some(), "-d/--delay");
        add(self.ipv4, "-4/--ipv4");
        add(self.ipv6, "-6/--ipv6");
        add(self.both, "--both");
        add(!self.bind.is_empty(), "-b/--bind");
        add(self.interface.is_some(), "-i/--interface");
        add(self.verbose, "-v/--verbose");
        v
    }

    fn family(&self) -> Family {
        match (self.ipv4, self.ipv6, self.both) {
            (true, _, _) => Family::V4,
            (_, true, _) => Family::V6,
            (_, _, true) => Family::Both,
            _ => Family::First,
        }
    }

    /// Validates the command line and returns the mode it asks for.
    ///
    /// `services` resolves service names; `env` gives the environment variables and files
    /// (fwknoprc, secret file) the SPA and rotating modes read.
    pub fn into_mode(
        self,
        services: &dyn ServiceLookup,
        env: &dyn Environment,
    ) -> Result<Invocation, CliError> {
        let spa_selector = if self.spa.access.is_some() {
            "-A/--access"
        } else if self.spa.named_config.is_some() {
            "-n/--named-config"
        } else {
            "--rc-file"
        };
        let selected: Vec<&'static str> = [
            (self.spa.keygen, "--spa-keygen"),
            (self.rotating.new_secret, "--new-secret"),
            (self.rotating.secret_file.is_some(), "--secret-file"),
            (self.spa.selects_spa(), spa_selector),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if let [a, b, ..] = selected[..] {
            return Err(CliError::Modes(a, b));
        }
        match selected.first().copied() {
            Some(gen_flag @ ("--spa-keygen" | "--new-secret")) => self.generator(gen_flag),
            Some("--secret-file") => self.rotating_mode(env),
            Some(_) => self.spa_mode(env),
            None => self.knock_mode(services),
        }
    }

    /// `--spa-keygen` / `--new-secret`: nothing else may be given.
    fn generator(self, flag: &'static str) -> Result<Invocation, CliError> {
        let mut others = self.knock_options_given();
        others.extend(self.spa.others_given());
        others.extend(self.rotating.options_given());
        if let Some(o) = others.first() {
            return Err(CliError::NotWith {
                flag: o,
                mode: flag,
                why: " (it only prints and exits)",
            });
        }
        let extra: Vec<String> = self.host.into_iter().chain(self.ports).collect();
        if !extra.is_empty() {
            return Err(CliError::Extra {
                args: extra,
                mode: flag,
                why: " (it only prints and exits)",
            });
        }
        let mode = if flag == "--spa-keygen" {
            Mode::SpaKeygen
        } else {
            Mode::NewSecret
        };
        Ok(Invocation {
            mode,
            warnings: Vec::new(),
        })
    }

    fn spa_mode(self, env: &dyn Environment) -> Result<Invocation, CliError> {
        let not_with = |flag, why| CliError::NotWith {
            flag,
            mode: SPA_MODE,
            why,
        };
        if self.udp {
            return Err(not_with(
                "-u/--udp",
                ": the SPA packet always goes over UDP",
            ));
        }
        if self.delay_ms.is_some() {
            return Err(not_with("-d/--delay", ": SPA sends a single packet"));
        }
        if self.both {
            return Err(not_with("--both", ": choose one family with -4 or -6"));
        }
        if let Some(o) = self.rotating.options_given().first() {
            return Err(not_with(o, ""));
        }
        if !self.ports.is_empty() {
            return Err(CliError::Extra {
                args: self.ports,
                mode: SPA_MODE,
                why: ": SPA opens the ports listed with -A (e.g. -A tcp/22,udp/53), it does not knock",
            });
        }
        let family = self.family();
        let bind = bind_options(&self.bind, self.interface, family)?;
        let common = Common {
            host: self.host,
            family,
            bind,
            verbose: self.verbose,
        };
        let (plan, warnings) = self.spa.into_plan(common, env)?;
        Ok(Invocation {
            mode: Mode::Spa(Box::new(plan)),
            warnings,
        })
    }

    fn rotating_mode(self, env: &dyn Environment) -> Result<Invocation, CliError> {
        let mode = if self.rotating.print {
            PRINT_MODE
        } else {
            ROTATING_MODE
        };
        if let Some(o) = self.spa.others_given().first() {
            return Err(CliError::NotWith {
                flag: o,
                mode,
                why: "",
            });
        }
        if !self.ports.is_empty() {
            return Err(CliError::Extra {
                args: self.ports,
                mode,
                why: ": the ports come from the secret file and the clock",
            });
        }
        // into_mode only calls this with --secret-file given.
        let Some(path) = self.rotating.secret_file.clone() else {
            return Err(CliError::Needs {
                flag: "--print",
                needs: "--secret-file (rotating sequences)",
            });
        };
        // --print needs no host; the sending options are accepted (and unused) so that
        // --print can be added to a working command line.
        let knock = if self.rotating.print {
            None
        } else {
            let family = self.family();
            let host = checked_host(self.host)?;
            let bind = bind_options(&self.bind, self.interface, family)?;
            Some(KnockPlan {
                host,
                knocks: Vec::new(),
                family,
                delay: Duration::from_millis(self.delay_ms.unwrap_or(0)),
                verbose: self.verbose,
                bind,
            })
        };
        let plan = self.rotating.into_plan(&path, self.udp, knock, env)?;
        Ok(Invocation {
            mode: Mode::Rotating(plan),
            warnings: Vec::new(),
        })
    }

    fn knock_mode(self, services: &dyn ServiceLookup) -> Result<Invocation, CliError> {
        let family = self.family();
        if let Some(o) = self.spa.others_given().first() {
            return Err(CliError::Needs {
                flag: o,
                needs: "-A/--access or -n/--named-config (SPA mode)",
            });
        }
        if let Some(o) = self.rotating.options_given().first() {
            return Err(CliError::Needs {
                flag: o,
                needs: "--secret-file (rotating sequences)",
            });
        }
        let host = checked_host(self.host)?;
        if self.ports.is_empty() {
            return Err(CliError::NoPorts(host));
        }
        let default_proto = if self.udp {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        let mut overridden = Vec::new();
        let knocks = self
            .ports
            .iter()
            .map(|t| {
                let k =
                    parse_token(t, default_proto, services).map_err(|source| CliError::Token {
                        token: t.clone(),
                        source,
                    })?;
                // The classic client's -u makes every hit UDP, even an explicit :tcp.
                if self.udp && k.proto == Protocol::Tcp {
                    overridden.push(t.trim().to_string());
                    return Ok(Knock::new(k.port, Protocol::Udp));
                }
                Ok(k)
            })
            .collect::<Result<Vec<_>, CliError>>()?;
        let mut warnings = Vec::new();
        if !overridden.is_empty() {
            warnings.push(format!(
                "-u/--udp sends every hit over UDP, as the classic knock does: {} sent over UDP",
                if overridden.len() == 1 {
                    format!("{} is", overridden[0])
                } else {
                    format!("{} are", overridden.join(", "))
                }
            ));
        }

        let bind = bind_options(&self.bind, self.interface, family)?;
        Ok(Invocation {
            mode: Mode::Knock(KnockPlan {
                host,
                knocks,
                family,
                delay: Duration::from_millis(self.delay_ms.unwrap_or(0)),
                verbose: self.verbose,
                bind,
            }),
            warnings,
        })
    }
}

/// The host argument, trimmed and non-empty.
fn checked_host(host: Option<String>) -> Result<String, CliError> {
    let host = host.ok_or(CliError::MissingHost)?;
    let host = host.trim().to_string();
    if host.is_empty() {
        return Err(CliError::EmptyHost);
    }
    Ok(host)
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
    use crate::env::fake::FakeEnv;
    use crate::services::Services;
    use clap::error::ErrorKind;

    fn services() -> Services {
        Services::from_text("ssh 22/tcp\nssh 22/udp\nodd 7777/udp\nodd 7778/tcp\n")
    }

    fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("knock").chain(args.iter().copied()))
    }

    fn invocation(args: &[&str]) -> Invocation {
        cli(args)
            .unwrap()
            .into_mode(&services(), &FakeEnv::new())
            .unwrap()
    }

    fn plan(args: &[&str]) -> KnockPlan {
        match invocation(args).mode {
            Mode::Knock(p) => p,
            m => panic!("not a knock: {m:?}"),
        }
    }

    fn mode_err(args: &[&str]) -> CliError {
        cli(args)
            .unwrap()
            .into_mode(&services(), &FakeEnv::new())
            .unwrap_err()
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
    fn udp_flag_makes_every_hit_udp() {
        // The classic client's -u overrides even an explicit :tcp (docs/knockd-observed.md).
        for flag in ["-u", "--udp"] {
            let inv = invocation(&[flag, "h", "1", "2:tcp", "3:udp"]);
            let Mode::Knock(p) = inv.mode else {
                panic!("not a knock")
            };
            assert_eq!(p.knocks, vec![k(1, Udp), k(2, Udp), k(3, Udp)]);
            assert_eq!(
                inv.warnings,
                [
                    "-u/--udp sends every hit over UDP, as the classic knock does: 2:tcp is sent over UDP"
                ]
            );
        }
        let inv = invocation(&["-u", "h", "1:TCP", "ssh:tcp"]);
        assert_eq!(
            inv.warnings,
            [
                "-u/--udp sends every hit over UDP, as the classic knock does: 1:TCP, ssh:tcp are sent over UDP"
            ]
        );
        // No explicit :tcp, no warning; without -u, :tcp stays TCP.
        assert!(invocation(&["-u", "h", "1", "2:udp"]).warnings.is_empty());
        assert_eq!(
            plan(&["h", "1", "2:tcp", "3:udp"]).knocks,
            vec![k(1, Tcp), k(2, Tcp), k(3, Udp)]
        );
        assert!(invocation(&["h", "2:tcp"]).warnings.is_empty());
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
            "examples:",
            // SPA, with the fwknop spellings
            "--access <LIST>",
            "--allow-ip <IP>",
            "--source-ip",
            "--destination <HOST>",
            "--key-base64 <B64>",
            "--key-base64-rijndael",
            "--key <PASS>",
            "--key-rijndael",
            "--hmac-key-base64 <B64>",
            "--key-base64-hmac",
            "--hmac-key <PASS>",
            "--key-hmac",
            "--hmac-digest <ALG>",
            "--hmac-digest-type",
            "--user <NAME>",
            "--spoof-user",
            "--fw-timeout <SECONDS>",
            "--server-port <PORT>",
            "--named-config <NAME>",
            "--rc-file <PATH>",
            "--spa-keygen",
            "--key-gen",
            // rotating
            "--secret-file <FILE>",
            "--length <N>",
            "--range <LO-HI>",
            "--step <SECONDS>",
            "--print",
            "--new-secret",
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

/// SPA, rotating and generator modes: selection, conflicts, validation.
#[cfg(test)]
mod mode_tests {
    use super::*;
    use crate::env::fake::FakeEnv;
    use crate::rotating::{RotatingAction, RotatingError};
    use crate::services::Services;
    use crate::spa::Allow;
    use crate::spa::args::SpaError;
    use clap::error::ErrorKind;
    use knock_core::proto::ProtoPort;
    use knock_core::rotate::RotateError;
    use knock_core::spa::{HmacDigest, SpaKeys};

    // base64 of "K" * 32 and "H" * 64.
    const KEY_B64: &str = "S0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0s=";
    const HMAC_B64: &str =
        "SEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISA==";
    // base64 of 32 bytes 00..1f.
    const SECRET_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn env() -> FakeEnv {
        FakeEnv::new()
            .var("USER", "alice")
            .var("HOME", "/home/alice")
            .file("/etc/door.secret", &format!("{SECRET_B64}\n"))
    }

    fn run(args: &[&str], env: &FakeEnv) -> Result<Invocation, CliError> {
        let services = Services::from_text("");
        Cli::try_parse_from(std::iter::once("knock").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: clap: {e}"))
            .into_mode(&services, env)
    }

    fn clap_err(args: &[&str]) -> clap::Error {
        Cli::try_parse_from(std::iter::once("knock").chain(args.iter().copied())).unwrap_err()
    }

    fn spa(args: &[&str]) -> SpaPlan {
        match run(args, &env()).unwrap().mode {
            Mode::Spa(p) => *p,
            m => panic!("not SPA: {m:?}"),
        }
    }

    fn err(args: &[&str]) -> CliError {
        run(args, &env()).unwrap_err()
    }

    fn keys<'a>(args: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["--key-base64", KEY_B64, "--hmac-key-base64", HMAC_B64];
        v.extend_from_slice(args);
        v
    }

    fn tcp(port: u16) -> ProtoPort {
        ProtoPort {
            proto: Protocol::Tcp,
            port,
        }
    }

    fn udp(port: u16) -> ProtoPort {
        ProtoPort {
            proto: Protocol::Udp,
            port,
        }
    }

    #[test]
    fn spa_full_command_line() {
        let p = spa(&keys(&[
            "-A",
            "tcp/22,udp/53",
            "-a",
            "198.18.1.2",
            "srv.example",
        ]));
        assert_eq!(p.host, "srv.example");
        assert_eq!(p.access, [tcp(22), udp(53)]);
        assert_eq!(p.allow, Allow::Ip("198.18.1.2".parse().unwrap()));
        assert_eq!(p.port, 62201);
        assert_eq!(p.user, "alice");
        assert_eq!(p.fw_timeout, None);
        assert_eq!(p.digest, HmacDigest::Sha256);
        assert_eq!(p.family, Family::First);
        assert!(!p.verbose);
        let want = SpaKeys::new(vec![b'K'; 32], Some(vec![b'H'; 64])).unwrap();
        assert_eq!(p.keys, want);
    }

    #[test]
    fn spa_fwknop_spellings_give_the_same_plan() {
        let ours = spa(&keys(&[
            "-A",
            "tcp/22",
            "-a",
            "198.18.1.2",
            "--hmac-digest",
            "sha512",
            "--user",
            "bob",
            "--fw-timeout",
            "30",
            "-p",
            "1000",
            "h",
        ]));
        let fwknop = spa(&[
            "--access",
            "tcp/22",
            "--allow-ip",
            "198.18.1.2",
            "--key-base64-rijndael",
            KEY_B64,
            "--key-base64-hmac",
            HMAC_B64,
            "--hmac-digest-type",
            "SHA512",
            "--spoof-user",
            "bob",
            "-f",
            "30",
            "--server-port",
            "1000",
            "--use-hmac",
            "-D",
            "h",
        ]);
        assert_eq!(ours, fwknop);
        assert_eq!(ours.keys.hmac, HmacDigest::Sha512);
        assert_eq!(ours.fw_timeout, Some(30));
        assert_eq!(ours.port, 1000);
        assert_eq!(ours.user, "bob");
        let short = spa(&keys(&[
            "-A",
            "tcp/22",
            "-a",
            "198.18.1.2",
            "-U",
            "bob",
            "-f",
            "30",
            "-p",
            "1000",
            "--hmac-digest-type",
            "sha512",
            "-D",
            "h",
        ]));
        assert_eq!(ours, short);
    }

    #[test]
    fn spa_passphrase_keys_and_modes() {
        let p = spa(&[
            "-A",
            "tcp/22",
            "-s",
            "--key-rijndael",
            "enc pass",
            "--key-hmac",
            "mac pass",
            "-M",
            "legacy",
            "-m",
            "sha1",
            "-6",
            "-b",
            "2001:2::9",
            "-v",
            "h",
        ]);
        assert_eq!(p.allow, Allow::Source);
        assert_eq!(p.keys.enc_key, b"enc pass");
        assert_eq!(p.keys.hmac_key.as_deref(), Some(&b"mac pass"[..]));
        assert!(p.keys.legacy);
        assert_eq!(p.digest, HmacDigest::Sha1);
        assert_eq!(p.family, Family::V6);
        assert_eq!(p.bind.v6, Some("2001:2::9".parse().unwrap()));
        assert!(p.verbose);
        // An IPv6 address to open.
        let p = spa(&keys(&["-A", "tcp/22", "-a", "2001:2:0:1::2", "h"]));
        assert_eq!(p.allow, Allow::Ip("2001:2:0:1::2".parse().unwrap()));
        // -f 0 is fwknop's "no client timeout" (message type 1).
        assert_eq!(
            spa(&keys(&["-A", "tcp/22", "-s", "-f", "0", "h"])).fw_timeout,
            None
        );
    }

    #[test]
    fn spa_needs_an_address_like_fwknop() {
        let e = err(&keys(&["-A", "tcp/22", "h"]));
        assert_eq!(e, CliError::Spa(SpaError::NoAllowIp));
        let text = e.to_string();
        assert!(
            text.contains("-a/--allow-ip") && text.contains("-s/--source-ip"),
            "{text}"
        );
        assert_eq!(
            clap_err(&keys(&["-A", "tcp/22", "-a", "198.18.1.2", "-s", "h"])).kind(),
            ErrorKind::ArgumentConflict
        );
        for r in ["-R", "--resolve-ip-https"] {
            assert_eq!(
                err(&keys(&["-A", "tcp/22", r, "h"])),
                CliError::Spa(SpaError::ResolveUnsupported)
            );
        }
    }

    #[test]
    fn spa_missing_or_bad_keys() {
        assert_eq!(
            err(&["-A", "tcp/22", "-s", "--hmac-key", "m", "h"]),
            CliError::Spa(SpaError::NoKey)
        );
        assert_eq!(
            err(&["-A", "tcp/22", "-s", "--key", "k", "h"]),
            CliError::Spa(SpaError::NoHmacKey)
        );
        assert_eq!(
            err(&[
                "-A",
                "tcp/22",
                "-s",
                "--key",
                "same",
                "--hmac-key",
                "same",
                "h"
            ]),
            CliError::Spa(SpaError::SameKeys)
        );
        let e = err(&[
            "-A",
            "tcp/22",
            "-s",
            "--key-base64",
            "Sup3rS3cret!",
            "--hmac-key",
            "m",
            "h",
        ]);
        let text = e.to_string();
        assert!(
            text.starts_with("--key-base64: the encryption key is not valid base64"),
            "{text}"
        );
        assert!(!text.contains("Sup3rS3cret"), "{text}");
        let long = "x".repeat(33);
        let e = err(&["-A", "tcp/22", "-s", "--key", &long, "--hmac-key", "m", "h"]);
        assert_eq!(
            e.to_string(),
            "the encryption key is 33 bytes long; fwknop allows at most 32"
        );
        assert!(!e.to_string().contains(&long));
        assert_eq!(
            clap_err(&["-A", "tcp/22", "--key", "a", "--key-base64", "YQ==", "h"]).kind(),
            ErrorKind::ArgumentConflict
        );
    }

    #[test]
    fn spa_bad_values_name_the_option() {
        for (args, opt) in [
            (&["-A", "tcp/99999"][..], "--access <LIST>"),
            (&["-A", "22"], "--access <LIST>"),
            (&["-A", "tcp/22", "-a", "not-an-ip"], "--allow-ip <IP>"),
            (&["-A", "tcp/22", "-f", "200000"], "--fw-timeout <SECONDS>"),
            (&["-A", "tcp/22", "-p", "0"], "--server-port <PORT>"),
            (
                &["-A", "tcp/22", "--hmac-digest", "crc32"],
                "--hmac-digest <ALG>",
            ),
            (&["-A", "tcp/22", "-M", "ecb"], "--encryption-mode <MODE>"),
        ] {
            let e = clap_err(args);
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{args:?}: {e}");
            assert!(e.to_string().contains(opt), "{args:?}: {e}");
        }
    }

    #[test]
    fn spa_mode_conflicts() {
        let base = keys(&["-A", "tcp/22", "-s", "h"]);
        let with = |extra: &[&str]| {
            let mut v = base.clone();
            v.extend_from_slice(extra);
            err(&v)
        };
        let e = with(&["7000", "8000"]);
        assert_eq!(
            e.to_string(),
            "unexpected arguments \"7000\" \"8000\" with SPA (-A/--access): SPA opens the ports \
             listed with -A (e.g. -A tcp/22,udp/53), it does not knock"
        );
        assert_eq!(
            with(&["-u"]).to_string(),
            "-u/--udp cannot be used with SPA (-A/--access): the SPA packet always goes over UDP"
        );
        assert!(matches!(
            with(&["-d", "10"]),
            CliError::NotWith {
                flag: "-d/--delay",
                ..
            }
        ));
        assert!(matches!(
            with(&["--both"]),
            CliError::NotWith { flag: "--both", .. }
        ));
        assert!(matches!(
            with(&["--length", "4"]),
            CliError::NotWith {
                flag: "--length",
                ..
            }
        ));
        assert_eq!(
            with(&["-D", "other"]),
            CliError::Spa(SpaError::HostTwice("h".into(), "other".into()))
        );
        assert_eq!(
            err(&keys(&["-A", "tcp/22", "-s"])),
            CliError::Spa(SpaError::NoHost)
        );
        assert_eq!(
            err(&keys(&[
                "-A",
                "tcp/22",
                "-s",
                "--secret-file",
                "/etc/door.secret"
            ])),
            CliError::Modes("--secret-file", "-A/--access")
        );
    }

    #[test]
    fn spa_options_without_spa_mode() {
        let e = err(&["-a", "198.18.1.2", "h", "7000"]);
        assert_eq!(
            e.to_string(),
            "-a/--allow-ip needs -A/--access or -n/--named-config (SPA mode)"
        );
        assert!(matches!(
            err(&["--key", "k", "h", "7000"]),
            CliError::Needs { flag: "--key", .. }
        ));
        assert!(matches!(
            err(&["-f", "30", "h", "7000"]),
            CliError::Needs {
                flag: "-f/--fw-timeout",
                ..
            }
        ));
    }

    #[test]
    fn spa_user_names() {
        let e = FakeEnv::new().var("LOGNAME", "lg").var("USER", "us");
        let args = keys(&["-A", "tcp/22", "-s", "h"]);
        let Mode::Spa(p) = run(&args, &e).unwrap().mode else {
            panic!()
        };
        assert_eq!(p.user, "lg");
        assert_eq!(
            run(&args, &FakeEnv::new()).unwrap_err(),
            CliError::Spa(SpaError::NoUser)
        );
        assert_eq!(
            err(&keys(&["-A", "tcp/22", "-s", "-U", "", "h"])),
            CliError::Spa(SpaError::EmptyUser)
        );
        let long = "u".repeat(60);
        let e = err(&keys(&["-A", "tcp/22", "-s", "-U", &long, "h"]));
        assert!(
            e.to_string()
                .starts_with("this request cannot be encoded: message: field user"),
            "{e}"
        );
    }

    const RC: &str = "\
[default]
SPA_SERVER_PORT 62999
[srv]
SPA_SERVER   198.18.1.1
ACCESS       tcp/22
ALLOW_IP     source
KEY_BASE64   S0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0tLS0s=
HMAC_KEY_BASE64 SEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISEhISA==
HMAC_DIGEST_TYPE SHA384
FW_TIMEOUT   45
SPOOF_USER   rcuser
";

    #[test]
    fn named_stanza_and_overrides() {
        let e = env().file("/home/alice/.fwknoprc", RC);
        let inv = run(&["-n", "srv"], &e).unwrap();
        assert!(inv.warnings.is_empty());
        let Mode::Spa(p) = inv.mode else { panic!() };
        assert_eq!(p.host, "198.18.1.1");
        assert_eq!(p.access, [tcp(22)]);
        assert_eq!(p.allow, Allow::Source);
        assert_eq!(p.port, 62999);
        assert_eq!(p.fw_timeout, Some(45));
        assert_eq!(p.user, "rcuser");
        assert_eq!(p.keys.hmac, HmacDigest::Sha384);
        assert_eq!(p.keys.enc_key, vec![b'K'; 32]);
        // The command line wins.
        let inv = run(
            &[
                "--named-config",
                "SRV",
                "-A",
                "udp/53",
                "-a",
                "198.18.1.7",
                "-p",
                "1234",
                "-f",
                "0",
                "-U",
                "cli",
                "--hmac-digest",
                "sha256",
                "--key",
                "other",
                "198.18.1.9",
            ],
            &e,
        )
        .unwrap();
        let Mode::Spa(p) = inv.mode else { panic!() };
        assert_eq!(p.host, "198.18.1.9");
        assert_eq!(p.access, [udp(53)]);
        assert_eq!(p.allow, Allow::Ip("198.18.1.7".parse().unwrap()));
        assert_eq!(p.port, 1234);
        assert_eq!(p.fw_timeout, None);
        assert_eq!(p.user, "cli");
        assert_eq!(p.keys.hmac, HmacDigest::Sha256);
        assert_eq!(p.keys.enc_key, b"other");
        assert_eq!(p.keys.hmac_key, Some(vec![b'H'; 64]));
    }

    #[test]
    fn rc_file_errors_and_warnings() {
        let mut e = env().file("/tmp/rc", RC);
        e.open_files.push("/tmp/rc".into());
        let inv = run(&["--rc-file", "/tmp/rc", "-n", "srv"], &e).unwrap();
        assert_eq!(
            inv.warnings,
            ["/tmp/rc holds keys and should only be readable by its owner (chmod 600 /tmp/rc)"]
        );
        // --rc-file alone: [default] only, so the rest must come from the command line.
        let inv = run(
            &keys(&["--rc-file", "/tmp/rc", "-A", "tcp/22", "-s", "h"]),
            &e,
        )
        .unwrap();
        let Mode::Spa(p) = inv.mode else { panic!() };
        assert_eq!(p.port, 62999);
        let e2 = env();
        assert_eq!(
            run(&["-n", "srv"], &e2).unwrap_err().to_string(),
            "cannot read fwknop rc file /home/alice/.fwknoprc: No such file or directory"
        );
        let no_home = FakeEnv::new().var("USER", "a");
        assert_eq!(
            run(&["-n", "srv"], &no_home).unwrap_err(),
            CliError::Spa(SpaError::NoHome)
        );
        let e3 = env().file("/home/alice/.fwknoprc", RC);
        assert_eq!(
            run(&["-n", "nope"], &e3).unwrap_err().to_string(),
            "/home/alice/.fwknoprc: no stanza [nope] (the file has [default], [srv])"
        );
        let bad = env().file(
            "/home/alice/.fwknoprc",
            "[srv]\nACCESS tcp/22\nFW_TIMEOUT x\n",
        );
        assert_eq!(
            run(&["-n", "srv"], &bad).unwrap_err().to_string(),
            "/home/alice/.fwknoprc:3: FW_TIMEOUT: \"x\" is not a number of seconds from 0 to 131072"
        );
        // A stanza without ALLOW_IP and no -a/-s: the fwknop-like error.
        let partial = env().file(
            "/home/alice/.fwknoprc",
            "[srv]\nSPA_SERVER h\nACCESS tcp/22\nKEY k\nHMAC_KEY m\n",
        );
        assert_eq!(
            run(&["-n", "srv"], &partial).unwrap_err(),
            CliError::Spa(SpaError::NoAllowIp)
        );
    }

    #[test]
    fn keys_never_in_debug_output() {
        let inv = run(&keys(&["-A", "tcp/22", "-s", "h"]), &env()).unwrap();
        let dbg = format!("{inv:?}");
        assert!(!dbg.contains("KKKK") && !dbg.contains("HHHH"), "{dbg}");
        let inv = run(
            &[
                "-A",
                "tcp/22",
                "-s",
                "--key",
                "hunter2",
                "--hmac-key",
                "swordfish",
                "h",
            ],
            &env(),
        )
        .unwrap();
        let dbg = format!("{inv:?}");
        assert!(
            !dbg.contains("hunter2") && !dbg.contains("swordfish"),
            "{dbg}"
        );
    }

    fn rotating(args: &[&str]) -> RotatingPlan {
        match run(args, &env()).unwrap().mode {
            Mode::Rotating(p) => p,
            m => panic!("not rotating: {m:?}"),
        }
    }

    #[test]
    fn rotating_defaults_and_options() {
        let p = rotating(&["--secret-file", "/etc/door.secret", "h"]);
        assert_eq!(p.spec.secret, (0u8..32).collect::<Vec<_>>());
        assert_eq!(
            (
                p.spec.length,
                p.spec.lo,
                p.spec.hi,
                p.spec.step,
                p.spec.proto
            ),
            (4, 10000, 60000, 30, Protocol::Tcp)
        );
        let RotatingAction::Knock(k) = p.action else {
            panic!()
        };
        assert_eq!(k.host, "h");
        assert!(k.knocks.is_empty());
        let p = rotating(&[
            "--secret-file",
            "/etc/door.secret",
            "--length",
            "6",
            "--range",
            "20000-20009",
            "--step",
            "60",
            "-u",
            "-d",
            "100",
            "-v",
            "--both",
            "h",
        ]);
        assert_eq!(
            (
                p.spec.length,
                p.spec.lo,
                p.spec.hi,
                p.spec.step,
                p.spec.proto
            ),
            (6, 20000, 20009, 60, Protocol::Udp)
        );
        let RotatingAction::Knock(k) = p.action else {
            panic!()
        };
        assert_eq!(k.delay, Duration::from_millis(100));
        assert!(k.verbose);
        assert_eq!(k.family, Family::Both);
    }

    #[test]
    fn rotating_print() {
        let p = rotating(&["--print", "--secret-file", "/etc/door.secret"]);
        assert_eq!(p.action, RotatingAction::Print);
        // Appending --print to a working command line works too.
        let p = rotating(&[
            "--secret-file",
            "/etc/door.secret",
            "-d",
            "5",
            "h",
            "--print",
        ]);
        assert_eq!(p.action, RotatingAction::Print);
        assert_eq!(
            err(&["--print"]).to_string(),
            "--print needs --secret-file (rotating sequences)"
        );
        assert_eq!(
            err(&["--print", "h", "1"]),
            CliError::Needs {
                flag: "--print",
                needs: "--secret-file (rotating sequences)"
            }
        );
        assert!(matches!(
            err(&["--length", "4", "h", "1"]),
            CliError::Needs {
                flag: "--length",
                ..
            }
        ));
    }

    #[test]
    fn rotating_errors() {
        let e = err(&["--secret-file", "/etc/door.secret", "h", "7000"]);
        assert_eq!(
            e.to_string(),
            "unexpected argument \"7000\" with --secret-file: the ports come from the secret file and the clock"
        );
        assert_eq!(
            err(&["--secret-file", "/etc/door.secret"]),
            CliError::MissingHost
        );
        assert_eq!(
            err(&["--secret-file", "/nope", "h"]).to_string(),
            "cannot read secret file /nope: No such file or directory"
        );
        let short = env().file("/s", "AAAA");
        assert_eq!(
            run(&["--secret-file", "/s", "h"], &short).unwrap_err(),
            CliError::Rotating(RotatingError::Short {
                path: "/s".into(),
                len: 3
            })
        );
        assert_eq!(
            err(&[
                "--secret-file",
                "/etc/door.secret",
                "--length",
                "5",
                "--range",
                "1-3",
                "h"
            ]),
            CliError::Rotating(RotatingError::Spec(RotateError::RangeTooSmall {
                lo: 1,
                hi: 3,
                size: 3,
                length: 5
            }))
        );
        assert!(matches!(
            err(&["--secret-file", "/etc/door.secret", "-s", "h"]),
            CliError::NotWith {
                flag: "-s/--source-ip",
                mode: "--secret-file",
                ..
            }
        ));
        for (args, opt) in [
            (&["--secret-file", "f", "--length", "0"][..], "--length <N>"),
            (&["--secret-file", "f", "--range", "9-5"], "--range <LO-HI>"),
            (&["--secret-file", "f", "--step", "0"], "--step <SECONDS>"),
        ] {
            let e = clap_err(args);
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{args:?}: {e}");
            assert!(e.to_string().contains(opt), "{args:?}: {e}");
        }
    }

    #[test]
    fn generators() {
        for a in ["--spa-keygen", "--key-gen", "-k"] {
            assert_eq!(run(&[a], &env()).unwrap().mode, Mode::SpaKeygen);
        }
        assert_eq!(
            run(&["--new-secret"], &env()).unwrap().mode,
            Mode::NewSecret
        );
        assert_eq!(
            err(&["--spa-keygen", "h"]).to_string(),
            "unexpected argument \"h\" with --spa-keygen (it only prints and exits)"
        );
        assert_eq!(
            err(&["--new-secret", "-v"]).to_string(),
            "-v/--verbose cannot be used with --new-secret (it only prints and exits)"
        );
        assert_eq!(
            err(&["--spa-keygen", "--new-secret"]),
            CliError::Modes("--spa-keygen", "--new-secret")
        );
        assert!(matches!(
            err(&["--new-secret", "--length", "3"]),
            CliError::NotWith {
                flag: "--length",
                ..
            }
        ));
        assert_eq!(
            err(&["--new-secret", "--secret-file", "f", "h"]),
            CliError::Modes("--new-secret", "--secret-file")
        );
    }
}
