//! Faults around a request, each checked for the same four promises: a clear `dromaius: `
//! message, the contract's exit status, an audit record, and no process left behind.
//! virsh missing, not executable, crashing or hanging; libvirtd down; syslog absent, not a
//! socket or stuck; the client dropping mid-command and mid-console; stdout closed early;
//! a config truncated, empty, not UTF-8, a directory, huge, or writable by others.
//!
//! (tests/gateway.rs has the ssh-level basics of some of these; these go further.)

use dromaius_rig as common;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::direct::{Invocation, check_record, run_with_timeout, still_running};
use common::{AuditSink, Rig, dromaius_bin, guest, stderr, unique, write_file};

const UUID: &str = "6695eb01-f6a4-8304-79aa-97f2502e193f";

/// A config for key `alice`, granted everything on `domains`.
fn config(virsh: &Path, connect: &str, syslog: &Path, timeout: u64, domains: &str) -> PathBuf {
    write_file(
        "faults.json",
        &format!(
            r#"{{"virsh": "{}", "connect": "{connect}", "syslog_socket": "{}", "timeout_secs": {timeout},
                "keys": {{"alice": [{{"domains": [{domains}]}}]}}}}"#,
            virsh.display(),
            syslog.display()
        ),
    )
}

fn executable(name: &str, script: &str) -> PathBuf {
    let path = write_file(name, script);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A stand-in virsh that answers the UUID listing with `web1` (dromaius asks for none:
/// `web1` can only be a name) and then behaves as `body` says. Each run writes its pid to the returned file, and so may `body` (as `PIDS`).
fn fake_virsh(body: &str) -> (PathBuf, PathBuf) {
    let pids = write_file("fake-virsh-pids", "");
    let script = format!(
        "#!/bin/sh\n\
         echo $$ >> {pids}\n\
         case \"$*\" in *'list --all --id --uuid --name'*) echo '{UUID} - web1'; exit 0;; esac\n\
         {body}\n",
        pids = pids.display(),
        body = body.replace("PIDS", &pids.display().to_string()),
    );
    (executable("fake-virsh", &script), pids)
}

fn pids_in(file: &Path) -> Vec<u32> {
    fs::read_to_string(file)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Waits until the fake virsh has written at least `count` pids.
fn wait_for_pids(file: &Path, count: usize) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pids = pids_in(file);
        if pids.len() >= count {
            return pids;
        }
        assert!(Instant::now() < deadline, "the fake virsh never started");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// No process of `pids` runs any more (allowing a moment for the kernel to reap).
fn assert_all_gone(pids: &[u32], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = still_running(pids);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: left running: {left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every stderr line is prefixed, and none of it is a panic.
fn assert_clear_message(out: &Output, fragment: &str, what: &str) {
    let text = stderr(out);
    assert!(!text.is_empty(), "{what}: no message");
    assert!(!text.contains("panicked"), "{what}: {text}");
    for line in text.lines() {
        assert!(line.starts_with("dromaius: "), "{what}: {line:?}");
    }
    assert!(
        text.contains(fragment),
        "{what}: {text:?} lacks {fragment:?}"
    );
}

/// Exactly one record came for this fault, with this outcome.
fn assert_one_record(audit: &AuditSink, seen: &mut usize, outcome: u8, what: &str) {
    assert_records(audit, seen, 1, outcome, what);
}

/// Exactly `count` records came since `seen`, each with this outcome.
fn assert_records(audit: &AuditSink, seen: &mut usize, count: usize, outcome: u8, what: &str) {
    let records = audit.records(*seen + count, Duration::from_secs(10));
    let mine = &records[*seen..];
    *seen = records.len();
    assert_eq!(mine.len(), count, "{what}: {mine:?}");
    for record in mine {
        assert_eq!(check_record(record).1, outcome, "{what}: {record}");
    }
}

#[test]
fn virsh_that_cannot_run_or_crashes_is_reported_and_audited() {
    let audit = AuditSink::new();
    let mut seen = 0;
    let not_executable = write_file("virsh-0644", "#!/bin/sh\nexit 0\n");
    let garbage = executable("virsh-garbage", "\u{7f}ELF this is not a program");
    let directory = write_file("dir-marker", "").with_file_name(unique("virsh-dir"));
    fs::create_dir_all(&directory).unwrap();
    let (crashing, crash_pids) = fake_virsh("kill -SEGV $$");
    let (aborting, abort_pids) = fake_virsh("echo 'error: internal error' >&2; kill -ABRT $$");
    let cases: [(&Path, u8, &str); 6] = [
        (
            Path::new("/nonexistent/virsh"),
            69,
            "cannot run /nonexistent/virsh",
        ),
        (&not_executable, 69, "Permission denied"),
        (&garbage, 69, "cannot run"),
        (&directory, 69, "cannot run"),
        (&crashing, 1, "virsh start failed (signal: 11"),
        (&aborting, 1, "internal error"),
    ];
    for (virsh, status, fragment) in cases {
        let what = virsh.display().to_string();
        let config = config(virsh, "test:///default", audit.path(), 10, "\"web1\"");
        for request in ["start web1", "list"] {
            let run = Invocation::new(&config, &["--key", "alice"])
                .request(request.as_bytes())
                .traced()
                .run();
            let expected = status;
            assert_eq!(
                run.output.status.code(),
                Some(i32::from(expected)),
                "{what}"
            );
            let fragment = if request == "list" {
                fragment.replace("virsh start", "virsh list")
            } else {
                fragment.to_owned()
            };
            assert_clear_message(&run.output, &fragment, &what);
            assert_one_record(&audit, &mut seen, expected, &what);
            assert_all_gone(&run.pids, &what);
        }
    }
    assert_all_gone(&pids_in(&crash_pids), "crashing virsh");
    assert_all_gone(&pids_in(&abort_pids), "aborting virsh");
}

#[test]
fn a_hanging_virsh_and_its_whole_group_are_killed_at_the_timeout() {
    let audit = AuditSink::new();
    let mut seen = 0;
    // Children that ignore SIGTERM and SIGHUP, in the background and in a pipeline.
    let (hanging, pids) = fake_virsh(
        "trap '' TERM HUP INT\n\
         sh -c 'trap \"\" TERM HUP; echo $$ >> PIDS; exec sleep 300' &\n\
         sleep 301 &\n\
         echo $! >> PIDS\n\
         sleep 302 | sleep 303 &\n\
         echo $! >> PIDS\n\
         wait",
    );
    let config = config(&hanging, "test:///default", audit.path(), 2, "\"web1\"");
    for (request, stdin) in [("start web1", &b""[..]), ("", &b"status web1\nlist\n"[..])] {
        let started = Instant::now();
        let mut invocation = Invocation::new(&config, &["--key", "alice"])
            .traced()
            .stdin(stdin);
        if !request.is_empty() {
            invocation = invocation.request(request.as_bytes());
        }
        let run = invocation.run();
        let elapsed = started.elapsed();
        assert_eq!(
            run.output.status.code(),
            Some(124),
            "{}",
            stderr(&run.output)
        );
        assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
        assert_clear_message(&run.output, "took longer than 2 s and was stopped", request);
        let records = if request.is_empty() { 2 } else { 1 };
        assert_records(&audit, &mut seen, records, 124, request);
        assert_all_gone(&run.pids, "traced processes");
        assert_all_gone(&pids_in(&pids), "the fake virsh");
    }
}

#[test]
fn a_grandchild_that_left_the_group_does_not_hold_the_request_past_its_timeout() {
    // A process that left virsh's group (setsid) cannot be killed with it, and it holds
    // virsh's output pipes open: the request must still end at its deadline.
    let audit = AuditSink::new();
    let mut seen = 0;
    let escaped = write_file("escaped-pids", "");
    let (hanging, pids) = fake_virsh(&format!(
        "setsid sh -c 'echo $$ >> {}; exec sleep 120' &\nsleep 300",
        escaped.display()
    ));
    let config = config(&hanging, "test:///default", audit.path(), 2, "\"web1\"");
    let run = Invocation::new(&config, &["--key", "alice"])
        .request(b"start web1")
        .run();
    let escapees = pids_in(&escaped);
    for pid in &escapees {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    assert_eq!(
        run.output.status.code(),
        Some(124),
        "{}",
        stderr(&run.output)
    );
    assert!(
        run.elapsed < Duration::from_secs(10),
        "took {:?}",
        run.elapsed
    );
    assert_clear_message(&run.output, "took longer than 2 s", "escaped grandchild");
    assert_one_record(&audit, &mut seen, 124, "escaped grandchild");
    assert_all_gone(&pids_in(&pids), "virsh's own group");
    assert_eq!(escapees.len(), 1);
}

#[test]
fn libvirt_down_or_hung_is_69_or_124() {
    let audit = AuditSink::new();
    let mut seen = 0;
    let dir = write_file("sock-marker", "").with_file_name(unique("sockets"));
    fs::create_dir_all(&dir).unwrap();
    // A socket nobody listens on any more (libvirtd died), a plain file, no file at all.
    let stale = dir.join("stale");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let plain = dir.join("plain");
    fs::write(&plain, "").unwrap();
    // A "libvirtd" that accepts and then never answers.
    let hung = dir.join("hung");
    let listener = std::os::unix::net::UnixListener::bind(&hung).unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            keep.lock().unwrap().push(stream);
        }
    });
    for (socket, status, fragment) in [
        (stale, 69, "failed to connect to the hypervisor"),
        (plain, 69, "failed to connect to the hypervisor"),
        (
            dir.join("absent"),
            69,
            "failed to connect to the hypervisor",
        ),
        (hung, 124, "took longer than 3 s"),
    ] {
        let uri = format!("test+unix:///default?socket={}", socket.display());
        let config = config(
            Path::new("/usr/bin/virsh"),
            &uri,
            audit.path(),
            3,
            "\"web1\"",
        );
        for request in ["status web1", "list"] {
            let what = format!("{request} on {}", socket.display());
            let run = Invocation::new(&config, &["--key", "alice"])
                .request(request.as_bytes())
                .traced()
                .run();
            assert_eq!(
                run.output.status.code(),
                Some(status),
                "{what}: {}",
                stderr(&run.output)
            );
            assert_clear_message(&run.output, fragment, &what);
            assert_one_record(&audit, &mut seen, status as u8, &what);
            assert_all_gone(&run.pids, &what);
        }
    }
}

#[test]
fn a_syslog_that_is_absent_not_a_socket_or_stuck_never_holds_a_request_up() {
    let rig = Rig::get();
    let web = unique("web");
    rig.define(&web);
    let dir = write_file("log-marker", "").with_file_name(unique("logs"));
    fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let stream = dir.join("stream");
    let _stream_listener = std::os::unix::net::UnixListener::bind(&stream).unwrap();
    // A syslog that is alive but never reads: its queue fills and stays full.
    let stuck = dir.join("stuck");
    let stuck_socket = std::os::unix::net::UnixDatagram::bind(&stuck).unwrap();
    let filler = std::os::unix::net::UnixDatagram::unbound().unwrap();
    filler.set_nonblocking(true).unwrap();
    while filler.send_to(b"<14>filler", &stuck).is_ok() {}
    let healthy = AuditSink::new();
    let mut timings = Vec::new();
    for socket in [
        healthy.path().to_path_buf(),
        dir.join("absent"),
        PathBuf::from("/etc/hostname"),
        dir.clone(),
        fifo,
        stream,
        stuck.clone(),
    ] {
        let config = config(
            Path::new("/usr/bin/virsh"),
            &rig.test_uri(),
            &socket,
            10,
            &format!("\"{web}\""),
        );
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let run = Invocation::new(&config, &["--key", "alice"])
                .request(format!("status {web}").as_bytes())
                .run();
            assert_eq!(
                (
                    run.output.status.code(),
                    String::from_utf8_lossy(&run.output.stdout).as_ref()
                ),
                (Some(0), "shut off\n"),
                "{}: {}",
                socket.display(),
                stderr(&run.output)
            );
            best = best.min(run.elapsed);
        }
        timings.push((socket, best));
    }
    drop(stuck_socket);
    let base = timings[0].1;
    for (socket, time) in &timings {
        eprintln!("syslog {}: best of 3 requests {time:.1?}", socket.display());
        // A blocking syslog would hang the request; a few ms of difference is noise.
        assert!(
            *time < base + Duration::from_secs(1),
            "{}: {time:?}",
            socket.display()
        );
    }
    assert_eq!(healthy.records(3, Duration::from_secs(5)).len(), 3);
}

/// Spawns `command` with stdout read into a shared buffer as it comes.
fn spawn_reading(mut command: Command) -> (Child, Arc<Mutex<Vec<u8>>>) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let seen = Arc::clone(&seen);
        let mut pipe = pipe;
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap().extend_from_slice(&buffer[..n]);
            }
        });
    }
    (child, seen)
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_hang_up_mid_command_kills_virsh_and_audits_130() {
    let audit = AuditSink::new();
    let mut seen = 0;
    let (slow, pids) = fake_virsh("sleep 300 &\necho $! >> PIDS\nwait");
    let config = config(&slow, "test:///default", audit.path(), 600, "\"web1\"");
    for signal in ["HUP", "TERM", "INT"] {
        let _ = fs::write(&pids, "");
        let mut command = Command::new(dromaius_bin());
        command
            .args(["--config", config.to_str().unwrap(), "--key", "alice"])
            .env_clear()
            .env("SSH_ORIGINAL_COMMAND", "start web1");
        let (mut child, output) = spawn_reading(command);
        // the action's shell + its sleep (web1 is only a name: no listing first)
        let started = wait_for_pids(&pids, 2);
        assert!(
            Command::new("kill")
                .args([&format!("-{signal}"), &child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let status = wait_exit(&mut child, Duration::from_secs(10));
        let text = String::from_utf8_lossy(&output.lock().unwrap()).into_owned();
        assert_eq!(status.code(), Some(130), "{signal}: {text}");
        assert!(
            text.contains("dromaius: start interrupted"),
            "{signal}: {text}"
        );
        assert_one_record(&audit, &mut seen, 130, signal);
        assert_all_gone(&started, signal);
        assert_all_gone(&pids_in(&pids), signal);
    }
}

#[test]
fn a_client_dropping_mid_command_through_sshd_leaves_nothing_behind() {
    let rig = Rig::get();
    let audit = AuditSink::new();
    let mut seen = 0;
    let (slow, pids) = fake_virsh("sleep 300 &\necho $! >> PIDS\nwait");
    let config = config(&slow, "test:///default", audit.path(), 4, "\"web1\"");
    let key = rig.authorize_gateway(&config, "alice", "restrict,pty");
    // With a terminal (ssh -t): the hang-up reaches dromaius at once, which kills virsh.
    // Without one: nothing tells dromaius, so virsh runs into timeout_secs and is killed.
    for (tty, outcome, within) in [(true, 130, 5), (false, 124, 15)] {
        let _ = fs::write(&pids, "");
        let command = if tty {
            rig.ssh_tty_command(&key, Some("start web1"))
        } else {
            rig.ssh_command(&key, Some("start web1"))
        };
        let (mut client, _) = spawn_reading(command);
        let started = wait_for_pids(&pids, 2);
        let dropped = Instant::now();
        client.kill().unwrap();
        let _ = client.wait();
        let records = audit.records(seen + 1, Duration::from_secs(within));
        let mine = &records[seen..];
        seen = records.len();
        assert_eq!(mine.len(), 1, "tty {tty}: {mine:?}");
        assert_eq!(check_record(&mine[0]).1, outcome, "tty {tty}: {}", mine[0]);
        assert_all_gone(&started, "virsh after the client dropped");
        assert_all_gone(&pids_in(&pids), "virsh after the client dropped");
        eprintln!(
            "client dropped (tty {tty}): audited and cleaned up in {:.1?}",
            dropped.elapsed()
        );
    }
}

#[test]
fn stdout_closed_early_is_not_an_error_and_is_audited() {
    let rig = Rig::get();
    let audit = AuditSink::new();
    let mut seen = 0;
    let names: Vec<String> = (0..30).map(|_| unique("many")).collect();
    for name in &names {
        rig.define(name);
    }
    let domains = names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let config = config(
        Path::new("/usr/bin/virsh"),
        &rig.test_uri(),
        audit.path(),
        10,
        &domains,
    );
    let status = format!("status {}", names[0]);
    for (request, stdin) in [
        (Some("list"), &b""[..]),
        (Some("help"), b""),
        (Some(status.as_str()), b""),
        (None, b"list\nhelp\nlist\n"),
    ] {
        // `ssh host list | head -0`: the reader is gone before anything is written.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut command = Command::new(dromaius_bin());
        command
            .args(["--config", config.to_str().unwrap(), "--key", "alice"])
            .env_clear()
            .stdout(writer)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(request) = request {
            command.env("SSH_ORIGINAL_COMMAND", request);
        }
        let mut child = command.spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let out = child.wait_with_output().unwrap();
        let what = format!("{request:?}");
        assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(&out));
        assert!(stderr(&out).is_empty(), "{what}: {}", stderr(&out));
        let expected = if request.is_some() { 1 } else { 3 };
        assert_records(&audit, &mut seen, expected, 0, &what);
    }
    // And through sshd: `ssh ... list | head -1` gets the first line and a clean exit.
    let key = rig.authorize_gateway(&config, "alice", "restrict");
    let mut ssh = rig.ssh_command(&key, Some("list"));
    ssh.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = ssh.spawn().unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // ssh itself may die of the closed pipe; dromaius's record says how the request went.
    wait_exit(&mut child, Duration::from_secs(30));
    assert!(String::from_utf8_lossy(&first).starts_with(&names.iter().min().unwrap()[..8]));
    assert_one_record(&audit, &mut seen, 0, "list | head -1");
}

#[test]
fn a_client_dropping_mid_console_frees_the_console_and_audits_130() {
    let rig = Rig::get();
    let audit = AuditSink::new();
    let name = unique("echo");
    let image = rig.dir().join("d").join(format!("{name}.img"));
    guest::write_floppy(&image);
    let xml = write_file("echo.xml", &guest::echo_domain_xml(&name, &image));
    let uri = rig.qemu_uri();
    let out = rig.virsh_uri(&uri, &["define", "--file", xml.to_str().unwrap()]);
    assert!(out.status.success(), "{}", common::describe(&out));
    let out = rig.virsh_uri(&uri, &["start", &name]);
    assert!(out.status.success(), "{}", common::describe(&out));
    let config = config(
        Path::new("/usr/bin/virsh"),
        &uri,
        audit.path(),
        10,
        &format!("\"{name}\""),
    );
    let key = rig.authorize_gateway(&config, "alice", "restrict,pty");
    let attach = |seen: &mut usize, outcome: u8| {
        let (mut client, output) =
            spawn_reading(rig.ssh_tty_command(&key, Some(&format!("console {name}"))));
        let mut stdin = client.stdin.take().unwrap();
        // Type Enter until the guest's prompt shows: the console is really attached.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let _ = stdin.write_all(b"\r");
            std::thread::sleep(Duration::from_millis(200));
            let text = String::from_utf8_lossy(&output.lock().unwrap()).into_owned();
            if text.contains("> ") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "never saw the guest's prompt: {text:?}"
            );
        }
        // A prompt may be the boot banner's, with bytes typed during boot held by QEMU
        // until its main loop turns (see `Guest::attach`): type again, and turn it.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let _ = stdin.write_all(b"hello\r");
            std::thread::sleep(Duration::from_millis(500));
            let text = String::from_utf8_lossy(&output.lock().unwrap()).into_owned();
            if text.contains("ECHO: hello") {
                break;
            }
            assert!(Instant::now() < deadline, "never echoed: {text:?}");
            let _ = rig.virsh_uri(&uri, &["domstats", "--block", &name]);
        }
        // The client vanishes without leaving the console (no Ctrl+]).
        client.kill().unwrap();
        let _ = client.wait();
        let records = audit.records(*seen + 1, Duration::from_secs(10));
        let mine = &records[*seen..];
        *seen = records.len();
        assert_eq!(mine.len(), 1, "{mine:?}");
        assert!(mine[0].contains("command=\"console\""), "{}", mine[0]);
        assert_eq!(check_record(&mine[0]).1, outcome, "{}", mine[0]);
    };
    let mut seen = 0;
    attach(&mut seen, 130);
    // No virsh console holds the domain: a second session attaches (it would get
    // "Active console session exists" otherwise), and is dropped the same way.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = Command::new("pgrep")
            .args(["-f", &format!("console --safe --domain {name}")])
            .output()
            .unwrap();
        if left.stdout.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "virsh console left running");
        std::thread::sleep(Duration::from_millis(50));
    }
    attach(&mut seen, 130);
    let _ = rig.virsh_uri(&uri, &["destroy", &name]);
    let _ = rig.virsh_uri(&uri, &["undefine", &name]);
}

