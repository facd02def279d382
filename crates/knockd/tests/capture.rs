//! Live captures inside throw-away network namespaces (root only): what the kernel filter
//! passes, what the decoder makes of it, `-i any`, interface lists, missing interfaces, runtime
//! errors, local addresses followed as they change, and pcap files written by tcpdump.
//!
//! A "sniffer" runs [`LiveCapture`] on a thread that entered the server namespace (its own
//! current-thread tokio runtime) and reports every frame over a channel.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use knock_core::packet::{DecodeError, LinkType};
use knock_core::proto::Knock;
use knock_core::proto::Protocol::{self, Tcp, Udp};
use knock_core::tcpflags::bits;
use knockd::capture::{
    CaptureConfig, CaptureError, FileCapture, IfaceInfo, IfaceStats, Interfaces, LiveCapture, Watch,
};
use knockd::ifaddrs::LocalAddrs;
use netns_testkit::{Lab, Ns, require_root};

const T: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    iface: String,
    link: LinkType,
    src: IpAddr,
    dst: IpAddr,
    proto: Protocol,
    dport: u16,
    flags: u8,
    payload: Vec<u8>,
    complete: bool,
    /// `is_local(dst)` before any on-demand refresh.
    local_before: bool,
    /// `is_local_or_refresh(dst)`.
    local: bool,
}

#[derive(Debug)]
enum Msg {
    Packet(Seen),
    NotKnock,
    Bad(DecodeError),
    Failed(String),
}

struct Sniffer {
    rx: mpsc::Receiver<Msg>,
    /// New watches for `LiveCapture::set_filter`, acknowledged on `refiltered`.
    refilter: mpsc::Sender<Vec<Watch>>,
    refiltered: mpsc::Receiver<Result<String, String>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<Vec<IfaceStats>, String>>>,
    ifaces: Vec<IfaceInfo>,
}

impl Sniffer {
    /// Starts a capture on `spec` inside `ns`; returns once it is open (filter installed).
    fn start(
        ns: &Ns,
        spec: &str,
        watches: &[Watch],
        refresh_every: Option<Duration>,
    ) -> Result<Sniffer, String> {
        let (tx, rx) = mpsc::channel();
        let (refilter, refilter_rx) = mpsc::channel();
        let (refiltered_tx, refiltered) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<Vec<IfaceInfo>, String>>();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let spec = spec.to_string();
        let watches = watches.to_vec();
        let handle = ns
            .spawn_thread(move || {
                let ctl = Control {
                    ready: ready_tx,
                    stop: stop2,
                    refilter: refilter_rx,
                    refiltered: refiltered_tx,
                };
                sniff(&spec, &watches, refresh_every, tx, ctl)
            })
            .map_err(|e| e.to_string())?;
        match ready_rx.recv_timeout(T) {
            Ok(Ok(ifaces)) => Ok(Sniffer {
                rx,
                refilter,
                refiltered,
                stop,
                handle: Some(handle),
                ifaces,
            }),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(format!("sniffer did not start: {e}")),
        }
    }

