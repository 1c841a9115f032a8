//! Running the built binary directly, the way sshd runs a forced command (environment
//! variables, stdin, `SSH_ORIGINAL_COMMAND`), without the ~300 ms of an ssh round trip —
//! optionally under `strace -ff`, to see every program it executed and with what argv and
//! environment, and with a hostile caller environment that must change nothing.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const STRACE: &str = "/usr/bin/strace";

/// One program execution seen by strace.
#[derive(Debug, Clone)]
pub struct Exec {
    pub pid: u32,
    pub path: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub env: Vec<Vec<u8>>,
    /// Whether the execve succeeded (`= 0`).
    pub succeeded: bool,
}

impl Exec {
    pub fn argv_str(&self) -> Vec<String> {
        self.argv
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    }
}

/// What one direct run produced.
pub struct Run {
    pub output: Output,
    /// Every execve of the run, the binary's own first; empty unless traced.
    pub execs: Vec<Exec>,
    /// Every pid strace saw (the binary and everything it forked).
    pub pids: Vec<u32>,
    pub elapsed: Duration,
}

/// How to run the binary once.
pub struct Invocation {
    pub args: Vec<OsString>,
    /// `SSH_ORIGINAL_COMMAND`, if set (any bytes but NUL).
    pub request: Option<Vec<u8>>,
    pub stdin: Vec<u8>,
    /// The environment, on top of an empty one.
    pub env: Vec<(OsString, OsString)>,
    pub trace: bool,
    pub timeout: Duration,
}

impl Invocation {
    /// `dromaius --config CONFIG ARGS...` with an empty environment and no stdin.
    pub fn new(config: &Path, args: &[&str]) -> Invocation {
        let mut all: Vec<OsString> = vec!["--config".into(), config.as_os_str().to_owned()];
        all.extend(args.iter().map(OsString::from));
        Invocation {
            args: all,
            request: None,
            stdin: Vec::new(),
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            trace: false,
            timeout: Duration::from_secs(60),
        }
    }

    pub fn request(mut self, request: &[u8]) -> Invocation {
        self.request = Some(request.to_vec());
        self
    }

    pub fn stdin(mut self, stdin: &[u8]) -> Invocation {
        self.stdin = stdin.to_vec();
        self
    }

    pub fn env(mut self, env: Vec<(OsString, OsString)>) -> Invocation {
        self.env = env;
        self
    }

    pub fn traced(mut self) -> Invocation {
        self.trace = true;
        self
    }

    /// Runs it; panics if it is still running after the timeout.
    pub fn run(&self) -> Run {
        let trace_dir = self
            .trace
            .then(|| super::write_file("trace", "").with_extension("d"));
        let mut command = match &trace_dir {
            Some(dir) => {
                fs::create_dir_all(dir).expect("create trace dir");
                let mut command = Command::new(STRACE);
                command
                    .args([
                        "-f",
                        "-ff",
                        "-qq",
                        "--seccomp-bpf",
                        "-e",
                        "trace=execve,execveat",
                    ])
                    .args(["-e", "signal=none", "-xx", "-v", "-s", "1048576", "-o"])
                    .arg(dir.join("t"))
                    .arg("--")
                    .arg(super::dromaius_bin());
                command
            }
            None => Command::new(super::dromaius_bin()),
        };
        command.args(&self.args).env_clear().current_dir("/");
        for (name, value) in &self.env {
            command.env(name, value);
        }
        if let Some(request) = &self.request {
            command.env("SSH_ORIGINAL_COMMAND", OsStr::from_bytes(request));
        }
        let started = Instant::now();
        let output = run_with_timeout(command, &self.stdin, self.timeout);
        let elapsed = started.elapsed();
        let (execs, pids) = match &trace_dir {
            Some(dir) => {
                let traced = read_traces(dir);
                let _ = fs::remove_dir_all(dir);
                traced
            }
            None => (Vec::new(), Vec::new()),
        };
        Run {
            output,
            execs,
            pids,
            elapsed,
        }
    }
}

/// The rig's runner: feeds stdin, collects both outputs, and kills and reports a child
/// still running after `timeout`.
pub use super::run as run_with_timeout;

