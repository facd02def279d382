//! Crafting Ethernet frames: IPv4/IPv6 with a TCP SYN or a small UDP datagram, with correct
//! IP, TCP and UDP checksums.

use std::net::IpAddr;

/// Ethernet header length.
pub const ETH_LEN: usize = 14;
/// Largest frame this module builds (Ethernet + IPv6 + TCP, with room for a UDP payload).
pub const MAX_FRAME: usize = 128;
/// Payload of a UDP knock (knock sends one byte).
pub const UDP_PAYLOAD: &[u8] = b"\0";

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TCP_SYN: u8 = 0x02;

/// Transport of the flood packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A TCP SYN (20-byte header, no options).
    TcpSyn,
    /// A UDP datagram with a one-byte payload.
    Udp,
}

/// What varies from one packet to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    /// TCP sequence number (ignored for UDP).
    pub seq: u32,
    /// IPv4 identification / IPv6 flow label (low 20 bits).
    pub ident: u32,
}

/// One's-complement sum of `data` as big-endian 16-bit words, added to `acc` (not folded).
fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    fold(sum16(0, data))
}

/// Writes the frame for `p` into `buf` and returns its length. `buf` must hold [`MAX_FRAME`]
/// bytes. Source and destination must be of the same family; a mixed pair is an error.
pub fn build(
    buf: &mut [u8],
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    transport: Transport,
    p: &Packet,
) -> Result<usize, String> {
    if buf.len() < MAX_FRAME {
        return Err(format!(
            "frame buffer of {} bytes, {MAX_FRAME} needed",
            buf.len()
        ));
    }
    buf[0..6].copy_from_slice(&dst_mac);
    buf[6..12].copy_from_slice(&src_mac);
    let (l4_len, proto) = match transport {
        Transport::TcpSyn => (20usize, PROTO_TCP),
        Transport::Udp => (8 + UDP_PAYLOAD.len(), PROTO_UDP),
    };
    // Pseudo-header sum, and where the transport header starts.
    let (pseudo, l4) = match (p.src, p.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            buf[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
            let ip = &mut buf[ETH_LEN..ETH_LEN + 20];
            ip[0] = 0x45;
            ip[1] = 0;
            ip[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&(p.ident as u16).to_be_bytes());
            ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
            ip[8] = 64;
            ip[9] = proto;
            ip[10..12].copy_from_slice(&[0, 0]);
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = checksum(ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            let mut acc = sum16(0, &s.octets());
            acc = sum16(acc, &d.octets());
            acc += u32::from(proto) + l4_len as u32;
            (acc, ETH_LEN + 20)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            buf[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
            let ip = &mut buf[ETH_LEN..ETH_LEN + 40];
            let vtf = (6u32 << 28) | (p.ident & 0xf_ffff);
            ip[0..4].copy_from_slice(&vtf.to_be_bytes());
            ip[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            ip[6] = proto;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            let mut acc = sum16(0, &s.octets());
            acc = sum16(acc, &d.octets());
            acc += u32::from(proto) + l4_len as u32;
            (acc, ETH_LEN + 40)
        }
        _ => {
            return Err(format!(
                "source {} and destination {} are of different families",
                p.src, p.dst
            ));
        }
    };
    let seg = &mut buf[l4..l4 + l4_len];
    seg[0..2].copy_from_slice(&p.src_port.to_be_bytes());
    seg[2..4].copy_from_slice(&p.dst_port.to_be_bytes());
    match transport {
        Transport::TcpSyn => {
            seg[4..8].copy_from_slice(&p.seq.to_be_bytes());
            seg[8..12].copy_from_slice(&[0; 4]); // ack
            seg[12] = 5 << 4; // data offset: 5 words
            seg[13] = TCP_SYN;
            seg[14..16].copy_from_slice(&64240u16.to_be_bytes()); // window
            seg[16..18].copy_from_slice(&[0, 0]); // checksum
            seg[18..20].copy_from_slice(&[0, 0]); // urgent pointer
            let c = fold(sum16(pseudo, seg));
            seg[16..18].copy_from_slice(&c.to_be_bytes());
        }
        Transport::Udp => {
            seg[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            seg[6..8].copy_from_slice(&[0, 0]);
            seg[8..].copy_from_slice(UDP_PAYLOAD);
            let mut c = fold(sum16(pseudo, seg));
            if c == 0 {
                c = 0xffff; // 0 means "no checksum" (IPv4) and is forbidden (IPv6)
            }
            seg[6..8].copy_from_slice(&c.to_be_bytes());
        }
    }
    Ok(l4 + l4_len)
}

/// Parses a MAC address `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() != 6 {
        return Err(format!(
            "MAC address {s:?}: expected 6 colon-separated bytes"
        ));
    }
    for (i, part) in parts.iter().enumerate() {
        mac[i] = u8::from_str_radix(part, 16)
            .map_err(|_| format!("MAC address {s:?}: byte {} ({part:?}) is not hex", i + 1))?;
    }
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const DST: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const SRC: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn pkt(src: IpAddr, dst: IpAddr) -> Packet {
        Packet {
            src,
            dst,
            src_port: 40000,
            dst_port: 7000,
            seq: 0xdead_beef,
            ident: 0x1234,
        }
    }

    /// Verifies a transport checksum the way a receiver does: the sum over pseudo-header and
    /// segment (checksum field included) must fold to zero.
    fn transport_ok(src: &[u8], dst: &[u8], proto: u8, seg: &[u8]) -> bool {
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(src);
        pseudo.extend_from_slice(dst);
        if src.len() == 4 {
            pseudo.extend_from_slice(&[0, proto]);
            pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
        } else {
            pseudo.extend_from_slice(&(seg.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, proto]);
        }
        pseudo.extend_from_slice(seg);
        checksum(&pseudo) == 0
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: sum of 0001 f203 f4f5 f6f7 is ddf2 (before complement).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
        // Odd length: the last byte is padded with zero.
        assert_eq!(checksum(&[0xab]), !0xab00);
    }

    #[test]
    fn ipv4_tcp_syn() {
        let mut buf = [0u8; MAX_FRAME];
        let s = Ipv4Addr::new(198, 19, 1, 2);
        let d = Ipv4Addr::new(198, 18, 1, 1);
        let n = build(
            &mut buf,
            DST,
            SRC,
            Transport::TcpSyn,
            &pkt(s.into(), d.into()),
        )
        .unwrap();
        assert_eq!(n, 54);
        let f = &buf[..n];
        assert_eq!(&f[0..6], &DST);
        assert_eq!(&f[6..12], &SRC);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        let ip = &f[14..34];
        assert_eq!(ip[0], 0x45);
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 40);
        assert_eq!(ip[9], 6);
        assert_eq!(checksum(ip), 0, "IPv4 header checksum");
        assert_eq!(&ip[12..16], &s.octets());
        assert_eq!(&ip[16..20], &d.octets());
        let tcp = &f[34..54];
        assert_eq!(u16::from_be_bytes([tcp[0], tcp[1]]), 40000);
        assert_eq!(u16::from_be_bytes([tcp[2], tcp[3]]), 7000);
        assert_eq!(
            u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
            0xdead_beef
        );
        assert_eq!(tcp[13], 0x02, "SYN only");
        assert!(transport_ok(&s.octets(), &d.octets(), 6, tcp));
        // Corrupting one byte breaks the checksum (the check can fail).
        let mut bad = tcp.to_vec();
        bad[0] ^= 1;
        assert!(!transport_ok(&s.octets(), &d.octets(), 6, &bad));
    }

    #[test]
    fn ipv6_tcp_syn_and_udp() {
        let mut buf = [0u8; MAX_FRAME];
        let s: Ipv6Addr = "2001:2:0:8000::1234".parse().unwrap();
        let d: Ipv6Addr = "2001:2:0:1::1".parse().unwrap();
        let n = build(
            &mut buf,
            DST,
            SRC,
            Transport::TcpSyn,
            &pkt(s.into(), d.into()),
        )
        .unwrap();
        assert_eq!(n, 74);
        assert_eq!(&buf[12..14], &[0x86, 0xdd]);
        assert_eq!(buf[14] >> 4, 6);
        assert_eq!(u16::from_be_bytes([buf[18], buf[19]]), 20);
        assert_eq!(buf[20], 6);
        assert!(transport_ok(&s.octets(), &d.octets(), 6, &buf[54..74]));

        let n = build(&mut buf, DST, SRC, Transport::Udp, &pkt(s.into(), d.into())).unwrap();
        assert_eq!(n, 14 + 40 + 9);
        assert_eq!(buf[20], 17);
        let udp = &buf[54..63];
        assert_eq!(u16::from_be_bytes([udp[4], udp[5]]), 9);
        assert_ne!(u16::from_be_bytes([udp[6], udp[7]]), 0);
        assert!(transport_ok(&s.octets(), &d.octets(), 17, udp));
    }

    #[test]
    fn ipv4_udp() {
        let mut buf = [0u8; MAX_FRAME];
        let s = Ipv4Addr::new(198, 19, 200, 7);
        let d = Ipv4Addr::new(198, 18, 1, 1);
        let n = build(&mut buf, DST, SRC, Transport::Udp, &pkt(s.into(), d.into())).unwrap();
        assert_eq!(n, 14 + 20 + 9);
        assert_eq!(checksum(&buf[14..34]), 0);
        assert!(transport_ok(&s.octets(), &d.octets(), 17, &buf[34..43]));
    }

    #[test]
    fn mixed_families_and_small_buffer_are_errors() {
        let mut buf = [0u8; MAX_FRAME];
        let p = pkt(
            Ipv4Addr::new(198, 19, 0, 1).into(),
            "2001:2:0:1::1".parse::<Ipv6Addr>().unwrap().into(),
        );
        assert!(build(&mut buf, DST, SRC, Transport::TcpSyn, &p).is_err());
        let mut small = [0u8; 40];
        let p = pkt(
            Ipv4Addr::new(198, 19, 0, 1).into(),
            Ipv4Addr::new(198, 18, 1, 1).into(),
        );
        assert!(build(&mut small, DST, SRC, Transport::TcpSyn, &p).is_err());
    }

    #[test]
    fn mac_parsing() {
        assert_eq!(
            parse_mac("aa:bb:cc:0d:0e:ff\n").unwrap(),
            [0xaa, 0xbb, 0xcc, 0x0d, 0x0e, 0xff]
        );
        assert!(parse_mac("aa:bb:cc").is_err());
        assert!(parse_mac("aa:bb:cc:dd:ee:zz").is_err());
    }
}
