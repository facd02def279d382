//! Live packet capture (libpcap) and pcap files, as a stream of frames ready for
//! [`knock_core::packet::decode`].
//!
//! - [`Interfaces`]: what `-i` names: `any`, one interface, or a comma-separated list.
//! - [`Watch`] and [`filter_expression`]: the kernel-side BPF filter built from the watched
//!   (protocol, destination port) pairs and ranges.
//! - [`LiveCapture`]: one pcap handle per interface (promiscuous mode off, immediate mode, a
//!   large buffer), merged into one async stream of [`Frame`]s (it must be opened inside a tokio
//!   runtime). Runtime capture errors are returned, never swallowed.
//! - [`FileCapture`]: the same filter and frames from a pcap file.

use std::fmt;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use knock_core::packet::{self, DecodeError, LinkType, Packet};
use knock_core::proto::Protocol;
use pcap::{Active, Offline, PacketCodec, PacketStream};

pub use knock_core::matcher::Watch;

fn watch_proto(w: &Watch) -> Protocol {
    match *w {
        Watch::Port(k) => k.proto,
        Watch::Range { proto, .. } => proto,
    }
}

/// `(lo, hi)` of a watch, whichever order a range was given in.
fn watch_bounds(w: &Watch) -> (u16, u16) {
    match *w {
        Watch::Port(k) => (k.port, k.port),
        Watch::Range { lo, hi, .. } => (lo.min(hi), lo.max(hi)),
    }
}

/// The watched ports of one protocol as sorted, disjoint, non-adjacent inclusive ranges.
pub fn merged_ranges(watches: &[Watch], proto: Protocol) -> Vec<(u16, u16)> {
    let mut r: Vec<(u16, u16)> = watches
        .iter()
        .filter(|w| watch_proto(w) == proto)
        .map(watch_bounds)
        .collect();
    r.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::with_capacity(r.len());
    for (lo, hi) in r {
        match out.last_mut() {
            Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// IPv6 next-header values that the decoder walks past: hop-by-hop, routing, fragment, AH,
/// destination options. A BPF `tcp dst port` test only matches when TCP follows the fixed IPv6
/// header, so packets with these are passed to userspace whatever their port.
const IPV6_EXT_HEADERS: [u8; 5] = [0, 43, 44, 51, 60];

/// The pcap filter expression that passes what the daemon watches: TCP and UDP packets to the
/// watched destination ports (IPv4, and IPv6 unless `ipv4_only`), plus IPv6 packets with an
/// extension header (so userspace can find their ports). Destination ports only, never
/// addresses. Non-first IPv4 fragments are not passed. Nothing watched passes nothing.
///
/// VLAN-tagged packets are matched on live Linux captures (the kernel presents them untagged to
/// the filter) but not in pcap files, where the tag is inline.
pub fn filter_expression(watches: &[Watch], ipv4_only: bool) -> String {
    let mut terms = Vec::new();
    for proto in [Protocol::Tcp, Protocol::Udp] {
        for (lo, hi) in merged_ranges(watches, proto) {
            terms.push(if lo == hi {
                format!("{proto} dst port {lo}")
            } else {
                format!("{proto} dst portrange {lo}-{hi}")
            });
        }
    }
    if terms.is_empty() {
        // Matches no packet: every frame is at least one byte long.
        return "less 0".to_string();
    }
    if ipv4_only {
        return format!("ip and ({})", terms.join(" or "));
    }
    let ext: Vec<String> = IPV6_EXT_HEADERS
        .iter()
        .map(|n| format!("ip6[6] == {n}"))
        .collect();
    terms.push(format!("(ip6 and ({}))", ext.join(" or ")));
    terms.join(" or ")
}

/// The interfaces named by `-i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interfaces {
    /// `any`: every interface (one Linux "cooked" capture).
    Any,
    /// One or more named interfaces, without duplicates, in the given order.
    Named(Vec<String>),
}

impl Interfaces {
    /// Parses `any`, `eth0` or `eth0,wg0,ppp0` (blanks around names ignored).
    pub fn parse(spec: &str) -> Result<Interfaces, CaptureError> {
        let bad = |why: &'static str| CaptureError::BadInterfaceList {
            spec: spec.to_string(),
            why,
        };
        let mut names: Vec<String> = Vec::new();
        for part in spec.split(',') {
            let name = part.trim();
            if name.is_empty() {
                return Err(bad("empty interface name"));
            }
            if name.len() > 15 {
                return Err(bad("interface names are at most 15 bytes long"));
            }
            if name.contains('/') || name.chars().any(char::is_whitespace) {
                return Err(bad("interface names contain no '/' or blanks"));
            }
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        if names.iter().any(|n| n == "any") {
            if names.len() > 1 {
                return Err(bad("\"any\" cannot be combined with other interfaces"));
            }
            return Ok(Interfaces::Any);
        }
        Ok(Interfaces::Named(names))
    }

    /// Whether an interface (as `getifaddrs` names it; an IPv4 label such as `eth0:1` belongs
    /// to `eth0`) is one of these.
    pub fn covers(&self, ifname: &str) -> bool {
        match self {
            Interfaces::Any => true,
            Interfaces::Named(names) => {
                let base = ifname.split(':').next().unwrap_or(ifname);
                names.iter().any(|n| n == base || n == ifname)
            }
        }
    }

    /// Checks that every named interface exists (before daemonizing, so the error reaches the
    /// terminal); the error lists the interfaces that do exist.
    pub fn check_exist(&self) -> Result<(), CaptureError> {
        for name in self.pcap_names().iter().filter(|n| *n != "any") {
            check_interface_exists(name)?;
        }
        Ok(())
    }

    fn pcap_names(&self) -> Vec<String> {
        match self {
            Interfaces::Any => vec!["any".to_string()],
            Interfaces::Named(n) => n.clone(),
        }
    }
}

impl fmt::Display for Interfaces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Interfaces::Any => f.write_str("any"),
            Interfaces::Named(n) => f.write_str(&n.join(",")),
        }
    }
}

