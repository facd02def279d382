//! End-to-end tests of the `knock` binary on the wire (Linux, root).
//!
//! Each test builds a throw-away lab (netns-testkit): `knock` runs in client namespace 1
//! (198.18.1.2, 2001:2:0:1::2) and knocks on the server namespace (198.18.1.1, 2001:2:0:1::1),
//! where tcpdump records every TCP/UDP packet the client sends; the pcap is parsed here. Names
//! are answered by a tiny DNS responder on 127.0.0.1:53 inside the client namespace (pointed to
//! by `/etc/netns/<client>/resolv.conf`, which `ip netns exec` mounts over /etc/resolv.conf), so
//! no query ever leaves the lab and the number of lookups can be counted.
//!
//! Some tests also run the classic client, `/usr/bin/knock` (Debian package `knockd`), to compare.
//!
//! Needs root, `ip` (iproute2), `tcpdump` and `/usr/bin/knock`. Not root: the tests fail, unless
//! KNOCK_SKIP_ROOT_TESTS=1.
#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::fs::{self, File};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use netns_testkit::{ChildGuard, Lab, Ns, require_root, wait_for_file_line};

const KNOCK: &str = env!("CARGO_BIN_EXE_knock");
const CLASSIC: &str = "/usr/bin/knock";

// ---------------------------------------------------------------------------------------------
// Packets

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L4 {
    Tcp,
    Udp,
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// A TCP/UDP packet seen on the server's link.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pkt {
    t: Duration,
    src: IpAddr,
    dst: IpAddr,
    l4: L4,
    dport: u16,
    flags: u8,
    payload: Vec<u8>,
}

