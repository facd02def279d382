//! One benchmark run: a lab, a daemon under test, the flood, the legitimate knocker, and the
//! measurements.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use netns_testkit::{ChildGuard, Lab, Ns};

use crate::frame::{Transport, parse_mac};
use crate::generator::{self, FloodPlan, FloodStats, PacketSocket};
use crate::legit::{self, Attempt, LegitPlan};
use crate::procfs::{self, PacketSockets};
use crate::sources::{Distinct, Sources};

/// The door's name in the generated config.
pub const DOOR: &str = "bench";

/// Counters our daemon reports with `knockd --status --json`.
pub const STATUS_KEYS: [&str; 9] = [
    "packets_seen",
    "packets_matched",
    "attempts_tracked",
    "attempts_capacity",
    "evictions",
    "completions",
    "capture_received",
    "capture_dropped",
    "capture_if_dropped",
];

/// Which daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Our knockd (counters through `knockd --status --json`).
    Ours,
    /// Debian's knockd 0.8 (counters derived from outside).
    Knockd,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Knockd => "knockd 0.8",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Knockd => "knockd",
        }
    }
}

/// A daemon to benchmark.
#[derive(Debug, Clone)]
pub struct Daemon {
    pub kind: Kind,
    pub binary: PathBuf,
    /// Extra `[options]` lines (ours only), e.g. a state capacity.
    pub extra_options: Vec<String>,
}

/// One flood scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub transport: Transport,
    /// Packets per second, `None` = as fast as the generator goes.
    pub rate: Option<u64>,
    pub duration: Duration,
    pub count: Option<u64>,
    pub distinct: Distinct,
    pub v6_percent: u8,
    pub legit_interval: Duration,
    pub legit_v6_percent: u8,
    pub seq_timeout: u32,
    pub ports: Vec<u16>,
    pub batch: usize,
    pub seed: u64,
}

impl Scenario {
    pub fn describe(&self) -> String {
        format!(
            "{}: {} flood to port {}, {}, {}{}, sources {}, {}% IPv6; legit knock every {} ms",
            self.name,
            match self.transport {
                Transport::TcpSyn => "TCP SYN",
                Transport::Udp => "UDP",
            },
            self.ports.first().copied().unwrap_or(0),
            self.rate
                .map_or("max rate".to_string(), |r| format!("{r} pps")),
            fmt_secs(self.duration.as_secs_f64()),
            self.count
                .map_or(String::new(), |c| format!(" or {c} packets")),
            match self.distinct {
                Distinct::Cycle(n) => format!("{n} distinct (cycled)"),
                Distinct::Unique => "all distinct (a new one per packet)".to_string(),
            },
            self.v6_percent,
            self.legit_interval.as_millis()
        )
    }
}

fn fmt_secs(s: f64) -> String {
    format!("{s:.0} s")
}

/// One sample taken during the flood.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Seconds since the flood started.
    pub t: f64,
    pub rss_kb: u64,
    pub cpu_s: f64,
    pub sent: u64,
}

/// Everything measured in one run of one daemon.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub kind: Kind,
    pub binary: String,
    pub flood: FloodStats,
    pub iface_rx: u64,
    pub iface_rx_dropped: u64,
    pub softnet_dropped: u64,
    /// Packets the daemon processed, and how that number was obtained.
    pub processed: Option<u64>,
    pub processed_how: String,
    /// Packets its capture lost (socket ring/buffer full).
    pub capture_dropped: Option<u64>,
    /// knockd's `Stage 1` log lines from flood sources (a lower bound of processed packets).
    pub stage1_lines: Option<u64>,
    pub attempts: Vec<Attempt>,
    pub latencies: Vec<Option<f64>>,
    /// Knock-to-action latency of the plumbing check, before the flood.
    pub idle_latency: Option<f64>,
    pub cpu_s: f64,
    pub cpu_window_s: f64,
    pub drain_s: f64,
    pub hwm_kb: u64,
    pub rss_before_kb: u64,
    pub rss_end_kb: u64,
    pub samples: Vec<Sample>,
    /// Our daemon's counters: (key, value at start, value at end).
    pub status: Vec<(String, Option<u64>, Option<u64>)>,
    pub status_mid_tracked: Option<u64>,
    pub notes: Vec<String>,
}