/// The kernel's interface names, sorted, for error messages.
pub fn system_interfaces() -> Vec<String> {
    let mut v: Vec<String> = match nix::net::if_::if_nameindex() {
        Ok(list) => list
            .iter()
            .map(|i| i.name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn check_interface_exists(name: &str) -> Result<(), CaptureError> {
    if nix::net::if_::if_nametoindex(name).is_ok() {
        return Ok(());
    }
    Err(CaptureError::NoSuchInterface {
        name: name.to_string(),
        available: system_interfaces(),
    })
}

/// Errors of capture setup and of reading packets.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("no such interface \"{name}\" (available: {}, any)", available.join(", "))]
    NoSuchInterface {
        name: String,
        available: Vec<String>,
    },
    #[error("bad interface list \"{spec}\": {why}")]
    BadInterfaceList { spec: String, why: &'static str },
    #[error("{iface}: cannot open capture: {source}")]
    Open {
        iface: String,
        #[source]
        source: pcap::Error,
    },
    #[error("{iface}: unsupported link type {dlt} ({name})")]
    UnsupportedLink {
        iface: String,
        dlt: i32,
        name: String,
    },
    #[error("{iface}: cannot set capture filter \"{filter}\": {source}")]
    Filter {
        iface: String,
        filter: String,
        #[source]
        source: pcap::Error,
    },
    #[error("{iface}: capture failed: {source}")]
    Read {
        iface: String,
        #[source]
        source: pcap::Error,
    },
    #[error("{iface}: cannot read capture statistics: {source}")]
    Stats {
        iface: String,
        #[source]
        source: pcap::Error,
    },
    #[error("{iface}: capture ended")]
    Ended { iface: String },
}

/// Settings of live captures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// Kernel buffer size in bytes, per interface (room for floods while userspace catches up).
    pub buffer_size: u32,
    /// Bytes captured per frame: enough for link header, IP and UDP headers and an SPA message.
    pub snaplen: u32,
    /// Capture only packets received by the interfaces, not those this host sends.
    pub incoming_only: bool,
    /// Pass IPv4 packets only (`-4`).
    pub ipv4_only: bool,
    /// How long the kernel may hold captured frames to hand them over in one batch, in
    /// milliseconds (libpcap's buffer timeout with the TPACKET_V3 ring). 0 = immediate mode:
    /// a wake-up per frame, which costs several times the CPU of handling a frame under a
    /// flood. 1 ms adds at most 1 ms to a knock's latency.
    pub batch_ms: u32,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            buffer_size: 8 << 20,
            snaplen: 2048,
            incoming_only: true,
            ipv4_only: false,
            batch_ms: 1,
        }
    }
}

