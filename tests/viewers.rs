//! The tools people open a domain with, run as they run them, through the real sshd and
//! the gateway to real QEMU guests (TCG): virt-manager connecting over SSH and listing the
//! key's domains, its console window, virt-viewer on a VNC and a SPICE display, and `virsh
//! console` over `qemu+ssh://`. Each window runs under an X server of the test's own
//! (Xvfb) and is screenshot into the test's log.
//!
//! The clients are given nothing but a URI: an `ssh` early in their PATH adds the key and
//! the rig's options, as a user's `~/.ssh/config` would, so the libvirt connection and each
//! viewer's display tunnel are the clients' own `ssh` commands, unchanged. That a viewer
//! reached *that* domain's display is read from QEMU itself (`info vnc` / `info spice` on
//! the rig's own connection lists the client).

use dromaius_rig as common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::guest::{Graphics, Guest};
use common::pty::Term;
use common::screen::Screen;
use common::world::{World, make_executable, row, summary};
use common::{Rig, SshKey, unique};

/// How long a window may take to connect (TCG guests, a cold Python start).
const WAIT: Duration = Duration::from_secs(90);

/// A user's desk: a HOME, an `ssh` that brings the key, and the URI of the gateway.
struct Desk {
    rig: &'static Rig,
    dir: PathBuf,
    screen: Screen,
}

impl Desk {
    fn new(key: &SshKey) -> Desk {
        let rig = Rig::get();
        let dir = rig.dir().join(unique("desk"));
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).expect("the desk's bin");
        let config = dir.join("ssh_config");
        fs::write(
            &config,
            format!(
                "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  BatchMode yes\n  \
                 StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n",
                key.private.display()
            ),
        )
        .expect("ssh_config");
        let ssh = bin.join("ssh");
        fs::write(
            &ssh,
            format!(
                "#!/bin/sh\nexec /usr/bin/ssh -F {} \"$@\"\n",
                config.display()
            ),
        )
        .expect("the desk's ssh");
        make_executable(&ssh);
        Desk {
            rig,
            dir,
            screen: Screen::start(),
        }
    }

    /// What a user types: the host, the account, the system daemon. The gateway serves
    /// the key's own hypervisor whatever path is asked for, when there is one.
    fn uri(&self) -> String {
        format!("qemu+ssh://root@127.0.0.1:{}/system", self.rig.ssh_port())
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", self.dir.join("bin").display()),
            )
            .env("HOME", &self.dir)
            .env("XDG_RUNTIME_DIR", &self.dir)
            .env("DISPLAY", &self.screen.display)
            .env("GSETTINGS_BACKEND", "memory")
            .env("NO_AT_BRIDGE", "1")
            .env("LC_ALL", "C.UTF-8")
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        command
    }

    /// `virsh console NAME` through the gateway, to run in a terminal of its own.
    fn console(&self, name: &str) -> Command {
        let mut virsh = self.command("/usr/bin/virsh");
        virsh
            .args(["-c", &self.uri(), "console", name])
            .stdin(Stdio::inherit());
        virsh
    }

    /// Starts a window with its debug output in a log of its own.
    fn open(&self, program: &str, args: &[&str]) -> Window {
        let log = self.dir.join(format!("{}.log", unique("window")));
        let file = fs::File::create(&log).expect("log");
        let mut command = self.command(program);
        command
            .args(args)
            .stdout(file.try_clone().expect("log"))
            .stderr(file);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{program} (scripts/install-deps installs it): {e}"));
        Window { child, log }
    }

    fn screenshot(&self, what: &str) {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        fs::create_dir_all(&dir).expect("target/tmp/screenshots");
        self.screen
            .screenshot(&dir.join(format!("{}.png", unique(what))));
    }
}

struct Window {
    child: Child,
    log: PathBuf,
}

impl Window {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `done` holds, failing with the window's log if it never does or the
    /// window ends first.
    fn until(&mut self, what: &str, mut done: impl FnMut(&Window) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            if done(self) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the window ended ({status}) before {what}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {WAIT:?}; the window's log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether QEMU lists a client of the guest's display (its main channel, for SPICE), as
/// its monitor tells the rig's own connection.
fn has_display_client(rig: &Rig, guest: &Guest, spice: bool) -> bool {
    let uuid = guest.uuid();
    let (info, client) = if spice {
        ("info spice", "channel name: main")
    } else {
        ("info vnc", "Client:")
    };
    let out = rig.virsh_uri(
        &rig.qemu_uri(),
        &["qemu-monitor-command", "--hmp", "--domain", &uuid, info],
    );
    String::from_utf8_lossy(&out.stdout).contains(client)
}

/// Three running guests: alice may see `vnc`, open its serial console and its display;
/// only open the display of `spice`; and do nothing at all with `theirs`.
struct Guests {
    vnc: Guest,
    spice: Guest,
    theirs: Guest,
    world: World,
    key: SshKey,
}

fn guests() -> Guests {
    let rig = Rig::get();
    let start = |graphics| {
        let guest = Guest::define_with(rig, &unique("view"), graphics);
        guest.start();
        guest
    };
    let (vnc, spice, theirs) = (
        start(Graphics::Vnc),
        start(Graphics::Spice),
        start(Graphics::Vnc),
    );
    let keys = format!(
        r#"{{"alice": [
            {{"domains": ["{}"], "commands": ["status", "console", "display"]}},
            {{"domains": ["{}"], "commands": ["display"]}}
        ], "bob": [{{"domains": ["{}"]}}]}}"#,
        vnc.name, spice.name, theirs.name
    );
    let world = World::on(&rig.qemu_uri(), &keys, "");
    let key = rig.authorize_gateway(&world.config, "alice", "restrict");
    Guests {
        vnc,
        spice,
        theirs,
        world,
        key,
    }
}