impl RunResult {
    pub fn legit_ok(&self) -> usize {
        self.latencies.iter().filter(|l| l.is_some()).count()
    }

    pub fn status_end(&self, key: &str) -> Option<u64> {
        self.status.iter().find(|s| s.0 == key).and_then(|s| s.2)
    }

    /// Increase of one of our daemon's counters over the run.
    pub fn status_delta(&self, key: &str) -> Option<u64> {
        status_delta_of(&self.status, key)
    }

    pub fn per_packet_us(&self) -> Option<f64> {
        self.processed
            .filter(|&p| p > 0)
            .map(|p| self.cpu_s * 1e6 / p as f64)
    }
}

fn err<T>(e: impl std::fmt::Display) -> Result<T, String> {
    Err(e.to_string())
}

fn sh_quote(p: &Path) -> Result<String, String> {
    let s = p.to_string_lossy();
    if s.contains('\'') {
        return err(format!("path {s} contains a single quote"));
    }
    Ok(format!("'{s}'"))
}

/// The config both daemons get (ours also gets its status socket and extra options).
pub fn config_text(
    daemon: &Daemon,
    sc: &Scenario,
    log: &Path,
    sock: &Path,
    stamp_cmd: &str,
) -> String {
    let mut s = String::from("[options]\n");
    s.push_str(&format!("  LogFile = {}\n", log.display()));
    if daemon.kind == Kind::Ours {
        s.push_str(&format!("  Status_Socket = {}\n", sock.display()));
        for o in &daemon.extra_options {
            s.push_str(&format!("  {o}\n"));
        }
    }
    let seq: Vec<String> = sc
        .ports
        .iter()
        .map(|p| match sc.transport {
            Transport::TcpSyn => p.to_string(),
            Transport::Udp => format!("{p}:udp"),
        })
        .collect();
    s.push_str(&format!("\n[{DOOR}]\n  Sequence = {}\n", seq.join(",")));
    s.push_str(&format!("  Seq_Timeout = {}\n", sc.seq_timeout));
    if sc.transport == Transport::TcpSyn {
        s.push_str("  TCPFlags = syn\n");
    }
    s.push_str(&format!("  Start_Command = {stamp_cmd}\n"));
    s
}

fn read_sys(ns: &Ns, ifname: &str, what: &str) -> Result<String, String> {
    let p = format!("/sys/class/net/{ifname}/{what}");
    ns.run_stdout(&["cat", &p])
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("reading {p} in netns {}: {e}", ns.name()))
}

fn read_counter(ns: &Ns, ifname: &str, what: &str) -> Result<u64, String> {
    let v = read_sys(ns, ifname, &format!("statistics/{what}"))?;
    v.parse()
        .map_err(|_| format!("{ifname} statistics/{what}: {v:?} is not a number"))
}

/// Packets dropped by the kernel's per-CPU input backlogs (whole machine), from
/// /proc/net/softnet_stat (second column, hex).
pub fn softnet_dropped() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .map(|t| {
            t.lines()
                .filter_map(|l| l.split_whitespace().nth(1))
                .filter_map(|h| u64::from_str_radix(h, 16).ok())
                .sum()
        })
        .unwrap_or(0)
}

/// The lab of one run, with the interface facts the generator needs.
struct LabSetup {
    lab: Lab,
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
}