impl Pkt {
    /// `tcp 198.18.1.1:7000 S` / `udp [2001:2:0:1::1]:8000 00`: what a knock detector sees
    /// (source port and sequence numbers left out).
    fn shape(&self) -> String {
        let dst = match self.dst {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        match self.l4 {
            L4::Tcp => {
                let mut f = String::new();
                for (bit, c) in [(FIN, 'F'), (SYN, 'S'), (RST, 'R'), (0x08, 'P'), (ACK, '.')] {
                    if self.flags & bit != 0 {
                        f.push(c);
                    }
                }
                let data = if self.payload.is_empty() {
                    String::new()
                } else {
                    format!(" data={}", hex(&self.payload))
                };
                format!("tcp {dst}:{} {f}{data}", self.dport)
            }
            L4::Udp => format!("udp {dst}:{} {}", self.dport, hex(&self.payload)),
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn shapes(p: &[Pkt]) -> Vec<String> {
    p.iter().map(Pkt::shape).collect()
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// Parses a pcap file (Ethernet link type) into the TCP/UDP packets it holds.
fn parse_pcap(data: &[u8]) -> Vec<Pkt> {
    assert!(data.len() >= 24, "pcap of {} bytes: no header", data.len());
    let magic = [data[0], data[1], data[2], data[3]];
    let (le, nano) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        m => panic!("not a pcap file (magic {m:02x?})"),
    };
    let rd32 = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    assert_eq!(rd32(&data[20..24]), 1, "link type is not Ethernet");
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let sec = rd32(&data[off..]);
        let frac = rd32(&data[off + 4..]);
        let incl = rd32(&data[off + 8..]) as usize;
        let Some(frame) = data.get(off + 16..off + 16 + incl) else {
            break; // truncated last record
        };
        off += 16 + incl;
        let t = Duration::new(sec.into(), if nano { frac } else { frac * 1000 });
        if let Some(p) = parse_frame(frame, t) {
            out.push(p);
        }
    }
    out
}

fn parse_frame(f: &[u8], t: Duration) -> Option<Pkt> {
    let ip = f.get(14..)?;
    let (src, dst, proto, l4): (IpAddr, IpAddr, u8, &[u8]) = match be16(f.get(12..14)?) {
        0x0800 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(be16(&ip[2..]));
            let s: [u8; 4] = ip[12..16].try_into().ok()?;
            let d: [u8; 4] = ip[16..20].try_into().ok()?;
            (s.into(), d.into(), ip[9], ip.get(ihl..total)?)
        }
        0x86dd => {
            let plen = usize::from(be16(&ip[4..]));
            let s: [u8; 16] = ip[8..24].try_into().ok()?;
            let d: [u8; 16] = ip[24..40].try_into().ok()?;
            (s.into(), d.into(), ip[6], ip.get(40..40 + plen)?)
        }
        _ => return None,
    };
    let (l4k, flags, payload) = match proto {
        6 => {
            let doff = usize::from(l4[12] >> 4) * 4;
            (L4::Tcp, l4[13], l4.get(doff..)?.to_vec())
        }
        17 => {
            let len = usize::from(be16(&l4[4..]));
            (L4::Udp, 0, l4.get(8..len)?.to_vec())
        }
        _ => return None,
    };
    Some(Pkt {
        t,
        src,
        dst,
        l4: l4k,
        dport: be16(&l4[2..]),
        flags,
        payload,
    })
}

// ---------------------------------------------------------------------------------------------
// Capture with tcpdump in the server namespace

/// tcpdump on the server side of client `k`'s link, recording TCP/UDP packets not sent by the
/// server itself (so: what the client sends).
struct Capture {
    guard: ChildGuard,
    pcap: PathBuf,
}

impl Capture {
    fn start(lab: &Lab, k: usize, tag: &str) -> Capture {
        let pcap = lab.path(&format!("{tag}.pcap"));
        let log = lab.path(&format!("{tag}.tcpdump.log"));
        let filter = format!(
            "(tcp or udp) and not src host {} and not src host {}",
            lab.server_v4(k),
            lab.server_v6(k)
        );
        let mut cmd = lab.server().cmd("tcpdump");
        cmd.args([
            "-i",
            &lab.server_if(k),
            "-n",
            "-U",
            "--immediate-mode",
            "-w",
            "-",
        ])
        .arg(&filter)
        .stdin(Stdio::null())
        .stdout(File::create(&pcap).unwrap())
        .stderr(File::create(&log).unwrap());
        let guard = lab.server().spawn_cmd(cmd).unwrap();
        wait_for_file_line(&log, "listening on", Duration::from_secs(10)).unwrap();
        Capture { guard, pcap }
    }

    /// Waits for stragglers, stops tcpdump and returns what it saw.
    fn stop(mut self) -> Vec<Pkt> {
        std::thread::sleep(Duration::from_millis(300));
        let st = self.guard.stop(Duration::from_secs(5)).unwrap();
        assert!(st.success() || st.code().is_none(), "tcpdump: {st}");
        parse_pcap(&fs::read(&self.pcap).unwrap())
    }
}

// ---------------------------------------------------------------------------------------------
// Name resolution inside the lab: /etc/netns/<ns>/resolv.conf + a DNS responder on 127.0.0.1

/// `/etc/netns/<ns>/resolv.conf` pointing at 127.0.0.1 (removed on drop).
struct EtcNetns(PathBuf);

impl EtcNetns {
    fn new(ns: &Ns) -> EtcNetns {
        let dir = PathBuf::from("/etc/netns").join(ns.name());
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("resolv.conf"),
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        )
        .unwrap();
        EtcNetns(dir)
    }
}

impl Drop for EtcNetns {
    fn drop(&mut self) {
        // /etc/netns itself stays: another lab may be creating its own entry in it.
        let _ = fs::remove_dir_all(&self.0);
    }
}

type Zone = HashMap<&'static str, Vec<IpAddr>>;

/// A DNS responder on 127.0.0.1:53 inside a namespace: answers A/AAAA from `zone`, NXDOMAIN
/// for other names, and logs every question.
struct Dns {
    queries: Arc<Mutex<Vec<(String, u16)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    _etc: EtcNetns,
}

impl Dns {
    fn start(ns: &Ns, zone: Zone) -> Dns {
        let etc = EtcNetns::new(ns);
        let sock = ns
            .run_in(|| UdpSocket::bind("127.0.0.1:53"))
            .unwrap()
            .unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (queries.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if let Some((name, qtype, reply)) = dns_answer(&buf[..n], &zone) {
                    q.lock().unwrap().push((name, qtype));
                    let _ = sock.send_to(&reply, peer);
                }
            }
        });
        Dns {
            queries,
            stop,
            thread: Some(thread),
            _etc: etc,
        }
    }

    /// Questions asked about `name` so far.
    fn count(&self, name: &str) -> usize {
        self.queries
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| n == name)
            .count()
    }

    fn reset(&self) {
        self.queries.lock().unwrap().clear();
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Builds the answer to one query: (name, qtype, reply datagram).
fn dns_answer(q: &[u8], zone: &Zone) -> Option<(String, u16, Vec<u8>)> {
    if q.len() < 12 || be16(&q[4..]) != 1 {
        return None;
    }
    let mut labels = Vec::new();
    let mut i = 12;
    loop {
        let len = usize::from(*q.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_lowercase());
        i += len;
    }
    let qtype = be16(q.get(i..i + 2)?);
    let question = &q[12..i + 4];
    let name = labels.join(".");
    let addrs = zone.get(name.as_str());
    let answers: Vec<&IpAddr> = addrs
        .map(|v| {
            v.iter()
                .filter(|a| (qtype == 1 && a.is_ipv4()) || (qtype == 28 && a.is_ipv6()))
                .collect()
        })
        .unwrap_or_default();
    let rcode = if addrs.is_some() { 0 } else { 3 };
    let mut r = Vec::new();
    r.extend_from_slice(&q[0..2]); // id
    r.extend_from_slice(&[0x81, 0x80 | rcode]); // QR RD RA, rcode
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(question);
    for a in answers {
        r.extend_from_slice(&[0xc0, 0x0c]);
        r.extend_from_slice(&qtype.to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, 0, 0, 0]); // class IN, ttl 0
        match a {
            IpAddr::V4(v) => {
                r.extend_from_slice(&[0, 4]);
                r.extend_from_slice(&v.octets());
            }
            IpAddr::V6(v) => {
                r.extend_from_slice(&[0, 16]);
                r.extend_from_slice(&v.octets());
            }
        }
    }
    Some((name, qtype, r))
}

