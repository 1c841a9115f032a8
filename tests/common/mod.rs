//! Shared end-to-end test rig: a real libvirtd serving the *test* driver and a real sshd,
//! both on this machine only (a unix socket and 127.0.0.1), started once per test binary.
//!
//! Why it is built this way (see shared/TEST-RIG.md for the measurements):
//! - A *session* libvirtd run as `nobody` needs no system changes (a system one wants the
//!   `libvirt-qemu` account). Root can still connect to its socket.
//! - The test driver forgets everything when its last client disconnects, so the rig holds
//!   one connection (`virsh event --all --loop`) open for the whole test binary.
//! - sshd allows root only through `command=` keys (`PermitRootLogin
//!   forced-commands-only`), which is exactly how dromaius is deployed.
//! - Long-lived children are started under `setpriv --pdeathsig KILL` from a thread that
//!   never exits (PR_SET_PDEATHSIG fires when the spawning *thread* ends, and test threads
//!   end after every test), so they die with the test binary and never outlive it.
//!
//! The rig never skips: if something is missing it panics and says what.

#![allow(dead_code)]

pub mod direct;
pub mod guest;
pub mod pty;
pub mod world;

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

const SETPRIV: &str = "/usr/bin/setpriv";
const LIBVIRTD: &str = "/usr/sbin/libvirtd";
const VIRSH: &str = "/usr/bin/virsh";
const SSHD: &str = "/usr/sbin/sshd";
const UNSHARE: &str = "/usr/bin/unshare";
const SH: &str = "/bin/sh";
/// Run inside sshd's own mount namespace: hide root's ~/.bashrc, then become sshd.
const BLANK_RC_THEN_EXEC: &str =
    "if [ -e /root/.bashrc ]; then mount --bind /dev/null /root/.bashrc || exit 1; fi; exec \"$@\"";
const SSH: &str = "/usr/bin/ssh";
const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";

/// How long the daemons may take to come up before the rig gives up (they need < 1 s).
const STARTUP_DEADLINE: Duration = Duration::from_secs(20);
/// Upper bound for one plain `virsh` call made by the rig or a test.
const VIRSH_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for one ssh round trip (a normal one takes well under a second).
const SSH_TIMEOUT: Duration = Duration::from_secs(60);
/// A PATH with nothing from the caller's environment in it.
const CLEAN_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Prefix of every temp dir this module makes; stale ones from dead test binaries are swept.
const TMP_PREFIX: &str = "dromaius-rig-";

/// The running rig: one per test binary, shared by all its tests.
pub struct Rig {
    dir: PathBuf,
    socket: PathBuf,
    port: u16,
    authorized_keys: PathBuf,
    /// Serialises appends to `authorized_keys` (tests authorise keys from many threads).
    authorize_lock: Mutex<()>,
    /// How long start-up took, for curiosity and for the smoke test's report.
    startup: Duration,
}

/// A key pair made by [`Rig::authorize`]; `private` is what `ssh -i` wants.
pub struct SshKey {
    pub private: PathBuf,
}

/// What the keeper thread hands back once every daemon is ready.
struct Started {
    socket: PathBuf,
    port: u16,
}

static RIG: OnceLock<Result<Rig, String>> = OnceLock::new();
static SCRATCH: OnceLock<PathBuf> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(1);