/// Reads `strace -ff -xx -v` output files (`t.PID`): every execve/execveat, in pid order.
fn read_traces(dir: &Path) -> (Vec<Exec>, Vec<u32>) {
    let mut files: Vec<(u32, PathBuf)> = fs::read_dir(dir)
        .expect("read trace dir")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = name.strip_prefix("t.")?.parse().ok()?;
            Some((pid, e.path()))
        })
        .collect();
    files.sort();
    let mut execs = Vec::new();
    for (pid, path) in &files {
        let text = fs::read_to_string(path).expect("read trace");
        for line in text.lines() {
            if let Some(exec) = parse_exec(*pid, line) {
                execs.push(exec);
            } else if line.contains("execve") {
                panic!("unparsed strace line: {line}");
            }
        }
    }
    (execs, files.into_iter().map(|(pid, _)| pid).collect())
}

/// `execve("\x2f...", ["\x..", ...], ["\x..", ...]) = 0` (or `= -1 ENOENT (...)`).
fn parse_exec(pid: u32, line: &str) -> Option<Exec> {
    let rest = line
        .strip_prefix("execve(")
        .or_else(|| line.strip_prefix("execveat(AT_FDCWD, "))?;
    let mut cursor = rest.as_bytes();
    let path = take_string(&mut cursor)?;
    cursor = cursor.strip_prefix(b", ")?;
    let argv = take_array(&mut cursor)?;
    cursor = cursor.strip_prefix(b", ")?;
    let env = take_array(&mut cursor)?;
    let tail = std::str::from_utf8(cursor).ok()?;
    let result = tail.rsplit_once(") = ")?.1;
    Some(Exec {
        pid,
        path,
        argv,
        env,
        succeeded: result.trim() == "0",
    })
}

fn take_string(cursor: &mut &[u8]) -> Option<Vec<u8>> {
    let mut rest = cursor.strip_prefix(b"\"")?;
    let mut out = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix(b"\"") {
            *cursor = after;
            return Some(out);
        }
        let hex = rest.strip_prefix(b"\\x")?;
        let digits = std::str::from_utf8(hex.get(..2)?).ok()?;
        out.push(u8::from_str_radix(digits, 16).ok()?);
        rest = &hex[2..];
    }
}

fn take_array(cursor: &mut &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut rest = cursor.strip_prefix(b"[")?;
    let mut out = Vec::new();
    if let Some(after) = rest.strip_prefix(b"]") {
        *cursor = after;
        return Some(out);
    }
    loop {
        out.push(take_string(&mut rest)?);
        if let Some(after) = rest.strip_prefix(b", ") {
            rest = after;
        } else {
            *cursor = rest.strip_prefix(b"]")?;
            return Some(out);
        }
    }
}

/// Whether any of `pids` is still alive (not even a zombie counts as gone... a zombie is
/// dead, so it does not count).
pub fn still_running(pids: &[u32]) -> Vec<u32> {
    pids.iter()
        .copied()
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let state = stat.rsplit_once(") ")?.1.chars().next()?;
                    Some(state != 'Z' && state != 'X')
                })
                .unwrap_or(false)
        })
        .collect()
}

/// A caller environment built to mislead virsh: a planted `virsh` (and `sh`) first in
/// PATH, a HOME and XDG_CONFIG_HOME whose libvirt.conf aliases URIs and sets a default one,
/// and libvirt's and virsh's own variables. Nothing of it may have any effect.
pub struct HostileEnv {
    pub dir: PathBuf,
}

impl HostileEnv {
    pub fn new() -> HostileEnv {
        let dir = super::write_file("hostile-marker", "").with_file_name(super::unique("hostile"));
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).unwrap();
        fs::create_dir_all(dir.join(".config/libvirt")).unwrap();
        for planted in ["virsh", "sh", "bash", "env", "strace", "sudo"] {
            let path = bin.join(planted);
            fs::write(
                &path,
                format!("#!/bin/sh\necho \"$0 $*\" >> {}/tripped\n", dir.display()),
            )
            .unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::write(
            dir.join(".config/libvirt/libvirt.conf"),
            "uri_aliases = [ \"web1=test:///default\", \"qemu=test:///default\" ]\n\
             uri_default = \"test:///default\"\n",
        )
        .unwrap();
        HostileEnv { dir }
    }

