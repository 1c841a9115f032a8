//! The process's own edges: signals, the virsh child that must not outlive us, and the
//! terminal's settings.
//!
//! `virsh console` ignores SIGHUP, SIGTERM, SIGINT and SIGQUIT, so when the SSH client goes
//! away a plain exit would leave it holding the domain's console forever. A signal thread
//! SIGKILLs every running child (its whole process group where it has one of its own) and
//! lets the main thread finish the request, audit it, and stop. A hang-up while no request
//! is in hand (waiting for input) ends the process at once; one that comes while a request
//! is being finished (virsh has acted, its output or its record is not out yet) waits for
//! that request to be audited, for [`HANG_UP_GRACE`] at most. A killed virsh cannot put the
//! terminal back from raw mode, so the settings it found are saved and restored here,
//! however it ended. Nothing here decides policy.

use std::io::{self, Write};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::termios::{self, FlushArg, SetArg, Termios};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTSTP};
use signal_hook::iterator::Signals;

/// The running virsh children (several when hypervisors are asked at once): each one's pid,
/// and whether it leads its own process group.
static CHILDREN: Mutex<Vec<(i32, bool)>> = Mutex::new(Vec::new());
/// Set once the client is gone (SIGHUP) or we were told to stop (SIGTERM): no new request runs.
static HUNG_UP: AtomicBool = AtomicBool::new(false);
/// Set by SIGINT or SIGQUIT (Ctrl-C, Ctrl-\ while a command runs); cleared when read.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The terminal's settings when the interactive session began, put back if a signal ends
/// the process while the prompt has the terminal in raw mode.
static SESSION_TERMINAL: Mutex<Option<Termios>> = Mutex::new(None);
/// Set while a request is being handled, from its parsing to its audit record.
static IN_REQUEST: AtomicBool = AtomicBool::new(false);

/// The longest a hang-up waits for the request in hand to be finished and audited. Under
/// sshd the client's departure also closes our stdout, so a request blocked writing its
/// output gets an error at once and finishes in microseconds; this bounds the rest.
pub const HANG_UP_GRACE: Duration = Duration::from_secs(5);

fn children() -> MutexGuard<'static, Vec<(i32, bool)>> {
    // A poisoned lock only means another thread panicked holding it; the pids are still right.
    CHILDREN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts the signal thread. If it cannot be started, signals keep their default action
/// (the process dies), which is safe for everything but an attached console.
pub fn install_signal_handlers() {
    // SIGQUIT (Ctrl-\) would otherwise kill dromaius and orphan a console that ignores it;
    // SIGTSTP (Ctrl-Z) would stop it holding the console: both are caught.
    let Ok(mut signals) = Signals::new([SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGTSTP]) else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGTSTP {
                    continue;
                }
                let interrupt = signal == SIGINT || signal == SIGQUIT;
                let idle = {
                    let mut running = children();
                    if interrupt {
                        INTERRUPTED.store(true, Ordering::SeqCst);
                    } else {
                        HUNG_UP.store(true, Ordering::SeqCst);
                    }
                    let idle = running.is_empty();
                    for (pid, own_group) in running.drain(..) {
                        kill_child(pid, own_group);
                    }
                    idle
                };
                // Nothing running: a hang-up or SIGTERM ends the session here (the main
                // thread may be blocked reading a stdin that never closes) — but not
                // before the request in hand, if any, is audited. The lock is released
                // first: the main thread may need it to learn that it must not spawn.
                if idle && !interrupt {
                    let deadline = Instant::now() + HANG_UP_GRACE;
                    while IN_REQUEST.load(Ordering::SeqCst) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    restore_session_terminal();
                    std::process::exit(128 + signal);
                }
            }
        });
    drop(spawned);
}

fn kill_child(pid: i32, own_group: bool) {
    let target = Pid::from_raw(pid);
    if own_group {
        let _ = killpg(target, Signal::SIGKILL);
    } else {
        let _ = kill(target, Signal::SIGKILL);
    }
}

/// Marks a request as in hand until the guard is dropped (after its audit record): a
/// hang-up meanwhile lets it finish instead of ending the process under it.
pub fn request_in_hand() -> RequestGuard {
    IN_REQUEST.store(true, Ordering::SeqCst);
    RequestGuard(())
}

pub struct RequestGuard(());

impl Drop for RequestGuard {
    fn drop(&mut self) {
        IN_REQUEST.store(false, Ordering::SeqCst);
    }
}

/// Whether the client has gone away: the session must end after the current request.
pub fn hung_up() -> bool {
    HUNG_UP.load(Ordering::SeqCst)
}

/// Whether the client's terminal (stdin) has been hung up. A program that reads it (virsh
/// console) sees the hang-up and may exit on its own before the signal thread has handled
/// the SIGHUP that reports it; the terminal already says so.
pub fn terminal_hung_up() -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let stdin = io::stdin();
    let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::empty())];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
}

