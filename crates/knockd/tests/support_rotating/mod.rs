//! Harness for `e2e_rotating.rs`: rotating doors of our `knockd` in the server namespace of a
//! [`Lab`], knocked by our `knock --secret-file`, or by plain tools (`nc`, `hping3`, `nmap`)
//! with ports printed by `knock --print` or derived in the test with
//! `knock_core::rotate::sequence_at`.
//!
//! Every configuration written by [`Knockd::start`] gets `[options]` with a LogFile and a
//! Status_Socket inside the lab directory (parallel tests never share a file) and a one-port
//! UDP door `[sync]` on [`SYNC_PORT`]. Knocking it after the packets under test and waiting for
//! its `OPEN SESAME` proves the daemon has processed everything the client sent before (one
//! source over one link arrives in order), so "the door did not open" is asserted without
//! sleeping. The sync knock is a watched packet: it resets the source's progress on the other
//! doors, so it only ever comes last.
//!
//! Time: a rotating door's sequence depends on the wall clock. [`fresh_step`] waits for a new
//! step when too little of the current one is left for what a test must do inside one step.

#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use knock_core::proto::Protocol;
use knock_core::rotate::{RotatingSpec, current_step, sequence_at};
use netns_testkit::{ChildGuard, Lab, bin, count_lines, wait_for_file_line, wait_until};

/// Patience for anything that should happen "at once".
pub const T: Duration = Duration::from_secs(5);
/// The `[sync]` door's port (UDP).
pub const SYNC_PORT: u16 = 5999;

/// A path as `&str` (lab paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("lab paths are UTF-8")
}

// ---------------------------------------------------------------------------------------------
// Secrets and doors.

/// A secret file made by `knock --new-secret`, and its decoded bytes.
#[derive(Debug, Clone)]
pub struct Secret {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// Runs our `knock --new-secret` (no network involved) and writes its output to `name` in the
/// lab directory. Checks the output is one line of base64 holding 32 bytes.
pub fn new_secret(lab: &Lab, name: &str) -> Secret {
    let knock = bin("knock").unwrap();
    let out = Command::new(&knock).arg("--new-secret").output().unwrap();
    assert!(out.status.success(), "knock --new-secret: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.ends_with('\n') && text.trim_end().lines().count() == 1,
        "{text:?}"
    );
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or_else(|e| panic!("knock --new-secret printed {text:?}: {e}"));
    assert_eq!(bytes.len(), 32, "{text:?}");
    let path = lab.write_file(name, &text).unwrap();
    Secret { path, bytes }
}

/// A rotating door's parameters, shared by the configuration, the client's options and the
/// test's own derivation.
#[derive(Debug, Clone)]
pub struct Rot {
    pub name: String,
    pub secret: Secret,
    pub length: usize,
    pub lo: u16,
    pub hi: u16,
    pub step: u64,
    pub proto: Protocol,
}

impl Rot {
    pub fn new(name: &str, secret: Secret, length: usize, range: (u16, u16), step: u64) -> Rot {
        Rot {
            name: name.to_string(),
            secret,
            length,
            lo: range.0,
            hi: range.1,
            step,
            proto: Protocol::Tcp,
        }
    }

    pub fn udp(mut self) -> Rot {
        self.proto = Protocol::Udp;
        self
    }

    pub fn spec(&self) -> RotatingSpec {
        RotatingSpec {
            secret: self.secret.bytes.clone(),
            length: self.length,
            lo: self.lo,
            hi: self.hi,
            step: self.step,
            proto: self.proto,
        }
    }

    /// The sequence of step `t`, derived in the test.
    pub fn seq(&self, t: u64) -> Vec<u16> {
        sequence_at(&self.spec(), t).unwrap()
    }

    /// The current step number.
    pub fn now(&self) -> u64 {
        step_now(self.step)
    }

    /// Every port of the sequences of steps `t - 1 ..= t + 2`.
    pub fn window_ports(&self, t: u64) -> Vec<u16> {
        (t - 1..=t + 2).flat_map(|s| self.seq(s)).collect()
    }

    /// An in-range port that is in none of the sequences of steps `t - 1 ..= t + 2`, the
    /// `n`-th such port counted from the middle of the range.
    pub fn stray(&self, t: u64, n: usize) -> u16 {
        let used = self.window_ports(t);
        let mid = self.lo + (self.hi - self.lo) / 2;
        (mid..=self.hi)
            .chain(self.lo..mid)
            .filter(|p| !used.contains(p))
            .nth(n)
            .expect("the range has room for strays")
    }

    /// The door's section: the rotating keys and `extra` lines (each ending in `\n`).
    pub fn conf(&self, extra: &str) -> String {
        format!(
            "[{}]\n secret_file = {}\n sequence_length = {}\n port_range = {}-{}\n step = {}\n protocol = {}\n{extra}",
            self.name,
            self.secret.path.display(),
            self.length,
            self.lo,
            self.hi,
            self.step,
            self.proto
        )
    }