fn setup_lab() -> Result<LabSetup, String> {
    let lab = Lab::new(1).map_err(|e| format!("building the lab: {e}"))?;
    let dst_mac = parse_mac(&read_sys(lab.server(), &lab.server_if(1), "address")?)?;
    let src_mac = parse_mac(&read_sys(lab.client(1), lab.client_if(), "address")?)?;
    // The spoofed sources have no route back: with reverse-path filtering (Debian enables it
    // on the host, namespaces may inherit it) the server's stack would drop them before TCP/UDP
    // and their checksums could not be verified. The daemons capture them either way.
    let sif = lab.server_if(1);
    lab.server()
        .sh(&format!(
            "for i in all default {sif}; do echo 0 > /proc/sys/net/ipv4/conf/$i/rp_filter; done"
        ))
        .map_err(|e| format!("disabling rp_filter in the server namespace: {e}"))?;
    let batch = lab
        .write_file("legit-addrs.batch", &legit::pool_batch(lab.client_if()))
        .map_err(|e| e.to_string())?;
    let b = batch.to_string_lossy().into_owned();
    lab.client(1)
        .run(&["ip", "-batch", &b])
        .map_err(|e| format!("adding the legitimate client's addresses: {e}"))?;
    Ok(LabSetup {
        lab,
        dst_mac,
        src_mac,
    })
}

fn flood_plan(ls: &LabSetup, sc: &Scenario) -> Result<FloodPlan, String> {
    Ok(FloodPlan {
        dst_mac: ls.dst_mac,
        src_mac: ls.src_mac,
        dst_v4: IpAddr::V4(ls.lab.server_v4(1)),
        dst_v6: IpAddr::V6(ls.lab.server_v6(1)),
        dst_port: *sc
            .ports
            .first()
            .ok_or_else(|| "the door has no port".to_string())?,
        transport: sc.transport,
        sources: Sources::new(sc.distinct, sc.v6_percent, sc.seed)?,
        rate: sc.rate,
        duration: sc.duration,
        count: sc.count,
        batch: sc.batch,
        seed: sc.seed,
    })
}

fn ncpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Starts the generator on its own thread (pinned to the last CPU when there are several).
fn start_generator(
    ls: &LabSetup,
    plan: FloodPlan,
    stop: Arc<AtomicBool>,
    progress: Arc<AtomicU64>,
) -> Result<std::thread::JoinHandle<Result<FloodStats, String>>, String> {
    let ifname = ls.lab.client_if();
    let sock = ls
        .lab
        .client(1)
        .run_in(|| PacketSocket::open(ifname))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("generator socket in the client namespace: {e}"))?;
    let n = ncpus();
    std::thread::Builder::new()
        .name("flood-generator".into())
        .spawn(move || {
            if n > 1 {
                generator::pin_to_cpu(n - 1);
            }
            generator::run(&sock, &plan, &stop, &progress).map_err(|e| e.to_string())
        })
        .map_err(|e| format!("starting the generator thread: {e}"))
}

/// The server's transport counters that show the flood arrived intact: segments or datagrams
/// received, and checksum errors.
fn transport_counters(ns: &Ns, transport: Transport) -> Result<(u64, u64), String> {
    let snmp = ns
        .run_stdout(&["cat", "/proc/net/snmp"])
        .map_err(|e| e.to_string())?;
    let snmp6 = ns
        .run_stdout(&["cat", "/proc/net/snmp6"])
        .map_err(|e| e.to_string())?;
    let c = |p: &str, n: &str| procfs::snmp_counter(&snmp, &snmp6, p, n).unwrap_or(0);
    Ok(match transport {
        // Tcp counters cover IPv4 and IPv6.
        Transport::TcpSyn => (c("Tcp", "InSegs"), c("Tcp", "InCsumErrors")),
        Transport::Udp => (
            c("Udp", "InDatagrams")
                + c("Udp", "NoPorts")
                + c("Udp", "InErrors")
                + c("Udp6", "InDatagrams")
                + c("Udp6", "NoPorts")
                + c("Udp6", "InErrors"),
            c("Udp", "InCsumErrors") + c("Udp6", "InCsumErrors"),
        ),
    })
}

