//! The user's end of the SSH channel: stdout for a request's text, stderr for its errors
//! (each line `dromaius: `), the display relay over stdin and stdout, and whether the client
//! hung up. [`Terminal`] is the gateway's `User`; [`report`] and [`notice`] are the one
//! place a line goes to stderr.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Instant;

use nix::fcntl::OFlag;

use crate::error::Error;
use crate::gateway::User;
use crate::gateway::effects::LibvirtChannel;
use crate::graphics::{Ending, Endpoint, Traffic};
use crate::hypervisor::Watch;
use crate::policy::Channel;
use crate::rfb::Handshake;
use crate::rpc::Filter;
use crate::rpc::relay::{ClientOut, Context, Ending as RpcEnding};
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
        let own_stdout = nonblocking_pipe_writer(stdout.as_fd());
        Ok(relay::relay(
            stdin.as_fd(),
            client_out(own_stdout.as_ref(), stdout.as_fd()),
            socket.as_mut(),
            watch,
            &process::hung_up,
            handshake.as_mut(),
        ))
    }
}

impl LibvirtChannel for Terminal {
    fn relay_libvirt(
        &self,
        socket: &Path,
        filter: &mut Filter,
        context: &mut dyn Context,
    ) -> io::Result<RpcEnding> {
        let mut daemon = UnixStream::connect(socket)?;
        let (stdin, stdout) = (io::stdin(), io::stdout());
        let own_stdout = nonblocking_pipe_writer(stdout.as_fd());
        Ok(crate::rpc::relay(
            stdin.as_fd(),
            client_out(own_stdout.as_ref(), stdout.as_fd()),
            &mut daemon,
            filter,
            context,
        ))
    }
}

/// When `fd` writes to a pipe (sshd gives a command without a pty one pipe each for stdin,
/// stdout and stderr), a second open file description of that pipe, for writing, with
/// `O_NONBLOCK`: a relay can then write whatever fits in one call without changing the
/// flags of the description it shares with others. `None` for anything else.
fn nonblocking_pipe_writer(fd: BorrowedFd<'_>) -> Option<File> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    if !fs::metadata(&path).ok()?.file_type().is_fifo() {
        return None;
    }
    OpenOptions::new()
        .write(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(&path)
        .ok()
}

/// Where a relay writes to the user: through `own`, the non-blocking description of
/// stdout's pipe, when there is one; else stdout itself.
fn client_out<'a>(own: Option<&'a File>, stdout: BorrowedFd<'a>) -> ClientOut<'a> {
    match own {
        Some(own) => ClientOut {
            fd: own.as_fd(),
            nonblocking: true,
        },
        None => ClientOut {
            fd: stdout,
            nonblocking: false,
        },
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
