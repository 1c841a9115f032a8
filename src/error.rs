//! The exit statuses of the contract, and the one error type that carries them.
//!
//! Every way a request (or the program) can fail is an [`Error`]: its variant is its exit
//! status, its text what the user is told. [`report`] is the one place that prints one,
//! each line with the `dromaius: ` prefix. Callers escape what the user sent before it goes
//! into an error's text.

use std::fmt;
use std::io::Write;

/// An exit status of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0: done.
    Ok,
    /// 1: virsh ran and failed, or the request cannot be carried out as asked.
    Failed,
    /// 2: the request could not be parsed.
    Usage,
    /// 69: virsh or libvirt could not be reached.
    Unavailable,
    /// 77: not allowed.
    Denied,
    /// 78: the config is missing, unreadable or invalid.
    Config,
    /// 124: the command ran past `timeout_secs`.
    TimedOut,
    /// 130: interrupted (Ctrl-C, hang-up) while a command ran.
    Interrupted,
}

impl Status {
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Failed => 1,
            Status::Usage => 2,
            Status::Unavailable => 69,
            Status::Denied => 77,
            Status::Config => 78,
            Status::TimedOut => 124,
            Status::Interrupted => 130,
        }
    }
}

impl From<Status> for std::process::ExitCode {
    fn from(status: Status) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

/// Why a request did not succeed, worded for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The request could not be parsed (2).
    Usage(String),
    /// Not allowed (77). Always the same words: whether the domain exists, whether the key is
    /// known, is not the user's to learn.
    Denied,
    /// virsh or libvirt could not be reached (69).
    Unavailable(String),
    /// Ran past `timeout_secs` and was stopped (124).
    TimedOut(String),
    /// Stopped by Ctrl-C or a hang-up (130).
    Interrupted(String),
    /// The config cannot be used (78).
    Config(String),
    /// virsh ran and failed, or the request cannot be carried out as asked (1).
    Failed(String),
    /// An attachment (console, display) ended because the config no longer allows it (77):
    /// what ended and why.
    Revoked(String),
}

impl Error {
    pub fn status(&self) -> Status {
        match self {
            Error::Usage(_) => Status::Usage,
            Error::Denied => Status::Denied,
            Error::Unavailable(_) => Status::Unavailable,
            Error::TimedOut(_) => Status::TimedOut,
            Error::Interrupted(_) => Status::Interrupted,
            Error::Config(_) => Status::Config,
            Error::Failed(_) => Status::Failed,
            Error::Revoked(_) => Status::Denied,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Denied => f.write_str("permission denied"),
            Error::Usage(text)
            | Error::Unavailable(text)
            | Error::TimedOut(text)
            | Error::Interrupted(text)
            | Error::Config(text)
            | Error::Failed(text)
            | Error::Revoked(text) => f.write_str(text),
        }
    }
}

impl std::error::Error for Error {}

/// Prints `error` on stderr, each of its lines as one `dromaius: ` line.
pub fn report(error: &Error) {
    let text = error.to_string();
    let mut stderr = std::io::stderr().lock();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let _ = writeln!(stderr, "dromaius: {line}");
    }
}

/// Prints one `dromaius: ` line that is not an error of the request (a warning, a notice).
pub fn notice(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "dromaius: {text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status_and_words() {
        let cases = [
            (Error::Usage("u".into()), 2, "u"),
            (Error::Denied, 77, "permission denied"),
            (Error::Unavailable("x".into()), 69, "x"),
            (Error::TimedOut("t".into()), 124, "t"),
            (Error::Interrupted("i".into()), 130, "i"),
            (Error::Config("c".into()), 78, "c"),
            (Error::Failed("f".into()), 1, "f"),
            (Error::Revoked("r".into()), 77, "r"),
        ];
        for (error, code, text) in cases {
            assert_eq!(error.status().code(), code, "{error:?}");
            assert_eq!(error.to_string(), text);
        }
        assert_eq!(Status::Ok.code(), 0);
    }
}
