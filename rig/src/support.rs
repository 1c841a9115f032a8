//! What every part of the rig needs: temp dirs and files under one root that is swept when
//! its test binary is gone, and running a command with a timeout, its output collected.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

pub(crate) const SETPRIV: &str = "/usr/bin/setpriv";
/// How long the daemons may take to come up before the rig gives up (they need < 1 s).
pub(crate) const STARTUP_DEADLINE: Duration = Duration::from_secs(20);
/// Upper bound for one plain `virsh` call made by the rig or a test.
pub(crate) const VIRSH_TIMEOUT: Duration = Duration::from_secs(30);
/// A PATH with nothing from the caller's environment in it.
pub const CLEAN_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// Prefix of every temp dir this crate makes; stale ones from dead test binaries are swept.
const TMP_PREFIX: &str = "dromaius-rig-";

static SCRATCH: OnceLock<PathBuf> = OnceLock::new();
/// Numbers every temp file, dir, key and domain name the rig makes, so none collide.
pub(crate) static COUNTER: AtomicUsize = AtomicUsize::new(1);

/// A job for the keeper thread: it starts children and keeps them.
type Job = Box<dyn FnOnce(&mut Vec<Child>) + Send>;

/// Runs `start` on the keeper thread, which owns every long-lived child of the rig (the
/// daemons) and never exits: their parent-death signal (`setpriv --pdeathsig KILL`) fires
/// when the thread that spawned them ends, so spawned there they live exactly as long as
/// the test binary. If `start` fails, what it started is killed before the error comes back.
pub(crate) fn keep<T: Send + 'static>(
    start: impl FnOnce(&mut Vec<Child>) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let sender = KEEPER.get_or_init(|| {
        let (sender, jobs) = mpsc::channel::<Job>();
        let spawned = thread::Builder::new()
            .name("rig-keeper".into())
            .spawn(move || {
                let mut kept: Vec<Child> = Vec::new();
                // Ends only if every sender is gone, which a static never is.
                for job in jobs {
                    job(&mut kept);
                }
                // Never reached while the binary runs; if it were, the children must
                // still not be dropped into the void before the process exits.
                loop {
                    thread::park();
                }
            });
        if let Err(e) = spawned {
            panic!("spawn the rig keeper thread: {e}");
        }
        Mutex::new(sender)
    });
    let (reply, answer) = mpsc::channel();
    let job: Job = Box::new(move |kept: &mut Vec<Child>| {
        let mut mine = Vec::new();
        let result = start(&mut mine);
        if result.is_err() {
            for child in &mut mine {
                let _ = child.kill();
                let _ = child.wait();
            }
        } else {
            kept.append(&mut mine);
        }
        let _ = reply.send(result);
    });
    sender
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send(job)
        .map_err(|_| "the rig keeper thread is gone".to_string())?;
    answer
        .recv()
        .map_err(|_| "the rig keeper thread died before reporting".to_string())?
}

/// Whether the process `pid` has ended (a child the keeper never reaps stays a zombie).
pub(crate) fn has_ended(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_none_or(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
        Err(_) => true,
    }
}

/// A unique, test-driver-safe domain name: prefix + a counter + pid (e.g. "web-3-4711").
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{n}-{}", std::process::id())
}

/// Writes `contents` to a fresh file under the rig dir and returns its path (for configs).
/// It only needs the rig's directory, not its daemons, so it starts nothing.
pub fn write_file(name_hint: &str, contents: &str) -> PathBuf {
    let files = scratch_dir().join("files");
    fs::create_dir_all(&files).expect("create files dir");
    let hint: String = name_hint
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = files.join(format!("{n}-{hint}"));
    fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod file");
    path
}

/// The rig dir: made on first use (by `Rig::get` or `write_file`), 0755 and root's.
pub(crate) fn scratch_dir() -> &'static Path {
    SCRATCH.get_or_init(|| make_temp_dir("main"))
}

/// `mktemp -d` under the temp dir, named `dromaius-rig-<pid>-<kind>-<n>` so leftovers of
/// dead test binaries can be recognised and swept; chmod 0755 so `nobody` can traverse it.
pub fn make_temp_dir(kind: &str) -> PathBuf {
    static SWEEP: OnceLock<()> = OnceLock::new();
    SWEEP.get_or_init(sweep_stale_dirs);
    let base = std::env::temp_dir();
    let pid = std::process::id();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("{TMP_PREFIX}{pid}-{kind}-{n}"));
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                    .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
                return dir;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("create {}: {e}", dir.display()),
        }
    }
}

/// Removes rig dirs left by test binaries that are no longer running (their daemons died
/// with them, but statics are never dropped, so their dirs stay behind).
pub(crate) fn sweep_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(TMP_PREFIX) else {
            continue;
        };
        let Some(Ok(pid)) = rest.split('-').next().map(str::parse::<u32>) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// A Command with an empty environment except PATH, HOME (the rig dir, so nothing is
/// written to /root) and LC_ALL=C (stable messages).
pub(crate) fn clean_command(program: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", CLEAN_PATH)
        .env("HOME", dir)
        .env("LC_ALL", "C")
        .current_dir(dir);
    cmd
}

/// Runs `cmd`, feeding `stdin` (then closing it), collecting stdout and stderr; kills it
/// and panics if it is still running after `timeout`.
pub fn run(mut cmd: Command, stdin: &[u8], timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    // Separate threads for every pipe, so a child that writes a lot before it reads (or
    // never reads) cannot deadlock against us. A write error (EPIPE) just means it stopped
    // reading.
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let out_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let mut err_pipe = child.stderr.take().unwrap();
    let err_reader = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });

    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {timeout:?}; killed it");
        }
        thread::sleep(Duration::from_millis(2));
    };
    let _ = writer.join();
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

pub(crate) fn check(out: Output, what: &str) -> Output {
    if !out.status.success() {
        panic!("{what} failed: {}", describe(&out));
    }
    out
}

/// "exit status: 1, stdout: ..., stderr: ..." for failure messages.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout:\n{}\n--- stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub(crate) fn spawn_logged(mut cmd: Command, log: &Path, what: &str) -> Result<Child, String> {
    let file = fs::File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
    let file2 = file.try_clone().map_err(|e| format!("dup log fd: {e}"))?;
    cmd.stdin(Stdio::null())
        .stdout(file)
        .stderr(file2)
        .spawn()
        .map_err(|e| format!("spawn {what} ({cmd:?}): {e}"))
}

pub(crate) fn exited(child: &mut Child) -> Option<ExitStatus> {
    child.try_wait().ok().flatten()
}

/// A log's contents (the last 8 KiB is plenty for a failure message).
pub(crate) fn read_log(path: &Path) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()));
    match text.char_indices().rev().nth(8192) {
        Some((i, _)) => format!("...{}", &text[i..]),
        None => text,
    }
}

/// The numeric id of `name` in /etc/passwd or /etc/group (third field of both).
pub(crate) fn lookup_id(file: &str, name: &str) -> Result<u32, String> {
    let text = fs::read_to_string(file).map_err(|e| format!("read {file}: {e}"))?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .and_then(|f| f.get(2)?.parse().ok())
        .ok_or_else(|| format!("no entry {name:?} in {file}"))
}

/// A path the rig made, as the text a command line or a config needs.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("rig paths are UTF-8")
}

/// A finished run's exit status (`None` when a signal ended it).
pub fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// A finished run's stdout, as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A finished run's stderr, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
