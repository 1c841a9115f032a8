//! The serial console as a person at a terminal meets it, against a real domain: a QEMU
//! guest (TCG) under the rig's session libvirtd, booting a 512-byte sector that echoes what
//! it receives on COM1 (rig/src/guest.rs). dromaius runs as a forced command behind
//! the real sshd (`ssh -tt`), or directly in a pty where the test needs the terminal itself.

use dromaius_rig as common;

use std::process::Command;
use std::time::Duration;

use common::guest::{Graphics, Guest};
use common::pty::Signal;
use common::pty::{Term, assert_none_left, flag_set, one_pid_with, send_signal, stty, terminal_of};
use common::world::{World, assert_ends, guest_world, row, summary};
use common::{Rig, unique};

const ALICE: &str = "dromaius (alice)> ";
/// Ctrl+]: virsh console's escape.
const ESCAPE: &str = "\x1d";

/// Waits until the console is attached and the guest answers, then checks one echo.
fn attached(guest: &Guest, term: &mut Term, word: &str) {
    term.expect("Escape character is ^]");
    guest.attach(term);
    term.send(&format!("{word}\r"));
    term.expect(&format!("ECHO: {word}"));
}

/// The virsh console process of this guest (its name is one virsh reads only as a name,
/// so dromaius hands it over as it is).
fn console_marker(guest: &Guest) -> String {
    format!("console --safe --domain {}", guest.name)
}

#[test]
fn console_attaches_echoes_and_returns_to_the_prompt() {
    let (guest, world) = guest_world(Graphics::None, None, "");
    let key = world.key("--key alice");
    let mut term = world.ssh_tt(&key);
    term.done(ALICE);
    term.line(&format!("console {}", guest.name));
    assert!(
        term.expect("Escape character is ^]")
            .contains(&format!("Connected to domain '{}'", guest.name))
    );
    guest.attach(&mut term);
    term.send("hello guest\r");
    term.expect("ECHO: hello guest");

    // Keys that would signal a process at a cooked terminal go to the guest instead, and a
    // resized terminal (ssh passes the new size on: SIGWINCH at the server) changes
    // nothing: the console stays attached through both.
    term.send("\x03\x1c\x1a");
    let ssh = one_pid_with(&key.private.display().to_string(), Duration::from_secs(5));
    stty(&terminal_of(ssh), &["rows", "50", "cols", "132"]);
    term.send("still here\r");
    // The end of the guest's ECHO line: the line, control keys first, reached it whole.
    term.expect("still here\r\n> ");

    term.send(ESCAPE);
    term.done(ALICE);
    term.line(&format!("status {}", guest.name));
    assert_ends(&term.done(ALICE), "running\r\n");
    term.line("exit");
    assert_eq!(term.exit_code(), 0);
    assert_eq!(
        summary(&world.records(3)),
        [
            row("console", &guest.name, "allow", 0),
            row("status", &guest.name, "allow", 0),
            row("exit", "-", "allow", 0),
        ]
    );
    assert_none_left(&console_marker(&guest), Duration::from_secs(5));
}

#[test]
fn one_shot_console_ends_with_the_escape() {
    let (guest, world) = guest_world(Graphics::None, None, "");
    let key = world.key("--key alice");
    let mut term = Term::spawn(
        world
            .rig
            .ssh_tty_command(&key, Some(&format!("console {}", guest.name))),
    );
    attached(&guest, &mut term, "one shot");
    term.send(ESCAPE);
    assert_eq!(term.exit_code(), 0);
    assert_none_left(&console_marker(&guest), Duration::from_secs(5));
    assert_none_left(&world.marker(), Duration::from_secs(5));
}

