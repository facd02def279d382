//! Polling helpers.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Polls `cond` every 10 ms until it returns true (then `true`) or `timeout` has passed (then
/// `false`). `cond` is always called at least once, and once more after the deadline.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return cond();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The first line of `path` containing `needle`, if the file exists and has one.
pub fn find_line(path: &Path, needle: &str) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    String::from_utf8_lossy(&bytes)
        .lines()
        .find(|l| l.contains(needle))
        .map(str::to_string)
}

/// Waits until a line of the file `path` contains `needle` and returns that line. The file may
/// not exist yet. On timeout the error shows the file's content.
pub fn wait_for_file_line(path: &Path, needle: &str, timeout: Duration) -> Result<String> {
    let mut found = None;
    wait_until(timeout, || {
        found = find_line(path, needle);
        found.is_some()
    });
    found.ok_or_else(|| {
        let content = match std::fs::read(path) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => format!("<cannot read: {e}>"),
        };
        Error::new(format!(
            "no line containing {needle:?} in {} within {timeout:?}; content:\n{content}",
            path.display()
        ))
    })
}

/// Counts the lines of `path` that contain `needle` (0 if the file cannot be read).
pub fn count_lines(path: &Path, needle: &str) -> usize {
    std::fs::read(path)
        .map(|b| {
            String::from_utf8_lossy(&b)
                .lines()
                .filter(|l| l.contains(needle))
                .count()
        })
        .unwrap_or(0)
}