/// Runs the binary in a mount namespace where `/dev` is the audit sink's directory, so that
/// a record sent to `/dev/log` (where a refused config's record goes) reaches the sink.
fn run_with_dev_log(sink: &AuditSink, args: &[&str], request: &str) -> Output {
    let dev = sink.path().parent().unwrap();
    let mut command = Command::new("/usr/bin/unshare");
    command
        .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
        .arg("/usr/bin/mount --bind \"$0\" /dev && exec \"$@\"")
        .arg(dev)
        .arg(dromaius_bin())
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("SSH_ORIGINAL_COMMAND", request);
    run_with_timeout(command, b"", Duration::from_secs(60))
}

#[test]
fn a_config_that_cannot_be_read_whole_refuses_with_78_and_is_audited() {
    let rig = Rig::get();
    let sink = AuditSink::new();
    let mut seen = 0;
    let good = format!(
        r#"{{"connect": "{}", "keys": {{"alice": [{{"domains": ["web1"]}}]}}}}"#,
        rig.test_uri()
    );
    let truncated = write_file("truncated.json", &good[..good.len() / 2]);
    let empty = write_file("empty.json", "");
    let not_utf8 = write_file("latin1.json", "");
    fs::write(&not_utf8, b"{\"keys\": {\"caf\xe9\": []}}").unwrap();
    let directory = write_file("dir-marker", "").with_file_name(unique("config-dir"));
    fs::create_dir_all(&directory).unwrap();
    let huge = write_file("huge.json", "{\"keys\": {}, \"pad\": \"");
    fs::OpenOptions::new()
        .append(true)
        .open(&huge)
        .unwrap()
        .set_len(100 * 1000 * 1000)
        .unwrap();
    for (path, fragment) in [
        (&truncated, "EOF while parsing"),
        (&empty, "must be a JSON object"),
        (&not_utf8, "not valid UTF-8"),
        (&directory, "not a regular file"),
        (&huge, "larger than 16 MiB; refused"),
    ] {
        let what = path.display().to_string();
        let args = ["--config", path.to_str().unwrap(), "--key", "alice"];
        let run = Invocation::new(path, &["--key", "alice"])
            .request(b"status web1")
            .traced()
            .run();
        assert_eq!(run.output.status.code(), Some(78), "{what}");
        assert_clear_message(&run.output, fragment, &what);
        assert!(
            stderr(&run.output).starts_with(&format!("dromaius: {}", path.display())),
            "{what}: names the file"
        );
        assert_eq!(run.execs.len(), 1, "{what}: ran something");
        assert_all_gone(&run.pids, &what);
        eprintln!("{what}: refused in {:.1?}", run.elapsed);
        let out = run_with_dev_log(&sink, &args, "status web1");
        assert_eq!(out.status.code(), Some(78), "{what}: {}", stderr(&out));
        assert_one_record(&sink, &mut seen, 78, &what);
    }
    let _ = fs::remove_file(&huge);
}

