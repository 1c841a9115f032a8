//! The strings `tunnel::recognise` knows are the ones the installed clients really send.
//!
//! libvirt: the installed `virsh` is pointed, through the URI's `command=` parameter, at a
//! fake `ssh` that records its argv and fails, for every proxy mode, with and without
//! read-only. virt-manager: its own `_make_ssh_command` (virtManager/details/sshtunnels.py)
//! is called by Debian's python3 on display descriptions like the ones libvirt gives it.
//! Neither needs a daemon or a display. virt-viewer builds its command only for a running
//! domain it has read over a live connection: it runs under its own Xvfb, its libvirt
//! connection relayed by the fake ssh to a session libvirtd of the rig whose test driver
//! holds four running domains, one per kind of display. No network: every ssh is fake.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dromaius::tunnel::{Proxy, Target, Tunnel, Viewer, recognise};
use dromaius_rig::support::make_temp_dir;

const VIRSH: &str = "/usr/bin/virsh";
/// Debian's python3, the one virt-manager runs on (not one earlier in PATH).
const PYTHON: &str = "/usr/bin/python3";
const VIRT_MANAGER: &str = "/usr/share/virt-manager";
const SYSTEM_SOCKET: &str = "/var/run/libvirt/libvirt-sock";
const SYSTEM_SOCKET_RO: &str = "/var/run/libvirt/libvirt-sock-ro";

/// A fake `ssh` in a fresh directory: it writes its argv, NUL-separated, to `argv` beside
/// itself (libvirt clears the environment it runs ssh with) and fails like an unreachable
/// host.
fn fake_ssh() -> PathBuf {
    let dir = make_temp_dir("tunnel-strings");
    let ssh = dir.join("ssh");
    fs::write(
        &ssh,
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"${0%/*}/argv\"\nexit 255\n",
    )
    .expect("write the fake ssh");
    fs::set_permissions(&ssh, fs::Permissions::from_mode(0o755)).expect("chmod the fake ssh");
    ssh
}

