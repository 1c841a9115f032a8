//! The RPC filter against the real daemon and real clients, without sshd: a unix socket
//! in a temp dir stands for the SSH channel, each connection to it runs
//! `dromaius::rpc::relay` to the rig's libvirtd with grants over fixed names, and real
//! `virsh`, real python3-libvirt (virt-manager's connect sequence and events) and a
//! raw-protocol attacker written here connect to it.

use dromaius_rig as common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::support::make_temp_dir;
use common::{Rig, describe, unique};
use dromaius::action::Action;
use dromaius::rpc::remote::{self, Domain, QEMU_PROGRAM, REMOTE_PROGRAM, Uuid, proc};
use dromaius::rpc::wire::{self, Header, Packet, Status, Type};
use dromaius::rpc::xdr::{Reader, Writer};
use dromaius::rpc::{Call, ClientOut, Context, Ending, Filter, Grants, relay};

const PYTHON: &str = "/usr/bin/python3";

/// Grants over fixed names.
#[derive(Clone, Default)]
struct Names {
    see: Vec<String>,
    act: Vec<(Action, String)>,
}

impl Grants for Names {
    fn may_see(&self, name: &str) -> bool {
        self.see.iter().any(|n| n == name)
    }
    fn may(&self, action: Action, name: &str) -> bool {
        self.act.iter().any(|(a, n)| *a == action && n == name)
    }
}

struct Recorder {
    grants: Names,
    audit: Arc<Mutex<Vec<Call>>>,
}

impl Context for Recorder {
    fn grants(&mut self) -> Result<&dyn Grants, String> {
        Ok(&self.grants)
    }
    fn audit(&mut self, call: &Call) {
        self.audit.lock().unwrap().push(call.clone());
    }
}

/// A listening socket whose every connection is filtered to the rig's libvirtd.
struct Gateway {
    socket: PathBuf,
    audit: Arc<Mutex<Vec<Call>>>,
    endings: Arc<Mutex<Vec<Ending>>>,
}

impl Gateway {
    fn start(grants: Names) -> Gateway {
        Gateway::start_for(grants, "test:///default")
    }

    /// A gateway whose connections open `uri` on the rig's daemon.
    fn start_for(grants: Names, uri: &'static str) -> Gateway {
        let rig = Rig::get();
        let dir = make_temp_dir("rpc");
        let socket = dir.join("gateway.sock");
        let listener = UnixListener::bind(&socket).expect("bind the gateway socket");
        let audit = Arc::new(Mutex::new(Vec::new()));
        let endings = Arc::new(Mutex::new(Vec::new()));
        let (audit_in, endings_in) = (audit.clone(), endings.clone());
        let daemon_socket = rig.socket().to_path_buf();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let mut daemon =
                    UnixStream::connect(&daemon_socket).expect("connect to the rig's libvirtd");
                let mut context = Recorder {
                    grants: grants.clone(),
                    audit: audit_in.clone(),
                };
                let endings = endings_in.clone();
                thread::spawn(move || {
                    let mut filter = Filter::new(uri);
                    let to_client = ClientOut {
                        fd: client.as_fd(),
                        nonblocking: false,
                    };
                    let ending = relay(
                        client.as_fd(),
                        to_client,
                        &mut daemon,
                        &mut filter,
                        &mut context,
                    );
                    endings.lock().unwrap().push(ending);
                });
            }
        });
        Gateway {
            socket,
            audit,
            endings,
        }
    }

    fn uri(&self) -> String {
        format!("test+unix:///default?socket={}", self.socket.display())
    }

    fn virsh(&self, args: &[&str]) -> Output {
        Rig::get().virsh_uri(&self.uri(), args)
    }

    /// Waits for every connection so far to end and checks none was refused: a standard
    /// client never trips the filter's protocol checks.
    fn assert_no_refusal(&self) {
        thread::sleep(Duration::from_millis(300));
        let endings = self.endings.lock().unwrap().clone();
        assert!(
            endings.iter().all(|e| !matches!(e, Ending::Refused(_))),
            "{endings:?}"
        );
    }

    fn audited(&self) -> Vec<Call> {
        self.audit.lock().unwrap().clone()
    }
}

