//! Harness for the daemon's end-to-end tests (`e2e_daemon.rs`, `e2e_grants.rs`, `e2e_spa.rs`,
//! `e2e_rotating.rs`): our `knockd` in the server namespace of a [`Lab`], knocks from client
//! namespaces with the Debian `knock` (the reference client), our `knock`, or `hping3` for
//! hand-made TCP flags. Helpers of one domain live in `support_grants` (nftables, services,
//! SPA keys) and `support_rotating` (secrets, steps, netcat), built on this module.
//!
//! Every configuration built by [`config`] gets the same `[options]` (a LogFile, a
//! Status_Socket and an SPA_Replay_File inside the lab's directory, so parallel tests never
//! share a file) and a one-port UDP door `[sync]` on port [`SYNC_PORT`] with no `open`. Knocking
//! it after the packets under test and waiting for its `OPEN SESAME` ([`Knockd::sync`]) proves
//! that the daemon has processed everything client `k` sent before (packets of one source over
//! one link arrive in order), so "the door did not open" can be asserted without sleeping. The
//! sync knock is a watched packet: it resets the source's progress on the other doors, so it
//! only ever comes last.

#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use netns_testkit::{ChildGuard, Lab, bin, count_lines, wait_for_file_line, wait_until};

/// Patience for anything that should happen "at once".
pub const T: Duration = Duration::from_secs(5);
/// The reference client (Debian package `knockd`).
pub const DEBIAN_KNOCK: &str = "/usr/bin/knock";
/// The `[sync]` door's port (UDP).
pub const SYNC_PORT: u16 = 5999;
/// Both server interfaces of a 2-client lab.
pub const IFACES: &str = "cli1,cli2";
/// The log line knockd writes once its capture is open.
const STARTED: &str = "starting up, listening on ";

/// A path as `&str` (lab paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("lab paths are UTF-8")
}

/// `[options]`: LogFile, Status_Socket and SPA_Replay_File in the lab directory, then `extra`
/// (more option lines, each ending in `\n`).
pub fn options(lab: &Lab, extra: &str) -> String {
    format!(
        "[options]\n LogFile = {}\n Status_Socket = {}\n SPA_Replay_File = {}\n{extra}",
        lab.path("knockd.log").display(),
        lab.path("knockd.sock").display(),
        lab.path("spa-replay.cache").display(),
    )
}

/// A whole configuration: [`options`] with `extra`, `doors`, then the `[sync]` door.
pub fn config(lab: &Lab, extra: &str, doors: &str) -> String {
    format!(
        "{}{doors}\n[sync]\n sequence = {SYNC_PORT}:udp\n",
        options(lab, extra)
    )
}

/// Our knockd running in the lab's server namespace.
pub struct Knockd {
    pub child: ChildGuard,
    /// The LogFile.
    pub log: PathBuf,
    pub conf: PathBuf,
    pub socket: PathBuf,
}

impl Knockd {
    /// Writes `knockd.conf` ([`config`] of `doors`, no extra options), starts knockd on
    /// `ifaces` and waits until it is listening.
    pub fn start(lab: &Lab, ifaces: &str, doors: &str) -> Knockd {
        Knockd::start_text(lab, ifaces, &config(lab, "", doors))
    }

    /// Writes `knockd.conf` with `text` (whose LogFile and Status_Socket must be those of
    /// [`options`]), starts knockd on `ifaces` and waits until it is listening.
    pub fn start_text(lab: &Lab, ifaces: &str, text: &str) -> Knockd {
        let conf = lab.write_file("knockd.conf", text).unwrap();
        Knockd::start_conf(lab, ifaces, &conf, &[])
    }

    /// Starts knockd with an existing configuration (whose LogFile and Status_Socket must be
    /// those of [`options`]) and extra arguments; waits until it is listening.
    pub fn start_conf(lab: &Lab, ifaces: &str, conf: &Path, args: &[&str]) -> Knockd {
        Knockd::start_with(lab, &[], ifaces, conf, args)
    }

    /// Like [`Knockd::start_conf`] with `prefix` (e.g. `setpriv ...`) before the program.
    /// Waits for a new `starting up` line (written once the capture is open, after the
    /// nftables ruleset is loaded): a restarted daemon appends to its predecessor's log.
    pub fn start_with(
        lab: &Lab,
        prefix: &[&str],
        ifaces: &str,
        conf: &Path,
        args: &[&str],
    ) -> Knockd {
        let starts = count_lines(&lab.path("knockd.log"), STARTED);
        let mut d = Knockd::spawn(lab, prefix, ifaces, conf, args);
        d.wait_count(STARTED, starts + 1);
        d
    }

    /// Starts `prefix knockd -i ifaces -c conf args` without waiting for anything.
    pub fn spawn(lab: &Lab, prefix: &[&str], ifaces: &str, conf: &Path, args: &[&str]) -> Knockd {
        let knockd = bin("knockd").unwrap();
        let mut cmd: Vec<&str> = prefix.to_vec();
        cmd.extend([s(&knockd), "-i", ifaces, "-c", s(conf)]);
        cmd.extend_from_slice(args);
        let child = lab.server().spawn(&cmd).unwrap();
        Knockd {
            child,
            log: lab.path("knockd.log"),
            conf: conf.to_path_buf(),
            socket: lab.path("knockd.sock"),
        }
    }

    /// Whether it is still running, its output (stdout + stderr) and its log, for messages.
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

    /// The log file's content ("" if it does not exist).
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

