//! A fleet behind one gateway: three hypervisors — the rig's libvirtd, a second one, and a
//! third reached the way a remote one is, through libvirt's ssh transport via the rig's
//! own sshd (its host key pinned in the known_hosts the gateway's ssh reads, nothing
//! `no_verify`) — each a session libvirtd serving the test driver. Every request goes
//! through real sshd and the real binary; states are checked with virsh on each daemon.

use dromaius_rig as common;

use std::fs;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{AuditSink, Libvirtd, Rig, SshKey, Sshd, code, stderr, stdout, unique, write_file};

/// The three hypervisors, and the URI of the one reached over ssh.
struct Fleet {
    rig: &'static Rig,
    two: Libvirtd,
    far: Libvirtd,
    far_uri: String,
}

/// The nc of Debian's netcat-openbsd: the forced command a hypervisor gives the gateway's
/// key, so that the key reaches libvirt's socket and nothing else.
const NC: &str = "/usr/bin/nc.openbsd";

fn fleet() -> &'static Fleet {
    static FLEET: OnceLock<Fleet> = OnceLock::new();
    FLEET.get_or_init(|| {
        let rig = Rig::get();
        assert!(
            std::path::Path::new(NC).exists(),
            "{NC} is missing: apt-get install netcat-openbsd (scripts/install-deps does)"
        );
        let two = Libvirtd::start();
        let far = Libvirtd::start();
        let far_uri = remote_uri(rig.sshd(), &far);
        // The gateway's ssh (run by virsh, run by dromaius, run by the rig's sshd) reads
        // root's known_hosts as that sshd's forced commands see it: pin the host key there.
        let known_hosts = rig.sshd().root_dot_ssh().join("known_hosts");
        fs::write(&known_hosts, format!("{}\n", rig.sshd().known_hosts_line()))
            .expect("pin the rig sshd's host key");
        Fleet {
            rig,
            two,
            far,
            far_uri,
        }
    })
}

/// `test+ssh://` to `libvirtd` through `sshd`, with a key of its own whose forced command
/// connects it to that daemon's socket.
fn remote_uri(sshd: &Sshd, libvirtd: &Libvirtd) -> String {
    let socket = libvirtd.socket().display().to_string();
    let key = sshd.authorize(&format!("{NC} -U {socket}"), "restrict");
    format!(
        "test+ssh://root@127.0.0.1:{}/default?keyfile={}&socket={socket}&proxy=netcat",
        sshd.port(),
        key.private.display()
    )
}

/// One test's config (`hypervisors` named `one`, `two`, `far`, plus `extra`), audit and key.
struct World {
    fleet: &'static Fleet,
    audit: AuditSink,
    config: std::path::PathBuf,
    key: SshKey,
}

impl World {
    /// `keys` is the JSON of `keys`; `extra_hypervisors` more `"name": "uri",` entries;
    /// the forced command is `--key ops`.
    fn new(keys: &str, extra_hypervisors: &str, timeout: u64) -> World {
        let fleet = fleet();
        let audit = AuditSink::new();
        let config = write_file(
            "fleet.json",
            &format!(
                r#"{{
  "hypervisors": {{ {extra_hypervisors} "one": "{}", "two": "{}", "far": "{}" }},
  "connect": "one",
  "timeout_secs": {timeout},
  "syslog_socket": "{}",
  "keys": {keys}
}}"#,
                fleet.rig.test_uri(),
                fleet.two.test_uri(),
                fleet.far_uri,
                audit.path().display()
            ),
        );
        let key = fleet.rig.authorize_gateway(&config, "ops", "restrict");
        World {
            fleet,
            audit,
            config,
            key,
        }
    }

    fn ssh(&self, request: &str) -> Output {
        self.fleet.rig.ssh(&self.key, Some(request), b"")
    }
}

const EVERYWHERE: &str = r#"{"ops": [{"domains": ["*"], "connect": ["one", "two", "far"]}]}"#;

