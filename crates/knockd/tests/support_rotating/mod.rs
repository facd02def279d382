//! Helpers of `e2e_rotating.rs`, on top of `crate::common` (the daemon, its configuration,
//! the knock clients): rotating doors knocked by our `knock --secret-file`, or by plain tools
//! (`nc`, `hping3`, `nmap`) with ports printed by `knock --print` or derived in the test with
//! `knock_core::rotate::sequence_at`.
//!
//! Time: a rotating door's sequence depends on the wall clock. [`fresh_step`] waits for a new
//! step when too little of the current one is left for what a test must do inside one step.

#![allow(dead_code)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine as _;
use knock_core::proto::Protocol;
use knock_core::rotate::{RotatingSpec, current_step, sequence_at};
use netns_testkit::{Lab, bin};

use crate::common::unix_now;

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
// Clients.

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