/// One captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Interface name (`any` for `-i any`), or the file name for [`FileCapture`].
    pub iface: Arc<str>,
    pub link: LinkType,
    /// Capture timestamp, since the Unix epoch.
    pub ts: Duration,
    /// Length of the frame on the wire (`data` may be shorter: snap length).
    pub wire_len: u32,
    pub data: Vec<u8>,
}

/// A captured frame borrowed from the capture ring (no copy): what
/// [`LiveCapture::drain`] hands out.
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    pub iface: &'a str,
    pub link: LinkType,
    /// Capture timestamp, since the Unix epoch.
    pub ts: Duration,
    /// Length of the frame on the wire (`data` may be shorter: snap length).
    pub wire_len: u32,
    pub data: &'a [u8],
}

impl<'a> FrameView<'a> {
    /// Decodes the frame (see [`knock_core::packet::decode`]).
    pub fn decode(&self) -> Result<Packet<'a>, DecodeError> {
        packet::decode(self.link, self.data)
    }
}

fn timestamp(h: &pcap::PacketHeader) -> Duration {
    let sec = u64::try_from(h.ts.tv_sec).unwrap_or(0);
    let usec = u32::try_from(h.ts.tv_usec).unwrap_or(0).min(999_999);
    Duration::new(sec, usec * 1000)
}

impl Frame {
    /// The frame as a [`FrameView`].
    pub fn view(&self) -> FrameView<'_> {
        FrameView {
            iface: &self.iface,
            link: self.link,
            ts: self.ts,
            wire_len: self.wire_len,
            data: &self.data,
        }
    }

    /// Decodes the frame (see [`knock_core::packet::decode`]).
    pub fn decode(&self) -> Result<Packet<'_>, DecodeError> {
        packet::decode(self.link, &self.data)
    }
}

/// An opened interface (or file) and its link type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceInfo {
    pub name: Arc<str>,
    pub link: LinkType,
}

/// `pcap_stats` of one interface, counted since it was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceStats {
    pub iface: Arc<str>,
    /// Packets that passed the filter.
    pub received: u32,
    /// Packets dropped because the buffer was full.
    pub dropped: u32,
    /// Packets dropped by the interface or its driver.
    pub if_dropped: u32,
}

struct FrameCodec {
    iface: Arc<str>,
    link: LinkType,
}

impl FrameCodec {
    fn frame(&self, p: &pcap::Packet<'_>) -> Frame {
        Frame {
            iface: self.iface.clone(),
            link: self.link,
            ts: timestamp(p.header),
            wire_len: p.header.len,
            data: p.data.to_vec(),
        }
    }
}

impl PacketCodec for FrameCodec {
    type Item = Frame;

    fn decode(&mut self, packet: pcap::Packet<'_>) -> Frame {
        self.frame(&packet)
    }
}