    pub fn vars(&self) -> Vec<(OsString, OsString)> {
        let d = self.dir.display();
        [
            ("PATH", format!("{d}/bin:/usr/bin:/bin")),
            ("HOME", format!("{d}")),
            ("XDG_CONFIG_HOME", format!("{d}/.config")),
            ("XDG_CACHE_HOME", format!("{d}/cache")),
            ("XDG_RUNTIME_DIR", format!("{d}/run")),
            ("LIBVIRT_DEFAULT_URI", "test:///default".into()),
            ("VIRSH_DEFAULT_CONNECT_URI", "test:///default".into()),
            ("VIRSH_DEBUG", "0".into()),
            ("VIRSH_LOG_FILE", format!("{d}/virsh.log")),
            ("VIRSH_HISTSIZE", "1".into()),
            ("LIBVIRT_DEBUG", "1".into()),
            ("LIBVIRT_LOG_OUTPUTS", format!("1:file:{d}/libvirt.log")),
            ("LIBVIRT_LOG_FILTERS", "1:*".into()),
            ("LIBVIRT_AUTH_FILE", format!("{d}/auth.conf")),
            ("LIBVIRT_ADMIN_DEFAULT_URI", "test:///default".into()),
            ("SSH_CONNECTION", "203.0.113.7 40001 127.0.0.1 22".into()),
            ("USER", "root".into()),
            ("SHELL", format!("{d}/bin/sh")),
            ("IFS", ";".into()),
            ("ENV", format!("{d}/bin/sh")),
            ("BASH_ENV", format!("{d}/bin/sh")),
            ("LANG", "tr_TR.UTF-8".into()),
        ]
        .into_iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
    }

    /// What of the environment took effect, if anything: planted programs that ran, log
    /// files that libvirt or virsh wrote where the environment told them to.
    pub fn effects(&self) -> Vec<String> {
        ["tripped", "virsh.log", "libvirt.log", "cache", "run"]
            .iter()
            .filter(|name| self.dir.join(name).exists())
            .map(|name| {
                let text = fs::read_to_string(self.dir.join(name)).unwrap_or_default();
                format!("{name}: {text}")
            })
            .collect()
    }
}

impl Default for HostileEnv {
    fn default() -> Self {
        HostileEnv::new()
    }
}

/// The fields of one audit record's message (after `dromaius[PID]: `), as a log reader
/// would split them: `name=value` or `name="value"` with backslash escapes.
pub fn audit_fields(record: &str) -> Vec<(String, String)> {
    let message = record
        .split_once("]: ")
        .map_or(record, |(_, message)| message);
    message_fields(message)
}

/// The value of the field `name` in an audit record ([`audit_fields`]), unescaped.
pub fn audit_field(record: &str, name: &str) -> Option<String> {
    audit_fields(record)
        .into_iter()
        .find(|(field, _)| field == name)
        .map(|(_, value)| value)
}

/// The fields of an audit message alone (no `dromaius[PID]: ` before it), split as
/// [`audit_fields`] splits them. For a message whose values may hold `]: ` themselves.
pub fn message_fields(message: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = message.chars().peekable();
    while chars.peek().is_some() {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    other => value.push(other),
                }
            }
            chars.next();
        } else {
            value = chars.by_ref().take_while(|c| *c != ' ').collect();
        }
        out.push((name, value));
    }
    out
}

/// For the record that says how many records a session's flood left unsent
/// (`dropped=N`, see dromaius's `audit::Auditor`): that number.
pub fn dropped_in(record: &str) -> Option<usize> {
    audit_field(record, "dropped").and_then(|value| value.parse().ok())
}

/// Checks that `record` is one escaped record: printable ASCII, one line, exactly the
/// contract's fields in order, and returns (decision, outcome).
pub fn check_record(record: &str) -> (String, u8) {
    assert!(
        record.bytes().all(|b| (0x20..0x7f).contains(&b)),
        "unescaped byte in {record:?}"
    );
    assert!(record.starts_with('<'), "{record}");
    assert!(record.contains(" dromaius["), "{record}");
    let fields = audit_fields(record);
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    let expected = ["key", "client", "command", "domain", "decision", "outcome"];
    // Then, each only where it applies, in this order.
    let optional = [
        "reason",
        "hypervisor",
        "relay",
        "endpoint",
        "bytes_to_guest",
        "bytes_to_viewer",
        "duration_ms",
        "fingerprint",
        "cert_id",
        "cert_serial",
    ];
    let extra = names.get(expected.len()..).unwrap_or_default();
    let mut allowed = optional.iter();
    assert!(
        names.len() >= expected.len()
            && names[..expected.len()] == expected
            && extra.iter().all(|name| allowed.any(|o| o == name)),
        "fields {names:?} in {record}"
    );
    let decision = fields[4].1.clone();
    assert!(
        ["allow", "deny", "invalid"].contains(&decision.as_str()),
        "{record}"
    );
    let outcome = fields[5].1.parse().unwrap_or_else(|_| panic!("{record}"));
    (decision, outcome)
}
