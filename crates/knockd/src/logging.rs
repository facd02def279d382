//! knockd's log: `[YYYY-MM-DD HH:MM] message` lines in the log file, syslog (ident `knockd`,
//! facility daemon, priority notice, no pid), and `-v` / `-D` output on stdout (no timestamp,
//! as knockd; `-D` packet lines carry their own date).
//!
//! Per-source stage lines are rate-limited so a spoofed flood cannot make logging the
//! bottleneck or fill the disk; what was held back is summarised. `OPEN SESAME` and command
//! lines are never held back.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where log lines go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogTargets {
    pub file: Option<PathBuf>,
    pub syslog: bool,
    pub verbose: bool,
    pub debug: bool,
}

/// How many rate-limited lines may be written in a burst, and refilled per second.
const STAGE_BURST: u32 = 200;
const STAGE_PER_SEC: u32 = 50;
/// How often a summary of held-back lines is written at most.
const SUMMARY_EVERY: Duration = Duration::from_secs(10);

struct Limiter {
    tokens: u32,
    refilled: Instant,
    held_back: u64,
    summarised: Instant,
}

impl Limiter {
    fn new(now: Instant) -> Limiter {
        Limiter {
            tokens: STAGE_BURST,
            refilled: now,
            held_back: 0,
            summarised: now,
        }
    }

    /// Whether one more line may go out now.
    fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.duration_since(self.refilled);
        let refill = (elapsed.as_millis() as u64 * u64::from(STAGE_PER_SEC) / 1000) as u32;
        if refill > 0 {
            self.tokens = (self.tokens.saturating_add(refill)).min(STAGE_BURST);
            self.refilled = now;
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            self.held_back += 1;
            false
        }
    }

    /// A summary line when lines were held back and the last summary is old enough.
    fn summary(&mut self, now: Instant) -> Option<u64> {
        if self.held_back > 0 && now.duration_since(self.summarised) >= SUMMARY_EVERY {
            self.summarised = now;
            Some(std::mem::take(&mut self.held_back))
        } else {
            None
        }
    }
}

struct Inner {
    targets: LogTargets,
    file: Option<File>,
    limiter: Limiter,
}

/// The daemon's logger; cheap to share behind an `Arc`.
pub struct Logger {
    inner: Mutex<Inner>,
}

/// Opens the targets' log file (append) and syslog; an error names the file.
fn open_targets(targets: &LogTargets) -> io::Result<Option<File>> {
    let file = match &targets.file {
        Some(p) => Some(open_log(p).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open log file {}: {e}", p.display()),
            )
        })?),
        None => None,
    };
    if targets.syslog {
        syslog_open();
    }
    Ok(file)
}

fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The local-time stamp of log file lines: `2026-11-25 23:30`.
pub fn file_stamp() -> String {
    jiff::Zoned::now().strftime("%Y-%m-%d %H:%M").to_string()
}

/// The local-time stamp of `-D` packet lines: `2026-11-25 23:30:05` (knockd prints the month
/// 0-based; we print the real one).
pub fn debug_stamp() -> String {
    jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S").to_string()
}

fn syslog_open() {
    static IDENT: &std::ffi::CStr = c"knockd";
    // SAFETY: openlog keeps the pointer; IDENT is a 'static C string.
    unsafe { libc::openlog(IDENT.as_ptr(), 0, libc::LOG_DAEMON) }
}

fn syslog_write(priority: libc::c_int, msg: &str) {
    let Ok(text) = CString::new(msg.replace('\0', " ")) else {
        return;
    };
    // SAFETY: a constant "%s" format and a valid C string argument.
    unsafe { libc::syslog(priority, c"%s".as_ptr(), text.as_ptr()) }
}

