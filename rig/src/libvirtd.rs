//! A libvirt for the tests: a session `libvirtd` run as `nobody` serving the test driver
//! (and QEMU, for the console tests), with one connection held open for the whole test
//! binary, and the plain `virsh` calls the tests make to set up and inspect domains. The
//! rig has one; a fleet test starts more ([`Libvirtd::start`]), each its own hypervisor.
//!
//! The test driver forgets everything when its last client disconnects, so each daemon has
//! one connection (`virsh event --all --loop`) held open as long as the test binary runs. A
//! name is never handed to virsh by these helpers: each looks the UUID up by exact name.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{
    CLEAN_PATH, SETPRIV, STARTUP_DEADLINE, VIRSH_TIMEOUT, clean_command, describe, exited,
    has_ended, keep, lookup_id, make_temp_dir, path_str, read_log, run, spawn_logged, write_file,
};

pub(crate) const LIBVIRTD: &str = "/usr/sbin/libvirtd";
/// The virsh the rig runs, and the one a config of the suites or the bench names.
pub const VIRSH: &str = "/usr/bin/virsh";

/// One running session libvirtd, with its held connection.
pub struct Libvirtd {
    /// Its own directory: `d/` is the daemon's HOME (nobody's), logs beside it.
    dir: PathBuf,
    socket: PathBuf,
    pid: u32,
}

impl Libvirtd {
    /// Starts another session libvirtd, in a directory of its own; panics, with its log,
    /// if it does not come up.
    pub fn start() -> Libvirtd {
        let dir = make_temp_dir("libvirtd");
        Libvirtd::start_in(dir).unwrap_or_else(|why| panic!("a libvirtd could not start:\n{why}"))
    }

    /// Starts one in `dir` (its HOME is `dir/d`).
    pub(crate) fn start_in(dir: PathBuf) -> Result<Libvirtd, String> {
        let keeper_dir = dir.clone();
        let (socket, pid) = keep(move |children| {
            let socket = start_libvirtd(&keeper_dir, children)?;
            let pid = children.last().map_or(0, Child::id);
            hold_connection(&keeper_dir, &socket, children)?;
            Ok((socket, pid))
        })?;
        Ok(Libvirtd { dir, socket, pid })
    }

    /// Its directory (0755, root's; `d/` inside is the daemon's own).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's pid (a test may stop it with SIGSTOP, or kill it).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the daemon has ended.
    pub fn has_ended(&self) -> bool {
        has_ended(self.pid)
    }

    /// `test+unix:///default?socket=D/rt/libvirt/libvirt-sock`
    pub fn test_uri(&self) -> String {
        format!("test+unix:///default?socket={}", self.socket.display())
    }

    /// `qemu+unix:///session?socket=<same socket>`: the same daemon's QEMU driver.
    pub fn qemu_uri(&self) -> String {
        format!("qemu+unix:///session?socket={}", self.socket.display())
    }

    /// Runs `/usr/bin/virsh -c test_uri ARGS` directly (not through dromaius) with a clean
    /// environment; returns its Output whatever the exit status.
    pub fn virsh(&self, args: &[&str]) -> Output {
        self.virsh_uri(&self.test_uri(), args)
    }

    /// virsh against `uri` with `args`, as a Command to spawn yourself (in a pty, say).
    pub fn virsh_command(&self, uri: &str, args: &[&str]) -> std::process::Command {
        let mut cmd = clean_command(VIRSH, &self.dir);
        cmd.arg("-c").arg(uri).args(args);
        cmd
    }

    /// Like [`Libvirtd::virsh`] but against any URI (e.g. [`Libvirtd::qemu_uri`]).
    pub fn virsh_uri(&self, uri: &str, args: &[&str]) -> Output {
        let mut cmd = clean_command(VIRSH, &self.dir);
        cmd.arg("-c").arg(uri).args(args);
        run(cmd, b"", VIRSH_TIMEOUT)
    }