    /// Collects packets until one satisfies `last` (included); fails after [`T`].
    fn until(&self, last: impl Fn(&Seen) -> bool) -> Vec<Seen> {
        let deadline = Instant::now() + T;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Msg::Packet(s)) => {
                    let done = last(&s);
                    out.push(s);
                    if done {
                        return out;
                    }
                }
                Ok(Msg::NotKnock) => {}
                Ok(Msg::Bad(e)) => panic!("decode error on a real packet: {e}"),
                Ok(Msg::Failed(e)) => panic!("capture failed: {e}; seen so far {out:#?}"),
                Err(_) => panic!("timed out; seen so far {out:#?}"),
            }
        }
    }

    /// Replaces the capture filter; returns the new expression.
    fn set_filter(&self, watches: &[Watch]) -> String {
        self.refilter.send(watches.to_vec()).unwrap();
        self.refiltered.recv_timeout(T).unwrap().unwrap()
    }

    /// Waits for a capture failure (and returns its message).
    fn failure(&self, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Msg::Failed(e)) => return Some(e),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Stops the capture and returns its statistics.
    fn finish(mut self) -> Vec<IfaceStats> {
        self.stop.store(true, Ordering::SeqCst);
        let h = self.handle.take().expect("running");
        h.join().expect("sniffer thread").expect("sniffer result")
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

struct Control {
    ready: mpsc::Sender<Result<Vec<IfaceInfo>, String>>,
    stop: Arc<AtomicBool>,
    refilter: mpsc::Receiver<Vec<Watch>>,
    refiltered: mpsc::Sender<Result<String, String>>,
}

fn sniff(
    spec: &str,
    watches: &[Watch],
    refresh_every: Option<Duration>,
    tx: mpsc::Sender<Msg>,
    ctl: Control,
) -> Result<Vec<IfaceStats>, String> {
    let ready = ctl.ready;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let ifaces = match Interfaces::parse(spec) {
            Ok(i) => i,
            Err(e) => {
                let _ = ready.send(Err(e.to_string()));
                return Err(e.to_string());
            }
        };
        let mut cap = match LiveCapture::open(&ifaces, watches, &CaptureConfig::default()) {
            Ok(c) => c,
            Err(e) => {
                let _ = ready.send(Err(e.to_string()));
                return Err(e.to_string());
            }
        };
        let addrs = LocalAddrs::new(ifaces).map_err(|e| e.to_string())?;
        let _refresher = refresh_every.map(|d| addrs.spawn_refresher(d));
        let _ = ready.send(Ok(cap.interfaces()));
        loop {
            tokio::select! {
                r = cap.next_frame() => match r {
                    Ok(f) => {
                        let msg = match f.decode() {
                            Ok(p) => Msg::Packet(Seen {
                                iface: f.iface.to_string(),
                                link: f.link,
                                src: p.src,
                                dst: p.dst,
                                proto: p.proto,
                                dport: p.dst_port,
                                flags: p.tcp_flags,
                                payload: p.payload.to_vec(),
                                complete: p.payload_complete,
                                local_before: addrs.is_local(p.dst),
                                local: addrs.is_local_or_refresh(p.dst),
                            }),
                            Err(e) if e.is_not_knock() => Msg::NotKnock,
                            Err(e) => Msg::Bad(e),
                        };
                        let _ = tx.send(msg);
                    }
                    Err(e) => {
                        let _ = tx.send(Msg::Failed(e.to_string()));
                        return Err(e.to_string());
                    }
                },
                _ = tokio::time::sleep(Duration::from_millis(20)) => {
                    if ctl.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(w) = ctl.refilter.try_recv() {
                        let r = cap.set_filter(&w, false).map(|()| cap.filter().to_string());
                        let _ = ctl.refiltered.send(r.map_err(|e| e.to_string()));
                    }
                }
            }
        }
        cap.stats().map_err(|e| e.to_string())
    })
}

fn v4(lab: &Lab, k: usize) -> IpAddr {
    IpAddr::V4(lab.server_v4(k))
}

fn v6(lab: &Lab, k: usize) -> IpAddr {
    IpAddr::V6(lab.server_v6(k))
}

/// A TCP SYN from client `k` (connect to a closed port: SYN, RST).
fn syn(lab: &Lab, k: usize, dst: IpAddr, port: u16) {
    assert!(
        !lab.client(k)
            .tcp_connect_ok(dst, port, Duration::from_secs(2))
    );
}

fn udp(lab: &Lab, k: usize, dst: IpAddr, port: u16, payload: &[u8]) {
    lab.client(k).udp_send(dst, port, payload).unwrap();
}

/// A UDP datagram over IPv6 with a hop-by-hop options header (PadN), via IPV6_HOPOPTS.
fn udp6_hop_by_hop(ns: &Ns, dst: Ipv6Addr, port: u16, payload: &[u8]) {
    let payload = payload.to_vec();
    ns.run_in(move || {
        let sock = std::net::UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))?;
        let hbh: [u8; 8] = [0, 0, 1, 4, 0, 0, 0, 0];
        // SAFETY: valid socket fd, valid buffer of the given length.
        let r = unsafe {
            use std::os::fd::AsRawFd;
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IPV6,
                libc::IPV6_HOPOPTS,
                hbh.as_ptr().cast(),
                hbh.len() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        sock.send_to(&payload, SocketAddr::from((dst, port)))?;
        Ok(())
    })
    .unwrap()
    .unwrap();
}

fn key(s: &Seen) -> (IpAddr, Protocol, u16, Vec<u8>) {
    (s.dst, s.proto, s.dport, s.payload.clone())
}

