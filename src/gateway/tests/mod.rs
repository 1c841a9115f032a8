//! `Gateway::handle` over fakes: what each request shows, its status, what libvirt was
//! asked, what the audit says, and how a config read again before each request changes it.

mod fakes;

use fakes::{Fake, World};

use super::*;
use crate::action::Action;
use crate::graphics::Ending;
use crate::hypervisor::Fault;
use crate::policy::Channel;
use crate::session::Line;
use crate::system::prompt::Completions;

const CONFIG: &str = r#"{
  "connect": "test:///one",
  "timeout_secs": 7,
  "syslog_socket": "/nonexistent/dromaius-test.sock",
  "keys": {
    "alice": [
      { "domains": ["alice-*"], "commands": ["start", "status", "console"] },
      { "domains": ["lab-?"], "connect": "test:///two" }
    ],
    "solo": [ { "domains": ["only"] } ],
    "viewer": [
      { "domains": ["desk-*"], "commands": ["display", "screenshot", "ctrl-alt-del", "suspend", "resume"] },
      { "domains": ["far-*"], "commands": ["display", "screenshot"], "connect": "qemu+ssh://hv.example/system" }
    ],
    "none": []
  }
}"#;

/// The channel: stdin and stdout terminals or not, one request or a session.
fn channel(terminal: bool, one_shot: bool) -> Channel {
    Channel {
        stdin_is_terminal: terminal,
        stdout_is_terminal: terminal,
        one_shot,
    }
}

fn world(fake: Fake) -> World {
    World::new(fake, CONFIG, channel(false, true))
}

/// Sends `line`: its status, what it showed on stdout, and on stderr.
fn ask(world: &World, gateway: &Gateway<'_>, line: &str) -> (u8, String, String) {
    let handled = gateway
        .handle(&Line::Text(line.as_bytes().to_vec()))
        .unwrap_or_else(|| panic!("{line:?} asked for nothing"));
    let (said, reported) = world.shown();
    (handled.status.code(), said, reported)
}

/// `(status, stderr)` of a line that should fail.
fn refused(world: &World, gateway: &Gateway<'_>, line: &str) -> (u8, String) {
    let (status, said, reported) = ask(world, gateway, line);
    assert_eq!(said, "", "{line}");
    (status, reported)
}

/// A field of an audit record (`name="value"` or `name=value`), unescaped only of its
/// quotes.
fn field(record: &str, name: &str) -> Option<String> {
    let rest = record
        .split(&format!(" {name}="))
        .nth(1)
        .or_else(|| record.strip_prefix(&format!("{name}=")))?;
    Some(match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or_default().to_owned(),
        None => rest.split(' ').next().unwrap_or_default().to_owned(),
    })
}

#[test]
fn a_name_virsh_reads_only_as_a_name_takes_one_run() {
    let world = world(Fake::with("test:///one", &[("alice-web", "shut off")]));
    let alice = world.gateway("alice", false);
    assert_eq!(
        ask(&world, &alice, "start alice-web"),
        (0, "did start on alice-web".into(), String::new())
    );
    assert_eq!(world.libvirt.calls(), ["start test:///one alice-web"]);
    // A grant's own connect is where its domains are acted on.
    let world = self::world(Fake::with("test:///two", &[("lab-1", "running")]));
    let alice = world.gateway("alice", false);
    assert_eq!(ask(&world, &alice, "destroy lab-1").0, 0);
    assert_eq!(world.libvirt.calls(), ["destroy test:///two lab-1"]);
}

#[test]
fn a_name_virsh_could_read_as_an_id_or_uuid_is_looked_up_first() {
    for name in [
        "2",
        "+2",
        "02",
        "-0",
        "deadbeef",
        "6695eb01-f6a4-8304-79aa-97f2502e193f",
    ] {
        let text = format!(
            r#"{{"connect": "test:///x", "syslog_socket": "/nonexistent/s", "keys": {{"k": [{{"domains": ["{name}"]}}]}}}}"#
        );
        let world = World::new(
            Fake::with("test:///x", &[(name, "running")]),
            &text,
            channel(false, true),
        );
        let k = world.gateway("k", true);
        assert_eq!(ask(&world, &k, &format!("reset {name}")).0, 0, "{name}");
        assert_eq!(
            world.libvirt.calls(),
            [
                format!("lookup test:///x {name}"),
                format!("reset test:///x {name}")
            ],
            "{name}"
        );
    }
}

