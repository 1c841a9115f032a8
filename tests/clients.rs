//! A user's own libvirt tools through the real gateway and the real sshd: `virsh -c
//! 'test+ssh://...'` in netcat and native modes, python3-libvirt doing virt-manager's
//! connect sequence, a raw-protocol attacker over ssh, revocation while connected, and a
//! key whose hypervisors are not on this host. The same `authorized_keys` line serves the
//! request grammar and these.

use dromaius_rig as common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::support::make_temp_dir;
use common::{AuditSink, Rig, SshKey, code, stderr, stdout, unique, write_file};

const PYTHON: &str = "/usr/bin/python3";

/// One test's domains on the rig's test driver, a config granting `alice` some of them
/// (read and `start`/`destroy` on hers, `status` only on `shared`), and alice's key.
struct World {
    rig: &'static Rig,
    config: PathBuf,
    audit: AuditSink,
    key: SshKey,
    /// A HOME for the clients, so that nothing of root's is read or written.
    home: PathBuf,
    mine: String,
    shared: String,
    theirs: String,
}

impl World {
    fn new() -> World {
        let rig = Rig::get();
        let p = unique("cl");
        let (mine, shared, theirs) = (
            format!("{p}-alice"),
            format!("{p}-shared"),
            format!("{p}-bob"),
        );
        for name in [&mine, &shared, &theirs] {
            rig.define(name);
        }
        let audit = AuditSink::new();
        let config = write_file("clients.json", "{}");
        let world_home = make_temp_dir("client-home");
        let world = World {
            rig,
            config,
            audit,
            key: rig.stranger_key(),
            home: world_home,
            mine,
            shared,
            theirs,
        };
        world.write_keys(&world.alice_grants());
        World {
            key: rig.authorize_gateway(&world.config, "alice", "restrict"),
            ..world
        }
    }

    fn alice_grants(&self) -> String {
        format!(
            r#"{{"alice": [
                {{"domains": ["{}"], "commands": ["start", "destroy", "status"]}},
                {{"domains": ["{}"], "commands": ["status"]}}
            ], "bob": [{{"domains": ["{}"]}}]}}"#,
            self.mine, self.shared, self.theirs
        )
    }

    /// Rewrites the config in one step, with `keys` as given.
    fn write_keys(&self, keys: &str) {
        let text = format!(
            r#"{{"connect": "{}", "syslog_socket": "{}", "keys": {keys}}}"#,
            self.rig.test_uri(),
            self.audit.path().display()
        );
        let fresh = self.config.with_extension("new");
        std::fs::write(&fresh, text).unwrap();
        std::fs::rename(&fresh, &self.config).unwrap();
    }

    /// The URI a user's virsh would be given, in `proxy` mode. The socket it names is not
    /// one dromaius serves: the gateway chooses the daemon, never the client.
    fn uri(&self, proxy: &str) -> String {
        format!(
            "test+ssh://root@127.0.0.1:{}/default?keyfile={}&no_verify=1&proxy={proxy}{}",
            self.rig.ssh_port(),
            self.key.private.display(),
            if proxy == "netcat" {
                "&socket=/var/run/libvirt/libvirt-sock"
            } else {
                ""
            }
        )
    }

    fn client(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", &self.home)
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        command
    }

    fn virsh(&self, proxy: &str, args: &[&str]) -> Output {
        let mut command = self.client("/usr/bin/virsh");
        command.arg("-c").arg(self.uri(proxy)).args(args);
        common::run(command, b"", Duration::from_secs(60))
    }

    fn records(&self, at_least: usize) -> Vec<String> {
        self.audit.records(at_least, Duration::from_secs(5))
    }
}

