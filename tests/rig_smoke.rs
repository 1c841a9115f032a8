//! Proves the shared rig itself works, with plain virsh and plain ssh (no dromaius).

use dromaius_rig as common;

use common::{AuditSink, Rig, describe, stdout, unique};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

#[test]
fn rig_comes_up() {
    let rig = Rig::get();
    eprintln!(
        "rig up in {:?} at {}",
        rig.startup_time(),
        rig.dir().display()
    );
    let out = rig.virsh(&["uri"]);
    assert!(out.status.success(), "{}", common::describe(&out));
    assert_eq!(stdout(&out).trim(), rig.test_uri());
    // The same daemon also serves its QEMU driver (used later for a real guest).
    let out = rig.virsh_uri(&rig.qemu_uri(), &["uri"]);
    assert!(out.status.success(), "{}", common::describe(&out));
}

// The two define tests run concurrently in the same binary and share the rig.
#[test]
fn define_and_start_a() {
    let rig = Rig::get();
    let name = unique("alpha");
    rig.define(&name);
    assert_eq!(rig.state(&name), "shut off");
    rig.start(&name);
    assert_eq!(rig.state(&name), "running");
    rig.destroy(&name);
    assert_eq!(rig.state(&name), "shut off");
}

#[test]
fn define_b_stays_shut_off() {
    let rig = Rig::get();
    let name = unique("beta");
    rig.define(&name);
    assert_eq!(rig.state(&name), "shut off");
}

/// Every virsh call above is its own connection; the test driver would reset to its
/// default when the last one closed, were the rig not holding one open.
#[test]
fn state_survives_between_connections() {
    let rig = Rig::get();
    let name = unique("keep");
    rig.define(&name);
    rig.start(&name);
    for _ in 0..3 {
        let out = rig.virsh(&["list", "--all", "--name"]);
        assert!(stdout(&out).lines().any(|l| l == name), "{}", stdout(&out));
    }
    assert_eq!(rig.state(&name), "running");
}

/// `state` looks a name up by exact match, so a domain named "1" is not the domain whose
/// id is 1 (the test driver's own `test` domain, running).
#[test]
fn state_is_not_fooled_by_id_like_names() {
    let rig = Rig::get();
    let name = format!("{}", 900_000 + std::process::id());
    rig.define(&name);
    assert_eq!(rig.state(&name), "shut off");
    assert_eq!(rig.state("test"), "running");
}

#[test]
fn ssh_runs_the_forced_command() {
    let rig = Rig::get();
    let key = rig.authorize("/bin/echo hello", "restrict");
    let out = rig.ssh(&key, None, b"");
    assert!(out.status.success(), "{}", common::describe(&out));
    assert_eq!(stdout(&out), "hello\n");
}

#[test]
fn ssh_original_command_reaches_the_forced_command() {
    let rig = Rig::get();
    let key = rig.authorize("/usr/bin/printenv SSH_ORIGINAL_COMMAND", "restrict");
    let out = rig.ssh(&key, Some("status web --x 'y z'"), b"");
    assert!(out.status.success(), "{}", common::describe(&out));
    assert_eq!(stdout(&out), "status web --x 'y z'\n");

    // No request: the variable is unset, so printenv exits 1 and prints nothing.
    let out = rig.ssh(&key, None, b"");
    assert_eq!(out.status.code(), Some(1), "{}", common::describe(&out));
    assert_eq!(stdout(&out), "");

    // An empty request is no request at all: ssh sends no exec, sshd sets no variable.
    let out = rig.ssh(&key, Some(""), b"");
    assert_eq!(out.status.code(), Some(1), "{}", common::describe(&out));
    // A blank one is a request: the variable is set to it.
    let out = rig.ssh(&key, Some(" "), b"");
    assert_eq!(stdout(&out), " \n", "{}", common::describe(&out));
}

#[test]
fn ssh_feeds_stdin_and_passes_exit_status() {
    let rig = Rig::get();
    let key = rig.authorize("/bin/sh -c \"cat; exit 7\"", "restrict");
    let out = rig.ssh(&key, None, b"line one\nline two\n");
    assert_eq!(out.status.code(), Some(7), "{}", common::describe(&out));
    assert_eq!(stdout(&out), "line one\nline two\n");
}

