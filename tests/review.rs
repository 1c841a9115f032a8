//! The holes a security review found, each kept closed through real sshd and the real
//! binary: a grant's pattern means what bash says it means, and one verdict on a config for
//! the gateway and `check` alike.

use dromaius_rig as common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Rig, code, stderr, stdout, unique, write_file};

/// `dromaius check --config PATH`, as the administrator runs it.
fn check(config: &Path) -> Output {
    Command::new(common::dromaius_bin())
        .args(["check", "--config"])
        .arg(config)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .output()
        .expect("run dromaius check")
}

#[test]
fn a_negated_set_in_a_grant_negates_as_in_bash() {
    let rig = Rig::get();
    let prefix = unique("neg");
    let (numbered, lettered) = (format!("{prefix}-5"), format!("{prefix}-x"));
    rig.define(&numbered);
    rig.define(&lettered);
    let config = rig.unaudited_config(&format!(
        r#""keys": {{"alice": [
                {{"domains": ["{prefix}-[^0-9]*"], "commands": ["status"]}},
                {{"domains": ["{prefix}-[![:alpha:]]"], "commands": ["start"]}},
                {{"domains": ["{prefix}-\\*"], "commands": ["destroy"]}}
            ]}}"#
    ));
    assert_eq!(
        code(&check(&config)),
        Some(0),
        "{}",
        stderr(&check(&config))
    );
    let alice = rig.authorize_gateway(&config, "alice", "restrict");
    let ask = |request: &str| rig.ssh(&alice, Some(request), b"");

    // The review's case: meant as "not the numbered ones", it must not grant web-5.
    let out = ask(&format!("status {numbered}"));
    assert_eq!(code(&out), Some(77), "{}", stderr(&out));
    let out = ask(&format!("status {lettered}"));
    assert_eq!(
        (code(&out), stdout(&out).trim()),
        (Some(0), "shut off"),
        "{}",
        stderr(&out)
    );
    // `[![:alpha:]]` is "one character that is not a letter": 5 yes, x no.
    let out = ask(&format!("start {lettered}"));
    assert_eq!(code(&out), Some(77), "{}", stderr(&out));
    // `\*` is a literal `*`: it grants the name with a star, not every name.
    let out = ask(&format!("destroy {numbered}"));
    assert_eq!(code(&out), Some(77), "{}", stderr(&out));
    let out = ask("list");
    assert_eq!(
        stdout(&out),
        format!("{numbered}  shut off\n{lettered}  shut off\n")
    );
}

#[test]
fn a_pattern_bash_reads_two_ways_refuses_the_config_with_its_line() {
    let rig = Rig::get();
    for (pattern, why) in [
        ("web-[[=a=]]", "equivalence classes"),
        ("web-[[:digits:]]", "unknown character class"),
        ("web-+(1|2)", "extended globs"),
        ("web-[0-9", "has no `]`"),
    ] {
        let config = rig.unaudited_config(&format!(
                "\"keys\": {{\n  \"alice\": [{{\"domains\": [\"ok\"]}}],\n  \"bob\": [{{\"domains\": [\"{pattern}\"]}}]\n}}"
            ),
        );
        let out = check(&config);
        assert_eq!(code(&out), Some(78), "{pattern}: {}", stdout(&out));
        let said = stdout(&out) + &stderr(&out);
        assert!(
            said.contains(&format!("{}:3:", config.display())) && said.contains(why),
            "{pattern}: {said}"
        );
        let alice = rig.authorize_gateway(&config, "alice", "restrict");
        let out = rig.ssh(&alice, Some("status ok"), b"");
        assert_eq!(code(&out), Some(78), "{pattern}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{pattern}: {}", stderr(&out));
    }
}

