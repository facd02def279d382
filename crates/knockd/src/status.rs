//! `knockd --status`: counters and grants of the running daemon, over a unix socket.
//!
//! The daemon listens on `Status_Socket` (default [`DEFAULT_SOCKET`], mode 0600). A client
//! writes one line, `text` or `json`, and reads the answer until the daemon closes the socket.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

/// Where the status socket lives unless `Status_Socket` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/knockd.sock";

/// One grant, for "who is in right now?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantLine {
    pub address: String,
    /// `tcp/22`
    pub port: String,
    pub seconds_left: u64,
}

/// What `--status` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub version: String,
    pub config: String,
    pub interfaces: String,
    pub uptime_seconds: u64,
    pub doors: usize,
    /// Frames the capture delivered.
    pub packets_seen: u64,
    /// Knock-port packets given to the matcher.
    pub packets_matched: u64,
    /// Frames that were not TCP/UDP over IP (counted, not logged).
    pub packets_not_knock: u64,
    /// Frames that could not be decoded.
    pub packets_malformed: u64,
    pub attempts_tracked: usize,
    pub attempts_capacity: usize,
    pub attempts_table_bytes: usize,
    pub evictions: u64,
    pub completions: u64,
    pub timeouts: u64,
    pub replays: u64,
    pub commands_in_flight: usize,
    pub commands_refused: u64,
    pub spa_accepted: u64,
    pub spa_rejected: u64,
    /// Wake-ups of the packet loop that delivered frames (frames per wake-up =
    /// packets_seen / capture_wakeups).
    pub capture_wakeups: u64,
    pub capture_received: u64,
    pub capture_dropped: u64,
    pub capture_if_dropped: u64,
    pub grants: Vec<GrantLine>,
}

impl Snapshot {
    /// The human-readable form, in the style of `wg show`.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let mut kv = |k: &str, v: String| s.push_str(&format!("  {k}: {v}\n"));
        kv("version", self.version.clone());
        kv("config", self.config.clone());
        kv("listening on", self.interfaces.clone());
        kv("uptime", format!("{} s", self.uptime_seconds));
        kv("doors", self.doors.to_string());
        kv(
            "packets",
            format!(
                "{} seen, {} matched, {} not knocks, {} malformed",
                self.packets_seen,
                self.packets_matched,
                self.packets_not_knock,
                self.packets_malformed
            ),
        );
        kv(
            "capture",
            format!(
                "{} received, {} dropped, {} dropped by the interface, {} wake-ups",
                self.capture_received,
                self.capture_dropped,
                self.capture_if_dropped,
                self.capture_wakeups
            ),
        );
        kv(
            "attempts",
            format!(
                "{} tracked of {} ({} KiB table), {} evicted, {} timed out",
                self.attempts_tracked,
                self.attempts_capacity,
                self.attempts_table_bytes / 1024,
                self.evictions,
                self.timeouts
            ),
        );
        kv(
            "completions",
            format!(
                "{} ({} rotating replays refused)",
                self.completions, self.replays
            ),
        );
        kv(
            "commands",
            format!(
                "{} in flight, {} refused",
                self.commands_in_flight, self.commands_refused
            ),
        );
        kv(
            "spa",
            format!(
                "{} accepted, {} rejected",
                self.spa_accepted, self.spa_rejected
            ),
        );
        let mut out = format!("knockd\n{s}");
        if self.grants.is_empty() {
            out.push_str("\ngrants: none\n");
        } else {
            out.push_str("\ngrants:\n");
            for g in &self.grants {
                out.push_str(&format!(
                    "  {:<40} {:<10} {} s left\n",
                    g.address, g.port, g.seconds_left
                ));
            }
        }
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// Binds the status socket: replaces a stale socket file, refuses to steal one a live daemon
/// answers on.
pub fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!(
                    "status socket {} is in use by another knockd",
                    path.display()
                ),
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot bind status socket {}: {e}", path.display()),
        )
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Removes the socket file when dropped.
pub struct SocketFile(pub PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Client side of `knockd --status`: asks the daemon and returns its answer.
pub fn query(path: &Path, json: bool) -> Result<String, String> {
    let mut s = UnixStream::connect(path).map_err(|e| {
        format!(
            "cannot reach the daemon's status socket {}: {e} (is knockd running? is Status_Socket set to another path?)",
            path.display()
        )
    })?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    s.write_all(if json { b"json\n" } else { b"text\n" })
        .map_err(|e| format!("status socket {}: {e}", path.display()))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| format!("status socket {}: {e}", path.display()))?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_counter_names_tools_rely_on() {
        let s = Snapshot {
            packets_seen: 5,
            grants: vec![GrantLine {
                address: "198.18.1.2".into(),
                port: "tcp/22".into(),
                seconds_left: 29,
            }],
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        for key in [
            "packets_seen",
            "packets_matched",
            "attempts_tracked",
            "attempts_capacity",
            "evictions",
            "completions",
            "capture_received",
            "capture_dropped",
            "capture_if_dropped",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["packets_seen"], 5);
        assert_eq!(v["grants"][0]["port"], "tcp/22");
        let text = s.to_text();
        assert!(
            text.contains("198.18.1.2") && text.contains("29 s left"),
            "{text}"
        );
    }
}