#[test]
fn refusals_run_nothing_and_say_the_same_whether_the_domain_exists() {
    let world = world(Fake::with("test:///one", &[("bob-web", "running")]));
    let alice = world.gateway("alice", false);
    for line in [
        "destroy alice-web",
        "start bob-web",
        "start no-such",
        "status lab-1x",
    ] {
        assert_eq!(
            refused(&world, &alice, line),
            (77, "permission denied".into()),
            "{line}"
        );
    }
    let stranger = world.gateway("mallory", false);
    for line in ["status bob-web", "list", "help"] {
        assert_eq!(
            refused(&world, &stranger, line),
            (77, "permission denied".into()),
            "{line}"
        );
    }
    assert_eq!(
        ask(&world, &stranger, "exit"),
        (0, String::new(), String::new())
    );
    assert!(
        world.libvirt.calls().is_empty(),
        "{:?}",
        world.libvirt.calls()
    );
}

#[test]
fn each_fault_has_its_words_and_status() {
    let cases: Vec<(Fault, u8, &str)> = vec![
        (
            Fault::CannotRun("cannot run /usr/bin/virsh: No such file".into()),
            69,
            "cannot run /usr/bin/virsh: No such file",
        ),
        (
            Fault::Unreachable("error: failed to connect to the hypervisor".into()),
            69,
            "error: failed to connect to the hypervisor",
        ),
        (
            Fault::Unreachable(String::new()),
            69,
            "start alice-web: libvirt could not be reached",
        ),
        (
            Fault::TimedOut,
            124,
            "start alice-web took longer than 7 s and was stopped",
        ),
        (Fault::Interrupted, 130, "start interrupted"),
        (Fault::NotFound, 1, "no domain named \"alice-web\""),
        (
            Fault::Failed {
                words: "error: Domain is already active".into(),
                status: "exit status: 1".into(),
            },
            1,
            "error: Domain is already active",
        ),
        (
            Fault::Failed {
                words: String::new(),
                status: "exit status: 3".into(),
            },
            1,
            "virsh start failed (exit status: 3)",
        ),
    ];
    for (fault, status, words) in cases {
        let mut fake = Fake::with("test:///one", &[("alice-web", "shut off")]);
        fake.act_fault = Some(fault.clone());
        let world = world(fake);
        let alice = world.gateway("alice", false);
        assert_eq!(
            refused(&world, &alice, "start alice-web"),
            (status, words.into()),
            "{fault:?}"
        );
        // The same fault in the lookup means the same to the user.
        let mut fake = Fake::with("test:///one", &[("alice-web", "shut off")]);
        fake.faults.insert("test:///one".into(), fault.clone());
        let world = self::world(fake);
        let alice = world.gateway("alice", false);
        assert_eq!(
            refused(&world, &alice, "start alice-web"),
            (status, words.into()),
            "{fault:?}"
        );
    }
}

#[test]
fn a_missing_domain_is_named_and_nothing_acts() {
    let world = world(Fake::with("test:///one", &[("alice-db", "running")]));
    let alice = world.gateway("alice", false);
    assert_eq!(
        refused(&world, &alice, "start alice-web"),
        (1, "no domain named \"alice-web\"".into())
    );
    assert_eq!(world.libvirt.calls(), ["start test:///one alice-web"]);
    assert_eq!(
        refused(&world, &alice, "status alice-\"q\"\u{e9}"),
        (1, "no domain named \"alice-\\\"q\\\"\\xc3\\xa9\"".into())
    );
}

#[test]
fn the_console_needs_a_terminal_and_a_free_console() {
    let world = world(Fake::with("test:///one", &[("alice-web", "running")]));
    let piped = world.gateway("alice", false);
    assert_eq!(
        refused(&world, &piped, "console alice-web"),
        (
            1,
            "console needs a terminal: connect with ssh -t (and the key needs the pty option)"
                .into()
        )
    );
    assert!(world.libvirt.calls().is_empty());
    let mut at_terminal = World::new(
        Fake::with("test:///one", &[("alice-web", "running")]),
        CONFIG,
        channel(true, false),
    );
    let alice = at_terminal.gateway("alice", false);
    assert_eq!(ask(&at_terminal, &alice, "console alice-web").0, 0);
    drop(alice);
    at_terminal.libvirt.act_fault = Some(Fault::ConsoleBusy(
        "error: operation failed: Active console session exists for this domain".into(),
    ));
    let alice = at_terminal.gateway("alice", false);
    assert_eq!(
        refused(&at_terminal, &alice, "console alice-web"),
        (
            1,
            "error: operation failed: Active console session exists for this domain\n\
             the console of alice-web is in use by another session"
                .into()
        )
    );
}