/// The domains of one test: granted to act, granted to see only, not granted.
struct World {
    gateway: Gateway,
    web: String,
    ro: String,
    db: String,
}

fn world() -> World {
    let rig = Rig::get();
    let (web, ro, db) = (unique("rpcweb"), unique("rpcro"), unique("rpcdb"));
    for name in [&web, &ro, &db] {
        rig.define(name);
    }
    let act = [
        Action::Start,
        Action::Destroy,
        Action::Suspend,
        Action::Resume,
    ]
    .into_iter()
    .map(|a| (a, web.clone()))
    .collect();
    let gateway = Gateway::start(Names {
        see: vec![web.clone(), ro.clone()],
        act,
    });
    World {
        gateway,
        web,
        ro,
        db,
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const DENIED: &str = "access denied: 'dromaius' denied access";

#[test]
fn virsh_lists_only_granted_domains() {
    let w = world();
    let out = w.gateway.virsh(&["list", "--all", "--name"]);
    assert!(out.status.success(), "{}", describe(&out));
    let names: Vec<String> = stdout(&out)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(names, [w.ro.clone(), w.web.clone()], "{}", describe(&out));
    // The old-style listing calls, too.
    for args in [&["list", "--name"][..], &["list", "--inactive", "--name"]] {
        let out = w.gateway.virsh(args);
        assert!(out.status.success(), "{}", describe(&out));
        assert!(!stdout(&out).contains(&w.db), "{}", describe(&out));
        assert!(!stdout(&out).contains("test\n"), "{}", describe(&out));
    }
}

#[test]
fn virsh_reads_granted_domains_and_ungranted_ones_look_missing() {
    let w = world();
    for name in [&w.web, &w.ro] {
        for cmd in ["domstate", "dominfo", "dumpxml", "domuuid", "domid"] {
            let out = w.gateway.virsh(&[cmd, "--domain", name]);
            assert!(out.status.success(), "{cmd} {name}: {}", describe(&out));
        }
    }
    // An ungranted domain, a missing one, and the default `test` (running, id 1): the
    // very same error, name for name.
    let missing = unique("rpcnone");
    let uuid_db = Rig::get().uuid(&w.db);
    let mut errors = Vec::new();
    for name in [&w.db, &missing, &"test".to_string()] {
        let out = w.gateway.virsh(&["domstate", "--domain", name]);
        assert!(!out.status.success(), "{}", describe(&out));
        errors.push(stderr(&out).replace(name.as_str(), "NAME"));
    }
    assert_eq!(errors[0], errors[1], "ungranted vs missing");
    assert_eq!(errors[0], errors[2], "ungranted vs missing");
    // And what the daemon itself says of a missing domain, without the gateway.
    let direct = Rig::get().virsh(&["domstate", "--domain", &missing]);
    assert_eq!(errors[0], stderr(&direct).replace(missing.as_str(), "NAME"));
    // By UUID, ungranted vs an unknown UUID.
    let out_db = w.gateway.virsh(&["domstate", "--domain", &uuid_db]);
    let other = "11111111-2222-3333-4444-555555555555";
    let out_none = w.gateway.virsh(&["domstate", "--domain", other]);
    assert_eq!(
        stderr(&out_db).replace(&uuid_db, "U"),
        stderr(&out_none).replace(other, "U")
    );
    // By id: `test` runs as id 1 and is not granted.
    let out = w.gateway.virsh(&["domstate", "--domain", "1"]);
    assert_eq!(
        stderr(&out).replace('1', "NAME"),
        errors[0].replace('1', "NAME")
    );
    // The XML never carries what only SECURE shows, however asked.
    let out = w
        .gateway
        .virsh(&["dumpxml", "--security-info", "--domain", &w.web]);
    assert!(out.status.success(), "{}", describe(&out));
    // MIGRATABLE is read_secure in libvirt's acl: refused.
    let out = w
        .gateway
        .virsh(&["dumpxml", "--migratable", "--domain", &w.web]);
    assert!(stderr(&out).contains(DENIED), "{}", describe(&out));
}

#[test]
fn virsh_acts_only_by_the_grants_commands() {
    let w = world();
    let rig = Rig::get();
    let out = w.gateway.virsh(&["start", "--domain", &w.web]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(rig.state(&w.web), "running");
    for (cmd, state) in [
        ("suspend", "paused"),
        ("resume", "running"),
        ("destroy", "shut off"),
    ] {
        let out = w.gateway.virsh(&[cmd, "--domain", &w.web]);
        assert!(out.status.success(), "{cmd}: {}", describe(&out));
        assert_eq!(rig.state(&w.web), state, "{cmd}");
    }
    // Visible but not granted to start: access denied. Ungranted: missing.
    let out = w.gateway.virsh(&["start", "--domain", &w.ro]);
    assert!(stderr(&out).contains(DENIED), "{}", describe(&out));
    assert_eq!(rig.state(&w.ro), "shut off");
    let out = w.gateway.virsh(&["start", "--domain", &w.db]);
    let missing = unique("rpcnone");
    let none = w.gateway.virsh(&["start", "--domain", &missing]);
    assert!(!out.status.success(), "{}", describe(&out));
    assert_eq!(
        stderr(&out).replace(w.db.as_str(), "NAME"),
        stderr(&none).replace(missing.as_str(), "NAME")
    );
    assert_eq!(rig.state(&w.db), "shut off");
    // Start with flags other than paused.
    let out = w
        .gateway
        .virsh(&["start", "--autodestroy", "--domain", &w.web]);
    assert!(stderr(&out).contains(DENIED), "{}", describe(&out));
    assert_eq!(rig.state(&w.web), "shut off");
    let audit = w.gateway.audited();
    let started: Vec<&Call> = audit
        .iter()
        .filter(|c| c.action == Some(Action::Start) && c.allowed)
        .collect();
    assert_eq!(started.len(), 1, "{audit:?}");
    assert_eq!(started[0].domain.as_deref(), Some(w.web.as_str()));
}

#[test]
fn virsh_changes_nothing_else() {
    let w = world();
    let rig = Rig::get();
    let xml = common::write_file(
        "new.xml",
        &format!(
            "<domain type='test'><name>{}</name><memory>65536</memory>\
             <os><type>hvm</type></os></domain>\n",
            unique("rpcnew")
        ),
    );
    let cases: Vec<Vec<String>> = vec![
        vec!["define".into(), "--file".into(), xml.display().to_string()],
        vec!["undefine".into(), "--domain".into(), w.web.clone()],
        vec![
            "setmem".into(),
            "--domain".into(),
            w.web.clone(),
            "32768".into(),
            "--config".into(),
        ],
        vec!["net-list".into(), "--all".into()],
        vec!["pool-list".into(), "--all".into()],
        vec!["autostart".into(), "--domain".into(), w.web.clone()],
    ];
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = w.gateway.virsh(&args);
        assert!(!out.status.success(), "{args:?}: {}", describe(&out));
        assert!(
            stderr(&out).contains(DENIED),
            "{args:?}: {}",
            describe(&out)
        );
    }
    assert!(
        rig.domains().iter().any(|(_, n)| n == &w.web),
        "web still defined"
    );
    let xml = rig.virsh_ok(&["dumpxml", "--domain", &rig.uuid(&w.web)]);
    assert!(xml.contains("65536"), "memory unchanged");
    w.gateway.assert_no_refusal();
}

/// virt-manager's connect sequence through python3-libvirt, then events for a granted
/// and an ungranted domain started from outside.
const PYTHON_CLIENT: &str = r#"
import sys, time, libvirt
uri, ungranted, ungranted_uuid = sys.argv[1], sys.argv[2], sys.argv[3]
libvirt.virEventRegisterDefaultImpl()
libvirt.registerErrorHandler(lambda *a: None, None)
c = libvirt.open(uri)
c.getInfo(); c.getCapabilities(); c.getLibVersion(); c.getVersion(); c.getType()
c.getURI(); c.getHostname(); c.isSecure(); c.getMaxVcpus(None)
c.setKeepAlive(5, 3)
c.registerCloseCallback(lambda *a: None, None)
doms = c.listAllDomains(0)
print("LIST", " ".join(sorted(d.name() for d in doms)), flush=True)
for d in doms:
    d.XMLDesc(libvirt.VIR_DOMAIN_XML_SECURE | libvirt.VIR_DOMAIN_XML_INACTIVE)
    d.XMLDesc(0); d.info(); d.state(); d.isActive(); d.isPersistent()
    d.hasManagedSaveImage(0); d.autostart(); d.ID(); d.UUIDString()
    c.lookupByUUIDString(d.UUIDString())
print("STATS", " ".join(sorted(d.name() for d, _ in c.getAllDomainStats(0, 0))), flush=True)
print("OLD", c.numOfDomains() + c.numOfDefinedDomains(), len(c.listDomainsID()) + len(c.listDefinedDomains()), flush=True)
def err(f):
    try:
        f()
        return "ok"
    except libvirt.libvirtError as e:
        return "%d %s" % (e.get_error_code(), e.get_error_message())
print("BYNAME", err(lambda: c.lookupByName(ungranted)), flush=True)
print("BYUUID", err(lambda: c.lookupByUUIDString(ungranted_uuid)), flush=True)
print("NETS", err(lambda: c.listAllNetworks(0)), flush=True)
print("NETEVENT", err(lambda: c.networkEventRegisterAny(None, 0, lambda *a: None, None)), flush=True)
def lifecycle(conn, dom, event, detail, opaque):
    print("EVENT", dom.name(), event, flush=True)
c.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, None)
libvirt.virEventAddTimeout(100, lambda *a: None, None)
print("READY", flush=True)
deadline = time.time() + float(sys.argv[4])
while time.time() < deadline:
    libvirt.virEventRunDefaultImpl()
print("ALIVE", c.isAlive(), flush=True)
c.close()
"#;

#[test]
fn python_libvirt_connects_as_virt_manager_does_and_gets_only_granted_events() {
    assert!(
        std::path::Path::new(PYTHON).exists()
            && Command::new(PYTHON)
                .args(["-c", "import libvirt"])
                .status()
                .is_ok_and(|s| s.success()),
        "{PYTHON} with the libvirt module is needed: apt-get install python3-libvirt"
    );
    let w = world();
    let rig = Rig::get();
    let db_uuid = rig.uuid(&w.db);
    let mut child = Command::new(PYTHON)
        .args(["-c", PYTHON_CLIENT, &w.gateway.uri(), &w.db, &db_uuid, "4"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", rig.dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    for line in lines.by_ref() {
        let line = line.expect("a line");
        seen.push(line.clone());
        if line == "READY" || Instant::now() > deadline {
            break;
        }
    }
    assert_eq!(seen.last().map(String::as_str), Some("READY"), "{seen:?}");
    rig.start(&w.db);
    rig.start(&w.web);
    rig.destroy(&w.db);
    rig.destroy(&w.web);
    for line in lines {
        seen.push(line.expect("a line"));
    }
    let status = child.wait().expect("python3 ends");
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .ok();
    assert!(status.success(), "{seen:?}\n{err}");
    let text = seen.join("\n");
    assert!(seen.contains(&format!("LIST {} {}", w.ro, w.web)), "{text}");
    assert!(
        seen.contains(&format!("STATS {} {}", w.ro, w.web)),
        "{text}"
    );
    assert!(seen.contains(&"OLD 2 2".to_string()), "{text}");
    assert!(
        seen.contains(&"BYNAME 42 Domain not found".to_string()),
        "{text}"
    );
    assert!(
        seen.contains(&"BYUUID 42 Domain not found".to_string()),
        "{text}"
    );
    assert!(seen.contains(&format!("NETS 88 {DENIED}")), "{text}");
    assert!(seen.contains(&format!("NETEVENT 88 {DENIED}")), "{text}");
    // Started (2) and stopped (5) for web; nothing of db.
    assert!(seen.contains(&format!("EVENT {} 2", w.web)), "{text}");
    assert!(seen.contains(&format!("EVENT {} 5", w.web)), "{text}");
    assert!(!text.contains(&format!("EVENT {}", w.db)), "{text}");
    assert!(seen.contains(&"ALIVE 1".to_string()), "{text}");
    w.gateway.assert_no_refusal();
}

/// Runs `cmd`; on a hang, kills it after `timeout` and still returns what it printed.
fn run_logged(mut cmd: Command, timeout: Duration) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = thread::spawn(move || {
        let mut text = String::new();
        out.read_to_string(&mut text).ok();
        text
    });
    let err = thread::spawn(move || {
        let mut text = String::new();
        err.read_to_string(&mut text).ok();
        text
    });
    let deadline = Instant::now() + timeout;
    let ok = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        thread::sleep(Duration::from_millis(50));
    };
    (
        ok,
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

// ---- a raw-protocol attacker ----

struct Raw {
    stream: UnixStream,
    serial: u32,
}

impl Raw {
    fn connect(gateway: &Gateway) -> Raw {
        let stream = UnixStream::connect(&gateway.socket).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Raw { stream, serial: 0 }
    }

    fn send(&mut self, prog: u32, proc: u32, kind: Type, body: &[u8]) -> u32 {
        self.serial += 1;
        let header = Header {
            prog,
            vers: 1,
            proc,
            kind,
            serial: self.serial,
            status: Status::Ok,
        };
        // The gateway may already have closed: that is what some tests look for.
        let _ = self.stream.write_all(&wire::encode(&header, body));
        self.serial
    }

    /// The next packet, or `None` when the gateway closed the connection.
    fn receive(&mut self) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).ok()?;
        let mut rest = vec![0u8; (u32::from_be_bytes(len) as usize).checked_sub(4)?];
        self.stream.read_exact(&mut rest).ok()?;
        Some([len.to_vec(), rest].concat())
    }

    fn call(&mut self, proc: u32, body: &[u8]) -> (Status, Vec<u8>) {
        let serial = self.send(REMOTE_PROGRAM, proc, Type::Call, body);
        let reply = self.receive().expect("a reply");
        let packet = Packet::parse(&reply).expect("a packet");
        assert_eq!(packet.header.serial, serial);
        (packet.header.status, packet.body.to_vec())
    }

    fn open(&mut self) {
        let mut w = Writer::new();
        w.optional_string(Some("test:///default")).u32(0);
        let (status, _) = self.call(proc::CONNECT_OPEN, &w.into_bytes());
        assert_eq!(status, Status::Ok);
    }

    /// Whether the gateway has closed the connection (EOF within the timeout).
    fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }
}