impl Rig {
    /// Starts once per test binary (OnceLock): a session libvirtd as `nobody` serving the
    /// test driver, one held connection (`virsh -c URI event --all --loop`) that keeps the
    /// test driver's state alive, and an sshd on a free 127.0.0.1 port. Panics with a clear
    /// message (which binary/package is missing, what failed, with the daemon's log) — it
    /// never skips. A failed start is remembered, so every test fails fast with the same
    /// message instead of retrying.
    pub fn get() -> &'static Rig {
        match RIG.get_or_init(Rig::start_all) {
            Ok(rig) => rig,
            Err(why) => panic!("the test rig could not start:\n{why}"),
        }
    }

    /// The rig's temp dir (0755, owned by root, traversable by `nobody`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The libvirtd socket every URI of this rig points at.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The sshd port on 127.0.0.1.
    pub fn ssh_port(&self) -> u16 {
        self.port
    }

    /// How long `Rig::get` took to bring everything up.
    pub fn startup_time(&self) -> Duration {
        self.startup
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

    /// Like [`Rig::virsh`] but against any URI (e.g. [`Rig::qemu_uri`]).
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
    pub fn start(&self, name: &str) {
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

    /// Generates a fresh ed25519 key pair (`ssh-keygen -N ''`) and appends ONE line to the
    /// sshd AuthorizedKeysFile: `command="<forced_command>",<options> <pubkey>`. `options`
    /// is e.g. "restrict" or "restrict,pty". Double quotes in the command are escaped as
    /// sshd expects (`\"`). Thread-safe.
    pub fn authorize(&self, forced_command: &str, options: &str) -> SshKey {
        assert!(
            !forced_command.contains('\n'),
            "an authorized_keys entry is one line"
        );
        // sshd unescapes only `\"`, so a trailing backslash would swallow the closing quote.
        assert!(
            !forced_command.ends_with('\\'),
            "a forced command may not end with a backslash"
        );
        let escaped = forced_command.replace('"', "\\\"");
        let mut prefix = format!("command=\"{escaped}\"");
        if !options.is_empty() {
            prefix.push(',');
            prefix.push_str(options);
        }
        self.add_key(&prefix)
    }

    /// A fresh key whose forced command is the gateway: dromaius on `config`, as `key`.
    pub fn authorize_gateway(&self, config: &Path, key: &str, options: &str) -> SshKey {
        let command = format!(
            "{} --config {} --key {key}",
            dromaius_bin().display(),
            config.display()
        );
        self.authorize(&command, options)
    }

    /// Authorizes a fresh key with `options` (may be empty) but no `command=`: with
    /// `PermitRootLogin forced-commands-only` sshd must refuse it for root.
    pub fn authorize_without_command(&self, options: &str) -> SshKey {
        self.add_key(options)
    }

    /// A key that was generated but never authorized.
    pub fn stranger_key(&self) -> SshKey {
        self.generate_key()
    }

    fn add_key(&self, options: &str) -> SshKey {
        assert!(
            !options.contains('\n'),
            "an authorized_keys entry is one line"
        );
        let key = self.generate_key();
        let public =
            fs::read_to_string(key.private.with_extension("pub")).expect("read public key");
        let mut line = String::from(options);
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(public.trim());
        self.authorize_line(&line);
        key
    }

    /// Appends `line` to the sshd AuthorizedKeysFile exactly as given (one line, e.g. one
    /// printed by `dromaius keyline`). Thread-safe.
    pub fn authorize_line(&self, line: &str) {
        assert!(
            !line.trim_end_matches('\n').contains('\n'),
            "an authorized_keys entry is one line"
        );
        let _guard = self
            .authorize_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&self.authorized_keys)
            .expect("open authorized_keys");
        file.write_all(format!("{}\n", line.trim_end_matches('\n')).as_bytes())
            .expect("append to authorized_keys");
    }

    /// A fresh key pair of the given `ssh-keygen -t` type and options (e.g. `&["rsa", "-b",
    /// "2048"]`), not authorized anywhere; its public half is `private` + `.pub`.
    pub fn key_pair(&self, type_and_options: &[&str]) -> SshKey {
        self.generate_typed_key(type_and_options)
    }

    fn generate_key(&self) -> SshKey {
        self.generate_typed_key(&["ed25519"])
    }

    fn generate_typed_key(&self, type_and_options: &[&str]) -> SshKey {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let keys = self.dir.join("keys");
        fs::create_dir_all(&keys).expect("create keys dir");
        let private = keys.join(format!("id_{}_{n}", type_and_options[0]));
        let mut keygen = clean_command(SSH_KEYGEN, &self.dir);
        keygen
            .args(["-q", "-t"])
            .args(type_and_options)
            .args(["-N", "", "-C"])
            .arg(format!("rig-key-{n}"))
            .arg("-f")
            .arg(&private);
        check(run(keygen, b"", Duration::from_secs(30)), "ssh-keygen");
        SshKey { private }
    }

    /// sshd runs the forced command through root's login shell (`bash -c`); the rig's
    /// sshd hides root's ~/.bashrc (see `start_sshd`), so the command's environment is
    /// sshd's own variables only.
    ///
    /// Runs the real ssh client as root@127.0.0.1 with the key, `-T` (no terminal) and
    /// `request` as the remote command (None = no remote command, so SSH_ORIGINAL_COMMAND
    /// is unset), feeding `stdin` and then closing it. Returns the Output; panics only if
    /// ssh hangs past a generous timeout.
    pub fn ssh(&self, key: &SshKey, request: Option<&str>, stdin: &[u8]) -> Output {
        run(self.ssh_command(key, request), stdin, SSH_TIMEOUT)
    }

    /// The argv [`Rig::ssh`] runs, as a Command to spawn yourself. Note that anything
    /// appended with `.arg()` lands *after* the destination, i.e. in the remote command:
    /// for a terminal use [`Rig::ssh_tty_command`] instead of adding `-tt`.
    pub fn ssh_command(&self, key: &SshKey, request: Option<&str>) -> Command {
        self.ssh_argv(key, request, "-T")
    }

    /// Same as [`Rig::ssh_command`] but with `-tt` (force a remote pty) instead of `-T`.
    pub fn ssh_tty_command(&self, key: &SshKey, request: Option<&str>) -> Command {
        self.ssh_argv(key, request, "-tt")
    }

    fn ssh_argv(&self, key: &SshKey, request: Option<&str>, tty: &str) -> Command {
        let mut cmd = clean_command(SSH, &self.dir);
        // -F /dev/null: ignore root's and the system's ssh_config so only these options apply.
        cmd.args(["-F", "/dev/null", "-i"])
            .arg(&key.private)
            .arg("-p")
            .arg(self.port.to_string())
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "LogLevel=ERROR",
                tty,
                "root@127.0.0.1",
            ]);
        if let Some(request) = request {
            // ssh parses options after the destination too: `--` keeps a request that
            // starts with a dash (`--console ...`) a request.
            cmd.arg("--").arg(request);
        }
        cmd
    }

    /// The whole start-up, run once inside the OnceLock. Errors carry the logs.
    fn start_all() -> Result<Rig, String> {
        let began = Instant::now();
        preflight()?;
        let dir = scratch_dir().to_path_buf();
        let authorized_keys = dir.join("authorized_keys");
        fs::write(&authorized_keys, "").map_err(|e| format!("create authorized_keys: {e}"))?;

        // The keeper thread spawns the daemons and then parks forever: the daemons' parent
        // death signal is tied to that thread, so they live exactly as long as this binary.
        let (tx, rx) = mpsc::channel();
        let keeper_dir = dir.clone();
        thread::Builder::new()
            .name("rig-keeper".into())
            .spawn(move || keeper(keeper_dir, tx))
            .map_err(|e| format!("spawn the rig keeper thread: {e}"))?;
        let started = rx
            .recv()
            .map_err(|_| "the rig keeper thread died before reporting".to_string())??;

        Ok(Rig {
            dir,
            socket: started.socket,
            port: started.port,
            authorized_keys,
            authorize_lock: Mutex::new(()),
            startup: began.elapsed(),
        })
    }
}

