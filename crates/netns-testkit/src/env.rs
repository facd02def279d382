//! The test environment: root check, workspace binaries.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Environment variable that lets root-only tests return early (with a note) when not root.
pub const SKIP_ENV: &str = "KNOCK_SKIP_ROOT_TESTS";

/// Whether the process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Call first in every root-only test:
///
/// ```no_run
/// if !netns_testkit::require_root() {
///     return;
/// }
/// ```
///
/// Returns `true` as root. When not root it panics (the test fails: these tests must run in CI,
/// never skip silently) unless `KNOCK_SKIP_ROOT_TESTS=1` is set; then it prints a note and
/// returns `false`.
pub fn require_root() -> bool {
    if is_root() {
        return true;
    }
    if std::env::var(SKIP_ENV).is_ok_and(|v| v == "1") {
        eprintln!(
            "note: skipping a root-only network-namespace test ({SKIP_ENV}=1 and not running as root)"
        );
        return false;
    }
    panic!(
        "this test creates network namespaces and must run as root (e.g. `sudo -E cargo test`); \
         to skip the root-only tests set {SKIP_ENV}=1"
    );
}

/// Directory holding the workspace's binaries for the profile the current executable was built
/// with, derived from [`std::env::current_exe`]: that is `target/<profile>/deps/<test>-<hash>` for
/// tests and benches, `target/<profile>/examples/<name>` for examples and
/// `target/<profile>/<name>` for binaries, so this works whatever `CARGO_TARGET_DIR` or
/// `--target` was used.
pub fn bin_dir() -> Result<PathBuf> {
    let exe =
        std::env::current_exe().map_err(|e| Error::io("cannot find the current executable", e))?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| Error::new(format!("{} has no parent directory", exe.display())))?
        .to_path_buf();
    if matches!(
        dir.file_name().and_then(|n| n.to_str()),
        Some("deps" | "examples")
    ) {
        dir.pop();
    }
    Ok(dir)
}

/// Path of the workspace binary `name` (e.g. `"knockd"`, `"knock"`) built in the same profile as
/// the running test: looked up in [`bin_dir`], then in `$CARGO_TARGET_DIR/<profile>` if that
/// variable is set (for executables copied elsewhere by a test runner). Fails with a hint to
/// build it if it does not exist.
pub fn bin(name: &str) -> Result<PathBuf> {
    let dir = bin_dir()?;
    let mut tried = vec![dir.join(name)];
    if let (Some(target), Some(profile)) = (std::env::var_os("CARGO_TARGET_DIR"), dir.file_name()) {
        tried.push(Path::new(&target).join(profile).join(name));
    }
    if let Some(p) = tried.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    let release = dir.file_name().is_some_and(|n| n == "release");
    let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(Error::new(format!(
        "binary `{name}` not found (looked at {}): build the workspace binaries first with \
         `cargo build --workspace{}` (cargo test only builds the binaries of the crate under test)",
        tried.join(", "),
        if release { " --release" } else { "" }
    )))
}