/// The lab's standard zone: `dual.test` (both families), `v4.test`, `v6.test`, and
/// `broken6.test` whose IPv6 address is off-link.
fn zone(lab: &Lab) -> Zone {
    let s4: IpAddr = lab.server_v4(1).into();
    let s6: IpAddr = lab.server_v6(1).into();
    let off6: IpAddr = "2001:2:0:99::1".parse::<Ipv6Addr>().unwrap().into();
    HashMap::from([
        ("dual.test", vec![s4, s6]),
        ("v4.test", vec![s4]),
        ("v6.test", vec![s6]),
        ("broken6.test", vec![s4, off6]),
    ])
}

// ---------------------------------------------------------------------------------------------
// Running the clients

struct Run {
    ok: bool,
    code: Option<i32>,
    out: String,
    err: String,
    elapsed: Duration,
}

fn run(lab: &Lab, program: &str, args: &[&str]) -> Run {
    let mut argv = vec![program];
    argv.extend_from_slice(args);
    let t0 = Instant::now();
    let o: Output = lab.client(1).output(&argv).unwrap();
    Run {
        ok: o.status.success(),
        code: o.status.code(),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
        elapsed: t0.elapsed(),
    }
}

fn knock(lab: &Lab, args: &[&str]) -> Run {
    run(lab, KNOCK, args)
}

fn classic(lab: &Lab, args: &[&str]) -> Run {
    assert!(
        std::path::Path::new(CLASSIC).exists(),
        "{CLASSIC} missing: install the Debian package knockd (the reference client)"
    );
    run(lab, CLASSIC, args)
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn tcp_hits_are_single_syns_in_order() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let s = lab.server_v4(1).to_string();
    let cap = Capture::start(&lab, 1, "tcp");
    let r = knock(&lab, &["-v", &s, "7000", "8000", "9000:tcp", "7000"]);
    let pkts = cap.stop();
    assert!(r.ok, "{}", r.err);
    assert_eq!(
        lines(&r.out),
        [
            "hitting tcp 198.18.1.1:7000",
            "hitting tcp 198.18.1.1:8000",
            "hitting tcp 198.18.1.1:9000",
            "hitting tcp 198.18.1.1:7000"
        ]
    );
    assert_eq!(r.err, "");
    assert_eq!(
        shapes(&pkts),
        [
            "tcp 198.18.1.1:7000 S",
            "tcp 198.18.1.1:8000 S",
            "tcp 198.18.1.1:9000 S",
            "tcp 198.18.1.1:7000 S"
        ]
    );
    for p in &pkts {
        assert_eq!(p.src, IpAddr::from(lab.client_v4(1)));
    }
}

#[test]
fn udp_hits_are_one_zero_byte_each() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let s = lab.server_v4(1).to_string();
    let cap = Capture::start(&lab, 1, "udp");
    let a = knock(
        &lab,
        &["-v", &s, "7000:udp", "8000:UDP", "9000", "10000:Udp"],
    );
    // -u makes every hit UDP, even an explicit :tcp, as the classic client does; we warn.
    let b = knock(&lab, &["-u", &s, "11000", "12000:tcp", "13000:udp"]);
    let c = classic(&lab, &["-u", &s, "11000", "12000:tcp", "13000:udp"]);
    let pkts = cap.stop();
    assert!(a.ok && b.ok && c.ok, "{}{}{}", a.err, b.err, c.err);
    assert_eq!(
        b.err,
        "knock: warning: -u/--udp sends every hit over UDP, as the classic knock does: \
         12000:tcp is sent over UDP\n"
    );
    assert_eq!(
        lines(&a.out),
        [
            "hitting udp 198.18.1.1:7000",
            "hitting udp 198.18.1.1:8000",
            "hitting tcp 198.18.1.1:9000",
            "hitting udp 198.18.1.1:10000"
        ]
    );
    assert_eq!(b.out, "", "no output without -v");
    assert_eq!(
        shapes(&pkts),
        [
            "udp 198.18.1.1:7000 00",
            "udp 198.18.1.1:8000 00",
            "tcp 198.18.1.1:9000 S",
            "udp 198.18.1.1:10000 00",
            "udp 198.18.1.1:11000 00",
            "udp 198.18.1.1:12000 00",
            "udp 198.18.1.1:13000 00",
            // the classic client
            "udp 198.18.1.1:11000 00",
            "udp 198.18.1.1:12000 00",
            "udp 198.18.1.1:13000 00"
        ]
    );
}

