//! SPA under flood: what forged, junk and replayed packets cost the daemon, and whether a valid
//! packet still gets through while a flood is going on.
//!
//! `cargo bench -p knockd --bench spa_flood` (as root for part b; `-- N` sets the flood size,
//! default 300000 datagrams). Prints:
//!
//! a) rejections per second on one core through the daemon's verification path
//!    (`knockd::spa::SpaState::check` with a realistic SPA door), per kind of bad packet;
//! b) end to end, in a throw-away lab (server + 1 client, release `knockd` in the server
//!    namespace): client 1 sends a bounded flood of forged SPA datagrams as fast as it can from
//!    a UDP socket while a fresh valid packet is sent over the same link every 250 ms until
//!    the grant appears; then `--status` counters (SPA rejections, capture drops). Nothing leaves the
//!    lab's namespaces.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use knock_core::config::{Config, parse};
use knock_core::proto::parse_proto_port;
use knock_core::spa::{HmacDigest, SpaKeys, SpaMessage, encode, rand16_from_entropy};
use knockd::spa::{SpaState, Verdict};
use netns_testkit::{Lab, bin, is_root, wait_for_file_line, wait_until};

const SPA_PORT: u16 = 62201;
const PORT: u16 = 2222;

fn urandom(buf: &mut [u8]) {
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("/dev/urandom");
}

fn rand_arr<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    urandom(&mut b);
    b
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

struct Door {
    enc: Vec<u8>,
    hmac: Vec<u8>,
}

impl Door {
    fn new() -> Door {
        let mut enc = vec![0u8; 32];
        let mut hmac = vec![0u8; 64];
        urandom(&mut enc);
        urandom(&mut hmac);
        Door { enc, hmac }
    }

    fn config(&self, dir: &Path, extra_options: &str) -> String {
        format!(
            "[options]\n LogFile = {}\n Status_Socket = {}\n SPA_Replay_File = {}\n{extra_options}\
             [spa]\n spa_key_base64 = {}\n spa_hmac_key_base64 = {}\n open = tcp/{PORT}\n open_timeout = 30\n max_open_timeout = 60\n require_user = alice\n",
            dir.join("knockd.log").display(),
            dir.join("knockd.sock").display(),
            dir.join("spa-replay.cache").display(),
            b64(&self.enc),
            b64(&self.hmac),
        )
    }

    fn packet(&self, hmac: &[u8], ts: u64, ip: IpAddr) -> String {
        let keys = SpaKeys::new(self.enc.clone(), Some(hmac.to_vec()))
            .expect("keys")
            .with_hmac_digest(HmacDigest::Sha256);
        let msg = SpaMessage::access(
            rand16_from_entropy(rand_arr::<16>()),
            "alice",
            ts,
            ip,
            vec![parse_proto_port("tcp/2222").expect("port")],
            Some(30),
        );
        encode(&keys, &msg, rand_arr::<8>()).expect("encode")
    }

    /// A well-formed packet under the door's encryption key but another HMAC key: what an
    /// attacker without the keys can at best send.
    fn forged(&self, ts: u64) -> String {
        let mut other = vec![0u8; 64];
        urandom(&mut other);
        self.packet(&other, ts, IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2)))
    }

    fn valid(&self, ts: u64, ip: IpAddr) -> String {
        self.packet(&self.hmac, ts, ip)
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Runs `check` over `packets` (cycled, at least once) for about `budget`; returns (checks, rejections, secs).
fn run_checks(
    state: &mut SpaState,
    cfg: &Config,
    packets: &[Vec<u8>],
    now: u64,
    budget: Duration,
) -> (u64, u64, f64) {
    let src = IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2));
    let (mut n, mut rejected) = (0u64, 0u64);
    let t = Instant::now();
    loop {
        for p in packets {
            let v = state.check(cfg, SPA_PORT, p, true, src, now);
            if !matches!(v, Verdict::Accepted { .. }) {
                rejected += 1;
            }
            n += 1;
        }
        if t.elapsed() >= budget {
            break;
        }
    }
    (n, rejected, t.elapsed().as_secs_f64())
}