/// The decoder's link type for a handle: its current one if supported, otherwise the first
/// supported one it offers.
fn choose_link<T: pcap::Activated + ?Sized>(
    cap: &mut pcap::Capture<T>,
    iface: &str,
) -> Result<LinkType, CaptureError> {
    let dlt = cap.get_datalink();
    if let Some(l) = LinkType::from_dlt(dlt.0) {
        return Ok(l);
    }
    if let Ok(list) = cap.list_datalinks() {
        for d in list {
            if let Some(l) = LinkType::from_dlt(d.0)
                && cap.set_datalink(d).is_ok()
            {
                return Ok(l);
            }
        }
    }
    Err(CaptureError::UnsupportedLink {
        iface: iface.to_string(),
        dlt: dlt.0,
        name: dlt.get_name().unwrap_or_else(|_| "unknown".to_string()),
    })
}

struct Handle {
    info: IfaceInfo,
    stream: PacketStream<Active, FrameCodec>,
}

/// How often every handle is read directly, whatever its readiness says.
///
/// A vanished interface (PPP link down, `ip link del`) shows as `POLLERR` only, which tokio
/// does not report to readers, so without this the capture would wait forever instead of
/// failing.
pub const WATCHDOG_PERIOD: Duration = Duration::from_millis(500);

/// Live captures on one or more interfaces, merged into one stream of frames.
pub struct LiveCapture {
    handles: Vec<Handle>,
    /// Where the next poll starts, so one busy interface cannot starve the others.
    start: usize,
    filter: String,
    watchdog: tokio::time::Interval,
}

impl LiveCapture {
    /// Opens one capture per interface with the filter built from `watches`.
    ///
    /// Must be called inside a tokio runtime (the handles are registered with its reactor).
    /// A missing interface gives [`CaptureError::NoSuchInterface`] listing the existing ones.
    pub fn open(
        ifaces: &Interfaces,
        watches: &[Watch],
        cfg: &CaptureConfig,
    ) -> Result<LiveCapture, CaptureError> {
        let filter = filter_expression(watches, cfg.ipv4_only);
        let names = ifaces.pcap_names();
        for name in names.iter().filter(|n| *n != "any") {
            check_interface_exists(name)?;
        }
        let mut handles = Vec::new();
        for name in &names {
            handles.push(open_one(name, &filter, cfg)?);
        }
        let mut watchdog = tokio::time::interval(WATCHDOG_PERIOD);
        watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(LiveCapture {
            handles,
            start: 0,
            filter,
            watchdog,
        })
    }

    /// The opened interfaces and their link types.
    pub fn interfaces(&self) -> Vec<IfaceInfo> {
        self.handles.iter().map(|h| h.info.clone()).collect()
    }

    /// The filter expression in force.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Replaces the filter on every handle (after a configuration reload).
    pub fn set_filter(&mut self, watches: &[Watch], ipv4_only: bool) -> Result<(), CaptureError> {
        let filter = filter_expression(watches, ipv4_only);
        for h in &mut self.handles {
            h.stream
                .capture_mut()
                .filter(&filter, true)
                .map_err(|source| CaptureError::Filter {
                    iface: h.info.name.to_string(),
                    filter: filter.clone(),
                    source,
                })?;
        }
        self.filter = filter;
        Ok(())
    }

    /// Capture statistics of every interface.
    pub fn stats(&mut self) -> Result<Vec<IfaceStats>, CaptureError> {
        let mut out = Vec::with_capacity(self.handles.len());
        for h in &mut self.handles {
            let s = h
                .stream
                .capture_mut()
                .stats()
                .map_err(|source| CaptureError::Stats {
                    iface: h.info.name.to_string(),
                    source,
                })?;
            out.push(IfaceStats {
                iface: h.info.name.clone(),
                received: s.received,
                dropped: s.dropped,
                if_dropped: s.if_dropped,
            });
        }
        Ok(out)
    }

