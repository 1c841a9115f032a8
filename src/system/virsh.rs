//! The one real hypervisor: virsh, run with the argument vectors `crate::virsh::argv`
//! builds, in `crate::virsh::ENVIRONMENT`, its words read by `crate::virsh::parse`. The
//! runner bounds each run in time, kills the run's whole process group when it is late,
//! and ends an attached console when its watch says access was revoked.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::action::Action;
use crate::config::Hypervisor;
use crate::error::Revocation;
use crate::escape::escape;
use crate::graphics::Protocol;
use crate::hypervisor::{Fault, Found, Libvirt, Target, WATCH_EVERY, Watch};
use crate::lookup;
use crate::virsh::ENVIRONMENT;
use crate::virsh::argv::{
    action_argv, connection, display_argv, listing_argv, screenshot_argv, states_argv,
};
use crate::virsh::parse::{Listed, as_the_user_knows_it, fault, parse_listing, parse_states};

/// How long a timed-out run's leader may take to be reaped after its group was killed.
const AFTER_KILL: Duration = Duration::from_millis(500);

/// Runs the configured virsh binary.
#[derive(Debug, Clone)]
pub struct Virsh {
    path: PathBuf,
}

impl Virsh {
    pub fn new(path: &Path) -> Virsh {
        Virsh {
            path: path.to_owned(),
        }
    }

    /// A run that did not finish, as a fault.
    fn unfinished(&self, error: RunError) -> Fault {
        match error {
            RunError::CannotRun(error) => Fault::CannotRun(format!(
                "cannot run {}: {error}",
                escape(&self.path.to_string_lossy())
            )),
            RunError::TimedOut => Fault::TimedOut,
            RunError::Interrupted => Fault::Interrupted,
            RunError::Revoked(why) => Fault::Revoked(why),
        }
    }

    /// Every domain defined on `at`, from one read-only listing.
    pub fn listing(&self, at: &Hypervisor, deadline: Instant) -> Result<Vec<Listed>, Fault> {
        let stdout = self.succeed(&listing_argv(&at.uri), None, deadline)?;
        Ok(parse_listing(&stdout))
    }

    /// Whether `at` takes a read-write connection from us (actions need one; a listing
    /// does not): `virsh uri`, which connects and prints the URI, nothing more.
    pub fn connects_read_write(&self, at: &Hypervisor, deadline: Instant) -> Result<(), Fault> {
        let mut argv = connection(&at.uri, false);
        argv.push("uri".into());
        self.succeed(&argv, None, deadline).map(|_| ())
    }

    /// Runs `argv` and returns its stdout if virsh succeeded, its fault otherwise.
    fn succeed(
        &self,
        argv: &[OsString],
        target: Option<&Target<'_>>,
        deadline: Instant,
    ) -> Result<String, Fault> {
        match self.run(argv, deadline) {
            Ok(captured) if captured.status.success() => Ok(captured.stdout),
            Ok(captured) => Err(fault(
                &captured.stderr,
                &captured.status.to_string(),
                target,
            )),
            Err(error) => Err(self.unfinished(error)),
        }
    }
}

impl Libvirt for Virsh {
    fn lookup(
        &self,
        at: &Hypervisor,
        name: &str,
        deadline: Instant,
    ) -> Result<Option<Found>, Fault> {
        if lookup::is_only_a_name(name) {
            // Asked by its name, which virsh can read as nothing else: one short run,
            // whatever the hypervisor holds.
            let target = Target { name, uuid: None };
            let argv = action_argv(&at.uri, Action::Status, &target);
            return match self.succeed(&argv, Some(&target), deadline) {
                Ok(state) => Ok(Some(Found {
                    uuid: None,
                    active: state.trim() != "shut off",
                })),
                Err(Fault::NotFound) => Ok(None),
                Err(fault) => Err(fault),
            };
        }
        Ok(self
            .listing(at, deadline)?
            .into_iter()
            .find(|domain| domain.name == name)
            .map(|domain| Found {
                active: domain.is_active(),
                uuid: Some(domain.uuid),
            }))
    }

    fn act(
        &self,
        at: &Hypervisor,
        action: Action,
        target: &Target<'_>,
        deadline: Instant,
    ) -> Result<String, Fault> {
        let argv = action_argv(&at.uri, action, target);
        let stdout = self.succeed(&argv, Some(target), deadline)?;
        Ok(as_the_user_knows_it(&stdout, target))
    }

