//! The one real [`Libvirt`]: virsh, run with argument vectors dromaius builds itself.
//!
//! Every argv is complete — `--connect URI`, `--readonly` for reads, a command, and the
//! domain as its own word after `--domain` — so virsh never reads a command script (one
//! argument), opens its own shell (none), takes a user's word for an option, or uses a
//! default URI. A domain goes to virsh by name only when `lookup::is_only_a_name` says virsh
//! cannot read it as anything else; otherwise by the UUID a listing gave for that exact name.
//! The runner clears the environment, bounds each run in time and kills the run's whole
//! process group when it is late. Reading virsh's words (unreachable, console in use, no
//! such domain) is this module's job too: the gateway gets a [`Fault`], not stderr.

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
use crate::escape::{escape, terminal_safe};
use crate::hypervisor::{Fault, Found, Libvirt, Target, Uuid, WATCH_EVERY, Watch};
use crate::lookup;

/// The fixed environment virsh runs in: nothing of ours (no LIBVIRT_DEFAULT_URI, VIRSH_*,
/// LIBVIRT_LOG_*), and a HOME and XDG_CONFIG_HOME that do not exist, so that no
/// libvirt.conf (URI aliases, default URI) is read from anywhere a user could influence.
pub const ENVIRONMENT: [(&str, &str); 5] = [
    ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
    ("LC_ALL", "C"),
    ("HOME", "/nonexistent"),
    ("XDG_CONFIG_HOME", "/nonexistent"),
    ("XDG_CACHE_HOME", "/nonexistent"),
];

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
            Ok(captured) => Err(fault(&captured, target)),
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
            Ok(captured) => Err(fault(&captured, Some(target))),
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
        let private = crate::sys::PrivateDir::create("dromaius-screenshot")
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
    ) -> Result<String, Fault> {
        self.succeed(
            &action_argv(&at.uri, Action::Display, target),
            Some(target),
            deadline,
        )
    }
}

/// `--connect URI [--readonly]`: the start of every argv.
fn connection(connect: &str, read_only: bool) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["--connect".into(), connect.into()];
    if read_only {
        argv.push("--readonly".into());
    }
    argv
}

/// Lists every domain on `connect` as `UUID ID NAME` lines (`-` for the id of an inactive
/// domain).
pub fn listing_argv(connect: &str) -> Vec<OsString> {
    let mut argv = connection(connect, true);
    argv.extend(["list", "--all", "--id", "--uuid", "--name"].map(OsString::from));
    argv
}

/// The state of every domain on `connect`, in one call, for `list`.
pub fn states_argv(connect: &str) -> Vec<OsString> {
    let mut argv = connection(connect, true);
    argv.extend(["domstats", "--state"].map(OsString::from));
    argv
}

/// The keys `ctrl-alt-del` presses, in order (released in reverse), in virsh's default
/// (Linux) key code set.
pub const CTRL_ALT_DEL: [&str; 3] = ["KEY_LEFTCTRL", "KEY_LEFTALT", "KEY_DELETE"];

/// Carries out `action` on the target: by UUID when it has one, by name otherwise.
/// `console` gets `--safe` and never `--force`: forcing would take over another user's
/// session on the console. `display` asks for VNC only, and never `--include-password`.
/// (`screenshot` is [`screenshot_argv`]: it needs a file.)
pub fn action_argv(connect: &str, action: Action, target: &Target<'_>) -> Vec<OsString> {
    let mut argv = connection(connect, action.is_read_only());
    argv.push(action.virsh_command().into());
    if action == Action::Console {
        argv.push("--safe".into());
    }
    argv.push("--domain".into());
    argv.push(match &target.uuid {
        Some(uuid) => uuid.as_str().into(),
        None => target.name.into(),
    });
    match action {
        Action::CtrlAltDel => argv.extend(CTRL_ALT_DEL.map(OsString::from)),
        Action::Display => argv.extend(["--type", "vnc"].map(OsString::from)),
        _ => {}
    }
    argv
}

/// Takes a screenshot of the target into `file` (which virsh creates, or truncates and
/// follows if it is a link: it must be in a directory only we can write).
pub fn screenshot_argv(connect: &str, target: &Target<'_>, file: &Path) -> Vec<OsString> {
    let mut argv = action_argv(connect, Action::Screenshot, target);
    argv.push("--file".into());
    argv.push(file.into());
    argv
}

/// One line of [`listing_argv`]'s output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub uuid: Uuid,
    /// The id of an active domain (`None`: shut off).
    pub id: Option<u32>,
    pub name: String,
}