#[test]
fn console_on_a_shut_off_domain_says_it_is_not_running() {
    let rig = Rig::get();
    let guest = Guest::define(rig, &unique("off"));
    let world = World::on(
        &rig.qemu_uri(),
        &format!(r#"{{"alice": [{{"domains": ["{}"]}}]}}"#, guest.name),
        "",
    );
    let key = world.key("--key alice");
    let mut term = Term::spawn(
        world
            .rig
            .ssh_tty_command(&key, Some(&format!("console {}", guest.name))),
    );
    term.expect("dromaius: error: The domain is not running");
    assert_eq!(term.exit_code(), 1);
    assert_eq!(
        summary(&world.records(1)),
        [row("console", &guest.name, "allow", 1)]
    );
}

#[test]
fn a_second_console_is_told_the_first_holds_it() {
    let (guest, world) = guest_world(Graphics::None, None, "");
    let key = world.key("--key alice");
    let request = format!("console {}", guest.name);
    let mut first = Term::spawn(world.rig.ssh_tty_command(&key, Some(&request)));
    attached(&guest, &mut first, "first");

    let mut second = Term::spawn(world.rig.ssh_tty_command(&key, Some(&request)));
    second.expect(&format!(
        "dromaius: the console of {} is in use by another session",
        guest.name
    ));
    assert_eq!(second.exit_code(), 1);

    // The first session never noticed (no --force anywhere).
    first.send("first again\r");
    first.expect("ECHO: first again");
    first.send(ESCAPE);
    assert_eq!(first.exit_code(), 0);
}

#[test]
fn a_dropped_ssh_leaves_no_virsh_and_no_dromaius_behind() {
    let (guest, world) = guest_world(Graphics::None, None, "");
    let key = world.key("--key alice");
    // In a session at the prompt: the client dies mid-console.
    let mut term = world.ssh_tt(&key);
    term.done(ALICE);
    term.line(&format!("console {}", guest.name));
    attached(&guest, &mut term, "before the drop");
    one_pid_with(&console_marker(&guest), Duration::from_secs(5));
    term.kill();
    // virsh console ignores SIGHUP and SIGTERM: only dromaius's SIGKILL ends it.
    assert_none_left(&console_marker(&guest), Duration::from_secs(15));
    assert_none_left(&world.marker(), Duration::from_secs(15));
    let records = summary(&world.records(1));
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        (records[0].0.as_str(), records[0].2.as_str()),
        ("console", "allow")
    );

    // The console is free again: a new session attaches at once.
    let mut term = Term::spawn(
        world
            .rig
            .ssh_tty_command(&key, Some(&format!("console {}", guest.name))),
    );
    attached(&guest, &mut term, "after the drop");
    term.send(ESCAPE);
    assert_eq!(term.exit_code(), 0);
}

#[test]
fn a_hangup_or_sigterm_mid_console_kills_virsh_which_ignores_them() {
    let (guest, world) = guest_world(Graphics::None, None, "");
    for signal in [Signal::SIGHUP, Signal::SIGTERM] {
        // Directly in a pty that stays open: virsh has no hung-up terminal to notice, so
        // only dromaius's SIGKILL can end it.
        let mut term = world.spawn(&["--key", "alice"]);
        term.done(ALICE);
        term.line(&format!("console {}", guest.name));
        attached(&guest, &mut term, signal.as_str());
        let virsh = one_pid_with(&console_marker(&guest), Duration::from_secs(5));
        let dromaius = one_pid_with(&world.marker(), Duration::from_secs(5));
        send_signal(dromaius, signal);
        term.expect("dromaius: console interrupted");
        assert_eq!(term.exit_code(), 130, "{signal}");
        assert!(
            !std::path::Path::new(&format!("/proc/{virsh}")).exists(),
            "virsh {virsh} outlived dromaius ({signal})"
        );
        assert_none_left(&console_marker(&guest), Duration::from_secs(5));
    }
}

