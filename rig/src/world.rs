//! A test's own config, audit socket and keys on the shared rig, for the suites that meet
//! dromaius at a terminal (prompt, console, display), a running guest with such a world,
//! and compact views of its audit records.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::direct::audit_field;
use super::guest::{Graphics, Guest};
use super::pty::Term;
use super::{AuditSink, Rig, SshKey, dromaius_bin, unique, write_file};

/// A config, an audit socket and an empty HOME for one test, on the shared rig.
pub struct World {
    pub rig: &'static Rig,
    pub audit: AuditSink,
    pub config: PathBuf,
    pub home: PathBuf,
}

impl World {
    /// `keys` is the JSON object of the config's `keys`; `extra` holds more top-level
    /// fields (`"name": value,` each, trailing comma included). `connect` is the rig's
    /// test-driver URI.
    pub fn new(keys: &str, extra: &str) -> World {
        World::on(&Rig::get().test_uri(), keys, extra)
    }

    /// The same with `connect` set to `uri` (e.g. [`Rig::qemu_uri`] for a real guest).
    pub fn on(uri: &str, keys: &str, extra: &str) -> World {
        let rig = Rig::get();
        let audit = AuditSink::new();
        let config = write_file(
            "dromaius.json",
            &format!(
                r#"{{ {extra} "virsh": "/usr/bin/virsh", "connect": "{uri}", "syslog_socket": "{}", "keys": {keys} }}"#,
                audit.path().display()
            ),
        );
        let home = rig.dir().join(unique("home"));
        std::fs::create_dir(&home).unwrap();
        World {
            rig,
            audit,
            config,
            home,
        }
    }

    /// dromaius with this config and `args`, run directly in a pty (no SSH_ORIGINAL_COMMAND).
    pub fn spawn(&self, args: &[&str]) -> Term {
        Term::spawn(self.command(args))
    }

    /// The command [`World::spawn`] runs, to add to its environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(dromaius_bin());
        command
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", &self.home)
            .current_dir(&self.home);
        command
    }

    /// A key whose forced command runs dromaius with `args` and this config, with `pty`.
    pub fn key(&self, args: &str) -> SshKey {
        let command = format!(
            "{} --config {} {args}",
            dromaius_bin().display(),
            self.config.display()
        );
        self.rig.authorize(&command, "restrict,pty")
    }

    /// `ssh -tt` with this key and no remote command: a session at the prompt.
    pub fn ssh_tt(&self, key: &SshKey) -> Term {
        Term::spawn(self.rig.ssh_tty_command(key, None))
    }

    /// The audit records, waiting up to 5 s for at least `at_least` of them.
    pub fn records(&self, at_least: usize) -> Vec<String> {
        self.audit.records(at_least, Duration::from_secs(5))
    }

    /// What names this world's dromaius processes: the config path on their command line.
    pub fn marker(&self) -> String {
        self.config.display().to_string()
    }
}

/// A running echo guest with `graphics` on the rig's QEMU, and a world on it whose key
/// `alice` is granted that guest: `commands` is the grant's JSON list of commands (`None`:
/// the default ones), `extra` more top-level config as for [`World::new`].
pub fn guest_world(graphics: Graphics, commands: Option<&str>, extra: &str) -> (Guest, World) {
    let rig = Rig::get();
    let guest = Guest::define_with(rig, &unique("echo"), graphics);
    guest.start();
    let commands = commands
        .map(|commands| format!(r#", "commands": {commands}"#))
        .unwrap_or_default();
    let world = World::on(
        &rig.qemu_uri(),
        &format!(
            r#"{{"alice": [{{"domains": ["{}"]{commands}}}]}}"#,
            guest.name
        ),
        extra,
    );
    (guest, world)
}

/// `(command, domain, decision, outcome)` of each record, for compact assertions.
pub fn summary(records: &[String]) -> Vec<(String, String, String, String)> {
    let field = |record: &str, name: &str| audit_field(record, name).unwrap_or_default();
    records
        .iter()
        .map(|r| {
            (
                field(r, "command"),
                field(r, "domain"),
                field(r, "decision"),
                field(r, "outcome"),
            )
        })
        .collect()
}

/// One expected row of [`summary`].
pub fn row(
    command: &str,
    domain: &str,
    decision: &str,
    outcome: u8,
) -> (String, String, String, String) {
    (
        command.to_owned(),
        domain.to_owned(),
        decision.to_owned(),
        outcome.to_string(),
    )
}

/// Asserts that what was shown ends with `tail`, showing all of it otherwise.
pub fn assert_ends(shown: &str, tail: &str) {
    assert!(
        shown.ends_with(tail),
        "expected it to end with {tail:?}:\n{shown:?}"
    );
}

/// Makes a stand-in script executable.
pub fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
