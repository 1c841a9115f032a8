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

/// A config on the rig's test driver whose audit goes nowhere, with `fields` after
/// `connect` (`"keys": ...` and any more).
fn config_with(rig: &Rig, fields: &str) -> std::path::PathBuf {
    write_file(
        "dromaius.json",
        &format!(
            r#"{{"connect": "{}", "syslog_socket": "/nonexistent/log", {fields}}}"#,
            rig.test_uri()
        ),
    )
}

#[test]
fn a_negated_set_in_a_grant_negates_as_in_bash() {
    let rig = Rig::get();
    let prefix = unique("neg");
    let (numbered, lettered) = (format!("{prefix}-5"), format!("{prefix}-x"));
    rig.define(&numbered);
    rig.define(&lettered);
    let config = config_with(
        rig,
        &format!(
            r#""keys": {{"alice": [
                {{"domains": ["{prefix}-[^0-9]*"], "commands": ["status"]}},
                {{"domains": ["{prefix}-[![:alpha:]]"], "commands": ["start"]}},
                {{"domains": ["{prefix}-\\*"], "commands": ["destroy"]}}
            ]}}"#
        ),
    );
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
        let config = config_with(
            rig,
            &format!(
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

    let in_main = config_with(
        rig,
        &format!(
            r#"{hypervisors}, "keys": {{"alice": [{{"domains": ["*"]}}], "bob": {bad_grant}}}"#
        ),
    );
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