    /// The client options naming this door's parameters: `--secret-file F --length N --range
    /// LO-HI --step S`, and `-u` for a UDP door.
    pub fn client_args(&self) -> Vec<String> {
        let mut v = vec![
            "--secret-file".to_string(),
            self.secret.path.display().to_string(),
            "--length".to_string(),
            self.length.to_string(),
            "--range".to_string(),
            format!("{}-{}", self.lo, self.hi),
            "--step".to_string(),
            self.step.to_string(),
        ];
        if self.proto == Protocol::Udp {
            v.push("-u".to_string());
        }
        v
    }
}

// ---------------------------------------------------------------------------------------------
// The clock.

/// Wall clock, since the Unix epoch.
pub fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

/// The current step number for `step` seconds per step.
pub fn step_now(step: u64) -> u64 {
    current_step(unix_now().as_secs(), step)
}

/// Time left in the current step.
pub fn remaining(step: u64) -> Duration {
    let now = unix_now();
    let next = Duration::from_secs((current_step(now.as_secs(), step) + 1) * step);
    next.saturating_sub(now)
}

/// Waits until step `t` is over (the clock is in step `t + 1` or later); returns the step then
/// current. A rotating door opens once per step's sequence: a second source (another client,
/// or the same client's other address family) must knock a later step's sequence.
pub fn wait_past(step: u64, t: u64) -> u64 {
    while step_now(step) <= t {
        std::thread::sleep(remaining(step) + Duration::from_millis(50));
    }
    step_now(step)
}

/// Makes sure at least `need` of the current step is left, waiting for the next step (plus
/// 100 ms) if not; returns the step number then current.
pub fn fresh_step(step: u64, need: Duration) -> u64 {
    assert!(
        need + Duration::from_millis(200) < Duration::from_secs(step),
        "a step of {step} s cannot leave {need:?}"
    );
    let left = remaining(step);
    if left < need {
        std::thread::sleep(left + Duration::from_millis(100));
    }
    step_now(step)
}

// ---------------------------------------------------------------------------------------------
// The daemon.

/// The `[options]` section: LogFile and Status_Socket in the lab directory.
pub fn options(lab: &Lab) -> String {
    format!(
        "[options]\n LogFile = {}\n Status_Socket = {}\n",
        lab.path("knockd.log").display(),
        lab.path("knockd.sock").display()
    )
}

/// Our knockd running in the lab's server namespace, listening on `cli1,cli2`.
pub struct Knockd {
    pub child: ChildGuard,
    pub log: PathBuf,
    pub conf: PathBuf,
    pub socket: PathBuf,
}

impl Knockd {
    /// Writes `knockd.conf` ([`options`], `doors`, then the `[sync]` door), starts knockd and
    /// waits for its `starting up` line (written once the capture is open).
    pub fn start(lab: &Lab, doors: &str) -> Knockd {
        let text = format!(
            "{}{doors}\n[sync]\n sequence = {SYNC_PORT}:udp\n",
            options(lab)
        );
        Knockd::start_text(lab, &text)
    }

    /// Starts knockd with the configuration `text` (whose LogFile and Status_Socket must be
    /// those of [`options`]).
    pub fn start_text(lab: &Lab, text: &str) -> Knockd {
        let conf = lab.write_file("knockd.conf", text).unwrap();
        let knockd = bin("knockd").unwrap();
        let ifaces = format!("{},{}", lab.server_if(1), lab.server_if(2));
        let child = lab
            .server()
            .spawn(&[s(&knockd), "-i", &ifaces, "-c", s(&conf)])
            .unwrap();
        let mut d = Knockd {
            child,
            log: lab.path("knockd.log"),
            conf,
            socket: lab.path("knockd.sock"),
        };
        d.wait_log("starting up, listening on ");
        d
    }

    /// Whether it still runs, its output and its log, for failure messages.
    pub fn state(&mut self) -> String {
        let st = match self.child.try_wait() {
            Ok(Some(st)) => format!("exited: {st}"),
            Ok(None) => "still running".to_string(),
            Err(e) => e.to_string(),
        };
        format!(
            "knockd {st}\n--- knockd stdout+stderr ---\n{}--- log file ---\n{}",
            self.child.log(),
            self.log_text()
        )
    }

    pub fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_log(&mut self, needle: &str) -> String {
        match wait_for_file_line(&self.log, needle, T) {
            Ok(l) => l,
            Err(_) => panic!(
                "no log line containing {needle:?} within {T:?}\n{}",
                self.state()
            ),
        }
    }

    /// Log lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        count_lines(&self.log, needle)
    }

    /// Waits until at least `n` log lines contain `needle`.
    pub fn wait_count(&mut self, needle: &str, n: usize) {
        if !wait_until(T, || self.count(needle) >= n) {
            panic!(
                "fewer than {n} log lines containing {needle:?} after {T:?} (got {})\n{}",
                self.count(needle),
                self.state()
            );
        }
    }