const WATCHES: [Watch; 4] = [
    Watch::Port(Knock::new(7000, Tcp)),
    Watch::Range {
        proto: Tcp,
        lo: 8000,
        hi: 8010,
    },
    Watch::Port(Knock::new(62201, Udp)),
    Watch::Port(Knock::new(9999, Udp)),
];

/// The marker that ends a batch: a watched UDP datagram with a recognisable payload.
fn is_end(s: &Seen) -> bool {
    s.payload == b"end"
}

#[test]
fn sees_watched_tcp_and_udp_over_ipv4_and_ipv6_only() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let sn = Sniffer::start(lab.server(), &lab.server_if(1), &WATCHES, None).unwrap();
    assert_eq!(
        sn.ifaces,
        vec![IfaceInfo {
            name: lab.server_if(1).into(),
            link: LinkType::Ethernet
        }]
    );
    for ip in [v4(&lab, 1), v6(&lab, 1)] {
        // Unwatched first: none of these may show up.
        syn(&lab, 1, ip, 7001);
        syn(&lab, 1, ip, 62201);
        udp(&lab, 1, ip, 7000, b"tcp port over udp");
        udp(&lab, 1, ip, 62202, b"near miss");
        // Watched.
        syn(&lab, 1, ip, 7000);
        syn(&lab, 1, ip, 8010);
        udp(&lab, 1, ip, 62201, b"spa");
    }
    udp(&lab, 1, v4(&lab, 1), 9999, b"end");
    let seen = sn.until(is_end);
    let got: Vec<_> = seen.iter().map(key).collect();
    let mut want = Vec::new();
    for ip in [v4(&lab, 1), v6(&lab, 1)] {
        want.push((ip, Tcp, 7000, vec![]));
        want.push((ip, Tcp, 8010, vec![]));
        want.push((ip, Udp, 62201, b"spa".to_vec()));
    }
    want.push((v4(&lab, 1), Udp, 9999, b"end".to_vec()));
    assert_eq!(got, want, "{seen:#?}");
    for s in &seen {
        assert_eq!(s.iface, lab.server_if(1));
        assert_eq!(s.link, LinkType::Ethernet);
        assert!(s.local && s.local_before, "{s:?}");
        assert!(s.complete);
        let client = match s.dst {
            IpAddr::V4(_) => IpAddr::V4(lab.client_v4(1)),
            IpAddr::V6(_) => IpAddr::V6(lab.client_v6(1)),
        };
        assert_eq!(s.src, client);
        if s.proto == Tcp {
            assert_eq!(s.flags & (bits::SYN | bits::ACK), bits::SYN);
        }
    }
    let stats = sn.finish();
    assert_eq!(stats.len(), 1);
    assert_eq!(&*stats[0].iface, lab.server_if(1));
    assert!(stats[0].received >= 7, "{stats:?}");
    assert_eq!(stats[0].dropped, 0, "{stats:?}");
}

#[test]
fn filter_can_be_replaced_while_capturing() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let ip = v4(&lab, 1);
    let sn = Sniffer::start(
        lab.server(),
        &lab.server_if(1),
        &[Watch::Port(Knock::new(9999, Udp))],
        None,
    )
    .unwrap();
    udp(&lab, 1, ip, 5555, b"a");
    udp(&lab, 1, ip, 9999, b"end");
    let got: Vec<_> = sn.until(is_end).iter().map(key).collect();
    assert_eq!(got, vec![(ip, Udp, 9999, b"end".to_vec())]);
    let f = sn.set_filter(&[
        Watch::Port(Knock::new(5555, Udp)),
        Watch::Port(Knock::new(9999, Udp)),
    ]);
    assert!(f.contains("udp dst port 5555"), "{f}");
    udp(&lab, 1, ip, 5555, b"b");
    udp(&lab, 1, ip, 9999, b"end");
    let got: Vec<_> = sn.until(is_end).iter().map(key).collect();
    assert_eq!(
        got,
        vec![
            (ip, Udp, 5555, b"b".to_vec()),
            (ip, Udp, 9999, b"end".to_vec())
        ]
    );
}