#[test]
fn a_domain_is_reached_on_whichever_hypervisor_defines_it() {
    let world = World::new(EVERYWHERE, "", 60);
    let fleet = world.fleet;
    let (a, b, c) = (unique("web-a"), unique("web-b"), unique("web-c"));
    fleet.rig.define(&a);
    fleet.two.define(&b);
    fleet.far.define(&c);
    for (name, daemon) in [
        (&a, fleet.rig.libvirtd()),
        (&b, &fleet.two),
        (&c, &fleet.far),
    ] {
        let out = world.ssh(&format!("start {name}"));
        assert_eq!(code(&out), Some(0), "{name}: {}", stderr(&out));
        assert_eq!(stdout(&out), format!("Domain '{name}' started\n"));
        assert_eq!(daemon.state(name), "running", "{name}");
        let out = world.ssh(&format!("status {name}"));
        assert_eq!((code(&out), stdout(&out)), (Some(0), "running\n".into()));
        let out = world.ssh(&format!("destroy {name}"));
        assert_eq!(code(&out), Some(0), "{name}: {}", stderr(&out));
        assert_eq!(daemon.state(name), "shut off", "{name}");
    }
    // The records name the hypervisor each request acted on.
    let records = world.audit.records(9, Duration::from_secs(5));
    for (name, label) in [(&a, "one"), (&b, "two"), (&c, "far")] {
        let mine: Vec<&String> = records
            .iter()
            .filter(|r| r.contains(&format!("domain=\"{name}\"")))
            .collect();
        assert_eq!(mine.len(), 3, "{records:?}");
        for record in mine {
            assert!(
                record.ends_with(&format!("hypervisor=\"{label}\"")),
                "{record}"
            );
        }
    }
    let out = world.ssh(&format!("status {}", unique("nowhere")));
    assert_eq!(code(&out), Some(1));
    assert!(stderr(&out).contains("no domain named"), "{}", stderr(&out));
}

#[test]
fn a_name_two_hypervisors_define_is_acted_on_only_where_it_runs() {
    let world = World::new(EVERYWHERE, "", 60);
    let fleet = world.fleet;
    let twin = unique("twin");
    fleet.rig.define(&twin);
    fleet.two.define(&twin);
    // Both shut off: nothing may start it (two QEMUs on one disk), nor act on it.
    for request in ["start", "destroy", "status"] {
        let out = world.ssh(&format!("{request} {twin}"));
        assert_eq!(code(&out), Some(1), "{request}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!(
                "\"{twin}\" is defined on one, two and active on none of them"
            )),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(fleet.rig.state(&twin), "shut off");
    assert_eq!(fleet.two.state(&twin), "shut off");
    // Running on two: that is where it is.
    fleet.two.start_domain(&twin);
    let out = world.ssh(&format!("status {twin}"));
    assert_eq!((code(&out), stdout(&out)), (Some(0), "running\n".into()));
    let out = world.ssh(&format!("start {twin}"));
    assert_eq!(
        code(&out),
        Some(1),
        "already running there: {}",
        stderr(&out)
    );
    assert_eq!(
        fleet.rig.state(&twin),
        "shut off",
        "the other copy never started"
    );
    let out = world.ssh(&format!("destroy {twin}"));
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(fleet.two.state(&twin), "shut off");
    // `list` shows it once for each hypervisor, with the hypervisor.
    let out = world.ssh("list");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let listed = stdout(&out);
    let rows: Vec<&str> = listed
        .lines()
        .filter(|l| l.starts_with(&format!("{twin} ")))
        .collect();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(
        rows[0].ends_with("  one") && rows[1].ends_with("  two"),
        "{rows:?}"
    );
}

#[test]
fn a_domain_that_moves_between_hypervisors_is_still_reached() {
    let world = World::new(EVERYWHERE, "", 60);
    let fleet = world.fleet;
    let mover = unique("mover");
    fleet.rig.define(&mover);
    let out = world.ssh(&format!("start {mover}"));
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    fleet.rig.destroy(&mover);
    let uuid = fleet.rig.uuid(&mover);
    fleet.rig.virsh_ok(&["undefine", "--domain", &uuid]);
    fleet.far.define(&mover);
    let out = world.ssh(&format!("start {mover}"));
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(fleet.far.state(&mover), "running");
    let records = world.audit.records(2, Duration::from_secs(5));
    assert!(records[0].ends_with("hypervisor=\"one\""), "{records:?}");
    assert!(records[1].ends_with("hypervisor=\"far\""), "{records:?}");
}

