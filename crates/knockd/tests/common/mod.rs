//! Harness for the daemon's end-to-end tests: our `knockd` in the server namespace of a
//! [`Lab`], knocks from client namespaces with the Debian `knock` (the reference client), our
//! `knock`, or `hping3` for hand-made TCP flags.
//!
//! Every configuration written by [`Knockd::start`] gets the same `[options]` (a LogFile and a
//! Status_Socket inside the lab's directory, so parallel tests never share a file) and a
//! one-port UDP door `[sync]` on port [`SYNC_PORT`]. Knocking it after the packets under test
//! and waiting for its `OPEN SESAME` proves that the daemon has processed everything sent
//! before (packets of one source over one link arrive in order), so "the door did not open"
//! can be asserted without sleeping. The sync knock is a watched packet: it resets the
//! source's progress on the other doors, so it only ever comes last.

#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use netns_testkit::{ChildGuard, Lab, bin, count_lines, wait_for_file_line, wait_until};

/// Patience for anything that should happen "at once".
pub const T: Duration = Duration::from_secs(5);
/// The reference client (Debian package `knockd`).
pub const DEBIAN_KNOCK: &str = "/usr/bin/knock";
/// The `[sync]` door's port (UDP).
pub const SYNC_PORT: u16 = 5999;

/// The `[options]` section: LogFile and Status_Socket in the lab directory.
pub fn options(lab: &Lab) -> String {
    format!(
        "[options]\n LogFile = {}\n Status_Socket = {}\n",
        lab.path("knockd.log").display(),
        lab.path("knockd.sock").display()
    )
}

/// A whole configuration: [`options`], `doors`, then the `[sync]` door.
pub fn config(lab: &Lab, doors: &str) -> String {
    format!(
        "{}{doors}\n[sync]\n sequence = {SYNC_PORT}:udp\n",
        options(lab)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("lab paths are UTF-8")
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
    /// Writes `knockd.conf` ([`config`] of `doors`), starts knockd on `ifaces` and waits for
    /// its `starting up` log line (written once the capture is open).
    pub fn start(lab: &Lab, ifaces: &str, doors: &str) -> Knockd {
        let conf = lab.write_file("knockd.conf", &config(lab, doors)).unwrap();
        Knockd::start_conf(lab, ifaces, &conf, &[])
    }

    /// Starts knockd with an existing configuration (whose LogFile and Status_Socket must be
    /// those of [`options`]) and extra arguments.
    pub fn start_conf(lab: &Lab, ifaces: &str, conf: &Path, extra: &[&str]) -> Knockd {
        let knockd = bin("knockd").unwrap();
        let mut args = vec![s(&knockd), "-i", ifaces, "-c", s(conf)];
        args.extend_from_slice(extra);
        let child = lab.server().spawn(&args).unwrap();
        let mut d = Knockd {
            child,
            log: lab.path("knockd.log"),
            conf: conf.to_path_buf(),
            socket: lab.path("knockd.sock"),
        };
        d.wait_log("starting up, listening on ");
        d
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
        self.count(&format!("{src}: {door}: OPEN SESAME"))
    }

    /// Waits until `door` has opened `n` times for `src`.
    pub fn wait_opened(&mut self, src: IpAddr, door: &str, n: usize) {
        self.wait_count(&format!("{src}: {door}: OPEN SESAME"), n);
    }

    /// Knocks the `[sync]` door from client `k` (over IPv6 if `v6`) and waits until the daemon
    /// has logged it: everything client `k` sent before has been processed.
    pub fn sync(&mut self, lab: &Lab, k: usize, v6: bool) {
        let src = lab.client_ip(k, v6);
        let n = self.opened(src, "sync");
        knock(
            lab,
            k,
            &[
                &lab.server_ip(k, v6).to_string(),
                &format!("{SYNC_PORT}:udp"),
            ],
        );
        self.wait_opened(src, "sync", n + 1);
    }

    /// Panics (with the daemon's output) unless it is still running.
    pub fn assert_running(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            panic!("knockd is not running\n{}", self.state());
        }
    }

    /// `knockd --status -c <conf>` run in the server namespace.
    pub fn status_cli(&self, lab: &Lab) -> Output {
        let knockd = bin("knockd").unwrap();
        lab.server()
            .output(&[s(&knockd), "--status", "-c", s(&self.conf)])
            .unwrap()
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

    /// Waits for SIGTERM's effect: the exit status, or a panic after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        match self.child.wait_timeout(limit).unwrap() {
            Some(st) => st,
            None => panic!("knockd still running after {limit:?}\n{}", self.state()),
        }
    }
}

fn run_in_client(lab: &Lab, k: usize, args: &[&str]) -> String {
    lab.client(k)
        .run_stdout(args)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The Debian `knock` in client `k`'s namespace.
pub fn knock(lab: &Lab, k: usize, args: &[&str]) -> String {
    assert!(
        Path::new(DEBIAN_KNOCK).exists(),
        "{DEBIAN_KNOCK} missing: these tests use the Debian package `knockd` as the reference client"
    );
    let mut a = vec![DEBIAN_KNOCK];
    a.extend_from_slice(args);
    run_in_client(lab, k, &a)
}

/// Our `knock` in client `k`'s namespace.
pub fn our_knock(lab: &Lab, k: usize, args: &[&str]) -> String {
    let knock = bin("knock").unwrap();
    let mut a = vec![s(&knock)];
    a.extend_from_slice(args);
    run_in_client(lab, k, &a)
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