#[test]
fn ipv6_extension_headers_and_fragments() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let sn = Sniffer::start(lab.server(), &lab.server_if(1), &WATCHES, None).unwrap();
    // Hop-by-hop header: BPF `udp dst port` cannot see through it; the ext-header clause passes
    // it and the decoder walks it.
    udp6_hop_by_hop(lab.client(1), lab.server_v6(1), 62201, b"hbh");
    // Too big for the 1500-byte MTU: fragmented. Only the first fragment carries the ports.
    let big = vec![b'f'; 3000];
    udp(&lab, 1, v6(&lab, 1), 62201, &big);
    udp(&lab, 1, v4(&lab, 1), 62201, &big);
    udp(&lab, 1, v4(&lab, 1), 9999, b"end");
    let seen = sn.until(is_end);
    assert_eq!(seen.len(), 4, "{seen:#?}");
    assert_eq!(key(&seen[0]), (v6(&lab, 1), Udp, 62201, b"hbh".to_vec()));
    assert!(seen[0].complete);
    for (s, ip) in seen[1..3].iter().zip([v6(&lab, 1), v4(&lab, 1)]) {
        assert_eq!((s.dst, s.proto, s.dport), (ip, Udp, 62201));
        assert!(!s.complete, "first fragment payload is incomplete: {s:?}");
        assert!(s.payload.len() > 1000 && s.payload.len() < 1500, "{s:?}");
        assert!(s.payload.iter().all(|b| *b == b'f'));
    }
}

#[test]
fn any_and_interface_lists() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(2).unwrap();
    for spec in [
        "any".to_string(),
        format!("{},{}", lab.server_if(1), lab.server_if(2)),
    ] {
        let sn = Sniffer::start(lab.server(), &spec, &WATCHES, None).unwrap();
        syn(&lab, 1, v4(&lab, 1), 7000);
        syn(&lab, 2, v6(&lab, 2), 7000);
        udp(&lab, 2, v4(&lab, 2), 62201, b"two");
        udp(&lab, 1, v6(&lab, 1), 9999, b"end");
        udp(&lab, 2, v6(&lab, 2), 9999, b"end");
        // Order across interfaces is not defined: wait for both markers.
        let mut seen = sn.until(is_end);
        seen.extend(sn.until(is_end));
        let got: Vec<_> = seen.iter().map(|s| (s.iface.clone(), key(s))).collect();
        let iface = |k: usize| {
            if spec == "any" {
                "any".to_string()
            } else {
                lab.server_if(k)
            }
        };
        let mut want = vec![
            (iface(1), (v4(&lab, 1), Tcp, 7000, vec![])),
            (iface(2), (v6(&lab, 2), Tcp, 7000, vec![])),
            (iface(2), (v4(&lab, 2), Udp, 62201, b"two".to_vec())),
            (iface(1), (v6(&lab, 1), Udp, 9999, b"end".to_vec())),
            (iface(2), (v6(&lab, 2), Udp, 9999, b"end".to_vec())),
        ];
        if spec != "any" {
            // Two handles: order across interfaces is not defined.
            let mut g = got.clone();
            g.sort();
            want.sort();
            assert_eq!(g, want, "{spec}: {seen:#?}");
        } else {
            assert_eq!(got, want, "{spec}: {seen:#?}");
        }
        for s in &seen {
            assert!(s.local, "{s:?}");
            if spec == "any" {
                assert!(
                    matches!(s.link, LinkType::LinuxSll | LinkType::LinuxSll2),
                    "{s:?}"
                );
            } else {
                assert_eq!(s.link, LinkType::Ethernet);
            }
        }
        let n = sn.ifaces.len();
        assert_eq!(n, if spec == "any" { 1 } else { 2 });
        let stats = sn.finish();
        assert_eq!(stats.len(), n);
    }
}

#[test]
fn missing_interface_lists_the_existing_ones() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let spec = format!("{},nope0", lab.server_if(1));
    let err = lab
        .server()
        .run_in(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let ifaces = Interfaces::parse(&spec).unwrap();
                LiveCapture::open(&ifaces, &WATCHES, &CaptureConfig::default()).err()
            })
        })
        .unwrap()
        .expect("opening a missing interface fails");
    match &err {
        CaptureError::NoSuchInterface { name, available } => {
            assert_eq!(name, "nope0");
            let mut want = vec!["lo".to_string(), lab.server_if(1)];
            want.sort();
            assert_eq!(available, &want);
        }
        other => panic!("unexpected error {other}"),
    }
    assert_eq!(
        err.to_string(),
        format!("no such interface \"nope0\" (available: {}, any)", {
            let mut v = ["lo".to_string(), lab.server_if(1)];
            v.sort();
            v.join(", ")
        })
    );
}