#[test]
fn list_shows_only_granted_domains_of_each_hypervisor() {
    let fake = Fake::with(
        "test:///one",
        &[
            ("alice-web", "running"),
            ("bob-web", "running"),
            ("lab-1", "shut off"),
            ("alice-db", "shut off"),
        ],
    )
    .add(
        "test:///two",
        &[
            ("lab-1", "paused"),
            ("alice-x", "running"),
            ("lab-22", "running"),
        ],
    );
    let world = world(fake);
    let alice = world.gateway("alice", false);
    // alice's grants span two hypervisors: a third column says which.
    assert_eq!(
        ask(&world, &alice, "list"),
        (
            0,
            "alice-db   shut off  test:///one\n\
             alice-web  running   test:///one\n\
             lab-1      paused    test:///two\n"
                .into(),
            String::new()
        )
    );
    let mut calls = world.libvirt.calls();
    calls.sort();
    assert_eq!(calls, ["states test:///one", "states test:///two"]);
    let world = self::world(Fake::with(
        "test:///one",
        &[("only", "running"), ("other", "running")],
    ));
    let solo = world.gateway("solo", false);
    assert_eq!(ask(&world, &solo, "list").1, "only  running\n");
}

#[test]
fn list_names_a_failing_hypervisor_and_lists_the_others() {
    let mut fake = Fake::with("test:///one", &[("alice-web", "running")])
        .add("test:///two", &[("lab-1", "paused")]);
    fake.faults.insert("test:///two".into(), Fault::TimedOut);
    let world = world(fake);
    let alice = world.gateway("alice", false);
    assert_eq!(
        ask(&world, &alice, "list"),
        (
            124,
            "alice-web  running  test:///one\n".into(),
            "list on test:///two took longer than 7 s and was stopped".into()
        )
    );
}

#[test]
fn help_and_completion_offer_only_what_the_key_may_use() {
    let fake = Fake::with(
        "test:///one",
        &[
            ("alice-web", "running"),
            ("bob-web", "running"),
            ("lab-1", "running"),
        ],
    )
    .add(
        "test:///two",
        &[("lab-1", "running"), ("lab-2", "shut off")],
    );
    let world = World::new(fake, CONFIG, channel(true, false));
    let alice = world.gateway("alice", false);
    let help = ask(&world, &alice, "help").1;
    assert!(help.contains("start DOMAIN"), "{help}");
    assert!(help.contains("/usr/share/doc/dromaius/USAGE.md"), "{help}");
    assert!(help.contains("destroy DOMAIN"), "{help}");
    assert_eq!(
        alice.domains(Action::Start),
        ["alice-web", "lab-1", "lab-2"]
    );
    assert_eq!(alice.domains(Action::Destroy), ["lab-1", "lab-2"]);
    // At a terminal, every one of alice's seven commands fits.
    assert_eq!(alice.commands().len(), 11);
    let solo = world.gateway("solo", false);
    assert!(ask(&world, &solo, "help").1.contains("start [DOMAIN]"));
    assert_eq!(solo.domains(Action::Start), [] as [&str; 0]);
    let none = world.gateway("none", false);
    assert!(
        ask(&world, &none, "help")
            .1
            .contains("(no command on any domain")
    );
    assert_eq!(none.commands(), ["list", "help", "exit", "quit"]);
    assert!(none.domains(Action::Status).is_empty());
    let stranger = world.gateway("mallory", false);
    assert_eq!(stranger.commands(), ["exit", "quit"]);
    assert!(stranger.domains(Action::Start).is_empty());
    // Not at a terminal, the console is not offered.
    let piped = self::world(Fake::default());
    assert!(
        !piped
            .gateway("alice", false)
            .commands()
            .contains(&"console")
    );
}

#[test]
fn an_implied_domain_and_invalid_requests() {
    let world = world(Fake::with("test:///one", &[("only", "running")]));
    let solo = world.gateway("solo", false);
    assert_eq!(
        ask(&world, &solo, "reset"),
        (0, "did reset on only".into(), String::new())
    );
    let alice = world.gateway("alice", false);
    assert_eq!(
        refused(&world, &alice, "start"),
        (
            2,
            "start needs a domain; type \"help\" for the commands you may use".into()
        )
    );
    assert_eq!(
        refused(&world, &alice, "define x"),
        (
            2,
            "unknown command \"define\"; type \"help\" for the commands you may use".into()
        )
    );
}

const FLEET: &str = r#"{
  "hypervisors": { "hv1": "test:///one", "hv2": "test:///two", "hv3": "test:///three" },
  "connect": "hv1",
  "timeout_secs": 7,
  "syslog_socket": "/nonexistent/dromaius-test.sock",
  "keys": { "ops": [ { "domains": ["*"], "connect": ["hv1", "hv2", "hv3"] } ] }
}"#;

fn fleet(fake: Fake) -> World {
    World::new(fake, FLEET, channel(false, true))
}

/// The calls that acted (not the lookups), in order.
fn actions(fake: &Fake) -> Vec<String> {
    fake.calls()
        .into_iter()
        .filter(|c| !c.starts_with("lookup") && !c.starts_with("states"))
        .collect()
}