/// What virsh asked ssh to run for `uri` (with `-r` when `read_only`): the last argument.
fn virsh_remote_command(ssh: &Path, uri: &str, read_only: bool) -> String {
    assert!(
        Path::new(VIRSH).exists(),
        "{VIRSH} is missing: apt-get install libvirt-clients (scripts/install-deps does)"
    );
    let dir = ssh.parent().expect("the fake ssh's directory");
    let recorded = dir.join("argv");
    let _ = fs::remove_file(&recorded);
    let mut virsh = Command::new(VIRSH);
    virsh
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir)
        .env("LC_ALL", "C");
    if read_only {
        virsh.arg("-r");
    }
    let uri = format!(
        "{uri}{}command={}",
        if uri.contains('?') { '&' } else { '?' },
        ssh.display()
    );
    let mut child = virsh
        .args(["-c", &uri, "list"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run virsh");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait for virsh").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("virsh -c {uri} did not give up on a failing ssh within a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let argv = fs::read(&recorded).unwrap_or_else(|e| panic!("virsh -c {uri} ran no ssh: {e}"));
    let argv: Vec<&[u8]> = argv.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
    // ssh ... -- HOST COMMAND: libvirt gives the whole command as one argument.
    let host = argv
        .iter()
        .position(|a| *a == b"--")
        .expect("libvirt ends ssh's options with --");
    assert_eq!(argv.len(), host + 3, "one command after -- HOST: {argv:?}");
    String::from_utf8(argv[host + 2].to_vec()).expect("a UTF-8 command")
}

// Also in src/tunnel/tests.rs: the rig depends on nothing of the library, so it cannot hold
// a constructor of the library's `Tunnel`.
fn libvirt(proxy: Proxy, read_only: bool, uri: Option<&str>, socket: Option<&str>) -> Tunnel {
    Tunnel::Libvirt {
        proxy,
        read_only,
        uri: uri.map(str::to_owned),
        socket: socket.map(PathBuf::from),
    }
}

#[test]
fn what_the_installed_virsh_sends_is_recognised() {
    let ssh = fake_ssh();
    let system = "qemu+ssh://alice@vm-host/system";
    let cases: Vec<(String, bool, Option<Tunnel>)> = vec![
        (
            system.into(),
            false,
            Some(libvirt(
                Proxy::Auto,
                false,
                Some("qemu:///system"),
                Some(SYSTEM_SOCKET),
            )),
        ),
        (
            system.into(),
            true,
            Some(libvirt(
                Proxy::Auto,
                true,
                Some("qemu:///system"),
                Some(SYSTEM_SOCKET_RO),
            )),
        ),
        (
            format!("{system}?proxy=auto"),
            false,
            Some(libvirt(
                Proxy::Auto,
                false,
                Some("qemu:///system"),
                Some(SYSTEM_SOCKET),
            )),
        ),
        (
            format!("{system}?proxy=netcat"),
            false,
            Some(libvirt(Proxy::Netcat, false, None, Some(SYSTEM_SOCKET))),
        ),
        (
            format!("{system}?proxy=netcat"),
            true,
            Some(libvirt(Proxy::Netcat, false, None, Some(SYSTEM_SOCKET_RO))),
        ),
        (
            format!("{system}?proxy=native"),
            false,
            Some(libvirt(Proxy::Native, false, Some("qemu:///system"), None)),
        ),
        (
            format!("{system}?proxy=native"),
            true,
            Some(libvirt(Proxy::Native, true, Some("qemu:///system"), None)),
        ),
        (
            format!("{system}?socket=/tmp/other.sock"),
            true,
            Some(libvirt(Proxy::Netcat, false, None, Some("/tmp/other.sock"))),
        ),
        (
            "test+ssh://vm-host:2222/default?proxy=native".into(),
            false,
            Some(libvirt(Proxy::Native, false, Some("test:///default"), None)),
        ),
        // A parameter libvirt passes on: the URI is quoted, escaped twice.
        (
            format!("{system}?proxy=native&foo=bar"),
            false,
            Some(libvirt(
                Proxy::Native,
                false,
                Some("qemu:///system?foo=bar"),
                None,
            )),
        ),
        // Another netcat binary is not recognised (a decision: only `nc`).
        (format!("{system}?netcat=ncat"), false, None),
        // A socket path the remote shell would split is not recognised.
        (format!("{system}?socket=/tmp/a%20b"), false, None),
    ];
    for (uri, read_only, expected) in cases {
        let command = virsh_remote_command(&ssh, &uri, read_only);
        assert_eq!(
            recognise(command.as_bytes()),
            expected,
            "virsh {}-c {uri} sent {command}",
            if read_only { "-r " } else { "" }
        );
    }
}

/// Calls the installed virt-manager's `_make_ssh_command` for each display and returns
/// the remote command ssh would get (its words after the host, joined by one space, as
/// ssh joins them), or `None` when virt-manager makes no tunnel.
/// A graphics device as virt-manager reads it from the domain XML: listen address, port,
/// socket path (empty for none).
type Display<'a> = (&'a str, &'a str, &'a str);

