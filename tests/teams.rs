//! Teams and identities, through real sshd and the real binary: groups, `dromaius.d`,
//! grants that expire, access that ends in a session already open (piped, at the prompt,
//! and an attached console), an idle prompt, and which key or certificate logged in.

use dromaius_rig as common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::support::make_temp_dir;
use common::{AuditSink, Rig, SshKey, Sshd, code, describe, dromaius_bin, stderr, stdout, unique};

/// A config of a test's own, in a directory of its own (so its `dromaius.d` is its own).
struct Place {
    rig: &'static Rig,
    dir: PathBuf,
    config: PathBuf,
    audit: AuditSink,
}

impl Place {
    /// `fields` are the config's fields after `connect` and `syslog_socket` (`"keys": ...`).
    fn new(fields: &str) -> Place {
        let rig = Rig::get();
        let dir = make_temp_dir("teams");
        let place = Place {
            rig,
            config: dir.join("dromaius.json"),
            dir,
            audit: AuditSink::new(),
        };
        place.write(fields);
        place
    }

    /// Rewrites the config, in one step (a reader sees the old file or the new one).
    fn write(&self, fields: &str) {
        let text = format!(
            r#"{{"connect": "{}", "syslog_socket": "{}", {fields}}}"#,
            self.rig.test_uri(),
            self.audit.path().display()
        );
        replace(&self.config, &text);
    }

    /// Writes `dromaius.d/NAME`.
    fn drop_in(&self, name: &str, text: &str) -> PathBuf {
        let dir = self.dir.join("dromaius.d");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.join(name);
        replace(&path, text);
        path
    }

    fn key(&self, name: &str, options: &str) -> SshKey {
        self.rig.authorize_gateway(&self.config, name, options)
    }

    fn ssh(&self, key: &SshKey, request: &str) -> Output {
        self.rig.ssh(key, Some(request), b"")
    }

    fn records(&self, at_least: usize) -> Vec<String> {
        self.audit.records(at_least, Duration::from_secs(5))
    }
}

/// Writes `path` through a temporary file and a rename.
fn replace(path: &Path, text: &str) {
    let fresh = path.with_extension("new-being-written");
    fs::write(&fresh, text).unwrap();
    fs::set_permissions(&fresh, fs::Permissions::from_mode(0o644)).unwrap();
    fs::rename(&fresh, path).unwrap();
}

/// A session fed one line at a time (`printf ... | ssh` with pauses between the lines):
/// what it prints comes back line by line, stdout and stderr apart.
struct Piped {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<(bool, String)>,
}

impl Piped {
    fn open(rig: &Rig, key: &SshKey) -> Piped {
        let mut child = rig
            .ssh_command(key, None)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = mpsc::channel();
        for (is_err, pipe) in [
            (
                false,
                Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            ),
            (true, Box::new(child.stderr.take().unwrap())),
        ] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if sender.send((is_err, line)).is_err() {
                        break;
                    }
                }
            });
        }
        Piped {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// Sends one request and returns the first line it printed: `(on stderr, text)`.
    fn ask(&mut self, line: &str) -> (bool, String) {
        let stdin = self.stdin.as_mut().expect("the session's stdin is open");
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
        self.lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no answer to {line:?}"))
    }

    /// Closes stdin and returns the exit status and whatever else it printed.
    fn finish(mut self) -> (Option<i32>, Vec<(bool, String)>) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        let rest: Vec<(bool, String)> = self.lines.try_iter().collect();
        (status.code(), rest)
    }
}