#[test]
fn ipv6_hits() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let s6 = lab.server_v6(1).to_string();
    let bracketed = format!("[{s6}]");
    let cap = Capture::start(&lab, 1, "v6");
    let r = knock(&lab, &["-v", &s6, "7000", "8000:udp", "ssh"]);
    let r2 = knock(&lab, &["-6", &bracketed, "9000"]);
    let pkts = cap.stop();
    assert!(r.ok && r2.ok, "{}{}", r.err, r2.err);
    // Same format as the classic client: IPv6 without brackets.
    assert_eq!(
        lines(&r.out),
        [
            "hitting tcp 2001:2:0:1::1:7000",
            "hitting udp 2001:2:0:1::1:8000",
            "hitting tcp 2001:2:0:1::1:22"
        ]
    );
    assert_eq!(
        shapes(&pkts),
        [
            "tcp [2001:2:0:1::1]:7000 S",
            "udp [2001:2:0:1::1]:8000 00",
            "tcp [2001:2:0:1::1]:22 S",
            "tcp [2001:2:0:1::1]:9000 S"
        ]
    );
    assert!(pkts.iter().all(|p| p.src == IpAddr::from(lab.client_v6(1))));
}

#[test]
fn open_port_gets_a_syn_and_no_data() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let svc = lab.server().tcp_service(0).unwrap();
    let port = svc.port().to_string();
    let s = lab.server_v4(1).to_string();
    let cap = Capture::start(&lab, 1, "open");
    let r = knock(&lab, &[&s, &port, "7000"]);
    let pkts = cap.stop();
    assert!(r.ok, "{}", r.err);
    // On a veth the SYN-ACK can arrive before the close: then the kernel ACKs it and our close
    // (SO_LINGER 0) is a RST. Never data, never a FIN, exactly one SYN.
    let to_open: Vec<&Pkt> = pkts.iter().filter(|p| p.dport == svc.port()).collect();
    assert_eq!(
        to_open.iter().filter(|p| p.flags & SYN != 0).count(),
        1,
        "{:?}",
        shapes(&pkts)
    );
    assert_eq!(to_open[0].flags, SYN, "{:?}", shapes(&pkts));
    for p in &to_open {
        assert!(p.payload.is_empty(), "data sent: {}", p.shape());
        assert_eq!(p.flags & FIN, 0, "FIN sent: {}", p.shape());
        assert!(
            p.flags == SYN || p.flags & (ACK | RST) != 0,
            "unexpected {}",
            p.shape()
        );
    }
    assert_eq!(
        pkts.last().map(Pkt::shape).as_deref(),
        Some("tcp 198.18.1.1:7000 S")
    );
}

#[test]
fn same_packets_as_the_classic_client() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let s4 = lab.server_v4(1).to_string();
    let s6 = lab.server_v6(1).to_string();
    for (host, args) in [
        (&s4, &["7000", "8000:udp", "9000", "ssh", "ssh:udp"][..]),
        (&s6, &["7000", "8000:udp", "9000"][..]),
    ] {
        let mut ours = vec!["-v", host.as_str()];
        ours.extend_from_slice(args);
        let cap = Capture::start(&lab, 1, "ours");
        let a = knock(&lab, &ours);
        let pa = cap.stop();
        let cap = Capture::start(&lab, 1, "classic");
        let b = classic(&lab, &ours);
        let pb = cap.stop();
        assert!(a.ok && b.ok, "{}{}", a.err, b.err);
        assert_eq!(shapes(&pa), shapes(&pb), "{host} {args:?}");
        assert_eq!(pa.len(), args.len());
        if !args.contains(&"ssh") {
            // The classic client prints service names as given; we print the port number.
            assert_eq!(a.out, b.out);
        }
    }
}

#[test]
fn uppercase_udp_suffix_is_udp_unlike_the_classic_client() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let s = lab.server_v4(1).to_string();
    let cap = Capture::start(&lab, 1, "upper");
    assert!(knock(&lab, &[&s, "7000:UDP"]).ok);
    assert!(classic(&lab, &[&s, "7000:UDP"]).ok);
    let pkts = cap.stop();
    assert_eq!(
        shapes(&pkts),
        ["udp 198.18.1.1:7000 00", "tcp 198.18.1.1:7000 S"]
    );
}

