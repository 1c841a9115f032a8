//! Everything dromaius asks of libvirt, as virsh argument vectors it builds itself.
//!
//! The argv builders and output parsers are pure. Two rules make them safe: a domain is
//! never handed to virsh by name (virsh would try it as an id, then a UUID, then a name, so
//! a domain named `2` could reach the domain with id 2) — it is resolved to its UUID from a
//! listing and acted on by UUID; and every argv is complete (`--connect URI`, a command,
//! `--domain UUID`), so virsh never reads a command script, a default URI or an option from
//! anything the user typed. The runner clears the environment and bounds each run in time.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::action::Action;

/// A libvirt domain UUID in the canonical form virsh prints: 8-4-4-4-12 hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uuid(String);

impl Uuid {
    pub fn parse(text: &str) -> Option<Uuid> {
        let groups: Vec<&str> = text.split('-').collect();
        let shape_ok = groups.len() == 5
            && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
            && groups
                .iter()
                .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
        shape_ok.then(|| Uuid(text.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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

/// Lists every domain on `connect` as `UUID NAME` lines.
pub fn uuid_listing_argv(connect: &str) -> Vec<OsString> {
    let mut argv = connection(connect, true);
    argv.extend(["list", "--all", "--uuid", "--name"].map(OsString::from));
    argv
}

/// The state of every domain on `connect`, in one call, for `list`.
pub fn states_argv(connect: &str) -> Vec<OsString> {
    let mut argv = connection(connect, true);
    argv.extend(["domstats", "--state"].map(OsString::from));
    argv
}

/// Carries out `action` on the domain with this UUID. `console` gets `--safe` and never
/// `--force`: forcing would take over another user's session on the console.
pub fn action_argv(connect: &str, action: Action, uuid: &Uuid) -> Vec<OsString> {
    let mut argv = connection(connect, action.is_read_only());
    argv.push(action.virsh_command().into());
    if action == Action::Console {
        argv.push("--safe".into());
    }
    argv.push("--domain".into());
    argv.push(uuid.as_str().into());
    argv
}

/// Parses `virsh list --all --uuid --name`. A name holding a newline would spill onto a
/// line of its own; such a domain is dropped rather than guessed at.
pub fn parse_uuid_listing(stdout: &str) -> Vec<(Uuid, String)> {
    let mut domains: Vec<(Uuid, String)> = Vec::new();
    let mut last_was_spilled = false;
    for line in stdout.split('\n') {
        let parsed = line
            .split_once(' ')
            .and_then(|(uuid, name)| Some((Uuid::parse(uuid)?, name.to_owned())));
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

/// Finds the UUID of the domain named exactly `name` in a listing.
pub fn find_uuid<'a>(listing: &'a [(Uuid, String)], name: &str) -> Option<&'a Uuid> {
    listing
        .iter()
        .find(|(_, n)| n == name)
        .map(|(uuid, _)| uuid)
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

/// Whether virsh's error output says it never reached libvirt.
pub fn is_unreachable(stderr: &str) -> bool {
    stderr.contains("failed to connect to the hypervisor")
}

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

/// How long a timed-out run may take to be collected after its group was killed.
const AFTER_KILL: Duration = Duration::from_millis(500);

/// What a finished virsh run produced.
#[derive(Debug)]
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Captured {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

#[derive(Debug)]
pub enum RunError {
    /// virsh could not be started (missing, not executable, ...).
    CannotRun(io::Error),
    /// It ran past the deadline and was killed with its process group.
    TimedOut,
    /// The client went away (or Ctrl-C) and virsh was killed.
    Interrupted,
}

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

    pub fn path(&self) -> &Path {
        &self.path
    }

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
        let mut command = self.command(argv);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a timeout kills virsh and anything it started (an ssh
            // transport, say), and Ctrl-C at the user's terminal does not reach it directly.
            .process_group(0);
        let (child, guard) =
            crate::sys::spawn_tracked(&mut command, true).map_err(RunError::CannotRun)?;
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(child.wait_with_output());
        });
        let remaining = deadline.saturating_duration_since(Instant::now());
        let output = match receiver.recv_timeout(remaining) {
            Ok(output) => output,
            Err(_) => {
                guard.kill();
                // Once the group is dead its pipes close at once, unless something left the
                // group (setsid) still holds them: that must not keep the request past its
                // deadline, so the collecting thread is given a moment and then left behind.
                let _ = receiver.recv_timeout(AFTER_KILL);
                return Err(RunError::TimedOut);
            }
        };
        let output = output.map_err(RunError::CannotRun)?;
        if was_killed(output.status) && (crate::sys::hung_up() || crate::sys::take_interrupt()) {
            return Err(RunError::Interrupted);
        }
        Ok(Captured {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs virsh attached to the user's terminal (for `console`), with no time limit.
    /// Stays in our process group so that it can put the terminal in raw mode. Its errors
    /// are returned (to be shown with our prefix), its output goes straight to the user.
    /// The terminal's settings are put back afterwards however virsh ended: killed, it
    /// would leave raw mode behind.
    pub fn run_attached(&self, argv: &[OsString]) -> Result<Captured, RunError> {
        let mut command = self.command(argv);
        command.stderr(Stdio::piped());
        let _terminal = crate::sys::TerminalGuard::save();
        let (child, _guard) =
            crate::sys::spawn_tracked(&mut command, false).map_err(RunError::CannotRun)?;
        let output = child.wait_with_output().map_err(RunError::CannotRun)?;
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

fn was_killed(status: ExitStatus) -> bool {
    status.signal() == Some(nix::sys::signal::Signal::SIGKILL as i32)
}

/// `timeout_secs` from now; console has no deadline and does not use this.
pub fn deadline_after(timeout: Duration) -> Instant {
    Instant::now() + timeout
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

    #[test]
    fn uuids_parse_only_in_canonical_shape() {
        assert!(Uuid::parse(UUID).is_some());
        assert_eq!(
            Uuid::parse("6695EB01-F6A4-8304-79AA-97F2502E193F").map(|u| u.0),
            Some(UUID.to_owned())
        );
        for bad in [
            "",
            "2",
            "6695eb01f6a4830479aa97f2502e193f",
            "6695eb01-f6a4-8304-79aa-97f2502e193",
            "6695eb01-f6a4-8304-79aa-97f2502e193fa",
            "6695eb01-f6a4-8304-79aa-97f2502e193g",
            "6695eb01-f6a4-8304-79aa--97f2502e193f",
            "+695eb01-f6a4-8304-79aa-97f2502e193f",
            " 695eb01-f6a4-8304-79aa-97f2502e193f",
        ] {
            assert!(Uuid::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn action_argv_is_complete_and_acts_by_uuid() {
        let Some(uuid) = Uuid::parse(UUID) else {
            panic!()
        };
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
        ];
        for (action, expected) in cases {
            let argv = action_argv(connect, *action, &uuid);
            assert_eq!(words(&argv), *expected);
            // Never one argument (a command script), never --force.
            assert!(argv.len() > 1);
            assert!(!words(&argv).contains(&"--force"));
        }
    }

    #[test]
    fn listing_argv_are_read_only() {
        assert_eq!(
            words(&uuid_listing_argv("test:///default")),
            [
                "--connect",
                "test:///default",
                "--readonly",
                "list",
                "--all",
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

    #[test]
    fn uuid_listing_parses_names_as_they_are() {
        let out = "6695eb01-f6a4-8304-79aa-97f2502e193f test\n\
                   1c26ef96-2259-4182-8a59-ac38b2b550c3 -x\n\
                   a6f77d46-b31d-487e-b696-50ffa06dc1cb 1\n\
                   b6f77d46-b31d-487e-b696-50ffa06dc1cb with space\n\n";
        let listing = parse_uuid_listing(out);
        assert_eq!(listing.len(), 4);
        assert_eq!(
            find_uuid(&listing, "1").map(Uuid::as_str),
            Some("a6f77d46-b31d-487e-b696-50ffa06dc1cb")
        );
        assert_eq!(
            find_uuid(&listing, "-x").map(Uuid::as_str),
            Some("1c26ef96-2259-4182-8a59-ac38b2b550c3")
        );
        assert_eq!(
            find_uuid(&listing, "with space").map(Uuid::as_str),
            Some("b6f77d46-b31d-487e-b696-50ffa06dc1cb")
        );
        assert_eq!(find_uuid(&listing, "2"), None);
        assert_eq!(
            find_uuid(&listing, "6695eb01-f6a4-8304-79aa-97f2502e193f"),
            None
        );
        assert_eq!(find_uuid(&listing, "Test"), None);
    }

    #[test]
    fn a_name_spilling_over_lines_is_dropped_not_guessed() {
        // A domain named "a\nb" must not be taken for a domain named "a".
        let out = "6695eb01-f6a4-8304-79aa-97f2502e193f a\nb\n\
                   1c26ef96-2259-4182-8a59-ac38b2b550c3 c\n";
        let listing = parse_uuid_listing(out);
        assert_eq!(find_uuid(&listing, "a"), None);
        assert!(find_uuid(&listing, "c").is_some());
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

    #[test]
    fn unreachable_is_recognised() {
        assert!(is_unreachable(
            "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/x': No such file or directory\n"
        ));
        assert!(!is_unreachable("error: Domain is already active\n"));
    }
}