#[test]
fn group_grants_reach_every_member_in_file_order() {
    let rig = Rig::get();
    let (web, own, theirs) = (unique("web"), unique("alice"), unique("other"));
    for name in [&web, &own, &theirs] {
        rig.define(name);
    }
    let place = Place::new(&format!(
        r#""groups": {{ "web-team": ["alice", "bob"] }},
        "keys": {{
          "alice": [ {{ "domains": ["{own}"] }} ],
          "@web-team": [ {{ "domains": ["{web}"], "commands": ["status", "start"] }} ]
        }}"#
    ));
    let alice = place.key("alice", "restrict");
    let bob = place.key("bob", "restrict");
    let carol = place.key("carol", "restrict");
    for (key, request, status) in [
        (&alice, format!("status {web}"), 0),
        (&alice, format!("status {own}"), 0),
        (&alice, format!("destroy {web}"), 77),
        (&bob, format!("status {web}"), 0),
        (&bob, format!("status {own}"), 77),
        (&bob, format!("status {theirs}"), 77),
        (&carol, format!("status {web}"), 77),
    ] {
        let out = place.ssh(key, &request);
        assert_eq!(code(&out), Some(status), "{request}: {}", stderr(&out));
    }
    let out = place.ssh(&bob, "list");
    assert_eq!(stdout(&out), format!("{web}  shut off\n"));
    let out = place.ssh(&bob, "help");
    // bob has one exact name (from the group), so it may be left out.
    assert!(stdout(&out).contains("start [DOMAIN]"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("destroy"), "{}", stdout(&out));
    // explain names the group and the grant's file and line.
    let out = Command::new(dromaius_bin())
        .args([
            "--config",
            place.config.to_str().unwrap(),
            "explain",
            "--key",
            "bob",
        ])
        .args(["status", &web])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", describe(&out));
    assert!(
        stdout(&out).contains(&format!(
            "by grant #1 ({}:4, group web-team)",
            place.config.display()
        )),
        "{}",
        stdout(&out)
    );
}

#[test]
fn drop_ins_are_read_in_order_and_refused_whole() {
    let rig = Rig::get();
    let (a, b) = (unique("da"), unique("db"));
    rig.define(&a);
    rig.define(&b);
    let place = Place::new(r#""keys": {}"#);
    place.drop_in(
        "20-b.json",
        &format!(r#"{{"keys": {{"bob": [{{"domains": ["{b}"]}}]}}}}"#),
    );
    place.drop_in(
        "10-a.json",
        &format!(
            r#"{{"groups": {{"both": ["alice", "bob"]}}, "keys": {{"alice": [{{"domains": ["{a}"]}}], "@both": [{{"domains": ["{a}"], "commands": ["status"]}}]}}}}"#
        ),
    );
    // Not read: a dot-file and a file not named *.json.
    place.drop_in(
        ".30-hidden.json",
        r#"{"keys": {"eve": [{"domains": ["*"]}]}}"#,
    );
    place.drop_in("40-notes.txt", "not json at all");
    let alice = place.key("alice", "restrict");
    let bob = place.key("bob", "restrict");
    let eve = place.key("eve", "restrict");
    assert_eq!(code(&place.ssh(&alice, &format!("start {a}"))), Some(0));
    assert_eq!(code(&place.ssh(&bob, &format!("status {a}"))), Some(0));
    assert_eq!(code(&place.ssh(&bob, &format!("status {b}"))), Some(0));
    assert_eq!(code(&place.ssh(&eve, &format!("status {a}"))), Some(77));
    // check reads and reports them all.
    let out = Command::new(dromaius_bin())
        .args(["--config", place.config.to_str().unwrap(), "check"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", describe(&out));
    assert!(stdout(&out).contains("10-a.json") && stdout(&out).contains("20-b.json"));
    assert!(!stdout(&out).contains("hidden"), "{}", stdout(&out));

    // A key defined in two places: refused, naming both.
    let twice = place.drop_in(
        "25-twice.json",
        r#"{"keys": {"bob": [{"domains": ["x"]}]}}"#,
    );
    let out = place.ssh(&alice, &format!("status {a}"));
    assert_eq!(code(&out), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("key \"bob\" is defined twice"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("20-b.json:1"), "{}", stderr(&out));
    fs::remove_file(&twice).unwrap();
    // A file that does not parse refuses everything.
    let broken = place.drop_in("50-broken.json", r#"{"keys": {"zed": [{"domains": []}]}}"#);
    let out = place.ssh(&alice, &format!("status {a}"));
    assert_eq!(code(&out), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("50-broken.json:1:"),
        "{}",
        stderr(&out)
    );
    fs::remove_file(&broken).unwrap();
    // Only keys and groups in a drop-in.
    let global = place.drop_in("60-global.json", r#"{"virsh": "/tmp/evil", "keys": {}}"#);
    let out = place.ssh(&alice, &format!("status {a}"));
    assert_eq!(code(&out), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("holds only `keys` and `groups`"),
        "{}",
        stderr(&out)
    );
    fs::remove_file(&global).unwrap();
    // A drop-in others could rewrite: refused whole, like the config.
    let open = place.drop_in("70-open.json", r#"{"keys": {}}"#);
    fs::set_permissions(&open, fs::Permissions::from_mode(0o666)).unwrap();
    let out = place.ssh(&alice, &format!("status {a}"));
    assert_eq!(code(&out), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("writable by group or others"),
        "{}",
        stderr(&out)
    );
    fs::remove_file(&open).unwrap();
    assert_eq!(code(&place.ssh(&alice, &format!("status {a}"))), Some(0));
}

#[test]
fn access_removed_reaches_a_piped_session_on_its_next_request() {
    let rig = Rig::get();
    let (web, db) = (unique("rw"), unique("rd"));
    rig.define(&web);
    rig.define(&db);
    let grants = |domains: &str| {
        format!(
            r#""groups": {{"team": ["alice", "bob"]}},
               "keys": {{"alice": [{{"domains": [{domains}]}}], "@team": [{{"domains": ["{db}"], "commands": ["status"]}}]}}"#
        )
    };
    let place = Place::new(&grants(&format!(r#""{web}""#)));
    let alice = place.key("alice", "restrict");
    let mut session = Piped::open(rig, &alice);
    assert_eq!(
        session.ask(&format!("status {web}")),
        (false, "shut off".into())
    );
    assert_eq!(
        session.ask(&format!("status {db}")),
        (false, "shut off".into())
    );
    // The administrator removes alice's grant and takes her out of the group.
    place.write(&grants(r#""nothing-of-hers""#).replace(r#"["alice", "bob"]"#, r#"["bob"]"#));
    assert_eq!(
        session.ask(&format!("destroy {web}")),
        (true, "dromaius: permission denied".into())
    );
    assert_eq!(
        session.ask(&format!("status {db}")),
        (true, "dromaius: permission denied".into())
    );
    // A config that no longer loads ends the session with 78.
    replace(&place.config, "{ this is not json");
    let (on_stderr, text) = session.ask(&format!("status {web}"));
    assert!(on_stderr && text.contains("the session ends"), "{text}");
    let (status, _) = session.finish();
    assert_eq!(status, Some(78));
    assert_eq!(rig.state(&web), "shut off");
}

#[test]
fn a_grant_that_expires_while_a_session_is_open_ends_with_it() {
    let rig = Rig::get();
    let web = unique("ew");
    rig.define(&web);
    let ends = std::time::SystemTime::now() + Duration::from_secs(4);
    let ends = ends
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expires = dromaius::expiry::utc(i64::try_from(ends).unwrap());
    let place = Place::new(&format!(
        r#""keys": {{"alice": [{{"domains": ["{web}"], "expires": "{expires}"}}]}}"#
    ));
    let alice = place.key("alice", "restrict");
    let mut session = Piped::open(rig, &alice);
    assert_eq!(
        session.ask(&format!("status {web}")),
        (false, "shut off".into())
    );
    let wait_until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < wait_until {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        session.ask(&format!("status {web}")),
        (true, "dromaius: permission denied".into())
    );
    let (status, _) = session.finish();
    assert_eq!(status, Some(77));
    // explain says it expired, and when; check warns.
    let out = Command::new(dromaius_bin())
        .args([
            "--config",
            place.config.to_str().unwrap(),
            "explain",
            "--key",
            "alice",
        ])
        .args(["status", &web])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(77), "{}", describe(&out));
    assert!(
        stdout(&out).contains(&format!("but it expired: {expires}")),
        "{}",
        stdout(&out)
    );
    let out = Command::new(dromaius_bin())
        .args(["--config", place.config.to_str().unwrap(), "check"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("has expired"), "{}", describe(&out));
}

#[test]
fn access_removed_reaches_the_prompt_between_two_requests() {
    let rig = Rig::get();
    let web = unique("pw");
    rig.define(&web);
    let place = Place::new(&format!(
        r#""keys": {{"alice": [{{"domains": ["{web}"]}}]}}"#
    ));
    let alice = place.key("alice", "restrict,pty");
    let prompt = "dromaius (alice)> ";
    let mut term = common::pty::Term::spawn(rig.ssh_tty_command(&alice, None));
    term.done(prompt);
    term.line(&format!("status {web}"));
    term.expect("shut off");
    term.done(prompt);
    place.write(r#""keys": {"alice": [{"domains": ["something-else"]}]}"#);
    term.line(&format!("status {web}"));
    term.expect("dromaius: permission denied");
    term.done(prompt);
    term.line("exit");
    assert_eq!(term.exit_code(), 0);
}

#[test]
fn an_idle_prompt_ends_the_session() {
    let rig = Rig::get();
    let place = Place::new(r#""idle_timeout_secs": 2, "keys": {"alice": [{"domains": ["x"]}]}"#);
    let alice = place.key("alice", "restrict,pty");
    let began = Instant::now();
    let mut term = common::pty::Term::spawn(rig.ssh_tty_command(&alice, None));
    term.done("dromaius (alice)> ");
    term.expect("dromaius: no request for 2 s; the session ends");
    assert_eq!(term.exit_code(), 0);
    assert!(began.elapsed() < Duration::from_secs(15));
}

#[test]
fn a_console_is_closed_when_its_access_is_revoked_and_is_free_again() {
    let rig = Rig::get();
    let name = unique("rc");
    let guest = common::guest::Guest::define(rig, &name);
    guest.start();
    let dir = make_temp_dir("teams-console");
    let config = dir.join("dromaius.json");
    let audit = AuditSink::new();
    let write = |domains: &str| {
        replace(
            &config,
            &format!(
                r#"{{"connect": "{}", "syslog_socket": "{}", "keys": {{"alice": [{{"domains": [{domains}]}}]}}}}"#,
                rig.qemu_uri(),
                audit.path().display()
            ),
        )
    };
    write(&format!(r#""{name}""#));
    let alice = rig.authorize_gateway(&config, "alice", "restrict,pty");
    let mut term =
        common::pty::Term::spawn(rig.ssh_tty_command(&alice, Some(&format!("console {name}"))));
    term.expect("Escape character is ^]");
    guest.attach(&mut term);
    write(r#""someone-else""#);
    let revoked = Instant::now();
    term.expect("dromaius: access to console on");
    term.expect("was revoked; the console of");
    assert_eq!(term.exit_code(), 77);
    assert!(
        revoked.elapsed() < Duration::from_secs(12),
        "{:?}",
        revoked.elapsed()
    );
    let records = audit.records(1, Duration::from_secs(5));
    assert!(
        records.iter().any(|r| r.contains("command=\"console\"")
            && r.contains("outcome=77")
            && r.contains("reason=\"revoked while attached\"")),
        "{records:?}"
    );
    // The console is free at once: another session attaches without "in use".
    write(&format!(r#""{name}""#));
    let mut again =
        common::pty::Term::spawn(rig.ssh_tty_command(&alice, Some(&format!("console {name}"))));
    again.expect("Escape character is ^]");
    guest.attach(&mut again);
    again.send("\x1d");
    assert_eq!(again.exit_code(), 0);
}

/// A key's fingerprint as `ssh-keygen -lf` prints it.
fn fingerprint(public: &Path) -> String {
    let out = Command::new("/usr/bin/ssh-keygen")
        .arg("-lf")
        .arg(public)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn records_name_the_key_and_the_certificate_that_logged_in() {
    let rig = Rig::get();
    let web = unique("id");
    rig.define(&web);
    let place = Place::new(&format!(
        r#""keys": {{"alice": [{{"domains": ["{web}"]}}]}}"#
    ));
    // A user CA, and an sshd that trusts it, with a principals file made by keyline.
    let ca_dir = make_temp_dir("ca");
    let ca = ca_dir.join("ca");
    let keygen = |args: &[&str]| {
        let out = Command::new("/usr/bin/ssh-keygen")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ssh-keygen {args:?}: {}",
            describe(&out)
        );
    };
    keygen(&[
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "rig-ca",
        "-f",
        ca.to_str().unwrap(),
    ]);
    let principals = ca_dir.join("principals");
    let out = Command::new(dromaius_bin())
        .args(["--config", place.config.to_str().unwrap()])
        .args(["keyline", "--key", "alice", "--principal", "alice-cert"])
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", describe(&out));
    fs::write(&principals, stdout(&out)).unwrap();
    let sshd = Sshd::start(&format!(
        "ExposeAuthInfo yes\nTrustedUserCAKeys {}.pub\nAuthorizedPrincipalsFile {}\n",
        ca.display(),
        principals.display()
    ));
    // A plain key, through that sshd: its record carries the key's fingerprint.
    let key = sshd.authorize_gateway(&place.config, "alice", "restrict");
    let out = sshd.ssh(&key, Some(&format!("status {web}")), b"");
    assert_eq!(code(&out), Some(0), "{}", describe(&out));
    let plain = fingerprint(&key.private.with_extension("pub"));
    assert!(plain.starts_with("SHA256:"), "{plain}");
    // A certificate for another key, principal alice-cert, key ID with a quote.
    let holder = sshd.key_pair(&["ed25519"]);
    keygen(&[
        "-q",
        "-s",
        ca.to_str().unwrap(),
        "-I",
        "alice \"laptop\"",
        "-n",
        "alice-cert",
        "-z",
        "4711",
        "-V",
        "-5m:+1h",
        holder.private.with_extension("pub").to_str().unwrap(),
    ]);
    let out = sshd.ssh(&holder, Some(&format!("status {web}")), b"");
    assert_eq!(code(&out), Some(0), "{}", describe(&out));
    let certified = fingerprint(&holder.private.with_extension("pub"));
    let records = place.records(2);
    assert!(
        records[0].ends_with(&format!("fingerprint=\"{plain}\"")),
        "{records:?}"
    );
    assert!(
        records[1].ends_with(&format!(
            "fingerprint=\"{certified}\" cert_id=\"alice \\\"laptop\\\"\" cert_serial=4711"
        )),
        "{records:?}"
    );
    // check lints the principals file as it lints authorized_keys.
    let out = Command::new(dromaius_bin())
        .args([
            "--config",
            place.config.to_str().unwrap(),
            "check",
            "--principals",
        ])
        .arg(&principals)
        .output()
        .unwrap();
    assert_eq!(code(&out), Some(0), "{}", describe(&out));
    assert!(
        stdout(&out).contains("1 principal, 1 running dromaius, 0 problems"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_planted_or_missing_auth_file_is_ignored() {
    let rig = Rig::get();
    let web = unique("pl");
    rig.define(&web);
    let place = Place::new(&format!(
        r#""keys": {{"alice": [{{"domains": ["{web}"]}}]}}"#
    ));
    let planted = common::write_file(
        "sshauth",
        "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOfb/7kbKfr3AjNl3jHAXBH+RQUE6upd6pNR0ybkiR8v\n",
    );
    for auth in [
        planted.display().to_string(),
        "/tmp/sshauth.ABCDEFGHIJKLMNO".to_owned(),
        "/nonexistent/sshauth.x".to_owned(),
    ] {
        let run = common::direct::Invocation::new(&place.config, &["--key", "alice"])
            .request(format!("status {web}").as_bytes())
            .env(vec![
                ("PATH".into(), "/usr/bin:/bin".into()),
                ("SSH_USER_AUTH".into(), auth.clone().into()),
            ])
            .run();
        assert_eq!(
            run.output.status.code(),
            Some(0),
            "{auth}: {:?}",
            run.output
        );
    }
    let records = place.records(3);
    assert_eq!(records.len(), 3, "{records:?}");
    for record in records {
        assert!(!record.contains("fingerprint="), "{record}");
    }
}