/// Root may log in only through a command= key (PermitRootLogin forced-commands-only),
/// and an unknown key gets nowhere.
#[test]
fn ssh_refuses_root_without_forced_command() {
    let rig = Rig::get();
    let plain = rig.authorize_without_command("restrict");
    let out = rig.ssh(&plain, Some("/bin/echo pwned"), b"");
    assert_eq!(out.status.code(), Some(255), "{}", common::describe(&out));
    assert_eq!(stdout(&out), "");

    let stranger = rig.stranger_key();
    let out = rig.ssh(&stranger, Some("/bin/echo pwned"), b"");
    assert_eq!(out.status.code(), Some(255), "{}", common::describe(&out));
}

#[test]
fn many_ssh_sessions_in_parallel() {
    let rig = Rig::get();
    let key = rig.authorize("/usr/bin/printenv SSH_ORIGINAL_COMMAND", "restrict");
    let started = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let key = &key;
                s.spawn(move || rig.ssh(key, Some(&format!("n{i}")), b""))
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let out = h.join().unwrap();
            assert_eq!(
                stdout(&out),
                format!("n{i}\n"),
                "{}",
                common::describe(&out)
            );
        }
    });
    eprintln!("8 parallel ssh round trips in {:?}", started.elapsed());
}

#[test]
fn audit_sink_receives_datagrams() {
    let sink = AuditSink::new();
    assert!(sink.records(0, Duration::ZERO).is_empty());
    let client = UnixDatagram::unbound().unwrap();
    client.send_to(b"<86>first record", sink.path()).unwrap();
    client
        .send_to("second \u{e9}".as_bytes(), sink.path())
        .unwrap();
    let records = sink.records(2, Duration::from_secs(5));
    assert_eq!(records, vec!["<86>first record", "second \u{e9}"]);
    // Waiting for more than arrive returns what there is after the wait.
    let started = Instant::now();
    assert_eq!(sink.records(3, Duration::from_millis(200)).len(), 2);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[test]
fn write_file_makes_distinct_readable_files() {
    let a = common::write_file("dromaius.toml", "a = 1\n");
    let b = common::write_file("dromaius.toml", "b = 2\n");
    assert_ne!(a, b);
    assert_eq!(std::fs::read_to_string(&a).unwrap(), "a = 1\n");
    assert!(a.starts_with(std::env::temp_dir()));
}

#[test]
fn the_login_shell_runs_no_rc_file() {
    // Root's ~/.bashrc (pyenv on this image) is hidden from the rig's sshd, so a forced
    // command sees sshd's environment only and nothing is printed before it runs.
    let rig = Rig::get();
    let key = rig.authorize("/usr/bin/printenv", "restrict");
    let out = rig.ssh(&key, None, b"");
    assert!(out.status.success(), "{}", describe(&out));
    let env = String::from_utf8_lossy(&out.stdout);
    assert!(env.contains("SSH_CONNECTION="), "{env}");
    assert!(!env.contains("PYENV"), "root's ~/.bashrc ran: {env}");
    assert!(out.stderr.is_empty(), "{}", describe(&out));
}

#[test]
fn more_libvirtds_and_sshds_come_up_each_on_its_own() {
    let rig = Rig::get();
    let other = common::Libvirtd::start();
    assert_ne!(other.socket(), rig.socket());
    let name = unique("elsewhere");
    other.define(&name);
    assert_eq!(other.state(&name), "shut off");
    assert!(
        !rig.domains().iter().any(|(_, n)| *n == name),
        "a domain of the second libvirtd showed up in the rig's"
    );
    assert!(!other.has_ended());

    let sshd = common::Sshd::start("ExposeAuthInfo yes\n");
    assert_ne!(sshd.port(), rig.ssh_port());
    let key = sshd.authorize("echo \"$SSH_USER_AUTH\"", "restrict");
    let out = sshd.ssh(&key, None, b"");
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stdout(&out).starts_with("/tmp/sshauth."),
        "{}",
        describe(&out)
    );
    // A key of the rig's own sshd is not one of the new sshd's.
    let rig_key = rig.authorize("true", "restrict");
    assert_eq!(sshd.ssh(&rig_key, None, b"").status.code(), Some(255));
}