#[test]
fn host_is_resolved_once() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let dns = Dns::start(lab.client(1), zone(&lab));
    let ports = ["7000", "8000", "9000", "10000"];
    let mut args = vec!["v4.test"];
    args.extend_from_slice(&ports);

    let cap = Capture::start(&lab, 1, "once");
    let r = knock(&lab, &args);
    let ours = dns.count("v4.test");
    dns.reset();
    let c = classic(&lab, &args);
    let theirs = dns.count("v4.test");
    let pkts = cap.stop();
    assert!(r.ok && c.ok, "{}{}", r.err, c.err);
    eprintln!("DNS questions for v4.test: ours {ours}, classic {theirs}");
    assert_eq!(pkts.len(), 2 * ports.len());
    // One getaddrinfo asks A and AAAA: at most 2 questions for the whole run; the classic
    // client resolves again for every port.
    assert!((1..=2).contains(&ours), "{ours} DNS questions");
    assert_eq!(
        theirs,
        ours * ports.len(),
        "classic client: {theirs} questions"
    );
}

#[test]
fn families_default_forced_and_both() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let _dns = Dns::start(lab.client(1), zone(&lab));
    let s4 = "198.18.1.1";
    let s6 = "2001:2:0:1::1";

    // Default: the resolver's first address, the same one the classic client picks.
    let a = knock(&lab, &["-v", "dual.test", "7000"]);
    let b = classic(&lab, &["-v", "dual.test", "7000"]);
    assert!(a.ok && b.ok, "{}{}", a.err, b.err);
    assert_eq!(a.out, b.out);
    assert_eq!(
        a.out,
        format!("hitting tcp {s6}:7000\n"),
        "RFC 6724 prefers IPv6 here"
    );

    assert_eq!(
        knock(&lab, &["-v", "-4", "dual.test", "1"]).out,
        format!("hitting tcp {s4}:1\n")
    );
    assert_eq!(
        knock(&lab, &["-v", "-6", "dual.test", "1"]).out,
        format!("hitting tcp {s6}:1\n")
    );

    let cap = Capture::start(&lab, 1, "both");
    let r = knock(
        &lab,
        &["-v", "--both", "dual.test", "7000", "8000:udp", "9000"],
    );
    let single = knock(&lab, &["--both", "v4.test", "7100"]);
    let pkts = cap.stop();
    assert!(r.ok && single.ok, "{}{}", r.err, single.err);
    // Port by port, each port over both families (resolver order: IPv6 first).
    assert_eq!(
        lines(&r.out),
        [
            "hitting tcp 2001:2:0:1::1:7000",
            "hitting tcp 198.18.1.1:7000",
            "hitting udp 2001:2:0:1::1:8000",
            "hitting udp 198.18.1.1:8000",
            "hitting tcp 2001:2:0:1::1:9000",
            "hitting tcp 198.18.1.1:9000"
        ]
    );
    let v4: Vec<String> = pkts
        .iter()
        .filter(|p| p.dst.is_ipv4())
        .map(Pkt::shape)
        .collect();
    let v6: Vec<String> = pkts
        .iter()
        .filter(|p| p.dst.is_ipv6())
        .map(Pkt::shape)
        .collect();
    assert_eq!(
        v4,
        [
            "tcp 198.18.1.1:7000 S",
            "udp 198.18.1.1:8000 00",
            "tcp 198.18.1.1:9000 S",
            "tcp 198.18.1.1:7100 S"
        ]
    );
    assert_eq!(
        v6,
        [
            "tcp [2001:2:0:1::1]:7000 S",
            "udp [2001:2:0:1::1]:8000 00",
            "tcp [2001:2:0:1::1]:9000 S"
        ]
    );
}

#[test]
fn both_goes_on_when_one_family_is_unreachable() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let _dns = Dns::start(lab.client(1), zone(&lab));
    // broken6.test's IPv6 address is off-link; without a default route it is unreachable.
    lab.client(1)
        .run(&["ip", "-6", "route", "del", "default"])
        .unwrap();
    let cap = Capture::start(&lab, 1, "broken6");
    let r = knock(&lab, &["--both", "broken6.test", "7000", "8000"]);
    let only6 = knock(&lab, &["-6", "broken6.test", "7000"]);
    let pkts = cap.stop();
    assert!(r.ok, "--both must succeed over IPv4: {}", r.err);
    assert!(
        r.err.contains(
            "cannot hit tcp port 7000 on 2001:2:0:99::1: connect: Network is unreachable"
        ),
        "{}",
        r.err
    );
    assert!(
        r.err.contains("giving up on 2001:2:0:99::1 (IPv6)"),
        "{}",
        r.err
    );
    assert_eq!(
        shapes(&pkts),
        ["tcp 198.18.1.1:7000 S", "tcp 198.18.1.1:8000 S"]
    );
    assert_eq!(only6.code, Some(1));
    assert!(
        only6.err.contains("Network is unreachable"),
        "{}",
        only6.err
    );
}