fn virt_manager_remote_commands(displays: &[Display]) -> Vec<Option<String>> {
    let sshtunnels = Path::new(VIRT_MANAGER).join("virtManager/details/sshtunnels.py");
    assert!(
        sshtunnels.exists() && Path::new(PYTHON).exists(),
        "{} is missing: apt-get install virt-manager (scripts/install-deps does)",
        sshtunnels.display()
    );
    let displays: Vec<String> = displays
        .iter()
        .map(|(listen, port, socket)| format!("({listen:?}, {port:?}, {socket:?})"))
        .collect();
    // virtManager.baseclass pulls in Gtk (a display); sshtunnels only needs its name.
    let script = format!(
        r#"
import sys, types
sys.path.insert(0, {VIRT_MANAGER:?})
import virtManager
stub = types.ModuleType("virtManager.baseclass")
class vmmGObject:
    pass
stub.vmmGObject = vmmGObject
sys.modules["virtManager.baseclass"] = stub
from virtManager.details import sshtunnels

class Conn:
    def get_uri_transport(self): return "ssh"
    def get_uri_username(self): return "alice"
    def get_uri_hostname(self): return "vm-host"
    def get_uri_port(self): return None

class Listen:
    def __init__(self, socket): self.socket = socket

class Graphics:
    def __init__(self, listen, port, socket):
        self.type = "vnc"
        self.listen = listen or None
        self.port = int(port) if port else None
        self.socket = socket or None
        self.listens = [Listen(socket)] if socket else []
        self.tlsPort = None
    def get_xml_idx(self): return 0
    def get_first_listen_type(self): return "socket" if self.socket else "address"

for listen, port, socket in [{displays}]:
    argv = sshtunnels._make_ssh_command(sshtunnels.ConnectionInfo(Conn(), Graphics(listen, port, socket)))
    if argv is None:
        print("-")
    else:
        host = argv.index("vm-host")
        print(" ".join(argv[host + 1:]))
"#,
        displays = displays.join(", ")
    );
    let output = Command::new(PYTHON)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C.UTF-8")
        .args(["-W", "ignore", "-c", &script])
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "virt-manager's sshtunnels failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8 commands")
        .lines()
        .map(|line| (line != "-").then(|| line.to_owned()))
        .collect()
}

#[test]
fn what_the_installed_virt_manager_sends_is_recognised() {
    let tcp = |host: &str, port| {
        Some(Tunnel::Viewer {
            client: Viewer::VirtManager,
            endpoint: Target::Tcp {
                host: host.into(),
                port,
            },
        })
    };
    let socket = "/var/lib/libvirt/qemu/domain-1-web1/vnc.sock";
    let cases: &[(Display, Option<Tunnel>)] = &[
        (("127.0.0.1", "5900", ""), tcp("127.0.0.1", 5900)),
        // No listen address: virt-manager assumes 127.0.0.1.
        (("", "5901", ""), tcp("127.0.0.1", 5901)),
        (("::1", "5902", ""), tcp("::1", 5902)),
        (("127.0.0.2", "65535", ""), tcp("127.0.0.2", 65535)),
        (
            ("", "", socket),
            Some(Tunnel::Viewer {
                client: Viewer::VirtManager,
                endpoint: Target::Unix(socket.into()),
            }),
        ),
    ];
    let displays: Vec<_> = cases.iter().map(|(display, _)| *display).collect();
    let commands = virt_manager_remote_commands(&displays);
    assert_eq!(commands.len(), cases.len());
    for ((display, expected), command) in cases.iter().zip(&commands) {
        let command = command
            .as_deref()
            .unwrap_or_else(|| panic!("virt-manager made no tunnel for {display:?}"));
        assert_eq!(
            &recognise(command.as_bytes()),
            expected,
            "virt-manager sent {command} for {display:?}"
        );
    }
    // A wildcard or a name is not loopback to virt-manager: it connects directly, no
    // tunnel, which is why `recognise` takes no `localhost` from it.
    let direct = virt_manager_remote_commands(&[
        ("0.0.0.0", "5900", ""),
        ("localhost", "5900", ""),
        ("192.0.2.7", "5900", ""),
    ]);
    assert_eq!(direct, vec![None, None, None]);
}

const VIRT_VIEWER: &str = "/usr/bin/virt-viewer";
const SOCAT: &str = "/usr/bin/socat";

/// Four running test-driver domains, one per kind of display virt-viewer tunnels to.
const VIEWER_NODE: &str = r#"<node>
  <domain type='test'><name>vnc-local</name><memory>65536</memory><os><type>hvm</type></os>
    <devices><graphics type='vnc' port='5904' listen='127.0.0.1'/></devices></domain>
  <domain type='test'><name>vnc-any</name><memory>65536</memory><os><type>hvm</type></os>
    <devices><graphics type='vnc' port='5905' listen='0.0.0.0'/></devices></domain>
  <domain type='test'><name>vnc-v6</name><memory>65536</memory><os><type>hvm</type></os>
    <devices><graphics type='vnc' port='5906' listen='::1'/></devices></domain>
  <domain type='test'><name>vnc-sock</name><memory>65536</memory><os><type>hvm</type></os>
    <devices><graphics type='vnc' socket='/tmp/dromaius-tunnel-strings.sock'/></devices></domain>
