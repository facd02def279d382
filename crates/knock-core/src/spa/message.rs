//! The SPA plaintext: fields, message types and their text form.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;

use super::keys::HmacDigest;
use crate::proto::{ProtoPort, parse_port, parse_proto_port};

/// The protocol version fwknop 2.6.10 writes (`FKO protocol version 3.0.0`).
pub const FKO_PROTOCOL_VERSION: &str = "3.0.0";
/// Longest user name field (base64 characters), as in fwknop.
pub const MAX_USER_B64_LEN: usize = 64;
/// Longest version field, as in fwknop (`12.34.56`).
pub const MAX_VERSION_LEN: usize = 8;
/// Longest timestamp field we parse (digits).
pub const MAX_TIMESTAMP_DIGITS: usize = 20;

/// fwknop's message type number (the fifth plaintext field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageType {
    /// 0: run a command on the server.
    Command,
    /// 1: open ports for an address.
    Access,
    /// 2: open ports and forward them to an inner host.
    NatAccess,
    /// 3: access with a client-requested timeout.
    ClientTimeoutAccess,
    /// 4: NAT access with a client-requested timeout.
    ClientTimeoutNatAccess,
    /// 5: forward to a port on the server itself.
    LocalNatAccess,
    /// 6: local NAT access with a client-requested timeout.
    ClientTimeoutLocalNatAccess,
}

impl MessageType {
    /// The number on the wire (0..=6).
    pub fn number(self) -> u8 {
        match self {
            MessageType::Command => 0,
            MessageType::Access => 1,
            MessageType::NatAccess => 2,
            MessageType::ClientTimeoutAccess => 3,
            MessageType::ClientTimeoutNatAccess => 4,
            MessageType::LocalNatAccess => 5,
            MessageType::ClientTimeoutLocalNatAccess => 6,
        }
    }

    /// The type for a wire number, if it is one of 0..=6.
    pub fn from_number(n: u8) -> Option<Self> {
        Some(match n {
            0 => MessageType::Command,
            1 => MessageType::Access,
            2 => MessageType::NatAccess,
            3 => MessageType::ClientTimeoutAccess,
            4 => MessageType::ClientTimeoutNatAccess,
            5 => MessageType::LocalNatAccess,
            6 => MessageType::ClientTimeoutLocalNatAccess,
            _ => return None,
        })
    }

    /// Whether a `nat` field follows the message (types 2, 4, 5, 6).
    pub fn has_nat(self) -> bool {
        matches!(
            self,
            MessageType::NatAccess
                | MessageType::ClientTimeoutNatAccess
                | MessageType::LocalNatAccess
                | MessageType::ClientTimeoutLocalNatAccess
        )
    }

    /// Whether a `client_timeout` field ends the fields (types 3, 4, 6).
    pub fn has_client_timeout(self) -> bool {
        matches!(
            self,
            MessageType::ClientTimeoutAccess
                | MessageType::ClientTimeoutNatAccess
                | MessageType::ClientTimeoutLocalNatAccess
        )
    }

    /// Whether the NAT target is on the server itself (types 5, 6).
    pub fn is_local_nat(self) -> bool {
        matches!(
            self,
            MessageType::LocalNatAccess | MessageType::ClientTimeoutLocalNatAccess
        )
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            MessageType::Command => "command",
            MessageType::Access => "access",
            MessageType::NatAccess => "NAT access",
            MessageType::ClientTimeoutAccess => "access with client timeout",
            MessageType::ClientTimeoutNatAccess => "NAT access with client timeout",
            MessageType::LocalNatAccess => "local NAT access",
            MessageType::ClientTimeoutLocalNatAccess => "local NAT access with client timeout",
        };
        write!(f, "{} ({name})", self.number())
    }
}

/// The `nat` field: `host,port` (an address or name of the inner host, or of the server
/// itself for local NAT, and the port to forward to).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NatTarget {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for NatTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{}", self.host, self.port)
    }
}

/// What the packet asks for.
///
/// `ip` is the address to open for; `0.0.0.0` (or `::`) means "the packet's source address"
/// (fwknop's `-s`): see [`MessageKind::requested_ip`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Type 0: `IP,command`.
    Command { ip: IpAddr, command: String },
    /// Types 1 and 3: `IP,proto/port[,proto/port...]`.
    Access { ip: IpAddr, ports: Vec<ProtoPort> },
    /// Types 2, 4 (`local: false`) and 5, 6 (`local: true`).
    NatAccess {
        ip: IpAddr,
        ports: Vec<ProtoPort>,
        nat: NatTarget,
        local: bool,
    },
}

