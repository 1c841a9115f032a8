//! The administrator's side, through the built binary: `check`, `explain`, `keyline`,
//! `--help` and `--version` run as an admin would run them; the lines `keyline` prints are
//! pasted into the real sshd's authorized_keys and used to log in; and none of the
//! subcommands can be reached by a user through sshd.

use dromaius_rig as common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Rig, SshKey, code, dromaius_bin, stderr, stdout, unique, write_file};

/// Runs the binary directly (as the admin at a root shell), with a clean environment.
fn dromaius(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(dromaius_bin())
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dromaius");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    child.wait_with_output().expect("wait for dromaius")
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The binary as `keyline` names it: canonical.
fn canonical_bin() -> PathBuf {
    fs::canonicalize(dromaius_bin()).unwrap()
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dromaius.json.example")
}

#[test]
fn help_lists_the_subcommands_and_the_gateway_usage() {
    let out = dromaius(&["--help"], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for word in [
        "check",
        "explain",
        "keyline",
        "SSH_ORIGINAL_COMMAND",
        "--key <NAME>",
        "--config <PATH>",
        "-cmd",
        "Exit status",
    ] {
        assert!(text.contains(word), "{word} missing in:\n{text}");
    }
    let out = dromaius(&["--version"], b"");
    assert_eq!(
        (code(&out), stdout(&out)),
        (Some(0), format!("dromaius {}\n", env!("CARGO_PKG_VERSION")))
    );
}

#[test]
fn the_shipped_example_passes_check() {
    let out = dromaius(&["check", "--config", path_str(&example())], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    // No warning about its contents. (Who owns the checked-out file, and with what mode,
    // is up to the checkout, not the example.)
    let warnings = stderr(&out);
    let about_contents: Vec<&str> = warnings
        .lines()
        .filter(|l| !l.contains("writable by group or others") && !l.contains("not root"))
        .collect();
    assert_eq!(about_contents, Vec::<&str>::new());
    let text = stdout(&out);
    assert!(text.contains(": valid\n"), "{text}");
    assert!(text.contains("2 keys, 3 grants"), "{text}");
    assert!(
        text.contains("#1 line 8: alice-* -> start shutdown reboot console status"),
        "{text}"
    );
}

#[test]
fn check_reports_every_problem_with_file_line_and_column() {
    let config = write_file(
        "bad.json",
        "{\n  \"keys\": {\n    \"a\": [ { \"domains\": [] } ],\n    \"b\": [ { \"domains\": [\"x\"], \"commands\": [\"define\"] } ]\n  }\n}\n",
    );
    let file = path_str(&config);
    let out = dromaius(&["check", "--config", file], b"");
    assert_eq!(code(&out), Some(78), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    let lines: Vec<String> = stderr(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("dromaius: {file}:3:"))
            && lines[0].contains("at least one domain"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(&format!("dromaius: {file}:4:")) && lines[1].contains("`define`"),
        "{lines:?}"
    );
    // The same file, the same first error, from the gateway's own loader.
    let gateway = Command::new(dromaius_bin())
        .args(["--config", file, "--key", "a"])
        .env_clear()
        .env("SSH_ORIGINAL_COMMAND", "list")
        .output()
        .unwrap();
    assert_eq!(code(&gateway), Some(78));
    assert_eq!(stderr(&gateway), format!("{}\n", lines[0]));

    let missing = dromaius(&["check", "--config", "/nonexistent/dromaius.json"], b"");
    assert_eq!(code(&missing), Some(78));
    assert!(
        stderr(&missing).starts_with("dromaius: /nonexistent/dromaius.json: cannot open"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn check_warns_about_dead_and_ambiguous_grants_but_passes() {
    let config = write_file(
        "warn.json",
        r#"{
  "keys": {
    "alice": [
      { "domains": ["*"], "commands": ["status"] },
      { "domains": ["web1"], "commands": ["status"] },
      { "domains": ["web*"] },
      { "domains": ["web*"] },
      { "domains": ["2"] }
    ]
  }
}
"#,
    );
    let file = path_str(&config);
    let out = dromaius(&["check", "--config", file], b"");
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains(": valid\n"), "{}", stdout(&out));
    let warnings: Vec<String> = stderr(&out).lines().map(str::to_owned).collect();
    let expected = [
        format!("dromaius: warning: {file}:5: key \"alice\", grant #2 can never match"),
        format!(
            "dromaius: warning: {file}:7: key \"alice\", grant #4 is a duplicate of grant #3 (line 6)"
        ),
        format!(
            "dromaius: warning: {file}:8: key \"alice\", grant #5: virsh reads the domain name \"2\" as the domain id 2"
        ),
    ];
    assert_eq!(warnings.len(), expected.len(), "{warnings:?}");
    for (warning, expected) in warnings.iter().zip(&expected) {
        assert!(
            warning.starts_with(expected),
            "{warning}\nwanted {expected}"
        );
    }

    // check loads the config exactly as the gateway does, so a config others could rewrite
    // is refused, not merely warned about.
    fs::set_permissions(&config, fs::Permissions::from_mode(0o666)).unwrap();
    let out = dromaius(&["check", "--config", file], b"");
    assert_eq!(code(&out), Some(78));
    assert!(
        stderr(&out).contains("is writable by group or others (mode 0666)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn explain_names_the_grant_or_the_reason() {
    let config = path_str(&example()).to_owned();
    let run = |args: &[&str]| {
        let mut all = vec!["explain", "--config", &config];
        all.extend_from_slice(args);
        dromaius(&all, b"")
    };
    let out = run(&["--key", "alice", "start", "alice-web"]);
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "allowed: start on \"alice-web\" for key \"alice\" by grant #1 ({config}:8)\n  \
             virsh acts on it through qemu:///system\n"
        )
    );
    let out = run(&["--key", "alice", "status", "shared-db"]);
    assert!(stdout(&out).contains(&format!("by grant #2 ({config}:9)")));

    let out = run(&["--key", "alice", "destroy", "shared-db"]);
    assert_eq!(code(&out), Some(77));
    assert_eq!(
        stdout(&out),
        format!(
            "denied: destroy on \"shared-db\": no grant of key \"alice\" allows it\n  \
             grant #1 ({config}:8): neither the domain nor the command matches\n  \
             grant #2 ({config}:9): the domain matches, but not the command\n  \
             the user is told only \"permission denied\" (77), whether or not the domain exists\n"
        )
    );
    let out = run(&["--key", "mallory", "status", "alice-web"]);
    assert_eq!(code(&out), Some(77));
    assert!(stdout(&out).contains("key \"mallory\" is not in"));

    for request in [&["reboot"][..], &["define", "x"], &["start a b"]] {
        let mut args = vec!["--key", "alice"];
        args.extend_from_slice(request);
        let out = run(&args);
        assert_eq!(code(&out), Some(2), "{request:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with("dromaius: invalid request: "));
        assert_eq!(stdout(&out), "");
    }
    let out = dromaius(
        &[
            "explain",
            "--config",
            "/nonexistent.json",
            "--key",
            "a",
            "list",
        ],
        b"",
    );
    assert_eq!(code(&out), Some(78));
}

#[test]
fn explain_agrees_with_the_gateway() {
    let rig = Rig::get();
    let (web, db) = (unique("web"), unique("db"));
    rig.define(&web);
    rig.define(&db);
    let config = rig.unaudited_config(&format!(
        r#""keys": {{"alice": [{{"domains": ["{web}"]}}, {{"domains": ["{db}"], "commands": ["status"]}}]}}"#
    ));
    let key = rig.authorize_gateway(&config, "alice", "restrict");
    for request in [
        format!("status {web}"),
        format!("status {db}"),
        format!("start {db}"),
        format!("destroy {}", unique("nowhere")),
        "list".into(),
        "help".into(),
        "status".into(),
        "check".into(),
        format!("status {web} {db}"),
    ] {
        let explained = dromaius(
            &[
                "explain",
                "--config",
                path_str(&config),
                "--key",
                "alice",
                &request,
            ],
            b"",
        );
        let gateway = rig.ssh(&key, Some(&request), b"");
        assert_eq!(
            code(&explained),
            code(&gateway),
            "{request}: explain said {}{}, the gateway {}",
            stdout(&explained),
            stderr(&explained),
            stderr(&gateway)
        );
    }
    assert_eq!(rig.state(&db), "shut off");
}

/// `keyline` for the public half of `key`, as `args` say.
fn keyline(key: &SshKey, args: &[&str]) -> Output {
    let public = key.private.with_extension("pub");
    let mut all = vec!["keyline"];
    all.extend_from_slice(args);
    all.push(path_str(&public));
    dromaius(&all, b"")
}

#[test]
fn keyline_lines_work_pasted_into_authorized_keys() {
    let rig = Rig::get();
    let web = unique("web");
    rig.define(&web);
    let config = rig.unaudited_config(&format!(
        r#""keys": {{"alice": [{{"domains": ["{web}"], "commands": ["status"]}}]}}"#
    ));
    for key_type in [
        &["ed25519"][..],
        &["rsa", "-b", "2048"],
        &["ecdsa", "-b", "256"],
        &["ecdsa", "-b", "384"],
        &["ecdsa", "-b", "521"],
    ] {
        let key = rig.key_pair(key_type);
        let out = keyline(
            &key,
            &["--key", "alice", "--config", path_str(&config), "--no-pty"],
        );
        assert_eq!(code(&out), Some(0), "{key_type:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "no warning expected");
        let public = fs::read_to_string(key.private.with_extension("pub")).unwrap();
        let line = stdout(&out);
        assert_eq!(
            line,
            format!(
                "command=\"{} --key alice --config {}\",restrict {}\n",
                canonical_bin().display(),
                config.display(),
                public.trim_end()
            )
        );
        rig.authorize_line(&line);
        let out = rig.ssh(&key, Some(&format!("status {web}")), b"");
        assert_eq!(
            (code(&out), stdout(&out)),
            (Some(0), "shut off\n".to_string()),
            "{key_type:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn keyline_reads_stdin_and_gives_a_pty_unless_told_not_to() {
    let rig = Rig::get();
    let web = unique("web");
    rig.define(&web);
    let config = rig.unaudited_config(&format!(r#""keys": {{"ops": [{{"domains": ["{web}"]}}]}}"#));
    for pty in [true, false] {
        let key = rig.key_pair(&["ed25519"]);
        let public = fs::read(key.private.with_extension("pub")).unwrap();
        let mut args = vec!["keyline", "--key", "ops", "--config", path_str(&config)];
        if !pty {
            args.push("--no-pty");
        }
        args.push("-");
        let out = dromaius(&args, &public);
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        let line = stdout(&out);
        let options = if pty {
            "\",restrict,pty "
        } else {
            "\",restrict "
        };
        assert!(line.contains(options), "{line}");
        // The config grants console: leaving the pty out is worth a warning, not a refusal.
        assert_eq!(
            stderr(&out).contains("granted console, which needs the pty"),
            !pty,
            "{}",
            stderr(&out)
        );
        rig.authorize_line(&line);
        let mut ssh = rig.ssh_tty_command(&key, Some(&format!("status {web}")));
        let out = ssh.stdin(Stdio::null()).output().unwrap();
        // With a pty the request runs on a terminal; without one, sshd refuses `ssh -tt`.
        assert_eq!(
            stderr(&out).contains("PTY allocation request failed"),
            !pty,
            "pty={pty}: {}",
            stderr(&out)
        );
        if pty {
            assert_eq!(code(&out), Some(0), "{}", stderr(&out));
            assert_eq!(stdout(&out), "shut off\r\n");
        }
    }
}

#[test]
fn keyline_refuses_what_is_not_a_public_key() {
    let rig = Rig::get();
    let key = rig.key_pair(&["ed25519"]);
    let public = fs::read_to_string(key.private.with_extension("pub")).unwrap();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (fs::read(&key.private).unwrap(), "private key"),
        (format!("{public}{public}").into_bytes(), "line break"),
        (format!("restrict {public}").into_bytes(), "options"),
        (
            format!("command=\"/bin/sh\" {public}").into_bytes(),
            "options",
        ),
        (b"".to_vec(), "empty"),
        (b"ssh-ed25519 AAAA\n".to_vec(), "does not hold"),
        (
            public.replace("ssh-ed25519", "ssh-rsa").into_bytes(),
            "holds a \"ssh-ed25519\" key",
        ),
        (b"ssh-ed25519 \xff\xfe\n".to_vec(), "not UTF-8"),
    ];
    for (input, reason) in cases {
        let out = dromaius(&["keyline", "--key", "alice", "-"], &input);
        assert_eq!(code(&out), Some(1), "{reason}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "{reason}");
        assert!(
            stderr(&out).starts_with("dromaius: stdin: not an OpenSSH public key: ")
                && stderr(&out).contains(reason),
            "{reason}: {}",
            stderr(&out)
        );
    }
    for name in ["a;id", "a b", "-x", "$(id)", "a\"b", "caf\u{e9}"] {
        let out = dromaius(
            &["keyline", &format!("--key={name}"), "-"],
            public.as_bytes(),
        );
        assert_eq!(code(&out), Some(1), "{name}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "{name}");
        assert!(
            stderr(&out).contains("key name"),
            "{name}: {}",
            stderr(&out)
        );
    }
    let out = dromaius(
        &[
            "keyline",
            "--key",
            "alice",
            "--config",
            "/my configs/d.json",
            "-",
        ],
        public.as_bytes(),
    );
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("holds a space"), "{}", stderr(&out));
}

#[test]
fn check_lints_authorized_keys_line_by_line() {
    let rig = Rig::get();
    let config = rig.unaudited_config(
        r#""keys": {"alice": [{"domains": ["a-*"], "commands": ["status", "console"]}],
            "bob": [{"domains": ["b"], "commands": ["start", "status"]}]}"#,
    );
    let config_text = path_str(&config).to_owned();
    let [k1, k2, k3] = [(); 3].map(|()| rig.key_pair(&["ed25519"]));
    let line_for = |key: &SshKey, name: &str, extra: &[&str]| {
        let mut args = vec!["--key", name, "--config", &config_text];
        args.extend_from_slice(extra);
        let out = keyline(key, &args);
        assert_eq!(code(&out), Some(0), "{}", stderr(&out));
        stdout(&out)
    };
    let good = format!(
        "# keys for dromaius\n{}{}",
        line_for(&k1, "alice", &[]),
        line_for(&k2, "bob", &["--no-pty"])
    );
    let file = write_file("authorized_keys", &good);
    let out = dromaius(
        &[
            "check",
            "--config",
            &config_text,
            "--authorized-keys",
            path_str(&file),
        ],
        b"",
    );
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).ends_with(&format!(
            "{}: 2 keys, 2 running dromaius, 0 problems\n",
            file.display()
        )),
        "{}",
        stdout(&out)
    );

    let pub3 = fs::read_to_string(k3.private.with_extension("pub")).unwrap();
    let bin = canonical_bin();
    let bin = bin.display();
    let bad = format!(
        "{good}\
         command=\"{bin} --key alice --config {config_text}\",restrict {pub3}\
         command=\"{bin} --key mallory --config {config_text}\",restrict {pub3}\
         command=\"dromaius --key bob --config {config_text}\" {pub3}\
         {pub3}"
    );
    let file = write_file("authorized_keys", &bad);
    let name = file.display().to_string();
    let out = dromaius(
        &[
            "check",
            "--config",
            &config_text,
            "--authorized-keys",
            &name,
        ],
        b"",
    );
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    for expected in [
        format!("dromaius: {name}:4: key alice is granted console, but the line allows no pty"),
        format!("dromaius: {name}:5: the same public key is on line 4"),
        format!("dromaius: {name}:5: --key mallory is not in the config"),
        format!("dromaius: {name}:6: the same public key is on line 4"),
        format!("dromaius: {name}:6: the command path \"dromaius\" is not absolute"),
        format!("dromaius: {name}:6: port, agent, X11 forwarding is allowed"),
        format!("dromaius: {name}:7: the same public key is on line 4"),
        format!("dromaius: {name}:7: no command= option"),
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&expected)),
            "{expected}\nnot in:\n{text}"
        );
    }
    assert!(
        stdout(&out).ends_with("6 keys, 5 running dromaius, 8 problems\n"),
        "{}",
        stdout(&out)
    );

    // Against an invalid config, the keys are not judged at all.
    let broken = write_file("broken.json", "{");
    let out = dromaius(
        &[
            "check",
            "--config",
            path_str(&broken),
            "--authorized-keys",
            &name,
        ],
        b"",
    );
    assert_eq!(code(&out), Some(78));
    assert!(stderr(&out).contains("not checked: the config is invalid"));
}

#[test]
fn admin_subcommands_cannot_be_reached_through_ssh() {
    let rig = Rig::get();
    let config = path_str(&example()).to_owned();
    let key = rig.authorize(
        &format!("{} --config {config} --key alice", dromaius_bin().display()),
        "restrict",
    );
    for request in [
        "check".to_string(),
        format!("check --config {config}"),
        "check --authorized-keys /root/.ssh/authorized_keys".into(),
        "explain --key ops destroy x".into(),
        "explain".into(),
        "keyline --key ops -".into(),
        // A leading space keeps the ssh client from reading these as its own options;
        // dromaius drops it like any leading blank.
        " --help".into(),
        " --version".into(),
        " -V".into(),
        " --config /etc/shadow".into(),
        " -cmd start".into(),
    ] {
        let out = rig.ssh(&key, Some(&request), b"");
        assert_eq!(code(&out), Some(2), "{request}: {}", stderr(&out));
        assert_eq!(
            stdout(&out),
            "",
            "{request}: no summary, no help, no version"
        );
        assert!(
            stderr(&out).starts_with("dromaius: unknown command"),
            "{request}: {}",
            stderr(&out)
        );
    }
    // Nor as lines of a session.
    let out = rig.ssh(
        &key,
        None,
        format!("check --config {config}\nkeyline --key ops -\nexplain --key ops start x\n")
            .as_bytes(),
    );
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out).matches("unknown command").count(),
        3,
        "{}",
        stderr(&out)
    );
}

/// A test-driver hypervisor of its own, in-process in virsh: `count` running domains
/// `host-N` plus `extra` (each `<domain>` is running, with ids from 1 in file order).
fn node_file(count: usize, extra: &[&str]) -> PathBuf {
    let mut xml = String::from("<node>\n");
    for name in extra
        .iter()
        .map(|n| (*n).to_owned())
        .chain((0..count).map(|n| format!("host-{n}")))
    {
        xml.push_str(&format!(
            "<domain type='test'><name>{name}</name><memory>65536</memory>\
             <os><type>hvm</type></os></domain>\n"
        ));
    }
    xml.push_str("</node>\n");
    let path = write_file("node.xml", &xml);
    // The node file is read by virsh itself, as whichever user check --live becomes.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    path
}

#[test]
fn check_live_reports_a_thousand_domains_from_one_listing_each() {
    let node = node_file(1000, &["2", "web1", "db"]);
    let config = write_file(
        "dromaius.json",
        &format!(
            r#"{{ "hypervisors": {{"lab": "test://{}"}}, "connect": "lab",
                 "syslog_socket": "/nonexistent/log",
                 "keys": {{
                   "alice": [{{"domains": ["web*", "host-1*"]}}],
                   "bob": [{{"domains": ["web1", "2"], "commands": ["status"]}}],
                   "carol": [{{"domains": ["nothing-*"]}}]
                 }} }}"#,
            node.display()
        ),
    );
    let started = std::time::Instant::now();
    let out = dromaius(
        &[
            "--config",
            path_str(&config),
            "check",
            "--live",
            "--user",
            "root",
        ],
        b"",
    );
    let took = started.elapsed();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "hypervisor lab (test://",
        "): reachable, 1003 domains\n",
        "domain web1 on lab (",
        "  key alice: start shutdown reboot reset destroy console status by grant #1",
        "  key bob: status by grant #1",
        "  ! more than one key may act on it: alice, bob\n",
        "  ! virsh reads the name 2 as the id 2; dromaius acts on it by UUID, but people and \
         scripts passing the name to virsh reach the domain web1 instead\n",
        "domain db on lab (",
        "  no key may act on it\n",
        "key carol, grant #1 (",
        "nothing-* matches no existing domain\n",
        "summary: 1 hypervisor, 0 unreachable; 1003 domain names, 890 that no key may act \
         on, 1 that more than one key may act on, 0 defined on more than one hypervisor, 1 \
         that virsh reads as an id or a UUID; 1 grant that matches no domain\n",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    // One listing for the hypervisor, however many domains: well under a second of work.
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
}

#[test]
fn check_live_runs_virsh_as_the_gateways_account_and_fails_when_it_cannot_reach() {
    let rig = Rig::get();
    let name = unique("live");
    rig.define(&name);
    // The rig's libvirtd runs as nobody, whose socket only nobody (and root) may use.
    let config = rig.unaudited_config(&format!(
        r#""keys": {{"alice": [{{"domains": ["{name}"]}}]}}"#
    ));
    let as_nobody = dromaius(
        &[
            "--config",
            path_str(&config),
            "check",
            "--live",
            "--user",
            "nobody",
        ],
        b"",
    );
    assert_eq!(code(&as_nobody), Some(0), "{}", stderr(&as_nobody));
    let text = stdout(&as_nobody);
    assert!(text.contains(", live, as user nobody sees it:\n"), "{text}");
    assert!(text.contains(&format!("domain {name} on ")), "{text}");
    // `daemon` may not use that socket: the check says so and fails.
    let as_daemon = dromaius(
        &[
            "--config",
            path_str(&config),
            "check",
            "--live",
            "--user",
            "daemon",
        ],
        b"",
    );
    assert_eq!(code(&as_daemon), Some(69), "{}", stdout(&as_daemon));
    let text = stdout(&as_daemon);
    assert!(text.contains(": NOT reachable: "), "{text}");
    assert!(text.contains("1 unreachable"), "{text}");
    // No such account: refused before anything runs.
    let nobody_there = dromaius(
        &[
            "--config",
            path_str(&config),
            "check",
            "--live",
            "--user",
            "no-such-user-x",
        ],
        b"",
    );
    assert_eq!(code(&nobody_there), Some(1));
    assert!(
        stderr(&nobody_there).contains("there is no user no-such-user-x"),
        "{}",
        stderr(&nobody_there)
    );
    // --user means nothing without --live.
    let out = dromaius(
        &["--config", path_str(&config), "check", "--user", "nobody"],
        b"",
    );
    assert_eq!(code(&out), Some(2), "{}", stderr(&out));
}