/// Measures the generator alone (no daemon): sends at full speed for `duration`, and checks
/// that the server's stack accepted the frames (right addresses, no checksum error).
pub fn calibrate(sc: &Scenario, duration: Duration) -> Result<FloodStats, String> {
    let ls = setup_lab()?;
    let (in0, csum0) = transport_counters(ls.lab.server(), sc.transport)?;
    let mut sc = sc.clone();
    sc.rate = None;
    sc.duration = duration;
    sc.count = None;
    let plan = flood_plan(&ls, &sc)?;
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let h = start_generator(&ls, plan, stop, progress)?;
    let st = h
        .join()
        .map_err(|_| "generator thread panicked".to_string())??;
    let rx = read_counter(ls.lab.server(), &ls.lab.server_if(1), "rx_packets")?;
    if rx < st.sent * 9 / 10 {
        return err(format!(
            "generator sent {} frames but the server interface received only {rx}",
            st.sent
        ));
    }
    let (in1, csum1) = transport_counters(ls.lab.server(), sc.transport)?;
    let (accepted, bad) = (in1.saturating_sub(in0), csum1.saturating_sub(csum0));
    if bad > 0 || accepted < st.sent * 9 / 10 {
        return err(format!(
            "the server's stack took {accepted} of {} generated packets, with {bad} checksum errors",
            st.sent
        ));
    }
    Ok(st)
}

struct Running {
    guard: ChildGuard,
    conf: PathBuf,
    log: PathBuf,
    actions: PathBuf,
    sock: PathBuf,
}

fn start_daemon(ls: &LabSetup, d: &Daemon, sc: &Scenario) -> Result<Running, String> {
    let lab = &ls.lab;
    let key = d.kind.key();
    let log = lab.path(&format!("{key}.log"));
    let actions = lab.path(&format!("{key}-actions.log"));
    let sock = lab.path(&format!("{key}.sock"));
    let exe = std::env::current_exe().map_err(|e| format!("finding flood-bench itself: {e}"))?;
    let stamp_cmd = format!("{} stamp {} %IP%", sh_quote(&exe)?, sh_quote(&actions)?);
    let text = config_text(d, sc, &log, &sock, &stamp_cmd);
    let conf = lab
        .write_file(&format!("{key}.conf"), &text)
        .map_err(|e| e.to_string())?;
    let bin = d.binary.to_string_lossy().into_owned();
    let c = conf.to_string_lossy().into_owned();
    let sif = lab.server_if(1);
    let mut guard = lab
        .server()
        .spawn(&[&bin, "-i", &sif, "-c", &c])
        .map_err(|e| format!("starting {}: {e}", d.kind.label()))?;
    let ok = netns_testkit::wait_until(Duration::from_secs(10), || {
        netns_testkit::find_line(&log, "listening on").is_some()
            || guard.log().contains("listening on")
    });
    if !ok {
        let state = match guard.try_wait() {
            Ok(Some(st)) => format!("it exited: {st}"),
            _ => "it is still running".to_string(),
        };
        return err(format!(
            "{} ({bin}) did not report \"listening on\" within 10 s ({state}); its output:\n{}\nits log file {}:\n{}\nconfig:\n{text}",
            d.kind.label(),
            guard.log(),
            log.display(),
            std::fs::read_to_string(&log).unwrap_or_default()
        ));
    }
    Ok(Running {
        guard,
        conf,
        log,
        actions,
        sock,
    })
}

/// Our daemon's counters as JSON: `knockd --status --json -c CONF`, run in the server
/// namespace. If this build's command line lacks `--json`, the status socket is asked directly
/// (one line `json`, answer until EOF) from a thread in the server namespace, and a note says so.
fn status(lab: &Lab, d: &Daemon, run: &Running, notes: &mut Vec<String>) -> Result<String, String> {
    let bin = d.binary.to_string_lossy().into_owned();
    let c = run.conf.to_string_lossy().into_owned();
    let out = lab
        .server()
        .output(&[&bin, "--status", "--json", "-c", &c])
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() && crate::json::find_u64(&text, "packets_seen").is_some() {
        return Ok(text);
    }
    let cli_err = format!(
        "`knockd --status --json` failed ({}): {} {}",
        out.status,
        text.trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let sock = run.sock.clone();
    let direct = lab
        .server()
        .run_in(move || -> std::io::Result<String> {
            use std::io::{Read, Write};
            let mut s = std::os::unix::net::UnixStream::connect(&sock)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"json\n")?;
            let mut a = String::new();
            s.read_to_string(&mut a)?;
            Ok(a)
        })
        .map_err(|e| e.to_string())?;
    match direct {
        Ok(t) if crate::json::find_u64(&t, "packets_seen").is_some() => {
            let note = format!(
                "status read from the socket {} directly: {}",
                run.sock.display(),
                cli_err.lines().next().unwrap_or("")
            );
            if !notes.contains(&note) {
                notes.push(note);
            }
            Ok(t)
        }
        Ok(t) => err(format!(
            "{cli_err}; the status socket answered without packets_seen: {}",
            t.trim()
        )),
        Err(e) => err(format!(
            "{cli_err}; status socket {}: {e}",
            run.sock.display()
        )),
    }
}