impl MessageKind {
    /// The address in the message (possibly unspecified).
    pub fn ip(&self) -> IpAddr {
        match self {
            MessageKind::Command { ip, .. }
            | MessageKind::Access { ip, .. }
            | MessageKind::NatAccess { ip, .. } => *ip,
        }
    }

    /// The address in the message, or `None` when it is `0.0.0.0` / `::` ("use the packet's
    /// source address").
    pub fn requested_ip(&self) -> Option<IpAddr> {
        let ip = self.ip();
        (!ip.is_unspecified()).then_some(ip)
    }

    /// The requested ports (empty for commands).
    pub fn ports(&self) -> &[ProtoPort] {
        match self {
            MessageKind::Command { .. } => &[],
            MessageKind::Access { ports, .. } | MessageKind::NatAccess { ports, .. } => ports,
        }
    }
}

/// One SPA request: every field of the plaintext except the digest value, which is computed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpaMessage {
    /// 16 decimal digits (see [`rand16_from_entropy`]).
    pub rand: String,
    /// The client's user name.
    pub user: String,
    /// Unix seconds when the packet was made.
    pub timestamp: u64,
    /// Protocol version, e.g. `3.0.0` ([`FKO_PROTOCOL_VERSION`]); Android sends `2.0.2`.
    pub version: String,
    pub kind: MessageKind,
    /// fwknop's optional `server_auth` field (decoded); unused by fwknopd 2.6 but parsed.
    pub server_auth: Option<String>,
    /// Seconds the client asks the grant to last (types 3, 4, 6).
    pub client_timeout: Option<u32>,
    /// The algorithm of the inner digest.
    pub digest: HmacDigest,
}

impl SpaMessage {
    /// An access request (type 1, or 3 with `client_timeout`) with fwknop's defaults
    /// (version 3.0.0, SHA-256 inner digest).
    pub fn access(
        rand: String,
        user: impl Into<String>,
        timestamp: u64,
        ip: IpAddr,
        ports: Vec<ProtoPort>,
        client_timeout: Option<u32>,
    ) -> Self {
        SpaMessage {
            rand,
            user: user.into(),
            timestamp,
            version: FKO_PROTOCOL_VERSION.to_string(),
            kind: MessageKind::Access { ip, ports },
            server_auth: None,
            client_timeout,
            digest: HmacDigest::Sha256,
        }
    }

    /// The message type number this request is sent as.
    pub fn msg_type(&self) -> MessageType {
        let t = self.client_timeout.is_some();
        match &self.kind {
            MessageKind::Command { .. } => MessageType::Command,
            MessageKind::Access { .. } if t => MessageType::ClientTimeoutAccess,
            MessageKind::Access { .. } => MessageType::Access,
            MessageKind::NatAccess { local: false, .. } if t => MessageType::ClientTimeoutNatAccess,
            MessageKind::NatAccess { local: false, .. } => MessageType::NatAccess,
            MessageKind::NatAccess { local: true, .. } if t => {
                MessageType::ClientTimeoutLocalNatAccess
            }
            MessageKind::NatAccess { local: true, .. } => MessageType::LocalNatAccess,
        }
    }