/// The hypervisor the last record names.
fn acted_on(world: &World) -> Option<String> {
    field(world.audit.records().last()?, "hypervisor")
}

#[test]
fn a_fleet_acts_where_the_domain_is_defined() {
    let world = fleet(
        Fake::with("test:///one", &[("web1", "shut off")])
            .add("test:///two", &[("web2", "running")])
            .add("test:///three", &[]),
    );
    let ops = world.gateway("ops", false);
    assert_eq!(ask(&world, &ops, "start web1").0, 0);
    assert_eq!(ask(&world, &ops, "destroy web2").0, 0);
    assert_eq!(
        actions(&world.libvirt),
        ["start test:///one web1", "destroy test:///two web2"]
    );
    assert_eq!(ask(&world, &ops, "status web2").0, 0);
    assert_eq!(acted_on(&world).as_deref(), Some("hv2"));
    let lookups = world
        .libvirt
        .calls()
        .iter()
        .filter(|c| c.starts_with("lookup"))
        .count();
    assert_eq!(lookups, 9);
    assert_eq!(
        refused(&world, &ops, "status nowhere"),
        (1, "no domain named \"nowhere\"".into())
    );
}

#[test]
fn a_domain_two_hypervisors_define_is_acted_on_where_it_is_active_only() {
    let world = fleet(
        Fake::with("test:///one", &[("db", "running"), ("twice", "shut off")])
            .add("test:///two", &[("db", "shut off"), ("twice", "shut off")])
            .add(
                "test:///three",
                &[("twice", "running"), ("thrice", "paused")],
            ),
    );
    let ops = world.gateway("ops", false);
    for line in ["destroy db", "start db"] {
        ask(&world, &ops, line);
        assert_eq!(acted_on(&world).as_deref(), Some("hv1"), "{line}");
    }
    // Both shut off: never started (two QEMUs on one disk), whichever the command.
    let world = fleet(
        Fake::with("test:///one", &[("db", "shut off")])
            .add("test:///two", &[("db", "shut off")])
            .add("test:///three", &[]),
    );
    let ops = world.gateway("ops", false);
    for command in ["start", "status", "reset"] {
        assert_eq!(
            refused(&world, &ops, &format!("{command} db")),
            (
                1,
                format!(
                    "\"db\" is defined on hv1, hv2 and active on none of them: refusing to \
                     {command} it (a domain must be defined on one hypervisor, or active on \
                     exactly one)"
                )
            ),
            "{command}"
        );
    }
    assert!(actions(&world.libvirt).is_empty());
    // Active on two: refused too.
    let world = fleet(
        Fake::with("test:///one", &[("db", "running")])
            .add("test:///two", &[("db", "paused")])
            .add("test:///three", &[]),
    );
    let ops = world.gateway("ops", false);
    let (status, words) = refused(&world, &ops, "destroy db");
    assert_eq!(status, 1);
    assert!(words.contains("active on hv1, hv2"), "{words}");
    assert!(actions(&world.libvirt).is_empty());
}

#[test]
fn an_unreachable_hypervisor_blocks_start_and_nothing_else() {
    let mut fake = Fake::with("test:///one", &[("web1", "shut off")])
        .add("test:///two", &[])
        .add("test:///three", &[]);
    fake.faults.insert(
        "test:///two".into(),
        Fault::Unreachable("error: failed to connect to the hypervisor".into()),
    );
    let world = fleet(fake);
    let ops = world.gateway("ops", false);
    assert_eq!(
        refused(&world, &ops, "start web1"),
        (
            69,
            "start web1 refused: the domain may be running where it could not be looked up\n\
             hv2: error: failed to connect to the hypervisor"
                .into()
        )
    );
    assert!(actions(&world.libvirt).is_empty());
    // Anything but start acts where the domain was found.
    assert_eq!(ask(&world, &ops, "status web1").0, 0);
    assert_eq!(acted_on(&world).as_deref(), Some("hv1"));
    // Found nowhere that answered: the hypervisor that did not answer is named.
    assert_eq!(
        refused(&world, &ops, "destroy web9"),
        (69, "hv2: error: failed to connect to the hypervisor".into())
    );
    // A hypervisor that did not answer in time: 124, named.
    let mut fake = Fake::with("test:///one", &[("web1", "shut off")])
        .add("test:///two", &[])
        .add("test:///three", &[]);
    fake.faults.insert("test:///three".into(), Fault::TimedOut);
    let world = fleet(fake);
    let ops = world.gateway("ops", false);
    assert_eq!(
        refused(&world, &ops, "start web1"),
        (
            124,
            "start web1 refused: the domain may be running where it could not be looked up\n\
             lookup web1 on hv3 took longer than 7 s and was stopped"
                .into()
        )
    );
    assert_eq!(
        ask(&world, &ops, "list"),
        (
            124,
            "web1  shut off  hv1\n".into(),
            "list on hv3 took longer than 7 s and was stopped".into()
        )
    );
}