#[test]
fn the_console_is_not_bound_by_timeout_secs() {
    // The name lookup before the console is bound by timeout_secs like any virsh run, so
    // the limit leaves it room on a loaded machine; the console then outlives it twice over.
    let (guest, world) = guest_world(Graphics::None, None, r#""timeout_secs": 3,"#);
    let key = world.key("--key alice");
    let mut term = Term::spawn(
        world
            .rig
            .ssh_tty_command(&key, Some(&format!("console {}", guest.name))),
    );
    attached(&guest, &mut term, "at once");
    std::thread::sleep(Duration::from_secs(6));
    term.send("three seconds later\r");
    term.expect("ECHO: three seconds later");
    term.send(ESCAPE);
    assert_eq!(term.exit_code(), 0);
}

#[test]
fn without_a_terminal_the_console_is_refused_before_virsh_runs() {
    let (guest, world) = guest_world(Graphics::None, None, "");
    // `restrict` without `pty`, as for a key that is not meant to have a console.
    let key = world
        .rig
        .authorize_gateway(&world.config, "alice", "restrict");
    let request = format!("console {}", guest.name);
    // Plain ssh: no terminal, and dromaius says what to do about it.
    let out = world.rig.ssh(&key, Some(&request), b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "dromaius: console needs a terminal: connect with ssh -t (and the key needs the pty \
         option)\n"
    );
    // ssh -t with a key that lacks `pty`: sshd refuses the terminal and ssh gives up.
    let mut term = Term::spawn(world.rig.ssh_tty_command(&key, Some(&request)));
    term.expect("PTY allocation request failed");
    term.session.exp_eof().ok();
    // In neither case did a virsh console run: the guest's console is free.
    let mut term = Term::spawn(
        world
            .rig
            .ssh_tty_command(&world.key("--key alice"), Some(&request)),
    );
    attached(&guest, &mut term, "free");
    term.send(ESCAPE);
    assert_eq!(term.exit_code(), 0);
}

fn kill_virsh(guest: &Guest) {
    let pid = one_pid_with(&console_marker(guest), Duration::from_secs(5));
    send_signal(pid, Signal::SIGKILL);
}

#[test]
fn the_terminal_is_restored_when_virsh_is_killed_mid_console() {
    let (guest, world) = guest_world(Graphics::None, None, "");

    // One-shot: dromaius exits after virsh dies; the terminal must be as it was before.
    let mut command = Command::new(common::dromaius_bin());
    command
        .arg("--config")
        .arg(&world.config)
        .args(["--key", "alice"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("SSH_ORIGINAL_COMMAND", format!("console {}", guest.name));
    // A new pty is cooked: canonical input, signals, output processing.
    let cooked = ["icanon", "isig", "iexten", "icrnl", "opost", "onlcr"];
    let mut term = Term::spawn(command);
    term.expect("Escape character is ^]");
    let tty = terminal_of(one_pid_with(&world.marker(), Duration::from_secs(5)));
    attached_already(&guest, &mut term, "raw");
    let during = stty(&tty, &[]);
    // (virsh's raw mode leaves onlcr alone: opost off already stops it.)
    for flag in &cooked[..5] {
        assert!(!flag_set(&during, flag), "virsh left {flag} on: {during}");
    }
    kill_virsh(&guest);
    term.expect("dromaius: virsh console failed");
    assert_eq!(term.exit_code(), 1);
    let after = stty(&tty, &[]);
    for flag in cooked {
        assert!(flag_set(&after, flag), "{flag} not restored: {after}");
    }

    // At the prompt: back from the killed console, output is cooked again ("\r\n").
    let mut term = world.spawn(&["--key", "alice"]);
    term.done(ALICE);
    term.line(&format!("console {}", guest.name));
    attached(&guest, &mut term, "raw again");
    kill_virsh(&guest);
    term.expect("dromaius: virsh console failed");
    term.done(ALICE);
    term.line(&format!("status {}", guest.name));
    assert_ends(&term.done(ALICE), "\r\nrunning\r\n");
    term.line("exit");
    assert_eq!(term.exit_code(), 0);
}

/// Like [`attached`] once "Escape character" has already been seen.
fn attached_already(guest: &Guest, term: &mut Term, word: &str) {
    guest.attach(term);
    term.send(&format!("{word}\r"));
    term.expect(&format!("ECHO: {word}"));
}
