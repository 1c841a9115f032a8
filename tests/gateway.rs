//! The gateway as users meet it: the built binary as an `authorized_keys` forced command
//! behind a real sshd, acting on a real libvirtd (test driver). Domain states are checked
//! with virsh directly, never through dromaius.

use dromaius_rig as common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{AuditSink, Rig, SshKey, code, dromaius_bin, stderr, stdout, unique, write_file};

/// A config, an audit socket and keys for one test, on the shared rig.
struct World {
    rig: &'static Rig,
    audit: AuditSink,
    config: PathBuf,
}

impl World {
    /// `keys` is the JSON object of the config's `keys`; `connect` is the rig's test URI.
    fn new(keys: &str) -> World {
        let rig = Rig::get();
        let audit = AuditSink::new();
        let config = format!(
            r#"{{ "virsh": "/usr/bin/virsh", "connect": "{}", "syslog_socket": "{}", "keys": {keys} }}"#,
            rig.test_uri(),
            audit.path().display()
        );
        World {
            rig,
            config: write_file("dromaius.json", &config),
            audit,
        }
    }

    /// A key whose forced command runs dromaius with `args` and this world's config.
    fn key(&self, args: &str) -> SshKey {
        forced_key(self.rig, &self.config, args)
    }

    fn records(&self, at_least: usize) -> Vec<String> {
        self.audit.records(at_least, Duration::from_secs(5))
    }
}

/// A key whose forced command runs dromaius with `config` and `args`, under `restrict`.
fn forced_key(rig: &Rig, config: &Path, args: &str) -> SshKey {
    let command = format!(
        "{} --config {} {args}",
        dromaius_bin().display(),
        config.display()
    );
    rig.authorize(&command, "restrict")
}

/// Every line dromaius writes on stderr starts with `dromaius: `.
fn assert_prefixed(out: &Output) {
    for line in stderr(out).lines() {
        assert!(
            line.starts_with("dromaius: "),
            "unprefixed stderr line {line:?}"
        );
    }
}