    fn console(
        &self,
        at: &Hypervisor,
        target: &Target<'_>,
        watch: &dyn Watch,
    ) -> Result<(), Fault> {
        let argv = action_argv(&at.uri, Action::Console, target);
        match self.run_attached(&argv, watch) {
            Ok(captured) if captured.status.success() => Ok(()),
            Ok(captured) => Err(fault(
                &captured.stderr,
                &captured.status.to_string(),
                Some(target),
            )),
            Err(RunError::Revoked(why)) => Err(Fault::Revoked(why)),
            Err(error) => Err(self.unfinished(error)),
        }
    }

    fn states(
        &self,
        at: &Hypervisor,
        deadline: Instant,
    ) -> Result<Vec<(String, &'static str)>, Fault> {
        let stdout = self.succeed(&states_argv(&at.uri), None, deadline)?;
        Ok(parse_states(&stdout))
    }

    fn screenshot(
        &self,
        at: &Hypervisor,
        target: &Target<'_>,
        deadline: Instant,
        out: &mut dyn Write,
    ) -> Result<u64, Fault> {
        let cannot = |what: &str, error: io::Error| Fault::Failed {
            words: format!("screenshot: {what}: {error}"),
            status: String::new(),
        };
        // Removed, with the image, when this returns: the image never outlives the request.
        let private = crate::system::process::PrivateDir::create("dromaius-screenshot")
            .map_err(|e| cannot("cannot make a private temporary directory", e))?;
        let file = private.path().join("screen");
        self.succeed(
            &screenshot_argv(&at.uri, target, &file),
            Some(target),
            deadline,
        )?;
        let mut image = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&file)
            .map_err(|e| cannot("cannot read the image virsh wrote", e))?;
        let sent = io::copy(&mut image, out)
            .and_then(|sent| out.flush().map(|()| sent))
            .map_err(|e| cannot("cannot send the image", e))?;
        Ok(sent)
    }

    fn display(
        &self,
        at: &Hypervisor,
        target: &Target<'_>,
        deadline: Instant,
        protocol: Option<Protocol>,
    ) -> Result<String, Fault> {
        self.succeed(
            &display_argv(&at.uri, target, protocol),
            Some(target),
            deadline,
        )
    }
}

/// What a finished virsh run produced.
#[derive(Debug)]
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A run that did not finish.
#[derive(Debug)]
pub enum RunError {
    /// virsh could not be started (missing, not executable, ...).
    CannotRun(io::Error),
    /// It ran past the deadline and was killed with its process group.
    TimedOut,
    /// The client went away (or Ctrl-C) and virsh was killed.
    Interrupted,
    /// An attached run was ended because the config no longer allows it: why.
    Revoked(Revocation),
}

impl Virsh {
    fn command(&self, argv: &[OsString]) -> Command {
        let mut command = Command::new(&self.path);
        command
            .args(argv)
            .env_clear()
            .envs(ENVIRONMENT)
            .current_dir("/");
        command
    }

