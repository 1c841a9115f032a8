//! A person at a terminal, for the prompt and console tests: a program run in a real
//! pseudo-terminal (rexpect), what it shows, and what it leaves behind in /proc.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub use rexpect::process::{Signal, WaitStatus};
use rexpect::session::{Options, PtySession, spawn_with_options};

/// How long one expected text may take to appear (a QEMU guest's first echo is < 1 s).
pub const EXPECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A program running in its own pseudo-terminal.
pub struct Term {
    pub session: PtySession,
    what: String,
}

impl Term {
    /// Runs `command` with the pty as its controlling terminal (stdin, stdout, stderr).
    /// `TERM=xterm` is added to its environment unless it sets one. What it shows is read
    /// with escape sequences (cursor moves, line erases) left out.
    pub fn spawn(mut command: Command) -> Term {
        if !command.get_envs().any(|(name, _)| name == "TERM") {
            command.env("TERM", "xterm");
        }
        let what = format!("{command:?}");
        let timeout = u64::try_from(EXPECT_TIMEOUT.as_millis()).unwrap();
        let options = Options::new()
            .timeout_ms(Some(timeout))
            .strip_ansi_escape_codes(true);
        let mut session =
            spawn_with_options(command, options).unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        // Dropping the session SIGTERMs the program; give up and SIGKILL after 5 s.
        session.process_mut().set_kill_timeout(Some(5000));
        Term { session, what }
    }

    /// Waits for `needle` and returns everything shown before it, without the carriage
    /// returns a line editor writes at the end to redraw; panics with what was shown instead.
    pub fn expect(&mut self, needle: &str) -> String {
        let shown = self
            .session
            .exp_string(needle)
            .unwrap_or_else(|e| panic!("waiting for {needle:?} from {}:\n{e}", self.what));
        shown.trim_end_matches('\r').to_owned()
    }

    /// Waits for a fresh prompt with nothing typed after it (the previous line is done) and
    /// returns what was shown since the last wait. A line editor redraws the prompt while a
    /// line is edited too, but then with the line after it.
    pub fn done(&mut self, prompt: &str) -> String {
        self.expect(&format!("{prompt}\r"))
    }

    /// Waits for the list of candidates Tab shows above the redrawn `line`, and returns it.
    pub fn listing(&mut self, prompt: &str, line: &str) -> String {
        self.expect(&format!("\n\r{prompt}{line}\r"))
    }

    /// Types `text` (no newline).
    pub fn send(&mut self, text: &str) {
        self.session.send(text).expect("write to pty");
        self.session.flush().expect("flush pty");
    }

    /// Types `poke` every 100 ms until `needle` is shown, and returns what was shown up to
    /// and including it. For a serial console: bytes typed before virsh has put the
    /// terminal in raw mode are lost, and a guest's output while nobody was attached is gone.
    pub fn poke_until(&mut self, poke: &str, needle: &str) -> String {
        let deadline = Instant::now() + EXPECT_TIMEOUT;
        let mut shown = String::new();
        loop {
            self.send(poke);
            let next = Instant::now() + Duration::from_millis(100);
            if self.read_until(&mut shown, needle, next) {
                return shown;
            }
            if Instant::now() > deadline {
                panic!("{needle:?} never shown by {}; got:\n{shown:?}", self.what);
            }
        }
    }

    /// Waits up to `timeout` for `needle`; true if it was shown. What was shown up to it is
    /// consumed either way.
    pub fn try_expect(&mut self, needle: &str, timeout: Duration) -> bool {
        self.read_until(&mut String::new(), needle, Instant::now() + timeout)
    }