#[test]
fn the_new_commands_reach_libvirt_as_themselves() {
    let world = world(Fake::with("test:///one", &[("desk-1", "running")]));
    let viewer = world.gateway("viewer", false);
    for command in ["suspend", "resume", "ctrl-alt-del"] {
        assert_eq!(
            ask(&world, &viewer, &format!("{command} desk-1")),
            (0, format!("did {command} on desk-1"), String::new())
        );
    }
    assert_eq!(ask(&world, &viewer, "screenshot desk-1").0, 0);
    assert_eq!(*world.user.output.lock().unwrap(), b"PNG");
    assert_eq!(
        world.libvirt.calls(),
        [
            "suspend test:///one desk-1",
            "resume test:///one desk-1",
            "ctrl-alt-del test:///one desk-1",
            "screenshot test:///one desk-1"
        ]
    );
    // Granted by name only: alice's grants, without them in `commands`, do not have them.
    let alice = world.gateway("alice", false);
    for line in ["suspend lab-1", "screenshot lab-1", "display lab-1"] {
        assert_eq!(
            refused(&world, &alice, line),
            (77, "permission denied".into()),
            "{line}"
        );
    }
}

#[test]
fn what_the_channel_cannot_carry_is_refused_before_anything_runs() {
    let cases = [
        (
            channel(true, true),
            "viewer",
            "screenshot desk-1",
            "desk-1 > desk-1.png",
        ),
        (channel(true, true), "viewer", "display desk-1", "ssh -T"),
        (
            channel(false, false),
            "viewer",
            "display desk-1",
            "not at the prompt",
        ),
        (channel(false, true), "alice", "console alice-web", "ssh -t"),
    ];
    for (channel, key, line, words) in cases {
        let world = World::new(
            Fake::with("test:///one", &[("desk-1", "running")]),
            CONFIG,
            channel,
        );
        let gateway = world.gateway(key, false);
        let (status, said) = refused(&world, &gateway, line);
        assert_eq!(status, 1, "{line}");
        assert!(said.contains(words), "{line}: {said}");
        assert!(
            world.libvirt.calls().is_empty(),
            "{:?}",
            world.libvirt.calls()
        );
        // Audited as allowed, ended 1: the grant allows it, the channel cannot carry it.
        let record = world.audit.records().pop().unwrap_or_default();
        assert_eq!(
            field(&record, "decision").as_deref(),
            Some("allow"),
            "{record}"
        );
        assert_eq!(field(&record, "outcome").as_deref(), Some("1"), "{record}");
    }
}

#[test]
fn display_is_relayed_only_from_a_hypervisor_on_this_host() {
    let world = world(Fake::with(
        "qemu+ssh://hv.example/system",
        &[("far-1", "running")],
    ));
    let viewer = world.gateway("viewer", false);
    let (status, said) = refused(&world, &viewer, "display far-1");
    assert_eq!(status, 1);
    assert!(
        said.contains("qemu+ssh://hv.example/system is not on this host"),
        "{said}"
    );
    // Only the lookup was asked of the remote hypervisor, never its display.
    assert!(
        !world
            .libvirt
            .calls()
            .iter()
            .any(|c| c.starts_with("display"))
    );
    // A screenshot comes through libvirt itself: that works from anywhere.
    assert_eq!(ask(&world, &viewer, "screenshot far-1").0, 0);
}

#[test]
fn display_refuses_what_libvirt_says_it_cannot_relay() {
    let cases = [
        ("vnc://:secret@127.0.0.1:0", "credentials"),
        ("rdp://127.0.0.1:3389", "only VNC and SPICE"),
        ("spice://127.0.0.1?tls-port=5931", "only on a TLS port"),
        ("vnc://hv.example:0", "host name hv.example"),
        ("", "not a display address"),
    ];
    for (said, words) in cases {
        let mut fake = Fake::with("test:///one", &[("desk-1", "running")]);
        fake.display_at = said.into();
        let world = world(fake);
        let viewer = world.gateway("viewer", false);
        let (status, text) = refused(&world, &viewer, "display desk-1");
        assert_eq!(status, 1, "{said}");
        assert!(text.contains(words), "{said}: {text}");
        assert!(!text.contains("secret"), "{text}");
        assert!(world.user.relayed_to.lock().unwrap().is_empty());
    }
    let mut fake = Fake::with("test:///one", &[("desk-1", "running")]);
    fake.act_fault = Some(Fault::Failed {
        words: "error: No graphical display found".into(),
        status: "exit status: 1".into(),
    });
    let world = world(fake);
    let viewer = world.gateway("viewer", false);
    assert_eq!(
        refused(&world, &viewer, "display desk-1"),
        (1, "error: No graphical display found".into())
    );
}

