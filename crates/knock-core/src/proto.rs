//! Transport protocols, ports and knock tokens.
//!
//! This module is the single home for parsing ports (`7000`), knock tokens (`7000:udp`) and
//! protocol names, shared by the knockd.conf parser, the client and the SPA code.

use std::fmt;
use std::str::FromStr;

/// The transport protocol of a knock or a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The lower-case name used in configs, logs and on the wire (`tcp`, `udp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// The IP protocol number (6 for TCP, 17 for UDP).
    pub fn ip_number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of [`Protocol::from_str`]: the name was neither `tcp` nor `udp`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol \"{0}\" (expected tcp or udp)")]
pub struct UnknownProtocol(pub String);

impl FromStr for Protocol {
    type Err = UnknownProtocol;

    /// Parses `tcp` or `udp`, case-insensitively, surrounding blanks ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("tcp") {
            Ok(Protocol::Tcp)
        } else if t.eq_ignore_ascii_case("udp") {
            Ok(Protocol::Udp)
        } else {
            Err(UnknownProtocol(t.to_string()))
        }
    }
}

/// Error of [`parse_port`]: the token is not an integer in 0..=65535.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad port \"{0}\"")]
pub struct BadPort(pub String);

/// Parses a port number: a decimal integer 0..=65535, surrounding blanks ignored.
///
/// Unlike knockd (which uses `atoi`, so junk becomes 0 and `-1` becomes 65535) anything else
/// is an error.
pub fn parse_port(s: &str) -> Result<u16, BadPort> {
    let t = s.trim();
    if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadPort(t.to_string()));
    }
    t.parse::<u16>().map_err(|_| BadPort(t.to_string()))
}

/// Error of [`parse_port_range`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortRangeError {
    #[error("\"{0}\" is not LOW-HIGH (e.g. 10000-60000)")]
    Shape(String),
    #[error(transparent)]
    Port(#[from] BadPort),
    #[error("\"{0}\" is reversed (LOW must not exceed HIGH)")]
    Reversed(String),
}

/// Parses an inclusive port range `LOW-HIGH` (`10000-60000`), LOW <= HIGH.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), PortRangeError> {
    let t = s.trim();
    let (a, b) = t
        .split_once('-')
        .ok_or_else(|| PortRangeError::Shape(t.to_string()))?;
    let (lo, hi) = (parse_port(a)?, parse_port(b)?);
    if lo > hi {
        return Err(PortRangeError::Reversed(t.to_string()));
    }
    Ok((lo, hi))
}

/// One knock: a destination port and the protocol to hit it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Knock {
    pub port: u16,
    pub proto: Protocol,
}

impl Knock {
    pub const fn new(port: u16, proto: Protocol) -> Self {
        Knock { port, proto }
    }
}

impl fmt::Display for Knock {
    /// Formats as knockd.conf writes it: `7000:tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.port, self.proto)
    }
}

/// Error of [`parse_knock`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KnockTokenError {
    #[error(transparent)]
    Port(#[from] BadPort),
    #[error(transparent)]
    Protocol(#[from] UnknownProtocol),
}

/// Splits a knock token `port[:proto]` into its port part and optional protocol, without
/// interpreting the port (the client also accepts service names there).
pub fn split_knock_token(token: &str) -> Result<(&str, Option<Protocol>), UnknownProtocol> {
    let token = token.trim();
    match token.split_once(':') {
        Some((port, proto)) => Ok((port.trim(), Some(proto.parse()?))),
        None => Ok((token, None)),
    }
}

/// Parses a knock token `port[:proto]` (`7000`, `8000:udp`, `9000:TCP`); the protocol defaults
/// to `default_proto`.
pub fn parse_knock(token: &str, default_proto: Protocol) -> Result<Knock, KnockTokenError> {
    let (port, proto) = split_knock_token(token)?;
    Ok(Knock::new(
        parse_port(port)?,
        proto.unwrap_or(default_proto),
    ))
}

/// A port a door opens, written `proto/port` in `open =` and in fwknop access requests
/// (`tcp/22`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtoPort {
    pub proto: Protocol,
    pub port: u16,
}

impl fmt::Display for ProtoPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.proto, self.port)
    }
}

/// Error of [`parse_proto_port`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoPortError {
    #[error("expected proto/port (e.g. tcp/22), got \"{0}\"")]
    Shape(String),
    #[error(transparent)]
    Port(#[from] BadPort),
    #[error(transparent)]
    Protocol(#[from] UnknownProtocol),
}

/// Parses `tcp/22` or `udp/53` (protocol case-insensitive).
pub fn parse_proto_port(s: &str) -> Result<ProtoPort, ProtoPortError> {
    let t = s.trim();
    let (proto, port) = t
        .split_once('/')
        .ok_or_else(|| ProtoPortError::Shape(t.to_string()))?;
    Ok(ProtoPort {
        proto: proto.parse()?,
        port: parse_port(port)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(parse_port("0"), Ok(0));
        assert_eq!(parse_port(" 65535 "), Ok(65535));
        assert_eq!(parse_port("007000"), Err(BadPort("007000".into())));
        for bad in ["", "-1", "65536", "notaport", "12a", "+5", "1.5"] {
            assert_eq!(parse_port(bad), Err(BadPort(bad.into())), "{bad}");
        }
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range(" 10000-60000 "), Ok((10000, 60000)));
        assert_eq!(parse_port_range("5-5"), Ok((5, 5)));
        assert_eq!(
            parse_port_range("9-5"),
            Err(PortRangeError::Reversed("9-5".into()))
        );
        assert_eq!(
            parse_port_range("95"),
            Err(PortRangeError::Shape("95".into()))
        );
        assert_eq!(
            parse_port_range("1-70000"),
            Err(PortRangeError::Port(BadPort("70000".into())))
        );
    }

    #[test]
    fn knock_tokens() {
        assert_eq!(
            parse_knock("7000", Protocol::Tcp),
            Ok(Knock::new(7000, Protocol::Tcp))
        );
        assert_eq!(
            parse_knock("7000:UDP", Protocol::Tcp),
            Ok(Knock::new(7000, Protocol::Udp))
        );
        assert_eq!(
            parse_knock(" 80:tcp ", Protocol::Udp),
            Ok(Knock::new(80, Protocol::Tcp))
        );
        assert!(matches!(
            parse_knock("80:icmp", Protocol::Tcp),
            Err(KnockTokenError::Protocol(UnknownProtocol(p))) if p == "icmp"
        ));
        assert!(matches!(
            parse_knock("x:tcp", Protocol::Tcp),
            Err(KnockTokenError::Port(_))
        ));
    }

    #[test]
    fn proto_ports() {
        assert_eq!(
            parse_proto_port("TCP/22").map(|p| p.to_string()),
            Ok("tcp/22".to_string())
        );
        assert!(matches!(
            parse_proto_port("22"),
            Err(ProtoPortError::Shape(_))
        ));
        assert!(matches!(
            parse_proto_port("sctp/22"),
            Err(ProtoPortError::Protocol(_))
        ));
    }
}
