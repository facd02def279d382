//! A child process that is killed when its guard goes out of scope.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Owns a child process. On drop, if the child is still running, its process group and the
/// child itself get SIGKILL and the child is reaped, so no test leaves a daemon behind.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    cmdline: String,
    log: Option<PathBuf>,
    status: Option<ExitStatus>,
}

impl ChildGuard {
    /// Spawns `cmd` in its own process group and guards it.
    pub fn spawn(cmd: Command) -> Result<ChildGuard> {
        let line = format!("{cmd:?}");
        Self::spawn_logged(cmd, &line, None)
    }

    pub(crate) fn spawn_logged(
        mut cmd: Command,
        cmdline: &str,
        log: Option<PathBuf>,
    ) -> Result<ChildGuard> {
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("cannot start `{cmdline}`"), e))?;
        Ok(ChildGuard {
            child,
            cmdline: cmdline.to_string(),
            log,
            status: None,
        })
    }

    /// Guards an already spawned child (it need not lead a process group).
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard {
            cmdline: format!("pid {}", child.id()),
            child,
            log: None,
            status: None,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The command line it was started with (for messages).
    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    /// The underlying [`Child`] (for its piped stdio, if any).
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The file receiving stdout and stderr, for children started by [`crate::Ns::spawn`].
    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// Everything the child wrote to its log file so far (empty if it has none).
    pub fn log(&self) -> String {
        self.log
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits until a line of the child's log contains `needle`; returns that line. The error
    /// shows the whole log and whether the child has exited.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        let Some(path) = self.log.clone() else {
            return Err(Error::new(format!(
                "`{}` has no log file (not started with Ns::spawn)",
                self.cmdline
            )));
        };
        match crate::wait::wait_for_file_line(&path, needle, timeout) {
            Ok(l) => Ok(l),
            Err(_) => {
                let state = match self.try_wait() {
                    Ok(Some(st)) => format!("exited: {st}"),
                    Ok(None) => "still running".to_string(),
                    Err(e) => e.to_string(),
                };
                Err(Error::new(format!(
                    "no line containing {needle:?} within {timeout:?} in the output of `{}` ({state}); output:\n{}",
                    self.cmdline,
                    self.log()
                )))
            }
        }
    }

    /// Sends signal `sig` (e.g. `libc::SIGHUP`) to the child.
    pub fn signal(&self, sig: i32) -> Result<()> {
        if self.status.is_some() {
            return Err(Error::new(format!(
                "cannot signal `{}`: it has exited",
                self.cmdline
            )));
        }
        let pid = libc::pid_t::try_from(self.child.id())
            .map_err(|_| Error::new(format!("pid {} out of range", self.child.id())))?;
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our unreaped child.
        if unsafe { libc::kill(pid, sig) } == 0 {
            Ok(())
        } else {
            Err(Error::io(
                format!("kill({pid}, {sig}) for `{}`", self.cmdline),
                std::io::Error::last_os_error(),
            ))
        }
    }

    /// The exit status if the child has exited, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if let Some(st) = self.status {
            return Ok(Some(st));
        }
        let st = self
            .child
            .try_wait()
            .map_err(|e| Error::io(format!("waiting for `{}`", self.cmdline), e))?;
        self.status = st;
        Ok(st)
    }

    /// Waits at most `timeout` for the child to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_wait()? {
                return Ok(Some(st));
            }
            if Instant::now() >= end {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM, waits up to `grace`, then SIGKILL; returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> Result<ExitStatus> {
        if let Some(st) = self.try_wait()? {
            return Ok(st);
        }
        self.signal(libc::SIGTERM)?;
        if let Some(st) = self.wait_timeout(grace)? {
            return Ok(st);
        }
        self.kill();
        self.try_wait()?
            .ok_or_else(|| Error::new(format!("`{}` survived SIGKILL", self.cmdline)))
    }

    /// SIGKILL to the child's process group and the child, then reap it.
    pub fn kill(&mut self) {
        if self.status.is_some() {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) has no memory-safety preconditions. -pid only addresses the group
            // this child leads (ESRCH if it leads none).
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
        }
        if let Ok(st) = self.child.wait() {
            self.status = Some(st);
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