#[test]
fn display_relays_to_the_endpoint_libvirt_names_with_two_records() {
    let mut fake = Fake::with("test:///one", &[("desk-1", "running")]);
    fake.display_at = "vnc://127.0.0.1:3".into();
    let world = world(fake);
    let viewer = world.gateway("viewer", true);
    assert_eq!(ask(&world, &viewer, "display desk-1").0, 0);
    assert_eq!(*world.user.relayed_to.lock().unwrap(), ["127.0.0.1:5903"]);
    // VNC names its desktop in the handshake: the relay reads it.
    assert_eq!(*world.user.checked.lock().unwrap(), Some(true));
    let records = world.audit.records();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(field(&records[0], "relay").as_deref(), Some("start"));
    assert_eq!(
        field(&records[0], "endpoint").as_deref(),
        Some("127.0.0.1:5903")
    );
    assert_eq!(field(&records[1], "relay").as_deref(), Some("end"));
    assert_eq!(field(&records[1], "bytes_to_guest").as_deref(), Some("12"));
    assert_eq!(field(&records[1], "bytes_to_viewer").as_deref(), Some("34"));
    assert_eq!(
        field(&records[1], "reason").as_deref(),
        Some("viewer closed")
    );
    // Nothing listens: refused, named, and no start record.
    drop(viewer);
    let mut world = world;
    world.user.relay_ends = None;
    world.audit.0.lock().unwrap().clear();
    let viewer = world.gateway("viewer", true);
    let (status, said) = refused(&world, &viewer, "display desk-1");
    assert_eq!(status, 1);
    assert!(said.contains("cannot connect to its display at 127.0.0.1:5903: nothing listens"));
    assert_eq!(world.audit.records().len(), 1);
}

#[test]
fn a_spice_display_is_relayed_on_its_plain_port_without_a_handshake_to_read() {
    let mut fake = Fake::with("test:///one", &[("desk-1", "running")]);
    fake.display_at = "spice://127.0.0.1:5930?tls-port=5931".into();
    let world = world(fake);
    let viewer = world.gateway("viewer", true);
    assert_eq!(ask(&world, &viewer, "display desk-1").0, 0);
    assert_eq!(*world.user.relayed_to.lock().unwrap(), ["127.0.0.1:5930"]);
    assert_eq!(*world.user.checked.lock().unwrap(), Some(false));
    let record = world.audit.records().pop().unwrap_or_default();
    assert_eq!(field(&record, "relay").as_deref(), Some("end"), "{record}");
}

#[test]
fn a_display_that_names_another_desktop_is_closed() {
    let mut fake = Fake::with("test:///one", &[("desk-1", "running")]);
    fake.display_at = "vnc://127.0.0.1:3".into();
    let mut world = world(fake);
    world.user.relay_ends = Some(Ending::WrongDisplay("QEMU (desk-2)".into()));
    let viewer = world.gateway("viewer", true);
    let (status, said) = refused(&world, &viewer, "display desk-1");
    assert_eq!(status, 1);
    assert!(
        said.contains("names itself QEMU (desk-2), not this domain's"),
        "{said}"
    );
    let record = world.audit.records().pop().unwrap_or_default();
    assert_eq!(
        field(&record, "reason").as_deref(),
        Some("wrong display"),
        "{record}"
    );
}

#[test]
fn help_names_the_new_commands_only_where_granted() {
    let world = world(Fake::default());
    let shown = ask(&world, &world.gateway("viewer", false), "help").1;
    for command in ["display", "screenshot", "ctrl-alt-del", "suspend", "resume"] {
        assert!(
            shown.contains(&format!("  {command} ")),
            "{command}: {shown}"
        );
    }
    assert!(!shown.contains("  start "), "{shown}");
    assert!(
        !ask(&world, &world.gateway("alice", false), "help")
            .1
            .contains("display")
    );
    // The prompt does not offer what it would refuse.
    let at_prompt = World::new(Fake::default(), CONFIG, channel(true, false));
    assert_eq!(
        at_prompt.gateway("viewer", false).commands(),
        [
            "suspend",
            "resume",
            "ctrl-alt-del",
            "list",
            "help",
            "exit",
            "quit"
        ]
    );
}

