//! The end-to-end test rig, as a crate of its own: a real libvirtd serving the *test*
//! driver and a real sshd, both on this machine only (a unix socket and 127.0.0.1), started
//! once per test binary, and the tools the suites drive dromaius with.
//!
//! What each module stands up: `libvirtd` (a session libvirtd and plain virsh calls),
//! `sshd` (sshd, keys and the ssh client), `guest` (a real QEMU guest with a serial
//! console), `pty` (a real pseudo-terminal), `screen` (an X server for real windows), `direct` (the binary run as sshd runs a forced
//! command, optionally under strace), `world` (one test's config, audit and keys),
//! `audit` (a stand-in syslog), `support` (temp files and running commands).
//!
//! Why it is built this way (see shared/TEST-RIG.md for the measurements):
//! - A *session* libvirtd run as `nobody` needs no system changes (a system one wants the
//!   `libvirt-qemu` account). Root can still connect to its socket.
//! - sshd allows root only through `command=` keys (`PermitRootLogin
//!   forced-commands-only`), which is exactly how dromaius is deployed.
//! - Long-lived children are started under `setpriv --pdeathsig KILL` from a thread that
//!   never exits (PR_SET_PDEATHSIG fires when the spawning *thread* ends, and test threads
//!   end after every test), so they die with the test binary and never outlive it.
//!
//! The rig never skips: if something is missing it panics and says what.

pub mod audit;
pub mod direct;
pub mod guest;
pub mod libvirtd;
pub mod pty;
pub mod screen;
pub mod sshd;
pub mod support;
pub mod world;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use audit::AuditSink;
pub use libvirtd::Libvirtd;
pub use sshd::{SshKey, Sshd};
pub use support::{code, describe, run, stderr, stdout, unique, write_file};

use libvirtd::{LIBVIRTD, VIRSH};
use sshd::{SSH, SSH_KEYGEN, SSHD, UNSHARE};
use support::{SETPRIV, scratch_dir};

/// The running rig: one per test binary, shared by all its tests. Its libvirtd and sshd
/// are the ones most tests use; the methods below are theirs.
pub struct Rig {
    dir: PathBuf,
    libvirtd: Libvirtd,
    sshd: Sshd,
    /// How long start-up took, for curiosity and for the smoke test's report.
    startup: Duration,
}