/// Counts `Stage 1` lines of the door from sources other than the legitimate client's.
pub fn count_flood_stage1(log_text: &str) -> u64 {
    let needle = format!(": {DOOR}: Stage 1");
    log_text
        .lines()
        .filter(|l| l.ends_with(&needle))
        .filter(|l| {
            // "[YYYY-MM-DD HH:MM] IP: door: Stage 1"
            let body = l.split_once("] ").map_or(*l, |x| x.1);
            let ip = body.split(": ").next().unwrap_or("");
            ip.parse::<IpAddr>()
                .is_ok_and(crate::sources::in_spoof_range)
        })
        .count() as u64
}

fn legit_plan(ls: &LabSetup, sc: &Scenario, first: usize) -> LegitPlan {
    LegitPlan {
        ports: sc.ports.clone(),
        udp: sc.transport == Transport::Udp,
        server_v4: IpAddr::V4(ls.lab.server_v4(1)),
        server_v6: IpAddr::V6(ls.lab.server_v6(1)),
        interval: sc.legit_interval,
        v6_percent: sc.legit_v6_percent,
        first,
    }
}

/// Runs `sc` against `d` in a fresh lab.
pub fn run(d: &Daemon, sc: &Scenario, verbose: bool) -> Result<RunResult, String> {
    let say = |m: String| {
        if verbose {
            eprintln!("[{}] {m}", d.kind.label());
        }
    };
    let ls = setup_lab()?;
    let plan = flood_plan(&ls, sc)?;
    let mut running = start_daemon(&ls, d, sc)?;
    let pid = running.guard.pid();
    let lab = &ls.lab;
    let mut notes = Vec::new();

    // Plumbing check: one knock without flood must run the command.
    let check_plan = legit_plan(&ls, sc, legit::POOL - 1);
    let v6_check = sc.legit_v6_percent == 100;
    let check = lab
        .client(1)
        .run_in(|| legit::attempt(&check_plan, legit::POOL - 1, v6_check))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("plumbing check knock: {e}"))?;
    let ran = netns_testkit::wait_until(Duration::from_secs(5), || {
        let t = std::fs::read_to_string(&running.actions).unwrap_or_default();
        legit::parse_stamps(&t).contains_key(&check.src)
    });
    if !ran {
        return err(format!(
            "plumbing check failed: a legitimate knock from {} without any flood did not run the \
             door's command within 5 s on {}.\nDaemon output:\n{}\nDaemon log:\n{}",
            check.src,
            d.kind.label(),
            running.guard.log(),
            std::fs::read_to_string(&running.log).unwrap_or_default()
        ));
    }
    let idle_latency = {
        let t = std::fs::read_to_string(&running.actions).unwrap_or_default();
        legit::match_attempts(&[check], &legit::parse_stamps(&t))[0]
    };
    say(format!(
        "plumbing check passed ({}, knock-to-action {:.1} ms)",
        check.src,
        idle_latency.unwrap_or(0.0) * 1e3
    ));

    // Baselines.
    let pkt_socks = match d.kind {
        Kind::Knockd => match PacketSockets::of(pid) {
            Ok(s) => {
                let _ = s.take();
                Some(s)
            }
            Err(e) => {
                notes.push(format!("kernel socket counters unavailable: {e}"));
                None
            }
        },
        Kind::Ours => None,
    };
    let status_start = if d.kind == Kind::Ours {
        match status(lab, d, &running, &mut notes) {
            Ok(t) => Some(t),
            Err(e) => {
                notes.push(format!("status unavailable: {e}"));
                None
            }
        }
    } else {
        None
    };
    let sif = lab.server_if(1);
    let rx0 = read_counter(lab.server(), &sif, "rx_packets")?;
    let rxd0 = read_counter(lab.server(), &sif, "rx_dropped")?;
    let sn0 = softnet_dropped();
    let rss_before = procfs::mem(pid)?.rss_kb;
    let log_len0 = std::fs::metadata(&running.log).map_or(0, |m| m.len());
    let cpu0 = procfs::cpu_seconds(pid)?;
    let t0 = Instant::now();

    // Flood and legitimate knocker.
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let gen_h = start_generator(&ls, plan, stop.clone(), progress.clone())?;
    let legit_stop = Arc::new(AtomicBool::new(false));
    let lp = legit_plan(&ls, sc, 0);
    let ls_flag = legit_stop.clone();
    let legit_h = lab
        .client(1)
        .spawn_thread(move || {
            generator::pin_to_cpu(0);
            legit::run(&lp, &ls_flag)
        })
        .map_err(|e| format!("starting the legitimate knocker: {e}"))?;

    let mut samples = Vec::new();
    let mut mid_tracked = None;
    let mid = sc.duration / 2;
    let mut mid_done = d.kind != Kind::Ours || status_start.is_none();
    while !gen_h.is_finished() {
        std::thread::sleep(Duration::from_millis(250));
        let t = t0.elapsed();
        if let (Ok(m), Ok(c)) = (procfs::mem(pid), procfs::cpu_seconds(pid)) {
            samples.push(Sample {
                t: t.as_secs_f64(),
                rss_kb: m.rss_kb,
                cpu_s: c - cpu0,
                sent: progress.load(Ordering::Relaxed),
            });
        } else if let Ok(Some(st)) = running.guard.try_wait() {
            stop.store(true, Ordering::Relaxed);
            legit_stop.store(true, Ordering::Relaxed);
            let _ = gen_h.join();
            let _ = legit_h.join();
            let log = std::fs::read_to_string(&running.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return err(format!(
                "{} exited during the flood ({st}) after {:.1} s; output:\n{}\nlast lines of its log:\n{}",
                d.kind.label(),
                t.as_secs_f64(),
                running.guard.log(),
                tail.join("\n")
            ));
        }
        if !mid_done && t >= mid {
            mid_done = true;
            mid_tracked = status(lab, d, &running, &mut notes)
                .ok()
                .and_then(|s| crate::json::find_u64(&s, "attempts_tracked"));
        }
    }
    legit_stop.store(true, Ordering::Relaxed);
    let flood = gen_h
        .join()
        .map_err(|_| "generator thread panicked".to_string())??;
    let attempts = legit_h
        .join()
        .map_err(|_| "legitimate knocker panicked".to_string())?
        .map_err(|e| format!("legitimate knocker: {e}"))?;
    if generator::interrupted() {
        return err("interrupted");
    }
    say(format!(
        "flood done: {} packets in {:.1} s ({:.0} pps); draining",
        flood.sent,
        flood.elapsed.as_secs_f64(),
        flood.rate()
    ));

    // Drain: wait until the daemon's CPU time and log stop moving.
    let drain_start = Instant::now();
    let mut last = (procfs::cpu_seconds(pid)?, 0u64);
    let mut still = 0;
    while drain_start.elapsed() < Duration::from_secs(60) && still < 3 && !generator::interrupted()
    {
        std::thread::sleep(Duration::from_millis(200));
        let now = (
            procfs::cpu_seconds(pid)?,
            std::fs::metadata(&running.log).map_or(0, |m| m.len()),
        );
        if now == last {
            still += 1;
        } else {
            still = 0;
        }
        last = now;
        if let Ok(m) = procfs::mem(pid) {
            samples.push(Sample {
                t: t0.elapsed().as_secs_f64(),
                rss_kb: m.rss_kb,
                cpu_s: now.0 - cpu0,
                sent: flood.sent,
            });
        }
    }
    if still < 3 {
        notes.push("the daemon was still busy 60 s after the flood ended".into());
    }
    // The quiet time at the end of the drain is not part of the work.
    let drain = drain_start
        .elapsed()
        .saturating_sub(Duration::from_millis(600));
    let cpu1 = procfs::cpu_seconds(pid)?;
    let cpu_window = (t0.elapsed().saturating_sub(Duration::from_millis(600))).as_secs_f64();
    // Late commands: give the last attempt 2 s.
    if let Some(a) = attempts.last() {
        let wait = a.sent_at + 2.0 - legit::unix_now();
        if wait > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(wait.min(2.0)));
        }
    }
    let mem = procfs::mem(pid)?;
    let rx1 = read_counter(lab.server(), &sif, "rx_packets")?;
    let rxd1 = read_counter(lab.server(), &sif, "rx_dropped")?;
    let sn1 = softnet_dropped();

    let mut status_rows = Vec::new();
    let (mut processed, mut processed_how, mut capture_dropped) = (None, String::new(), None);
    let mut stage1 = None;
    match d.kind {
        Kind::Ours => {
            let end = match status(lab, d, &running, &mut notes) {
                Ok(t) => Some(t),
                Err(e) => {
                    notes.push(format!("status at the end unavailable: {e}"));
                    None
                }
            };
            for k in STATUS_KEYS {
                status_rows.push((
                    k.to_string(),
                    status_start
                        .as_deref()
                        .and_then(|t| crate::json::find_u64(t, k)),
                    end.as_deref().and_then(|t| crate::json::find_u64(t, k)),
                ));
            }
            let r = status_delta_of(&status_rows, "packets_matched");
            if let Some(p) = r {
                let legit = (attempts.len() * sc.ports.len()) as u64;
                processed = Some(p.saturating_sub(legit));
                processed_how = "daemon counter packets_matched (increase over the run), minus \
                                 the legitimate knocks"
                    .into();
                capture_dropped = Some(
                    status_delta_of(&status_rows, "capture_dropped").unwrap_or(0)
                        + status_delta_of(&status_rows, "capture_if_dropped").unwrap_or(0),
                );
            } else {
                processed_how = "unknown: the daemon's status counters are unavailable".into();
            }
        }
        Kind::Knockd => {
            let text = std::fs::read(&running.log)
                .map(|b| {
                    let from = (log_len0 as usize).min(b.len());
                    String::from_utf8_lossy(&b[from..]).into_owned()
                })
                .unwrap_or_default();
            stage1 = Some(count_flood_stage1(&text));
            if let Some(s) = &pkt_socks {
                match s.take() {
                    Ok(st) => {
                        // Minus the legitimate knocks, which went through the same socket.
                        let legit = (attempts.len() * sc.ports.len()) as u64;
                        processed = Some(st.received.saturating_sub(legit));
                        capture_dropped = Some(st.dropped);
                        processed_how = "kernel counter of packets queued to knockd's capture \
                                         socket (PACKET_STATISTICS via pidfd_getfd), minus the \
                                         legitimate knocks; knockd handles every packet it reads"
                            .into();
                    }
                    Err(e) => notes.push(format!("kernel socket counters: {e}")),
                }
            }
            if processed.is_none() {
                processed = stage1;
                processed_how =
                    "count of flood-source `Stage 1` lines in knockd's log (a lower bound)".into();
            }
        }
    }
    let latencies = {
        let t = std::fs::read_to_string(&running.actions).unwrap_or_default();
        legit::match_attempts(&attempts, &legit::parse_stamps(&t))
    };
    let _ = running.guard.stop(Duration::from_secs(3));
    Ok(RunResult {
        kind: d.kind,
        binary: d.binary.display().to_string(),
        flood,
        iface_rx: rx1.saturating_sub(rx0),
        iface_rx_dropped: rxd1.saturating_sub(rxd0),
        softnet_dropped: sn1.saturating_sub(sn0),
        processed,
        processed_how,
        capture_dropped,
        stage1_lines: stage1,
        attempts,
        latencies,
        idle_latency,
        cpu_s: cpu1 - cpu0,
        cpu_window_s: cpu_window,
        drain_s: drain.as_secs_f64(),
        hwm_kb: mem.hwm_kb,
        rss_before_kb: rss_before,
        rss_end_kb: mem.rss_kb,
        samples,
        status: status_rows,
        status_mid_tracked: mid_tracked,
        notes,
    })
}