#[test]
fn delay_between_hits_and_not_after_the_last() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let s = lab.server_v4(1).to_string();
    let cap = Capture::start(&lab, 1, "delay");
    let r = knock(&lab, &["-d", "600", &s, "7000", "8000:udp", "9000"]);
    let pkts = cap.stop();
    assert!(r.ok, "{}", r.err);
    assert_eq!(pkts.len(), 3, "{:?}", shapes(&pkts));
    for w in pkts.windows(2) {
        let gap = w[1].t.saturating_sub(w[0].t);
        assert!(gap >= Duration::from_millis(590), "gap {gap:?}");
        assert!(gap < Duration::from_millis(950), "gap {gap:?}");
    }
    // Two delays (1.2 s), not three (1.8 s, what the classic client takes); the margin is for
    // process start-up on a loaded machine.
    assert!(r.elapsed >= Duration::from_millis(1200), "{:?}", r.elapsed);
    assert!(r.elapsed < Duration::from_millis(1750), "{:?}", r.elapsed);
}

#[test]
fn source_address_and_interface() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let c = lab.client(1);
    c.run(&["ip", "addr", "add", "198.18.1.3/24", "dev", "eth0"])
        .unwrap();
    c.run(&[
        "ip",
        "addr",
        "add",
        "2001:2:0:1::3/64",
        "dev",
        "eth0",
        "nodad",
    ])
    .unwrap();
    let s4 = lab.server_v4(1).to_string();
    let s6 = lab.server_v6(1).to_string();
    let cap = Capture::start(&lab, 1, "bind");
    let runs = [
        knock(&lab, &["-b", "198.18.1.3", &s4, "7000", "7001:udp"]),
        knock(&lab, &["--source", "2001:2:0:1::3", &s6, "7002"]),
        knock(&lab, &["-i", "eth0", &s4, "7003"]),
        // Bound to lo, the SYN never reaches the server.
        knock(&lab, &["-i", "lo", &s4, "7004"]),
    ];
    let pkts = cap.stop();
    for r in &runs {
        assert!(r.ok, "{}", r.err);
    }
    let got: Vec<(String, IpAddr)> = pkts.iter().map(|p| (p.shape(), p.src)).collect();
    let c4: IpAddr = lab.client_v4(1).into();
    assert_eq!(
        got,
        [
            (
                "tcp 198.18.1.1:7000 S".to_string(),
                IpAddr::from(Ipv4Addr::new(198, 18, 1, 3))
            ),
            (
                "udp 198.18.1.1:7001 00".to_string(),
                IpAddr::from(Ipv4Addr::new(198, 18, 1, 3))
            ),
            (
                "tcp [2001:2:0:1::1]:7002 S".to_string(),
                "2001:2:0:1::3".parse::<IpAddr>().unwrap()
            ),
            ("tcp 198.18.1.1:7003 S".to_string(), c4),
        ]
    );
}

#[test]
fn errors_say_what_failed_and_send_nothing() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let _dns = Dns::start(lab.client(1), zone(&lab));
    let s4 = lab.server_v4(1).to_string();
    let cap = Capture::start(&lab, 1, "errors");
    let cases: [(&[&str], &str); 8] = [
        (
            &["nosuch.test", "7000"],
            "knock: cannot resolve host \"nosuch.test\": ",
        ),
        (
            &["-6", "v4.test", "7000"],
            "knock: host \"v4.test\" has no IPv6 address (it has 198.18.1.1)",
        ),
        (
            &["-4", "v6.test", "7000"],
            "knock: host \"v6.test\" has no IPv4 address (it has 2001:2:0:1::1)",
        ),
        (
            &["-b", "198.18.1.99", &s4, "7000"],
            "knock: cannot hit tcp port 7000 on 198.18.1.1: cannot bind to source address 198.18.1.99: ",
        ),
        (
            &["-i", "nosuchif0", &s4, "7000:udp"],
            "knock: cannot hit udp port 7000 on 198.18.1.1: cannot bind to interface nosuchif0: ",
        ),
        (
            &[&s4, "7000:icmp"],
            "knock: port \"7000:icmp\": unknown protocol \"icmp\"",
        ),
        (
            &[&s4, "7000", "nosuchservice"],
            "knock: port \"nosuchservice\": unknown service \"nosuchservice\"",
        ),
        (&[&s4], "knock: no ports to knock on 198.18.1.1"),
    ];
    for (args, want) in cases {
        let r = knock(&lab, args);
        assert_eq!(r.code, Some(1), "{args:?}: {}", r.err);
        assert!(
            r.err.starts_with(want),
            "{args:?}:\n got: {}\nwant: {want}",
            r.err
        );
    }
    let r = knock(&lab, &["-4", "-6", &s4, "7000"]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.err.contains("'--ipv4' cannot be used with '--ipv6'"),
        "{}",
        r.err
    );
    // A hit that cannot be sent stops the sequence: 8000 fails, 9000 is not tried.
    lab.client(1)
        .run(&["ip", "route", "del", "default"])
        .unwrap();
    let r = knock(&lab, &["198.18.77.1", "8000", "9000"]);
    assert_eq!(r.code, Some(1));
    assert_eq!(
        r.err,
        "knock: cannot hit tcp port 8000 on 198.18.77.1: connect: Network is unreachable (os error 101)\n"
    );
    let pkts = cap.stop();
    assert_eq!(
        pkts,
        [],
        "packets sent by failing runs: {:?}",
        shapes(&pkts)
    );
}