#[test]
fn allowed_start_boots_the_domain_and_is_audited() {
    let web = unique("web");
    let world = World::new(&format!(r#"{{"alice": [{{"domains": ["{web}"]}}]}}"#));
    world.rig.define(&web);
    let alice = world.key("--key alice");

    let out = world.rig.ssh(&alice, Some(&format!("start {web}")), b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("Domain '{web}' started\n"));
    assert_eq!(world.rig.state(&web), "running");

    let records = world.records(1);
    assert_eq!(records.len(), 1, "{records:?}");
    let record = &records[0];
    assert!(record.starts_with("<86>"), "authpriv.info: {record}");
    assert!(record.contains("dromaius["), "{record}");
    for field in [
        "key=\"alice\"",
        "client=\"127.0.0.1 port ",
        "command=\"start\"",
        &format!("domain=\"{web}\""),
        "decision=allow",
        "outcome=0",
    ] {
        assert!(record.contains(field), "{field} missing in {record}");
    }
}

#[test]
fn every_action_runs_by_name_and_reports_the_name() {
    let web = unique("web");
    let world = World::new(&format!(r#"{{"ops": [{{"domains": ["{web}"]}}]}}"#));
    world.rig.define(&web);
    let ops = world.key("--key ops");
    let run = |request: &str| {
        let out = world.rig.ssh(&ops, Some(&format!("{request} {web}")), b"");
        assert_eq!(code(&out), Some(0), "{request}: {}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(run("status"), "shut off\n");
    assert_eq!(run("start"), format!("Domain '{web}' started\n"));
    assert_eq!(run("status"), "running\n");
    // virsh names the domain by the UUID it was given; the user sees the name.
    assert_eq!(run("reboot"), format!("Domain '{web}' is being rebooted\n"));
    assert_eq!(run("reset"), format!("Domain '{web}' was reset\n"));
    assert_eq!(world.rig.state(&web), "running");
    assert_eq!(run("destroy"), format!("Domain '{web}' destroyed\n"));
    assert_eq!(world.rig.state(&web), "shut off");
    run("start");
    assert_eq!(
        run("shutdown"),
        format!("Domain '{web}' is being shutdown\n")
    );
}

#[test]
fn ungranted_domain_is_denied_like_a_missing_one() {
    let mine = unique("alice");
    let theirs = unique("bob");
    let world = World::new(&format!(
        r#"{{"alice": [{{"domains": ["{mine}"]}}], "bob": [{{"domains": ["{theirs}"]}}]}}"#
    ));
    world.rig.define(&mine);
    world.rig.define(&theirs);
    world.rig.start(&theirs);
    let alice = world.key("--key alice");

    let existing = world
        .rig
        .ssh(&alice, Some(&format!("destroy {theirs}")), b"");
    let missing = world
        .rig
        .ssh(&alice, Some("destroy no-such-domain-anywhere"), b"");
    for out in [&existing, &missing] {
        assert_eq!(code(out), Some(77));
        assert_eq!(stderr(out), "dromaius: permission denied\n");
        assert_eq!(stdout(out), "");
    }
    assert_eq!(world.rig.state(&theirs), "running");
    let records = world.records(2);
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(
        records
            .iter()
            .all(|r| r.contains("decision=deny outcome=77")),
        "{records:?}"
    );
}

#[test]
fn a_command_outside_the_grant_is_denied() {
    let web = unique("web");
    let world = World::new(&format!(
        r#"{{"alice": [{{"domains": ["{web}"], "commands": ["start", "status"]}}]}}"#
    ));
    world.rig.define(&web);
    world.rig.start(&web);
    let alice = world.key("--key alice");
    for request in ["destroy", "reset", "reboot", "shutdown", "console"] {
        let out = world
            .rig
            .ssh(&alice, Some(&format!("{request} {web}")), b"");
        assert_eq!(code(&out), Some(77), "{request}");
        assert_eq!(stderr(&out), "dromaius: permission denied\n");
    }
    assert_eq!(world.rig.state(&web), "running");
}

#[test]
fn a_domain_named_like_an_id_reaches_only_itself() {
    // The test driver's own domain `test` runs with id 1, for the whole rig.
    let world = World::new(r#"{"alice": [{"domains": ["1"]}]}"#);
    world.rig.define("1");
    assert_eq!(world.rig.state("test"), "running");
    let alice = world.key("--key alice");

    let out = world.rig.ssh(&alice, Some("status 1"), b"");
    assert_eq!(
        (code(&out), stdout(&out)),
        (Some(0), "shut off\n".into()),
        "{}",
        stderr(&out)
    );
    let out = world.rig.ssh(&alice, Some("destroy 1"), b"");
    assert_eq!(
        code(&out),
        Some(1),
        "destroying the shut-off domain named 1 fails"
    );
    assert_prefixed(&out);
    assert_eq!(world.rig.state("test"), "running", "id 1 was not touched");
    // `+1` and `01` parse as id 1 in virsh; here they are names nobody was granted.
    for alias in ["+1", "01", "001"] {
        let out = world
            .rig
            .ssh(&alice, Some(&format!("destroy {alias}")), b"");
        assert_eq!(code(&out), Some(77), "{alias}");
    }
    assert_eq!(world.rig.state("test"), "running");
}

#[test]
fn a_domain_named_like_another_domains_uuid_reaches_only_itself() {
    let victim = unique("victim");
    let world = World::new("{}");
    world.rig.define(&victim);
    world.rig.start(&victim);
    let impostor = world.rig.uuid(&victim);
    world.rig.define(&impostor);
    let world = World::new(&format!(r#"{{"alice": [{{"domains": ["{impostor}"]}}]}}"#));
    let alice = world.key("--key alice");

    let out = world
        .rig
        .ssh(&alice, Some(&format!("status {impostor}")), b"");
    assert_eq!(stdout(&out), "shut off\n", "{}", stderr(&out));
    let out = world
        .rig
        .ssh(&alice, Some(&format!("destroy {impostor}")), b"");
    assert_eq!(code(&out), Some(1));
    assert_eq!(world.rig.state(&victim), "running");
}

#[test]
fn names_starting_with_a_dash_are_names_not_options() {
    let dashed = format!("-{}", unique("x"));
    let world = World::new(&format!(
        r#"{{"alice": [{{"domains": ["{dashed}", "--force"]}}]}}"#
    ));
    world.rig.define(&dashed);
    let alice = world.key("--key alice");
    let out = world.rig.ssh(&alice, Some(&format!("start {dashed}")), b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(world.rig.state(&dashed), "running");
    // Granted but absent: an option-shaped name is looked up, not passed to virsh.
    let out = world.rig.ssh(&alice, Some("start --force"), b"");
    assert_eq!(code(&out), Some(1));
    assert_eq!(stderr(&out), "dromaius: no domain named \"--force\"\n");
}

#[test]
fn a_key_not_in_the_config_is_refused_everything() {
    let world = World::new(r#"{"alice": [{"domains": ["*"]}]}"#);
    let mallory = world.key("--key mallory");
    for request in ["status test", "list", "help", "start test"] {
        let out = world.rig.ssh(&mallory, Some(request), b"");
        assert_eq!(code(&out), Some(77), "{request}");
        assert_eq!(stderr(&out), "dromaius: permission denied\n");
        assert_eq!(stdout(&out), "");
    }
}

#[test]
fn without_key_the_unix_user_is_the_identity() {
    let web = unique("web");
    // sshd runs the forced command as root.
    let world = World::new(&format!(
        r#"{{"root": [{{"domains": ["{web}"], "commands": ["status"]}}]}}"#
    ));
    world.rig.define(&web);
    let root = world.key("");
    let out = world.rig.ssh(&root, Some(&format!("status {web}")), b"");
    assert_eq!(
        (code(&out), stdout(&out)),
        (Some(0), "shut off\n".into()),
        "{}",
        stderr(&out)
    );
    assert!(world.records(1)[0].contains("key=\"root\""));
}

#[test]
fn the_only_exact_domain_may_be_left_out() {
    let web = unique("web");
    let world = World::new(&format!(
        r#"{{"solo": [{{"domains": ["{web}"]}}], "many": [{{"domains": ["{web}", "other"]}}], "glob": [{{"domains": ["{web}*"]}}]}}"#
    ));
    world.rig.define(&web);
    let out = world.rig.ssh(&world.key("--key solo"), Some("status"), b"");
    assert_eq!(
        (code(&out), stdout(&out)),
        (Some(0), "shut off\n".into()),
        "{}",
        stderr(&out)
    );
    for key in ["many", "glob"] {
        let out = world
            .rig
            .ssh(&world.key(&format!("--key {key}")), Some("status"), b"");
        assert_eq!(code(&out), Some(2), "{key}");
        assert_eq!(
            stderr(&out),
            "dromaius: status needs a domain; type \"help\" for the commands you may use\n"
        );
    }
}

#[test]
fn piped_lines_are_a_session_with_the_last_status() {
    let web = unique("web");
    let world = World::new(&format!(r#"{{"alice": [{{"domains": ["{web}"]}}]}}"#));
    world.rig.define(&web);
    let alice = world.key("--key alice");

    let input = format!("status {web}\n\nstart {web}\nstatus {web}\n");
    let out = world.rig.ssh(&alice, None, input.as_bytes());
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("shut off\nDomain '{web}' started\nrunning\n")
    );
    assert_eq!(world.records(3).len(), 3, "a blank line is no request");

    // The last command decides the status; a failing one does not end the session.
    let input = format!("status nope\nstatus {web}\nbogus\n");
    let out = world.rig.ssh(&alice, None, input.as_bytes());
    assert_eq!(code(&out), Some(2));
    assert_eq!(stdout(&out), "running\n");
    assert_prefixed(&out);

    // `exit` ends the session (status 0); what follows it is never run.
    let input = format!("status nope\nexit\ndestroy {web}\n");
    let out = world.rig.ssh(&alice, None, input.as_bytes());
    assert_eq!(code(&out), Some(0));
    assert_eq!(world.rig.state(&web), "running");
    let out = world.rig.ssh(
        &alice,
        None,
        format!("status nope\nquit\ndestroy {web}").as_bytes(),
    );
    assert_eq!(code(&out), Some(0));
    assert_eq!(world.rig.state(&web), "running");

    // Without a trailing newline the last line still counts; an empty session is 0.
    let out = world
        .rig
        .ssh(&alice, None, format!("status {web}").as_bytes());
    assert_eq!((code(&out), stdout(&out)), (Some(0), "running\n".into()));
    let out = world.rig.ssh(&alice, None, b"");
    assert_eq!((code(&out), stdout(&out)), (Some(0), String::new()));
}

#[test]
fn unparseable_requests_exit_2_and_say_why() {
    let world = World::new(r#"{"alice": [{"domains": ["alice-*"]}]}"#);
    let alice = world.key("--key alice");
    let cases: &[(&str, &str)] = &[
        ("bogus alice-1", "unknown command \"bogus\""),
        ("START alice-1", "unknown command \"START\""),
        ("virsh list", "unknown command \"virsh\""),
        ("start alice-1 alice-2", "too many words"),
        ("start alice-1 --force", "too many words"),
        ("list alice-1", "list takes no domain"),
        ("start", "start needs a domain"),
        ("start alice-1;reboot alice-2\nx", "control character"),
        ("start \u{1b}[2Jalice-1", "control character"),
        ("start alice\u{200b}-1", "invisible"),
    ];
    for (request, reason) in cases {
        let out = world.rig.ssh(&alice, Some(request), b"");
        assert_eq!(code(&out), Some(2), "{request:?}");
        assert!(stderr(&out).starts_with("dromaius: "), "{request:?}");
        assert!(
            stderr(&out).contains(reason),
            "{request:?}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("help"), "{request:?}");
    }
    // Echoed input is escaped: nothing reaches the terminal raw.
    let out = world.rig.ssh(&alice, Some("\u{1b}]0;pwned\u{7}"), b"");
    assert_eq!(
        stderr(&out),
        "dromaius: request holds a control character; type \"help\" for the commands you may use\n"
    );
    let out = world.rig.ssh(&alice, Some("\u{1b}]0;pwned"), b"");
    assert!(!stderr(&out).contains('\u{1b}'));

    // Over-long requests, on the command line and on stdin, and bytes that are not UTF-8.
    let long = format!("status alice-{}", "a".repeat(5000));
    let out = world.rig.ssh(&alice, Some(&long), b"");
    assert_eq!(code(&out), Some(2));
    assert!(
        stderr(&out).contains("request too long"),
        "{}",
        stderr(&out)
    );
    let mut huge = vec![b'a'; 3 * 1024 * 1024];
    huge.extend_from_slice(b"\nstart \xff\xfe\n");
    let out = world.rig.ssh(&alice, None, &huge);
    assert_eq!(code(&out), Some(2));
    assert_eq!(
        stderr(&out).lines().collect::<Vec<_>>(),
        [
            "dromaius: request too long (3145728 bytes, at most 4096); type \"help\" for the commands you may use",
            "dromaius: request is not valid UTF-8; type \"help\" for the commands you may use",
        ]
    );
}

#[test]
fn audit_records_cannot_be_forged() {
    let world = World::new(r#"{"alice": [{"domains": ["alice-*"]}]}"#);
    let alice = world.key("--key alice");
    let forged = "status x\"\ndromaius[1]: key=\"root\" decision=allow";
    let out = world.rig.ssh(&alice, Some(forged), b"");
    assert_eq!(code(&out), Some(2));
    let out = world
        .rig
        .ssh(&alice, Some("status alice-\"decision=allow"), b"");
    assert_eq!(
        code(&out),
        Some(1),
        "granted by the glob, but no such domain"
    );
    let records = world.records(2);
    assert_eq!(records.len(), 2, "{records:?}");
    for record in &records {
        assert!(!record.contains('\n'), "{record:?}");
        assert!(
            record.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{record:?}"
        );
        assert_eq!(record.matches("key=\"").count(), 1, "{record}");
    }
    assert!(
        records[0].contains("decision=invalid outcome=2"),
        "{}",
        records[0]
    );
    assert!(records[0].contains("\\x0a"), "{}", records[0]);
    assert!(
        records[1].ends_with("decision=allow outcome=1"),
        "{}",
        records[1]
    );
}

#[test]
fn list_shows_only_granted_existing_domains_sorted_with_state() {
    let a = unique("lst-a");
    let b = unique("lst-b");
    let hidden = unique("lst-hidden");
    let world = World::new(&format!(
        r#"{{"alice": [{{"domains": ["{b}", "{a}", "absent-{a}"], "commands": ["status"]}}]}}"#
    ));
    for name in [&a, &b, &hidden] {
        world.rig.define(name);
    }
    world.rig.start(&b);
    let out = world.rig.ssh(&world.key("--key alice"), Some("list"), b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{a}  shut off\n{b}  running\n"));
}

#[test]
fn help_lists_only_what_the_key_may_use() {
    let world = World::new(r#"{"viewer": [{"domains": ["db"], "commands": ["status"]}]}"#);
    let out = world.rig.ssh(&world.key("--key viewer"), Some("help"), b"");
    assert_eq!(code(&out), Some(0));
    let text = stdout(&out);
    assert!(text.contains("status [DOMAIN]"), "{text}");
    for absent in ["start", "destroy", "console", "reset"] {
        assert!(!text.contains(absent), "{absent} in {text}");
    }
    for always in ["list", "help", "exit, quit"] {
        assert!(text.contains(always), "{always} in {text}");
    }
}

#[test]
fn console_without_a_terminal_says_to_use_ssh_t() {
    let web = unique("web");
    let world = World::new(&format!(r#"{{"alice": [{{"domains": ["{web}"]}}]}}"#));
    world.rig.define(&web);
    world.rig.start(&web);
    let out = world.rig.ssh(
        &world.key("--key alice"),
        Some(&format!("console {web}")),
        b"",
    );
    assert_eq!(code(&out), Some(1));
    assert!(stderr(&out).contains("ssh -t"), "{}", stderr(&out));
    assert!(stderr(&out).contains("pty"), "{}", stderr(&out));
}

#[test]
fn go_dromaius_lines_keep_working() {
    let host = unique("vhost");
    let other = unique("other");
    let rig = Rig::get();
    rig.define(&host);
    rig.define(&other);
    let audit = AuditSink::new();
    // A go-dromaius config is just AllowedHosts; connect/syslog are ours, for the test rig.
    let dir = write_file("legacy-dir-marker", "").with_file_name(unique("legacy"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("dromaius.json"),
        format!(
            r#"{{"connect": "{}", "syslog_socket": "{}", "AllowedHosts": ["{host}"]}}"#,
            rig.test_uri(),
            audit.path().display()
        ),
    )
    .unwrap();
    let bin = dromaius_bin();
    // Without -config the file is ./dromaius.json, as in go-dromaius.
    let interactive = rig.authorize(
        &format!(
            "cd {} && {} -cmd interactive -host {host}",
            dir.display(),
            bin.display()
        ),
        "no-agent-forwarding,no-port-forwarding,no-X11-forwarding",
    );
    let out = rig.ssh(&interactive, None, b"start\nstatus\n");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("Domain '{host}' started\nrunning\n"));

    // A one-shot request in a bound session acts on the bound domain.
    let out = rig.ssh(&interactive, Some("destroy"), b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(rig.state(&host), "shut off");
    // Naming the bound domain is fine; naming another is denied.
    let out = rig.ssh(&interactive, Some(&format!("status {host}")), b"");
    assert_eq!(stdout(&out), "shut off\n");
    let out = rig.ssh(&interactive, Some(&format!("start {other}")), b"");
    assert_eq!(code(&out), Some(77));
    assert_eq!(rig.state(&other), "shut off");
    let out = rig.ssh(&interactive, Some("list"), b"");
    assert_eq!(stdout(&out), format!("{host}  shut off\n"));

    // -cmd other than interactive runs once, with one or two dashes and -config.
    let config = dir.join("dromaius.json");
    let once = rig.authorize(
        &format!(
            "{} --cmd=start -host {host} -config {}",
            bin.display(),
            config.display()
        ),
        "restrict",
    );
    let out = rig.ssh(&once, Some("destroy"), b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(
        rig.state(&host),
        "running",
        "-cmd start ran, not the user's destroy"
    );

    // A host not in AllowedHosts is refused.
    let stray = rig.authorize(
        &format!(
            "{} -cmd interactive -host {other} -config {}",
            bin.display(),
            config.display()
        ),
        "restrict",
    );
    let out = rig.ssh(&stray, Some("start"), b"");
    assert_eq!(code(&out), Some(77));
    assert_eq!(rig.state(&other), "shut off");
}

#[test]
fn config_faults_refuse_every_request_with_78() {
    let rig = Rig::get();
    let bad = write_file(
        "bad.json",
        "{\n  \"keys\": {\n    \"alice\": [ { \"domains\": [\"*\"], \"comands\": [\"start\"] } ]\n  }\n}\n",
    );
    let out = rig.ssh(
        &forced_key(rig, &bad, "--key alice"),
        Some("status test"),
        b"",
    );
    assert_eq!(code(&out), Some(78));
    assert_eq!(
        stderr(&out),
        format!(
            "dromaius: {}:3:44: unknown field `comands`, expected one of `domains`, `commands`, `connect`, `expires`\n",
            bad.display()
        )
    );

    let missing = Path::new("/nonexistent/dromaius.json");
    let key = forced_key(rig, missing, "--key alice");
    let out = rig.ssh(&key, Some("status test"), b"");
    assert_eq!(code(&out), Some(78));
    assert!(
        stderr(&out).starts_with("dromaius: /nonexistent/dromaius.json: cannot open"),
        "{}",
        stderr(&out)
    );
    let out = rig.ssh(&key, None, b"status test\nlist\n");
    assert_eq!(
        code(&out),
        Some(78),
        "a session does not start on a bad config"
    );
    assert_eq!(stdout(&out), "");
}

#[test]
fn unreachable_virsh_or_libvirt_is_69() {
    let rig = Rig::get();
    let audit = AuditSink::new();
    let no_virsh = write_file(
        "no-virsh.json",
        &format!(
            r#"{{"virsh": "/nonexistent/virsh", "connect": "{}", "syslog_socket": "{}", "keys": {{"alice": [{{"domains": ["test"]}}]}}}}"#,
            rig.test_uri(),
            audit.path().display()
        ),
    );
    let no_libvirt = write_file(
        "no-libvirt.json",
        r#"{"connect": "test+unix:///default?socket=/nonexistent/sock", "keys": {"alice": [{"domains": ["test"]}]}}"#,
    );
    for (config, what) in [
        (&no_virsh, "cannot run /nonexistent/virsh"),
        (&no_libvirt, "failed to connect to the hypervisor"),
    ] {
        let key = forced_key(rig, config, "--key alice");
        for request in ["status test", "list"] {
            let out = rig.ssh(&key, Some(request), b"");
            assert_eq!(code(&out), Some(69), "{request} {what}: {}", stderr(&out));
            assert!(stderr(&out).contains(what), "{}", stderr(&out));
            assert_prefixed(&out);
        }
    }
    assert!(
        audit
            .records(2, Duration::from_secs(5))
            .iter()
            .all(|r| r.contains("outcome=69"))
    );
}

#[test]
fn a_virsh_past_timeout_is_killed_with_124() {
    let rig = Rig::get();
    // A stand-in virsh that hangs, with a child of its own, to prove the whole group dies.
    // The marker is in the child's own argv (a sleep of 300.<pid><nanos> s), so pgrep can
    // see it; a comment in the script would be invisible to it.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let marker = format!("sleep 300.{}{nanos}", std::process::id());
    let fake = write_file("hanging-virsh", &format!("#!/bin/sh\n{marker}\n"));
    make_executable(&fake);
    let config = write_file(
        "hang.json",
        &format!(
            r#"{{"virsh": "{}", "connect": "test:///default", "timeout_secs": 1, "keys": {{"alice": [{{"domains": ["*"]}}]}}}}"#,
            fake.display()
        ),
    );
    let key = forced_key(rig, &config, "--key alice");
    let started = std::time::Instant::now();
    let out = rig.ssh(&key, Some("start web1"), b"");
    assert_eq!(code(&out), Some(124), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        stderr(&out).contains("start web1 took longer than 1 s"),
        "{}",
        stderr(&out)
    );
    std::thread::sleep(Duration::from_millis(200));
    let left = std::process::Command::new("pgrep")
        .args(["-f", &marker])
        .output()
        .unwrap();
    assert!(left.stdout.is_empty(), "left behind: {}", stdout(&left));
}

#[test]
fn the_callers_environment_does_not_reach_virsh() {
    // Run the binary directly with a hostile environment: a planted virsh first in PATH,
    // a HOME with a libvirt.conf aliasing URIs, and libvirt's own variables.
    let web = unique("web");
    let world = World::new(&format!(r#"{{"alice": [{{"domains": ["{web}"]}}]}}"#));
    world.rig.define(&web);
    let evil = write_file("evil-marker", "").with_file_name(unique("evil"));
    std::fs::create_dir_all(evil.join("bin")).unwrap();
    std::fs::create_dir_all(evil.join(".config/libvirt")).unwrap();
    let planted = evil.join("bin/virsh");
    std::fs::write(
        &planted,
        format!("#!/bin/sh\ntouch {}/ran\n", evil.display()),
    )
    .unwrap();
    make_executable(&planted);
    std::fs::write(
        evil.join(".config/libvirt/libvirt.conf"),
        "uri_aliases = [ \"qemu:///system=test:///default\" ]\nuri_default = \"test:///default\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(dromaius_bin())
        .args(["--config", world.config.to_str().unwrap(), "--key", "alice"])
        .env("SSH_ORIGINAL_COMMAND", format!("status {web}"))
        .env("PATH", evil.join("bin"))
        .env("HOME", &evil)
        .env("XDG_CONFIG_HOME", evil.join(".config"))
        .env("LIBVIRT_DEFAULT_URI", "test:///default")
        .env("VIRSH_DEFAULT_CONNECT_URI", "test:///default")
        .env(
            "LIBVIRT_LOG_OUTPUTS",
            format!("1:file:{}/log", evil.display()),
        )
        .output()
        .unwrap();
    assert_eq!(
        (code(&out), stdout(&out)),
        (Some(0), "shut off\n".into()),
        "{}",
        stderr(&out)
    );
    assert!(!evil.join("ran").exists(), "the planted virsh ran");
    assert!(
        !evil.join("log").exists(),
        "LIBVIRT_LOG_OUTPUTS was honoured"
    );
}

#[test]
fn an_unreachable_syslog_never_fails_a_request() {
    let web = unique("web");
    let rig = Rig::get();
    rig.define(&web);
    for socket in ["/nonexistent/log", "/etc/hostname"] {
        let config = write_file(
            "nolog.json",
            &format!(
                r#"{{"connect": "{}", "syslog_socket": "{socket}", "keys": {{"alice": [{{"domains": ["{web}"]}}]}}}}"#,
                rig.test_uri()
            ),
        );
        let key = forced_key(rig, &config, "--key alice");
        let out = rig.ssh(&key, Some(&format!("status {web}")), b"");
        assert_eq!(
            (code(&out), stdout(&out)),
            (Some(0), "shut off\n".into()),
            "{socket}: {}",
            stderr(&out)
        );
    }
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn debug_sends_each_virsh_run_and_decision_to_syslog_and_nothing_without_it() {
    let web = unique("web");
    let world = World::new(&format!(r#"{{"alice": [{{"domains": ["{web}"]}}]}}"#));
    world.rig.define(&web);
    let quiet = world.key("--key alice");
    let out = world.rig.ssh(&quiet, Some(&format!("status {web}")), b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    // authpriv (10) * 8 + info (6): the audit record only.
    let records = world.records(1);
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].starts_with("<86>"), "{records:?}");

    let debug = world.key("--key alice --debug");
    let out = world
        .rig
        .ssh(&debug, Some(&format!("status {web}\u{1b}[2J")), b"");
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    let out = world.rig.ssh(&debug, Some(&format!("status {web}")), b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let records = world.records(6);
    // authpriv * 8 + debug (7) = 87: one line per decision and per virsh run, escaped.
    let debug_lines: Vec<&String> = records.iter().filter(|r| r.starts_with("<87>")).collect();
    assert!(
        debug_lines
            .iter()
            .any(|r| r.contains("key alice: invalid request: request holds a control character")),
        "{records:?}"
    );
    assert!(
        debug_lines
            .iter()
            .any(|r| r.contains(&format!("key alice: status on {web} allowed by grant #1"))),
        "{records:?}"
    );
    assert!(
        debug_lines
            .iter()
            .any(|r| r.contains("virsh --connect ") && r.contains(" ms: exit status: 0")),
        "{records:?}"
    );
    for record in &records {
        assert!(
            record.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{record:?}"
        );
    }
}