    /// Reads, without waiting, up to `max` frames already in the capture rings (every
    /// interface in turn), handing each to `f` without copying it; returns how many. Call it
    /// after [`LiveCapture::next_frame`] returned, so a wake-up serves a whole batch.
    pub fn drain(
        &mut self,
        max: usize,
        mut f: impl FnMut(FrameView<'_>),
    ) -> Result<usize, CaptureError> {
        let n = self.handles.len();
        let (mut done, mut idle, mut i) = (0, 0, self.start);
        while done < max && idle < n {
            let Handle { info, stream } = &mut self.handles[i % n];
            i += 1;
            match stream.capture_mut().next_packet() {
                Ok(p) => {
                    f(FrameView {
                        iface: &info.name,
                        link: info.link,
                        ts: timestamp(p.header),
                        wire_len: p.header.len,
                        data: p.data,
                    });
                    done += 1;
                    idle = 0;
                }
                Err(pcap::Error::TimeoutExpired) => idle += 1,
                Err(source) => {
                    return Err(CaptureError::Read {
                        iface: info.name.to_string(),
                        source,
                    });
                }
            }
        }
        self.start = i % n.max(1);
        Ok(done)
    }

    /// The next frame from any interface; an error means the capture is broken (the daemon
    /// should exit non-zero).
    pub async fn next_frame(&mut self) -> Result<Frame, CaptureError> {
        match self.next().await {
            Some(r) => r,
            None => Err(CaptureError::Ended {
                iface: "(no interface)".to_string(),
            }),
        }
    }
}

fn open_one(name: &str, filter: &str, cfg: &CaptureConfig) -> Result<Handle, CaptureError> {
    let open_err = |source| CaptureError::Open {
        iface: name.to_string(),
        source,
    };
    let mut cap = pcap::Capture::from_device(name)
        .map_err(open_err)?
        .promisc(false)
        .immediate_mode(cfg.batch_ms == 0)
        .snaplen(i32::try_from(cfg.snaplen).unwrap_or(i32::MAX))
        .buffer_size(i32::try_from(cfg.buffer_size).unwrap_or(i32::MAX))
        .timeout(if cfg.batch_ms == 0 {
            100
        } else {
            cfg.batch_ms as i32
        })
        .open()
        .map_err(open_err)?;
    let link = choose_link(&mut cap, name)?;
    if cfg.incoming_only {
        cap.direction(pcap::Direction::In).map_err(open_err)?;
    }
    cap.filter(filter, true)
        .map_err(|source| CaptureError::Filter {
            iface: name.to_string(),
            filter: filter.to_string(),
            source,
        })?;
    let iface: Arc<str> = Arc::from(name);
    let stream = cap
        .setnonblock()
        .map_err(open_err)?
        .stream(FrameCodec {
            iface: iface.clone(),
            link,
        })
        .map_err(open_err)?;
    Ok(Handle {
        info: IfaceInfo { name: iface, link },
        stream,
    })
}

impl Stream for LiveCapture {
    type Item = Result<Frame, CaptureError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let n = this.handles.len();
        if n == 0 {
            return Poll::Ready(None);
        }
        if this.watchdog.poll_tick(cx).is_ready() {
            for h in &mut this.handles {
                let codec = FrameCodec {
                    iface: h.info.name.clone(),
                    link: h.info.link,
                };
                match h.stream.capture_mut().next_packet() {
                    Ok(p) => return Poll::Ready(Some(Ok(codec.frame(&p)))),
                    Err(pcap::Error::TimeoutExpired) => {}
                    Err(source) => {
                        return Poll::Ready(Some(Err(CaptureError::Read {
                            iface: h.info.name.to_string(),
                            source,
                        })));
                    }
                }
            }
        }
        for i in 0..n {
            let idx = (this.start + i) % n;
            let h = &mut this.handles[idx];
            match h.stream.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.start = (idx + 1) % n;
                    return Poll::Ready(Some(Ok(frame)));
                }
                Poll::Ready(Some(Err(source))) => {
                    return Poll::Ready(Some(Err(CaptureError::Read {
                        iface: h.info.name.to_string(),
                        source,
                    })));
                }
                Poll::Ready(None) => {
                    return Poll::Ready(Some(Err(CaptureError::Ended {
                        iface: h.info.name.to_string(),
                    })));
                }
                Poll::Pending => {}
            }
        }
        Poll::Pending
    }
}