/// The review's case 1: the config is read again before every request of a session, the
/// first included, so a prompt left open for hours is judged on the config of now.
#[test]
fn every_request_of_a_session_is_judged_on_the_config_of_now() {
    let wide = CONFIG.replace(
        r#""solo": [ { "domains": ["only"] } ],"#,
        r#""solo": [ { "domains": ["*"], "commands": ["status", "destroy"] } ],"#,
    );
    let narrow = CONFIG.replace(
        r#""solo": [ { "domains": ["only"] } ],"#,
        r#""solo": [ { "domains": ["web1"], "commands": ["status"] } ],"#,
    );
    let world = World::new(
        Fake::with("test:///one", &[("secret", "running")]),
        &wide,
        channel(false, false),
    );
    let solo = world.gateway("solo", false);
    world.config.set(&narrow);
    assert_eq!(
        refused(&world, &solo, "destroy secret"),
        (77, "permission denied".into())
    );
    assert!(world.libvirt.calls().is_empty());
    // A config that no longer loads ends the session, recorded.
    world.config.set("{ not json");
    let handled = solo.handle(&Line::Text(b"status web1".to_vec()));
    assert_eq!(
        handled.map(|h| (h.status.code(), h.end_session)),
        Some((78, true))
    );
    let (_, said) = world.shown();
    assert!(said.ends_with("; the session ends"), "{said}");
    let record = world.audit.records().pop().unwrap_or_default();
    assert_eq!(
        field(&record, "reason").as_deref(),
        Some("config refused"),
        "{record}"
    );
    assert_eq!(field(&record, "outcome").as_deref(), Some("78"), "{record}");
    // One request read just now is not read twice.
    let world = World::new(
        Fake::with("test:///one", &[("only", "running")]),
        CONFIG,
        channel(false, true),
    );
    let solo = world.gateway("solo", true);
    world.config.set("{ not json");
    assert_eq!(ask(&world, &solo, "status only").0, 0);
}

