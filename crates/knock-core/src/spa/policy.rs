//! What an authenticated SPA request may do at a door: the policy checks that follow
//! decryption (user, source, requested address, ports, timeout, message type).

use std::net::IpAddr;

use crate::config::SpaConf;
use crate::proto::ProtoPort;
use crate::spa::{MessageKind, SpaMessage};

/// A door's SPA policy: its `spa_*` settings plus the door-level `open`, `open_timeout` and
/// `from`.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub spa: &'a SpaConf,
    /// `open`: what requests may ask for; empty = any port (a door that only runs commands).
    pub open: &'a [ProtoPort],
    /// `open_timeout`: the grant's duration when the client asks for none.
    pub open_timeout: u64,
    /// `from`: who may send requests; empty = anyone.
    pub from: &'a [crate::addr::IpNet],
}

/// What an accepted request does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Open `ports` for `ip` during `timeout` seconds.
    Access {
        ip: IpAddr,
        ports: Vec<ProtoPort>,
        timeout: u64,
    },
    /// Run an allowed command (a type 0 message naming one of `spa_allow_command`).
    Command { ip: IpAddr, command: String },
}

/// Why a request is refused, for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("source {0} is not in the door's from list")]
    Source(IpAddr),
    #[error("user \"{got}\" is not the required user \"{want}\"")]
    User { got: String, want: String },
    #[error(
        "the request asks for the packet's source address (0.0.0.0), which this door refuses (require_source_address)"
    )]
    SourceAddressRequired,
    #[error("port {0} is not open at this door")]
    Port(ProtoPort),
    #[error("no port requested")]
    NoPorts,
    #[error("NAT access requests are not supported")]
    Nat,
    #[error("command \"{0}\" is not allowed at this door (spa_allow_command)")]
    Command(String),
}