#[test]
fn interface_removed_while_capturing_is_an_error() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let sn = Sniffer::start(lab.server(), &lab.server_if(1), &WATCHES, None).unwrap();
    udp(&lab, 1, v4(&lab, 1), 9999, b"end");
    sn.until(is_end);
    lab.server()
        .run(&["ip", "link", "del", &lab.server_if(1)])
        .unwrap();
    let e = sn
        .failure(Duration::from_secs(5))
        .expect("the capture reports the vanished interface");
    assert!(
        e.starts_with(&format!("{}: capture failed:", lab.server_if(1))),
        "{e}"
    );
}

/// The MAC address of `iface` in `ns`.
fn mac(ns: &Ns, iface: &str) -> String {
    let out = ns
        .run_stdout(&["cat", &format!("/sys/class/net/{iface}/address")])
        .unwrap();
    out.trim().to_string()
}

#[test]
fn addresses_added_after_start_are_local() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let sif = lab.server_if(1);
    let smac = mac(lab.server(), &sif);
    let new4: Ipv4Addr = "198.18.1.77".parse().unwrap();
    let new6: Ipv6Addr = "2001:2:0:1::77".parse().unwrap();
    let later4: Ipv4Addr = "198.18.1.78".parse().unwrap();
    // Static neighbour entries so the client sends to the addresses before they exist.
    for ip in [new4.to_string(), new6.to_string(), later4.to_string()] {
        lab.client(1)
            .run(&[
                "ip",
                "neigh",
                "replace",
                &ip,
                "lladdr",
                &smac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ])
            .unwrap();
    }
    // No periodic refresh: only the on-demand one can notice.
    let sn = Sniffer::start(lab.server(), &sif, &WATCHES, None).unwrap();
    udp(&lab, 1, new4.into(), 62201, b"before4");
    udp(&lab, 1, new6.into(), 62201, b"before6");
    udp(&lab, 1, v4(&lab, 1), 9999, b"end");
    let seen = sn.until(is_end);
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert!(!seen[0].local && !seen[1].local, "{seen:#?}");
    // Each address is added just before its packet, past the on-demand rate limit.
    std::thread::sleep(Duration::from_millis(300));
    lab.server()
        .run(&["ip", "addr", "add", &format!("{new4}/32"), "dev", &sif])
        .unwrap();
    udp(&lab, 1, new4.into(), 62201, b"after4");
    std::thread::sleep(Duration::from_millis(300));
    lab.server()
        .run(&[
            "ip",
            "addr",
            "add",
            &format!("{new6}/128"),
            "dev",
            &sif,
            "nodad",
        ])
        .unwrap();
    udp(&lab, 1, new6.into(), 62201, b"after6");
    udp(&lab, 1, v4(&lab, 1), 9999, b"end");
    let seen = sn.until(is_end);
    assert_eq!(seen.len(), 3, "{seen:#?}");
    for s in &seen[..2] {
        assert!(!s.local_before && s.local, "{s:?}");
    }
    drop(sn);

    // With the periodic refresher, a new address is known before any packet asks.
    let sn = Sniffer::start(
        lab.server(),
        &sif,
        &WATCHES,
        Some(Duration::from_millis(200)),
    )
    .unwrap();
    lab.server()
        .run(&["ip", "addr", "add", &format!("{later4}/32"), "dev", &sif])
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    udp(&lab, 1, later4.into(), 9999, b"end");
    let seen = sn.until(is_end);
    assert!(seen[0].local_before && seen[0].local, "{seen:#?}");
    // And a removed one is forgotten.
    lab.server()
        .run(&["ip", "addr", "del", &format!("{later4}/32"), "dev", &sif])
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    udp(&lab, 1, later4.into(), 9999, b"end");
    let seen = sn.until(is_end);
    assert!(!seen[0].local_before && !seen[0].local, "{seen:#?}");
}