static RIG: OnceLock<Result<Rig, String>> = OnceLock::new();

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

    /// The whole start-up, run once inside the OnceLock. Errors carry the logs.
    fn start_all() -> Result<Rig, String> {
        let began = Instant::now();
        preflight()?;
        let dir = scratch_dir().to_path_buf();
        let libvirtd = Libvirtd::start_in(dir.clone())?;
        let sshd = Sshd::start_in(dir.clone(), "")?;
        Ok(Rig {
            dir,
            libvirtd,
            sshd,
            startup: began.elapsed(),
        })
    }

    /// The rig's temp dir (0755, owned by root, traversable by `nobody`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long `Rig::get` took to bring everything up.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// The rig's libvirtd.
    pub fn libvirtd(&self) -> &Libvirtd {
        &self.libvirtd
    }

    /// The rig's sshd.
    pub fn sshd(&self) -> &Sshd {
        &self.sshd
    }

    /// The libvirtd socket every URI of this rig points at.
    pub fn socket(&self) -> &Path {
        self.libvirtd.socket()
    }

    /// The sshd port on 127.0.0.1.
    pub fn ssh_port(&self) -> u16 {
        self.sshd.port()
    }

    /// [`Libvirtd::test_uri`] of the rig's libvirtd.
    pub fn test_uri(&self) -> String {
        self.libvirtd.test_uri()
    }

    /// A config on the rig's test driver whose audit goes nowhere, with `fields` after
    /// `connect` (`"keys": ...` and any more), for tests that read no audit records. Its
    /// first line holds everything before `fields`.
    pub fn unaudited_config(&self, fields: &str) -> PathBuf {
        write_file(
            "dromaius.json",
            &format!(
                r#"{{"connect": "{}", "syslog_socket": "/nonexistent/log", {fields}}}"#,
                self.test_uri()
            ),
        )
    }

    /// [`Libvirtd::qemu_uri`] of the rig's libvirtd.
    pub fn qemu_uri(&self) -> String {
        self.libvirtd.qemu_uri()
    }

    /// [`Libvirtd::virsh`] on the rig's libvirtd.
    pub fn virsh(&self, args: &[&str]) -> Output {
        self.libvirtd.virsh(args)
    }

    /// [`Libvirtd::virsh_uri`].
    pub fn virsh_uri(&self, uri: &str, args: &[&str]) -> Output {
        self.libvirtd.virsh_uri(uri, args)
    }

    /// [`Libvirtd::virsh_ok`] on the rig's libvirtd.
    pub fn virsh_ok(&self, args: &[&str]) -> String {
        self.libvirtd.virsh_ok(args)
    }

    /// [`Libvirtd::define`] on the rig's libvirtd.
    pub fn define(&self, name: &str) {
        self.libvirtd.define(name)
    }

    /// [`Libvirtd::start_domain`] on the rig's libvirtd.
    pub fn start(&self, name: &str) {
        self.libvirtd.start_domain(name)
    }

    /// [`Libvirtd::destroy`] on the rig's libvirtd.
    pub fn destroy(&self, name: &str) {
        self.libvirtd.destroy(name)
    }

    /// [`Libvirtd::state`] on the rig's libvirtd.
    pub fn state(&self, name: &str) -> String {
        self.libvirtd.state(name)
    }

    /// [`Libvirtd::uuid`] on the rig's libvirtd.
    pub fn uuid(&self, name: &str) -> String {
        self.libvirtd.uuid(name)
    }

    /// [`Libvirtd::domains`] on the rig's libvirtd.
    pub fn domains(&self) -> Vec<(String, String)> {
        self.libvirtd.domains()
    }

    /// [`Sshd::authorize`] on the rig's sshd.
    pub fn authorize(&self, forced_command: &str, options: &str) -> SshKey {
        self.sshd.authorize(forced_command, options)
    }

    /// [`Sshd::authorize_gateway`] on the rig's sshd.
    pub fn authorize_gateway(&self, config: &Path, key: &str, options: &str) -> SshKey {
        self.sshd.authorize_gateway(config, key, options)
    }

    /// [`Sshd::authorize_without_command`] on the rig's sshd.
    pub fn authorize_without_command(&self, options: &str) -> SshKey {
        self.sshd.authorize_without_command(options)
    }

    /// [`Sshd::authorize_line`] on the rig's sshd.
    pub fn authorize_line(&self, line: &str) {
        self.sshd.authorize_line(line)
    }

    /// [`Sshd::stranger_key`].
    pub fn stranger_key(&self) -> SshKey {
        self.sshd.stranger_key()
    }

    /// [`Sshd::key_pair`].
    pub fn key_pair(&self, type_and_options: &[&str]) -> SshKey {
        self.sshd.key_pair(type_and_options)
    }

    /// [`Sshd::ssh`] to the rig's sshd.
    pub fn ssh(&self, key: &SshKey, request: Option<&str>, stdin: &[u8]) -> Output {
        self.sshd.ssh(key, request, stdin)
    }

    /// [`Sshd::ssh_command`] to the rig's sshd.
    pub fn ssh_command(&self, key: &SshKey, request: Option<&str>) -> Command {
        self.sshd.ssh_command(key, request)
    }

    /// [`Sshd::ssh_tty_command`] to the rig's sshd.
    pub fn ssh_tty_command(&self, key: &SshKey, request: Option<&str>) -> Command {
        self.sshd.ssh_tty_command(key, request)
    }
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

/// The binary under test: `dromaius` in the target directory the test binary was built
/// into (test and bench binaries live in its `deps/`).
pub fn dromaius_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's own path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/PROFILE/deps");
    let binary = profile.join("dromaius");
    assert!(
        binary.exists(),
        "{} does not exist: build it (cargo test and cargo bench do)",
        binary.display()
    );
    binary
}
