//! Past the power button, against real QEMU guests (TCG) under the rig's session libvirtd,
//! through the real sshd: the graphical console relayed over `ssh -T` (`display`), a
//! screenshot on stdout, Ctrl+Alt+Del seen arriving as scancodes on the guest's COM1 (the
//! echo guest reports every key it reads), suspend and resume.
//!
//! `display` is proven to reach *that* domain's screen by completing the RFB handshake
//! through the relay: QEMU names its desktop `QEMU (NAME)`.

use dromaius_rig as common;

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::direct::audit_field;
use common::guest::{Graphics, Guest};
use common::pty::{Signal, Term, assert_none_left, send_signal};
use common::world::{World, guest_world, row, summary};
use common::{Rig, SshKey, unique};

/// What the echo guest's COM1 shows for Ctrl+Alt+Del: Ctrl, Alt, Delete (extended) pressed,
/// then released in reverse (scancode set 1).
const CTRL_ALT_DEL_SCANCODES: &str = "KEY:1d KEY:38 KEY:e0 KEY:53 KEY:e0 KEY:d3 KEY:b8 KEY:9d ";
/// How long a relayed byte may take.
const WAIT: Duration = Duration::from_secs(20);

/// Every command that acts on one domain, so the tests' keys have the new ones too.
const ALL_COMMANDS: &str = r#"["start", "shutdown", "reboot", "reset", "destroy", "console", "status",
    "suspend", "resume", "ctrl-alt-del", "screenshot", "display"]"#;

fn keys_for(domains: &[&str]) -> String {
    let domains: Vec<String> = domains.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        r#"{{"alice": [{{"domains": [{}], "commands": {ALL_COMMANDS}}}]}}"#,
        domains.join(", ")
    )
}

/// `ssh -T KEY REQUEST` with stdin and stdout as pipes the test holds, as a viewer's helper
/// (`socat ... EXEC:'ssh -T ...'`) runs it.
struct Relay {
    child: Child,
    stdin: Option<ChildStdin>,
    chunks: Receiver<Vec<u8>>,
    got: Vec<u8>,
}

impl Relay {
    fn start(rig: &Rig, key: &SshKey, request: &str) -> Relay {
        let mut command: Command = rig.ssh_command(key, Some(request));
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn ssh");
        let mut stdout = child.stdout.take().expect("stdout");
        let (send, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n @ 1..) = stdout.read(&mut chunk) {
                if send.send(chunk[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Relay {
            stdin: child.stdin.take(),
            child,
            chunks,
            got: Vec::new(),
        }
    }

    /// The next `n` bytes from the display; panics if they do not come.
    fn read(&mut self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        while self.got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.got.extend(chunk),
                Err(_) => {
                    let stderr = self.stderr_so_far();
                    panic!(
                        "wanted {n} bytes from the relay, got {:?}; stderr: {stderr}",
                        self.got
                    )
                }
            }
        }
        self.got.drain(..n).collect()
    }

    fn write(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(bytes).expect("write to the relay");
        stdin.flush().expect("flush");
    }

    /// Closes the viewer's side and waits for ssh: its status and stderr.
    fn close(mut self) -> (Option<i32>, String) {
        drop(self.stdin.take());
        self.wait()
    }

    fn wait(&mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for ssh") {
                return (status.code(), self.stderr_so_far());
            }
            assert!(Instant::now() < deadline, "ssh did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr_so_far(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            if self.child.try_wait().ok().flatten().is_some() {
                let _ = stderr.read_to_string(&mut text);
            }
            self.child.stderr = Some(stderr);
        }
        text
    }
}

/// A viewer's end of a VNC connection: the relay's pipes, or a TCP connection.
trait Wire {
    fn read(&mut self, n: usize) -> Vec<u8>;
    fn write(&mut self, bytes: &[u8]);
}

impl Wire for Relay {
    fn read(&mut self, n: usize) -> Vec<u8> {
        Relay::read(self, n)
    }

    fn write(&mut self, bytes: &[u8]) {
        Relay::write(self, bytes)
    }
}

impl Wire for std::net::TcpStream {
    fn read(&mut self, n: usize) -> Vec<u8> {
        self.set_read_timeout(Some(WAIT)).expect("read timeout");
        let mut bytes = vec![0u8; n];
        self.read_exact(&mut bytes)
            .expect("read from the viewer's port");
        bytes
    }

