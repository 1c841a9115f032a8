//! An sshd for the tests: on a free 127.0.0.1 port, root allowed in only through `command=`
//! keys (`PermitRootLogin forced-commands-only`, exactly how dromaius is deployed), and the
//! keys and `ssh` client commands the tests log in with. The rig has one; a test that needs
//! other sshd settings (certificates, `ExposeAuthInfo`) starts its own ([`Sshd::start`]).

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use std::sync::Mutex;

use crate::dromaius_bin;
use crate::support::{
    CLEAN_PATH, COUNTER, SETPRIV, STARTUP_DEADLINE, check, clean_command, describe, exited, keep,
    make_temp_dir, read_log, run, spawn_logged,
};

pub(crate) const SSHD: &str = "/usr/sbin/sshd";
pub(crate) const UNSHARE: &str = "/usr/bin/unshare";
const SH: &str = "/bin/sh";
/// Run inside sshd's own mount namespace, with the sshd's `root-home` directory as `$1`:
/// put that directory in the place of root's home (no ~/.bashrc, no ~/.ssh of the host's;
/// the ssh client of a forced command reads its config and known_hosts there), then
/// become sshd.
const OWN_ROOT_HOME_THEN_EXEC: &str = "mount --bind \"$1\" /root || exit 1; shift; exec \"$@\"";
pub(crate) const SSH: &str = "/usr/bin/ssh";
pub(crate) const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";
/// Upper bound for one ssh round trip (a normal one takes well under a second).
const SSH_TIMEOUT: Duration = Duration::from_secs(60);

/// A key pair made by [`Sshd::authorize`]; `private` is what `ssh -i` wants.
pub struct SshKey {
    pub private: PathBuf,
}

/// One running sshd.
pub struct Sshd {
    dir: PathBuf,
    port: u16,
    authorized_keys: PathBuf,
    /// Serialises appends to `authorized_keys` (tests authorise keys from many threads).
    authorize_lock: Mutex<()>,
}

impl Sshd {
    /// Starts another sshd, in a directory of its own, with `extra` appended to its config
    /// (settings, or `Match` blocks); panics, with its log, if it does not come up.
    pub fn start(extra: &str) -> Sshd {
        let dir = make_temp_dir("sshd");
        Sshd::start_in(dir, extra).unwrap_or_else(|why| panic!("an sshd could not start:\n{why}"))
    }