#[test]
fn virt_manager_shows_only_the_keys_domains_and_opens_a_console() {
    let g = guests();
    let desk = Desk::new(&g.key);
    let rig = desk.rig;
    let mut manager = desk.open(
        "/usr/bin/virt-manager",
        &["--no-fork", "--debug", "--connect", &desk.uri()],
    );
    manager.until("an active connection listing alice's domains", |w| {
        let log = w.log();
        log.contains("state=Active") && log.contains(&g.vnc.name) && log.contains(&g.spice.name)
    });
    // Let it poll (stats, events) a few times before judging what it saw.
    thread::sleep(Duration::from_secs(5));
    desk.screenshot("virt-manager-list");
    let log = manager.log();
    assert!(!log.contains(&g.theirs.name), "{log}");
    drop(manager);

    for (guest, spice) in [(&g.vnc, false), (&g.spice, true)] {
        let mut console = desk.open(
            "/usr/bin/virt-manager",
            &[
                "--no-fork",
                "--debug",
                "--connect",
                &desk.uri(),
                "--show-domain-console",
                &guest.name,
            ],
        );
        console.until("virt-manager's display client on the guest", |_| {
            has_display_client(rig, guest, spice)
        });
        thread::sleep(Duration::from_secs(2));
        desk.screenshot(if spice {
            "virt-manager-spice"
        } else {
            "virt-manager-vnc"
        });
        assert!(!has_display_client(rig, &g.theirs, false));
    }
    let records = g.world.records(1);
    for guest in [&g.vnc, &g.spice] {
        assert!(
            summary(&records).contains(&row("display", &guest.name, "allow", 0)),
            "{records:#?}"
        );
    }
    // What virt-manager asked beyond alice's grants was refused, and nothing else.
    for record in &records {
        let (command, domain, ..) = &summary(std::slice::from_ref(record))[0];
        assert!(
            command == "display" || domain == "-",
            "a call on a domain was refused: {record}"
        );
    }
}

#[test]
fn virt_viewer_opens_a_granted_vnc_and_spice_display_and_not_another() {
    let g = guests();
    let desk = Desk::new(&g.key);
    let rig = desk.rig;
    for (guest, spice) in [(&g.vnc, false), (&g.spice, true)] {
        let mut viewer = desk.open(
            "/usr/bin/virt-viewer",
            &["--debug", "-c", &desk.uri(), &guest.name],
        );
        viewer.until("virt-viewer's display client on the guest", |_| {
            has_display_client(rig, guest, spice)
        });
        thread::sleep(Duration::from_secs(2));
        desk.screenshot(if spice {
            "virt-viewer-spice"
        } else {
            "virt-viewer-vnc"
        });
    }

    // Another key's domain is not found, as a domain that does not exist is not.
    let nowhere = unique("nowhere");
    for name in [&g.theirs.name, &nowhere] {
        let mut refused = desk.open(
            "/usr/bin/virt-viewer",
            &["--debug", "-c", &desk.uri(), name],
        );
        refused.until("virt-viewer's answer for a domain not alice's", |w| {
            w.log().contains(&format!("Cannot find guest {name}"))
        });
        desk.screenshot("virt-viewer-refused");
    }
    assert!(!has_display_client(rig, &g.theirs, false));
}

#[test]
fn virsh_console_over_qemu_ssh_reaches_the_guest() {
    let g = guests();
    let desk = Desk::new(&g.key);
    let mut term = Term::spawn(desk.console(&g.vnc.name));
    term.expect("Escape character is ^]");
    g.vnc.attach(&mut term);
    term.send("through the filter\r");
    term.expect("ECHO: through the filter");
    term.send("\x1d");
    assert_eq!(term.exit_code(), 0);

    // Display only: no console.
    let mut term = Term::spawn(desk.console(&g.spice.name));
    term.expect("access denied");
    assert_ne!(term.exit_code(), 0);
}