    fn write(&mut self, bytes: &[u8]) {
        self.write_all(bytes).expect("write to the viewer's port");
    }
}

/// What a VNC server said in its handshake.
#[derive(Debug)]
struct ServerInit {
    width: u16,
    height: u16,
    desktop: String,
}

/// Speaks RFB 3.8 as a viewer would, up to the server's ServerInit (security type None).
fn handshake(relay: &mut dyn Wire) -> ServerInit {
    assert_eq!(relay.read(12), b"RFB 003.008\n");
    relay.write(b"RFB 003.008\n");
    let count = relay.read(1)[0] as usize;
    let types = relay.read(count);
    assert!(types.contains(&1), "security types {types:?}");
    relay.write(&[1]);
    assert_eq!(relay.read(4), [0, 0, 0, 0], "SecurityResult");
    relay.write(&[1]); // ClientInit: shared
    let init = relay.read(24);
    let width = u16::from_be_bytes([init[0], init[1]]);
    let height = u16::from_be_bytes([init[2], init[3]]);
    let length = u32::from_be_bytes([init[20], init[21], init[22], init[23]]) as usize;
    let desktop = String::from_utf8_lossy(&relay.read(length)).into_owned();
    ServerInit {
        width,
        height,
        desktop,
    }
}

/// An RFB KeyEvent: `keysym` pressed, then released.
fn press(relay: &mut dyn Wire, keysym: u32) {
    for down in [1u8, 0] {
        let mut event = vec![4, down, 0, 0];
        event.extend(keysym.to_be_bytes());
        relay.write(&event);
    }
}

#[test]
fn display_relays_that_domains_vnc_through_ssh_and_its_keys_reach_the_guest() {
    let (guest, world) = guest_world(Graphics::Vnc, Some(ALL_COMMANDS), "");
    let mut serial = guest.serial();
    let key = world.key("--key alice");
    let mut relay = Relay::start(world.rig, &key, &format!("display {}", guest.name));
    let init = handshake(&mut relay);
    assert_eq!(init.desktop, format!("QEMU ({})", guest.name));
    assert_eq!((init.width, init.height), (720, 400));
    // A key pressed in the viewer reaches this guest's keyboard: 'a' is scancode 1e.
    press(&mut relay, 0x61);
    serial.expect("KEY:1e KEY:9e ");
    let (status, stderr) = relay.close();
    assert_eq!(status, Some(0), "{stderr}");
    assert_none_left(&world.marker(), Duration::from_secs(5));

    let records = world.records(2);
    assert_eq!(
        summary(&records),
        [
            row("display", &guest.name, "allow", 0),
            row("display", &guest.name, "allow", 0)
        ]
    );
    assert_eq!(audit_field(&records[0], "relay").as_deref(), Some("start"));
    assert!(
        audit_field(&records[0], "endpoint").is_some_and(|e| e.starts_with("127.0.0.1:59")),
        "{}",
        records[0]
    );
    assert_eq!(audit_field(&records[1], "relay").as_deref(), Some("end"));
    assert_eq!(
        audit_field(&records[1], "reason").as_deref(),
        Some("viewer closed")
    );
    let to_guest: u64 = audit_field(&records[1], "bytes_to_guest")
        .unwrap()
        .parse()
        .unwrap();
    let to_viewer: u64 = audit_field(&records[1], "bytes_to_viewer")
        .unwrap()
        .parse()
        .unwrap();
    // Version, security type, ClientInit, two key events; version, types, result,
    // ServerInit and the desktop name, at least.
    assert_eq!(to_guest, 12 + 1 + 1 + 16);
    assert!(to_viewer >= 12 + 2 + 4 + 24, "{}", records[1]);
    assert!(audit_field(&records[1], "duration_ms").is_some());
    for record in &records {
        common::direct::check_record(record);
    }
}

