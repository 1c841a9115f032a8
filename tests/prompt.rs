//! The interactive prompt as a person at a terminal meets it: the built binary in a real
//! pseudo-terminal, run directly and as a forced command behind the real sshd with
//! `ssh -tt`, against the rig's libvirtd (test driver). What ran is read from the audit
//! records and from virsh directly, never from dromaius's own word.

use dromaius_rig as common;

use std::time::Duration;

use common::pty::Signal;
use common::pty::{Term, assert_none_left, flag_set, one_pid_with, send_signal, stty, terminal_of};
use common::world::{World, assert_ends, make_executable, row, summary};
use common::{Rig, unique, write_file};

const ALICE: &str = "dromaius (alice)> ";
const UP: &str = "\x1b[A";
const CTRL_C: &str = "\x03";
const CTRL_D: &str = "\x04";

#[test]
fn the_prompt_names_the_key_and_runs_each_line_like_a_one_shot_request() {
    let web = unique("web");
    let world = World::new(&format!(r#"{{"alice": [{{"domains": ["{web}"]}}]}}"#), "");
    world.rig.define(&web);
    let mut term = world.spawn(&["--key", "alice"]);

    term.done(ALICE);
    term.line(&format!("status {web}"));
    assert_ends(&term.done(ALICE), "shut off\r\n");
    term.line(&format!("start {web}"));
    assert_ends(&term.done(ALICE), &format!("Domain '{web}' started\r\n"));
    assert_eq!(world.rig.state(&web), "running");
    // Failures are reported as in one-shot mode and the session goes on.
    term.line("destroy no-such-domain");
    assert_ends(&term.done(ALICE), "dromaius: permission denied\r\n");
    term.line("bogus");
    assert_ends(
        &term.done(ALICE),
        "dromaius: unknown command \"bogus\"; type \"help\" for the commands you may use\r\n",
    );
    term.line("");
    term.done(ALICE);
    term.line("exit");
    assert_eq!(term.exit_code(), 0);

    assert_eq!(
        summary(&world.records(5)),
        [
            row("status", &web, "allow", 0),
            row("start", &web, "allow", 0),
            row("destroy", "no-such-domain", "deny", 77),
            row("bogus", "-", "invalid", 2),
            row("exit", "-", "allow", 0),
        ]
    );
    assert_eq!(world.rig.state(&web), "running");
}

#[test]
fn ctrl_d_ends_with_the_last_status_and_exit_or_quit_with_zero() {
    let world = World::new(r#"{"alice": [{"domains": ["x-*"]}]}"#, "");
    let mut term = world.spawn(&["--key", "alice"]);
    term.done(ALICE);
    term.line("status y-not-granted");
    term.expect("permission denied");
    term.done(ALICE);
    term.send(CTRL_D);
    assert_eq!(term.exit_code(), 77);

    for word in ["exit", "quit"] {
        let mut term = world.spawn(&["--key", "alice"]);
        term.done(ALICE);
        term.line("status y-not-granted");
        term.done(ALICE);
        term.line(word);
        assert_eq!(term.exit_code(), 0, "{word}");
    }
    // Ctrl-D on a line that holds text deletes, it does not end the session.
    let mut term = world.spawn(&["--key", "alice"]);
    term.done(ALICE);
    term.send("help");
    term.send("\x01"); // Ctrl-A: to the start of the line, then Ctrl-D deletes the `h`
    term.send(CTRL_D);
    term.send("\r");
    term.expect("unknown command \"elp\"");
    term.done(ALICE);
    term.send(CTRL_D);
    assert_eq!(term.exit_code(), 2);
}

#[test]
fn ctrl_c_clears_the_line_and_gives_a_new_prompt() {
    let web = unique("web");
    let world = World::new(&format!(r#"{{"alice": [{{"domains": ["{web}"]}}]}}"#), "");
    world.rig.define(&web);
    world.rig.start(&web);
    let mut term = world.spawn(&["--key", "alice"]);
    term.done(ALICE);
    term.send(&format!("destroy {web}"));
    term.send(CTRL_C);
    term.done(ALICE);
    // The cleared line is gone: Enter now asks for nothing, and nothing was destroyed.
    term.line("");
    term.done(ALICE);
    term.line(&format!("status {web}"));
    assert_ends(&term.done(ALICE), "running\r\n");
    term.send(CTRL_D);
    assert_eq!(term.exit_code(), 0);
    assert_eq!(world.rig.state(&web), "running");
    assert_eq!(
        summary(&world.records(1)),
        [row("status", &web, "allow", 0)]
    );
}

#[test]
fn history_recalls_earlier_lines_and_is_never_written_to_a_file() {
    let web = unique("web");
    let world = World::new(&format!(r#"{{"alice": [{{"domains": ["{web}"]}}]}}"#), "");
    world.rig.define(&web);
    let mut term = world.spawn(&["--key", "alice"]);
    term.done(ALICE);
    term.line(&format!("status {web}"));
    term.done(ALICE);
    term.line("help");
    term.done(ALICE);
    // Up twice: the status line again.
    term.send(UP);
    term.send(UP);
    term.send("\r");
    assert_ends(&term.done(ALICE), "shut off\r\n");
    term.line("exit");
    assert_eq!(term.exit_code(), 0);
    let commands: Vec<String> = summary(&world.records(4))
        .into_iter()
        .map(|(command, ..)| command)
        .collect();
    assert_eq!(commands, ["status", "help", "status", "exit"]);
    // Nothing was written to HOME (or the working directory, which is HOME here).
    let left: Vec<_> = std::fs::read_dir(&world.home).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn tab_completes_only_granted_commands_and_domains() {
    let p = format!("tab{}", std::process::id());
    let (web, db, shared, theirs) = (
        format!("{p}-alice-web"),
        format!("{p}-alice-db"),
        format!("{p}-shared"),
        format!("{p}-bob-web"),
    );
    let world = World::new(
        &format!(
            r#"{{"alice": [{{"domains": ["{p}-alice-*"], "commands": ["start", "status"]}},
                           {{"domains": ["{shared}"], "commands": ["status"]}}],
                "bob": [{{"domains": ["{p}-bob-*"]}}]}}"#
        ),
        "",
    );
    for name in [&web, &db, &shared, &theirs] {
        world.rig.define(name);
    }
    let mut term = world.spawn(&["--key", "alice"]);
    term.done(ALICE);

    // Commands: only those the key may use somewhere, and the session words.
    term.send("\t\t");
    let shown = term.listing(ALICE, "");
    for word in ["start", "status", "list", "help", "exit", "quit"] {
        assert!(shown.contains(word), "{word} not offered: {shown:?}");
    }
    for word in ["destroy", "reset", "reboot", "shutdown", "console"] {
        assert!(!shown.contains(word), "{word} offered: {shown:?}");
    }

    // `status `: every granted existing domain, never bob's.
    term.send(&format!("status {p}\t\t"));
    let shown = term.listing(ALICE, &format!("status {p}-"));
    for name in [&web, &db, &shared] {
        assert!(
            shown.contains(name.as_str()),
            "{name} not offered: {shown:?}"
        );
    }
    assert!(!shown.contains(&theirs), "{theirs} offered: {shown:?}");
    term.send(CTRL_C);
    term.done(ALICE);

    // `start `: not the domain granted only `status`.
    term.send(&format!("start {p}\t\t"));
    let shown = term.listing(ALICE, &format!("start {p}-alice-"));
    assert!(shown.contains(&web) && shown.contains(&db), "{shown:?}");
    assert!(
        !shown.contains(&shared),
        "{shared} offered for start: {shown:?}"
    );
    assert!(!shown.contains(&theirs), "{theirs} offered: {shown:?}");
    term.send(CTRL_C);
    term.done(ALICE);

    // A unique prefix completes the command, then the domain; Enter runs what was completed.
    term.send("statu\t");
    term.send(&format!("{p}-alice-w\t"));
    term.send("\r");
    assert_ends(&term.done(ALICE), "shut off\r\n");
    // An ungranted prefix completes to nothing, so the line stays as typed.
    term.send(&format!("start {p}-bob\t\r"));
    assert_ends(&term.done(ALICE), "permission denied\r\n");
    // A command not granted completes no domain at all.
    term.send(&format!("destroy {p}\t\t\r"));
    assert_ends(&term.done(ALICE), "permission denied\r\n");
    term.line("exit");
    assert_eq!(term.exit_code(), 0);

    // Each Tab that lists domains is audited too (the listing it took), as a routine record.
    let tab = |command: &str| row(command, "-", "allow", 0);
    assert_eq!(
        summary(&world.records(8)),
        [
            tab("status"),
            tab("start"),
            tab("status"),
            row("status", &web, "allow", 0),
            tab("start"),
            row("start", &format!("{p}-bob"), "deny", 77),
            row("destroy", &p, "deny", 77),
            row("exit", "-", "allow", 0),
        ]
    );
    assert_eq!(world.rig.state(&theirs), "shut off");
}

#[test]
fn bytes_that_are_not_text_are_refused_like_a_one_shot_request() {
    let web = unique("web");
    let world = World::new(&format!(r#"{{"alice": [{{"domains": ["{web}"]}}]}}"#), "");
    world.rig.define(&web);
    let mut term = world.spawn(&["--key", "alice"]);
    term.done(ALICE);

    // Ctrl-V puts the next key in the line as it is: here ESC, the start of a sequence.
    term.send(&format!("status {web}\x16\x1b[2J\r"));
    assert_ends(
        &term.done(ALICE),
        "dromaius: request holds a control character; type \"help\" for the commands you may use\r\n",
    );
    // A byte that is not UTF-8 ends the line there; what follows it on that line is
    // thrown away, not run as a request of its own.
    let mut bytes = b"status \xff\xfestatus ".to_vec();
    bytes.extend_from_slice(format!("{web}\r").as_bytes());
    term.send_bytes(&bytes);
    let shown = term.done(ALICE);
    assert!(
        shown.ends_with(
            "dromaius: request is not valid UTF-8; type \"help\" for the commands you may use\r\n"
        ),
        "{shown:?}"
    );
    // A line longer than a request: typing stops one byte past the limit, Enter refuses it.
    term.send(&"x".repeat(5000));
    term.send("\r");
    let shown = term.done(ALICE);
    assert!(
        shown.ends_with("dromaius: request too long (4097 bytes, at most 4096); type \"help\" for the commands you may use\r\n"),
        "{}",
        &shown[shown.len().saturating_sub(300)..]
    );
    // And the session is still good.
    term.line(&format!("status {web}"));
    assert_ends(&term.done(ALICE), "shut off\r\n");
    term.send(CTRL_D);
    assert_eq!(term.exit_code(), 0);

    let records = summary(&world.records(4));
    assert_eq!(
        records
            .iter()
            .map(|(_, _, decision, outcome)| format!("{decision} {outcome}"))
            .collect::<Vec<_>>(),
        ["invalid 2", "invalid 2", "invalid 2", "allow 0"],
        "{records:?}"
    );
}

#[test]
fn a_bound_session_names_its_host_and_offers_only_it() {
    let host = format!("{}.example.local", unique("vhost"));
    let short = host.split('.').next().unwrap().to_owned();
    let other = unique("other");
    let world = World::new(
        r#"{"ops": [{"domains": ["*"]}]}"#,
        &format!(r#""AllowedHosts": ["{host}"],"#),
    );
    world.rig.define(&host);
    world.rig.define(&other);
    let prompt = format!("dromaius ({short})> ");
    let mut term = world.spawn(&["-cmd", "interactive", "-host", &host]);
    term.done(&prompt);
    term.line("status");
    assert_ends(&term.done(&prompt), "shut off\r\n");
    // Tab has exactly one domain to offer (another one exists): it completes to it.
    term.send("status \t");
    term.expect(&format!("{prompt}status {host}\r"));
    term.send(CTRL_C);
    term.done(&prompt);
    term.line(&format!("status {other}"));
    assert_ends(&term.done(&prompt), "permission denied\r\n");
    term.send(CTRL_D);
    assert_eq!(term.exit_code(), 77);
}

#[test]
fn a_resized_terminal_keeps_the_prompt_working() {
    let web = unique("web");
    let world = World::new(&format!(r#"{{"alice": [{{"domains": ["{web}"]}}]}}"#), "");
    world.rig.define(&web);
    let mut term = world.spawn(&["--key", "alice"]);
    term.done(ALICE);
    let pid = one_pid_with(&world.config.display().to_string(), Duration::from_secs(5));
    let tty = terminal_of(pid);
    term.send("stat");
    // The kernel sends SIGWINCH to the foreground process group: dromaius.
    stty(&tty, &["rows", "40", "cols", "100"]);
    stty(&tty, &["rows", "20", "cols", "30"]);
    term.send(&format!("us {web}\r"));
    assert_ends(&term.done(ALICE), "shut off\r\n");
    term.line("exit");
    assert_eq!(term.exit_code(), 0);
}

#[test]
fn a_dumb_terminal_gets_the_prompt_without_line_editing() {
    let web = unique("web");
    let world = World::new(&format!(r#"{{"alice": [{{"domains": ["{web}"]}}]}}"#), "");
    world.rig.define(&web);
    let mut command = world.command(&["--key", "alice"]);
    command.env("TERM", "dumb");
    let mut term = Term::spawn(command);
    term.expect(ALICE);
    term.send(&format!("status {web}\n"));
    assert_eq!(term.expect(ALICE), "shut off\r\n");
    term.send("bogus\n");
    assert!(term.expect(ALICE).contains("unknown command"));
    term.send(CTRL_D);
    assert_eq!(term.exit_code(), 2);
}

#[test]
fn sigterm_at_the_prompt_ends_the_session_and_restores_the_terminal() {
    let world = World::new(r#"{"alice": [{"domains": ["x"]}]}"#, "");
    let mut term = world.spawn(&["--key", "alice"]);
    term.done(ALICE);
    let pid = one_pid_with(&world.config.display().to_string(), Duration::from_secs(5));
    let tty = terminal_of(pid);
    // The line editor holds the terminal in raw mode while it reads.
    assert!(!flag_set(&stty(&tty, &[]), "icanon"));
    send_signal(pid, Signal::SIGTERM);
    assert_eq!(term.exit_code(), 128 + 15);
    let after = stty(&tty, &[]);
    for flag in ["icanon", "isig", "iexten", "icrnl"] {
        assert!(flag_set(&after, flag), "{flag} not restored: {after}");
    }
}

#[test]
fn piped_stdin_gets_no_prompt() {
    let web = unique("web");
    let world = World::new(&format!(r#"{{"alice": [{{"domains": ["{web}"]}}]}}"#), "");
    world.rig.define(&web);
    let key = world.key("--key alice");
    let out = world
        .rig
        .ssh(&key, None, format!("status {web}\nexit\n").as_bytes());
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "shut off\n");
    // (Not compared to "": root's shell rc on this kind of machine may add its own noise.)
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("dromaius") && !stderr.contains('\x1b'),
        "{stderr}"
    );
}

#[test]
fn ssh_tt_gives_the_prompt_with_completion_history_and_ctrl_c() {
    let p = format!("ssh{}", std::process::id());
    let (web, db, theirs) = (
        format!("{p}-alice-web"),
        format!("{p}-alice-db"),
        format!("{p}-bob-web"),
    );
    let world = World::new(
        &format!(
            r#"{{"alice": [{{"domains": ["{p}-alice-*"]}}], "bob": [{{"domains": ["{theirs}"]}}]}}"#
        ),
        "",
    );
    for name in [&web, &db, &theirs] {
        world.rig.define(name);
    }
    let key = world.key("--key alice");
    let mut term = world.ssh_tt(&key);
    term.done(ALICE);

    term.send(&format!("status {p}\t\t"));
    let shown = term.listing(ALICE, &format!("status {p}-alice-"));
    assert!(shown.contains(&web) && shown.contains(&db), "{shown:?}");
    assert!(!shown.contains(&theirs), "{theirs} offered: {shown:?}");
    term.send(CTRL_C);
    term.done(ALICE);
    // Line editing: a typo rubbed out, the command and the domain completed.
    term.send(&format!("stz\x7fart\x7f\t{p}-alice-w\t\r"));
    assert_ends(&term.done(ALICE), &format!("Domain '{web}' started\r\n"));
    term.line(&format!("status {web}"));
    assert_ends(&term.done(ALICE), "running\r\n");
    term.send(&format!("destroy {web}"));
    term.send(CTRL_C);
    term.done(ALICE);
    term.send(UP);
    term.send("\r");
    assert_ends(&term.done(ALICE), "running\r\n");
    term.line(&format!("status {theirs}"));
    assert_ends(&term.done(ALICE), "permission denied\r\n");
    term.line("exit");
    assert_eq!(term.exit_code(), 0);
    assert_eq!(world.rig.state(&web), "running");
    // Each Tab that lists domains is audited too (the listing it took).
    let tab = |command: &str| row(command, "-", "allow", 0);
    assert_eq!(
        summary(&world.records(7)),
        [
            tab("status"),
            tab("start"),
            row("start", &web, "allow", 0),
            row("status", &web, "allow", 0),
            row("status", &web, "allow", 0),
            row("status", &theirs, "deny", 77),
            row("exit", "-", "allow", 0),
        ]
    );
}

#[test]
fn ssh_tt_bound_session_ends_on_ctrl_d_with_the_last_status() {
    let host = format!("{}.example.local", unique("vhost"));
    let short = host.split('.').next().unwrap().to_owned();
    let world = World::new(
        r#"{"ops": [{"domains": ["*"]}]}"#,
        &format!(r#""AllowedHosts": ["{host}"],"#),
    );
    world.rig.define(&host);
    let key = world.key(&format!("-cmd interactive -host {host}"));
    let prompt = format!("dromaius ({short})> ");
    let mut term = world.ssh_tt(&key);
    term.done(&prompt);
    term.line("start");
    assert_ends(&term.done(&prompt), "started\r\n");
    term.line("start");
    assert!(term.done(&prompt).contains("already active"));
    term.send(CTRL_D);
    assert_eq!(term.exit_code(), 1);
    assert_eq!(world.rig.state(&host), "running");
}

#[test]
fn ctrl_c_stops_a_running_command_and_a_dropped_connection_leaves_nothing() {
    // At the prompt: the client is killed, sshd hangs up, dromaius must go.
    let world = World::new(r#"{"alice": [{"domains": ["*"]}]}"#, "");
    let marker = world.config.display().to_string();
    let mut term = world.ssh_tt(&world.key("--key alice"));
    term.done(ALICE);
    one_pid_with(&marker, Duration::from_secs(5));
    term.kill();
    assert_none_left(&marker, Duration::from_secs(10));

    // While a command runs: a virsh that hangs (with a child of its own) dies with it.
    let rig = Rig::get();
    let sleeper = format!("600.{}", std::process::id());
    let fake = write_file(
        "hanging-virsh",
        &format!("#!/bin/sh\n/bin/sleep {sleeper}\n"),
    );
    make_executable(&fake);
    let config = write_file(
        "hang.json",
        &format!(
            r#"{{"virsh": "{}", "connect": "test:///default", "keys": {{"alice": [{{"domains": ["*"]}}]}}}}"#,
            fake.display()
        ),
    );
    let key = rig.authorize_gateway(&config, "alice", "restrict,pty");
    let mut term = Term::spawn(rig.ssh_tty_command(&key, None));
    term.done(ALICE);
    // Ctrl-C while a command runs stops it (virsh and its child) and gives the prompt back.
    term.line("start web1");
    one_pid_with(&sleeper, Duration::from_secs(10));
    term.send(CTRL_C);
    assert_ends(&term.done(ALICE), "dromaius: start interrupted\r\n");
    assert_none_left(&sleeper, Duration::from_secs(10));
    term.line("start web1");
    one_pid_with(&sleeper, Duration::from_secs(10));
    term.kill();
    assert_none_left(&config.display().to_string(), Duration::from_secs(10));
    assert_none_left(&fake.display().to_string(), Duration::from_secs(10));
    assert_none_left(&sleeper, Duration::from_secs(10));
}
