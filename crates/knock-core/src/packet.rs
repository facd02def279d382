//! Decoding captured frames into the few fields a knock daemon needs.
//!
//! [`decode`] takes the link type of a capture (the pcap `DLT_`/`LINKTYPE_` value, see
//! [`LinkType::from_dlt`]) and one captured frame, and returns the source and destination
//! addresses, the transport protocol and ports, the TCP flags and the transport payload (UDP
//! payloads carry fwknop SPA messages).
//!
//! The decoder is pure and total: it never panics and never reads out of bounds, whatever the
//! input. Anything that is well-formed but cannot be a knock (ARP, ICMP, non-first IP fragments,
//! ESP, ...) is reported as [`DecodeError::NotKnock`], which callers should count, not log;
//! truncated or malformed frames are [`DecodeError::Truncated`] / [`DecodeError::Malformed`]
//! and name the offset (from the start of the frame) where decoding failed.
//!
//! Frames cut short by the capture's snap length are still decoded when the IP and transport
//! headers are complete: the payload is then shorter than the datagram's and
//! [`Packet::payload_complete`] is `false`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::proto::Protocol;

/// The link-layer framing of a capture, i.e. what precedes the IP header in each frame.
///
/// Covers what Linux hands out for Ethernet-like devices, `-i any`, tun/tunnel/WireGuard
/// devices and PPP, plus the BSD loopback encapsulations found in pcap files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// `DLT_NULL` (0): 4-byte address family in the capturing host's byte order.
    Null,
    /// `DLT_EN10MB` (1): Ethernet II, with 802.1Q / 802.1ad VLAN tags, LLC/SNAP and PPPoE
    /// sessions.
    Ethernet,
    /// `DLT_PPP` (9): PPP protocol field, optionally preceded by the HDLC address/control bytes.
    Ppp,
    /// `DLT_RAW` (12, 14 on OpenBSD) and `LINKTYPE_RAW` (101): the frame starts with the IP
    /// header, version taken from its first nibble.
    Raw,
    /// `DLT_PPP_SERIAL` (50): PPP in HDLC-like framing.
    PppHdlc,
    /// `DLT_PPP_ETHER` (51): PPPoE session header, then PPP.
    PppEther,
    /// `DLT_C_HDLC` (104): Cisco HDLC (address, control, Ethernet type).
    CiscoHdlc,
    /// `DLT_LOOP` (108): 4-byte address family in network byte order (OpenBSD loopback).
    Loop,
    /// `DLT_LINUX_SLL` (113): Linux "cooked" header v1 (`-i any`, PPP devices).
    LinuxSll,
    /// `DLT_PPP_WITH_DIR` (204): one direction byte, then a PPP frame.
    PppWithDir,
    /// `DLT_IPV4` (228): a bare IPv4 packet.
    Ipv4,
    /// `DLT_IPV6` (229): a bare IPv6 packet.
    Ipv6,
    /// `DLT_LINUX_SLL2` (276): Linux "cooked" header v2.
    LinuxSll2,
}

impl LinkType {
    /// Every supported link type.
    pub const ALL: [LinkType; 13] = [
        LinkType::Null,
        LinkType::Ethernet,
        LinkType::Ppp,
        LinkType::Raw,
        LinkType::PppHdlc,
        LinkType::PppEther,
        LinkType::CiscoHdlc,
        LinkType::Loop,
        LinkType::LinuxSll,
        LinkType::PppWithDir,
        LinkType::Ipv4,
        LinkType::Ipv6,
        LinkType::LinuxSll2,
    ];

    /// Maps a pcap data link type (`pcap_datalink()`, the pcap file header's link type) to a
    /// supported link type; `None` for link types this decoder does not handle.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        Some(match dlt {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            9 => LinkType::Ppp,
            12 | 14 | 101 => LinkType::Raw,
            50 => LinkType::PppHdlc,
            51 => LinkType::PppEther,
            104 => LinkType::CiscoHdlc,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            204 => LinkType::PppWithDir,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }

    /// The canonical pcap data link type value (`DLT_RAW` is 12 as on Linux).
    pub fn dlt(self) -> i32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Ppp => 9,
            LinkType::Raw => 12,
            LinkType::PppHdlc => 50,
            LinkType::PppEther => 51,
            LinkType::CiscoHdlc => 104,
            LinkType::Loop => 108,
            LinkType::LinuxSll => 113,
            LinkType::PppWithDir => 204,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll2 => 276,
        }
    }

    /// A short name, as libpcap spells it (`EN10MB`, `LINUX_SLL2`, ...).
    pub fn name(self) -> &'static str {
        match self {
            LinkType::Null => "NULL",
            LinkType::Ethernet => "EN10MB",
            LinkType::Ppp => "PPP",
            LinkType::Raw => "RAW",
            LinkType::PppHdlc => "PPP_SERIAL",
            LinkType::PppEther => "PPP_ETHER",
            LinkType::CiscoHdlc => "C_HDLC",
            LinkType::Loop => "LOOP",
            LinkType::LinuxSll => "LINUX_SLL",
            LinkType::PppWithDir => "PPP_WITH_DIR",
            LinkType::Ipv4 => "IPV4",
            LinkType::Ipv6 => "IPV6",
            LinkType::LinuxSll2 => "LINUX_SLL2",
        }
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.dlt())
    }
}

/// A decoded TCP or UDP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: Protocol,
    pub src_port: u16,
    pub dst_port: u16,
    /// Byte 13 of the TCP header (see [`crate::tcpflags::bits`]); 0 for UDP.
    pub tcp_flags: u8,
    /// The transport payload that was captured (after the UDP header or the TCP header with its
    /// options), bounded by the IP and UDP length fields so link-layer padding is never part of
    /// it.
    pub payload: &'a [u8],
    /// `false` when `payload` is not the whole transport payload: the frame was cut by the
    /// capture's snap length, or the datagram is the first fragment of a fragmented one.
    pub payload_complete: bool,
}

/// Why a well-formed frame is not a knock. Count these; they are not errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotKnock {
    /// The link layer carries something other than IP (ARP, LLDP, ...): the Ethernet type, PPP
    /// protocol or address family found.
    NotIp(u32),
    /// An IP packet of another transport protocol (ICMP, GRE, SCTP, IP-in-IP...).
    Protocol(u8),
    /// A non-first IP fragment: it carries no ports.
    Fragment,
    /// Encrypted (IPsec ESP): ports are not visible.
    Encrypted,
    /// IPv6 "no next header".
    NoNextHeader,
    /// A packet this host sent (Linux cooked captures mark them).
    Outgoing,
}