/// Prepares a case's directory (holding `c.json`, root's, 0644) and returns the path to load.
type Setup = dyn Fn(&Path) -> PathBuf;

/// Sets owner and mode of `path` (a symlink's own owner with `lchown`).
fn own(path: &Path, uid: u32, mode: Option<u32>) {
    std::os::unix::fs::lchown(path, Some(uid), None).unwrap();
    if let Some(mode) = mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }
}

#[test]
fn a_config_others_could_rewrite_is_refused_like_sshd_strict_modes() {
    let rig = Rig::get();
    let web = unique("web");
    rig.define(&web);
    let sink = AuditSink::new();
    let mut seen = 0;
    let text = format!(
        r#"{{"connect": "{}", "keys": {{"alice": [{{"domains": ["{web}"], "commands": ["status"]}}]}}}}"#,
        rig.test_uri()
    );
    let nobody = 65534;
    // Each case: a fresh directory (root's, 0755) under the rig's, set up one way.
    let base = write_file("strict-marker", "").with_file_name(unique("strict"));
    fs::create_dir_all(&base).unwrap();
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
    let setups: Vec<(&str, Option<&str>, Box<Setup>)> = vec![
        ("root's, 0644", None, Box::new(|d| d.join("c.json"))),
        (
            "root's, 0600",
            None,
            Box::new(|d| {
                own(&d.join("c.json"), 0, Some(0o600));
                d.join("c.json")
            }),
        ),
        (
            "group-writable file",
            Some("is writable by group or others (mode 0664)"),
            Box::new(|d| {
                own(&d.join("c.json"), 0, Some(0o664));
                d.join("c.json")
            }),
        ),
        (
            "world-writable file",
            Some("mode 0666"),
            Box::new(|d| {
                own(&d.join("c.json"), 0, Some(0o666));
                d.join("c.json")
            }),
        ),
        (
            "file owned by nobody",
            Some("is owned by uid 65534"),
            Box::new(move |d| {
                own(&d.join("c.json"), nobody, Some(0o644));
                d.join("c.json")
            }),
        ),
        (
            "world-writable directory",
            Some("directory"),
            Box::new(|d| {
                own(d, 0, Some(0o777));
                d.join("c.json")
            }),
        ),
        (
            "sticky world-writable directory of root's",
            None,
            Box::new(|d| {
                own(d, 0, Some(0o1777));
                d.join("c.json")
            }),
        ),
        (
            "directory owned by nobody",
            Some("is owned by uid 65534"),
            Box::new(move |d| {
                own(d, nobody, Some(0o755));
                d.join("c.json")
            }),
        ),
        (
            "symlink of root's to the file",
            None,
            Box::new(|d| {
                std::os::unix::fs::symlink(d.join("c.json"), d.join("link.json")).unwrap();
                d.join("link.json")
            }),
        ),
        (
            "symlink owned by nobody",
            Some("symlink"),
            Box::new(move |d| {
                std::os::unix::fs::symlink(d.join("c.json"), d.join("link.json")).unwrap();
                own(&d.join("link.json"), nobody, None);
                d.join("link.json")
            }),
        ),
        (
            "symlink into a world-writable directory",
            Some("writable by group or others"),
            Box::new(|d| {
                let open = d.join("open");
                fs::create_dir(&open).unwrap();
                fs::copy(d.join("c.json"), open.join("c.json")).unwrap();
                own(&open, 0, Some(0o777));
                std::os::unix::fs::symlink(open.join("c.json"), d.join("link.json")).unwrap();
                d.join("link.json")
            }),
        ),
    ];
    for (what, refused, setup) in setups {
        let dir = base.join(unique("case"));
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(dir.join("c.json"), &text).unwrap();
        fs::set_permissions(dir.join("c.json"), fs::Permissions::from_mode(0o644)).unwrap();
        let path = setup(&dir);
        let args = ["--config", path.to_str().unwrap(), "--key", "alice"];
        let run = Invocation::new(&path, &["--key", "alice"])
            .request(format!("status {web}").as_bytes())
            .run();
        match refused {
            None => assert_eq!(
                (
                    run.output.status.code(),
                    String::from_utf8_lossy(&run.output.stdout).as_ref()
                ),
                (Some(0), "shut off\n"),
                "{what}: {}",
                stderr(&run.output)
            ),
            Some(fragment) => {
                assert_eq!(run.output.status.code(), Some(78), "{what}");
                assert_clear_message(&run.output, fragment, what);
                assert_clear_message(&run.output, "StrictModes", what);
                let out = run_with_dev_log(&sink, &args, "status x");
                assert_eq!(out.status.code(), Some(78), "{what}");
                assert_one_record(&sink, &mut seen, 78, what);
            }
        }
    }
    // Through sshd too: a world-writable config refuses the session.
    let dir = base.join(unique("ssh"));
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.join("c.json");
    fs::write(&path, &text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o646)).unwrap();
    let key = rig.authorize_gateway(&path, "alice", "restrict");
    let out = rig.ssh(&key, Some(&format!("status {web}")), b"");
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(stderr(&out).contains("mode 0646"), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}

