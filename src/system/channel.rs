//! The user's end of the SSH channel: stdout for a request's text, stderr for its errors
//! (each line `dromaius: `), the display relay over stdin and stdout, and whether the client
//! hung up. [`Terminal`] is the gateway's `User`; [`report`] and [`notice`] are the one
//! place a line goes to stderr.

use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::time::Instant;

use crate::error::Error;
use crate::gateway::User;
use crate::graphics::{Ending, Endpoint, Traffic};
use crate::hypervisor::Watch;
use crate::policy::Channel;
use crate::rfb::Handshake;
use crate::system::{process, relay};

/// The channel sshd gave this process: its stdin, stdout and stderr.
pub struct Terminal {
    channel: Channel,
}

impl Terminal {
    /// This process's channel; `one_shot` when it carries one request only.
    pub fn new(one_shot: bool) -> Terminal {
        Terminal {
            channel: Channel {
                stdin_is_terminal: io::stdin().is_terminal(),
                stdout_is_terminal: io::stdout().is_terminal(),
                one_shot,
            },
        }
    }
}

impl User for Terminal {
    fn channel(&self) -> Channel {
        self.channel
    }

    fn say(&self, text: &str) {
        say(text);
    }

    fn report(&self, error: &Error) {
        report(error);
    }

    fn hung_up(&self) -> bool {
        process::hung_up()
    }

    fn output(&self) -> Box<dyn Write + '_> {
        Box::new(io::stdout().lock())
    }

    fn relay(
        &self,
        endpoint: &Endpoint,
        deadline: Instant,
        watch: &dyn Watch,
        mut handshake: Option<Handshake>,
        started: &mut dyn FnMut(),
    ) -> io::Result<(Ending, Traffic)> {
        let mut socket = relay::connect(endpoint, deadline)?;
        started();
        let (stdin, stdout) = (io::stdin(), io::stdout());
        Ok(relay::relay(
            stdin.as_fd(),
            stdout.as_fd(),
            socket.as_mut(),
            watch,
            &process::hung_up,
            handshake.as_mut(),
        ))
    }
}

/// Writes `text` to stdout, trailing blank lines and spaces trimmed, nothing if it is
/// empty. A closed stdout (`... | head -1`) is not an error of the request's.
pub fn say(text: &str) {
    let text = text.trim_end_matches(['\n', ' ']);
    if text.is_empty() {
        return;
    }
    let mut stdout = io::stdout().lock();
    let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
}

/// Prints `error` on stderr, each of its lines as one `dromaius: ` line.
pub fn report(error: &Error) {
    let text = error.to_string();
    let mut stderr = io::stderr().lock();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let _ = writeln!(stderr, "dromaius: {line}");
    }
}

/// Prints one `dromaius: ` line that is not an error of a request (a warning, a notice).
pub fn notice(text: &str) {
    let _ = writeln!(io::stderr().lock(), "dromaius: {text}");
}