impl Logger {
    /// Opens the log file (append) and syslog as configured. A log file that cannot be
    /// opened is an error naming it.
    pub fn new(targets: LogTargets) -> io::Result<Logger> {
        let file = open_targets(&targets)?;
        Ok(Logger {
            inner: Mutex::new(Inner {
                targets,
                file,
                limiter: Limiter::new(Instant::now()),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot corrupt a logger: keep logging.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the targets (after SIGHUP) and reopens the log file.
    pub fn reconfigure(&self, targets: LogTargets) -> io::Result<()> {
        let file = open_targets(&targets)?;
        let mut inner = self.lock();
        inner.targets = targets;
        inner.file = file;
        Ok(())
    }

    /// Whether `-v` is on.
    pub fn is_verbose(&self) -> bool {
        let inner = self.lock();
        inner.targets.verbose || inner.targets.debug
    }

    /// Whether `-D` is on.
    pub fn is_debug(&self) -> bool {
        self.lock().targets.debug
    }

    /// A knockd log line: to the log file, syslog, and stdout when verbose.
    pub fn log(&self, msg: &str) {
        let mut inner = self.lock();
        write_line(&mut inner, msg, libc::LOG_NOTICE);
    }

    /// An error: like [`Logger::log`], and always on stderr.
    pub fn error(&self, msg: &str) {
        let mut inner = self.lock();
        write_line(&mut inner, msg, libc::LOG_ERR);
        if !(inner.targets.verbose || inner.targets.debug) {
            eprintln!("knockd: {msg}");
        }
    }

    /// A warning: like [`Logger::log`] (syslog priority warning), and on stderr when stdout
    /// is not already showing it.
    pub fn warn(&self, msg: &str) {
        let mut inner = self.lock();
        let line = format!("warning: {msg}");
        write_line(&mut inner, &line, libc::LOG_WARNING);
        if !(inner.targets.verbose || inner.targets.debug) {
            eprintln!("knockd: {line}");
        }
    }

    /// A per-source line that a flood can multiply (`Stage n`, sequence timeouts): written
    /// like [`Logger::log`] within a rate limit; what is held back is counted and summarised.
    pub fn limited(&self, msg: &str) {
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.limiter.admit(now) {
            write_line(&mut inner, msg, libc::LOG_NOTICE);
        }
        if let Some(n) = inner.limiter.summary(now) {
            let line = format!("{n} per-source lines held back in the last seconds (rate limit)");
            write_line(&mut inner, &line, libc::LOG_NOTICE);
        }
    }

    /// A `-v` line on stdout only.
    pub fn verbose(&self, msg: &str) {
        let inner = self.lock();
        if inner.targets.verbose || inner.targets.debug {
            stdout_line(msg);
        }
    }

    /// A `-D` line on stdout only (callers add [`debug_stamp`] where knockd prints a date).
    pub fn debug(&self, msg: &str) {
        if self.lock().targets.debug {
            stdout_line(msg);
        }
    }
}

fn stdout_line(msg: &str) {
    let mut out = io::stdout().lock();
    // stdout may be closed (daemon mode): nothing to do about it.
    let _ = writeln!(out, "{msg}");
    let _ = out.flush();
}

fn write_line(inner: &mut Inner, msg: &str, priority: libc::c_int) {
    if let Some(f) = inner.file.as_mut() {
        // One write per line so concurrent writers never interleave within a line.
        let line = format!("[{}] {msg}\n", file_stamp());
        if let Err(e) = f.write_all(line.as_bytes()) {
            eprintln!("knockd: cannot write to the log file: {e}");
        }
    }
    if inner.targets.syslog {
        syslog_write(priority, msg);
    }
    if inner.targets.verbose || inner.targets.debug {
        stdout_line(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_bursts_then_refills_and_summarises() {
        let t0 = Instant::now();
        let mut l = Limiter::new(t0);
        let admitted = (0..1000).filter(|_| l.admit(t0)).count();
        assert_eq!(admitted, STAGE_BURST as usize);
        assert_eq!(l.summary(t0), None, "too early for a summary");
        let t1 = t0 + Duration::from_secs(1);
        let admitted = (0..1000).filter(|_| l.admit(t1)).count();
        assert_eq!(admitted, STAGE_PER_SEC as usize);
        let t2 = t0 + SUMMARY_EVERY;
        assert_eq!(l.summary(t2), Some(2000 - 200 - 50));
        assert_eq!(l.summary(t2 + SUMMARY_EVERY), None);
    }

    #[test]
    fn file_lines_have_knockd_stamp_and_no_blank_lines() {
        let dir = std::env::temp_dir().join(format!("knockd-log-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.log");
        let _ = std::fs::remove_file(&path);
        let logger = Logger::new(LogTargets {
            file: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        logger.log("198.18.1.2: door: OPEN SESAME");
        logger.verbose("not in the file");
        logger.limited("198.18.1.2: door: Stage 1");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text:?}");
        for line in &lines {
            // [YYYY-MM-DD HH:MM] message
            let b = line.as_bytes();
            assert_eq!(b[0], b'[');
            assert_eq!(&line[17..19], "] ");
            assert!(
                line[1..17]
                    .chars()
                    .all(|c| c.is_ascii_digit() || "- :".contains(c))
            );
        }
        assert!(lines[0].ends_with("] 198.18.1.2: door: OPEN SESAME"));
        assert!(!text.contains("\n\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
