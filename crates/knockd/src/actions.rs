//! The command runner: start commands, stop commands `cmd_timeout` seconds later, and the
//! guarantees around them.
//!
//! - Commands run with `/bin/sh -c` in a new session; their output goes to the daemon's
//!   stdout/stderr (which are /dev/null once daemonized).
//! - A stop command is always run once its start command has run: on time, or at once when
//!   the daemon shuts down (nothing it opened stays open), never lost to a full queue.
//! - A door completed again by the same source within [`COOLDOWN`] does not rerun its command
//!   (a single-port door cannot be used to fork-bomb the host), and at most
//!   [`MAX_RUNNING`] commands run at once, with at most [`MAX_QUEUED`] jobs in flight.

use std::collections::HashMap;
use std::net::IpAddr;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::logging::Logger;

/// Completions of the same door by the same source closer than this do not rerun commands.
pub const COOLDOWN: Duration = Duration::from_secs(2);
/// Commands running at the same time, at most.
pub const MAX_RUNNING: usize = 32;
/// Jobs (running or waiting for a slot or for their stop command), at most.
pub const MAX_QUEUED: usize = 4096;
/// How long shutdown waits for commands still running.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
const COOLDOWN_ENTRIES: usize = 4096;

/// What to run for one completed knock. Commands are already expanded (`%IP%` replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub door: String,
    pub src: IpAddr,
    pub start: Option<String>,
    pub stop: Option<String>,
    pub cmd_timeout: Duration,
    /// Subject to [`COOLDOWN`] (knocks); SPA requests are authenticated and never replayed,
    /// so they are not.
    pub cooldown: bool,
}

/// Why a job was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Same source and door within [`COOLDOWN`].
    Cooldown,
    /// Too many jobs in flight.
    Busy,
    /// The daemon is shutting down.
    ShuttingDown,
}

/// Runs jobs on the tokio runtime it is used from.
pub struct Runner {
    logger: Arc<Logger>,
    slots: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    in_flight: Arc<AtomicUsize>,
    recent: Mutex<HashMap<(IpAddr, String), Instant>>,
}

impl Runner {
    pub fn new(logger: Arc<Logger>) -> Runner {
        Runner {
            logger,
            slots: Arc::new(Semaphore::new(MAX_RUNNING)),
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            in_flight: Arc::new(AtomicUsize::new(0)),
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Jobs running or waiting (start running, or stop pending).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn cooled_down(&self, src: IpAddr, door: &str, now: Instant) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let key = (src, door.to_string());
        if let Some(&last) = recent.get(&key)
            && now.duration_since(last) < COOLDOWN
        {
            return false;
        }
        if recent.len() >= COOLDOWN_ENTRIES {
            recent.retain(|_, t| now.duration_since(*t) < COOLDOWN);
            if recent.len() >= COOLDOWN_ENTRIES {
                // Only spoofed floods get here; forgetting lets a rerun through, never a block.
                recent.clear();
            }
        }
        recent.insert(key, now);
        true
    }

    /// Starts a job in the background: the start command now, the stop command
    /// `cmd_timeout` after the start command returned.
    pub fn launch(&self, job: Job) -> Result<(), Refused> {
        if self.shutdown.is_cancelled() {
            return Err(Refused::ShuttingDown);
        }
        if job.start.is_none() && job.stop.is_none() {
            return Ok(());
        }
        if job.cooldown && !self.cooled_down(job.src, &job.door, Instant::now()) {
            return Err(Refused::Cooldown);
        }
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_QUEUED {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Busy);
        }
        let logger = Arc::clone(&self.logger);
        let slots = Arc::clone(&self.slots);
        let shutdown = self.shutdown.clone();
        let in_flight = Arc::clone(&self.in_flight);
        self.tracker.spawn(async move {
            run_job(&logger, &slots, &shutdown, job).await;
            in_flight.fetch_sub(1, Ordering::AcqRel);
        });
        Ok(())
    }

    /// Runs every pending stop command at once and waits (up to [`SHUTDOWN_GRACE`]) for
    /// commands still running. Returns whether everything finished.
    pub async fn shutdown(&self) -> bool {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(SHUTDOWN_GRACE, self.tracker.wait())
            .await
            .is_ok()
    }
}

async fn run_job(logger: &Logger, slots: &Semaphore, shutdown: &CancellationToken, job: Job) {
    if let Some(cmd) = &job.start {
        run_command(logger, slots, &job.door, cmd).await;
    }
    let Some(stop) = &job.stop else { return };
    tokio::select! {
        _ = tokio::time::sleep(job.cmd_timeout) => {
            logger.log(&format!("{}: {}: command timeout", job.src, job.door));
        }
        _ = shutdown.cancelled() => {
            logger.log(&format!("{}: {}: shutting down, running the stop command now", job.src, job.door));
        }
    }
    run_command(logger, slots, &job.door, stop).await;
}

