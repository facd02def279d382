//! Daemon mode (`-d`) and the pid file.
//!
//! `-d` forks before the async runtime starts. The parent waits until the child reports that
//! it is listening (or why it could not start), so `knockd -d` exits non-zero on a startup
//! failure instead of claiming success.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::unistd::{ForkResult, dup2_stderr, dup2_stdin, dup2_stdout, fork, pipe, setsid};

/// The child's side of daemonization: how it tells the waiting parent how startup went.
pub struct Daemonized {
    report: Option<fs::File>,
}

impl Daemonized {
    /// Tells the parent that startup succeeded; it exits 0.
    pub fn ready(&mut self) {
        if let Some(mut f) = self.report.take() {
            let _ = f.write_all(b"\0");
        }
    }

    /// Tells the parent that startup failed with this message; it prints it and exits 1.
    pub fn failed(&mut self, msg: &str) {
        if let Some(mut f) = self.report.take() {
            let _ = f.write_all(msg.as_bytes());
        }
    }
}

/// Forks into the background. Returns in the child only; the parent waits for the child's
/// report and exits the process.
pub fn daemonize() -> io::Result<Daemonized> {
    let (read_end, write_end): (OwnedFd, OwnedFd) = pipe().map_err(io::Error::from)?;
    // SAFETY: called before any thread (the async runtime) is started.
    match unsafe { fork() }.map_err(io::Error::from)? {
        ForkResult::Parent { .. } => {
            drop(write_end);
            let mut report = String::new();
            let mut f = fs::File::from(read_end);
            let _ = f.read_to_string(&mut report);
            if report == "\0" {
                std::process::exit(0);
            }
            if report.is_empty() {
                report = "the daemon exited during startup".to_string();
            }
            eprintln!("knockd: {}", report.trim_end_matches('\0'));
            std::process::exit(1);
        }
        ForkResult::Child => {
            drop(read_end);
            setsid().map_err(io::Error::from)?;
            // A second fork: the daemon is not a session leader, so it can never acquire a
            // controlling terminal.
            // SAFETY: still single-threaded.
            if let ForkResult::Parent { .. } = unsafe { fork() }.map_err(io::Error::from)? {
                std::process::exit(0);
            }
            std::env::set_current_dir("/")?;
            let null = fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
            dup2_stdin(&null).map_err(io::Error::from)?;
            dup2_stdout(&null).map_err(io::Error::from)?;
            dup2_stderr(&null).map_err(io::Error::from)?;
            debug_assert!(null.as_raw_fd() > 2);
            Ok(Daemonized {
                report: Some(fs::File::from(write_end)),
            })
        }
    }
}

/// A pid file, removed when dropped (if it still holds our pid).
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: u32,
}

impl PidFile {
    /// Writes our pid to `path`.
    pub fn create(path: &Path) -> io::Result<PidFile> {
        let pid = std::process::id();
        fs::write(path, format!("{pid}\n")).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot write pid file {}: {e}", path.display()))
        })?;
        Ok(PidFile {
            path: path.to_path_buf(),
            pid,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Ok(text) = fs::read_to_string(&self.path)
            && text.trim() == self.pid.to_string()
        {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_written_and_removed() {
        let path = std::env::temp_dir().join(format!("knockd-pid-{}", std::process::id()));
        {
            let p = PidFile::create(&path).unwrap();
            assert_eq!(
                fs::read_to_string(p.path()).unwrap(),
                format!("{}\n", std::process::id())
            );
        }
        assert!(!path.exists());
        // A pid file taken over by another process is left alone.
        {
            let _p = PidFile::create(&path).unwrap();
            fs::write(&path, "1\n").unwrap();
        }
        assert!(path.exists());
        fs::remove_file(&path).unwrap();
    }

    #[test]
    fn pid_file_error_names_the_path() {
        let e = PidFile::create(Path::new("/nonexistent-dir/knockd.pid")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent-dir/knockd.pid"), "{e}");
    }
}