#[test]
fn the_readmes_socat_line_serves_a_viewer() {
    let (guest, world) = guest_world(Graphics::Vnc, Some(ALL_COMMANDS), "");
    let key = world.key("--key alice");
    // The README: socat TCP-LISTEN:5901,bind=127.0.0.1,reuseaddr EXEC:'ssh -T dromaius@vm-host
    // display web1' -- with the rig's ssh options in place of dromaius@vm-host's.
    let ssh = world
        .rig
        .ssh_command(&key, Some(&format!("display {}", guest.name)));
    // (ssh joins the remote command's words with spaces, so splitting it changes nothing.)
    let mut words = vec![ssh.get_program().to_string_lossy().into_owned()];
    words.extend(ssh.get_args().map(|a| a.to_string_lossy().into_owned()));
    assert!(
        words.iter().all(|w| !w.contains([',', '\'', '"'])),
        "{words:?}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut socat = Command::new("/usr/bin/socat");
    socat
        .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr"))
        .arg(format!("EXEC:{}", words.join(" ")))
        .env_clear()
        .envs(ssh.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    let mut socat = socat.spawn().expect("spawn socat");
    // The viewer: `vncviewer 127.0.0.1::PORT` connects once socat listens.
    let deadline = Instant::now() + WAIT;
    let mut viewer = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("socat never listened on {port}: {e}"),
        }
    };
    let init = handshake(&mut viewer);
    assert_eq!(init.desktop, format!("QEMU ({})", guest.name));
    drop(viewer);
    // Without `fork`, socat serves one viewer and ends with it, and so does the relay.
    let deadline = Instant::now() + WAIT;
    while socat.try_wait().expect("wait for socat").is_none() {
        assert!(Instant::now() < deadline, "socat did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_none_left(&world.marker(), Duration::from_secs(10));
    assert_eq!(
        audit_field(&world.records(2)[1], "reason").as_deref(),
        Some("viewer closed")
    );
}

#[test]
fn display_on_a_unix_socket_works_the_same() {
    let (guest, world) = guest_world(Graphics::VncSocket, Some(ALL_COMMANDS), "");
    let key = world.key("--key alice");
    let mut relay = Relay::start(world.rig, &key, &format!("display {}", guest.name));
    assert_eq!(
        handshake(&mut relay).desktop,
        format!("QEMU ({})", guest.name)
    );
    let (status, stderr) = relay.close();
    assert_eq!(status, Some(0), "{stderr}");
    let records = world.records(2);
    assert!(
        audit_field(&records[0], "endpoint").is_some_and(|e| e.ends_with("/vnc.sock")),
        "{}",
        records[0]
    );
}

/// A SPICE client's first words on a channel: the link header (`REDQ`, protocol 2.2) and
/// a link message for the main channel, with no capabilities.
fn spice_link_main() -> Vec<u8> {
    let mut link = b"REDQ".to_vec();
    for word in [2u32, 2, 18] {
        link.extend(word.to_le_bytes());
    }
    link.extend(0u32.to_le_bytes()); // connection id: a new session
    link.extend([1, 0]); // the main channel, id 0
    for word in [0u32, 0, 18] {
        link.extend(word.to_le_bytes()); // no capabilities; they would start at 18
    }
    link
}

#[test]
fn display_relays_spice_one_channel_per_session() {
    for graphics in [Graphics::Spice, Graphics::SpiceSocket] {
        let (guest, world) = guest_world(graphics, Some(ALL_COMMANDS), "");
        let key = world.key("--key alice");
        let mut relay = Relay::start(world.rig, &key, &format!("display {}", guest.name));
        relay.write(&spice_link_main());
        // QEMU's SPICE server answers with a link reply of its own.
        assert_eq!(relay.read(4), b"REDQ");
        let (status, stderr) = relay.close();
        assert_eq!(status, Some(0), "{stderr}");
        let records = world.records(2);
        let endpoint = audit_field(&records[0], "endpoint").unwrap_or_default();
        match graphics {
            Graphics::SpiceSocket => assert!(endpoint.ends_with("/spice.sock"), "{endpoint}"),
            _ => assert!(endpoint.starts_with("127.0.0.1:"), "{endpoint}"),
        }
    }
}

#[test]
fn another_domains_display_is_out_of_reach() {
    let rig = Rig::get();
    let mine = Guest::define_with(rig, &unique("mine"), Graphics::Vnc);
    let theirs = Guest::define_with(rig, &unique("theirs"), Graphics::Vnc);
    mine.start();
    theirs.start();
    let world = World::on(&rig.qemu_uri(), &keys_for(&[&mine.name]), "");
    let key = world.key("--key alice");
    for domain in [theirs.name.as_str(), "no-such-domain", "1", "*"] {
        let out = rig.ssh(&key, Some(&format!("display {domain}")), b"");
        assert_eq!(out.status.code(), Some(77), "{domain}");
        assert!(out.stdout.is_empty(), "{domain}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "dromaius: permission denied\n",
            "{domain}"
        );
    }
    // A grant without `commands` does not have display: an old config means what it meant.
    let old = World::on(
        &rig.qemu_uri(),
        &format!(r#"{{"alice": [{{"domains": ["{}"]}}]}}"#, mine.name),
        "",
    );
    let out = rig.ssh(
        &old.key("--key alice"),
        Some(&format!("display {}", mine.name)),
        b"",
    );
    assert_eq!(out.status.code(), Some(77));
}

#[test]
fn display_says_why_when_there_is_nothing_to_relay() {
    let rig = Rig::get();
    let plain = Guest::define(rig, &unique("plain"));
    plain.start();
    let off = Guest::define_with(rig, &unique("off"), Graphics::Vnc);
    let world = World::on(&rig.qemu_uri(), &keys_for(&[&plain.name, &off.name]), "");
    let key = world.key("--key alice");
    for (guest, words) in [
        (&plain, "No graphical display found"),
        (&off, "Domain is not running"),
    ] {
        let out = rig.ssh(&key, Some(&format!("display {}", guest.name)), b"");
        assert_eq!(out.status.code(), Some(1), "{}", guest.name);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(words), "{stderr}");
        assert!(out.stdout.is_empty());
    }
    // A hypervisor that is not this host: refused, nothing asked of it.
    let remote = World::on(
        "qemu+ssh://192.0.2.1/system",
        &keys_for(&[&plain.name]),
        r#""timeout_secs": 30,"#,
    );
    let started = Instant::now();
    let out = rig.ssh(
        &remote.key("--key alice"),
        Some(&format!("display {}", plain.name)),
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not on this host"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Well inside the timeout: nothing waited for an answer from 192.0.2.1.
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn display_is_refused_at_a_terminal_and_at_the_prompt() {
    let (guest, world) = guest_world(Graphics::Vnc, Some(ALL_COMMANDS), "");
    let key = world.key("--key alice");
    let request = format!("display {}", guest.name);
    let mut term = Term::spawn(world.rig.ssh_tty_command(&key, Some(&request)));
    term.expect("display needs the channel to itself without a terminal");
    assert_eq!(term.exit_code(), 1);
    let mut term = world.ssh_tt(&key);
    term.done("dromaius (alice)> ");
    term.line(&request);
    term.expect("display is a request of its own");
    term.done("dromaius (alice)> ");
    term.line("exit");
    assert_eq!(term.exit_code(), 0);
    // Piped lines are a session too.
    let out = world.rig.ssh(&key, None, format!("{request}\n").as_bytes());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("display is a request of its own"));
}

#[test]
fn a_viewer_that_vanishes_mid_stream_leaves_nothing_behind() {
    let (guest, world) = guest_world(Graphics::Vnc, Some(ALL_COMMANDS), "");
    let key = world.key("--key alice");
    let mut relay = Relay::start(world.rig, &key, &format!("display {}", guest.name));
    assert_eq!(relay.read(12), b"RFB 003.008\n");
    // The client dies without a word: sshd closes the channel.
    send_signal(relay.child.id(), Signal::SIGKILL);
    let _ = relay.wait();
    assert_none_left(&world.marker(), Duration::from_secs(10));
    let records = world.records(2);
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(audit_field(&records[1], "relay").as_deref(), Some("end"));
    // The display is free for the next viewer.
    let mut again = Relay::start(world.rig, &key, &format!("display {}", guest.name));
    assert_eq!(
        handshake(&mut again).desktop,
        format!("QEMU ({})", guest.name)
    );
    assert_eq!(again.close().0, Some(0));
}

#[test]
fn revoking_display_closes_an_open_relay() {
    let (guest, world) = guest_world(Graphics::Vnc, Some(ALL_COMMANDS), "");
    let key = world.key("--key alice");
    let mut relay = Relay::start(world.rig, &key, &format!("display {}", guest.name));
    handshake(&mut relay);
    let text = std::fs::read_to_string(&world.config).expect("config");
    let revoked = text.replace(r#", "display"]"#, "]");
    assert_ne!(revoked, text);
    std::fs::write(&world.config, revoked).expect("rewrite config");
    let started = Instant::now();
    let (status, stderr) = relay.wait();
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status, Some(77), "{stderr}");
    assert!(stderr.contains("revoked"), "{stderr}");
    let records = world.records(2);
    assert_eq!(
        audit_field(&records[1], "reason").as_deref(),
        Some("revoked while attached")
    );
    assert_eq!(audit_field(&records[1], "outcome").as_deref(), Some("77"));
}

/// Width and height from a PNG's IHDR.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: {:?}",
        &png[..png.len().min(16)]
    );
    assert_eq!(&png[12..16], b"IHDR");
    let at = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
    (at(16), at(20))
}

fn screenshot_dirs() -> Vec<String> {
    std::fs::read_dir("/tmp")
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("dromaius-screenshot-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_screenshot_is_the_guests_screen_as_a_png_on_stdout() {
    let (guest, world) = guest_world(Graphics::Vnc, Some(ALL_COMMANDS), "");
    let key = world.key("--key alice");
    let request = format!("screenshot {}", guest.name);
    let out = world.rig.ssh(&key, Some(&request), b"");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(png_size(&out.stdout), (720, 400));
    assert!(out.stderr.is_empty());
    assert!(screenshot_dirs().is_empty(), "{:?}", screenshot_dirs());

    // At a terminal the image would be noise: refused, with what to type instead.
    let mut term = Term::spawn(world.rig.ssh_tty_command(&key, Some(&request)));
    term.expect(&format!("> {}.png", guest.name));
    assert_eq!(term.exit_code(), 1);

    // A guest without a screen has nothing to show.
    let plain = Guest::define(world.rig, &unique("plain"));
    plain.start();
    let other = World::on(&world.rig.qemu_uri(), &keys_for(&[&plain.name]), "");
    let out = world.rig.ssh(
        &other.key("--key alice"),
        Some(&format!("screenshot {}", plain.name)),
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no screens to take screenshot from"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(screenshot_dirs().is_empty(), "{:?}", screenshot_dirs());
}

#[test]
fn ctrl_alt_del_reaches_the_guests_keyboard() {
    let (guest, world) = guest_world(Graphics::None, Some(ALL_COMMANDS), "");
    let mut serial = guest.serial();
    let key = world.key("--key alice");
    let out = world
        .rig
        .ssh(&key, Some(&format!("ctrl-alt-del {}", guest.name)), b"");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serial.expect(CTRL_ALT_DEL_SCANCODES);
    assert_eq!(
        summary(&world.records(1)),
        [row("ctrl-alt-del", &guest.name, "allow", 0)]
    );
}

#[test]
fn suspend_and_resume_are_seen_in_status() {
    let (guest, world) = guest_world(Graphics::None, Some(ALL_COMMANDS), "");
    let key = world.key("--key alice");
    let ask = |request: &str| {
        let out = world
            .rig
            .ssh(&key, Some(&format!("{request} {}", guest.name)), b"");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (status, stdout, _) = ask("suspend");
    assert_eq!(status, Some(0));
    assert_eq!(stdout.trim(), format!("Domain '{}' suspended", guest.name));
    assert_eq!(ask("status").1, "paused\n");
    assert_eq!(ask("resume").0, Some(0));
    assert_eq!(ask("status").1, "running\n");
    let (status, _, stderr) = ask("resume");
    assert_eq!(status, Some(1));
    assert!(stderr.contains("domain is already running"), "{stderr}");
}

/// Where libvirt says `guest`'s display is, as a viewer's tunnel names it.
fn tunnel_target(rig: &Rig, guest: &Guest) -> dromaius::tunnel::Target {
    let out = rig.virsh_uri(&rig.qemu_uri(), &["domdisplay", "--domain", &guest.name]);
    let shown = dromaius::graphics::display(&String::from_utf8_lossy(&out.stdout))
        .expect("libvirt names the display");
    match shown.endpoint {
        dromaius::graphics::Endpoint::Tcp(address) => dromaius::tunnel::Target::Tcp {
            host: address.ip().to_string(),
            port: address.port(),
        },
        dromaius::graphics::Endpoint::Unix(path) => dromaius::tunnel::Target::Unix(path),
    }
}

/// The exact command `client` sends over ssh to reach `target`.
fn tunnel_command(client: dromaius::tunnel::Viewer, target: &dromaius::tunnel::Target) -> String {
    dromaius::tunnel::render(&dromaius::tunnel::Tunnel::Viewer {
        client,
        endpoint: target.clone(),
    })
    .expect("a command the viewer sends")
}

#[test]
fn each_viewers_tunnel_reaches_its_own_domains_display() {
    use dromaius::tunnel::Viewer;
    let rig = Rig::get();
    let guests: Vec<Guest> = [
        Graphics::Vnc,
        Graphics::VncSocket,
        Graphics::Spice,
        Graphics::SpiceSocket,
    ]
    .into_iter()
    .map(|graphics| {
        let guest = Guest::define_with(rig, &unique("tun"), graphics);
        guest.start();
        guest
    })
    .collect();
    let names: Vec<&str> = guests.iter().map(|g| g.name.as_str()).collect();
    let world = World::on(&rig.qemu_uri(), &keys_for(&names), "");
    let key = world.key("--key alice");
    for (guest, spice) in guests.iter().zip([false, false, true, true]) {
        let target = tunnel_target(rig, guest);
        for client in [
            Viewer::VirtManager,
            Viewer::VirtViewer,
            Viewer::VirtViewerSh,
        ] {
            let mut relay = Relay::start(rig, &key, &tunnel_command(client, &target));
            if spice {
                relay.write(&spice_link_main());
                assert_eq!(relay.read(4), b"REDQ", "{client:?} {target:?}");
            } else {
                assert_eq!(
                    handshake(&mut relay).desktop,
                    format!("QEMU ({})", guest.name),
                    "{client:?} {target:?}"
                );
            }
            let (status, stderr) = relay.close();
            assert_eq!(status, Some(0), "{client:?} {target:?}: {stderr}");
        }
    }
    let records = world.records(24);
    assert_eq!(records.len(), 24, "{records:#?}");
    for record in &records {
        common::direct::check_record(record);
        assert_eq!(
            audit_field(record, "command").as_deref(),
            Some("display"),
            "{record}"
        );
    }
}

#[test]
fn a_tunnel_to_anything_else_is_refused_and_connects_nothing() {
    use dromaius::tunnel::{Target, Viewer};
    let rig = Rig::get();
    let mine = Guest::define_with(rig, &unique("mine"), Graphics::Vnc);
    let theirs = Guest::define_with(rig, &unique("theirs"), Graphics::Vnc);
    mine.start();
    theirs.start();
    let world = World::on(&rig.qemu_uri(), &keys_for(&[&mine.name]), "");
    let key = world.key("--key alice");
    let Target::Tcp { port, .. } = tunnel_target(rig, &mine) else {
        panic!("a TCP display")
    };
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let refused = [
        tunnel_target(rig, &theirs),
        Target::Tcp {
            host: "127.0.0.1".into(),
            port: free,
        },
        Target::Unix("/run/libvirt/libvirt-sock".into()),
    ];
    for target in &refused {
        let command = tunnel_command(Viewer::VirtManager, target);
        let out = rig.ssh(&key, Some(&command), b"");
        assert_eq!(out.status.code(), Some(77), "{target:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "dromaius: permission denied\n"
        );
        assert!(out.stdout.is_empty());
    }
    // Not a viewer's string at all: a host name, a word more, a character changed.
    let mine_command = tunnel_command(
        Viewer::VirtViewer,
        &Target::Tcp {
            host: "127.0.0.1".into(),
            port,
        },
    );
    for command in [
        mine_command.replace("127.0.0.1", "vm-host"),
        format!("{mine_command} x"),
        mine_command.replacen("socat", "socaT", 1),
    ] {
        let out = rig.ssh(&key, Some(&command), b"");
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert!(out.stdout.is_empty());
    }
    let records = world.records(6);
    assert!(
        records[..3]
            .iter()
            .all(|r| audit_field(r, "decision").as_deref() == Some("deny")),
        "{records:#?}"
    );
}

#[test]
fn revoking_display_ends_an_open_tunnel() {
    use dromaius::tunnel::Viewer;
    let (guest, world) = guest_world(Graphics::Vnc, Some(ALL_COMMANDS), "");
    let key = world.key("--key alice");
    let target = tunnel_target(world.rig, &guest);
    let mut relay = Relay::start(
        world.rig,
        &key,
        &tunnel_command(Viewer::VirtManager, &target),
    );
    handshake(&mut relay);
    let text = std::fs::read_to_string(&world.config).expect("config");
    std::fs::write(&world.config, text.replace(r#", "display"]"#, "]")).expect("rewrite");
    let (status, stderr) = relay.wait();
    assert_eq!(status, Some(77), "{stderr}");
    let records = world.records(2);
    assert_eq!(
        audit_field(&records[1], "reason").as_deref(),
        Some("revoked while attached")
    );
}