/// Runs one command to completion, logging it and a non-zero status.
pub async fn run_command(logger: &Logger, slots: &Semaphore, door: &str, cmd: &str) {
    // The semaphore is never closed, so acquire only fails if it were; run anyway then.
    let _permit = slots.acquire().await.ok();
    logger.log(&format!("{door}: running command: {cmd}"));
    match spawn_shell(cmd) {
        Ok(mut child) => match child.wait().await {
            Ok(status) => report_status(logger, door, status),
            Err(e) => logger.error(&format!("{door}: cannot wait for command: {e}")),
        },
        Err(e) => logger.error(&format!("{door}: cannot run command: {e}")),
    }
}

fn report_status(logger: &Logger, door: &str, status: ExitStatus) {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        if code != 0 {
            logger.log(&format!(
                "{door}: command returned non-zero status code ({code})"
            ));
        }
    } else if let Some(sig) = status.signal() {
        logger.log(&format!("{door}: command killed by signal {sig}"));
    }
}

/// `/bin/sh -c cmd` in a new session.
fn spawn_shell(cmd: &str) -> std::io::Result<tokio::process::Child> {
    let mut command = tokio::process::Command::new("/bin/sh");
    command.arg("-c").arg(cmd).kill_on_drop(false);
    // SAFETY: setsid() is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    command.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::LogTargets;

    fn logger(dir: &std::path::Path) -> (Arc<Logger>, std::path::PathBuf) {
        let path = dir.join("k.log");
        let l = Logger::new(LogTargets {
            file: Some(path.clone()),
            ..Default::default()
        })
        .unwrap();
        (Arc::new(l), path)
    }

    fn tempdir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("knockd-actions-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn job(dir: &std::path::Path, src: &str, timeout_ms: u64) -> Job {
        Job {
            door: "door".into(),
            src: src.parse().unwrap(),
            start: Some(format!("echo start >> {}/out; exit 3", dir.display())),
            stop: Some(format!("echo stop >> {}/out", dir.display())),
            cmd_timeout: Duration::from_millis(timeout_ms),
            cooldown: true,
        }
    }

    #[tokio::test]
    async fn start_then_stop_with_status_logged() {
        let dir = tempdir("basic");
        let (l, log) = logger(&dir);
        let r = Runner::new(l);
        r.launch(job(&dir, "198.18.1.2", 200)).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(std::fs::read_to_string(dir.join("out")).unwrap(), "start\n");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            std::fs::read_to_string(dir.join("out")).unwrap(),
            "start\nstop\n"
        );
        let text = std::fs::read_to_string(log).unwrap();
        assert!(text.contains("door: running command: echo start"), "{text}");
        assert!(
            text.contains("door: command returned non-zero status code (3)"),
            "{text}"
        );
        assert!(text.contains("198.18.1.2: door: command timeout"), "{text}");
        assert!(r.shutdown().await);
    }

    #[tokio::test]
    async fn shutdown_runs_pending_stops_at_once() {
        let dir = tempdir("shutdown");
        let (l, _) = logger(&dir);
        let r = Runner::new(l);
        r.launch(job(&dir, "198.18.1.2", 3_600_000)).unwrap();
        r.launch(job(&dir, "2001:2::2", 3_600_000)).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = Instant::now();
        assert!(r.shutdown().await);
        assert!(t.elapsed() < Duration::from_secs(5));
        let out = std::fs::read_to_string(dir.join("out")).unwrap();
        assert_eq!(out.matches("stop").count(), 2, "{out}");
        assert_eq!(
            r.launch(job(&dir, "198.18.1.3", 1)),
            Err(Refused::ShuttingDown)
        );
    }

    #[tokio::test]
    async fn cooldown_per_source_and_door() {
        let dir = tempdir("cooldown");
        let (l, _) = logger(&dir);
        let r = Runner::new(l);
        r.launch(job(&dir, "198.18.1.2", 1)).unwrap();
        assert_eq!(r.launch(job(&dir, "198.18.1.2", 1)), Err(Refused::Cooldown));
        r.launch(job(&dir, "198.18.1.3", 1)).unwrap();
        let mut unthrottled = job(&dir, "198.18.1.2", 1);
        unthrottled.cooldown = false;
        r.launch(unthrottled).unwrap();
        assert!(r.shutdown().await);
    }

    #[tokio::test]
    async fn commands_run_in_a_new_session() {
        let dir = tempdir("setsid");
        let (l, _) = logger(&dir);
        let r = Runner::new(l);
        let out = dir.join("sid");
        r.launch(Job {
            door: "d".into(),
            src: "198.18.1.2".parse().unwrap(),
            start: Some(format!(
                "ps -o sid= -p $$ > {0}; echo $$ >> {0}",
                out.display()
            )),
            stop: None,
            cmd_timeout: Duration::ZERO,
            cooldown: true,
        })
        .unwrap();
        assert!(r.shutdown().await);
        let text = std::fs::read_to_string(out).unwrap();
        let v: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(v.len(), 2, "{text}");
        assert_eq!(v[0], v[1], "the shell leads its own session");
    }
}