    /// The complete plaintext, digest included, exactly as fwknop writes it:
    /// `rand:b64(user):timestamp:version:type:b64(message)[:b64(nat)][:b64(server_auth)][:timeout]:digest`.
    pub fn to_plaintext(&self) -> Result<String, MessageError> {
        let mut s = String::with_capacity(256);
        if !is_rand16(&self.rand) {
            return Err(MessageError::new(
                "rand",
                format!("\"{}\" is not 16 decimal digits", self.rand.escape_debug()),
            ));
        }
        s.push_str(&self.rand);
        s.push(':');
        check_text("user", &self.user, 1, (MAX_USER_B64_LEN / 4) * 3)?;
        push_b64(&mut s, &self.user);
        s.push(':');
        s.push_str(&self.timestamp.to_string());
        s.push(':');
        check_version(&self.version)?;
        s.push_str(&self.version);
        s.push(':');
        s.push_str(&self.msg_type().number().to_string());
        s.push(':');
        let body = match &self.kind {
            MessageKind::Command { ip, command } => {
                check_text("command", command, 1, MAX_FIELD_LEN)?;
                if self.client_timeout.is_some() {
                    return Err(MessageError::new(
                        "client_timeout",
                        "a command message cannot carry a client timeout",
                    ));
                }
                format!("{ip},{command}")
            }
            MessageKind::Access { ip, ports } | MessageKind::NatAccess { ip, ports, .. } => {
                if ports.is_empty() {
                    return Err(MessageError::new("message", "no proto/port to open"));
                }
                let mut m = ip.to_string();
                for p in ports {
                    m.push(',');
                    m.push_str(&p.to_string());
                }
                m
            }
        };
        push_b64(&mut s, &body);
        if let MessageKind::NatAccess { nat, .. } = &self.kind {
            check_text("nat host", &nat.host, 1, MAX_FIELD_LEN)?;
            if nat.host.contains(',') {
                return Err(MessageError::new("nat", "the host must not contain ','"));
            }
            s.push(':');
            push_b64(&mut s, &nat.to_string());
        }
        if let Some(auth) = &self.server_auth {
            check_text("server_auth", auth, 1, MAX_FIELD_LEN)?;
            s.push(':');
            push_b64(&mut s, auth);
        }
        if let Some(t) = self.client_timeout {
            if t == 0 {
                return Err(MessageError::new(
                    "client_timeout",
                    "must be at least 1 second (leave it out for the server default)",
                ));
            }
            s.push(':');
            s.push_str(&t.to_string());
        }
        let mut buf = [0u8; 88];
        let digest = self.digest.hash(&[s.as_bytes()]);
        let d = digest.b64(&mut buf);
        s.push(':');
        s.push_str(std::str::from_utf8(d).unwrap_or_default());
        Ok(s)
    }

    /// Parses the plaintext fields (everything before the final `:digest`), fwknop's way.
    /// `digest` is the algorithm the caller verified the digest with.
    pub fn parse_fields(encoded: &str, digest: HmacDigest) -> Result<SpaMessage, MessageError> {
        let fields: Vec<&str> = encoded.split(':').collect();
        // rand, user, timestamp, version, type, message, then up to 3 optional fields.
        if fields.len() < 6 || fields.len() > 9 {
            return Err(MessageError::new(
                "fields",
                format!(
                    "{} fields before the digest (expected 6 to 9)",
                    fields.len()
                ),
            ));
        }
        let rand = fields[0];
        if !is_rand16(rand) {
            return Err(MessageError::new("rand", "not 16 decimal digits"));
        }
        let user_b64 = fields[1];
        if user_b64.len() > MAX_USER_B64_LEN {
            return Err(MessageError::new(
                "user",
                format!(
                    "{} base64 characters (at most {MAX_USER_B64_LEN})",
                    user_b64.len()
                ),
            ));
        }
        let user = b64_text("user", user_b64)?;
        let ts = fields[2];
        if ts.is_empty()
            || ts.len() > MAX_TIMESTAMP_DIGITS
            || !ts.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(MessageError::new(
                "timestamp",
                format!("\"{ts}\" is not a decimal number"),
            ));
        }
        let timestamp: u64 = ts
            .parse()
            .map_err(|_| MessageError::new("timestamp", format!("\"{ts}\" is out of range")))?;
        let version = fields[3];
        check_version(version)?;
        let ty = fields[4];
        let msg_type = (ty.len() <= 2 && !ty.is_empty() && ty.bytes().all(|b| b.is_ascii_digit()))
            .then(|| ty.parse::<u8>().ok())
            .flatten()
            .and_then(MessageType::from_number)
            .ok_or_else(|| {
                MessageError::new("type", format!("\"{ty}\" is not a message type (0..=6)"))
            })?;
        let message = b64_text("message", fields[5])?;
        let (ip_text, rest) = message.split_once(',').ok_or_else(|| {
            MessageError::new("message", format!("\"{message}\" has no \"IP,\" prefix"))
        })?;
        let ip: IpAddr = ip_text.parse().map_err(|_| {
            MessageError::new("message", format!("\"{ip_text}\" is not an IP address"))
        })?;

        let mut idx = 6;
        let nat = if msg_type.has_nat() {
            let Some(f) = fields.get(idx) else {
                return Err(MessageError::new(
                    "nat",
                    format!("missing for message type {msg_type}"),
                ));
            };
            idx += 1;
            let text = b64_text("nat", f)?;
            let (host, port) = text
                .rsplit_once(',')
                .ok_or_else(|| MessageError::new("nat", format!("\"{text}\" is not host,port")))?;
            if host.is_empty() || host.contains(',') {
                return Err(MessageError::new("nat", format!("bad host in \"{text}\"")));
            }
            let port = parse_port(port)
                .map_err(|e| MessageError::new("nat", format!("{e} in \"{text}\"")))?;
            Some(NatTarget {
                host: host.to_string(),
                port,
            })
        } else {
            None
        };