</node>
"#;

/// Runs the installed virt-viewer on `domain`, its libvirt connection relayed by a fake
/// ssh to a session libvirtd, and returns the command of the display tunnel it then asks
/// ssh for (virt-viewer runs `ssh` from PATH for that, not the URI's `command=`).
fn virt_viewer_remote_command(
    dir: &Path,
    display: &str,
    libvirtd: &dromaius_rig::Libvirtd,
    domain: &str,
) -> String {
    let tunnels = dir.join(format!("tunnels-{domain}"));
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).expect("create bin");
    let ssh = bin.join("ssh");
    fs::write(
        &ssh,
        format!(
            "#!/bin/sh\n\
             for last in \"$@\"; do :; done\n\
             case \"$last\" in\n\
             *virt-ssh-helper*|*\"'nc' \\$ARG -U\"*) exec {SOCAT} - UNIX-CONNECT:{socket} ;;\n\
             esac\n\
             printf '%s' \"$last\" > {tunnels}.new && mv {tunnels}.new {tunnels}\n\
             exit 255\n",
            socket = libvirtd.socket().display(),
            tunnels = tunnels.display(),
        ),
    )
    .expect("write the fake ssh");
    fs::set_permissions(&ssh, fs::Permissions::from_mode(0o755)).expect("chmod the fake ssh");
    let node = dir.join("node.xml");
    let uri = format!(
        "test+ssh://alice@vm-host{}?command={}&proxy=netcat",
        node.display(),
        ssh.display()
    );
    let mut viewer = Command::new(VIRT_VIEWER)
        .args(["-c", &uri, domain])
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", dir)
        .env("DISPLAY", display)
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("run virt-viewer");
    let deadline = Instant::now() + Duration::from_secs(60);
    let command = loop {
        if let Ok(command) = fs::read_to_string(&tunnels) {
            break Some(command);
        }
        if Instant::now() > deadline || viewer.try_wait().expect("wait").is_some() {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // virt-viewer and the relay its libvirt connection runs.
    let group = nix::unistd::Pid::from_raw(viewer.id() as i32);
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let _ = viewer.wait();
    command.unwrap_or_else(|| panic!("virt-viewer asked for no display tunnel for {domain}"))
}

#[test]
fn what_the_installed_virt_viewer_sends_is_recognised() {
    for tool in [VIRT_VIEWER, SOCAT] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: apt-get install virt-viewer socat (scripts/install-deps does)"
        );
    }
    let libvirtd = dromaius_rig::Libvirtd::start();
    let xvfb = dromaius_rig::screen::Screen::start();
    let dir = make_temp_dir("viewer-strings");
    fs::write(dir.join("node.xml"), VIEWER_NODE).expect("write the test driver's node");
    fs::set_permissions(dir.join("node.xml"), fs::Permissions::from_mode(0o644))
        .expect("chmod node.xml");
    let tcp = |host: &str, port| Tunnel::Viewer {
        client: Viewer::VirtViewer,
        endpoint: Target::Tcp {
            host: host.into(),
            port,
        },
    };
    let cases = [
        ("vnc-local", tcp("127.0.0.1", 5904)),
        // A wildcard listen: virt-viewer asks for localhost at the far end.
        ("vnc-any", tcp("localhost", 5905)),
        // IPv6 as the XML has it, unbracketed, in socat's address too (virt-viewer 11.0).
        ("vnc-v6", tcp("::1", 5906)),
        (
            "vnc-sock",
            Tunnel::Viewer {
                client: Viewer::VirtViewer,
                endpoint: Target::Unix("/tmp/dromaius-tunnel-strings.sock".into()),
            },
        ),
    ];
    for (domain, expected) in cases {
        let command = virt_viewer_remote_command(&dir, &xvfb.display, &libvirtd, domain);
        assert_eq!(
            recognise(command.as_bytes()),
            Some(expected),
            "virt-viewer sent {command} for {domain}"
        );
    }
}