#[test]
fn a_hang_up_after_virsh_acted_still_audits_the_request() {
    // virsh has acted (its pid is written, it exits 0) but its output cannot be delivered:
    // stdout is a pipe nobody reads, and the output is larger than the pipe. A hang-up now
    // must not end the process before the request is audited.
    let audit = AuditSink::new();
    let mut seen = 0;
    let (acting, pids) = fake_virsh("head -c 300000 /dev/zero | tr '\\0' x\necho\nexit 0");
    let config = config(&acting, "test:///default", audit.path(), 60, "\"web1\"");
    for signal in ["HUP", "TERM"] {
        let _ = fs::write(&pids, "");
        let (reader, writer) = std::io::pipe().unwrap();
        let mut child = Command::new(dromaius_bin())
            .args(["--config", config.to_str().unwrap(), "--key", "alice"])
            .env_clear()
            .env("SSH_ORIGINAL_COMMAND", "destroy web1")
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The action ran (web1 is only a name: one run) and has exited.
        let ran = wait_for_pids(&pids, 1);
        assert_all_gone(&ran, "the acting virsh");
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            Command::new("kill")
                .args([&format!("-{signal}"), &child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        // What sshd does next: the client is gone, so the pipe's far end closes.
        std::thread::sleep(Duration::from_millis(200));
        drop(reader);
        let status = wait_exit(&mut child, Duration::from_secs(10));
        let records = audit.records(seen + 1, Duration::from_secs(3));
        let mine = &records[seen..];
        seen = records.len();
        assert_eq!(mine.len(), 1, "{signal}: exit {status:?}, records {mine:?}");
        assert!(mine[0].contains("command=\"destroy\""), "{}", mine[0]);
        assert!(mine[0].contains("decision=allow"), "{}", mine[0]);
    }
    // If the output never drains (nobody closes the pipe), the hang-up still ends the
    // process, after the grace period.
    let _ = fs::write(&pids, "");
    let (reader, writer) = std::io::pipe().unwrap();
    let mut child = Command::new(dromaius_bin())
        .args(["--config", config.to_str().unwrap(), "--key", "alice"])
        .env_clear()
        .env("SSH_ORIGINAL_COMMAND", "destroy web1")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_all_gone(&wait_for_pids(&pids, 1), "the acting virsh");
    std::thread::sleep(Duration::from_millis(300));
    let hung_up = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert_eq!(status.code(), Some(129), "{status:?}");
    assert!(
        hung_up.elapsed() < Duration::from_secs(10),
        "{:?}",
        hung_up.elapsed()
    );
    eprintln!(
        "a stuck output: ended {:.1?} after the hang-up",
        hung_up.elapsed()
    );
    drop(reader);
}