fn error_code(body: &[u8]) -> i32 {
    Reader::new(body).i32().expect("an error code")
}

fn parse_uuid(text: &str) -> Uuid {
    let hex: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b'-')
        .collect::<Vec<u8>>()
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect();
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&hex);
    Uuid(uuid)
}

#[test]
fn a_raw_client_cannot_reach_an_ungranted_domain_or_a_forbidden_program() {
    let w = world();
    let rig = Rig::get();
    let mut raw = Raw::connect(&w.gateway);
    raw.open();
    // Learn web's UUID the honest way.
    let mut b = Writer::new();
    b.string(&w.web);
    let (status, body) = raw.call(proc::DOMAIN_LOOKUP_BY_NAME, &b.into_bytes());
    assert_eq!(status, Status::Ok);
    let web = Domain::read(&mut Reader::new(&body)).expect("web");
    // web's name, db's UUID: start and destroy must not reach db.
    let forged = Domain {
        name: w.web.clone(),
        uuid: parse_uuid(&rig.uuid(&w.db)),
        id: -1,
    };
    for number in [proc::DOMAIN_CREATE, 16] {
        let mut b = Writer::new();
        forged.write(&mut b);
        let (status, body) = raw.call(number, &b.into_bytes());
        assert_eq!(status, Status::Error);
        assert_eq!(error_code(&body), remote::VIR_ERR_NO_DOMAIN);
    }
    assert_eq!(rig.state(&w.db), "shut off");
    // A qemu-program call and a call passing file descriptors: denied by the gateway.
    let serial = raw.send(QEMU_PROGRAM, 1, Type::Call, &{
        let mut b = Writer::new();
        web.write(&mut b);
        b.string("{\"execute\":\"quit\"}").u32(0);
        b.into_bytes()
    });
    let reply = raw.receive().expect("a reply");
    let packet = Packet::parse(&reply).expect("packet");
    assert_eq!(
        (packet.header.serial, packet.header.status),
        (serial, Status::Error)
    );
    assert_eq!(error_code(packet.body), remote::VIR_ERR_ACCESS_DENIED);
    raw.send(REMOTE_PROGRAM, proc::DOMAIN_CREATE, Type::CallWithFds, &{
        let mut b = Writer::new();
        b.u32(0);
        web.write(&mut b);
        b.into_bytes()
    });
    let reply = raw.receive().expect("a reply");
    assert_eq!(error_code(Packet::parse(&reply).expect("packet").body), 88);
    assert_eq!(rig.state(&w.web), "shut off");

    // Oversize, garbage, a stream never opened, bytes after close: the connection ends.
    type Attack = Box<dyn Fn(&mut Raw)>;
    let attacks: Vec<Attack> = vec![
        Box::new(|r| r.stream.write_all(&0x7fff_ffffu32.to_be_bytes()).unwrap()),
        Box::new(|r| r.stream.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap()),
        Box::new(|r| {
            r.send(
                REMOTE_PROGRAM,
                proc::DOMAIN_OPEN_CONSOLE,
                Type::Stream,
                b"x",
            );
        }),
        Box::new(|r| {
            r.send(REMOTE_PROGRAM, 1, Type::StreamHole, b"");
        }),
        Box::new(|r| {
            let (status, _) = r.call(proc::CONNECT_CLOSE, b"");
            assert_eq!(status, Status::Ok);
            r.send(REMOTE_PROGRAM, 3, Type::Call, b"");
        }),
    ];
    for attack in attacks {
        let mut raw = Raw::connect(&w.gateway);
        raw.open();
        attack(&mut raw);
        assert!(raw.is_closed(), "the gateway kept the connection");
    }
    // After a close call the daemon closes its side first; the other four are refusals,
    // each recorded when its connection's thread has finished.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let endings = w.gateway.endings.lock().unwrap().clone();
        let refused = endings
            .iter()
            .filter(|e| matches!(e, Ending::Refused(_)))
            .count();
        if refused >= 4 {
            break;
        }
        assert!(Instant::now() < deadline, "{endings:?}");
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(rig.state(&w.db), "shut off");
    assert_eq!(rig.state(&w.web), "shut off");
}