/// Runs tcpdump in the server namespace while `traffic` runs; returns the file.
fn tcpdump(lab: &Lab, args: &[&str], file: &str, traffic: impl FnOnce()) -> std::path::PathBuf {
    let path = lab.path(file);
    let p = path.to_str().unwrap().to_string();
    // Immediate mode (no TPACKET_V3 block latency), a small snap length so the ring has many
    // frames (immediate mode uses fixed-size frames sized by the snap length), a 8 MB buffer.
    let mut cmd = vec![
        "tcpdump",
        "-n",
        "-U",
        "--immediate-mode",
        "-s",
        "2048",
        "-B",
        "8192",
        "-Z",
        "root",
        "-w",
        &p,
    ];
    cmd.extend_from_slice(args);
    let mut td = lab.server().spawn(&cmd).unwrap();
    td.wait_for_line("listening on", T).unwrap();
    traffic();
    // Let tcpdump write the last packets, then stop it (it flushes on SIGTERM).
    std::thread::sleep(Duration::from_millis(500));
    td.signal(libc::SIGTERM).unwrap();
    td.wait_timeout(T).unwrap().expect("tcpdump exits");
    let log = td.log();
    assert!(log.contains("\n0 packets dropped by kernel"), "{log}");
    path
}

fn file_packets(path: &std::path::Path, watches: &[Watch]) -> (LinkType, Vec<Seen>) {
    let fc = FileCapture::open(path, watches, false).unwrap();
    assert!(fc.filtered());
    let link = fc.link();
    let mut out = Vec::new();
    for f in fc {
        let f = f.unwrap();
        assert_eq!(f.link, link);
        match f.decode() {
            Ok(p) => out.push(Seen {
                iface: f.iface.to_string(),
                link: f.link,
                src: p.src,
                dst: p.dst,
                proto: p.proto,
                dport: p.dst_port,
                flags: p.tcp_flags,
                payload: p.payload.to_vec(),
                complete: p.payload_complete,
                local_before: false,
                local: false,
            }),
            Err(e) if e.is_not_knock() => {}
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
    (link, out)
}

#[test]
fn pcap_files_written_by_tcpdump_decode() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let traffic = || {
        for ip in [v4(&lab, 1), v6(&lab, 1)] {
            syn(&lab, 1, ip, 7001);
            syn(&lab, 1, ip, 8000);
            udp(&lab, 1, ip, 62201, b"spa");
            udp(&lab, 1, ip, 5353, b"unwatched");
        }
    };
    let sif = lab.server_if(1);
    let cases: [(&[&str], &str, &[LinkType]); 3] = [
        (&["-i", &sif], "eth.pcap", &[LinkType::Ethernet]),
        (
            &["-i", "any"],
            "any.pcap",
            &[LinkType::LinuxSll, LinkType::LinuxSll2],
        ),
        (
            &["-i", "any", "-y", "LINUX_SLL2"],
            "sll2.pcap",
            &[LinkType::LinuxSll2],
        ),
    ];
    for (args, file, links) in cases {
        let path = tcpdump(&lab, args, file, traffic);
        let (link, seen) = file_packets(&path, &WATCHES);
        assert!(links.contains(&link), "{file}: {link}");
        // Incoming packets only: tcpdump also recorded the server's replies (RSTs).
        let incoming: Vec<_> = seen
            .iter()
            .filter(|s| {
                s.src == IpAddr::V4(lab.client_v4(1)) || s.src == IpAddr::V6(lab.client_v6(1))
            })
            .map(key)
            .collect();
        let mut want = Vec::new();
        for ip in [v4(&lab, 1), v6(&lab, 1)] {
            want.push((ip, Tcp, 8000, vec![]));
            want.push((ip, Udp, 62201, b"spa".to_vec()));
        }
        assert_eq!(incoming, want, "{file}: {seen:#?}");
        // The same file without a filter for the other ports: everything decodes.
        let (_, all) = file_packets(
            &path,
            &[
                Watch::Range {
                    proto: Tcp,
                    lo: 0,
                    hi: 65535,
                },
                Watch::Range {
                    proto: Udp,
                    lo: 0,
                    hi: 65535,
                },
            ],
        );
        assert!(all.iter().any(|s| s.dport == 5353), "{file}: {all:#?}");
        assert!(all.iter().any(|s| s.dport == 7001), "{file}: {all:#?}");
    }
}

/// Creates tun device `name` inside `ns` (IFF_TUN | IFF_NO_PI); it lives as long as the file.
fn open_tun(ns: &Ns, name: &str) -> std::fs::File {
    let name = name.to_string();
    ns.run_in(move || -> std::io::Result<std::fs::File> {
        use std::os::fd::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")?;
        #[repr(C)]
        struct IfReq {
            name: [u8; 16],
            flags: libc::c_short,
            pad: [u8; 22],
        }
        let mut req = IfReq {
            name: [0; 16],
            flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
            pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF takes a pointer to a struct ifreq, which IfReq lays out.
        let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(f)
    })
    .unwrap()
    .unwrap()
}

/// IPv4 header checksum.
fn csum(h: &[u8]) -> u16 {
    let mut s: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn raw_l4(proto: Protocol, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = 40000u16.to_be_bytes().to_vec();
    v.extend_from_slice(&dport.to_be_bytes());
    match proto {
        Udp => {
            v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
            v.extend_from_slice(&[0, 0]);
        }
        Tcp => v.extend_from_slice(&[
            0,
            0,
            0,
            1,
            0,
            0,
            0,
            0,
            0x50,
            bits::SYN,
            0xff,
            0xff,
            0,
            0,
            0,
            0,
        ]),
    }
    v.extend_from_slice(payload);
    v
}

fn raw_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: Protocol, dport: u16, payload: &[u8]) -> Vec<u8> {
    let l4 = raw_l4(proto, dport, payload);
    let mut v = vec![0x45, 0];
    v.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 1, 0x40, 0, 64, proto.ip_number(), 0, 0]);
    v.extend_from_slice(&src.octets());
    v.extend_from_slice(&dst.octets());
    let c = csum(&v);
    v[10..12].copy_from_slice(&c.to_be_bytes());
    v.extend(l4);
    v
}