// ---------------------------------------------------------------------------------------------
// Rotating sequences and SPA on the wire

/// Parses `--print`'s stderr: `valid for N more second(s) (step T of S s)` → (N, T).
fn parse_validity(err: &str) -> (u64, u64) {
    let line = err.trim_end();
    let rest = line
        .strip_prefix("valid for ")
        .unwrap_or_else(|| panic!("unexpected --print stderr {err:?}"));
    let n: u64 = rest.split(' ').next().unwrap().parse().unwrap();
    let t: u64 = rest
        .split("(step ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no step in {err:?}"));
    (n, t)
}

/// `knock --print` shows exactly the ports `knock --secret-file` sends, and both are the core's
/// sequence for the step it reports. Retried when a step boundary falls between the runs.
fn rotating_case(lab: &Lab, secret: &str, opts: &[&str], udp: bool, length: usize, step: u64) {
    use knock_core::rotate::{RotatingSpec, sequence_at};
    let s = lab.server_v4(1).to_string();
    let mut print_args = vec!["--secret-file", secret, "--print"];
    print_args.extend_from_slice(opts);
    let mut send_args = vec!["--secret-file", secret];
    send_args.extend_from_slice(opts);
    send_args.push(&s);
    for attempt in 0..3 {
        let before = knock(lab, &print_args);
        assert!(before.ok, "{}", before.err);
        let (remaining, t) = parse_validity(&before.err);
        assert!((1..=step).contains(&remaining), "{}", before.err);
        let cap = Capture::start(lab, 1, &format!("rot{attempt}{udp}"));
        let sent = knock(lab, &send_args);
        let pkts = cap.stop();
        let after = knock(lab, &print_args);
        assert!(sent.ok && after.ok, "{}{}", sent.err, after.err);
        assert_eq!(sent.out, "", "no output without -v");
        if before.out != after.out {
            continue; // the step changed in between: try again
        }
        let printed: Vec<u16> = before
            .out
            .trim_end()
            .split(' ')
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(printed.len(), length, "{:?}", before.out);
        let proto = if udp { "udp" } else { "tcp" };
        let suffix = if udp { "00" } else { "S" };
        let want: Vec<String> = printed
            .iter()
            .map(|p| format!("{proto} 198.18.1.1:{p} {suffix}"))
            .collect();
        assert_eq!(shapes(&pkts), want);
        // The core's derivation, from the secret file itself.
        let text: String = fs::read_to_string(secret)
            .unwrap()
            .split_whitespace()
            .collect();
        let bytes = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap()
        };
        let (lo, hi) = match opts.iter().position(|o| *o == "--range") {
            Some(i) => {
                let (a, b) = opts[i + 1].split_once('-').unwrap();
                (a.parse().unwrap(), b.parse().unwrap())
            }
            None => (10000, 60000),
        };
        let spec = RotatingSpec {
            secret: bytes,
            length,
            lo,
            hi,
            step,
            proto: if udp {
                knock_core::proto::Protocol::Udp
            } else {
                knock_core::proto::Protocol::Tcp
            },
        };
        assert_eq!(sequence_at(&spec, t).unwrap(), printed);
        return;
    }
    panic!("the step changed during every attempt");
}