fn field(record: &str, name: &str) -> Option<String> {
    common::direct::audit_fields(record)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

#[test]
fn virsh_sees_and_touches_only_the_keys_domains_in_both_proxy_modes() {
    let world = World::new();
    for proxy in ["netcat", "native"] {
        let out = world.virsh(proxy, &["list", "--all", "--name"]);
        assert_eq!(code(&out), Some(0), "{proxy}: {}", stderr(&out));
        let text = stdout(&out);
        let mut listed: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        listed.sort();
        let mut expected = vec![world.mine.as_str(), world.shared.as_str()];
        expected.sort();
        assert_eq!(listed, expected, "{proxy}");
        for name in [&world.mine, &world.shared] {
            for command in ["domstate", "dominfo", "dumpxml"] {
                let out = world.virsh(proxy, &[command, name]);
                assert_eq!(
                    code(&out),
                    Some(0),
                    "{proxy} {command} {name}: {}",
                    stderr(&out)
                );
            }
        }
        // Another key's domain and no domain at all: the very same answer.
        let theirs = world.virsh(proxy, &["domstate", &world.theirs]);
        let missing = world.virsh(proxy, &["domstate", "no-such-domain-here"]);
        assert_eq!(code(&theirs), Some(1));
        assert_eq!(
            stderr(&theirs).replace(&world.theirs, "NAME"),
            stderr(&missing).replace("no-such-domain-here", "NAME"),
            "{proxy}"
        );
        // Acting: by the grant's commands only.
        let out = world.virsh(proxy, &["start", &world.mine]);
        assert_eq!(code(&out), Some(0), "{proxy}: {}", stderr(&out));
        assert_eq!(world.rig.state(&world.mine), "running");
        let out = world.virsh(proxy, &["destroy", &world.mine]);
        assert_eq!(code(&out), Some(0), "{proxy}: {}", stderr(&out));
        let out = world.virsh(proxy, &["start", &world.shared]);
        assert_eq!(code(&out), Some(1), "{proxy}");
        assert!(
            stderr(&out).contains("access denied"),
            "{proxy}: {}",
            stderr(&out)
        );
        assert_eq!(world.rig.state(&world.shared), "shut off");
        // Everything else libvirt can do: refused, with libvirt's own access-denied error.
        let xml = world.home.join("new.xml");
        std::fs::write(
            &xml,
            format!(
                "<domain type='test'><name>{}-made</name><memory>65536</memory><os><type>hvm</type></os></domain>",
                world.mine
            ),
        )
        .unwrap();
        for args in [
            vec!["define", xml.to_str().unwrap()],
            vec!["undefine", &world.mine],
            vec!["setmem", &world.mine, "32768", "--config"],
            vec!["net-list", "--all"],
        ] {
            let out = world.virsh(proxy, &args);
            assert_eq!(code(&out), Some(1), "{proxy} {args:?}");
            assert!(
                stderr(&out).contains("access denied"),
                "{proxy} {args:?}: {}",
                stderr(&out)
            );
        }
        let defined: Vec<String> = world.rig.domains().into_iter().map(|(_, n)| n).collect();
        assert!(defined.contains(&world.mine), "{proxy}: undefined");
        assert!(
            !defined.iter().any(|n| n.ends_with("-made")),
            "{proxy}: defined"
        );
    }
    // One record per call that acted or was denied, with the key and the domain.
    let records = world.records(10);
    let started = records
        .iter()
        .filter(|r| field(r, "command").as_deref() == Some("start"))
        .count();
    assert!(started >= 4, "{records:#?}");
    assert!(
        records
            .iter()
            .any(|r| field(r, "decision").as_deref() == Some("deny")
                && field(r, "domain").as_deref() == Some(world.shared.as_str())),
        "{records:#?}"
    );
    for record in &records {
        assert_eq!(field(record, "key").as_deref(), Some("alice"), "{record}");
    }
}

#[test]
fn python_libvirt_connects_as_virt_manager_does_and_a_revoked_domain_vanishes() {
    let world = World::new();
    let script = format!(
        r#"
import libvirt, sys, time
conn = libvirt.open(sys.argv[1])
conn.getInfo(); conn.getCapabilities(); conn.getLibVersion(); conn.getHostname(); conn.getURI()
names = sorted(d.name() for d in conn.listAllDomains(0))
print("listed", " ".join(names))
dom = conn.lookupByName("{mine}")
dom.XMLDesc(0); dom.info(); dom.state(); dom.isActive()
same = conn.lookupByUUIDString(dom.UUIDString())
print("uuid", same.name())
for name in ["{theirs}", "nowhere"]:
    try:
        conn.lookupByName(name); print("found", name)
    except libvirt.libvirtError as e:
        print("missing", e.get_error_code())
try:
    conn.networkLookupByName("default"); print("network")
except libvirt.libvirtError as e:
    print("network refused", e.get_error_code())
sys.stdout.flush()
sys.stdin.readline()
time.sleep(12)
names = sorted(d.name() for d in conn.listAllDomains(0))
print("then", " ".join(names))
conn.close()
"#,
        mine = world.mine,
        theirs = world.theirs
    );
    let mut python = world.client(PYTHON);
    python
        .args(["-c", &script, &world.uri("netcat")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = python.spawn().expect("python3");
    let mut stdin = child.stdin.take().expect("stdin");
    // Revoked while connected: the shared domain leaves alice's grants.
    let mut out = child.stdout.take().expect("stdout");
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buffer = [0u8; 4096];
    while !seen.contains("network ") && Instant::now() < deadline {
        let n = out.read(&mut buffer).unwrap_or(0);
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buffer[..n]));
    }
    world.write_keys(&format!(
        r#"{{"alice": [{{"domains": ["{}"], "commands": ["start", "destroy", "status"]}}]}}"#,
        world.mine
    ));
    writeln!(stdin, "go").unwrap();
    drop(stdin);
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    let status = child.wait().expect("python3 ends");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let said = seen + &rest;
    assert!(status.success(), "{said}\n{err}");
    let mut both = [world.mine.clone(), world.shared.clone()];
    both.sort();
    assert!(
        said.contains(&format!("listed {}", both.join(" "))),
        "{said}"
    );
    assert!(said.contains(&format!("uuid {}", world.mine)), "{said}");
    // VIR_ERR_NO_DOMAIN (42) for another key's domain and for none at all.
    assert_eq!(said.matches("missing 42").count(), 2, "{said}");
    // VIR_ERR_ACCESS_DENIED (88).
    assert!(said.contains("network refused 88"), "{said}");
    assert!(said.contains(&format!("then {}\n", world.mine)), "{said}");
}

/// A client that speaks anything but libvirt's protocol is cut off: nothing is forwarded,
/// no domain changes.
#[test]
fn garbage_and_oversize_packets_end_the_connection_and_change_nothing() {
    let world = World::new();
    let command = dromaius::tunnel::render(&dromaius::tunnel::Tunnel::Libvirt {
        proxy: dromaius::tunnel::Proxy::Netcat,
        read_only: false,
        uri: None,
        socket: Some("/var/run/libvirt/libvirt-sock".into()),
    })
    .expect("the netcat command");
    let mut oversize = 0x7fff_ffffu32.to_be_bytes().to_vec();
    oversize.extend([0u8; 64]);
    for (what, bytes) in [
        ("oversize", oversize),
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("too short", 8u32.to_be_bytes().to_vec()),
    ] {
        let out = world.rig.ssh(&world.key, Some(&command), &bytes);
        assert_ne!(code(&out), Some(0), "{what}");
        assert!(out.stdout.is_empty(), "{what}: {:?}", out.stdout);
        assert!(
            stderr(&out).contains("dromaius: the libvirt connection"),
            "{what}: {}",
            stderr(&out)
        );
    }
    for name in [&world.mine, &world.shared, &world.theirs] {
        assert_eq!(world.rig.state(name), "shut off");
    }
}

#[test]
fn a_key_whose_hypervisors_are_elsewhere_is_told_so() {
    let rig = Rig::get();
    let config = write_file(
        "far.json",
        r#"{"hypervisors": {"far": "qemu+ssh://dromaius@hv9.example/system"}, "connect": "far", "syslog_socket": "/nonexistent/log", "keys": {"alice": [{"domains": ["*"]}]}}"#,
    );
    let key = rig.authorize_gateway(&config, "alice", "restrict");
    let command = dromaius::tunnel::render(&dromaius::tunnel::Tunnel::Libvirt {
        proxy: dromaius::tunnel::Proxy::Native,
        read_only: false,
        uri: Some("qemu:///system".into()),
        socket: None,
    })
    .expect("the native command");
    let out = rig.ssh(&key, Some(&command), b"");
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("reach only a hypervisor on this host")
            && stderr(&out).contains("far"),
        "{}",
        stderr(&out)
    );
    assert!(Path::new(&config).exists());
}