    /// Lines of the log containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        count_lines(&self.log, needle)
    }

    /// Waits until at least `n` log lines contain `needle`; returns the last such line.
    pub fn wait_count(&mut self, needle: &str, n: usize) -> String {
        if !wait_until(T, || self.count(needle) >= n) {
            panic!(
                "fewer than {n} log lines containing {needle:?} after {T:?} (got {})\n{}",
                self.count(needle),
                self.state()
            );
        }
        self.log_text()
            .lines()
            .rfind(|l| l.contains(needle))
            .unwrap_or_default()
            .to_string()
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

    /// Knocks the `[sync]` door from client `k` (over IPv6 if `v6`) and waits until the daemon
    /// has logged it: everything client `k` sent before over that family has been processed.
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

    /// `knockd --status -c <conf>` run in the server namespace (the real command line).
    pub fn status_cli(&self, lab: &Lab) -> Output {
        let knockd = bin("knockd").unwrap();
        lab.server()
            .output(&[s(&knockd), "--status", "-c", s(&self.conf)])
            .unwrap()
    }

    /// [`Knockd::status_cli`]'s stdout; panics (with the daemon's output) unless it succeeds.
    pub fn status_text(&mut self, lab: &Lab) -> String {
        let out = self.status_cli(lab);
        if !out.status.success() {
            panic!("knockd --status failed: {out:?}\n{}", self.state());
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The status socket's JSON answer.
    pub fn status_json(&self) -> serde_json::Value {
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
        let v = self.status_json();
        v[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {name:?} in {v}"))
    }

    /// The grants the status answer lists: (address, `proto/port`, seconds left).
    pub fn status_grants(&self) -> Vec<(String, String, u64)> {
        let v = self.status_json();
        v["grants"]
            .as_array()
            .unwrap_or_else(|| panic!("no grants array in {v}"))
            .iter()
            .map(|g| {
                (
                    g["address"].as_str().unwrap().to_string(),
                    g["port"].as_str().unwrap().to_string(),
                    g["seconds_left"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// Waits for the exit (e.g. after SIGTERM): the exit status, or a panic after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        self.exit_within(limit, &format!("after {limit:?}"))
    }

    /// Sends `sig` and waits for the exit.
    pub fn stop_with(&mut self, sig: i32) -> ExitStatus {
        self.child.signal(sig).unwrap();
        self.exit_within(T, &format!("{T:?} after signal {sig}"))
    }

    fn exit_within(&mut self, limit: Duration, when: &str) -> ExitStatus {
        match self.child.wait_timeout(limit).unwrap() {
            Some(st) => st,
            None => panic!("knockd still running {when}\n{}", self.state()),
        }
    }
}

/// Runs `args` in client `k`'s namespace; panics with the command line, status and output
/// unless it exits with 0.
fn run_in_client(lab: &Lab, k: usize, args: &[&str]) -> Output {
    lab.client(k)
        .run(args)
        .unwrap_or_else(|e| panic!("client {k}: {e}"))
}

/// The Debian `knock` in client `k`'s namespace; its output (the command must succeed).
pub fn knock(lab: &Lab, k: usize, args: &[&str]) -> Output {
    assert!(
        Path::new(DEBIAN_KNOCK).exists(),
        "{DEBIAN_KNOCK} missing: these tests use the Debian package `knockd` as the reference client"
    );
    let mut a = vec![DEBIAN_KNOCK];
    a.extend_from_slice(args);
    run_in_client(lab, k, &a)
}

/// Our `knock` in client `k`'s namespace; its output (the command must succeed).
pub fn our_knock(lab: &Lab, k: usize, args: &[&str]) -> Output {
    let knock = bin("knock").unwrap();
    let mut a = vec![s(&knock)];
    a.extend_from_slice(args);
    run_in_client(lab, k, &a)
}

/// Like [`our_knock`] with `String` arguments.
pub fn our_knock_s(lab: &Lab, k: usize, args: &[String]) -> Output {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    our_knock(lab, k, &a)
}

/// One TCP packet from client `k` to `dst:port` with hping3's `flags` (e.g. `["-S", "-A"]`).
pub fn hping(lab: &Lab, k: usize, flags: &[&str], dst: IpAddr, port: u16) {
    let port = port.to_string();
    let dst = dst.to_string();
    let mut a = vec!["hping3", "-q", "-c", "1", "-p", &port];
    a.extend_from_slice(flags);
    a.push(&dst);
    let out = lab.client(k).output(&a).unwrap();
    // hping3 prints its statistics on stderr.
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("1 packets transmitted"),
        "hping3 {a:?} did not send: {out:?}"
    );
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

/// Wall clock, since the Unix epoch.
pub fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

/// Nanoseconds since the epoch from a file written by `date +%s%N`.
pub fn read_ns(path: &Path) -> u128 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {text:?}: {e}", path.display()))
}

/// Checks knockd's logfile shape `[YYYY-MM-DD HH:MM] message` on every line; returns the
/// stamps and messages.
pub fn stamped(text: &str) -> Vec<(String, String)> {
    text.split_inclusive('\n')
        .map(|l| {
            assert!(l.ends_with('\n'), "unterminated log line {l:?}");
            let l = &l[..l.len() - 1];
            let b = l.as_bytes();
            let shape = "[dddd-dd-dd dd:dd] ";
            assert!(
                l.len() > shape.len(),
                "log line {l:?} is too short:\n{text}"
            );
            for (i, c) in shape.bytes().enumerate() {
                let ok = if c == b'd' {
                    b[i].is_ascii_digit()
                } else {
                    b[i] == c
                };
                assert!(ok, "log line {l:?} does not start with {shape:?}:\n{text}");
            }
            (l[1..17].to_string(), l[shape.len()..].to_string())
        })
        .collect()
}