#[test]
fn rotating_print_matches_what_is_sent() {
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    // A secret made by --new-secret, with a line break inside (whitespace is ignored).
    let r = knock(&lab, &["--new-secret"]);
    assert!(r.ok, "{}", r.err);
    let b64 = r.out.trim().to_string();
    assert_eq!(b64.len(), 44, "{b64}");
    let secret = lab
        .write_file("door.secret", &format!("{}\n{}\n", &b64[..20], &b64[20..]))
        .unwrap();
    let secret = secret.to_str().unwrap().to_string();
    // Defaults: 4 TCP knocks in 10000-60000, 30 s steps.
    rotating_case(&lab, &secret, &[], false, 4, 30);
    // UDP, 6 knocks in a narrow range, 5 s steps, a delay.
    rotating_case(
        &lab,
        &secret,
        &[
            "-u",
            "--length",
            "6",
            "--range",
            "20000-20009",
            "--step",
            "5",
            "-d",
            "20",
        ],
        true,
        6,
        5,
    );
    // A short secret is refused, naming the file; nothing is sent.
    let short = lab.write_file("short.secret", "AAAA\n").unwrap();
    let r = knock(
        &lab,
        &[
            "--secret-file",
            short.to_str().unwrap(),
            &lab.server_v4(1).to_string(),
        ],
    );
    assert_eq!(r.code, Some(1));
    assert_eq!(
        r.err,
        format!(
            "knock: secret file {} holds 3 bytes, at least 32 are needed (create one with `knock --new-secret`)\n",
            short.display()
        )
    );
}

#[test]
fn spa_packets_on_the_wire_ipv4_and_ipv6() {
    use knock_core::spa::{Freshness, MessageKind, MessageType, SpaKeys, decode};
    if !require_root() {
        return;
    }
    let lab = Lab::new(1).unwrap();
    let s4 = lab.server_v4(1).to_string();
    let s6 = lab.server_v6(1).to_string();
    let keys = SpaKeys::new(b"lab enc key".to_vec(), Some(b"lab hmac key".to_vec())).unwrap();
    let common = [
        "--key",
        "lab enc key",
        "--hmac-key",
        "lab hmac key",
        "-U",
        "tester",
    ];
    let cap = Capture::start(&lab, 1, "spa");
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut a = vec![
        "-A",
        "tcp/22,udp/53",
        "-a",
        "2001:2:0:1::2",
        "-f",
        "60",
        &s6,
    ];
    a.extend_from_slice(&common);
    let r1 = knock(&lab, &a);
    let mut b = vec!["-A", "tcp/22", "-s", "-p", "4000", "-v", &s4];
    b.extend_from_slice(&common);
    let r2 = knock(&lab, &b);
    let r3 = knock(&lab, &b);
    let pkts = cap.stop();
    assert!(r1.ok && r2.ok && r3.ok, "{}{}{}", r1.err, r2.err, r3.err);
    assert_eq!(r1.out, "");
    assert!(
        r2.out
            .starts_with("SPA access request: 0.0.0.0 (the packet's source address) tcp/22"),
        "{}",
        r2.out
    );
    assert!(!r2.out.contains("lab enc key") && !r2.out.contains("lab hmac key"));
    assert_eq!(pkts.len(), 3, "{:?}", shapes(&pkts));
    let now = t0 + 5;
    let dec = |p: &Pkt| {
        decode(
            &p.payload,
            &keys,
            Freshness::Within {
                now_unix: now,
                max_age: 120,
            },
        )
        .unwrap()
        .message
    };

    let (p1, p2, p3) = (&pkts[0], &pkts[1], &pkts[2]);
    assert_eq!((p1.l4, p1.dport), (L4::Udp, 62201));
    assert_eq!(p1.dst, IpAddr::from(lab.server_v6(1)));
    assert_eq!(p1.src, IpAddr::from(lab.client_v6(1)));
    let m1 = dec(p1);
    assert_eq!(m1.user, "tester");
    assert_eq!(m1.msg_type(), MessageType::ClientTimeoutAccess);
    assert_eq!(m1.client_timeout, Some(60));
    assert_eq!(
        m1.kind,
        MessageKind::Access {
            ip: "2001:2:0:1::2".parse().unwrap(),
            ports: vec![
                knock_core::proto::parse_proto_port("tcp/22").unwrap(),
                knock_core::proto::parse_proto_port("udp/53").unwrap()
            ]
        }
    );
    assert!((t0..=now).contains(&m1.timestamp));

    assert_eq!((p2.l4, p2.dport), (L4::Udp, 4000));
    assert_eq!(p2.dst, IpAddr::from(lab.server_v4(1)));
    let m2 = dec(p2);
    let m3 = dec(p3);
    assert_eq!(m2.msg_type(), MessageType::Access);
    assert_eq!(m2.kind.requested_ip(), None, "-s sends 0.0.0.0");
    // Fresh randomness every time: the same request gives different packets and digits.
    assert_ne!(p2.payload, p3.payload);
    assert_ne!(m2.rand, m3.rand);
    assert_ne!(&p2.payload[..16], &p3.payload[..16], "salt");
}