#[test]
fn list_asks_every_hypervisor_and_names_each() {
    let keys = r#"{"ops": [
        {"domains": ["fl-a-*"], "connect": "one"},
        {"domains": ["fl-b-*"], "connect": ["two", "far"]}
    ]}"#;
    let world = World::new(keys, "", 60);
    let fleet = world.fleet;
    let (a, b, c, hidden) = (
        unique("fl-a-x"),
        unique("fl-b-y"),
        unique("fl-b-z"),
        unique("fl-a-hidden"),
    );
    fleet.rig.define(&a);
    fleet.two.define(&b);
    fleet.far.define(&c);
    // Granted on `one` only: found on `two`, it is not listed.
    fleet.two.define(&hidden);
    let out = world.ssh("list");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .map(str::to_owned)
    };
    assert!(row(&a).is_some_and(|r| r.ends_with("  one")), "{text}");
    assert!(row(&b).is_some_and(|r| r.ends_with("  two")), "{text}");
    assert!(row(&c).is_some_and(|r| r.ends_with("  far")), "{text}");
    assert_eq!(row(&hidden), None, "{text}");
}

#[test]
fn a_hypervisor_that_is_down_is_named_and_blocks_only_start() {
    let down = Libvirtd::start();
    let pid = down.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !down.has_ended() {
        assert!(Instant::now() < deadline, "libvirtd {pid} did not die");
        std::thread::sleep(Duration::from_millis(20));
    }
    let world = World::new(
        r#"{"ops": [{"domains": ["*"], "connect": ["one", "down"]}]}"#,
        &format!(r#""down": "{}","#, down.test_uri()),
        60,
    );
    let name = unique("alive");
    world.fleet.rig.define(&name);
    let out = world.ssh(&format!("start {name}"));
    assert_eq!(code(&out), Some(69), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("may be running where it could not be looked up"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("dromaius: down: error: failed to connect to the hypervisor"),
        "{}",
        stderr(&out)
    );
    assert_eq!(world.fleet.rig.state(&name), "shut off", "nothing started");
    let out = world.ssh(&format!("status {name}"));
    assert_eq!(
        (code(&out), stdout(&out)),
        (Some(0), "shut off\n".into()),
        "{}",
        stderr(&out)
    );
    let out = world.ssh("list");
    assert_eq!(code(&out), Some(69), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&name),
        "the others are listed: {}",
        stdout(&out)
    );
    assert!(
        stderr(&out).starts_with("dromaius: down: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_hung_hypervisor_holds_no_request_past_its_timeout_and_leaves_nothing() {
    let hung = Libvirtd::start();
    let world = World::new(
        r#"{"ops": [{"domains": ["*"], "connect": ["one", "hung"]}]}"#,
        &format!(r#""hung": "{}","#, hung.test_uri()),
        2,
    );
    let name = unique("patient");
    world.fleet.rig.define(&name);
    let pid = hung.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let timed = |request: &str| {
        let began = Instant::now();
        let out = world.ssh(request);
        (out, began.elapsed())
    };
    let (out, took) = timed("list");
    assert_eq!(code(&out), Some(124), "{}", stderr(&out));
    assert!(stdout(&out).contains(&name), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("dromaius: list on hung took longer than 2 s and was stopped"),
        "{}",
        stderr(&out)
    );
    assert!(took < Duration::from_secs(8), "list took {took:?}");
    let (out, took) = timed(&format!("start {name}"));
    assert_eq!(code(&out), Some(124), "{}", stderr(&out));
    assert!(took < Duration::from_secs(8), "start took {took:?}");
    assert_eq!(world.fleet.rig.state(&name), "shut off");
    let (out, took) = timed(&format!("status {name}"));
    assert_eq!(
        (code(&out), stdout(&out)),
        (Some(0), "shut off\n".into()),
        "{}",
        stderr(&out)
    );
    assert!(took < Duration::from_secs(8), "status took {took:?}");
    // The hung hypervisor named first: the one that answered keeps its own time and acts;
    // it is not blamed for the other's silence.
    let reversed = World::new(
        r#"{"ops": [{"domains": ["*"], "connect": ["hung", "one"]}]}"#,
        &format!(r#""hung": "{}","#, hung.test_uri()),
        2,
    );
    let out = reversed.ssh(&format!("status {name}"));
    assert_eq!(
        (code(&out), stdout(&out)),
        (Some(0), "shut off\n".into()),
        "{}",
        stderr(&out)
    );
    // No virsh of dromaius's (`--connect`; the rig's own held connection is `-c`) is left
    // asking the hung daemon.
    let socket = format!("--connect {}", hung.test_uri());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = Command::new("pgrep")
            .args(["-f", &socket])
            .output()
            .unwrap();
        let pids = String::from_utf8_lossy(&left.stdout).trim().to_owned();
        if pids.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left running: {pids}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
}

#[test]
fn an_unpinned_host_key_is_refused_not_trusted() {
    let fleet = fleet();
    // A second sshd, whose forced commands see an empty known_hosts: the gateway behind it
    // must not reach the hypervisor behind the rig's sshd, whose key it never pinned.
    let sshd = Sshd::start("");
    let audit = AuditSink::new();
    let config = write_file(
        "unpinned.json",
        &format!(
            r#"{{"connect": "{}", "syslog_socket": "{}", "keys": {{"ops": [{{"domains": ["*"]}}]}}}}"#,
            fleet.far_uri,
            audit.path().display()
        ),
    );
    let key = sshd.authorize_gateway(&config, "ops", "restrict");
    let out = sshd.ssh(&key, Some("list"), b"");
    assert_eq!(code(&out), Some(69), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Host key verification failed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn fleet_config_mistakes_refuse_the_config_with_their_line() {
    let fleet = fleet();
    let cases = [
        (r#"["one", "nine"]"#, "unknown hypervisor \"nine\""),
        ("[]", "at least one hypervisor"),
        (r#"["one", "one"]"#, "names \"one\" twice"),
    ];
    for (connect, reason) in cases {
        let config = write_file(
            "bad-fleet.json",
            &format!(
                "{{\n  \"hypervisors\": {{ \"one\": \"{}\" }},\n  \"keys\": {{\n    \"ops\": [\n      {{ \"domains\": [\"*\"],\n        \"connect\": {connect} }}\n    ]\n  }}\n}}\n",
                fleet.rig.test_uri()
            ),
        );
        let key = fleet.rig.authorize_gateway(&config, "ops", "restrict");
        let out = fleet.rig.ssh(&key, Some("list"), b"");
        assert_eq!(code(&out), Some(78), "{connect}: {}", stderr(&out));
        let message = stderr(&out);
        assert!(
            message.contains(&format!("{}:6:", config.display())),
            "{message}"
        );
        assert!(message.contains(reason), "{message}");
    }
}

#[test]
fn tab_completes_names_from_every_hypervisor_each_once() {
    let fleet = fleet();
    let world = World::new(EVERYWHERE, "", 60);
    let tty_key = fleet
        .rig
        .authorize_gateway(&world.config, "ops", "restrict,pty");
    let p = unique("fc");
    let (a, b, c, twin) = (
        format!("{p}-a"),
        format!("{p}-b"),
        format!("{p}-c"),
        format!("{p}-twin"),
    );
    fleet.rig.define(&a);
    fleet.two.define(&b);
    fleet.far.define(&c);
    fleet.rig.define(&twin);
    fleet.two.define(&twin);
    let prompt = "dromaius (ops)> ";
    let mut term = common::pty::Term::spawn(fleet.rig.ssh_tty_command(&tty_key, None));
    term.done(prompt);
    term.send(&format!("status {p}\t\t"));
    let shown = term.listing(prompt, &format!("status {p}-"));
    for name in [&a, &b, &c, &twin] {
        assert!(
            shown.contains(name.as_str()),
            "{name} not offered: {shown:?}"
        );
    }
    assert_eq!(shown.matches(twin.as_str()).count(), 1, "{shown:?}");
    term.send("\x03");
    term.done(prompt);
    term.line("exit");
    assert_eq!(term.exit_code(), 0);
}
