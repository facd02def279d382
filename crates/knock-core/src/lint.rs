//! Warnings about weak static doors, printed at startup.
//!
//! A fixed sequence is a password sent in clear. Some are weaker than others: a sequential port
//! scan (`nmap -sS -r`) opens any door whose ports ascend (knockd issue #71; the Debian default
//! 7000,8000,9000 is one), short sequences are easy to guess, a knock port where a service
//! listens is hit by ordinary clients, a TCP door without `tcpflags = syn` counts any TCP
//! segment (RSTs, ACKs of unrelated traffic), and a single-port UDP door opens to any datagram.

use crate::config::{Door, Trigger};
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

/// Warnings about a door with a fixed sequence; `listening` tells whether a service listens on
/// a (protocol, port) of this host.
pub fn check_door(door: &Door, listening: &dyn Fn(Knock) -> bool) -> Vec<Warning> {
    let Trigger::Sequence(seq) = &door.trigger else {
        return Vec::new();
    };
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
        check_door(&c.doors[0], &|k: Knock| {
            listening.contains(&(k.port, k.proto))
        })
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
    fn non_sequence_doors_are_not_checked() {
        assert!(warnings("[r]\nsecret_file = s\n", &[]).is_empty());
    }
}