    /// Starts one in `dir`, its `authorized_keys` empty.
    pub(crate) fn start_in(dir: PathBuf, extra: &str) -> Result<Sshd, String> {
        let authorized_keys = dir.join("authorized_keys");
        fs::write(&authorized_keys, "").map_err(|e| format!("create authorized_keys: {e}"))?;
        let keeper_dir = dir.clone();
        let extra = extra.to_owned();
        let port = keep(move |children| start_sshd(&keeper_dir, &extra, children))?;
        Ok(Sshd {
            dir,
            port,
            authorized_keys,
            authorize_lock: Mutex::new(()),
        })
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its directory: config, host key, logs, the keys it made.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its `AuthorizedKeysFile`.
    pub fn authorized_keys(&self) -> &Path {
        &self.authorized_keys
    }

    /// The `~/.ssh` of root as this sshd's forced commands see it: their ssh client (for
    /// libvirt's ssh transport) reads its `config` and `known_hosts` here.
    pub fn root_dot_ssh(&self) -> PathBuf {
        self.dir.join("root-home").join(".ssh")
    }

    /// This sshd's host key line for a `known_hosts` file: `[127.0.0.1]:PORT TYPE KEY`.
    pub fn known_hosts_line(&self) -> String {
        let public = fs::read_to_string(self.dir.join("ssh_host_ed25519_key.pub"))
            .expect("read the sshd's host key");
        let mut words = public.split_whitespace();
        let (kind, key) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        format!("[127.0.0.1]:{} {kind} {key}", self.port)
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

    /// The argv [`Sshd::ssh`] runs, as a Command to spawn yourself. Note that anything
    /// appended with `.arg()` lands *after* the destination, i.e. in the remote command:
    /// for a terminal use [`Sshd::ssh_tty_command`] instead of adding `-tt`.
    pub fn ssh_command(&self, key: &SshKey, request: Option<&str>) -> Command {
        self.ssh_argv(key, request, "-T")
    }

    /// Same as [`Sshd::ssh_command`] but with `-tt` (force a remote pty) instead of `-T`.
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
}

/// sshd on a free 127.0.0.1 port; returns the port once sshd sends its banner.
fn start_sshd(dir: &Path, extra: &str, children: &mut Vec<Child>) -> Result<u16, String> {
    make_privsep_dir()?;
    let host_key = make_host_key(dir)?;
    let root_home = make_root_home(dir)?;
    // The free port is found by binding :0 and letting go; another process could take it
    // in between, so a bind failure is retried with a new port a few times.
    let mut failures = String::new();
    for attempt in 1..=3 {
        let port = free_port()?;
        let config = dir.join("sshd_config");
        let log = dir.join(format!("sshd-{attempt}.log"));
        fs::write(&config, sshd_config(dir, port, &host_key) + extra)
            .map_err(|e| format!("write {}: {e}", config.display()))?;
        let out = dir.join(format!("sshd-{attempt}.out"));
        children.push(spawn_sshd(dir, &root_home, &config, &log, &out)?);
        match wait_for_banner(children.last_mut().unwrap(), port, &log) {
            Startup::Answers => return Ok(port),
            Startup::Exited { report, port_taken } => {
                failures.push_str(&report);
                if !port_taken {
                    return Err(failures);
                }
            }
            Startup::Silent(why) => return Err(why),
        }
    }
    Err(format!("sshd failed to start three times:\n{failures}"))
}

/// sshd's privilege-separation directory.
fn make_privsep_dir() -> Result<(), String> {
    fs::create_dir_all("/run/sshd").map_err(|e| format!("create /run/sshd: {e}"))?;
    fs::set_permissions("/run/sshd", fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod /run/sshd: {e}"))
}

/// A fresh Ed25519 host key in `dir`; its path.
fn make_host_key(dir: &Path) -> Result<PathBuf, String> {
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
    Ok(host_key)
}

/// Root's home, as the forced commands of this sshd see it (see OWN_ROOT_HOME_THEN_EXEC),
/// with its `.ssh`; its path.
fn make_root_home(dir: &Path) -> Result<PathBuf, String> {
    let root_home = dir.join("root-home");
    let dot_ssh = root_home.join(".ssh");
    fs::create_dir_all(&dot_ssh).map_err(|e| format!("create {}: {e}", dot_ssh.display()))?;
    for (path, mode) in [(&root_home, 0o700), (&dot_ssh, 0o700)] {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    }
    Ok(root_home)
}

/// Starts sshd in the foreground with `config`, logging to `log` (its own output to `out`).
///
/// sshd runs each forced command through root's login shell, and bash started by sshd
/// sources ~/.bashrc; root's on this image runs `pyenv rehash`, which races between
/// concurrent logins and prints to stderr before dromaius even starts. In a private mount
/// namespace of its own, this sshd sees an empty home of its own in the place of /root:
/// the shell runs no rc file, as the README tells administrators to arrange, the ssh
/// client of a forced command (libvirt's ssh transport) reads a ~/.ssh the tests write, and
/// nothing on the host changes.
fn spawn_sshd(
    dir: &Path,
    root_home: &Path,
    config: &Path,
    log: &Path,
    out: &Path,
) -> Result<Child, String> {
    let mut cmd = Command::new(SETPRIV);
    cmd.args([
        "--pdeathsig",
        "KILL",
        UNSHARE,
        "--mount",
        "--propagation",
        "private",
    ])
    .args([SH, "-c", OWN_ROOT_HOME_THEN_EXEC, "sh"])
    .arg(root_home)
    .args([SSHD, "-D", "-f"])
    .arg(config)
    .arg("-E")
    .arg(log)
    .env_clear()
    .env("PATH", CLEAN_PATH)
    .current_dir(dir);
    spawn_logged(cmd, out, "sshd")
}

/// How a started sshd turned out.
enum Startup {
    /// It sends its banner on the port.
    Answers,
    /// It exited: its log, and whether it lost the port to another process (worth another
    /// try on a new port).
    Exited { report: String, port_taken: bool },
    /// It is still running but did not answer within [`STARTUP_DEADLINE`].
    Silent(String),
}

/// Waits for `sshd` to answer on `port`, to exit, or for [`STARTUP_DEADLINE`] to pass.
fn wait_for_banner(sshd: &mut Child, port: u16, log: &Path) -> Startup {
    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        if let Some(status) = exited(sshd) {
            let text = read_log(log);
            return Startup::Exited {
                report: format!(
                    "sshd on port {port} exited ({status}); its log ({}):\n{text}\n",
                    log.display(),
                ),
                port_taken: text.contains("Address already in use"),
            };
        }
        if sshd_answers(port) {
            return Startup::Answers;
        }
        if Instant::now() > deadline {
            return Startup::Silent(format!(
                "sshd did not answer on 127.0.0.1:{port} within {STARTUP_DEADLINE:?}; \
                 its log ({}):\n{}",
                log.display(),
                read_log(log)
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn sshd_config(dir: &Path, port: u16, host_key: &Path) -> String {
    format!(
        "# Written by the test rig (rig/src/sshd.rs): loopback only, root via command= keys only.\n\
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
