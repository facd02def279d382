//! What the command line is validated against besides its own words: environment variables,
//! files (the fwknop rc file, the rotating secret) and the current user.
//!
//! [`Environment`] keeps [`crate::cli::Cli::into_mode`] free of real I/O so the unit tests can
//! feed it fake files and variables; [`SystemEnv`] is the real one.

use std::io;
use std::path::{Path, PathBuf};

/// Everything argument validation may look up outside the command line.
pub trait Environment {
    /// An environment variable (`None` when unset or not Unicode).
    fn var(&self, name: &str) -> Option<String>;
    /// Reads a whole text file.
    fn read_file(&self, path: &Path) -> io::Result<String>;
    /// Whether group or others may read `path` (a key file that should be mode 0600). Always
    /// false where the platform has no such permission bits.
    fn readable_by_others(&self, path: &Path) -> bool;
    /// The name of the user this process runs as, from the system's user database (the last
    /// fallback for the SPA user name).
    fn account_name(&self) -> Option<String>;

    /// The home directory: `$HOME`, or `%USERPROFILE%` on Windows.
    fn home_dir(&self) -> Option<PathBuf> {
        self.var("HOME")
            .or_else(|| self.var("USERPROFILE"))
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
    }
}

/// The real environment of the process.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemEnv;

impl Environment for SystemEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read_file(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    #[cfg(unix)]
    fn readable_by_others(&self, path: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }

    #[cfg(not(unix))]
    fn readable_by_others(&self, _path: &Path) -> bool {
        false
    }

    #[cfg(unix)]
    fn account_name(&self) -> Option<String> {
        unix_account_name()
    }

    #[cfg(not(unix))]
    fn account_name(&self) -> Option<String> {
        None
    }
}

/// The user name of the effective uid, via `getpwuid_r`.
#[cfg(unix)]
fn unix_account_name() -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: `passwd` is plain old data that getpwuid_r fills in; zeroed is a valid value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: geteuid cannot fail. getpwuid_r writes at most `buf.len()` bytes into `buf`,
    // fills `pwd` and sets `result` to `&mut pwd` on success or to null; every pointer is valid
    // for the duration of the call.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`, alive here.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    name.to_str()
        .ok()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
pub mod fake {
    //! An in-memory [`Environment`] for unit tests.
    use super::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone, Default)]
    pub struct FakeEnv {
        pub vars: HashMap<String, String>,
        pub files: HashMap<PathBuf, String>,
        pub open_files: Vec<PathBuf>,
        pub account: Option<String>,
    }

    impl FakeEnv {
        pub fn new() -> Self {
            FakeEnv::default()
        }

        pub fn var(mut self, k: &str, v: &str) -> Self {
            self.vars.insert(k.into(), v.into());
            self
        }

        pub fn file(mut self, p: &str, text: &str) -> Self {
            self.files.insert(p.into(), text.into());
            self
        }
    }

    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }

        fn read_file(&self, path: &Path) -> io::Result<String> {
            self.files
                .get(path)
                .cloned()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "No such file or directory"))
        }

        fn readable_by_others(&self, path: &Path) -> bool {
            self.open_files.iter().any(|p| p == path)
        }

        fn account_name(&self) -> Option<String> {
            self.account.clone()
        }
    }

    #[test]
    fn home_dir_falls_back_to_userprofile() {
        assert_eq!(FakeEnv::new().home_dir(), None);
        let e = FakeEnv::new().var("USERPROFILE", r"C:\Users\a");
        assert_eq!(e.home_dir(), Some(PathBuf::from(r"C:\Users\a")));
        let e = e.var("HOME", "/home/a");
        assert_eq!(e.home_dir(), Some(PathBuf::from("/home/a")));
        assert_eq!(FakeEnv::new().var("HOME", "").home_dir(), None);
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn account_name_of_this_process() {
        // Whatever user runs the tests has a passwd entry in any sane environment.
        let name = SystemEnv.account_name();
        assert!(name.as_deref().is_some_and(|n| !n.is_empty()), "{name:?}");
    }
}