fn status_delta_of(rows: &[(String, Option<u64>, Option<u64>)], key: &str) -> Option<u64> {
    let s = rows.iter().find(|s| s.0 == key)?;
    Some(s.2?.saturating_sub(s.1.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(t: Transport) -> Scenario {
        Scenario {
            name: "t".into(),
            transport: t,
            rate: Some(1000),
            duration: Duration::from_secs(1),
            count: None,
            distinct: Distinct::Cycle(10),
            v6_percent: 0,
            legit_interval: Duration::from_millis(500),
            legit_v6_percent: 0,
            seq_timeout: 25,
            ports: vec![7000, 8000, 9000],
            batch: 64,
            seed: 1,
        }
    }

    #[test]
    fn configs() {
        let ours = Daemon {
            kind: Kind::Ours,
            binary: "/x/knockd".into(),
            extra_options: vec!["Attempts_Capacity = 1000".into()],
        };
        let theirs = Daemon {
            kind: Kind::Knockd,
            binary: "/usr/sbin/knockd".into(),
            extra_options: vec!["ignored = 1".into()],
        };
        let a = config_text(
            &ours,
            &sc(Transport::TcpSyn),
            Path::new("/l/k.log"),
            Path::new("/l/k.sock"),
            "'/b/fb' stamp '/l/a' %IP%",
        );
        assert!(a.contains("Status_Socket = /l/k.sock"));
        assert!(a.contains("Attempts_Capacity = 1000"));
        assert!(a.contains("Sequence = 7000,8000,9000\n"));
        assert!(a.contains("TCPFlags = syn"));
        assert!(a.contains("Start_Command = '/b/fb' stamp '/l/a' %IP%\n"));
        let b = config_text(
            &theirs,
            &sc(Transport::Udp),
            Path::new("/l/k.log"),
            Path::new("/l/k.sock"),
            "c",
        );
        assert!(!b.contains("Status_Socket"));
        assert!(!b.contains("ignored"));
        assert!(b.contains("Sequence = 7000:udp,8000:udp,9000:udp\n"));
        assert!(!b.contains("TCPFlags"));
    }

    #[test]
    fn stage1_counting_skips_legit_sources() {
        let log = "[2026-11-25 23:34] starting up, listening on cli1\n\
                   [2026-11-25 23:34] 198.19.4.5: bench: Stage 1\n\
                   [2026-11-25 23:34] 2001:2:0:8123::9: bench: Stage 1\n\
                   [2026-11-25 23:34] 198.18.1.10: bench: Stage 1\n\
                   [2026-11-25 23:34] 198.19.4.5: bench: Stage 2\n\
                   [2026-11-25 23:34] 198.19.4.6: other: Stage 1\n";
        assert_eq!(count_flood_stage1(log), 2);
    }

    /// Root only: the generator's frames reach the server namespace and its TCP/UDP stack
    /// counts them without checksum errors (IPv4 and IPv6 mixed).
    #[test]
    fn generator_reaches_the_server_intact() {
        if !netns_testkit::require_root() {
            return;
        }
        for t in [Transport::TcpSyn, Transport::Udp] {
            let mut s = sc(t);
            s.v6_percent = 50;
            s.distinct = Distinct::Cycle(1000);
            let st = calibrate(&s, Duration::from_millis(300)).unwrap();
            assert!(st.sent >= 1000, "{t:?}: only {} packets sent", st.sent);
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote(Path::new("/a b/c")).unwrap(), "'/a b/c'");
        assert!(sh_quote(Path::new("/a'b")).is_err());
    }
}
