//! A granted name reaches only the domain of that name, however virsh could read it.
//!
//! virsh tries a domain argument as an id, then a UUID, then a name. Here granted domains
//! are named like other, running domains' ids (`2`, `+2`, `02`, `-0`) and UUIDs (canonical,
//! upper case, dashes moved, dashes removed); every command on every such name, through the
//! real binary, changes only the domain of that name. And a name virsh can read only as a
//! name takes one virsh run, whatever the host holds.

use dromaius_rig as common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::direct::Invocation;
use common::{AuditSink, Rig, unique, write_file};

/// Running domains the impostors are named after, and the impostors themselves.
struct Host {
    rig: &'static Rig,
    /// Victim name → UUID.
    victims: BTreeMap<String, String>,
    /// The granted names, each a real (shut off) domain of its own.
    impostors: Vec<String>,
    config: PathBuf,
    _audit: AuditSink,
}

/// The spellings of a UUID that virsh or libvirt read as that UUID.
fn uuid_spellings(uuid: &str) -> Vec<String> {
    let hex: String = uuid.chars().filter(|c| *c != '-').collect();
    // Dashes after the 2nd, 4th, 9th and 13th pair: not 8-4-4-4-12, still 36 bytes.
    let mut moved = String::new();
    for (index, pair) in hex.as_bytes().chunks(2).enumerate() {
        if [2, 4, 9, 13].contains(&index) {
            moved.push('-');
        }
        moved.push_str(std::str::from_utf8(pair).unwrap());
    }
    vec![uuid.to_owned(), uuid.to_ascii_uppercase(), moved, hex]
}

fn host() -> Host {
    let rig = Rig::get();
    let mut victims = BTreeMap::new();
    for _ in 0..3 {
        let name = unique("victim");
        rig.define(&name);
        rig.start(&name);
        let uuid = rig.uuid(&name);
        victims.insert(name, uuid);
    }
    let mut impostors: Vec<String> = Vec::new();
    for name in victims.keys() {
        let id = rig.virsh_ok(&["domid", "--domain", &victims[name]]);
        let id = id.trim().to_owned();
        impostors.extend([id.clone(), format!("+{id}"), format!("0{id}")]);
        impostors.extend(uuid_spellings(&victims[name]));
    }
    impostors.push("-0".into());
    for impostor in &impostors {
        rig.define(impostor);
    }
    let audit = AuditSink::new();
    let grants: Vec<String> = impostors.iter().map(|n| format!("\"{n}\"")).collect();
    let config = write_file(
        "aliasing.json",
        &format!(
            r#"{{"connect": "{}", "syslog_socket": "{}", "keys": {{"k": [{{"domains": [{}]}}]}}}}"#,
            rig.test_uri(),
            audit.path().display(),
            grants.join(", ")
        ),
    );
    Host {
        rig,
        victims,
        impostors,
        config,
        _audit: audit,
    }
}

impl Host {
    fn request(&self, line: &str) -> (Option<i32>, String, String) {
        let run = Invocation::new(&self.config, &["--key", "k"])
            .request(line.as_bytes())
            .run();
        (
            run.output.status.code(),
            String::from_utf8_lossy(&run.output.stdout).into_owned(),
            String::from_utf8_lossy(&run.output.stderr).into_owned(),
        )
    }

    fn assert_victims_running(&self, after: &str) {
        for (name, uuid) in &self.victims {
            let state = self.rig.virsh_ok(&["domstate", "--domain", uuid]);
            assert_eq!(state.trim(), "running", "{name} changed after {after}");
        }
    }
}

#[test]
fn every_command_on_an_id_or_uuid_shaped_name_reaches_only_that_domain() {
    let host = host();
    host.assert_victims_running("setup");
    for impostor in &host.impostors {
        let state = |host: &Host| host.rig.state(impostor);
        let steps: [(&str, i32, Option<&str>); 8] = [
            ("status", 0, Some("shut off")),
            ("start", 0, Some("running")),
            ("status", 0, Some("running")),
            ("reboot", 0, Some("running")),
            ("reset", 0, Some("running")),
            ("shutdown", 0, Some("shut off")),
            ("start", 0, Some("running")),
            ("destroy", 0, Some("shut off")),
        ];
        for (command, expected, after) in steps {
            let line = format!("{command} {impostor}");
            let (code, stdout, stderr) = host.request(&line);
            assert_eq!(code, Some(expected), "{line}: {stdout} {stderr}");
            if command == "status" {
                assert_eq!(stdout.trim(), after.unwrap_or_default(), "{line}");
            } else {
                // virsh names the domain it acted on; it must be the impostor, by name.
                assert!(stdout.contains(impostor.as_str()), "{line}: {stdout}");
            }
            if let Some(after) = after {
                assert_eq!(state(&host), after, "{line}");
            }
            host.assert_victims_running(&line);
        }
        // Acting on a shut-off impostor fails on it, never on the running namesake.
        for command in ["destroy", "shutdown", "reboot", "reset"] {
            let line = format!("{command} {impostor}");
            let (code, _, stderr) = host.request(&line);
            assert_eq!(code, Some(1), "{line}: {stderr}");
            host.assert_victims_running(&line);
        }
    }
}

#[test]
fn a_name_virsh_reads_only_as_a_name_takes_one_virsh_run() {
    let rig = Rig::get();
    let web = unique("web");
    rig.define(&web);
    let number = unique("7").replace('-', "");
    rig.define(&number);
    let audit = AuditSink::new();
    let config = write_file(
        "one-run.json",
        &format!(
            r#"{{"connect": "{}", "syslog_socket": "{}", "keys": {{"k": [{{"domains": ["{web}", "{number}"]}}]}}}}"#,
            rig.test_uri(),
            audit.path().display()
        ),
    );
    let virsh_runs = |line: &str| {
        let run = Invocation::new(&config, &["--key", "k"])
            .request(line.as_bytes())
            .traced()
            .run();
        assert_eq!(
            run.output.status.code(),
            Some(0),
            "{line}: {:?}",
            run.output
        );
        run.execs
            .iter()
            .filter(|e| e.path == b"/usr/bin/virsh")
            .map(|e| e.argv_str()[1..].join(" "))
            .collect::<Vec<_>>()
    };
    let uri = rig.test_uri();
    assert_eq!(
        virsh_runs(&format!("status {web}")),
        [format!(
            "--connect {uri} --readonly domstate --domain {web}"
        )]
    );
    assert_eq!(
        virsh_runs(&format!("start {web}")),
        [format!("--connect {uri} start --domain {web}")]
    );
    // All digits: virsh could read it as an id, so it is resolved to its UUID first.
    let uuid = rig.uuid(&number);
    assert_eq!(
        virsh_runs(&format!("status {number}")),
        [
            format!("--connect {uri} --readonly list --all --id --uuid --name"),
            format!("--connect {uri} --readonly domstate --domain {uuid}")
        ]
    );
    // A granted name that does not exist is said so, from that one run.
    let missing = unique("gone");
    let config = write_file(
        "missing.json",
        &format!(
            r#"{{"connect": "{}", "syslog_socket": "{}", "keys": {{"k": [{{"domains": ["{missing}"]}}]}}}}"#,
            rig.test_uri(),
            audit.path().display()
        ),
    );
    let run = Invocation::new(&config, &["--key", "k"])
        .request(format!("start {missing}").as_bytes())
        .run();
    assert_eq!(run.output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&run.output.stderr),
        format!("dromaius: no domain named \"{missing}\"\n")
    );
}