impl Listed {
    /// Running, paused, ...: anything but shut off.
    pub fn is_active(&self) -> bool {
        self.id.is_some()
    }
}

/// Parses `virsh list --all --id --uuid --name`. A name holding a newline would spill onto
/// a line of its own; such a domain is dropped rather than guessed at.
pub fn parse_listing(stdout: &str) -> Vec<Listed> {
    let mut domains: Vec<Listed> = Vec::new();
    let mut last_was_spilled = false;
    for line in stdout.split('\n') {
        let parsed = line.split_once(' ').and_then(|(uuid, rest)| {
            let (id, name) = rest.split_once(' ')?;
            let id = match id {
                "-" => None,
                digits if digits.bytes().all(|b| b.is_ascii_digit()) => Some(digits.parse().ok()?),
                _ => return None,
            };
            Some(Listed {
                uuid: Uuid::parse(uuid)?,
                id,
                name: name.to_owned(),
            })
        });
        match parsed {
            Some(entry) => {
                domains.push(entry);
                last_was_spilled = false;
            }
            None if line.is_empty() => {}
            None => {
                if !last_was_spilled {
                    domains.pop();
                }
                last_was_spilled = true;
            }
        }
    }
    domains
}

/// Parses `virsh domstats --state` into (name, state) pairs, with states worded as
/// `virsh domstate` words them.
pub fn parse_states(stdout: &str) -> Vec<(String, &'static str)> {
    let mut states = Vec::new();
    let mut current: Option<String> = None;
    for line in stdout.lines() {
        if let Some(name) = line
            .strip_prefix("Domain: '")
            .and_then(|rest| rest.strip_suffix('\''))
        {
            current = Some(name.to_owned());
        } else if let Some(code) = line.trim_start().strip_prefix("state.state=") {
            if let Some(name) = current.take() {
                states.push((name, state_word(code)));
            }
        }
    }
    states
}

/// virDomainState as `virsh domstate` prints it.
fn state_word(code: &str) -> &'static str {
    match code.trim() {
        "0" => "no state",
        "1" => "running",
        "2" => "idle",
        "3" => "paused",
        "4" => "in shutdown",
        "5" => "shut off",
        "6" => "crashed",
        "7" => "pmsuspended",
        _ => "unknown",
    }
}

/// virsh's output, safe for a terminal, with the UUID it was given shown as the name the
/// user knows.
fn as_the_user_knows_it(text: &str, target: &Target<'_>) -> String {
    match &target.uuid {
        Some(uuid) => terminal_safe(&text.replace(uuid.as_str(), target.name)),
        None => terminal_safe(text),
    }
}

/// Reads a failed run's stderr.
fn fault(captured: &Captured, target: Option<&Target<'_>>) -> Fault {
    let shown = match target {
        Some(target) => as_the_user_knows_it(&captured.stderr, target),
        None => terminal_safe(&captured.stderr),
    };
    let words: Vec<&str> = shown.lines().filter(|line| !is_noise(line)).collect();
    let words = words.join("\n");
    if captured
        .stderr
        .contains("failed to connect to the hypervisor")
    {
        Fault::Unreachable(words)
    } else if captured.stderr.contains("Active console session exists") {
        Fault::ConsoleBusy(words)
    } else if target.is_some_and(|t| names_missing(&captured.stderr, t)) {
        Fault::NotFound
    } else {
        Fault::Failed {
            words,
            status: captured.status.to_string(),
        }
    }
}

/// Whether virsh says it found no domain for what it was given (`error: failed to get
/// domain 'X'`, with X the name or UUID it was given, then perhaps libvirt's own "Domain not
/// found" line). Any other error line (access denied, say) is not "no such domain".
fn names_missing(stderr: &str, target: &Target<'_>) -> bool {
    let given = target.uuid.as_ref().map_or(target.name, Uuid::as_str);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect();
    errors.first() == Some(&format!("error: failed to get domain '{given}'").as_str())
        && errors[1..]
            .iter()
            .all(|line| line.starts_with("error: Domain not found"))
}

