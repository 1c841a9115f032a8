//! The account around the binary, as the README sets it up: a `restrict` key reaches
//! dromaius and nothing else sshd could offer. The README's reason for `restrict` is that
//! a port forward would reach every console listening on the host's 127.0.0.1; here the
//! "console" is the rig's own sshd port, and a key without `restrict` shows the forward
//! would indeed work.

use dromaius_rig as common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Rig, SshKey, write_file};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `ssh -N` with extra options (a forward), without a remote command.
fn forward(rig: &Rig, key: &SshKey, options: &[&str]) -> Child {
    let command = rig.ssh_command(key, None);
    // Options must come before the destination: rebuild the argv with them in front.
    let args: Vec<String> = command
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let destination = args.iter().position(|a| a == "root@127.0.0.1").unwrap();
    let mut ssh = std::process::Command::new(command.get_program());
    ssh.env_clear()
        .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .args(&args[..destination])
        .args(["-N", "-o", "ExitOnForwardFailure=yes"])
        .args(options)
        .arg(&args[destination])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    ssh.spawn().unwrap()
}

/// What a connection to `port` reads within a few seconds: the forwarded sshd's banner, or
/// nothing if the forward was refused.
fn banner_through(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("the local end of the forward never listened: {e}"),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buffer = [0u8; 64];
    let n = stream.read(&mut buffer).unwrap_or(0);
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

#[test]
fn a_restrict_key_cannot_forward_a_port_to_the_hosts_loopback() {
    let rig = Rig::get();
    let config = write_file(
        "account.json",
        r#"{"keys": {"alice": [{"domains": ["x"]}]}}"#,
    );
    let target = format!("127.0.0.1:{}", rig.ssh_port());
    for (options, allowed) in [("restrict,pty", false), ("", true)] {
        let key = rig.authorize_gateway(&config, "alice", options);
        // -L: a local port that leads to the host's 127.0.0.1:<sshd>.
        let local = free_port();
        let mut ssh = forward(rig, &key, &["-L", &format!("127.0.0.1:{local}:{target}")]);
        let banner = banner_through(local);
        let _ = ssh.kill();
        let _ = ssh.wait();
        assert_eq!(
            banner.starts_with("SSH-2.0-"),
            allowed,
            "options {options:?}: read {banner:?} through the forward"
        );
        // -R: a port on the host's loopback that leads back to the client.
        let remote = free_port();
        let mut ssh = forward(rig, &key, &["-R", &format!("127.0.0.1:{remote}:{target}")]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let refused = loop {
            if let Some(status) = ssh.try_wait().unwrap() {
                let mut stderr = String::new();
                let _ = ssh.stderr.take().unwrap().read_to_string(&mut stderr);
                assert!(stderr.contains("forwarding failed"), "{status}: {stderr}");
                break true;
            }
            if TcpStream::connect(("127.0.0.1", remote)).is_ok() || Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let _ = ssh.kill();
        let _ = ssh.wait();
        assert_eq!(refused, !allowed, "options {options:?}: remote forward");
    }
}