/// Frames from a pcap file, through the same filter as live captures.
pub struct FileCapture {
    cap: pcap::Capture<Offline>,
    codec: FrameCodec,
    filtered: bool,
}

impl FileCapture {
    /// Opens a pcap (or pcapng) file and applies the filter built from `watches`.
    ///
    /// For link types libpcap cannot filter (`PPP_WITH_DIR`) every frame is returned
    /// ([`filtered`](Self::filtered) is then `false`); the caller checks ports anyway.
    pub fn open(
        path: &Path,
        watches: &[Watch],
        ipv4_only: bool,
    ) -> Result<FileCapture, CaptureError> {
        let name = path.display().to_string();
        let mut cap = pcap::Capture::from_file(path).map_err(|source| CaptureError::Open {
            iface: name.clone(),
            source,
        })?;
        let link = choose_link(&mut cap, &name)?;
        let filter = filter_expression(watches, ipv4_only);
        let filtered = match cap.filter(&filter, true) {
            Ok(()) => true,
            Err(_) if link == LinkType::PppWithDir => false,
            Err(source) => {
                return Err(CaptureError::Filter {
                    iface: name,
                    filter,
                    source,
                });
            }
        };
        Ok(FileCapture {
            cap,
            codec: FrameCodec {
                iface: Arc::from(name),
                link,
            },
            filtered,
        })
    }

    /// Whether the filter is applied (see [`open`](Self::open)).
    pub fn filtered(&self) -> bool {
        self.filtered
    }

    /// The file's link type.
    pub fn link(&self) -> LinkType {
        self.codec.link
    }
}

