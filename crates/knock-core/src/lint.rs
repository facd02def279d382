//! Warnings about weak static doors, printed at startup.
//!
//! A fixed sequence is a password sent in clear. Some are weaker than others: a sequential port
//! scan (`nmap -sS -r`) opens any door whose ports ascend (knockd issue #71; the Debian default
//! 7000,8000,9000 is one), short sequences are easy to guess, a knock port where a service
//! listens is hit by ordinary clients, a TCP door without `tcpflags = syn` counts any TCP
//! segment (RSTs, ACKs of unrelated traffic), and a single-port UDP door opens to any datagram.

use crate::config::{Door, RotatingConf, Trigger};
use crate::proto::{Knock, Protocol};

/// One warning about a door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub door: String,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "door [{}]: {}", self.door, self.message)
    }
}

/// What the checks need to know about the host.
pub struct Host<'a> {
    /// Whether a service listens on a (protocol, port) of this host.
    pub listening: &'a dyn Fn(Knock) -> bool,
    /// The host's ephemeral (local) port range, for outbound connections.
    pub ephemeral: Option<(u16, u16)>,
}

/// Warnings about a door: weak fixed sequences, and rotating doors whose range catches the
/// host's own traffic.
pub fn check_door(door: &Door, host: &Host<'_>) -> Vec<Warning> {
    let seq = match &door.trigger {
        Trigger::Sequence(seq) => seq,
        Trigger::Rotating(r) => return check_rotating(door, r, host),
        _ => return Vec::new(),
    };
    let listening = host.listening;
    let mut out = Vec::new();
    let mut warn = |message: String| {
        out.push(Warning {
            door: door.name.clone(),
            message,
        })
    };
    let ports: Vec<u16> = seq.iter().map(|k| k.port).collect();
    if ports.len() >= 2 {
        if ports.windows(2).all(|w| w[0] < w[1]) {
            warn(format!(
                "its ports ascend ({}): a sequential port scan (nmap -sS -r) opens it; reorder them or use a rotating door",
                join(&ports)
            ));
        } else if ports.windows(2).all(|w| w[0] > w[1]) {
            warn(format!(
                "its ports descend ({}): a reverse sequential scan opens it; reorder them or use a rotating door",
                join(&ports)
            ));
        } else if ports.windows(2).all(|w| w[0] <= w[1]) || ports.windows(2).all(|w| w[0] >= w[1]) {
            warn(format!(
                "its ports are monotone ({}): a sequential scan with retransmissions can open it",
                join(&ports)
            ));
        }
    }
    if seq.len() < 3 {
        warn(format!(
            "only {} knock(s): easy to guess; use at least 3, or SPA",
            seq.len()
        ));
    }
    let mut busy: Vec<Knock> = seq.iter().copied().filter(|k| listening(*k)).collect();
    busy.dedup();
    for k in busy {
        warn(format!(
            "a service listens on {}/{}: its ordinary clients knock on this door",
            k.proto, k.port
        ));
    }
    let has_tcp = seq.iter().any(|k| k.proto == Protocol::Tcp);
    if has_tcp && door.tcp_flags.must_set & crate::tcpflags::bits::SYN == 0 {
        warn(
            "TCP knocks without \"tcpflags = syn\": any TCP segment (RST, ACK) counts as a knock"
                .to_string(),
        );
    }
    if seq.len() == 1 && seq[0].proto == Protocol::Udp {
        warn(format!(
            "a single UDP port ({}): any datagram to it, from anyone, opens the door",
            seq[0].port
        ));
    }
    out
}