#[test]
fn a_screenshot_stream_passes_for_a_granted_domain() {
    let rig = Rig::get();
    let name = unique("rpcshot");
    rig.define(&name);
    rig.start(&name);
    let gateway = Gateway::start(Names {
        see: vec![name.clone()],
        act: vec![(Action::Screenshot, name.clone())],
    });
    let file = make_temp_dir("shot").join("shot.png");
    let out = gateway.virsh(&[
        "screenshot",
        "--domain",
        &name,
        "--file",
        &file.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let image = std::fs::read(&file).expect("the screenshot");
    assert!(!image.is_empty());
    gateway.assert_no_refusal();
    rig.destroy(&name);
}

/// A console both ways and ctrl-alt-del, through python3-libvirt's streams, to a real QEMU
/// guest that echoes its serial line and reports the keys it gets (rig/src/guest.rs).
const PYTHON_CONSOLE: &str = r#"
import os, sys, time, libvirt
libvirt.virEventRegisterDefaultImpl()
libvirt.registerErrorHandler(lambda *a: None, None)
c = libvirt.open(sys.argv[1])
d = c.lookupByName(sys.argv[2])
def err(f):
    try:
        f()
        return "ok"
    except libvirt.libvirtError as e:
        return "%d %s" % (e.get_error_code(), e.get_error_message())
print("FORCE", err(lambda: d.openConsole(None, c.newStream(0), libvirt.VIR_DOMAIN_CONSOLE_FORCE)), flush=True)
# One thread, driven by libvirt's event loop, as virsh console is: blocking streams used
# from two threads can hang inside libvirt's client.
st = c.newStream(libvirt.VIR_STREAM_NONBLOCK)
d.openConsole(None, st, libvirt.VIR_DOMAIN_CONSOLE_SAFE)
seen = bytearray()
def readable(stream, events, opaque):
    while True:
        data = stream.recv(4096)
        if isinstance(data, int) or not data:
            return
        seen.extend(data)
st.eventAddCallback(libvirt.VIR_STREAM_EVENT_READABLE, readable, None)
libvirt.virEventAddTimeout(100, lambda *a: None, None)
def wait_for(text, poke=None):
    deadline = time.time() + 30
    next_poke = 0
    while text not in seen and time.time() < deadline:
        if poke and time.time() >= next_poke:
            st.send(poke)
            next_poke = time.time() + 0.3
        libvirt.virEventRunDefaultImpl()
    return text in seen
print("PROMPT", wait_for(b"> ", b"\r"), flush=True)
st.send(b"hello gateway\r")
print("ECHO", wait_for(b"ECHO: hello gateway"), flush=True)
print("CAD", err(lambda: d.sendKey(0, 0, [29, 56, 111], 3, 0)), flush=True)
print("KEYS", wait_for(b"KEY:1d KEY:38 KEY:e0 KEY:53"), flush=True)
print("OTHERKEY", err(lambda: d.sendKey(0, 0, [30], 1, 0)), flush=True)
st.eventRemoveCallback()
st.abort()
c.close()
print("DONE", flush=True)
os._exit(0)
"#;

#[test]
fn a_console_passes_both_ways_and_ctrl_alt_del_but_not_force_or_other_keys() {
    use common::guest::Guest;
    let rig = Rig::get();
    let guest = Guest::define(rig, &unique("rpcecho"));
    guest.start();
    let gateway = Gateway::start_for(
        Names {
            see: vec![guest.name.clone()],
            act: vec![
                (Action::Console, guest.name.clone()),
                (Action::CtrlAltDel, guest.name.clone()),
            ],
        },
        "qemu:///session",
    );
    let uri = format!("qemu+unix:///session?socket={}", gateway.socket.display());
    let mut cmd = Command::new(PYTHON);
    cmd.args(["-c", PYTHON_CONSOLE, &uri, &guest.name])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", rig.dir());
    let (ok, text, err) = run_logged(cmd, Duration::from_secs(60));
    let endings = gateway.endings.lock().unwrap().clone();
    assert!(
        ok,
        "{text}\n{err}\nthe gateway's connections ended: {endings:?}"
    );
    for line in [
        format!("FORCE 88 {DENIED}"),
        "PROMPT True".into(),
        "ECHO True".into(),
        "CAD ok".into(),
        "KEYS True".into(),
        format!("OTHERKEY 88 {DENIED}"),
        "DONE".into(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} in:\n{text}\n{err}"
        );
    }
    gateway.assert_no_refusal();
}