    /// `OPEN SESAME` lines of `door` for `src`.
    pub fn opened(&self, src: IpAddr, door: &str) -> usize {
        self.count(&format!("] {src}: {door}: OPEN SESAME"))
    }

    /// Waits until `door` has opened `n` times for `src`.
    pub fn wait_opened(&mut self, src: IpAddr, door: &str, n: usize) {
        self.wait_count(&format!("] {src}: {door}: OPEN SESAME"), n);
    }

    /// `OPEN SESAME` lines of `door`, whoever knocked.
    pub fn opened_any(&self, door: &str) -> usize {
        self.count(&format!(": {door}: OPEN SESAME"))
    }

    /// Knocks `[sync]` from client `k` (over IPv6 if `v6`) and waits until the daemon logged it:
    /// everything client `k` sent before over that family has been processed.
    pub fn sync(&mut self, lab: &Lab, k: usize, v6: bool) {
        let src = lab.client_ip(k, v6);
        let n = self.opened(src, "sync");
        lab.client(k)
            .udp_send(lab.server_ip(k, v6), SYNC_PORT, b"sync")
            .unwrap();
        self.wait_opened(src, "sync", n + 1);
    }

    /// Panics (with the daemon's output) unless it is still running.
    pub fn assert_running(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            panic!("knockd is not running\n{}", self.state());
        }
    }

    /// The status socket's JSON answer.
    pub fn status(&self) -> serde_json::Value {
        use std::io::{Read, Write};
        let mut c = std::os::unix::net::UnixStream::connect(&self.socket)
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.socket.display()));
        c.set_read_timeout(Some(T)).unwrap();
        c.write_all(b"json\n").unwrap();
        let mut text = String::new();
        c.read_to_string(&mut text).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("status JSON {text:?}: {e}"))
    }

    /// One counter of the status answer.
    pub fn counter(&self, name: &str) -> u64 {
        let v = self.status();
        v[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {name:?} in {v}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Clients.

/// Runs `args` in client `k`'s namespace; panics with the output unless it exits with 0.
pub fn run(lab: &Lab, k: usize, args: &[&str]) -> Output {
    lab.client(k).run(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Our `knock` in client `k`'s namespace; its output (the command must succeed).
pub fn our_knock(lab: &Lab, k: usize, args: &[&str]) -> Output {
    let knock = bin("knock").unwrap();
    let mut a = vec![s(&knock)];
    a.extend_from_slice(args);
    run(lab, k, &a)
}

/// Like [`our_knock`] with `String` arguments.
pub fn our_knock_s(lab: &Lab, k: usize, args: &[String]) -> Output {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    our_knock(lab, k, &a)
}

/// The ports of `knock -v`'s stderr line `rotating sequence P1 P2 ... (proto), valid for ...`.
pub fn verbose_ports(out: &Output) -> Vec<u16> {
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("rotating sequence "))
        .unwrap_or_else(|| panic!("no `rotating sequence` line in knock -v's stderr: {err:?}"));
    let list = &line["rotating sequence ".len()..];
    let list = &list[..list.find(" (").expect("ports then (proto)")];
    list.split(' ').map(|p| p.parse().unwrap()).collect()
}

/// One hit for [`send`].
#[derive(Debug, Clone, Copy)]
pub enum Hit {
    /// `nc -z`: one TCP SYN (the server answers RST).
    Nc(u16),
    /// `echo | nc -u`: one UDP datagram. (netcat-openbsd's `nc -u -z` sends nothing unless
    /// `-v` is given, so a line is piped instead.)
    NcU(u16),
}

/// Sends `hits` in order from client `k` to `dst` with netcat, in one shell.
pub fn send(lab: &Lab, k: usize, dst: IpAddr, hits: &[Hit]) {
    let mut script = String::new();
    for h in hits {
        match h {
            Hit::Nc(p) => script.push_str(&format!("nc -z -w1 {dst} {p}; ")),
            Hit::NcU(p) => script.push_str(&format!("echo | nc -u -w1 {dst} {p}; ")),
        }
    }
    script.push_str("true");
    lab.client(k).sh(&script).unwrap_or_else(|e| panic!("{e}"));
}

/// `nc -z` to each port, in order.
pub fn nc_tcp(lab: &Lab, k: usize, dst: IpAddr, ports: &[u16]) {
    let hits: Vec<Hit> = ports.iter().map(|&p| Hit::Nc(p)).collect();
    send(lab, k, dst, &hits);
}

/// `echo | nc -u` to each port, in order.
pub fn nc_udp(lab: &Lab, k: usize, dst: IpAddr, ports: &[u16]) {
    let hits: Vec<Hit> = ports.iter().map(|&p| Hit::NcU(p)).collect();
    send(lab, k, dst, &hits);
}

/// The lines of a file (none if it does not exist).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Waits until `path` has at least `n` lines; returns them.
pub fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    if !wait_until(T, || lines(path).len() >= n) {
        panic!(
            "{} has {} lines after {T:?}, expected at least {n}: {:?}",
            path.display(),
            lines(path).len(),
            lines(path)
        );
    }
    lines(path)
}