#[test]
fn completion_reads_the_config_again_and_is_audited() {
    let world = World::new(
        Fake::with(
            "test:///one",
            &[("alice-web", "running"), ("alice-db", "running")],
        ),
        CONFIG,
        channel(true, false),
    );
    let alice = world.gateway("alice", false);
    assert_eq!(alice.domains(Action::Start), ["alice-db", "alice-web"]);
    let record = world.audit.records().pop().unwrap_or_default();
    assert_eq!(
        field(&record, "command").as_deref(),
        Some("start"),
        "{record}"
    );
    assert_eq!(
        field(&record, "reason").as_deref(),
        Some("tab completion"),
        "{record}"
    );
    world
        .config
        .set(&CONFIG.replace(r#"["alice-*"]"#, r#"["alice-db"]"#));
    assert_eq!(alice.domains(Action::Start), ["alice-db"]);
    world.config.set(&CONFIG.replace(
        r#""connect": "test:///one","#,
        r#""connect": "test:///one", "idle_timeout_secs": 30,"#,
    ));
    assert_eq!(alice.idle(), None);
    assert_eq!(alice.commands().len(), 11);
    assert_eq!(alice.idle(), Some(std::time::Duration::from_secs(30)));
}

#[test]
fn revocation_ends_an_attachment_and_is_recorded_so() {
    let world = World::new(
        Fake::with("test:///one", &[("alice-web", "running")]),
        CONFIG,
        channel(true, false),
    );
    let alice = world.gateway("alice", false);
    world.config.set(&CONFIG.replace(
        r#""commands": ["start", "status", "console"]"#,
        r#""commands": ["start", "status"]"#,
    ));
    let (status, said) = refused(&world, &alice, "console alice-web");
    // Read before the request, the config already refuses it.
    assert_eq!((status, said.as_str()), (77, "permission denied"));
    // Allowed when asked (read for this very request), revoked while attached: its watch
    // reads the config of now.
    let console_then_revoke = World::new(
        Fake::with("test:///one", &[("alice-web", "running")]),
        CONFIG,
        channel(true, false),
    );
    let alice = console_then_revoke.gateway("alice", true);
    console_then_revoke
        .config
        .set(&CONFIG.replace(r#"["alice-*"]"#, r#"["nobody"]"#));
    let (status, said) = refused(&console_then_revoke, &alice, "console alice-web");
    assert_eq!(status, 77);
    assert_eq!(
        said,
        "access to console on alice-web was revoked; the console of alice-web was closed"
    );
    let record = console_then_revoke
        .audit
        .records()
        .pop()
        .unwrap_or_default();
    assert_eq!(
        field(&record, "reason").as_deref(),
        Some("revoked while attached"),
        "{record}"
    );
    // The display's relay is watched the same way.
    let viewer_world = World::new(
        {
            let mut fake = Fake::with("test:///one", &[("desk-1", "running")]);
            fake.display_at = "vnc://127.0.0.1:0".into();
            fake
        },
        CONFIG,
        channel(false, true),
    );
    let viewer = viewer_world.gateway("viewer", true);
    viewer_world
        .config
        .set(&CONFIG.replace(r#"["desk-*"]"#, r#"["nobody"]"#));
    let (status, said) = refused(&viewer_world, &viewer, "display desk-1");
    assert_eq!(status, 77);
    assert!(said.ends_with("the display of desk-1 was closed"), "{said}");
    assert!(!matches!(
        viewer_world.user.relay_ends,
        Some(Ending::Revoked(_))
    ));
}

#[test]
fn every_record_names_who_asked_and_what_came_of_it() {
    let world = world(Fake::with("test:///one", &[("alice-web", "shut off")]));
    let alice = world.gateway("alice", false);
    for line in [
        "start alice-web",
        "destroy alice-web",
        "bogus \u{1b}[2J",
        "list",
    ] {
        ask(&world, &alice, line);
    }
    let records = world.audit.records();
    let rows: Vec<Vec<Option<String>>> = records
        .iter()
        .map(|r| {
            ["key", "client", "command", "domain", "decision", "outcome"]
                .iter()
                .map(|name| field(r, name))
                .collect()
        })
        .collect();
    let row = |command: &str, domain: &str, decision: &str, outcome: &str| {
        [
            Some("alice"),
            Some("192.0.2.7 port 51234"),
            Some(command),
            Some(domain),
            Some(decision),
            Some(outcome),
        ]
        .map(|f| f.map(str::to_owned))
        .to_vec()
    };
    assert_eq!(
        rows,
        [
            row("start", "alice-web", "allow", "0"),
            row("destroy", "alice-web", "deny", "77"),
            row("bogus \\x1b[2J", "-", "invalid", "2"),
            row("list", "-", "allow", "0"),
        ]
    );
}

/// A world where `viewer`'s desk-1 shows VNC at 127.0.0.1:5903 and no SPICE.
fn viewer_world() -> World {
    let mut fake = Fake::with(
        "test:///one",
        &[("desk-1", "running"), ("desk-2", "running")],
    );
    fake.displays
        .insert(("desk-1".into(), "vnc"), "vnc://127.0.0.1:3".into());
    fake.displays.insert(
        ("desk-2".into(), "spice"),
        "spice+unix:///run/q/desk-2/spice.sock".into(),
    );
    fake.displays
        .insert(("desk-2".into(), "vnc"), "vnc://127.0.0.1:9".into());
    world(fake)
}

#[test]
fn a_viewers_tunnel_reaches_only_a_granted_domains_display() {
    use crate::tunnel::Target;
    let world = viewer_world();
    let viewer = world.gateway("viewer", true);
    let asked = Target::Tcp {
        host: "127.0.0.1".into(),
        port: 5903,
    };
    assert_eq!(viewer.tunnel(&asked), Status::Ok);
    assert_eq!(*world.user.relayed_to.lock().unwrap(), ["127.0.0.1:5903"]);
    let records = world.audit.records();
    assert_eq!(field(&records[0], "domain").as_deref(), Some("desk-1"));
    assert_eq!(field(&records[0], "relay").as_deref(), Some("start"));
    assert_eq!(field(&records[1], "relay").as_deref(), Some("end"));
    // A socket, by its path.
    let socket = Target::Unix("/run/q/desk-2/spice.sock".into());
    assert_eq!(viewer.tunnel(&socket), Status::Ok);
    // Another endpoint, another key's display, no display there: one refusal, nothing
    // connected.
    let others = [
        (
            "viewer",
            Target::Tcp {
                host: "127.0.0.1".into(),
                port: 5904,
            },
        ),
        ("viewer", Target::Unix("/run/q/desk-2/vnc.sock".into())),
        ("alice", asked.clone()),
        ("mallory", asked.clone()),
    ];
    for (key, asked) in others {
        let world = viewer_world();
        let gateway = world.gateway(key, true);
        assert_eq!(gateway.tunnel(&asked), Status::Denied, "{key} {asked:?}");
        assert_eq!(world.shown().1, "permission denied");
        assert!(world.user.relayed_to.lock().unwrap().is_empty());
        let record = world.audit.records().pop().unwrap_or_default();
        assert_eq!(
            field(&record, "decision").as_deref(),
            Some("deny"),
            "{record}"
        );
        assert!(
            field(&record, "reason")
                .unwrap_or_default()
                .starts_with("no granted display at")
        );
    }
    // A display that does not answer is refused with the same words.
    let mut world = viewer_world();
    world.user.relay_ends = None;
    let viewer = world.gateway("viewer", true);
    assert_eq!(viewer.tunnel(&asked), Status::Denied);
    assert_eq!(world.shown().1, "permission denied");
}