        // What remains: [server_auth] for types without a timeout, [server_auth:]timeout for
        // types with one (the way fwknop tells them apart).
        let rest_fields = &fields[idx..];
        let (server_auth, timeout_field) = match (msg_type.has_client_timeout(), rest_fields) {
            (false, []) => (None, None),
            (false, [auth]) => (Some(*auth), None),
            (true, [t]) => (None, Some(*t)),
            (true, [auth, t]) => (Some(*auth), Some(*t)),
            (true, []) => {
                return Err(MessageError::new(
                    "client_timeout",
                    format!("missing for message type {msg_type}"),
                ));
            }
            _ => {
                return Err(MessageError::new(
                    "fields",
                    format!(
                        "{} unexpected extra fields for message type {msg_type}",
                        rest_fields.len()
                    ),
                ));
            }
        };
        let server_auth = server_auth
            .map(|a| b64_text("server_auth", a))
            .transpose()?;
        let client_timeout = timeout_field
            .map(|t| {
                if t.is_empty() || t.len() > 10 || !t.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(MessageError::new(
                        "client_timeout",
                        format!("\"{t}\" is not a decimal number"),
                    ));
                }
                t.parse::<u32>().map_err(|_| {
                    MessageError::new("client_timeout", format!("\"{t}\" is out of range"))
                })
            })
            .transpose()?;

        let kind = if msg_type == MessageType::Command {
            if rest.is_empty() {
                return Err(MessageError::new("message", "empty command"));
            }
            MessageKind::Command {
                ip,
                command: rest.to_string(),
            }
        } else {
            let ports = rest
                .split(',')
                .map(|p| {
                    parse_proto_port(p).map_err(|e| MessageError::new("message", e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            match nat {
                Some(nat) => MessageKind::NatAccess {
                    ip,
                    ports,
                    nat,
                    local: msg_type.is_local_nat(),
                },
                None => MessageKind::Access { ip, ports },
            }
        };

        Ok(SpaMessage {
            rand: rand.to_string(),
            user,
            timestamp,
            version: version.to_string(),
            kind,
            server_auth,
            client_timeout,
            digest,
        })
    }
}

/// Longest decoded message, NAT or server_auth text we produce or accept (the whole packet
/// is at most 1500 bytes anyway).
const MAX_FIELD_LEN: usize = 1024;

/// A plaintext field that is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {reason}")]
pub struct MessageError {
    pub field: &'static str,
    pub reason: String,
}

impl MessageError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        MessageError {
            field,
            reason: reason.into(),
        }
    }
}

/// Turns 16 random bytes into fwknop's 16-digit random field (`u128 mod 10^16`, zero-padded;
/// the bias is below 10^-22).
pub fn rand16_from_entropy(bytes: [u8; 16]) -> String {
    let n = u128::from_le_bytes(bytes) % 10_000_000_000_000_000u128;
    format!("{n:016}")
}

fn is_rand16(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit())
}

fn check_version(v: &str) -> Result<(), MessageError> {
    if v.is_empty()
        || v.len() > MAX_VERSION_LEN
        || !v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        return Err(MessageError::new(
            "version",
            format!("\"{}\" is not a version like 3.0.0", v.escape_debug()),
        ));
    }
    Ok(())
}

/// Printable ASCII, `min..=max` bytes.
fn check_text(field: &'static str, s: &str, min: usize, max: usize) -> Result<(), MessageError> {
    if s.len() < min || s.len() > max {
        return Err(MessageError::new(
            field,
            format!("length {} outside {min}..={max}", s.len()),
        ));
    }
    if let Some(pos) = s.bytes().position(|b| !(0x20..=0x7e).contains(&b)) {
        return Err(MessageError::new(
            field,
            format!("non-printable or non-ASCII byte at offset {pos}"),
        ));
    }
    Ok(())
}

fn push_b64(s: &mut String, text: &str) {
    STANDARD_NO_PAD.encode_string(text.as_bytes(), s);
}