    /// Runs virsh with `argv`, stdin closed and output captured, killing its whole process
    /// group if it is still running at `deadline`.
    pub fn run(&self, argv: &[OsString], deadline: Instant) -> Result<Captured, RunError> {
        let started = Instant::now();
        let mut command = self.command(argv);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a timeout kills virsh and anything it started (an ssh
            // transport, say), and Ctrl-C at the user's terminal does not reach it directly.
            .process_group(0);
        let (mut child, guard) = crate::system::process::spawn_tracked(&mut command, true)
            .map_err(RunError::CannotRun)?;
        let output = match (child.stdout.take(), child.stderr.take()) {
            (Some(stdout), Some(stderr)) => read_until(stdout, stderr, deadline),
            _ => None,
        };
        let status = output.as_ref().and_then(|_| exit_by(&mut child, deadline));
        let (Some((stdout, stderr)), Some(status)) = (output, status) else {
            guard.kill();
            // The killed group's leader is reaped; something that left the group (setsid)
            // and still holds the pipes is not waited for: it must not keep the request
            // past its deadline.
            let _ = exit_by(&mut child, Instant::now() + AFTER_KILL);
            log_run(argv, started, "timed out, killed");
            return Err(RunError::TimedOut);
        };
        log_run(argv, started, &status.to_string());
        if was_killed(status)
            && (crate::system::process::hung_up() || crate::system::process::take_interrupt())
        {
            return Err(RunError::Interrupted);
        }
        Ok(Captured {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// Runs virsh attached to the user's terminal (for `console`), with no time limit.
    /// Stays in our process group so that it can put the terminal in raw mode. Its errors
    /// are returned (to be shown with our prefix), its output goes straight to the user.
    /// The terminal's settings are put back afterwards however virsh ended: killed, it
    /// would leave raw mode behind.
    pub fn run_attached(&self, argv: &[OsString], watch: &dyn Watch) -> Result<Captured, RunError> {
        let started = Instant::now();
        let mut command = self.command(argv);
        command.stderr(Stdio::piped());
        let _terminal = crate::system::process::TerminalGuard::save();
        let (child, guard) = crate::system::process::spawn_tracked(&mut command, false)
            .map_err(RunError::CannotRun)?;
        // While virsh runs, the config is read again every WATCH_EVERY; when it no longer
        // allows this, virsh is killed (it ignores every polite signal).
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let (output, revoked) = std::thread::scope(|scope| {
            let guard = &guard;
            let watcher = scope.spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(WATCH_EVERY) {
                    if let Err(why) = watch.still_allowed() {
                        guard.kill();
                        return Some(why);
                    }
                }
                None
            });
            let output = child.wait_with_output();
            drop(done);
            (output, watcher.join().unwrap_or(None))
        });
        let output = output.map_err(RunError::CannotRun)?;
        log_run(argv, started, &output.status.to_string());
        if let Some(why) = revoked {
            return Err(RunError::Revoked(why));
        }
        // A client that went away ended the console however virsh ended: killed by the
        // signal thread, or on its own at the hung-up terminal first.
        let client_gone =
            crate::system::process::hung_up() || crate::system::process::terminal_hung_up();
        if client_gone || (was_killed(output.status) && crate::system::process::take_interrupt()) {
            return Err(RunError::Interrupted);
        }
        Ok(Captured {
            status: output.status,
            stdout: String::new(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// For the administrator's `--debug`: each virsh argv, how long it took, how it ended.
fn log_run(argv: &[OsString], started: Instant, ended: &str) {
    if log::log_enabled!(log::Level::Debug) {
        let words: Vec<String> = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        log::debug!(
            "virsh {} took {} ms: {ended}",
            words.join(" "),
            started.elapsed().as_millis()
        );
    }
}

/// Reads both pipes to their ends, in this thread, but not past `deadline` (`None` then).
fn read_until(
    mut stdout: ChildStdout,
    mut stderr: ChildStderr,
    deadline: Instant,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut collected = (Vec::new(), Vec::new());
    let mut open = (true, true);
    let mut chunk = [0u8; 16 * 1024];
    while open.0 || open.1 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        let mut fds = Vec::with_capacity(2);
        if open.0 {
            fds.push(PollFd::new(stdout.as_fd(), PollFlags::POLLIN));
        }
        if open.1 {
            fds.push(PollFd::new(stderr.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(_) => return None,
        }
        let ready: Vec<bool> = fds.iter().map(|fd| fd.any().unwrap_or(true)).collect();
        let mut ready = ready.into_iter();
        if open.0 && ready.next() == Some(true) {
            open.0 = read_some(&mut stdout, &mut collected.0, &mut chunk);
        }
        if open.1 && ready.next() == Some(true) {
            open.1 = read_some(&mut stderr, &mut collected.1, &mut chunk);
        }
    }
    Some(collected)
}

/// One read of a pipe that poll said is ready; whether it is still open.
fn read_some(pipe: &mut impl Read, into: &mut Vec<u8>, chunk: &mut [u8]) -> bool {
    match pipe.read(chunk) {
        Ok(0) => false,
        Ok(n) => {
            into.extend_from_slice(&chunk[..n]);
            true
        }
        Err(error) => error.kind() == io::ErrorKind::Interrupted,
    }
}

/// Reaps the child if it exits by `deadline` (its pipes are closed: it is on its way out).
/// A process closes its pipes microseconds before it can be reaped, so the waits between
/// tries start short and grow: a fixed millisecond would be added to almost every run.
fn exit_by(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    let mut pause = Duration::from_micros(20);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(1));
            }
            Ok(None) | Err(_) => return None,
        }
    }
}

fn was_killed(status: ExitStatus) -> bool {
    status.signal() == Some(nix::sys::signal::Signal::SIGKILL as i32)
}