fn check_rotating(door: &Door, r: &RotatingConf, host: &Host<'_>) -> Vec<Warning> {
    let mut out = Vec::new();
    if r.protocol != Protocol::Tcp {
        return out;
    }
    let syn_only = door.tcp_flags.must_set & crate::tcpflags::bits::SYN != 0
        && door.tcp_flags.must_clear & crate::tcpflags::bits::ACK != 0;
    if let Some((lo, hi)) = host.ephemeral
        && r.port_lo <= hi
        && lo <= r.port_hi
        && !syn_only
    {
        out.push(Warning {
            door: door.name.clone(),
            message: format!(
                "its port range {}-{} overlaps this host's ephemeral ports {lo}-{hi}: replies to \
                 the host's own connections reach the door and reset their senders' knocks; set \
                 \"tcpflags = syn,!ack\" or a range below {lo}",
                r.port_lo, r.port_hi
            ),
        });
    } else if door.tcp_flags.must_set & crate::tcpflags::bits::SYN == 0 {
        out.push(Warning {
            door: door.name.clone(),
            message: "TCP knocks without \"tcpflags = syn\": any TCP segment (RST, ACK) counts as a knock"
                .to_string(),
        });
    }
    out
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn warnings(conf: &str, listening: &[(u16, Protocol)]) -> Vec<String> {
        let c = parse(conf, "t").unwrap();
        let listening = |k: Knock| listening.contains(&(k.port, k.proto));
        let host = Host {
            listening: &listening,
            ephemeral: Some((32768, 60999)),
        };
        check_door(&c.doors[0], &host)
            .into_iter()
            .map(|w| w.to_string())
            .collect()
    }

    #[test]
    fn debian_default_door_is_flagged_ascending() {
        let w = warnings(
            "[openSSH]\nsequence = 7000,8000,9000\ntcpflags = syn\n",
            &[],
        );
        assert_eq!(
            w,
            [
                "door [openSSH]: its ports ascend (7000,8000,9000): a sequential port scan (nmap -sS -r) opens it; reorder them or use a rotating door"
            ]
        );
    }

    #[test]
    fn good_door_has_no_warning() {
        assert!(warnings("[d]\nsequence = 7000,9000,8000\ntcpflags = syn\n", &[]).is_empty());
    }

    #[test]
    fn each_weakness() {
        let w = warnings("[d]\nsequence = 9000,8000,7000\ntcpflags=syn\n", &[]);
        assert!(w[0].contains("descend"), "{w:?}");
        let w = warnings("[d]\nsequence = 7000,7000,8000\ntcpflags=syn\n", &[]);
        assert!(w[0].contains("monotone"), "{w:?}");
        let w = warnings("[d]\nsequence = 8000,7000\ntcpflags=syn\n", &[]);
        assert!(w.iter().any(|m| m.contains("only 2 knock(s)")), "{w:?}");
        let w = warnings(
            "[d]\nsequence = 22,7000,1000\ntcpflags=syn\n",
            &[(22, Protocol::Tcp)],
        );
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("a service listens on tcp/22"), "{w:?}");
        let w = warnings("[d]\nsequence = 3000,7000,1000\n", &[]);
        assert!(w[0].contains("tcpflags = syn"), "{w:?}");
        let w = warnings("[d]\nsequence = 5000:udp\n", &[]);
        assert!(
            w.iter().any(|m| m.contains("a single UDP port (5000)")),
            "{w:?}"
        );
        assert!(
            !w.iter().any(|m| m.contains("tcpflags")),
            "UDP-only doors need no flags"
        );
    }

    #[test]
    fn spa_and_udp_rotating_doors_are_not_checked() {
        assert!(warnings("[r]\nsecret_file = s\nprotocol = udp\n", &[]).is_empty());
        assert!(warnings("[s]\nspa_key = k\nspa_hmac_key = h\nopen = tcp/22\n", &[]).is_empty());
    }

    #[test]
    fn rotating_tcp_doors() {
        // Default range 10000-60000 overlaps the ephemeral ports 32768-60999.
        let w = warnings("[r]\nsecret_file = s\n", &[]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains(
                "port range 10000-60000 overlaps this host's ephemeral ports 32768-60999"
            ),
            "{w:?}"
        );
        // syn,!ack makes the overlap harmless.
        assert!(warnings("[r]\nsecret_file = s\ntcpflags = syn,!ack\n", &[]).is_empty());
        // Below the ephemeral range, only the missing syn rule is worth a word.
        let w = warnings("[r]\nsecret_file = s\nport_range = 10000-32767\n", &[]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("tcpflags = syn"), "{w:?}");
        assert!(
            warnings(
                "[r]\nsecret_file = s\nport_range = 10000-32767\ntcpflags = syn\n",
                &[]
            )
            .is_empty()
        );
    }
}