/// Decodes an unpadded base64 field into printable ASCII text.
fn b64_text(field: &'static str, b64: &str) -> Result<String, MessageError> {
    if b64.is_empty() {
        return Err(MessageError::new(field, "empty"));
    }
    let bytes = STANDARD_NO_PAD
        .decode(b64)
        .map_err(|e| MessageError::new(field, format!("bad base64: {e}")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| MessageError::new(field, "decodes to non-UTF-8 bytes"))?;
    check_text(field, &text, 1, MAX_FIELD_LEN)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Protocol;

    fn tcp(port: u16) -> ProtoPort {
        ProtoPort {
            proto: Protocol::Tcp,
            port,
        }
    }

    #[test]
    fn message_types() {
        for n in 0..=6u8 {
            let t = MessageType::from_number(n).unwrap();
            assert_eq!(t.number(), n);
            assert_eq!(t.has_nat(), matches!(n, 2 | 4 | 5 | 6));
            assert_eq!(t.has_client_timeout(), matches!(n, 3 | 4 | 6));
        }
        assert_eq!(MessageType::from_number(7), None);
    }

    #[test]
    fn rand16() {
        assert_eq!(rand16_from_entropy([0; 16]), "0000000000000000");
        let r = rand16_from_entropy([0xff; 16]);
        assert!(is_rand16(&r), "{r}");
        assert_ne!(rand16_from_entropy([1; 16]), rand16_from_entropy([2; 16]));
    }

    #[test]
    fn plaintext_round_trip_all_kinds() {
        let ip: IpAddr = "198.18.0.1".parse().unwrap();
        let base = SpaMessage::access(
            "1234567890123456".into(),
            "alice",
            1_700_000_000,
            ip,
            vec![tcp(22)],
            None,
        );
        let nat = NatTarget {
            host: "192.0.2.10".into(),
            port: 22,
        };
        let mut cases = vec![base.clone()];
        cases.push(SpaMessage {
            client_timeout: Some(60),
            ..base.clone()
        });
        cases.push(SpaMessage {
            kind: MessageKind::Command {
                ip,
                command: "touch /tmp/x,y".into(),
            },
            ..base.clone()
        });
        for local in [false, true] {
            for timeout in [None, Some(30)] {
                cases.push(SpaMessage {
                    kind: MessageKind::NatAccess {
                        ip,
                        ports: vec![tcp(80)],
                        nat: nat.clone(),
                        local,
                    },
                    client_timeout: timeout,
                    ..base.clone()
                });
            }
        }
        for auth in ["crypt-pw", "x"] {
            cases.push(SpaMessage {
                server_auth: Some(auth.into()),
                ..base.clone()
            });
            cases.push(SpaMessage {
                server_auth: Some(auth.into()),
                client_timeout: Some(5),
                ..base.clone()
            });
        }
        cases.push(SpaMessage {
            timestamp: 1 << 33,
            ..base.clone()
        });
        cases.push(SpaMessage {
            kind: MessageKind::Access {
                ip: "2001:2::7".parse().unwrap(),
                ports: vec![tcp(22), "udp/53".parse_proto()],
            },
            ..base.clone()
        });
        for d in HmacDigest::ALL {
            cases.push(SpaMessage {
                digest: d,
                ..base.clone()
            });
        }
        for m in cases {
            let pt = m.to_plaintext().unwrap();
            let (enc, dig) = pt.rsplit_once(':').unwrap();
            assert_eq!(dig.len(), m.digest.b64_len());
            let back = SpaMessage::parse_fields(enc, m.digest).unwrap();
            assert_eq!(back, m, "{pt}");
        }
    }

    trait ParsePP {
        fn parse_proto(&self) -> ProtoPort;
    }
    impl ParsePP for str {
        fn parse_proto(&self) -> ProtoPort {
            parse_proto_port(self).unwrap()
        }
    }

    #[test]
    fn bad_fields() {
        let b = |s: &str| STANDARD_NO_PAD.encode(s);
        let ok = format!(
            "1234567890123456:{}:1700000000:3.0.0:1:{}",
            b("alice"),
            b("1.2.3.4,tcp/22")
        );
        assert!(SpaMessage::parse_fields(&ok, HmacDigest::Sha256).is_ok());
        let cases: Vec<(String, &str)> = vec![
            (
                format!("123:{}:1:3.0.0:1:{}", b("a"), b("1.2.3.4,tcp/22")),
                "rand",
            ),
            (
                format!("1234567890123456::1:3.0.0:1:{}", b("1.2.3.4,tcp/22")),
                "user",
            ),
            (
                format!(
                    "1234567890123456:{}:-1:3.0.0:1:{}",
                    b("a"),
                    b("1.2.3.4,tcp/22")
                ),
                "timestamp",
            ),
            (
                format!(
                    "1234567890123456:{}:99999999999999999999:3.0.0:1:{}",
                    b("a"),
                    b("1.2.3.4,tcp/22")
                ),
                "timestamp",
            ),
            (
                format!(
                    "1234567890123456:{}:1:3.0.0a:1:{}",
                    b("a"),
                    b("1.2.3.4,tcp/22")
                ),
                "version",
            ),
            (
                format!(
                    "1234567890123456:{}:1:3.0.0:7:{}",
                    b("a"),
                    b("1.2.3.4,tcp/22")
                ),
                "type",
            ),
            (
                format!("1234567890123456:{}:1:3.0.0:1:{}", b("a"), b("1.2.3.4")),
                "message",
            ),
            (
                format!(
                    "1234567890123456:{}:1:3.0.0:1:{}",
                    b("a"),
                    b("1.2.3.400,tcp/22")
                ),
                "message",
            ),
            (
                format!(
                    "1234567890123456:{}:1:3.0.0:1:{}",
                    b("a"),
                    b("1.2.3.4,icmp/22")
                ),
                "message",
            ),
            (
                format!(
                    "1234567890123456:{}:1:3.0.0:1:{}",
                    b("a"),
                    b("1.2.3.4,tcp/70000")
                ),
                "message",
            ),
            (
                format!(
                    "1234567890123456:{}:1:3.0.0:2:{}",
                    b("a"),
                    b("1.2.3.4,tcp/22")
                ),
                "nat",
            ),
            (
                format!(
                    "1234567890123456:{}:1:3.0.0:2:{}:{}",
                    b("a"),
                    b("1.2.3.4,tcp/22"),
                    b("host")
                ),
                "nat",
            ),
            (
                format!(
                    "1234567890123456:{}:1:3.0.0:3:{}",
                    b("a"),
                    b("1.2.3.4,tcp/22")
                ),
                "client_timeout",
            ),
            (
                format!(
                    "1234567890123456:{}:1:3.0.0:3:{}:6x",
                    b("a"),
                    b("1.2.3.4,tcp/22")
                ),
                "client_timeout",
            ),
            (
                format!(
                    "1234567890123456:{}:1:3.0.0:1:{}:a:b",
                    b("a"),
                    b("1.2.3.4,tcp/22")
                ),
                "fields",
            ),
            (
                format!("1234567890123456:{}:1:3.0.0:0:{}", b("a"), b("1.2.3.4,")),
                "message",
            ),
            (
                format!(
                    "1234567890123456:{}:1:3.0.0:1:{}",
                    b("a\u{1}"),
                    b("1.2.3.4,tcp/22")
                ),
                "user",
            ),
            (
                format!(
                    "1234567890123456:{}:1:3.0.0:1:{}=",
                    b("a"),
                    b("1.2.3.4,tcp/22")
                ),
                "message",
            ),
            ("1:2:3".to_string(), "fields"),
        ];
        for (text, field) in cases {
            let e = SpaMessage::parse_fields(&text, HmacDigest::Sha256).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
        }
    }

    #[test]
    fn encode_rejects_bad_requests() {
        let ip: IpAddr = "198.18.0.1".parse().unwrap();
        let base = SpaMessage::access(
            "1234567890123456".into(),
            "alice",
            1,
            ip,
            vec![tcp(22)],
            None,
        );
        let bad = [
            SpaMessage {
                rand: "12345".into(),
                ..base.clone()
            },
            SpaMessage {
                user: String::new(),
                ..base.clone()
            },
            SpaMessage {
                user: "x".repeat(49),
                ..base.clone()
            },
            SpaMessage {
                user: "bad\nuser".into(),
                ..base.clone()
            },
            SpaMessage {
                version: "v3".into(),
                ..base.clone()
            },
            SpaMessage {
                client_timeout: Some(0),
                ..base.clone()
            },
            SpaMessage {
                kind: MessageKind::Access { ip, ports: vec![] },
                ..base.clone()
            },
            SpaMessage {
                kind: MessageKind::Command {
                    ip,
                    command: "ls".into(),
                },
                client_timeout: Some(5),
                ..base.clone()
            },
        ];
        for m in bad {
            assert!(m.to_plaintext().is_err(), "{m:?}");
        }
        assert!(
            SpaMessage {
                user: "x".repeat(48),
                ..base
            }
            .to_plaintext()
            .is_ok()
        );
    }
}