/// Body of the keeper thread: start everything, report, then never return.
fn keeper(dir: PathBuf, tx: mpsc::Sender<Result<Started, String>>) {
    let mut children = Vec::new();
    let result = start_daemons(&dir, &mut children);
    let failed = result.is_err();
    if failed {
        // Nothing to keep: end what did start (by its own handle) before reporting.
        for child in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    let _ = tx.send(result);
    if failed {
        return;
    }
    // `children` stay owned here; this thread must never exit (see the module doc).
    loop {
        thread::park();
    }
}

fn start_daemons(dir: &Path, children: &mut Vec<Child>) -> Result<Started, String> {
    let socket = start_libvirtd(dir, children)?;
    hold_connection(dir, &socket, children)?;
    let port = start_sshd(dir, children)?;
    Ok(Started { socket, port })
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

/// sshd on a free 127.0.0.1 port; returns the port once sshd sends its banner.
fn start_sshd(dir: &Path, children: &mut Vec<Child>) -> Result<u16, String> {
    // sshd's privilege-separation directory.
    fs::create_dir_all("/run/sshd").map_err(|e| format!("create /run/sshd: {e}"))?;
    fs::set_permissions("/run/sshd", fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod /run/sshd: {e}"))?;
    let host_key = dir.join("ssh_host_ed25519_key");
    let mut keygen = clean_command(SSH_KEYGEN, dir);
    keygen
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "rig-host", "-f"])
        .arg(&host_key);
    let out = run(keygen, b"", Duration::from_secs(30));
    if !out.status.success() {
        return Err(format!(
            "ssh-keygen for the host key failed: {}",
            describe(&out)
        ));
    }

    // The free port is found by binding :0 and letting go; another process could take it
    // in between, so a bind failure is retried with a new port a few times.
    let mut failures = String::new();
    for attempt in 1..=3 {
        let port = free_port()?;
        let config = dir.join("sshd_config");
        let log = dir.join(format!("sshd-{attempt}.log"));
        fs::write(&config, sshd_config(dir, port, &host_key))
            .map_err(|e| format!("write {}: {e}", config.display()))?;
        // sshd runs each forced command through root's login shell, and bash started by
        // sshd sources ~/.bashrc; root's on this image runs `pyenv rehash`, which races
        // between concurrent logins and prints to stderr before dromaius even starts. In
        // a private mount namespace of its own, this sshd sees /dev/null in its place: the
        // shell runs no rc file, as the README tells administrators to arrange, and
        // nothing on the host changes.
        let mut cmd = Command::new(SETPRIV);
        cmd.args([
            "--pdeathsig",
            "KILL",
            UNSHARE,
            "--mount",
            "--propagation",
            "private",
        ])
        .args([SH, "-c", BLANK_RC_THEN_EXEC, "sh", SSHD, "-D", "-f"])
        .arg(&config)
        .arg("-E")
        .arg(&log)
        .env_clear()
        .env("PATH", CLEAN_PATH)
        .current_dir(dir);
        let child = spawn_logged(cmd, &dir.join(format!("sshd-{attempt}.out")), "sshd")?;
        children.push(child);

        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            if let Some(status) = exited(children.last_mut().unwrap()) {
                let text = read_log(&log);
                failures.push_str(&format!(
                    "sshd on port {port} exited ({status}); its log ({}):\n{text}\n",
                    log.display(),
                ));
                if text.contains("Address already in use") {
                    break; // lost the port race: try another port
                }
                return Err(failures);
            }
            if sshd_answers(port) {
                return Ok(port);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "sshd did not answer on 127.0.0.1:{port} within {STARTUP_DEADLINE:?}; \
                     its log ({}):\n{}",
                    log.display(),
                    read_log(&log)
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
    Err(format!("sshd failed to start three times:\n{failures}"))
}

fn sshd_config(dir: &Path, port: u16, host_key: &Path) -> String {
    format!(
        "# Written by tests/common/mod.rs: loopback only, root via command= keys only.\n\
         Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {host_key}\n\
         PidFile {pid}\n\
         AuthorizedKeysFile {keys}\n\
         PermitRootLogin forced-commands-only\n\
         PubkeyAuthentication yes\n\
         UsePAM no\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         StrictModes no\n\
         MaxStartups 300:30:600\n\
         MaxSessions 300\n\
         UseDNS no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         LogLevel VERBOSE\n",
        host_key = host_key.display(),
        pid = dir.join("sshd.pid").display(),
        keys = dir.join("authorized_keys").display(),
    )
}

/// True once something on the port speaks SSH (reads the server's version banner).
fn sshd_answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut banner = [0u8; 8];
    let ok = stream.read_exact(&mut banner).is_ok() && banner.starts_with(b"SSH-2.0-");
    let _ = stream.shutdown(Shutdown::Both);
    ok
}

fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

/// Checks, before starting anything, what the rig needs from the machine.
fn preflight() -> Result<(), String> {
    let needed = [
        (SETPRIV, "util-linux"),
        (LIBVIRTD, "libvirt-daemon"),
        (VIRSH, "libvirt-clients"),
        (SSHD, "openssh-server"),
        (UNSHARE, "util-linux"),
        ("/usr/bin/mount", "mount"),
        (SSH, "openssh-client"),
        (SSH_KEYGEN, "openssh-client"),
    ];
    let missing: Vec<String> = needed
        .iter()
        .filter(|(bin, _)| !Path::new(bin).exists())
        .map(|(bin, pkg)| format!("{bin} (Debian package {pkg})"))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing: {}. Install with: apt-get install --no-install-recommends \
             libvirt-daemon libvirt-clients openssh-server openssh-client",
            missing.join(", ")
        ));
    }
    // /proc/self belongs to the effective uid: a cheap root check without libc.
    let euid = fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if euid != 0 {
        return Err(format!(
            "the rig must run as root (it runs libvirtd as nobody and sshd); euid is {euid}"
        ));
    }
    // sshd refuses even key logins to a locked account ('!' in the password field).
    let shadow = fs::read_to_string("/etc/shadow").map_err(|e| format!("read /etc/shadow: {e}"))?;
    let root_pw = shadow
        .lines()
        .find_map(|l| l.strip_prefix("root:"))
        .map(|rest| rest.split(':').next().unwrap_or(""))
        .ok_or("no root entry in /etc/shadow")?;
    if root_pw.starts_with('!') {
        return Err(
            "root's password field in /etc/shadow starts with '!': the account is \
                    locked and sshd refuses it even with a key. The rig does not change system \
                    accounts; to unlock without a password, run `usermod -p '*' root`."
                .to_string(),
        );
    }
    Ok(())
}

