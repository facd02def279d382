//! Running the `nft` program for the (rare) ruleset loads: always in the network namespace
//! the backend was opened in, with `TZ=UTC` (see `ruleset.rs` on time zones) and `LC_ALL=C`.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::NftError;

/// Where `nft` is looked for when the configuration does not say.
const NFT_CANDIDATES: [&str; 3] = ["/usr/sbin/nft", "/sbin/nft", "/usr/local/sbin/nft"];

/// The default `nft` path: the first that exists of the usual places, else `nft` (PATH).
pub fn default_nft_path() -> PathBuf {
    NFT_CANDIDATES
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("nft"))
}

/// The `nft` program, pinned to a network namespace.
#[derive(Debug)]
pub(crate) struct Nft {
    path: PathBuf,
    /// `/proc/thread-self/ns/net` of the thread that opened the backend: children enter it
    /// before exec, so `nft` always changes the same ruleset as our netlink socket.
    netns: Option<File>,
    /// Identity (device, inode) of that namespace.
    netns_id: Option<(u64, u64)>,
}

fn current_netns_id() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/proc/thread-self/ns/net").ok()?;
    Some((m.dev(), m.ino()))
}

/// Output of a successful run.
pub(crate) struct NftOutput {
    pub stdout: String,
}

impl Nft {
    pub(crate) fn new(path: PathBuf) -> Nft {
        Nft {
            path,
            netns: File::open("/proc/thread-self/ns/net").ok(),
            netns_id: current_netns_id(),
        }
    }

    /// Runs `nft ARGS` with `stdin` fed in. `what` names the operation for messages.
    pub(crate) fn run(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        what: &str,
    ) -> Result<NftOutput, NftError> {
        let mut cmd = Command::new(&self.path);
        cmd.args(args)
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Enter the backend's namespace if this thread is elsewhere (it normally is not).
        if let Some(ns) = self
            .netns
            .as_ref()
            .filter(|_| current_netns_id() != self.netns_id)
        {
            let fd = ns.as_raw_fd();
            // SAFETY: only setns(2), an async-signal-safe system call, runs between fork and
            // exec; `fd` stays open in the child until exec.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = cmd.spawn().map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT | libc::EACCES | libc::ENOTDIR) => NftError::NftMissing {
                path: self.path.clone(),
                reason: e.to_string(),
            },
            Some(libc::EPERM) => NftError::PermissionDenied {
                what: format!("entering the network namespace to run nft ({what})"),
            },
            _ => NftError::io(format!("cannot run {} for {what}", self.path.display()), &e),
        })?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // An early exit of nft shows in its status and stderr; ignore EPIPE here.
            let _ = pipe.write_all(text.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| NftError::io(format!("waiting for nft ({what})"), &e))?;
        if out.status.success() {
            return Ok(NftOutput {
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            });
        }
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        Err(classify_failure(what, &stderr, &out.status.to_string()))
    }

    /// Checks that `nft` can be started (`nft --version`); returns its version line.
    pub(crate) fn version(&self) -> Result<String, NftError> {
        let out = self.run(&["--version"], None, "nft --version")?;
        Ok(out.stdout.trim().to_string())
    }
}

/// Turns `nft`'s error output into an error an administrator understands.
pub(crate) fn classify_failure(what: &str, stderr: &str, status: &str) -> NftError {
    if stderr.contains("Operation not permitted") {
        return NftError::PermissionDenied {
            what: what.to_string(),
        };
    }
    if stderr.contains("Protocol not supported") || stderr.contains("Address family not supported")
    {
        return NftError::Unsupported {
            detail: first_lines(stderr, 3),
        };
    }
    let text = if stderr.trim().is_empty() {
        format!("nft exited with {status} and no message")
    } else {
        first_lines(stderr, 6)
    };
    NftError::NftFailed {
        target: what.to_string(),
        stderr: text,
    }
}

fn first_lines(s: &str, n: usize) -> String {
    s.lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures() {
        let e = classify_failure(
            "table inet knockd",
            "Error: Could not process rule: Operation not permitted\nadd table inet knockd\n^^^^\n",
            "exit status: 1",
        );
        assert!(matches!(e, NftError::PermissionDenied { .. }), "{e:?}");
        assert!(e.to_string().contains("CAP_NET_ADMIN"));
        let e = classify_failure(
            "t",
            "Error: syntax error, unexpected junk\nadd rule x\n\n    ^^\n",
            "exit status: 1",
        );
        assert_eq!(
            e.to_string(),
            "nft rejected the knockd ruleset for t: Error: syntax error, unexpected junk | add rule x |     ^^"
        );
        let e = classify_failure("t", "", "signal: 9");
        assert!(e.to_string().contains("signal: 9"), "{e}");
    }

    #[test]
    fn missing_program() {
        let nft = Nft::new(PathBuf::from("/nonexistent/nft"));
        let e = nft.version().unwrap_err();
        assert!(matches!(e, NftError::NftMissing { .. }), "{e:?}");
        assert!(
            e.to_string().contains("install the `nftables` package"),
            "{e}"
        );
    }
}