fn part_a(dir: &Path) {
    println!("a) SpaState::check on one core (release build), SPA door with HMAC-SHA256:");
    let door = Door::new();
    let cfg = parse(&door.config(dir, ""), "bench.conf").expect("config");
    let mut state = SpaState::build(&cfg, &mut |w| eprintln!("{w}")).expect("spa state");
    let now = unix_now();
    let k = 512;
    let junk: Vec<Vec<u8>> = (0..k)
        .map(|_| {
            let mut b = vec![0u8; 200];
            urandom(&mut b);
            b
        })
        .collect();
    let b64_junk: Vec<Vec<u8>> = (0..k)
        .map(|_| {
            let mut b = vec![0u8; 165];
            urandom(&mut b);
            let s = b64(&b);
            s.trim_end_matches('=').as_bytes().to_vec()
        })
        .collect();
    let forged: Vec<Vec<u8>> = (0..k).map(|_| door.forged(now).into_bytes()).collect();
    let stale: Vec<Vec<u8>> = (0..k)
        .map(|_| {
            door.valid(now - 600, "198.18.1.2".parse().expect("ip"))
                .into_bytes()
        })
        .collect();
    let replayed: Vec<Vec<u8>> = (0..k)
        .map(|_| {
            door.valid(now, "198.18.1.2".parse().expect("ip"))
                .into_bytes()
        })
        .collect();
    // Accept each valid packet once (that writes the cache file each time), then replay.
    let t = Instant::now();
    let (n0, rej0, _) = run_checks(&mut state, &cfg, &replayed, now, Duration::ZERO);
    let first = t.elapsed();
    assert_eq!((n0, rej0), (k as u64, 0), "first sight of valid packets");
    println!(
        "   {:<58} {:>10.0} /s   ({:.1} µs each, replay cache written to disk each time)",
        "valid packets, accepted (first sight)",
        k as f64 / first.as_secs_f64(),
        first.as_secs_f64() * 1e6 / k as f64
    );
    let budget = Duration::from_millis(1500);
    for (name, set) in [
        ("random bytes (rejected at the base64 check)", &junk),
        ("random base64, 220 chars (rejected at the HMAC)", &b64_junk),
        (
            "forged: well-formed, wrong HMAC key (rejected at the HMAC)",
            &forged,
        ),
        (
            "stale: valid HMAC, 10 min old (decrypted, rejected at age)",
            &stale,
        ),
        (
            "replayed: valid HMAC, seen before (decrypted, cache hit)",
            &replayed,
        ),
    ] {
        let (n, rejected, secs) = run_checks(&mut state, &cfg, set, now, budget);
        assert_eq!(n, rejected, "{name}: every packet must be rejected");
        println!(
            "   {name:<58} {:>10.0} /s   ({:.2} µs each)",
            n as f64 / secs,
            secs * 1e6 / n as f64
        );
    }
    println!("   (goal: over 200 000 rejections per second per core)");
}

fn status_json(sock: &Path) -> Option<serde_json::Value> {
    let mut c = std::os::unix::net::UnixStream::connect(sock).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    c.write_all(b"json\n").ok()?;
    let mut text = String::new();
    c.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// CPU time (user + system) used so far by process `pid`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0)?;
    Some(Duration::from_millis(ticks * 1000 / hz))
}