/// A unix *datagram* socket bound in a fresh temp path, standing in for /dev/log.
pub struct AuditSink {
    dir: PathBuf,
    path: PathBuf,
    socket: UnixDatagram,
    received: Mutex<Vec<String>>,
}

impl AuditSink {
    pub fn new() -> AuditSink {
        let dir = make_temp_dir("audit");
        let path = dir.join("log");
        let socket = UnixDatagram::bind(&path)
            .unwrap_or_else(|e| panic!("bind datagram socket {}: {e}", path.display()));
        // Anyone may write to it, like /dev/log.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).expect("chmod audit socket");
        AuditSink {
            dir,
            path,
            socket,
            received: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records received so far, waiting up to `wait` for at least `at_least` of them. Each
    /// record is one datagram as a String (lossy UTF-8).
    pub fn records(&self, at_least: usize, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        let mut buf = vec![0u8; 65536];
        loop {
            // Take whatever is already queued, without blocking.
            self.socket.set_nonblocking(true).expect("set_nonblocking");
            while let Ok(n) = self.socket.recv(&mut buf) {
                received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            let now = Instant::now();
            if received.len() >= at_least || now >= deadline {
                return received.clone();
            }
            // Then block for one more, but never past the deadline.
            self.socket.set_nonblocking(false).expect("set_nonblocking");
            self.socket
                .set_read_timeout(Some(deadline - now))
                .expect("set_read_timeout");
            if let Ok(n) = self.socket.recv(&mut buf) {
                received.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }
}

impl Drop for AuditSink {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Default for AuditSink {
    fn default() -> Self {
        AuditSink::new()
    }
}

/// A unique, test-driver-safe domain name: prefix + a counter + pid (e.g. "web-3-4711").
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{n}-{}", std::process::id())
}

/// The binary under test.
pub fn dromaius_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dromaius"))
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
fn scratch_dir() -> &'static Path {
    SCRATCH.get_or_init(|| make_temp_dir("main"))
}

/// `mktemp -d` under the temp dir, named `dromaius-rig-<pid>-<kind>-<n>` so leftovers of
/// dead test binaries can be recognised and swept; chmod 0755 so `nobody` can traverse it.
fn make_temp_dir(kind: &str) -> PathBuf {
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
fn sweep_stale_dirs() {
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
fn clean_command(program: &str, dir: &Path) -> Command {
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

fn check(out: Output, what: &str) -> Output {
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

fn spawn_logged(mut cmd: Command, log: &Path, what: &str) -> Result<Child, String> {
    let file = fs::File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
    let file2 = file.try_clone().map_err(|e| format!("dup log fd: {e}"))?;
    cmd.stdin(Stdio::null())
        .stdout(file)
        .stderr(file2)
        .spawn()
        .map_err(|e| format!("spawn {what} ({cmd:?}): {e}"))
}

fn exited(child: &mut Child) -> Option<ExitStatus> {
    child.try_wait().ok().flatten()
}

/// A log's contents (the last 8 KiB is plenty for a failure message).
fn read_log(path: &Path) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()));
    match text.char_indices().rev().nth(8192) {
        Some((i, _)) => format!("...{}", &text[i..]),
        None => text,
    }
}

/// The numeric id of `name` in /etc/passwd or /etc/group (third field of both).
fn lookup_id(file: &str, name: &str) -> Result<u32, String> {
    let text = fs::read_to_string(file).map_err(|e| format!("read {file}: {e}"))?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .and_then(|f| f.get(2)?.parse().ok())
        .ok_or_else(|| format!("no entry {name:?} in {file}"))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("rig paths are UTF-8")
}