impl fmt::Display for NotKnock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotKnock::NotIp(t) => write!(f, "not IP (link protocol {t:#06x})"),
            NotKnock::Protocol(p) => write!(f, "IP protocol {p} is neither TCP nor UDP"),
            NotKnock::Fragment => f.write_str("non-first IP fragment"),
            NotKnock::Encrypted => f.write_str("IPsec ESP"),
            NotKnock::NoNextHeader => f.write_str("IPv6 no next header"),
            NotKnock::Outgoing => f.write_str("outgoing packet"),
        }
    }
}

/// Error of [`decode`]. Offsets are from the start of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Well-formed, but not something a knock can be (see [`NotKnock`]).
    NotKnock(NotKnock),
    /// The frame ends before a header does.
    Truncated {
        what: &'static str,
        offset: usize,
        need: usize,
        have: usize,
    },
    /// A header field holds an impossible value.
    Malformed {
        what: &'static str,
        offset: usize,
        value: u32,
    },
}

impl DecodeError {
    /// Whether this is a "not a knock" result rather than a bad frame.
    pub fn is_not_knock(&self) -> bool {
        matches!(self, DecodeError::NotKnock(_))
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NotKnock(n) => write!(f, "not a knock: {n}"),
            DecodeError::Truncated {
                what,
                offset,
                need,
                have,
            } => write!(
                f,
                "truncated {what} at offset {offset}: need {need} bytes, have {have}"
            ),
            DecodeError::Malformed {
                what,
                offset,
                value,
            } => write!(f, "malformed {what} at offset {offset} (value {value})"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl From<NotKnock> for DecodeError {
    fn from(n: NotKnock) -> Self {
        DecodeError::NotKnock(n)
    }
}

type Result<T> = std::result::Result<T, DecodeError>;

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;
const ETH_PPPOE_SESSION: u16 = 0x8864;

const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

/// At most this many VLAN tags are skipped.
const MAX_VLAN_TAGS: usize = 8;
/// At most this many IPv6 extension headers (and IPv4 AH headers) are walked.
const MAX_EXT_HEADERS: usize = 16;

/// A bounds-checked view of the frame. Every read names what it reads so errors say where.
#[derive(Clone, Copy)]
struct Frame<'a> {
    data: &'a [u8],
}

impl<'a> Frame<'a> {
    /// `len` bytes at `offset`, or a truncation error naming `what`.
    fn bytes(&self, what: &'static str, offset: usize, len: usize) -> Result<&'a [u8]> {
        let have = self.data.len().saturating_sub(offset);
        match offset
            .checked_add(len)
            .and_then(|end| self.data.get(offset..end))
        {
            Some(b) => Ok(b),
            None => Err(DecodeError::Truncated {
                what,
                offset,
                need: len,
                have,
            }),
        }
    }

    fn u8(&self, what: &'static str, offset: usize) -> Result<u8> {
        Ok(self.bytes(what, offset, 1)?[0])
    }

    fn u16(&self, what: &'static str, offset: usize) -> Result<u16> {
        let b = self.bytes(what, offset, 2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32_raw(&self, what: &'static str, offset: usize) -> Result<[u8; 4]> {
        let b = self.bytes(what, offset, 4)?;
        Ok([b[0], b[1], b[2], b[3]])
    }
}

fn malformed(what: &'static str, offset: usize, value: u32) -> DecodeError {
    DecodeError::Malformed {
        what,
        offset,
        value,
    }
}

/// Decodes one captured frame of the given link type.
///
/// Returns the TCP or UDP packet it carries, [`DecodeError::NotKnock`] for anything else that is
/// well-formed, or a truncation/malformation error. Never panics.
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Packet<'_>> {
    let f = Frame { data: frame };
    match link {
        LinkType::Ethernet => ethernet(f, 0),
        LinkType::Raw => ip_any(f, 0),
        LinkType::Ipv4 => ipv4(f, 0),
        LinkType::Ipv6 => ipv6(f, 0),
        LinkType::Null => {
            let fam = f.u32_raw("NULL link header", 0)?;
            // Host byte order of the capturing machine: accept either.
            let le = u32::from_le_bytes(fam);
            let be = u32::from_be_bytes(fam);
            let family = if le < 0x1_0000 { le } else { be };
            bsd_family(f, 4, family)
        }
        LinkType::Loop => {
            let fam = u32::from_be_bytes(f.u32_raw("LOOP link header", 0)?);
            bsd_family(f, 4, fam)
        }
        LinkType::LinuxSll => {
            let pkttype = f.u16("Linux cooked header", 0)?;
            let proto = f.u16("Linux cooked header", 14)?;
            if pkttype == 4 {
                return Err(NotKnock::Outgoing.into());
            }
            ethertype(f, 16, proto, 14)
        }
        LinkType::LinuxSll2 => {
            let proto = f.u16("Linux cooked v2 header", 0)?;
            let pkttype = f.u8("Linux cooked v2 header", 10)?;
            f.bytes("Linux cooked v2 header", 0, 20)?;
            if pkttype == 4 {
                return Err(NotKnock::Outgoing.into());
            }
            ethertype(f, 20, proto, 0)
        }
        LinkType::Ppp | LinkType::PppHdlc => ppp(f, 0),
        LinkType::PppWithDir => {
            // Direction byte: 0 = received, anything else = sent.
            if f.u8("PPP direction byte", 0)? != 0 {
                return Err(NotKnock::Outgoing.into());
            }
            ppp(f, 1)
        }
        LinkType::PppEther => pppoe(f, 0),
        LinkType::CiscoHdlc => {
            let t = f.u16("Cisco HDLC header", 2)?;
            ethertype(f, 4, t, 2)
        }
    }
}

/// BSD loopback address families: AF_INET is 2 everywhere, AF_INET6 differs per OS.
fn bsd_family(f: Frame<'_>, off: usize, family: u32) -> Result<Packet<'_>> {
    match family {
        2 => ipv4(f, off),
        10 | 24 | 28 | 30 => ipv6(f, off),
        other => Err(NotKnock::NotIp(other).into()),
    }
}

fn ethernet(f: Frame<'_>, off: usize) -> Result<Packet<'_>> {
    let t = f.u16("Ethernet header", off + 12)?;
    if t <= 1500 {
        // IEEE 802.3 length field: only LLC/SNAP (AA AA 03 + OUI 00 00 00) carries IP.
        let llc = f.bytes("802.2 LLC header", off + 14, 3)?;
        if llc == [0xaa, 0xaa, 0x03] {
            let oui = f.bytes("SNAP header", off + 17, 3)?;
            let st = f.u16("SNAP header", off + 20)?;
            if oui == [0, 0, 0] {
                return ethertype(f, off + 22, st, off + 20);
            }
        }
        return Err(NotKnock::NotIp(u32::from(t)).into());
    }
    ethertype(f, off + 14, t, off + 12)
}

/// Dispatches on an Ethernet type found at `type_off`; the payload starts at `off`. Skips VLAN
/// tags (libpcap re-inserts offloaded tags in front of the real type) and PPPoE sessions.
fn ethertype(f: Frame<'_>, mut off: usize, mut t: u16, mut type_off: usize) -> Result<Packet<'_>> {
    for _ in 0..MAX_VLAN_TAGS {
        match t {
            ETH_IPV4 => return ipv4(f, off),
            ETH_IPV6 => return ipv6(f, off),
            ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD => {
                type_off = off + 2;
                t = f.u16("VLAN tag", type_off)?;
                off += 4;
            }
            ETH_PPPOE_SESSION => return pppoe(f, off),
            other => return Err(NotKnock::NotIp(u32::from(other)).into()),
        }
    }
    Err(malformed(
        "VLAN tag stack (too many tags)",
        type_off,
        u32::from(t),
    ))
}

fn pppoe(f: Frame<'_>, off: usize) -> Result<Packet<'_>> {
    let vt = f.u8("PPPoE header", off)?;
    f.bytes("PPPoE header", off, 6)?;
    if vt != 0x11 {
        return Err(malformed("PPPoE version/type", off, u32::from(vt)));
    }
    let code = f.u8("PPPoE header", off + 1)?;
    if code != 0 {
        // Discovery-stage packet carried in a session frame type: not data.
        return Err(NotKnock::NotIp(u32::from(ETH_PPPOE_SESSION)).into());
    }
    ppp_protocol(f, off + 6)
}

/// A PPP frame, with or without the HDLC address/control bytes.
fn ppp(f: Frame<'_>, off: usize) -> Result<Packet<'_>> {
    let first = f.u8("PPP header", off)?;
    let off = if first == 0xff {
        let ctl = f.u8("PPP header", off + 1)?;
        if ctl != 0x03 {
            return Err(malformed("PPP control byte", off + 1, u32::from(ctl)));
        }
        off + 2
    } else {
        off
    };
    ppp_protocol(f, off)
}

/// A PPP protocol field (1 byte when compressed: odd first byte) and its payload.
fn ppp_protocol(f: Frame<'_>, off: usize) -> Result<Packet<'_>> {
    let b0 = f.u8("PPP protocol", off)?;
    let (proto, len) = if b0 & 1 == 1 {
        (u16::from(b0), 1)
    } else {
        (f.u16("PPP protocol", off)?, 2)
    };
    match proto {
        PPP_IPV4 => ipv4(f, off + len),
        PPP_IPV6 => ipv6(f, off + len),
        other => Err(NotKnock::NotIp(u32::from(other)).into()),
    }
}

/// An IP packet whose version is read from its first nibble.
fn ip_any(f: Frame<'_>, off: usize) -> Result<Packet<'_>> {
    let v = f.u8("IP header", off)? >> 4;
    match v {
        4 => ipv4(f, off),
        6 => ipv6(f, off),
        other => Err(malformed("IP version", off, u32::from(other))),
    }
}

fn ipv4(f: Frame<'_>, off: usize) -> Result<Packet<'_>> {
    let h = f.bytes("IPv4 header", off, 20)?;
    let version = h[0] >> 4;
    if version != 4 {
        return Err(malformed("IPv4 version", off, u32::from(version)));
    }
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if ihl < 20 {
        return Err(malformed("IPv4 header length", off, ihl as u32));
    }
    let total = match usize::from(u16::from_be_bytes([h[2], h[3]])) {
        // Total length 0: a segmentation-offloaded packet; the frame gives the length.
        0 => f.data.len().saturating_sub(off).max(ihl),
        t => t,
    };
    if total < ihl {
        return Err(malformed("IPv4 total length", off + 2, total as u32));
    }
    f.bytes("IPv4 options", off, ihl)?;
    let frag = u16::from_be_bytes([h[6], h[7]]);
    let more_fragments = frag & 0x2000 != 0;
    if frag & 0x1fff != 0 {
        return Err(NotKnock::Fragment.into());
    }
    let proto = h[9];
    let src = IpAddr::V4(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
    let l4 = L4 {
        src,
        dst,
        // Bytes of the datagram that follow the IP header, per the IP header.
        declared_end: off + total,
        fragmented: more_fragments,
    };
    transport(f, off + ihl, proto, l4, true)
}

fn ipv6(f: Frame<'_>, off: usize) -> Result<Packet<'_>> {
    let h = f.bytes("IPv6 header", off, 40)?;
    let version = h[0] >> 4;
    if version != 6 {
        return Err(malformed("IPv6 version", off, u32::from(version)));
    }
    let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let next = h[6];
    let mut s = [0u8; 16];
    s.copy_from_slice(&h[8..24]);
    let mut d = [0u8; 16];
    d.copy_from_slice(&h[24..40]);
    let l4 = L4 {
        src: IpAddr::V6(Ipv6Addr::from(s)),
        dst: IpAddr::V6(Ipv6Addr::from(d)),
        // A payload length of 0 means a jumbogram (hop-by-hop option): bounded by the frame.
        declared_end: if plen == 0 {
            f.data.len()
        } else {
            off + 40 + plen
        },
        fragmented: false,
    };
    transport(f, off + 40, next, l4, false)
}

struct L4 {
    src: IpAddr,
    dst: IpAddr,
    declared_end: usize,
    fragmented: bool,
}

/// Walks extension headers (IPv6; AH also for IPv4) and decodes TCP or UDP.
fn transport(
    f: Frame<'_>,
    mut off: usize,
    mut next: u8,
    mut l4: L4,
    v4: bool,
) -> Result<Packet<'_>> {
    for _ in 0..MAX_EXT_HEADERS {
        if off > l4.declared_end {
            return Err(malformed(
                "IP payload length (shorter than its headers)",
                off,
                l4.declared_end as u32,
            ));
        }
        match next {
            6 => return tcp(f, off, l4),
            17 => return udp(f, off, l4),
            // Hop-by-hop, routing, destination options: (len + 1) * 8 bytes.
            0 | 43 | 60 if !v4 => {
                let n = f.u8("IPv6 extension header", off)?;
                let len = (usize::from(f.u8("IPv6 extension header", off + 1)?) + 1) * 8;
                f.bytes("IPv6 extension header", off, len)?;
                next = n;
                off += len;
            }
            // Fragment header: 8 bytes; only offset 0 carries the transport header.
            44 if !v4 => {
                let h = f.bytes("IPv6 fragment header", off, 8)?;
                let fo = u16::from_be_bytes([h[2], h[3]]);
                if fo & 0xfff8 != 0 {
                    return Err(NotKnock::Fragment.into());
                }
                if fo & 1 != 0 {
                    l4.fragmented = true;
                }
                next = h[0];
                off += 8;
            }
            // Authentication header: (len + 2) * 4 bytes.
            51 => {
                let n = f.u8("AH header", off)?;
                let len = (usize::from(f.u8("AH header", off + 1)?) + 2) * 4;
                f.bytes("AH header", off, len)?;
                next = n;
                off += len;
            }
            50 => return Err(NotKnock::Encrypted.into()),
            59 if !v4 => return Err(NotKnock::NoNextHeader.into()),
            other => return Err(NotKnock::Protocol(other).into()),
        }
    }
    Err(malformed(
        "IPv6 extension header chain (too long)",
        off,
        u32::from(next),
    ))
}

/// Clamps the payload to what the headers declare and what was captured.
fn payload<'a>(
    f: Frame<'a>,
    start: usize,
    declared_end: usize,
    fragmented: bool,
) -> (&'a [u8], bool) {
    let captured_end = f.data.len().min(declared_end);
    let p = f.data.get(start..captured_end).unwrap_or(&[]);
    let complete = !fragmented && captured_end >= declared_end;
    (p, complete)
}

fn tcp(f: Frame<'_>, off: usize, l4: L4) -> Result<Packet<'_>> {
    let h = f.bytes("TCP header", off, 20)?;
    let doff = usize::from(h[12] >> 4) * 4;
    if doff < 20 {
        return Err(malformed("TCP data offset", off + 12, doff as u32));
    }
    if off + doff > l4.declared_end {
        return Err(malformed(
            "TCP data offset (beyond the IP payload)",
            off + 12,
            doff as u32,
        ));
    }
    let (payload, complete) = payload(f, off + doff, l4.declared_end, l4.fragmented);
    Ok(Packet {
        src: l4.src,
        dst: l4.dst,
        proto: Protocol::Tcp,
        src_port: u16::from_be_bytes([h[0], h[1]]),
        dst_port: u16::from_be_bytes([h[2], h[3]]),
        tcp_flags: h[13],
        payload,
        payload_complete: complete,
    })
}

fn udp(f: Frame<'_>, off: usize, l4: L4) -> Result<Packet<'_>> {
    let h = f.bytes("UDP header", off, 8)?;
    let ulen = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let ip_left = l4.declared_end.saturating_sub(off);
    let end = if ulen == 0 && ip_left > 0xffff {
        // IPv6 jumbogram: UDP length 0, the IP layer gives the length.
        l4.declared_end
    } else if ulen < 8 {
        return Err(malformed("UDP length", off + 4, ulen as u32));
    } else if ulen > ip_left && !l4.fragmented {
        return Err(malformed(
            "UDP length (beyond the IP payload)",
            off + 4,
            ulen as u32,
        ));
    } else {
        // A first fragment's UDP length covers the whole datagram: stop at the fragment's end.
        (off + ulen).min(l4.declared_end)
    };
    let (payload, complete) = payload(f, off + 8, end, l4.fragmented);
    Ok(Packet {
        src: l4.src,
        dst: l4.dst,
        proto: Protocol::Udp,
        src_port: u16::from_be_bytes([h[0], h[1]]),
        dst_port: u16::from_be_bytes([h[2], h[3]]),
        tcp_flags: 0,
        payload,
        payload_complete: complete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcpflags::bits;
    use proptest::prelude::*;

    const S4: [u8; 4] = [198, 18, 1, 2];
    const D4: [u8; 4] = [198, 18, 1, 1];
    const S6: [u8; 16] = [0x20, 0x01, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2];
    const D6: [u8; 16] = [0x20, 0x01, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];

    fn tcp_seg(sport: u16, dport: u16, flags: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
        assert_eq!(opts.len() % 4, 0);
        let mut v = Vec::new();
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
        v.push((((20 + opts.len()) / 4) << 4) as u8);
        v.push(flags);
        v.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        v.extend_from_slice(opts);
        v.extend_from_slice(payload);
        v
    }

    fn udp_dgram(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&sport.to_be_bytes());
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(payload);
        v
    }

    fn ip4(proto: u8, opts: &[u8], frag: u16, l4: &[u8]) -> Vec<u8> {
        let ihl = 20 + opts.len();
        let mut v = vec![0x40 | (ihl / 4) as u8, 0];
        v.extend_from_slice(&((ihl + l4.len()) as u16).to_be_bytes());
        v.extend_from_slice(&[0x12, 0x34]);
        v.extend_from_slice(&frag.to_be_bytes());
        v.extend_from_slice(&[64, proto, 0, 0]);
        v.extend_from_slice(&S4);
        v.extend_from_slice(&D4);
        v.extend_from_slice(opts);
        v.extend_from_slice(l4);
        v
    }

    fn ip6(next: u8, rest: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60, 0, 0, 0];
        v.extend_from_slice(&(rest.len() as u16).to_be_bytes());
        v.push(next);
        v.push(64);
        v.extend_from_slice(&S6);
        v.extend_from_slice(&D6);
        v.extend_from_slice(rest);
        v
    }

    /// A generic extension header (hop-by-hop, routing, dest options) of `units` * 8 bytes.
    fn ext(next: u8, units: usize) -> Vec<u8> {
        let mut v = vec![next, (units - 1) as u8];
        v.resize(units * 8, 0);
        v
    }

    fn frag6(next: u8, offset_units: u16, more: bool) -> Vec<u8> {
        let fo = (offset_units << 3) | u16::from(more);
        let mut v = vec![next, 0];
        v.extend_from_slice(&fo.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 7]);
        v
    }

    fn ah(next: u8) -> Vec<u8> {
        // 12 bytes of fixed fields + 12 bytes ICV = 24 bytes = (4 + 2) * 4.
        let mut v = vec![next, 4, 0, 0];
        v.resize(24, 0xab);
        v
    }

    /// Wraps an IP packet into a frame of the given link type.
    fn wrap(link: LinkType, ip: &[u8]) -> Vec<u8> {
        let v6 = ip[0] >> 4 == 6;
        let et: u16 = if v6 { ETH_IPV6 } else { ETH_IPV4 };
        let ppp: u16 = if v6 { PPP_IPV6 } else { PPP_IPV4 };
        let mut v = Vec::new();
        match link {
            LinkType::Null => v.extend_from_slice(&(if v6 { 10u32 } else { 2 }).to_le_bytes()),
            LinkType::Loop => v.extend_from_slice(&(if v6 { 24u32 } else { 2 }).to_be_bytes()),
            LinkType::Ethernet => {
                v.extend_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
                v.extend_from_slice(&et.to_be_bytes());
            }
            LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => {}
            LinkType::Ppp => v.extend_from_slice(&ppp.to_be_bytes()),
            LinkType::PppHdlc => {
                v.extend_from_slice(&[0xff, 0x03]);
                v.extend_from_slice(&ppp.to_be_bytes());
            }
            LinkType::PppWithDir => {
                v.extend_from_slice(&[0x00, 0xff, 0x03]);
                v.extend_from_slice(&ppp.to_be_bytes());
            }
            LinkType::PppEther => {
                v.extend_from_slice(&[0x11, 0x00, 0x12, 0x34]);
                v.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
                v.extend_from_slice(&ppp.to_be_bytes());
            }
            LinkType::CiscoHdlc => {
                v.extend_from_slice(&[0x0f, 0x00]);
                v.extend_from_slice(&et.to_be_bytes());
            }
            LinkType::LinuxSll => {
                v.extend_from_slice(&[0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0]);
                v.extend_from_slice(&et.to_be_bytes());
            }
            LinkType::LinuxSll2 => {
                v.extend_from_slice(&et.to_be_bytes());
                v.extend_from_slice(&[0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0]);
            }
        }
        v.extend_from_slice(ip);
        v
    }

    /// The link types that can carry this IP version.
    fn links_for(v6: bool) -> impl Iterator<Item = LinkType> {
        LinkType::ALL.into_iter().filter(move |l| match l {
            LinkType::Ipv4 => !v6,
            LinkType::Ipv6 => v6,
            _ => true,
        })
    }

    fn ok(link: LinkType, frame: &[u8]) -> Packet<'_> {
        match decode(link, frame) {
            Ok(p) => p,
            Err(e) => panic!("{link}: {e}"),
        }
    }

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::from(a)
    }

    fn v6(a: [u8; 16]) -> IpAddr {
        IpAddr::from(a)
    }

    #[test]
    fn dlt_round_trip() {
        for l in LinkType::ALL {
            assert_eq!(LinkType::from_dlt(l.dlt()), Some(l), "{l}");
        }
        assert_eq!(LinkType::from_dlt(14), Some(LinkType::Raw));
        assert_eq!(LinkType::from_dlt(101), Some(LinkType::Raw));
        assert_eq!(LinkType::from_dlt(127), None);
        assert_eq!(LinkType::from_dlt(-1), None);
    }

    #[test]
    fn every_link_type_ipv4_tcp_and_udp() {
        let syn = ip4(6, &[], 0, &tcp_seg(40000, 7000, bits::SYN, &[], &[]));
        let dg = ip4(17, &[], 0, &udp_dgram(40001, 62201, b"hello spa"));
        for link in links_for(false) {
            let frame = wrap(link, &syn);
            let p = ok(link, &frame);
            assert_eq!(
                (p.src, p.dst, p.proto, p.src_port, p.dst_port, p.tcp_flags),
                (v4(S4), v4(D4), Protocol::Tcp, 40000, 7000, bits::SYN),
                "{link}"
            );
            assert!(p.payload.is_empty() && p.payload_complete, "{link}");
            let frame = wrap(link, &dg);
            let p = ok(link, &frame);
            assert_eq!(
                (p.src, p.dst, p.proto, p.src_port, p.dst_port, p.tcp_flags),
                (v4(S4), v4(D4), Protocol::Udp, 40001, 62201, 0),
                "{link}"
            );
            assert_eq!(p.payload, b"hello spa", "{link}");
            assert!(p.payload_complete);
        }
    }

    #[test]
    fn every_link_type_ipv6_tcp_and_udp() {
        let syn = ip6(6, &tcp_seg(40000, 8000, bits::SYN | bits::ACK, &[], &[]));
        let dg = ip6(17, &udp_dgram(40001, 9000, b"x"));
        for link in links_for(true) {
            let frame = wrap(link, &syn);
            let p = ok(link, &frame);
            assert_eq!(
                (p.src, p.dst, p.proto, p.src_port, p.dst_port, p.tcp_flags),
                (
                    v6(S6),
                    v6(D6),
                    Protocol::Tcp,
                    40000,
                    8000,
                    bits::SYN | bits::ACK
                ),
                "{link}"
            );
            let frame = wrap(link, &dg);
            let p = ok(link, &frame);
            assert_eq!(
                (p.src, p.dst, p.proto, p.src_port, p.dst_port, p.payload),
                (v6(S6), v6(D6), Protocol::Udp, 40001, 9000, &b"x"[..]),
                "{link}"
            );
        }
    }

    #[test]
    fn raw_ipv4_link_rejects_ipv6_and_vice_versa() {
        let p6 = ip6(17, &udp_dgram(1, 2, b""));
        let p4 = ip4(17, &[], 0, &udp_dgram(1, 2, &[0; 20]));
        assert!(matches!(
            decode(LinkType::Ipv4, &p6),
            Err(DecodeError::Malformed {
                what: "IPv4 version",
                offset: 0,
                value: 6
            })
        ));
        assert!(matches!(
            decode(LinkType::Ipv6, &p4),
            Err(DecodeError::Malformed {
                what: "IPv6 version",
                offset: 0,
                value: 4
            })
        ));
        assert!(matches!(
            decode(LinkType::Raw, &[0x50; 40]),
            Err(DecodeError::Malformed {
                what: "IP version",
                offset: 0,
                value: 5
            })
        ));
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut f = wrap(
            LinkType::Ethernet,
            &ip4(17, &[], 0, &udp_dgram(5, 6, b"ab")),
        );
        f.resize(60, 0xee);
        let p = ok(LinkType::Ethernet, &f);
        assert_eq!(p.payload, b"ab");
        assert!(p.payload_complete);
        let mut f = wrap(
            LinkType::Ethernet,
            &ip4(6, &[], 0, &tcp_seg(5, 6, bits::SYN, &[], &[])),
        );
        f.resize(60, 0xee);
        assert_eq!(ok(LinkType::Ethernet, &f).payload, b"");
    }

    #[test]
    fn vlan_tags() {
        let ip = ip4(6, &[], 0, &tcp_seg(1, 7000, bits::SYN, &[], &[]));
        for tags in [
            &[ETH_VLAN][..],
            &[ETH_QINQ, ETH_VLAN],
            &[ETH_QINQ_OLD, ETH_VLAN, ETH_VLAN],
        ] {
            let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
            let mut types: Vec<u16> = tags.to_vec();
            types.push(ETH_IPV4);
            f.extend_from_slice(&types[0].to_be_bytes());
            for t in &types[1..] {
                f.extend_from_slice(&[0x00, 0x64]); // TCI: VLAN 100
                f.extend_from_slice(&t.to_be_bytes());
            }
            f.extend_from_slice(&ip);
            assert_eq!(ok(LinkType::Ethernet, &f).dst_port, 7000, "{tags:x?}");
        }
        // VLAN inside a cooked header (libpcap re-inserts offloaded tags there too).
        let mut f = vec![
            0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0, 0x81, 0x00, 0, 5, 0x86, 0xdd,
        ];
        f.extend_from_slice(&ip6(17, &udp_dgram(1, 53, b"q")));
        assert_eq!(ok(LinkType::LinuxSll, &f).dst_port, 53);
        // Too many tags: bounded.
        let mut f = vec![0u8; 12];
        for _ in 0..20 {
            f.extend_from_slice(&[0x81, 0x00, 0, 1]);
        }
        assert!(matches!(
            decode(LinkType::Ethernet, &f),
            Err(DecodeError::Malformed {
                what: "VLAN tag stack (too many tags)",
                ..
            })
        ));
        // A tag without the type after it.
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0]);
        assert_eq!(
            decode(LinkType::Ethernet, &f),
            Err(DecodeError::Truncated {
                what: "VLAN tag",
                offset: 16,
                need: 2,
                have: 0
            })
        );
    }

    #[test]
    fn ethernet_llc_snap_and_pppoe() {
        let ip = ip4(17, &[], 0, &udp_dgram(1, 62201, b"spa"));
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        f.extend_from_slice(&((ip.len() + 8) as u16).to_be_bytes());
        f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
        f.extend_from_slice(&ip);
        assert_eq!(ok(LinkType::Ethernet, &f).payload, b"spa");
        // Plain 802.3 LLC (spanning tree): not IP.
        let mut f = vec![
            1, 0x80, 0xc2, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 38, 0x42, 0x42, 0x03,
        ];
        f.resize(60, 0);
        assert_eq!(
            decode(LinkType::Ethernet, &f),
            Err(NotKnock::NotIp(38).into())
        );
        // PPPoE session over Ethernet.
        let ip = ip6(6, &tcp_seg(1, 22, bits::SYN, &[], &[]));
        let mut f = vec![
            2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x88, 0x64, 0x11, 0, 0, 1,
        ];
        f.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
        f.extend_from_slice(&[0x00, 0x57]);
        f.extend_from_slice(&ip);
        assert_eq!(ok(LinkType::Ethernet, &f).dst_port, 22);
        // PPPoE with a bad version/type byte.
        f[14] = 0x21;
        assert_eq!(
            decode(LinkType::Ethernet, &f),
            Err(DecodeError::Malformed {
                what: "PPPoE version/type",
                offset: 14,
                value: 0x21
            })
        );
        // PPP LCP inside PPPoE: not IP.
        let f = [
            2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x88, 0x64, 0x11, 0, 0, 1, 0, 6, 0xc0, 0x21, 1, 1,
            0, 4,
        ];
        assert_eq!(
            decode(LinkType::Ethernet, &f),
            Err(NotKnock::NotIp(0xc021).into())
        );
    }

    #[test]
    fn non_ip_link_protocols() {
        let mut arp = vec![0xff; 6];
        arp.extend_from_slice(&[2, 0, 0, 0, 0, 2, 0x08, 0x06]);
        arp.resize(42, 0);
        assert_eq!(
            decode(LinkType::Ethernet, &arp),
            Err(NotKnock::NotIp(0x0806).into())
        );
        let sll = [0u8, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0, 0x08, 0x06, 0, 1];
        assert_eq!(
            decode(LinkType::LinuxSll, &sll),
            Err(NotKnock::NotIp(0x0806).into())
        );
        assert_eq!(
            decode(LinkType::Null, &[7, 0, 0, 0, 0x45]),
            Err(NotKnock::NotIp(7).into())
        );
        assert_eq!(
            decode(LinkType::Ppp, &[0xc0, 0x21, 1]),
            Err(NotKnock::NotIp(0xc021).into())
        );
        assert_eq!(
            decode(LinkType::Ppp, &[0xff, 0x05, 0, 0x21]),
            Err(DecodeError::Malformed {
                what: "PPP control byte",
                offset: 1,
                value: 5
            })
        );
    }

    #[test]
    fn null_and_loop_families() {
        let ip = ip6(17, &udp_dgram(1, 2, b"z"));
        for fam in [10u32, 24, 28, 30] {
            for bytes in [fam.to_le_bytes(), fam.to_be_bytes()] {
                let mut f = bytes.to_vec();
                f.extend_from_slice(&ip);
                assert_eq!(ok(LinkType::Null, &f).dst_port, 2, "{fam} {bytes:?}");
            }
            let mut f = fam.to_be_bytes().to_vec();
            f.extend_from_slice(&ip);
            assert_eq!(ok(LinkType::Loop, &f).dst_port, 2);
        }
        let mut f = 2u32.to_be_bytes().to_vec();
        f.extend_from_slice(&ip4(17, &[], 0, &udp_dgram(1, 3, b"")));
        assert_eq!(ok(LinkType::Null, &f).dst_port, 3);
    }

    #[test]
    fn linux_cooked_outgoing_and_direction() {
        let ip = ip4(6, &[], 0, &tcp_seg(1, 7000, bits::SYN, &[], &[]));
        let mut f = wrap(LinkType::LinuxSll, &ip);
        f[1] = 4;
        assert_eq!(
            decode(LinkType::LinuxSll, &f),
            Err(NotKnock::Outgoing.into())
        );
        f[1] = 3; // PACKET_OTHERHOST: decoded, the daemon checks the destination.
        assert_eq!(ok(LinkType::LinuxSll, &f).dst_port, 7000);
        let mut f = wrap(LinkType::LinuxSll2, &ip);
        f[10] = 4;
        assert_eq!(
            decode(LinkType::LinuxSll2, &f),
            Err(NotKnock::Outgoing.into())
        );
        let mut f = wrap(LinkType::PppWithDir, &ip);
        f[0] = 1;
        assert_eq!(
            decode(LinkType::PppWithDir, &f),
            Err(NotKnock::Outgoing.into())
        );
    }

    #[test]
    fn ppp_compressed_protocol_field() {
        let mut f = vec![0x21];
        f.extend_from_slice(&ip4(17, &[], 0, &udp_dgram(1, 9, b"")));
        assert_eq!(ok(LinkType::Ppp, &f).dst_port, 9);
        let mut f = vec![0xff, 0x03, 0x57];
        f.extend_from_slice(&ip6(17, &udp_dgram(1, 10, b"")));
        assert_eq!(ok(LinkType::PppHdlc, &f).dst_port, 10);
    }

    #[test]
    fn ipv4_options_and_tcp_options() {
        let seg = tcp_seg(
            1,
            7000,
            bits::PSH | bits::ACK,
            &[2, 4, 5, 0xb4, 1, 1, 1, 0],
            b"data",
        );
        let ip = ip4(6, &[0x94, 4, 0, 0], 0, &seg);
        let p = ok(LinkType::Raw, &ip);
        assert_eq!(
            (p.dst_port, p.tcp_flags, p.payload),
            (7000, 0x18, &b"data"[..])
        );
        // IHL pointing past the captured bytes.
        let mut bad = ip4(6, &[], 0, &[]);
        bad[0] = 0x4f;
        bad[3] = 60;
        assert_eq!(
            decode(LinkType::Raw, &bad),
            Err(DecodeError::Truncated {
                what: "IPv4 options",
                offset: 0,
                need: 60,
                have: 20
            })
        );
        bad[0] = 0x44;
        assert_eq!(
            decode(LinkType::Raw, &bad),
            Err(DecodeError::Malformed {
                what: "IPv4 header length",
                offset: 0,
                value: 16
            })
        );
    }

    #[test]
    fn ipv4_fragments() {
        let dg = udp_dgram(1, 62201, &[7u8; 100]);
        // First fragment: 48 bytes of the datagram (8 header + 40 payload), MF set.
        let first = ip4(17, &[], 0x2000, &dg[..48]);
        let p = ok(LinkType::Raw, &first);
        assert_eq!(
            (p.dst_port, p.payload.len(), p.payload_complete),
            (62201, 40, false)
        );
        // Non-first fragments carry no ports.
        let later = ip4(17, &[], 6, &dg[48..]);
        assert_eq!(
            decode(LinkType::Raw, &later),
            Err(NotKnock::Fragment.into())
        );
        let last = ip4(6, &[], 0x2000 | 6, &dg[48..]);
        assert_eq!(decode(LinkType::Raw, &last), Err(NotKnock::Fragment.into()));
        // Don't-fragment bit alone is not a fragment.
        let df = ip4(17, &[], 0x4000, &udp_dgram(1, 2, b"ok"));
        assert!(ok(LinkType::Raw, &df).payload_complete);
    }

    #[test]
    fn ipv4_total_length() {
        let mut ip = ip4(17, &[], 0, &udp_dgram(1, 2, b"abc"));
        ip[2] = 0;
        ip[3] = 10;
        assert_eq!(
            decode(LinkType::Raw, &ip),
            Err(DecodeError::Malformed {
                what: "IPv4 total length",
                offset: 2,
                value: 10
            })
        );
        // Total length 0 (segmentation offload): the frame gives the length.
        ip[3] = 0;
        assert_eq!(ok(LinkType::Raw, &ip).payload, b"abc");
        // Total length shorter than the UDP length.
        let mut ip = ip4(17, &[], 0, &udp_dgram(1, 2, b"abc"));
        ip[3] -= 2;
        assert_eq!(
            decode(LinkType::Raw, &ip),
            Err(DecodeError::Malformed {
                what: "UDP length (beyond the IP payload)",
                offset: 24,
                value: 11
            })
        );
    }

    #[test]
    fn other_transport_protocols_are_not_knocks() {
        let icmp = ip4(1, &[], 0, &[8, 0, 0, 0, 0, 1, 0, 1]);
        assert_eq!(
            decode(LinkType::Raw, &icmp),
            Err(NotKnock::Protocol(1).into())
        );
        let icmp6 = ip6(58, &[128, 0, 0, 0, 0, 1, 0, 1]);
        assert_eq!(
            decode(LinkType::Raw, &icmp6),
            Err(NotKnock::Protocol(58).into())
        );
        let gre = ip4(47, &[], 0, &[0; 4]);
        assert_eq!(
            decode(LinkType::Raw, &gre),
            Err(NotKnock::Protocol(47).into())
        );
        let esp4 = ip4(50, &[], 0, &[0; 16]);
        assert_eq!(
            decode(LinkType::Raw, &esp4),
            Err(NotKnock::Encrypted.into())
        );
        // IPv6 extension header numbers mean nothing special in IPv4.
        let v4_43 = ip4(43, &[], 0, &[0; 16]);
        assert_eq!(
            decode(LinkType::Raw, &v4_43),
            Err(NotKnock::Protocol(43).into())
        );
        assert!(DecodeError::from(NotKnock::Protocol(1)).is_not_knock());
    }

    #[test]
    fn ipv6_extension_header_chain() {
        let mut rest = ext(43, 1); // hop-by-hop -> routing
        rest.extend(ext(60, 2)); // routing -> destination options
        rest.extend(ext(44, 1)); // destination options -> fragment
        rest.extend(frag6(51, 0, false)); // atomic fragment -> AH
        rest.extend(ah(6)); // AH -> TCP
        rest.extend(tcp_seg(1, 7000, bits::SYN, &[], b"p"));
        let frame = ip6(0, &rest);
        let p = ok(LinkType::Raw, &frame);
        assert_eq!(
            (p.proto, p.dst_port, p.payload, p.payload_complete),
            (Protocol::Tcp, 7000, &b"p"[..], true)
        );

        // First fragment (offset 0, more fragments): ports, incomplete payload.
        let dg = udp_dgram(1, 62201, &[1u8; 64]);
        let mut rest = frag6(17, 0, true);
        rest.extend_from_slice(&dg[..40]);
        let frame = ip6(44, &rest);
        let p = ok(LinkType::Raw, &frame);
        assert_eq!(
            (p.dst_port, p.payload.len(), p.payload_complete),
            (62201, 32, false)
        );
        // Later fragment.
        let mut rest = frag6(17, 5, false);
        rest.extend_from_slice(&dg[40..]);
        assert_eq!(
            decode(LinkType::Raw, &ip6(44, &rest)),
            Err(NotKnock::Fragment.into())
        );
        // ESP and no-next-header stop the walk.
        let mut rest = ext(50, 1);
        rest.extend_from_slice(&[0; 16]);
        assert_eq!(
            decode(LinkType::Raw, &ip6(60, &rest)),
            Err(NotKnock::Encrypted.into())
        );
        assert_eq!(
            decode(LinkType::Raw, &ip6(59, &[])),
            Err(NotKnock::NoNextHeader.into())
        );
        // The walk is bounded.
        let mut rest = Vec::new();
        for _ in 0..40 {
            rest.extend(ext(60, 1));
        }
        assert!(matches!(
            decode(LinkType::Raw, &ip6(60, &rest)),
            Err(DecodeError::Malformed {
                what: "IPv6 extension header chain (too long)",
                ..
            })
        ));
        // An extension header longer than the frame.
        let mut rest = ext(6, 1);
        rest[1] = 9;
        assert_eq!(
            decode(LinkType::Raw, &ip6(0, &rest)),
            Err(DecodeError::Truncated {
                what: "IPv6 extension header",
                offset: 40,
                need: 80,
                have: 8
            })
        );
    }

    #[test]
    fn ipv6_payload_length_shorter_than_headers() {
        let mut ip = ip6(0, &{
            let mut r = ext(17, 1);
            r.extend(udp_dgram(1, 2, b""));
            r
        });
        ip[5] = 4; // payload length 4: the hop-by-hop header alone is 8
        assert!(matches!(
            decode(LinkType::Raw, &ip),
            Err(DecodeError::Malformed {
                what: "IP payload length (shorter than its headers)",
                ..
            })
        ));
    }

    #[test]
    fn snaplen_truncated_payload_still_decodes() {
        let f = wrap(
            LinkType::Ethernet,
            &ip4(17, &[], 0, &udp_dgram(1, 62201, &[9u8; 300])),
        );
        let cut = &f[..14 + 20 + 8 + 100];
        let p = ok(LinkType::Ethernet, cut);
        assert_eq!((p.payload.len(), p.payload_complete), (100, false));
        // TCP options cut off: ports and flags still there.
        let f = wrap(
            LinkType::Raw,
            &ip4(6, &[], 0, &tcp_seg(1, 2, bits::SYN, &[1; 20], b"")),
        );
        let p = ok(LinkType::Raw, &f[..44]);
        assert_eq!(
            (p.dst_port, p.payload, p.payload_complete),
            (2, &b""[..], false)
        );
    }

    #[test]
    fn malformed_transport_headers() {
        let mut seg = tcp_seg(1, 2, bits::SYN, &[], b"");
        seg[12] = 0x40;
        assert_eq!(
            decode(LinkType::Raw, &ip4(6, &[], 0, &seg)),
            Err(DecodeError::Malformed {
                what: "TCP data offset",
                offset: 32,
                value: 16
            })
        );
        seg[12] = 0xf0;
        assert_eq!(
            decode(LinkType::Raw, &ip4(6, &[], 0, &seg)),
            Err(DecodeError::Malformed {
                what: "TCP data offset (beyond the IP payload)",
                offset: 32,
                value: 60
            })
        );
        let mut dg = udp_dgram(1, 2, b"");
        dg[5] = 7;
        assert_eq!(
            decode(LinkType::Raw, &ip4(17, &[], 0, &dg)),
            Err(DecodeError::Malformed {
                what: "UDP length",
                offset: 24,
                value: 7
            })
        );
    }

    #[test]
    fn truncation_errors_name_the_header_and_offset() {
        let f = wrap(
            LinkType::Ethernet,
            &ip4(6, &[], 0, &tcp_seg(1, 2, bits::SYN, &[], b"")),
        );
        assert_eq!(
            decode(LinkType::Ethernet, &f[..10]),
            Err(DecodeError::Truncated {
                what: "Ethernet header",
                offset: 12,
                need: 2,
                have: 0
            })
        );
        assert_eq!(
            decode(LinkType::Ethernet, &f[..30]),
            Err(DecodeError::Truncated {
                what: "IPv4 header",
                offset: 14,
                need: 20,
                have: 16
            })
        );
        assert_eq!(
            decode(LinkType::Ethernet, &f[..40]),
            Err(DecodeError::Truncated {
                what: "TCP header",
                offset: 34,
                need: 20,
                have: 6
            })
        );
        let f = wrap(LinkType::LinuxSll2, &ip6(17, &udp_dgram(1, 2, b"")));
        assert_eq!(
            decode(LinkType::LinuxSll2, &f[..15]),
            Err(DecodeError::Truncated {
                what: "Linux cooked v2 header",
                offset: 0,
                need: 20,
                have: 15
            })
        );
        assert_eq!(
            decode(LinkType::LinuxSll2, &f[..62]),
            Err(DecodeError::Truncated {
                what: "UDP header",
                offset: 60,
                need: 8,
                have: 2
            })
        );
        assert_eq!(
            decode(LinkType::Ipv4, &[]),
            Err(DecodeError::Truncated {
                what: "IPv4 header",
                offset: 0,
                need: 20,
                have: 0
            })
        );
    }

    #[test]
    fn display() {
        let e = DecodeError::Truncated {
            what: "TCP header",
            offset: 34,
            need: 20,
            have: 6,
        };
        assert_eq!(
            e.to_string(),
            "truncated TCP header at offset 34: need 20 bytes, have 6"
        );
        let e = DecodeError::Malformed {
            what: "UDP length",
            offset: 24,
            value: 7,
        };
        assert_eq!(e.to_string(), "malformed UDP length at offset 24 (value 7)");
        assert_eq!(
            DecodeError::from(NotKnock::NotIp(0x806)).to_string(),
            "not a knock: not IP (link protocol 0x0806)"
        );
        assert_eq!(LinkType::LinuxSll2.to_string(), "LINUX_SLL2 (276)");
    }

    /// A valid frame of some link type carrying a TCP or UDP packet, with its expected ports.
    fn valid_frame() -> impl Strategy<Value = (LinkType, Vec<u8>, u16)> {
        (
            proptest::sample::select(LinkType::ALL.to_vec()),
            any::<bool>(),
            any::<bool>(),
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..64),
            0usize..3,
        )
            .prop_map(|(link, v6, is_tcp, port, payload, nexts)| {
                let v6 = match link {
                    LinkType::Ipv4 => false,
                    LinkType::Ipv6 => true,
                    _ => v6,
                };
                let l4 = if is_tcp {
                    tcp_seg(1, port, bits::SYN, &[], &payload)
                } else {
                    udp_dgram(1, port, &payload)
                };
                let proto = if is_tcp { 6 } else { 17 };
                let ip = if v6 {
                    let mut rest = Vec::new();
                    let mut first = proto;
                    for i in 0..nexts {
                        let nh = if i + 1 == nexts { proto } else { 60 };
                        if i == 0 {
                            first = 0;
                        }
                        rest.extend(ext(nh, 1));
                    }
                    rest.extend(l4);
                    ip6(first, &rest)
                } else {
                    ip4(proto, &[], 0, &l4)
                };
                (link, wrap(link, &ip), port)
            })
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(
            link in proptest::sample::select(LinkType::ALL.to_vec()),
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let _ = decode(link, &bytes);
        }

        #[test]
        fn valid_frames_decode((link, frame, port) in valid_frame()) {
            let p = decode(link, &frame);
            prop_assert!(matches!(p, Ok(ref p) if p.dst_port == port && p.payload_complete), "{:?}", p);
        }

        #[test]
        fn truncations_never_panic((link, frame, _port) in valid_frame(), cut in any::<prop::sample::Index>()) {
            let n = cut.index(frame.len() + 1);
            match decode(link, &frame[..n]) {
                Ok(p) => prop_assert!(p.payload.len() <= n),
                Err(DecodeError::Truncated { offset, need, have, .. }) => {
                    prop_assert!(have < need);
                    prop_assert_eq!(have, n.saturating_sub(offset));
                }
                Err(e) => prop_assert!(false, "unexpected {e} for a prefix of {n} bytes"),
            }
        }

        #[test]
        fn mutations_never_panic(
            (link, mut frame, _port) in valid_frame(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            for (i, b) in flips {
                let i = i.index(frame.len());
                frame[i] = b;
            }
            if let Ok(p) = decode(link, &frame) {
                prop_assert!(p.payload.len() <= frame.len());
            }
        }
    }
}