/// Whether Ctrl-C (or Ctrl-\) was pressed since the last call.
pub fn take_interrupt() -> bool {
    INTERRUPTED.swap(false, Ordering::SeqCst)
}

/// Spawns `command` and registers the child so that a signal kills it; the returned guard
/// unregisters it. The spawn happens under the same lock the signal thread takes, so a
/// hang-up either comes first (and nothing is spawned) or finds the child to kill.
pub fn spawn_tracked(command: &mut Command, own_group: bool) -> io::Result<(Child, ChildGuard)> {
    let mut running = children();
    if hung_up() {
        return Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "the client hung up",
        ));
    }
    let child = command.spawn()?;
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    running.push((pid, own_group));
    Ok((child, ChildGuard { pid, own_group }))
}

/// Kills the tracked child (and its group) on request, e.g. on a timeout.
pub struct ChildGuard {
    pid: i32,
    own_group: bool,
}

impl ChildGuard {
    pub fn kill(&self) {
        kill_child(self.pid, self.own_group);
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        children().retain(|(pid, _)| *pid != self.pid);
    }
}

/// The settings of the terminal on stdin, put back when dropped: around `virsh console`,
/// which leaves raw mode behind when it is killed. A terminal that is gone (hang-up) or
/// was never there is nothing to restore, not an error.
pub struct TerminalGuard(Option<Termios>);

impl TerminalGuard {
    pub fn save() -> TerminalGuard {
        TerminalGuard(termios::tcgetattr(std::io::stdin()).ok())
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if let Some(settings) = &self.0 {
            let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, settings);
        }
    }
}

/// Remembers the terminal's settings at the start of an interactive session, for
/// [`restore_session_terminal`].
pub fn remember_session_terminal() {
    let settings = termios::tcgetattr(std::io::stdin()).ok();
    *SESSION_TERMINAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = settings;
}

/// Puts back the settings remembered at the start of the session (e.g. before a SIGTERM
/// exit while the prompt has the terminal in raw mode).
fn restore_session_terminal() {
    let saved = SESSION_TERMINAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(settings) = saved.as_ref() {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, settings);
    }
}

/// When the prompt, waiting for a line, has waited long enough (`idle_timeout_secs`), and
/// that limit.
static IDLE_UNTIL: Mutex<Option<(Instant, Duration)>> = Mutex::new(None);

/// Sets the idle deadline `limit` from now (`None`: no deadline, a request is being read),
/// and starts, the first time there is one, the watch that ends an idle prompt's session:
/// when the deadline passes while no request is in hand, the terminal's settings are put
/// back, the user is told, and the process exits 0.
pub fn idle_from_now(limit: Option<Duration>) {
    *IDLE_UNTIL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) =
        limit.map(|limit| (Instant::now() + limit, limit));
    if limit.is_some() {
        start_idle_watch();
    }
}

fn start_idle_watch() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("idle".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(200));
                    let due = *IDLE_UNTIL
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    let Some((until, limit)) = due else { continue };
                    if Instant::now() >= until && !IN_REQUEST.load(Ordering::SeqCst) {
                        restore_session_terminal();
                        let _ = writeln!(
                            std::io::stderr(),
                            "\r\ndromaius: no request for {} s; the session ends",
                            limit.as_secs()
                        );
                        std::process::exit(0);
                    }
                }
            });
        drop(spawned);
    });
}

/// Throws away input typed ahead on the terminal and not yet read.
pub fn discard_typed_ahead() {
    let _ = termios::tcflush(std::io::stdin(), FlushArg::TCIFLUSH);
}

/// The system's clock, for grants that expire.
pub struct SystemClock;

impl crate::gateway::Clock for SystemClock {
    fn now(&self) -> i64 {
        crate::expiry::now()
    }
}

/// The name of the Unix user running the program, the identity when `--key` is not given.
pub fn unix_user_name() -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::effective())
        .ok()
        .flatten()
        .map(|user| user.name)
}

/// A directory only this process's user can use, removed with what is in it when dropped:
/// for a file a child writes by name and we read back (virsh follows links and overwrites
/// what it finds, so the name must be in a place no one else can write).
pub struct PrivateDir {
    path: std::path::PathBuf,
}

impl PrivateDir {
    /// Creates `/tmp/PREFIX-PID-N`, mode 0700. `mkdir` fails on anything already there
    /// (a link included), so a directory it made is ours; a name taken is skipped.
    pub fn create(prefix: &str) -> io::Result<PrivateDir> {
        use std::os::unix::fs::DirBuilderExt;
        let mut last = io::Error::other("no name left");
        for attempt in 0..64u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let path = std::path::PathBuf::from(format!(
                "/tmp/{prefix}-{}-{nanos:x}{attempt:x}",
                std::process::id()
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(PrivateDir { path }),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => last = error,
                Err(error) => return Err(error),
            }
        }
        Err(last)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
