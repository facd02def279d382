//! Command line: knockd 0.8's flags, plus a few of ours.

use std::path::PathBuf;

use clap::Parser;

/// The default configuration file, as knockd's.
pub const DEFAULT_CONFIG: &str = "/etc/knockd.conf";

/// knockd: port-knock daemon (drop-in replacement for knockd 0.8).
#[derive(Debug, Clone, Parser, PartialEq, Eq)]
#[command(
    name = "knockd",
    version,
    about = "Port-knock daemon: runs commands or opens firewall grants when a knock sequence arrives",
    after_help = "With no -c and no /etc/knockd.conf, knockd runs a built-in example door.\n\
                  Signals: SIGHUP re-reads the configuration and reopens the log file; \
                  SIGTERM/SIGINT run pending stop commands and exit."
)]
pub struct Cli {
    /// Network interface(s) to listen on: a name, a comma-separated list, or "any"
    /// (default: the config's Interface, else "eth0")
    #[arg(short = 'i', long = "interface", value_name = "int")]
    pub interface: Option<String>,

    /// Run as a daemon (fork to the background, write the pid file)
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,

    /// Use an alternate config file
    #[arg(short = 'c', long = "config", value_name = "file")]
    pub config: Option<PathBuf>,

    /// Output debug messages (every packet seen)
    #[arg(short = 'D', long = "debug")]
    pub debug: bool,

    /// Look up DNS names of knockers for log lines (done off the packet path)
    #[arg(short = 'l', long = "lookup")]
    pub lookup: bool,

    /// Use an alternate pid file
    #[arg(short = 'p', long = "pidfile", value_name = "file")]
    pub pidfile: Option<PathBuf>,

    /// Use an alternate log file
    #[arg(short = 'g', long = "logfile", value_name = "file")]
    pub logfile: Option<PathBuf>,

    /// Be verbose
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,

    /// Do not track IPv6
    #[arg(short = '4', long = "only-ip-v4")]
    pub only_ipv4: bool,

    /// Run the built-in example door instead of a config file
    #[arg(long, conflicts_with = "config")]
    pub example: bool,

    /// Print the built-in example configuration and exit
    #[arg(long)]
    pub print_example: bool,

    /// Check the configuration, print a summary of its doors and exit
    #[arg(short = 'n', long = "check")]
    pub check: bool,

    /// Ask the running daemon for its grants and counters, print them and exit
    #[arg(long)]
    pub status: bool,

    /// With --status: print one JSON object (counters and grants) instead of the table
    #[arg(long, requires = "status")]
    pub json: bool,

    /// Read packets from a pcap file instead of live interfaces (testing, diagnosis)
    #[arg(long, value_name = "file")]
    pub pcap_file: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("knockd").chain(args.iter().copied()))
    }

    #[test]
    fn knockd_flags() {
        let cli = parse(&[
            "-i",
            "eth1",
            "-d",
            "-c",
            "/tmp/k.conf",
            "-D",
            "-l",
            "-p",
            "/run/k.pid",
            "-g",
            "/tmp/k.log",
            "-v",
            "-4",
        ])
        .unwrap();
        assert_eq!(cli.interface.as_deref(), Some("eth1"));
        assert!(cli.daemon && cli.debug && cli.lookup && cli.verbose && cli.only_ipv4);
        assert_eq!(cli.config, Some(PathBuf::from("/tmp/k.conf")));
        assert_eq!(cli.pidfile, Some(PathBuf::from("/run/k.pid")));
        assert_eq!(cli.logfile, Some(PathBuf::from("/tmp/k.log")));
    }

    #[test]
    fn long_forms() {
        let cli = parse(&[
            "--interface=any",
            "--daemon",
            "--config",
            "x",
            "--debug",
            "--lookup",
            "--pidfile",
            "p",
            "--logfile",
            "l",
            "--verbose",
            "--only-ip-v4",
        ])
        .unwrap();
        assert_eq!(cli.interface.as_deref(), Some("any"));
        assert!(cli.daemon && cli.debug && cli.lookup && cli.verbose && cli.only_ipv4);
    }

    #[test]
    fn version_help_and_errors() {
        assert_eq!(
            parse(&["-V"]).unwrap_err().kind(),
            clap::error::ErrorKind::DisplayVersion
        );
        assert_eq!(
            parse(&["-h"]).unwrap_err().kind(),
            clap::error::ErrorKind::DisplayHelp
        );
        assert!(parse(&["-x"]).is_err());
        assert!(parse(&["-c"]).is_err());
        assert!(parse(&["--example", "-c", "f"]).is_err());
    }
}
