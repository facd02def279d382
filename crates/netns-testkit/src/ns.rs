//! One network namespace: running commands and threads inside it, deleting it.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::child::ChildGuard;
use crate::error::{Error, Result};

/// Where `ip netns add` puts the namespace handles.
pub const NETNS_DIR: &str = "/run/netns";

/// Prefix of every namespace this kit creates (followed by the creating process id).
pub const NS_PREFIX: &str = "ntk";

/// `ip netns add` sets up the shared mount of [`NETNS_DIR`] the first time it runs; serialize
/// creations inside one process so parallel test threads do not race on that.
static CREATE_LOCK: Mutex<()> = Mutex::new(());

static LOG_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Runs the host's `ip` with `args`; an error holds the command line and `ip`'s output.
pub(crate) fn ip(args: &[&str]) -> Result<Output> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("cannot run `ip {}`", args.join(" ")), e))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::command(&format!("ip {}", args.join(" ")), &out))
    }
}

/// A network namespace created by this kit. Dropping it kills every process still inside it and
/// deletes it.
#[derive(Debug)]
pub struct Ns {
    name: String,
    /// Directory for the logs of [`Ns::spawn`].
    dir: PathBuf,
}

impl Ns {
    /// Creates the namespace `name` (it must not exist) with its loopback interface up. `dir` is
    /// where [`Ns::spawn`] writes the output of spawned programs.
    pub fn create(name: &str, dir: &Path) -> Result<Ns> {
        {
            let _lock = CREATE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            ip(&["netns", "add", name])?;
        }
        // From here on, Drop deletes the namespace even if the next step fails.
        let ns = Ns {
            name: name.to_string(),
            dir: dir.to_path_buf(),
        };
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (as in `ip netns list`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's handle file, `/run/netns/NAME`.
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// A command that runs `program` inside the namespace (`ip netns exec NAME program`). `ip`
    /// execs the program, so the child's pid is the program's pid. Add arguments, stdio, ... as
    /// with any [`Command`].
    pub fn cmd(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec"]).arg(&self.name).arg(program);
        c
    }

    fn cmd_args(&self, args: &[&str]) -> Result<Command> {
        let (program, rest) = args
            .split_first()
            .ok_or_else(|| Error::new(format!("netns {}: empty command line", self.name)))?;
        let mut c = self.cmd(program);
        c.args(rest);
        Ok(c)
    }

    fn cmdline(&self, args: &[&str]) -> String {
        format!("ip netns exec {} {}", self.name, args.join(" "))
    }

    /// Runs `args` (program and arguments) inside the namespace with stdin from /dev/null and
    /// returns its output, whatever its exit status.
    pub fn output(&self, args: &[&str]) -> Result<Output> {
        self.cmd_args(args)?
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::io(format!("cannot run `{}`", self.cmdline(args)), e))
    }

    /// Runs `args` inside the namespace; fails unless it exits with status 0. The error holds the
    /// command line, the status, stdout and stderr.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        let out = self.output(args)?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(Error::command(&self.cmdline(args), &out))
        }
    }

    /// Runs `args` inside the namespace and returns its stdout as (lossy) UTF-8; fails unless it
    /// exits with status 0.
    pub fn run_stdout(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a shell script (`sh -c script`) inside the namespace; fails unless it exits with 0.
    pub fn sh(&self, script: &str) -> Result<Output> {
        self.run(&["sh", "-c", script])
    }

    /// Starts `args` inside the namespace in the background, stdin from /dev/null, stdout and
    /// stderr both appended to a fresh log file ([`ChildGuard::log_path`], read it with
    /// [`ChildGuard::log`] or [`crate::wait_for_file_line`]). The child leads its own process
    /// group; dropping the guard kills that group.
    pub fn spawn(&self, args: &[&str]) -> Result<ChildGuard> {
        let n = LOG_COUNTER.fetch_add(1, Ordering::Relaxed);
        let prog = args
            .first()
            .map(|p| Path::new(p).file_name().unwrap_or(OsStr::new(p)))
            .unwrap_or(OsStr::new("cmd"))
            .to_string_lossy()
            .into_owned();
        let log = self.dir.join(format!("{}-{prog}-{n}.log", self.name));
        let file = File::create(&log)
            .map_err(|e| Error::io(format!("cannot create log file {}", log.display()), e))?;
        let file2 = file
            .try_clone()
            .map_err(|e| Error::io(format!("cannot dup log file {}", log.display()), e))?;
        let mut c = self.cmd_args(args)?;
        c.stdin(Stdio::null()).stdout(file).stderr(file2);
        ChildGuard::spawn_logged(c, &self.cmdline(args), Some(log))
    }

    /// Starts `cmd` (typically from [`Ns::cmd`], with your own stdio) and guards it.
    pub fn spawn_cmd(&self, cmd: Command) -> Result<ChildGuard> {
        let line = format!("{cmd:?}");
        ChildGuard::spawn_logged(cmd, &line, None)
    }

    /// Runs `f` on a new thread that has entered this namespace and waits for it. Sockets created
    /// by `f` belong to the namespace for their whole life, even once handed back to the caller,
    /// so this is the way to get an in-process socket inside the lab.
    pub fn run_in<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let file = self.open_handle()?;
        std::thread::scope(|s| {
            let h = s.spawn(move || -> Result<R> {
                enter(&file, &self.name)?;
                Ok(f())
            });
            h.join().unwrap_or_else(|_| {
                Err(Error::new(format!("netns {}: thread panicked", self.name)))
            })
        })
    }

    /// Starts a background thread inside this namespace running `f`; returns once the thread has
    /// entered the namespace.
    pub fn spawn_thread<F, R>(&self, f: F) -> Result<std::thread::JoinHandle<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let file = self.open_handle()?;
        let name = self.name.clone();
        let (tx, rx) = std::sync::mpsc::channel::<Result<()>>();
        let h = std::thread::Builder::new()
            .name(format!("netns-{name}"))
            .spawn(move || {
                let entered = enter(&file, &name);
                let ok = entered.is_ok();
                let _ = tx.send(entered);
                // The caller already got the error and never sees this handle; never run `f`
                // outside the lab.
                assert!(ok, "netns {name}: setns failed, thread not started");
                drop(file);
                f()
            })
            .map_err(|e| Error::io(format!("netns {}: cannot spawn thread", self.name), e))?;
        match rx.recv() {
            Ok(Ok(())) => Ok(h),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::new(format!(
                "netns {}: thread died before entering the namespace",
                self.name
            ))),
        }
    }

    fn open_handle(&self) -> Result<File> {
        let p = self.path();
        File::open(&p).map_err(|e| Error::io(format!("cannot open {}", p.display()), e))
    }

    /// Process ids of every process inside the namespace (`ip netns pids`).
    pub fn pids(&self) -> Result<Vec<u32>> {
        let out = ip(&["netns", "pids", &self.name])?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect())
    }

    /// Sends SIGKILL to every process in the namespace until none is left (at most ~2 s).
    /// Returns how many processes were still there at the start.
    pub fn kill_all(&self) -> Result<usize> {
        let first = self.pids()?;
        let n = first.len();
        let mut pids = first;
        for _ in 0..100 {
            if pids.is_empty() {
                return Ok(n);
            }
            for pid in &pids {
                if let Ok(p) = libc::pid_t::try_from(*pid) {
                    // SAFETY: kill(2) has no memory-safety preconditions.
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
            }
            std::thread::sleep(Duration::from_millis(20));
            pids = self.pids()?;
        }
        Err(Error::new(format!(
            "netns {}: processes {pids:?} survive SIGKILL",
            self.name
        )))
    }
}

fn enter(file: &File, name: &str) -> Result<()> {
    // SAFETY: setns(2) on a valid open fd; it only changes this thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::io(
            format!("setns into netns {name}"),
            std::io::Error::last_os_error(),
        ))
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        if let Err(e) = self.kill_all() {
            eprintln!("netns-testkit: {e}");
        }
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("netns-testkit: cannot delete netns {}: {e}", self.name);
        }
    }
}

/// Deletes namespaces left behind by test processes that died without cleaning up (killed with
/// SIGKILL, aborted): every namespace named `ntk<pid>-...` whose process `<pid>` no longer
/// exists. Returns the names deleted. [`crate::Lab::new`] calls it once per process.
pub fn cleanup_stale() -> Result<Vec<String>> {
    let out = ip(&["netns", "list"])?;
    let mut deleted = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let ns = Ns {
            name: name.to_string(),
            dir: std::env::temp_dir(),
        };
        drop(ns);
        deleted.push(name.to_string());
    }
    Ok(deleted)
}
