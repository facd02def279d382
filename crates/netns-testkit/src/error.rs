//! The kit's error type: one human-readable message that says what failed and why.

use std::fmt;
use std::process::Output;

/// An error of the test kit. It carries a complete message (the command that failed, its exit
/// status, stdout and stderr, ...) so that a failing test prints everything needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    msg: String,
}

/// `Result` with the kit's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Self {
        Error { msg: msg.into() }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.msg
    }

    pub(crate) fn io(what: impl fmt::Display, e: std::io::Error) -> Self {
        Error::new(format!("{what}: {e}"))
    }

    /// A command ran but failed: the message holds the command line, the exit status, stdout and
    /// stderr.
    pub(crate) fn command(cmdline: &str, out: &Output) -> Self {
        Error::new(format!(
            "command failed ({}): {cmdline}\n--- stdout ---\n{}--- stderr ---\n{}",
            out.status,
            with_newline(&String::from_utf8_lossy(&out.stdout)),
            with_newline(&String::from_utf8_lossy(&out.stderr)),
        ))
    }
}

fn with_newline(s: &str) -> String {
    if s.is_empty() || s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Error {}