impl Iterator for FileCapture {
    type Item = Result<Frame, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.cap.next_packet() {
            Ok(p) => Some(Ok(self.codec.frame(&p))),
            Err(pcap::Error::NoMorePackets) => None,
            Err(source) => Some(Err(CaptureError::Read {
                iface: self.codec.iface.to_string(),
                source,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Protocol::{Tcp, Udp};
    use knock_core::proto::Knock;

    #[test]
    fn captures_can_move_to_a_task() {
        fn send<T: Send>() {}
        send::<LiveCapture>();
        send::<FileCapture>();
        send::<Frame>();
        send::<CaptureError>();
    }

    #[test]
    fn ranges_merge() {
        let w = [
            Watch::Port(Knock::new(7002, Tcp)),
            Watch::Port(Knock::new(7000, Tcp)),
            Watch::Port(Knock::new(7001, Tcp)),
            Watch::Range {
                proto: Tcp,
                lo: 9010,
                hi: 9000,
            },
            Watch::Port(Knock::new(9005, Tcp)),
            Watch::Port(Knock::new(9011, Tcp)),
            Watch::Port(Knock::new(22, Tcp)),
            Watch::Port(Knock::new(62201, Udp)),
            Watch::Range {
                proto: Tcp,
                lo: 65530,
                hi: 65535,
            },
            Watch::Port(Knock::new(65535, Tcp)),
            Watch::Port(Knock::new(0, Tcp)),
        ];
        assert_eq!(
            merged_ranges(&w, Tcp),
            vec![(0, 0), (22, 22), (7000, 7002), (9000, 9011), (65530, 65535)]
        );
        assert_eq!(merged_ranges(&w, Udp), vec![(62201, 62201)]);
        assert_eq!(merged_ranges(&[], Udp), vec![]);
    }

    #[test]
    fn expression_text() {
        let w = [
            Watch::Port(Knock::new(7000, Tcp)),
            Watch::Range {
                proto: Tcp,
                lo: 8000,
                hi: 8010,
            },
            Watch::Port(Knock::new(62201, Udp)),
        ];
        assert_eq!(
            filter_expression(&w, false),
            "tcp dst port 7000 or tcp dst portrange 8000-8010 or udp dst port 62201 or \
             (ip6 and (ip6[6] == 0 or ip6[6] == 43 or ip6[6] == 44 or ip6[6] == 51 or ip6[6] == 60))"
        );
        assert_eq!(
            filter_expression(&w, true),
            "ip and (tcp dst port 7000 or tcp dst portrange 8000-8010 or udp dst port 62201)"
        );
        assert_eq!(filter_expression(&[], false), "less 0");
    }

    #[test]
    fn interface_lists() {
        assert_eq!(Interfaces::parse("any").unwrap(), Interfaces::Any);
        assert_eq!(
            Interfaces::parse(" eth0 , wg0,eth0").unwrap(),
            Interfaces::Named(vec!["eth0".into(), "wg0".into()])
        );
        for bad in ["", "eth0,", "any,eth0", "a/b", "x y", "0123456789abcdef"] {
            let e = Interfaces::parse(bad).unwrap_err();
            assert!(
                matches!(e, CaptureError::BadInterfaceList { .. }),
                "{bad}: {e}"
            );
        }
        let i = Interfaces::parse("eth0,ppp0").unwrap();
        assert!(i.covers("eth0") && i.covers("eth0:1") && i.covers("ppp0"));
        assert!(!i.covers("eth1") && !i.covers("eth"));
        assert!(Interfaces::Any.covers("whatever"));
        assert_eq!(i.to_string(), "eth0,ppp0");
    }

    #[test]
    fn missing_interface_lists_existing_ones() {
        let e = check_interface_exists("knock-nonesuch").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("no such interface \"knock-nonesuch\" (available: "),
            "{msg}"
        );
        assert!(msg.contains("lo"), "{msg}");
        check_interface_exists("lo").unwrap();
    }

    // --- The filter, run in userspace (pcap_offline_filter) on hand-built frames. ---

    fn udp(dport: u16) -> Vec<u8> {
        let mut v = 1234u16.to_be_bytes().to_vec();
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&[0, 9, 0, 0, b'x']);
        v
    }

    fn tcp(dport: u16) -> Vec<u8> {
        let mut v = 1234u16.to_be_bytes().to_vec();
        v.extend_from_slice(&dport.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        v
    }

    fn ip4(proto: u8, frag: u16, l4: &[u8]) -> Vec<u8> {
        let mut v = vec![0x45, 0];
        v.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        v.extend_from_slice(&[0, 1]);
        v.extend_from_slice(&frag.to_be_bytes());
        v.extend_from_slice(&[64, proto, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1]);
        v.extend_from_slice(l4);
        v
    }

    fn ip6(next: u8, rest: &[u8]) -> Vec<u8> {
        let mut v = vec![0x60, 0, 0, 0];
        v.extend_from_slice(&(rest.len() as u16).to_be_bytes());
        v.extend_from_slice(&[next, 64]);
        v.extend_from_slice(&[0x20, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
        v.extend_from_slice(&[0x20, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
        v.extend_from_slice(rest);
        v
    }

    fn eth(ip: &[u8]) -> Vec<u8> {
        let mut v = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        v.extend_from_slice(if ip[0] >> 4 == 6 {
            &[0x86, 0xdd]
        } else {
            &[0x08, 0x00]
        });
        v.extend_from_slice(ip);
        v
    }

    fn sll(ip: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0];
        v.extend_from_slice(if ip[0] >> 4 == 6 {
            &[0x86, 0xdd]
        } else {
            &[0x08, 0x00]
        });
        v.extend_from_slice(ip);
        v
    }

    fn program(dlt: i32, expr: &str) -> pcap::BpfProgram {
        let dead = pcap::Capture::dead(pcap::Linktype(dlt)).unwrap();
        dead.compile(expr, true)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    #[test]
    fn filter_passes_watched_ports_only() {
        let w = [
            Watch::Port(Knock::new(7000, Tcp)),
            Watch::Range {
                proto: Tcp,
                lo: 8000,
                hi: 8010,
            },
            Watch::Port(Knock::new(62201, Udp)),
        ];
        let expr = filter_expression(&w, false);
        type Wrap = fn(&[u8]) -> Vec<u8>;
        let wraps: [(i32, Wrap); 3] = [(1, eth), (113, sll), (12, |ip| ip.to_vec())];
        for (dlt, wrap) in wraps {
            let p = program(dlt, &expr);
            let pass = |ip: Vec<u8>| p.filter(&wrap(&ip));
            assert!(pass(ip4(6, 0, &tcp(7000))), "{dlt}");
            assert!(pass(ip4(6, 0, &tcp(8005))), "{dlt}");
            assert!(pass(ip4(17, 0, &udp(62201))), "{dlt}");
            assert!(pass(ip6(6, &tcp(7000))), "{dlt}");
            assert!(pass(ip6(17, &udp(62201))), "{dlt}");
            // First fragment passes, later fragments do not.
            assert!(pass(ip4(17, 0x2000, &udp(62201))), "{dlt}");
            assert!(!pass(ip4(17, 0x0003, &udp(62201))), "{dlt}");
            // Wrong port or wrong protocol.
            assert!(!pass(ip4(6, 0, &tcp(7001))), "{dlt}");
            assert!(!pass(ip4(17, 0, &udp(7000))), "{dlt}");
            assert!(!pass(ip4(6, 0, &tcp(62201))), "{dlt}");
            assert!(!pass(ip6(17, &udp(7000))), "{dlt}");
            assert!(!pass(ip4(1, 0, &[8, 0, 0, 0, 0, 0, 0, 0])), "{dlt}");
            // IPv6 with an extension header passes whatever the port.
            let mut hbh = vec![6, 0, 1, 4, 0, 0, 0, 0];
            hbh.extend(tcp(1));
            assert!(pass(ip6(0, &hbh)), "{dlt}");
            let mut frag = vec![17, 0, 0, 0, 0, 0, 0, 1];
            frag.extend(udp(5));
            assert!(pass(ip6(44, &frag)), "{dlt}");
            assert!(!pass(ip6(58, &[128, 0, 0, 0])), "{dlt}");
        }
        let p4 = program(1, &filter_expression(&w, true));
        assert!(p4.filter(&eth(&ip4(6, 0, &tcp(7000)))));
        assert!(!p4.filter(&eth(&ip6(6, &tcp(7000)))));
        assert!(!p4.filter(&eth(&ip6(0, &[6, 0, 1, 4, 0, 0, 0, 0]))));
        let none = program(1, &filter_expression(&[], false));
        assert!(!none.filter(&eth(&ip4(6, 0, &tcp(7000)))));
    }

    #[test]
    fn filter_compiles_for_every_link_type() {
        let expr = filter_expression(
            &[
                Watch::Port(Knock::new(1, Tcp)),
                Watch::Port(Knock::new(2, Udp)),
            ],
            false,
        );
        for l in LinkType::ALL {
            let dead = pcap::Capture::dead(pcap::Linktype(l.dlt())).unwrap();
            let r = dead.compile(&expr, true);
            // libpcap cannot filter PPP_WITH_DIR; files of that type are read unfiltered.
            assert_eq!(r.is_ok(), l != LinkType::PppWithDir, "{l}");
        }
        // A long filter (hundreds of ports) still compiles.
        let many: Vec<Watch> = (0..500)
            .map(|i| Watch::Port(Knock::new(1000 + 2 * i, Tcp)))
            .collect();
        program(1, &filter_expression(&many, false));
    }
}