fn part_b(flood: u64) {
    println!("\nb) end to end: knockd (release) in a lab, {flood} forged datagrams from client 1");
    let lab = Lab::new(1).expect("lab");
    let door = Door::new();
    let conf = lab
        .write_file("knockd.conf", &door.config(lab.dir(), ""))
        .expect("config");
    let knockd = bin("knockd").expect("knockd binary");
    let mut daemon = lab
        .server()
        .spawn(&[
            knockd.to_str().expect("path"),
            "-i",
            "cli1",
            "-c",
            conf.to_str().expect("path"),
        ])
        .expect("knockd");
    let log = lab.path("knockd.log");
    wait_for_file_line(&log, "starting up", Duration::from_secs(10)).expect("knockd started");
    let sock = lab.path("knockd.sock");

    let now = unix_now();
    let forged: Arc<Vec<Vec<u8>>> =
        Arc::new((0..256).map(|_| door.forged(now).into_bytes()).collect());
    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let go = Arc::new(AtomicBool::new(false));
    let dst = SocketAddr::new(lab.server_v4(1).into(), SPA_PORT);
    let (f, s, dn, g) = (forged.clone(), sent.clone(), done.clone(), go.clone());
    let flooder = lab
        .client(1)
        .spawn_thread(move || {
            let sock = UdpSocket::bind("0.0.0.0:0").expect("udp socket");
            while !g.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            let t = Instant::now();
            let mut i = 0u64;
            while i < flood {
                // ENOBUFS and the like: the sender outruns the veth; retry.
                if sock.send_to(&f[(i % 256) as usize], dst).is_ok() {
                    i += 1;
                    s.store(i, Ordering::Relaxed);
                }
            }
            dn.store(true, Ordering::Release);
            t.elapsed()
        })
        .expect("flooder");
    let cpu0 = cpu_time(daemon.pid());
    let t0 = Instant::now();
    go.store(true, Ordering::Release);

    // While the flood runs: a valid packet from client 1 (the flooded link, same capture
    // buffer) every 250 ms until granted.
    let me = lab.client_v4(1);
    let granted = format!("{me}: spa: granted tcp/{PORT}");
    let mut attempts = 0;
    let mut grant_latency = None;
    let mut sent_at_first = 0;
    while !done.load(Ordering::Acquire) || attempts == 0 {
        // Let the flood get going first.
        if attempts == 0
            && sent.load(Ordering::Relaxed) < flood / 4
            && !done.load(Ordering::Acquire)
        {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        attempts += 1;
        if attempts == 1 {
            sent_at_first = sent.load(Ordering::Relaxed);
        }
        let p = door.valid(unix_now(), me.into());
        let t = Instant::now();
        lab.client(1)
            .udp_send(lab.server_v4(1).into(), SPA_PORT, p.as_bytes())
            .expect("valid packet");
        if wait_until(Duration::from_millis(250), || {
            netns_testkit::find_line(&log, &granted).is_some()
        }) {
            grant_latency = Some(t.elapsed());
            break;
        }
        if attempts >= 40 {
            break;
        }
    }
    let during = done.load(Ordering::Acquire);
    // Status while (possibly) still flooding.
    let ts = Instant::now();
    let mid = status_json(&sock);
    let status_latency = ts.elapsed();
    let flood_time = flooder.join().expect("flooder thread");
    let total = t0.elapsed();
    // Let the daemon drain its buffer, then read the counters.
    std::thread::sleep(Duration::from_millis(500));
    let end = status_json(&sock).expect("status after the flood");
    let cpu = cpu0
        .zip(cpu_time(daemon.pid()))
        .map(|(a, b)| b.saturating_sub(a));
    let rate = flood as f64 / flood_time.as_secs_f64();
    println!(
        "   flood: {flood} datagrams in {:.2} s ({rate:.0} /s offered by one sender thread)",
        flood_time.as_secs_f64()
    );
    match grant_latency {
        Some(l) => println!(
            "   valid packet: granted {}, {:.1} ms after the packet was sent (log polled every 10 ms), attempt {attempts} (first sent after {sent_at_first} forged)",
            if during {
                "after the flood had ended"
            } else {
                "during the flood"
            },
            l.as_secs_f64() * 1e3
        ),
        None => println!("   valid packet: NOT granted after {attempts} attempts"),
    }
    println!(
        "   --status {} answered in {:.1} ms: {}",
        if during {
            "after the flood"
        } else {
            "during the flood"
        },
        status_latency.as_secs_f64() * 1e3,
        match &mid {
            Some(v) => format!("ok, {} rejections so far", v["spa_rejected"]),
            None => "no answer".to_string(),
        }
    );
    let g = |k: &str| end[k].as_u64().unwrap_or(0);
    println!(
        "   --status after: spa_rejected {} spa_accepted {} packets_seen {} capture_received {} capture_dropped {} capture_if_dropped {}",
        g("spa_rejected"),
        g("spa_accepted"),
        g("packets_seen"),
        g("capture_received"),
        g("capture_dropped"),
        g("capture_if_dropped"),
    );
    println!(
        "   daemon throughput: {:.0} rejections/s over the {:.2} s of the run",
        g("spa_rejected") as f64 / total.as_secs_f64(),
        total.as_secs_f64()
    );
    if let Some(cpu) = cpu.filter(|c| !c.is_zero()) {
        let n = g("packets_seen") as f64;
        println!(
            "   daemon CPU time: {:.2} s for {n:.0} packets ({:.1} µs per packet, capture included: {:.0} packets per CPU-second)",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / n,
            n / cpu.as_secs_f64()
        );
    }
    let grants = end["grants"].to_string();
    println!("   grants: {grants}");
    daemon.kill();
    // A panic unwinds: the lab is still torn down.
    assert!(
        grant_latency.is_some(),
        "spa_flood: the valid packet was not granted under flood"
    );
}

fn main() {
    let flood: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(300_000)
        .clamp(1_000, 2_000_000);
    let dir = std::env::temp_dir().join(format!("knockd-spa-flood-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    part_a(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    if !is_root() {
        eprintln!("spa_flood: part b needs root (network namespaces); skipped");
        return;
    }
    part_b(flood);
}