/// The review's case 3: the fault sits in another key's grant; the gateway and `check`
/// must give the one verdict, in the main file and in a drop-in alike.
#[test]
fn another_keys_fault_refuses_the_gateway_as_check_does() {
    let rig = Rig::get();
    let uri = rig.test_uri();
    let hypervisors = format!(r#""hypervisors": {{"hv1": "{uri}"}}"#);
    let bad_grant = format!(r#"[{{"domains": ["x"], "connect": ["hv1", "{uri}"]}}]"#);

    let in_main = rig.unaudited_config(&format!(
        r#"{hypervisors}, "keys": {{"alice": [{{"domains": ["*"]}}], "bob": {bad_grant}}}"#
    ));
    let dir = common::support::make_temp_dir("verdict");
    let in_drop_in = dir.join("dromaius.json");
    std::fs::write(
        &in_drop_in,
        format!(
            r#"{{"connect": "{uri}", "syslog_socket": "/nonexistent/log", {hypervisors}, "keys": {{"alice": [{{"domains": ["*"]}}]}}}}"#
        ),
    )
    .unwrap();
    std::fs::create_dir(dir.join("dromaius.d")).unwrap();
    std::fs::write(
        dir.join("dromaius.d/50-bob.json"),
        format!(r#"{{"keys": {{"bob": {bad_grant}}}}}"#),
    )
    .unwrap();

    for config in [in_main, in_drop_in] {
        let out = check(&config);
        let said = stdout(&out) + &stderr(&out);
        assert_eq!(code(&out), Some(78), "check: {said}");
        assert!(said.contains("twice (by its name and its URI)"), "{said}");
        let alice = rig.authorize_gateway(&config, "alice", "restrict");
        let out = rig.ssh(&alice, Some("list"), b"");
        assert_eq!(code(&out), Some(78), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("twice (by its name and its URI)"),
            "{}",
            stderr(&out)
        );
        assert_eq!(stdout(&out), "");
    }
}

/// The review's case 4: in whole-account mode dromaius runs as the constrained account,
/// and go-dromaius's flags without `-config` read `./dromaius.json` in that account's own
/// home. A file the account can write grants it anything, so it is refused, and the
/// refusal says why.
#[test]
fn a_config_the_constrained_account_owns_is_refused() {
    let rig = Rig::get();
    let victim = unique("victim");
    rig.define(&victim);
    let home = common::support::make_temp_dir("account-home");
    std::fs::write(
        home.join("dromaius.json"),
        format!(
            r#"{{"connect": "{}", "AllowedHosts": ["{victim}"]}}"#,
            rig.test_uri()
        ),
    )
    .unwrap();
    for path in [home.clone(), home.join("dromaius.json")] {
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    }
    let out = Command::new("/usr/bin/setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(common::dromaius_bin())
        .args(["-cmd", "start", "-host", &victim])
        .current_dir(&home)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("SSH_CONNECTION", "192.0.2.9 50000 127.0.0.1 22")
        .stdin(Stdio::null())
        .output()
        .expect("run dromaius as nobody");
    assert_eq!(code(&out), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("dromaius.json is owned by uid 65534, not by root"),
        "{}",
        stderr(&out)
    );
    assert_eq!(rig.state(&victim), "shut off");
}

/// Waits until a dromaius serving `config` runs (it has then read the config at its start),
/// and a little more.
fn wait_for_gateway(config: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found = Command::new("pgrep")
            .args(["-f", &config.display().to_string()])
            .output()
            .expect("pgrep");
        if !found.stdout.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(300));
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no gateway started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The review's case 1: a session opened under a wide grant, the config narrowed (or
/// broken) before its first line: that line is judged on the config of now.
#[test]
fn the_first_request_of_a_session_is_judged_on_the_config_of_now() {
    use std::io::Write;
    let rig = Rig::get();
    let secret = unique("secret");
    rig.define(&secret);
    rig.start(&secret);
    let wide = r#""keys": {"alice": [{"domains": ["*"], "commands": ["status", "destroy"]}]}"#;
    let narrow = r#""keys": {"alice": [{"domains": ["web1"], "commands": ["status"]}]}"#;
    for (replacement, status) in [(narrow.to_owned(), 77), ("{ not json".to_owned(), 78)] {
        let config = rig.unaudited_config(wide);
        let alice = rig.authorize_gateway(&config, "alice", "restrict");
        let mut session = rig
            .ssh_command(&alice, None)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssh");
        wait_for_gateway(&config);
        let text = if replacement.starts_with('{') {
            replacement.clone()
        } else {
            format!(
                r#"{{"connect": "{}", "syslog_socket": "/nonexistent/log", {replacement}}}"#,
                rig.test_uri()
            )
        };
        let fresh = config.with_extension("new");
        std::fs::write(&fresh, text).unwrap();
        std::fs::rename(&fresh, &config).unwrap();
        let mut stdin = session.stdin.take().expect("stdin");
        writeln!(stdin, "destroy {secret}").unwrap();
        drop(stdin);
        let out = session.wait_with_output().expect("ssh ends");
        assert_eq!(code(&out), Some(status), "{}", stderr(&out));
        assert_eq!(rig.state(&secret), "running");
    }
}

/// The same at the prompt, and an `idle_timeout_secs` set while the prompt is open.
#[test]
fn an_open_prompt_follows_the_config_of_now() {
    use common::world::World;
    let secret = unique("secret");
    let world = World::new(
        r#"{"alice": [{"domains": ["*"], "commands": ["status", "destroy"]}]}"#,
        "",
    );
    world.rig.define(&secret);
    world.rig.start(&secret);
    let key = world.key("--key alice");
    let mut term = world.ssh_tt(&key);
    term.done("dromaius (alice)> ");
    let rewrite = |keys: &str, extra: &str| {
        let text = format!(
            r#"{{ {extra} "virsh": "/usr/bin/virsh", "connect": "{}", "syslog_socket": "{}", "keys": {keys} }}"#,
            world.rig.test_uri(),
            world.audit.path().display()
        );
        let fresh = world.config.with_extension("new");
        std::fs::write(&fresh, text).unwrap();
        std::fs::rename(&fresh, &world.config).unwrap();
    };
    rewrite(
        r#"{"alice": [{"domains": ["web1"], "commands": ["status"]}]}"#,
        "",
    );
    term.line(&format!("destroy {secret}"));
    common::world::assert_ends(&term.done("dromaius (alice)> "), "permission denied\r\n");
    assert_eq!(world.rig.state(&secret), "running");
    rewrite(
        r#"{"alice": [{"domains": ["web1"], "commands": ["status"]}]}"#,
        r#""idle_timeout_secs": 1,"#,
    );
    term.line("list");
    term.done("dromaius (alice)> ");
    let said = term.expect("the session ends");
    assert!(said.contains("no request for 1 s"), "{said:?}");
    assert_eq!(term.exit_code(), 0);
}

/// The review's case 5: with a syslog that takes 15 ms a record, one session's flood of
/// invalid lines must cost no other key's acting request its record, and what the flood
/// left unsent is counted.
#[test]
fn a_flood_costs_no_acting_request_its_record() {
    use std::os::unix::net::UnixDatagram;
    let rig = Rig::get();
    let victim = unique("victim");
    rig.define(&victim);
    let dir = common::support::make_temp_dir("slow-syslog");
    let socket_path = dir.join("log");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    let slow = std::thread::spawn(move || {
        let mut records = Vec::new();
        let mut buffer = [0u8; 8192];
        while let Ok(n) = socket.recv(&mut buffer) {
            records.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
            std::thread::sleep(std::time::Duration::from_millis(15));
        }
        records
    });
    let config = write_file(
        "dromaius.json",
        &format!(
            r#"{{"connect": "{}", "syslog_socket": "{}", "keys": {{"flood": [], "ops": [{{"domains": ["{victim}"]}}]}}}}"#,
            rig.test_uri(),
            socket_path.display()
        ),
    );
    let flood = rig.authorize_gateway(&config, "flood", "restrict");
    let ops = rig.authorize_gateway(&config, "ops", "restrict");
    let flooding = std::thread::spawn({
        let lines = "bogus\n".repeat(300);
        move || Rig::get().ssh(&flood, None, lines.as_bytes())
    });
    for _ in 0..24 {
        let out = rig.ssh(&ops, Some(&format!("destroy {victim}")), b"");
        assert!(matches!(code(&out), Some(0 | 1)), "{}", stderr(&out));
    }
    assert_eq!(code(&flooding.join().unwrap()), Some(2));
    let records = slow.join().unwrap();
    let of = |key: &str| -> Vec<&String> {
        records
            .iter()
            .filter(|r| r.contains(&format!("key=\"{key}\"")))
            .collect()
    };
    let destroys = of("ops")
        .into_iter()
        .filter(|r| r.contains("command=\"destroy\""))
        .count();
    assert_eq!(destroys, 24, "{records:#?}");
    let flooded = of("flood");
    let sent = flooded.iter().filter(|r| r.contains("command=")).count();
    let dropped: usize = flooded
        .iter()
        .filter_map(|r| common::direct::dropped_in(r))
        .sum();
    assert_eq!(sent + dropped, 300, "{flooded:#?}");
}