fn raw_v6(src: Ipv6Addr, dst: Ipv6Addr, proto: Protocol, dport: u16, payload: &[u8]) -> Vec<u8> {
    let l4 = raw_l4(proto, dport, payload);
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    v.extend_from_slice(&[proto.ip_number(), 64]);
    v.extend_from_slice(&src.octets());
    v.extend_from_slice(&dst.octets());
    v.extend(l4);
    v
}

#[test]
fn tun_device_raw_ip() {
    if !require_root() {
        return;
    }
    use std::io::Write;
    let lab = Lab::new(0).unwrap();
    let mut tun = open_tun(lab.server(), "ktun0");
    let (l4, p4): (Ipv4Addr, Ipv4Addr) = (
        "198.18.200.1".parse().unwrap(),
        "198.18.200.2".parse().unwrap(),
    );
    let (l6, p6): (Ipv6Addr, Ipv6Addr) = (
        "2001:2:0:200::1".parse().unwrap(),
        "2001:2:0:200::2".parse().unwrap(),
    );
    for args in [
        vec!["ip", "addr", "add", "198.18.200.1/24", "dev", "ktun0"],
        vec![
            "ip",
            "addr",
            "add",
            "2001:2:0:200::1/64",
            "dev",
            "ktun0",
            "nodad",
        ],
        vec!["ip", "link", "set", "ktun0", "up"],
    ] {
        lab.server().run(&args).unwrap();
    }
    let sn = Sniffer::start(lab.server(), "ktun0", &WATCHES, None).unwrap();
    assert_eq!(sn.ifaces[0].link, LinkType::Raw);
    // Written to the tun fd = received by the kernel on ktun0.
    for pkt in [
        raw_v4(p4, l4, Udp, 5555, b"unwatched"),
        raw_v4(p4, l4, Udp, 62201, b"spa4"),
        raw_v6(p6, l6, Tcp, 7000, b""),
        raw_v6(p6, l6, Udp, 62201, b"spa6"),
        raw_v4(p4, l4, Udp, 9999, b"end"),
    ] {
        tun.write_all(&pkt).unwrap();
    }
    let seen = sn.until(is_end);
    let got: Vec<_> = seen.iter().map(key).collect();
    assert_eq!(
        got,
        vec![
            (l4.into(), Udp, 62201, b"spa4".to_vec()),
            (l6.into(), Tcp, 7000, vec![]),
            (l6.into(), Udp, 62201, b"spa6".to_vec()),
            (l4.into(), Udp, 9999, b"end".to_vec()),
        ]
    );
    for s in &seen {
        assert_eq!(s.link, LinkType::Raw);
        assert!(s.local, "{s:?}");
    }
}
