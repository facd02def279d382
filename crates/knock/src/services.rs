//! Service names (`ssh`, `https`) to port numbers, without libc's `getservbyname`.
//!
//! The system services file is read when it exists (`/etc/services` on Unix,
//! `%SystemRoot%\System32\drivers\etc\services` on Windows; both use the same format), then a
//! small built-in table of common names is consulted, so names work on systems without the file
//! (containers, minimal images).
//!
//! Lookup is case-insensitive. A name registered only for the other protocol still resolves
//! (`http:udp` gives 80): for knocking only the port number matters, and the classic client's
//! refusal ("Servname not supported for ai_socktype") helps nobody.

use knock_core::proto::{Protocol, parse_port};

/// Anything that maps a service name and a protocol to a port.
pub trait ServiceLookup {
    /// The port of service `name` for `proto`, if known.
    fn port(&self, name: &str, proto: Protocol) -> Option<u16>;
}

/// Common services, used after the system file. Ports are the IANA ones, identical for TCP and UDP.
const BUILTIN: &[(&str, u16)] = &[
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("dns", 53),
    ("http", 80),
    ("www", 80),
    ("pop3", 110),
    ("ntp", 123),
    ("imap", 143),
    ("imap2", 143),
    ("snmp", 161),
    ("ldap", 389),
    ("https", 443),
    ("microsoft-ds", 445),
    ("submissions", 465),
    ("smtps", 465),
    ("syslog", 514),
    ("submission", 587),
    ("ldaps", 636),
    ("rsync", 873),
    ("imaps", 993),
    ("pop3s", 995),
    ("openvpn", 1194),
    ("mysql", 3306),
    ("ms-wbt-server", 3389),
    ("rdp", 3389),
    ("sip", 5060),
    ("postgresql", 5432),
    ("postgres", 5432),
    ("vnc", 5900),
    ("x11", 6000),
    ("http-alt", 8080),
    ("wireguard", 51820),
];

/// One line of a services file: a name (or alias), a port and a protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    port: u16,
    proto: Protocol,
}

/// Service table: entries of the system file (possibly none), then the built-in table.
#[derive(Debug, Clone, Default)]
pub struct Services {
    file: Vec<Entry>,
}

impl Services {
    /// Only the built-in table.
    pub fn builtin() -> Self {
        Services::default()
    }

    /// The system services file if it can be read, plus the built-in table.
    pub fn system() -> Self {
        match system_file().and_then(|p| std::fs::read_to_string(p).ok()) {
            Some(text) => Services::from_text(&text),
            None => Services::builtin(),
        }
    }

    /// Parses services-file text (`name port/proto [aliases...] [# comment]`). Malformed lines
    /// are skipped, as libc does; entries for protocols other than tcp/udp are ignored.
    pub fn from_text(text: &str) -> Self {
        let mut file = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_whitespace();
            let (Some(name), Some(port_proto)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Some((port, proto)) = port_proto.split_once('/') else {
                continue;
            };
            let (Ok(port), Ok(proto)) = (parse_port(port), proto.parse::<Protocol>()) else {
                continue;
            };
            for n in std::iter::once(name).chain(fields) {
                file.push(Entry {
                    name: n.to_string(),
                    port,
                    proto,
                });
            }
        }
        Services { file }
    }
}

impl ServiceLookup for Services {
    fn port(&self, name: &str, proto: Protocol) -> Option<u16> {
        let named = |e: &&Entry| e.name.eq_ignore_ascii_case(name);
        self.file
            .iter()
            .filter(named)
            .find(|e| e.proto == proto)
            .or_else(|| self.file.iter().find(named))
            .map(|e| e.port)
            .or_else(|| {
                BUILTIN
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|&(_, p)| p)
            })
    }
}

/// Where the platform keeps its services file.
fn system_file() -> Option<std::path::PathBuf> {
    #[cfg(unix)]
    {
        Some("/etc/services".into())
    }
    #[cfg(windows)]
    {
        std::env::var_os("SystemRoot").map(|root| {
            std::path::PathBuf::from(root)
                .join("System32")
                .join("drivers")
                .join("etc")
                .join("services")
        })
    }
    #[cfg(not(any(unix, windows)))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# comment line
tcpmux\t\t1/tcp\t\t\t\t# TCP port service multiplexer
ssh\t\t22/tcp\t\t\t\t# SSH Remote Login Protocol
domain\t\t53/tcp
domain\t\t53/udp
http\t\t80/tcp\t\twww\t\t# WorldWideWeb HTTP
odd\t\t7777/udp
odd\t\t7778/tcp
weird\t\t99/sctp
broken\t\tnotaport/tcp
nofield
kerberos\t88/tcp\t\tkerberos5 krb5 kerberos-sec\t# Kerberos v5
";

    #[test]
    fn parses_names_aliases_and_protocols() {
        let s = Services::from_text(SAMPLE);
        assert_eq!(s.port("ssh", Protocol::Tcp), Some(22));
        assert_eq!(s.port("domain", Protocol::Udp), Some(53));
        assert_eq!(s.port("www", Protocol::Tcp), Some(80));
        assert_eq!(s.port("krb5", Protocol::Tcp), Some(88));
        assert_eq!(s.port("kerberos-sec", Protocol::Tcp), Some(88));
        assert_eq!(s.port("tcpmux", Protocol::Tcp), Some(1));
    }

    #[test]
    fn protocol_specific_entry_wins_then_any_protocol() {
        let s = Services::from_text(SAMPLE);
        assert_eq!(s.port("odd", Protocol::Udp), Some(7777));
        assert_eq!(s.port("odd", Protocol::Tcp), Some(7778));
        // http is only registered for tcp: udp still gets 80.
        assert_eq!(s.port("http", Protocol::Udp), Some(80));
    }

    #[test]
    fn case_insensitive() {
        let s = Services::from_text(SAMPLE);
        assert_eq!(s.port("SSH", Protocol::Tcp), Some(22));
        assert_eq!(Services::builtin().port("HttPs", Protocol::Udp), Some(443));
    }

    #[test]
    fn malformed_lines_and_other_protocols_are_skipped() {
        let s = Services::from_text(SAMPLE);
        assert_eq!(s.port("weird", Protocol::Tcp), None);
        assert_eq!(s.port("broken", Protocol::Tcp), None);
        assert_eq!(s.port("nofield", Protocol::Tcp), None);
        assert_eq!(s.port("comment", Protocol::Tcp), None);
    }

    #[test]
    fn builtin_fallback() {
        let b = Services::builtin();
        assert_eq!(b.port("ssh", Protocol::Tcp), Some(22));
        assert_eq!(b.port("ssh", Protocol::Udp), Some(22));
        assert_eq!(b.port("wireguard", Protocol::Udp), Some(51820));
        assert_eq!(b.port("no-such-service", Protocol::Tcp), None);
        // A file without the name falls back to the table.
        assert_eq!(
            Services::from_text(SAMPLE).port("imaps", Protocol::Tcp),
            Some(993)
        );
        // The file wins over the table.
        let f = Services::from_text("ssh 2222/tcp\n");
        assert_eq!(f.port("ssh", Protocol::Tcp), Some(2222));
    }

    #[cfg(unix)]
    #[test]
    fn system_file_is_used_when_present() {
        if std::path::Path::new("/etc/services").exists() {
            let s = Services::system();
            assert!(
                !s.file.is_empty(),
                "/etc/services exists but gave no entries"
            );
        }
        assert_eq!(Services::system().port("ssh", Protocol::Tcp), Some(22));
    }
}