    /// Adds what is shown to `shown` until it ends with `needle` (true) or `deadline` passes.
    fn read_until(&mut self, shown: &mut String, needle: &str, deadline: Instant) -> bool {
        while Instant::now() < deadline {
            match self.session.try_read() {
                Some(c) => {
                    shown.push(c);
                    if shown.ends_with(needle) {
                        return true;
                    }
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        false
    }

    /// Types raw bytes (control characters, bytes that are not UTF-8).
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        // rexpect writes &str; a byte that is not UTF-8 goes through the pty's file handle.
        use std::io::Write;
        let mut handle = self
            .session
            .process()
            .get_file_handle()
            .expect("dup pty master");
        handle.write_all(bytes).expect("write to pty");
        handle.flush().expect("flush pty");
    }

    /// Types `line` and Enter (a carriage return, as a terminal sends it).
    pub fn line(&mut self, line: &str) {
        self.send(&format!("{line}\r"));
    }

    /// Waits for the program to exit and returns its exit code; panics on a signal or
    /// after `EXPECT_TIMEOUT`.
    pub fn exit_code(&mut self) -> i32 {
        let deadline = Instant::now() + EXPECT_TIMEOUT;
        loop {
            match self.session.process().status() {
                Some(WaitStatus::Exited(_, code)) => return code,
                Some(WaitStatus::StillAlive) | None if Instant::now() < deadline => {
                    // Drain output so that a program writing a lot never blocks on the pty.
                    while self.session.try_read().is_some() {}
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => panic!("{} did not exit normally: {other:?}", self.what),
            }
        }
    }

    /// Kills the program (e.g. the ssh client: a dropped connection).
    pub fn kill(&mut self) {
        let _ = self.session.process_mut().signal(Signal::SIGKILL);
        let _ = self.session.process().wait();
    }
}

/// Pids of the processes whose command line (arguments joined by spaces) contains `marker`.
/// The test binary itself is never one of them.
pub fn pids_with(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|raw| {
                let text = String::from_utf8_lossy(&raw).replace('\0', " ");
                text.contains(marker)
            })
        })
        .collect()
}

/// Waits up to `wait` for no process to match `marker`; panics naming the survivors.
pub fn assert_none_left(marker: &str, wait: Duration) {
    let deadline = Instant::now() + wait;
    loop {
        let left = pids_with(marker);
        if left.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let lines: Vec<String> = left
                .iter()
                .map(|pid| {
                    let cmd = fs::read(format!("/proc/{pid}/cmdline"))
                        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
                        .unwrap_or_default();
                    format!("{pid}: {cmd}")
                })
                .collect();
            panic!(
                "still running after {wait:?} (matching {marker:?}):\n{}",
                lines.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `signal` to the process `pid` (e.g. `Signal::SIGKILL` to a virsh under test).
pub fn send_signal(pid: u32, signal: Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("a pid fits in i32"));
    nix::sys::signal::kill(pid, signal).unwrap_or_else(|e| panic!("kill {pid} {signal}: {e}"));
}

/// Waits up to `wait` for exactly one process matching `marker` and returns its pid.
pub fn one_pid_with(marker: &str, wait: Duration) -> u32 {
    let deadline = Instant::now() + wait;
    loop {
        let pids = pids_with(marker);
        if pids.len() == 1 {
            return pids[0];
        }
        if Instant::now() > deadline {
            panic!("expected one process matching {marker:?}, found {pids:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The terminal a process has on stdin (`/dev/pts/N`).
pub fn terminal_of(pid: u32) -> PathBuf {
    fs::read_link(format!("/proc/{pid}/fd/0"))
        .unwrap_or_else(|e| panic!("readlink /proc/{pid}/fd/0: {e}"))
}

/// `stty -F TTY ARGS`; returns its output. With no ARGS, the settings (`stty -a`).
pub fn stty(tty: &std::path::Path, args: &[&str]) -> String {
    let mut command = Command::new("/usr/bin/stty");
    command.arg("-F").arg(tty);
    if args.is_empty() {
        command.arg("-a");
    } else {
        command.args(args);
    }
    let out = command.output().expect("run stty");
    assert!(
        out.status.success(),
        "stty {args:?} on {}: {}",
        tty.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `stty -a` output shows the flag set (`icanon`), not cleared (`-icanon`).
pub fn flag_set(settings: &str, flag: &str) -> bool {
    settings.split_whitespace().any(|word| word == flag)
}