/// Lines of virsh output that say nothing to the user.
fn is_noise(line: &str) -> bool {
    line.trim().is_empty() || line.starts_with("Authorization not available")
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
    Revoked(String),
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
        let (mut child, guard) =
            crate::sys::spawn_tracked(&mut command, true).map_err(RunError::CannotRun)?;
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
        if was_killed(status) && (crate::sys::hung_up() || crate::sys::take_interrupt()) {
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
        let _terminal = crate::sys::TerminalGuard::save();
        let (child, guard) =
            crate::sys::spawn_tracked(&mut command, false).map_err(RunError::CannotRun)?;
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
        if was_killed(output.status) && (crate::sys::hung_up() || crate::sys::take_interrupt()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "6695eb01-f6a4-8304-79aa-97f2502e193f";

    fn words(argv: &[OsString]) -> Vec<&str> {
        argv.iter()
            .map(|a| a.to_str().unwrap_or("<non-utf8>"))
            .collect()
    }

    fn by_uuid(name: &str) -> Target<'_> {
        Target {
            name,
            uuid: Uuid::parse(UUID),
        }
    }

    #[test]
    fn action_argv_is_complete_and_acts_by_uuid() {
        let connect = "qemu:///system";
        let cases: &[(Action, &[&str])] = &[
            (
                Action::Start,
                &["--connect", connect, "start", "--domain", UUID],
            ),
            (
                Action::Shutdown,
                &["--connect", connect, "shutdown", "--domain", UUID],
            ),
            (
                Action::Reboot,
                &["--connect", connect, "reboot", "--domain", UUID],
            ),
            (
                Action::Reset,
                &["--connect", connect, "reset", "--domain", UUID],
            ),
            (
                Action::Destroy,
                &["--connect", connect, "destroy", "--domain", UUID],
            ),
            (
                Action::Status,
                &[
                    "--connect",
                    connect,
                    "--readonly",
                    "domstate",
                    "--domain",
                    UUID,
                ],
            ),
            (
                Action::Console,
                &["--connect", connect, "console", "--safe", "--domain", UUID],
            ),
            (
                Action::Suspend,
                &["--connect", connect, "suspend", "--domain", UUID],
            ),
            (
                Action::Resume,
                &["--connect", connect, "resume", "--domain", UUID],
            ),
            (
                Action::CtrlAltDel,
                &[
                    "--connect",
                    connect,
                    "send-key",
                    "--domain",
                    UUID,
                    "KEY_LEFTCTRL",
                    "KEY_LEFTALT",
                    "KEY_DELETE",
                ],
            ),
            (
                Action::Display,
                &[
                    "--connect",
                    connect,
                    "--readonly",
                    "domdisplay",
                    "--domain",
                    UUID,
                    "--type",
                    "vnc",
                ],
            ),
        ];
        for (action, expected) in cases {
            let argv = action_argv(connect, *action, &by_uuid("2"));
            assert_eq!(words(&argv), *expected);
            // Never one argument (a command script), never --force.
            assert!(argv.len() > 1);
            assert!(!words(&argv).contains(&"--force"));
        }
    }

    #[test]
    fn a_screenshot_goes_to_the_file_given() {
        assert_eq!(
            words(&screenshot_argv(
                "qemu:///system",
                &by_uuid("2"),
                Path::new("/tmp/dromaius-screenshot-1/screen")
            )),
            [
                "--connect",
                "qemu:///system",
                "screenshot",
                "--domain",
                UUID,
                "--file",
                "/tmp/dromaius-screenshot-1/screen"
            ]
        );
    }

    #[test]
    fn a_name_goes_after_domain_as_its_own_word() {
        let target = Target {
            name: "--force",
            uuid: None,
        };
        assert_eq!(
            words(&action_argv("test:///default", Action::Console, &target)),
            [
                "--connect",
                "test:///default",
                "console",
                "--safe",
                "--domain",
                "--force"
            ]
        );
    }

    #[test]
    fn listing_argv_are_read_only() {
        assert_eq!(
            words(&listing_argv("test:///default")),
            [
                "--connect",
                "test:///default",
                "--readonly",
                "list",
                "--all",
                "--id",
                "--uuid",
                "--name"
            ]
        );
        assert_eq!(
            words(&states_argv("test:///default")),
            [
                "--connect",
                "test:///default",
                "--readonly",
                "domstats",
                "--state"
            ]
        );
    }

    fn find<'a>(listing: &'a [Listed], name: &str) -> Option<(&'a str, bool)> {
        listing
            .iter()
            .find(|d| d.name == name)
            .map(|d| (d.uuid.as_str(), d.is_active()))
    }

    #[test]
    fn listing_parses_names_as_they_are() {
        let out = "6695eb01-f6a4-8304-79aa-97f2502e193f 1 test\n\
                   1c26ef96-2259-4182-8a59-ac38b2b550c3 - -x\n\
                   a6f77d46-b31d-487e-b696-50ffa06dc1cb 12 1\n\
                   b6f77d46-b31d-487e-b696-50ffa06dc1cb -  with space\n\n";
        let listing = parse_listing(out);
        assert_eq!(listing.len(), 4);
        assert_eq!(
            find(&listing, "1"),
            Some(("a6f77d46-b31d-487e-b696-50ffa06dc1cb", true))
        );
        assert_eq!(
            find(&listing, "-x"),
            Some(("1c26ef96-2259-4182-8a59-ac38b2b550c3", false))
        );
        assert_eq!(
            find(&listing, " with space"),
            Some(("b6f77d46-b31d-487e-b696-50ffa06dc1cb", false))
        );
        assert_eq!(find(&listing, "2"), None);
        assert_eq!(find(&listing, "6695eb01-f6a4-8304-79aa-97f2502e193f"), None);
        assert_eq!(find(&listing, "Test"), None);
        assert_eq!(
            parse_listing("6695eb01-f6a4-8304-79aa-97f2502e193f x1 test\n"),
            []
        );
    }

    #[test]
    fn a_name_spilling_over_lines_is_dropped_not_guessed() {
        // A domain named "a\nb" must not be taken for a domain named "a".
        let out = "6695eb01-f6a4-8304-79aa-97f2502e193f - a\nb\n\
                   1c26ef96-2259-4182-8a59-ac38b2b550c3 3 c\n";
        let listing = parse_listing(out);
        assert_eq!(find(&listing, "a"), None);
        assert!(find(&listing, "c").is_some());
        assert_eq!(listing.len(), 1);
    }

    #[test]
    fn states_parse_from_domstats() {
        let out = "Domain: '-x'\n  state.state=5\n  state.reason=0\n\n\
                   Domain: 'test'\n  state.state=1\n  state.reason=0\n\n\
                   Domain: 'it's'\n  state.state=3\n  state.reason=0\n\n";
        assert_eq!(
            parse_states(out),
            [
                ("-x".to_owned(), "shut off"),
                ("test".to_owned(), "running"),
                ("it's".to_owned(), "paused")
            ]
        );
    }

    fn failed(stderr: &str) -> Captured {
        Captured {
            status: ExitStatus::from_raw(1 << 8),
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn virsh_words_are_read_into_faults() {
        let target = by_uuid("web1");
        let cases = [
            (
                "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/x': No such file or directory\n",
                Fault::Unreachable(
                    "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/x': No such file or directory".into(),
                ),
            ),
            (
                "Authorization not available. Check if polkit service is running\nerror: operation failed: Active console session exists for this domain\n",
                Fault::ConsoleBusy(
                    "error: operation failed: Active console session exists for this domain".into(),
                ),
            ),
            (
                "error: Domain '6695eb01-f6a4-8304-79aa-97f2502e193f' is already active\n",
                Fault::Failed {
                    words: "error: Domain 'web1' is already active".into(),
                    status: "exit status: 1".into(),
                },
            ),
            (
                "error: \x1b]0;x\x07\n\n",
                Fault::Failed {
                    words: "error: \\x1b]0;x\\x07".into(),
                    status: "exit status: 1".into(),
                },
            ),
            (
                "",
                Fault::Failed {
                    words: String::new(),
                    status: "exit status: 1".into(),
                },
            ),
            (
                "error: failed to get domain '6695eb01-f6a4-8304-79aa-97f2502e193f'\n",
                Fault::NotFound,
            ),
            (
                "error: failed to get domain '6695eb01-f6a4-8304-79aa-97f2502e193f'\nerror: Domain not found: no domain with matching uuid '6695eb01-f6a4-8304-79aa-97f2502e193f'\n",
                Fault::NotFound,
            ),
            (
                "error: failed to get domain '6695eb01-f6a4-8304-79aa-97f2502e193f'\nerror: access denied: x\n",
                Fault::Failed {
                    words: "error: failed to get domain 'web1'\nerror: access denied: x".into(),
                    status: "exit status: 1".into(),
                },
            ),
            (
                "error: failed to get domain 'web1'\n",
                Fault::Failed {
                    words: "error: failed to get domain 'web1'".into(),
                    status: "exit status: 1".into(),
                },
            ),
        ];
        for (stderr, expected) in cases {
            assert_eq!(
                fault(&failed(stderr), Some(&target)),
                expected,
                "{stderr:?}"
            );
        }
    }
}
