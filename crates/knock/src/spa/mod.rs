//! SPA mode: fwknop-compatible Single Packet Authorization requests.
//!
//! - [`args`]: the command-line options (fwknop's names accepted as aliases), their value
//!   parsers, and the merge with a fwknoprc stanza into a [`SpaPlan`].
//! - [`fwknoprc`]: the `~/.fwknoprc` parser.
//! - here: the plan, the packet built from it (`knock_core::spa::encode`), and `--spa-keygen`.
//!
//! The packet is one UDP datagram holding the wire text, to port 62201 by default. Randomness
//! (the 8-byte salt and the 16 random digits) is passed in by the caller, which takes it from
//! the operating system. Keys are never printed: [`KeyMaterial`] and `SpaKeys` have redacting
//! `Debug` implementations and no message of this module contains a key.

pub mod args;
pub mod fwknoprc;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use knock_core::proto::ProtoPort;
use knock_core::spa::{EncodeError, HmacDigest, SpaKeys, SpaMessage, encode, rand16_from_entropy};

use crate::cli::{BindOptions, Family};

/// fwknop's default SPA destination port (UDP).
pub const DEFAULT_SPA_PORT: u16 = 62201;
/// Longest `--fw-timeout` fwknop accepts (seconds).
pub const MAX_FW_TIMEOUT: u32 = 131_072;
/// Size of a generated encryption key (bytes), as `fwknop --key-gen`.
pub const KEYGEN_KEY_LEN: usize = 32;
/// Size of a generated HMAC key (bytes), as `fwknop --key-gen`.
pub const KEYGEN_HMAC_KEY_LEN: usize = 64;

/// Key bytes whose `Debug` shows only the length.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial(Vec<u8>);

impl KeyMaterial {
    pub fn new(bytes: Vec<u8>) -> Self {
        KeyMaterial(bytes)
    }

    #[cfg(test)]
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

/// The address the request asks the server to open for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// `-a ADDR` / `ALLOW_IP ADDR`.
    Ip(IpAddr),
    /// `-s` / `ALLOW_IP source`: the message carries `0.0.0.0`, the server uses the packet's
    /// source address.
    Source,
}

impl Allow {
    /// The address written in the message.
    pub fn message_ip(self) -> IpAddr {
        match self {
            Allow::Ip(ip) => ip,
            Allow::Source => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }
}

/// A validated SPA request: what to ask for, where to send it, with which keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpaPlan {
    pub host: String,
    /// Never [`Family::Both`].
    pub family: Family,
    pub bind: BindOptions,
    /// UDP destination port of the packet.
    pub port: u16,
    pub keys: SpaKeys,
    pub access: Vec<ProtoPort>,
    pub allow: Allow,
    pub user: String,
    /// Requested grant duration (message type 3); `None`: the server's default (type 1).
    pub fw_timeout: Option<u32>,
    /// Algorithm of the digest inside the plaintext.
    pub digest: HmacDigest,
    pub verbose: bool,
}

impl SpaPlan {
    /// The request made at `now` (Unix seconds) with 16 random bytes for the random field.
    pub fn message(&self, now: u64, rand: [u8; 16]) -> SpaMessage {
        let mut m = SpaMessage::access(
            rand16_from_entropy(rand),
            self.user.clone(),
            now,
            self.allow.message_ip(),
            self.access.clone(),
            self.fw_timeout,
        );
        m.digest = self.digest;
        m
    }

    /// The wire text of the request made at `now`, with the given randomness.
    pub fn packet(&self, now: u64, rand: [u8; 16], salt: [u8; 8]) -> Result<String, EncodeError> {
        encode(&self.keys, &self.message(now, rand), salt)
    }

    /// One line for `-v`, without any key: `SPA access request: 198.18.1.2 tcp/22 (message
    /// type 1), user alice, HMAC sha256`.
    pub fn describe(&self) -> String {
        let ports: Vec<String> = self.access.iter().map(ToString::to_string).collect();
        let ip = match self.allow {
            Allow::Ip(ip) => ip.to_string(),
            Allow::Source => "0.0.0.0 (the packet's source address)".to_string(),
        };
        let kind = match self.fw_timeout {
            Some(t) => format!("message type 3, timeout {t} s"),
            None => "message type 1".to_string(),
        };
        format!(
            "SPA access request: {ip} {} ({kind}), user {}, HMAC {}{}",
            ports.join(","),
            self.user,
            self.keys.hmac,
            if self.keys.legacy {
                ", legacy key mode"
            } else {
                ""
            }
        )
    }
}