    /// Runs virsh against the test URI and panics unless it succeeds; returns its stdout.
    pub fn virsh_ok(&self, args: &[&str]) -> String {
        let out = self.virsh(args);
        if !out.status.success() {
            panic!("virsh {args:?} failed:\n{}", describe(&out));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Defines (not starts) a test-driver domain with the minimal XML from TEST-RIG.md;
    /// panics on failure.
    pub fn define(&self, name: &str) {
        let xml = format!(
            "<domain type='test'><name>{}</name><memory>65536</memory>\
             <os><type>hvm</type></os></domain>\n",
            xml_escape(name)
        );
        let file = write_file("domain.xml", &xml);
        self.virsh_ok(&["define", "--file", path_str(&file)]);
    }

    /// `virsh start` by UUID (so a name can never be taken for another domain's UUID);
    /// panics on failure.
    pub fn start_domain(&self, name: &str) {
        let uuid = self.uuid(name);
        self.virsh_ok(&["start", "--domain", &uuid]);
    }

    /// `virsh destroy` by UUID; panics on failure.
    pub fn destroy(&self, name: &str) {
        let uuid = self.uuid(name);
        self.virsh_ok(&["destroy", "--domain", &uuid]);
    }

    /// The domain's state by NAME, trimmed ("running", "shut off", ...).
    ///
    /// A name is never handed to virsh for this: virsh tries a domain argument as an id,
    /// then a UUID, then a name, so `domstate 1` answers for the domain with id 1 and
    /// `domuuid 1` aliases the same way. Instead the UUID is looked up by exact name in
    /// `virsh list --all --uuid --name` and `domstate --domain <uuid>` is asked.
    pub fn state(&self, name: &str) -> String {
        let uuid = self.uuid(name);
        self.virsh_ok(&["domstate", "--domain", &uuid])
            .trim()
            .to_string()
    }

    /// The UUID of the domain with exactly this name; panics if there is none.
    pub fn uuid(&self, name: &str) -> String {
        let listing = self.virsh_ok(&["list", "--all", "--uuid", "--name"]);
        self.domains_in(&listing)
            .into_iter()
            .find(|(_, n)| n == name)
            .map(|(uuid, _)| uuid)
            .unwrap_or_else(|| panic!("no domain named {name:?} in:\n{listing}"))
    }

    /// Every domain as (uuid, name), from `virsh list --all --uuid --name`.
    pub fn domains(&self) -> Vec<(String, String)> {
        let listing = self.virsh_ok(&["list", "--all", "--uuid", "--name"]);
        self.domains_in(&listing)
    }

    /// Parses `list --all --uuid --name`: in libvirt 9.0 each line is the 36-character UUID,
    /// one space, then the name verbatim (leading and trailing spaces kept), and the
    /// listing ends with an empty line.
    fn domains_in(&self, listing: &str) -> Vec<(String, String)> {
        listing
            .split('\n')
            .filter(|line| !line.is_empty())
            .map(|line| match line.split_once(' ') {
                Some((uuid, name)) if uuid.len() == 36 => (uuid.to_string(), name.to_string()),
                _ => panic!("unexpected line in virsh list --uuid --name: {line:?}"),
            })
            .collect()
    }
}

/// Session libvirtd as nobody:nogroup with HOME and XDG_* inside `dir/d`; returns its socket.
fn start_libvirtd(dir: &Path, children: &mut Vec<Child>) -> Result<PathBuf, String> {
    let home = dir.join("d");
    let runtime = home.join("rt");
    fs::create_dir_all(&runtime).map_err(|e| format!("create {}: {e}", runtime.display()))?;
    fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod {}: {e}", runtime.display()))?;
    let (uid, gid) = (
        lookup_id("/etc/passwd", "nobody")?,
        lookup_id("/etc/group", "nogroup")?,
    );
    for d in [&home, &runtime] {
        std::os::unix::fs::chown(d, Some(uid), Some(gid))
            .map_err(|e| format!("chown nobody {}: {e}", d.display()))?;
    }
    let socket = runtime.join("libvirt").join("libvirt-sock");
    let log = dir.join("libvirtd.log");

    let mut cmd = Command::new(SETPRIV);
    cmd.args([
        "--pdeathsig",
        "KILL",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        LIBVIRTD,
    ])
    .env_clear()
    .env("HOME", &home)
    .env("XDG_RUNTIME_DIR", &runtime)
    .env("XDG_CONFIG_HOME", home.join("cfg"))
    .env("XDG_CACHE_HOME", home.join("cache"))
    .env("PATH", "/usr/sbin:/usr/bin")
    .current_dir(&home);
    let child = spawn_logged(cmd, &log, "libvirtd")?;
    children.push(child);

    let uri = format!("test+unix:///default?socket={}", socket.display());
    let deadline = Instant::now() + STARTUP_DEADLINE;
    let mut last = String::from("the socket never appeared");
    loop {
        if let Some(status) = exited(children.last_mut().unwrap()) {
            return Err(format!(
                "libvirtd exited early ({status}). Its log ({}):\n{}",
                log.display(),
                read_log(&log)
            ));
        }
        if socket.exists() {
            let mut probe = clean_command(VIRSH, dir);
            probe.args(["-c", &uri, "list", "--all"]);
            let out = run(probe, b"", VIRSH_TIMEOUT);
            if out.status.success() {
                return Ok(socket);
            }
            last = describe(&out);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "libvirtd did not answer `virsh -c {uri} list` within {STARTUP_DEADLINE:?}; \
                 last attempt: {last}\nlibvirtd log ({}):\n{}",
                log.display(),
                read_log(&log)
            ));
        }
        thread::sleep(Duration::from_millis(25));
    }
}

/// Holds one connection to the test driver open for the binary's lifetime, so its state
/// (defined domains, their states) survives between the tests' own short connections.
/// `uri;` runs first on the same connection and prints a line: once that line is in the
/// log, the connection is open. Output goes to a file, never a pipe, so virsh can never
/// block on a full pipe and miss libvirtd's keepalives.
fn hold_connection(dir: &Path, socket: &Path, children: &mut Vec<Child>) -> Result<(), String> {
    let uri = format!("test+unix:///default?socket={}", socket.display());
    let log = dir.join("virsh-event.log");
    let mut cmd = Command::new(SETPRIV);
    cmd.args([
        "--pdeathsig",
        "KILL",
        VIRSH,
        "-c",
        &uri,
        "uri; event --all --loop",
    ])
    .env_clear()
    .env("PATH", CLEAN_PATH)
    .env("HOME", dir)
    .env("LC_ALL", "C")
    .current_dir(dir);
    let child = spawn_logged(cmd, &log, "virsh event")?;
    children.push(child);

    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        if read_log(&log).starts_with("test+unix://") {
            return Ok(());
        }
        if let Some(status) = exited(children.last_mut().unwrap()) {
            return Err(format!(
                "the held `virsh event` connection exited ({status}): {}\nlibvirtd log:\n{}",
                read_log(&log),
                read_log(&dir.join("libvirtd.log"))
            ));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the held `virsh event` connection did not connect within \
                 {STARTUP_DEADLINE:?}: {}\nlibvirtd log:\n{}",
                read_log(&log),
                read_log(&dir.join("libvirtd.log"))
            ));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}