impl Policy<'_> {
    /// Decides what `msg`, received from `src`, may do.
    pub fn decide(&self, msg: &SpaMessage, src: IpAddr) -> Result<Decision, Refusal> {
        if !self.from.is_empty() && !self.from.iter().any(|n| n.contains(src)) {
            return Err(Refusal::Source(src));
        }
        if let Some(want) = &self.spa.require_user
            && &msg.user != want
        {
            return Err(Refusal::User {
                got: msg.user.clone(),
                want: want.clone(),
            });
        }
        let ip = match msg.kind.requested_ip() {
            Some(ip) => ip,
            None if self.spa.require_source_address => {
                return Err(Refusal::SourceAddressRequired);
            }
            None => src,
        };
        match &msg.kind {
            MessageKind::NatAccess { .. } => Err(Refusal::Nat),
            MessageKind::Command { command, .. } => {
                if self.spa.allowed_commands.iter().any(|c| c == command) {
                    Ok(Decision::Command {
                        ip,
                        command: command.clone(),
                    })
                } else {
                    Err(Refusal::Command(command.clone()))
                }
            }
            MessageKind::Access { ports, .. } => {
                if ports.is_empty() {
                    return Err(Refusal::NoPorts);
                }
                if !self.open.is_empty()
                    && let Some(p) = ports.iter().find(|p| !self.open.contains(p))
                {
                    return Err(Refusal::Port(*p));
                }
                let timeout = match msg.client_timeout {
                    Some(t) if t > 0 => u64::from(t).min(self.spa.max_open_timeout),
                    _ => self.open_timeout,
                };
                Ok(Decision::Access {
                    ip,
                    ports: ports.clone(),
                    timeout,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{KeyBytes, SpaConf};
    use crate::proto::parse_proto_port;
    use crate::spa::{HmacDigest, NatTarget, SpaMessage};

    fn conf() -> SpaConf {
        SpaConf {
            key: KeyBytes(b"k".to_vec()),
            hmac_key: Some(KeyBytes(b"h".to_vec())),
            hmac_digest: HmacDigest::Sha256,
            port: 62201,
            max_age: 120,
            max_open_timeout: 300,
            require_user: None,
            require_source_address: false,
            legacy: false,
            allowed_commands: vec!["/usr/bin/true".into()],
        }
    }

    fn pp(s: &str) -> ProtoPort {
        parse_proto_port(s).unwrap()
    }

    fn msg(ip: &str, ports: &[&str], timeout: Option<u32>) -> SpaMessage {
        SpaMessage::access(
            "1234567890123456".into(),
            "alice",
            1_800_000_000,
            ip.parse().unwrap(),
            ports.iter().map(|p| pp(p)).collect(),
            timeout,
        )
    }

    const SRC: &str = "198.18.1.2";

    fn decide(policy: &Policy<'_>, m: &SpaMessage) -> Result<Decision, Refusal> {
        policy.decide(m, SRC.parse().unwrap())
    }

    #[test]
    fn access_with_and_without_timeout() {
        let c = conf();
        let open = [pp("tcp/22"), pp("tcp/443")];
        let p = Policy {
            spa: &c,
            open: &open,
            open_timeout: 30,
            from: &[],
        };
        assert_eq!(
            decide(&p, &msg("198.51.100.7", &["tcp/22"], None)),
            Ok(Decision::Access {
                ip: "198.51.100.7".parse().unwrap(),
                ports: vec![pp("tcp/22")],
                timeout: 30
            })
        );
        assert_eq!(
            decide(&p, &msg("0.0.0.0", &["tcp/22", "tcp/443"], Some(60))),
            Ok(Decision::Access {
                ip: SRC.parse().unwrap(),
                ports: vec![pp("tcp/22"), pp("tcp/443")],
                timeout: 60
            })
        );
        // Capped by max_open_timeout.
        match decide(&p, &msg("0.0.0.0", &["tcp/22"], Some(100_000))) {
            Ok(Decision::Access { timeout, .. }) => assert_eq!(timeout, 300),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide(&p, &msg("0.0.0.0", &["tcp/80"], None)),
            Err(Refusal::Port(pp("tcp/80")))
        );
        assert_eq!(
            decide(&p, &msg("0.0.0.0", &["tcp/22", "udp/22"], None)),
            Err(Refusal::Port(pp("udp/22")))
        );
    }

    #[test]
    fn ipv6_unspecified_means_source() {
        let c = conf();
        let p = Policy {
            spa: &c,
            open: &[],
            open_timeout: 30,
            from: &[],
        };
        let m = msg("::", &["tcp/22"], None);
        match p.decide(&m, "2001:2:0:1::2".parse().unwrap()) {
            Ok(Decision::Access { ip, .. }) => {
                assert_eq!(ip, "2001:2:0:1::2".parse::<IpAddr>().unwrap())
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn user_source_and_required_address() {
        let mut c = conf();
        c.require_user = Some("bob".into());
        let p = Policy {
            spa: &c,
            open: &[],
            open_timeout: 30,
            from: &[],
        };
        assert_eq!(
            decide(&p, &msg("0.0.0.0", &["tcp/22"], None)),
            Err(Refusal::User {
                got: "alice".into(),
                want: "bob".into()
            })
        );
        let mut c = conf();
        c.require_source_address = true;
        let p = Policy {
            spa: &c,
            open: &[],
            open_timeout: 30,
            from: &[],
        };
        assert_eq!(
            decide(&p, &msg("0.0.0.0", &["tcp/22"], None)),
            Err(Refusal::SourceAddressRequired)
        );
        assert!(decide(&p, &msg(SRC, &["tcp/22"], None)).is_ok());
        let c = conf();
        let from = ["203.0.113.0/24".parse().unwrap()];
        let p = Policy {
            spa: &c,
            open: &[],
            open_timeout: 30,
            from: &from,
        };
        assert_eq!(
            decide(&p, &msg("0.0.0.0", &["tcp/22"], None)),
            Err(Refusal::Source(SRC.parse().unwrap()))
        );
    }

    #[test]
    fn commands_and_nat() {
        let c = conf();
        let p = Policy {
            spa: &c,
            open: &[],
            open_timeout: 30,
            from: &[],
        };
        let mut m = msg("0.0.0.0", &["tcp/22"], None);
        m.kind = MessageKind::Command {
            ip: "0.0.0.0".parse().unwrap(),
            command: "/usr/bin/true".into(),
        };
        assert_eq!(
            decide(&p, &m),
            Ok(Decision::Command {
                ip: SRC.parse().unwrap(),
                command: "/usr/bin/true".into()
            })
        );
        m.kind = MessageKind::Command {
            ip: "0.0.0.0".parse().unwrap(),
            command: "rm -rf /".into(),
        };
        assert_eq!(decide(&p, &m), Err(Refusal::Command("rm -rf /".into())));
        m.kind = MessageKind::NatAccess {
            ip: "0.0.0.0".parse().unwrap(),
            ports: vec![pp("tcp/22")],
            nat: NatTarget {
                host: "192.168.10.2".into(),
                port: 22,
            },
            local: false,
        };
        assert_eq!(decide(&p, &m), Err(Refusal::Nat));
    }
}