/// What `--spa-keygen` prints for a fresh key pair: the knockd.conf door lines, the fwknop
/// (`~/.fwknoprc` client stanza, `access.conf` server stanza) lines, and the command-line form.
pub fn keygen_text(key: &[u8], hmac_key: &[u8]) -> String {
    let k = STANDARD.encode(key);
    let h = STANDARD.encode(hmac_key);
    format!(
        "# knockd.conf, in the SPA door:\n\
         spa_key_base64      = {k}\n\
         spa_hmac_key_base64 = {h}\n\
         \n\
         # fwknop: ~/.fwknoprc stanza (client) or access.conf (fwknopd):\n\
         KEY_BASE64          {k}\n\
         HMAC_KEY_BASE64     {h}\n\
         \n\
         # knock command line (fwknop also takes --key-base64-rijndael / --key-base64-hmac):\n\
         --key-base64 {k} --hmac-key-base64 {h}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use knock_core::proto::Protocol;
    use knock_core::spa::{Freshness, MessageKind, MessageType, decode, decode_key_base64};

    fn plan() -> SpaPlan {
        SpaPlan {
            host: "h".into(),
            family: Family::First,
            bind: BindOptions::default(),
            port: DEFAULT_SPA_PORT,
            keys: SpaKeys::new(b"enc key".to_vec(), Some(b"hmac key".to_vec())).unwrap(),
            access: vec![
                ProtoPort {
                    proto: Protocol::Tcp,
                    port: 22,
                },
                ProtoPort {
                    proto: Protocol::Udp,
                    port: 53,
                },
            ],
            allow: Allow::Ip("198.18.1.2".parse().unwrap()),
            user: "alice".into(),
            fw_timeout: None,
            digest: HmacDigest::Sha256,
            verbose: false,
        }
    }

    #[test]
    fn packet_decodes_with_the_same_keys() {
        let p = plan();
        let now = 1_800_000_000;
        let wire = p.packet(now, [3; 16], [9; 8]).unwrap();
        let d = decode(
            wire.as_bytes(),
            &p.keys,
            Freshness::Within {
                now_unix: now,
                max_age: 120,
            },
        )
        .unwrap();
        assert_eq!(d.message.user, "alice");
        assert_eq!(d.message.timestamp, now);
        assert_eq!(d.message.msg_type(), MessageType::Access);
        assert_eq!(
            d.message.kind,
            MessageKind::Access {
                ip: "198.18.1.2".parse().unwrap(),
                ports: p.access.clone()
            }
        );
        assert_eq!(d.message.rand, rand16_from_entropy([3; 16]));
        // A wrong HMAC key is refused.
        let other = SpaKeys::new(b"enc key".to_vec(), Some(b"other".to_vec())).unwrap();
        assert!(decode(wire.as_bytes(), &other, Freshness::Unchecked).is_err());
    }

    #[test]
    fn timeout_source_and_digests() {
        let mut p = plan();
        p.fw_timeout = Some(60);
        p.allow = Allow::Source;
        p.digest = HmacDigest::Sha512;
        p.keys = p.keys.clone().with_hmac_digest(HmacDigest::Sha384);
        let wire = p.packet(5, [0; 16], [1; 8]).unwrap();
        let d = decode(wire.as_bytes(), &p.keys, Freshness::Unchecked).unwrap();
        assert_eq!(d.message.msg_type(), MessageType::ClientTimeoutAccess);
        assert_eq!(d.message.client_timeout, Some(60));
        assert_eq!(d.message.kind.ip(), IpAddr::from([0, 0, 0, 0]));
        assert_eq!(d.message.kind.requested_ip(), None);
        assert_eq!(d.message.digest, HmacDigest::Sha512);
    }

    #[test]
    fn randomness_changes_the_packet() {
        let p = plan();
        let a = p.packet(1, [1; 16], [1; 8]).unwrap();
        assert_ne!(a, p.packet(1, [1; 16], [2; 8]).unwrap());
        assert_ne!(a, p.packet(1, [2; 16], [1; 8]).unwrap());
        assert_eq!(a, p.packet(1, [1; 16], [1; 8]).unwrap());
    }

    #[test]
    fn describe_has_no_key() {
        let mut p = plan();
        assert_eq!(
            p.describe(),
            "SPA access request: 198.18.1.2 tcp/22,udp/53 (message type 1), user alice, HMAC sha256"
        );
        p.fw_timeout = Some(30);
        p.allow = Allow::Source;
        p.keys = p.keys.clone().with_legacy(true);
        let d = p.describe();
        assert_eq!(
            d,
            "SPA access request: 0.0.0.0 (the packet's source address) tcp/22,udp/53 \
             (message type 3, timeout 30 s), user alice, HMAC sha256, legacy key mode"
        );
        let dbg = format!("{p:?}");
        assert!(
            !dbg.contains("enc key") && !dbg.contains("hmac key"),
            "{dbg}"
        );
    }

    #[test]
    fn keygen_text_forms() {
        let key = [0x11u8; KEYGEN_KEY_LEN];
        let hmac = [0x22u8; KEYGEN_HMAC_KEY_LEN];
        let t = keygen_text(&key, &hmac);
        let k = STANDARD.encode(key);
        let h = STANDARD.encode(hmac);
        assert_eq!(k.len(), 44);
        assert_eq!(h.len(), 88);
        assert!(t.contains(&format!("\nspa_key_base64      = {k}\n")), "{t}");
        assert!(t.contains(&format!("\nspa_hmac_key_base64 = {h}\n")), "{t}");
        assert!(t.contains(&format!("\nKEY_BASE64          {k}\n")), "{t}");
        assert!(t.contains(&format!("\nHMAC_KEY_BASE64     {h}\n")), "{t}");
        assert!(
            t.contains(&format!("\n--key-base64 {k} --hmac-key-base64 {h}\n")),
            "{t}"
        );
        // What is printed decodes back to the keys.
        assert_eq!(decode_key_base64("k", &k).unwrap(), key);
        assert_eq!(decode_key_base64("h", &h).unwrap(), hmac);
    }
}
