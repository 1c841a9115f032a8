//! One row per string a real client sends (the version and the source named beside it),
//! then the hostile neighbours of every one of them.

use super::*;

use proptest::prelude::*;

fn libvirt(proxy: Proxy, read_only: bool, uri: Option<&str>, socket: Option<&str>) -> Tunnel {
    Tunnel::Libvirt {
        proxy,
        read_only,
        uri: uri.map(str::to_owned),
        socket: socket.map(PathBuf::from),
    }
}

fn tcp(client: Viewer, host: &str, port: u16) -> Tunnel {
    Tunnel::Viewer {
        client,
        endpoint: Target::Tcp {
            host: host.into(),
            port,
        },
    }
}

fn unix(client: Viewer, path: &str) -> Tunnel {
    Tunnel::Viewer {
        client,
        endpoint: Target::Unix(path.into()),
    }
}

/// Every command a client was seen or read to send, with what it asks. The values of each
/// row (URI as sent, socket, host, port, path) are listed so that the mutation tests know
/// which bytes are the client's fixed text.
struct Row {
    command: &'static str,
    tunnel: Tunnel,
    values: &'static [&'static str],
}

/// libvirt's default sockets, `$LOCALSTATEDIR/run/libvirt/libvirt-sock[-ro]`.
const SYSTEM_SOCKET: &str = "/var/run/libvirt/libvirt-sock";
const SYSTEM_SOCKET_RO: &str = "/var/run/libvirt/libvirt-sock-ro";

#[allow(non_upper_case_globals)]
fn rows() -> Vec<Row> {
    use Proxy::*;
    use Viewer::*;
    const sys: &str = SYSTEM_SOCKET;
    const sys_ro: &str = SYSTEM_SOCKET_RO;
    vec![
        // libvirt 6.9 – 11.3, virnetclient.c virNetClientSSHHelperCommand, proxy=auto (the
        // default): captured from Debian 12's virsh 9.0 (`qemu+ssh://alice@vm-host/system`).
        Row {
            command: "sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; if test $? = 0; then     virt-ssh-helper 'qemu:///system'; else    if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG -U /var/run/libvirt/libvirt-sock; fi'",
            tunnel: libvirt(Auto, false, Some("qemu:///system"), Some(sys)),
            values: &["qemu:///system", sys],
        },
        // The same, read-only (`virsh -r`): `-r` to the helper, the -ro socket.
        Row {
            command: "sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; if test $? = 0; then     virt-ssh-helper -r 'qemu:///system'; else    if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG -U /var/run/libvirt/libvirt-sock-ro; fi'",
            tunnel: libvirt(Auto, true, Some("qemu:///system"), Some(sys_ro)),
            values: &["qemu:///system", sys_ro],
        },
        // tests/virnetsockettest.c "SSH test 10" (7.0, 9.0, 11.3).
        Row {
            command: "sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; if test $? = 0; then     virt-ssh-helper -r 'qemu:///session'; else    if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG -U /tmp/socket; fi'",
            tunnel: libvirt(Auto, true, Some("qemu:///session"), Some("/tmp/socket")),
            values: &["qemu:///session", "/tmp/socket"],
        },
        // A root client's /session URI stays auto, with the system socket (virsh 9.0).
        Row {
            command: "sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; if test $? = 0; then     virt-ssh-helper 'qemu:///session'; else    if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG -U /var/run/libvirt/libvirt-sock; fi'",
            tunnel: libvirt(Auto, false, Some("qemu:///session"), Some(sys)),
            values: &["qemu:///session", sys],
        },
        // A parameter the remote driver passes on (`?foo=a%27b`): the URI escaped twice
        // (virsh 9.0).
        Row {
            command: "sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; if test $? = 0; then     virt-ssh-helper '''\\''qemu:///system?foo=a%27b'\\''''; else    if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG -U /var/run/libvirt/libvirt-sock; fi'",
            tunnel: libvirt(Auto, false, Some("qemu:///system?foo=a%27b"), Some(sys)),
            values: &["''\\''qemu:///system?foo=a%27b'\\'''", sys],
        },
        // proxy=netcat, and every libvirt before 6.8 (Ubuntu 20.04's 6.0; virnetclient.c
        // virNetClientNewSSH, the same format string in 2.3.0): virsh 9.0, `proxy=netcat`.
        Row {
            command: "sh -c 'if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG -U /var/run/libvirt/libvirt-sock'",
            tunnel: libvirt(Netcat, false, None, Some(sys)),
            values: &[sys],
        },
        Row {
            command: "sh -c 'if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG -U /var/run/libvirt/libvirt-sock-ro'",
            tunnel: libvirt(Netcat, false, None, Some(sys_ro)),
            values: &[sys_ro],
        },
        // tests/virnetsockettest.c "SSH test 1" (`socket=/tmp/socket`), and the /run path
        // that a client built with RUNSTATEDIR, or given `socket=`, would send.
        Row {
            command: "sh -c 'if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG -U /tmp/socket'",
            tunnel: libvirt(Netcat, false, None, Some("/tmp/socket")),
            values: &["/tmp/socket"],
        },
        Row {
            command: "sh -c 'if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG -U /run/libvirt/libvirt-sock'",
            tunnel: libvirt(Netcat, false, None, Some("/run/libvirt/libvirt-sock")),
            values: &["/run/libvirt/libvirt-sock"],
        },
        // A non-root client's /session URI with proxy=netcat: its own runtime dir.
        Row {
            command: "sh -c 'if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG -U /run/user/1000/libvirt/libvirt-sock'",
            tunnel: libvirt(
                Netcat,
                false,
                None,
                Some("/run/user/1000/libvirt/libvirt-sock"),
            ),
            values: &["/run/user/1000/libvirt/libvirt-sock"],
        },
        // proxy=native (and a non-root client's /session URI): virsh 9.0.
        Row {
            command: "sh -c 'virt-ssh-helper 'qemu:///system''",
            tunnel: libvirt(Native, false, Some("qemu:///system"), None),
            values: &["qemu:///system"],
        },
        Row {
            command: "sh -c 'virt-ssh-helper -r 'qemu:///system''",
            tunnel: libvirt(Native, true, Some("qemu:///system"), None),
            values: &["qemu:///system"],
        },
        // tests/virnetsockettest.c "SSH test 11".
        Row {
            command: "sh -c 'virt-ssh-helper -r 'qemu:///session''",
            tunnel: libvirt(Native, true, Some("qemu:///session"), None),
            values: &["qemu:///session"],
        },
        // virsh 9.0: `test+ssh://.../default`, `qemu+ssh://h` (no path), `?foo=bar`, a
        // quote in the path, `?mode=legacy` as 9.1+ passes it on.
        Row {
            command: "sh -c 'virt-ssh-helper 'test:///default''",
            tunnel: libvirt(Native, false, Some("test:///default"), None),
            values: &["test:///default"],
        },
        Row {
            command: "sh -c 'virt-ssh-helper 'qemu://''",
            tunnel: libvirt(Native, false, Some("qemu://"), None),
            values: &["qemu://"],
        },
        Row {
            command: "sh -c 'virt-ssh-helper '''\\''qemu:///system?foo=bar'\\'''''",
            tunnel: libvirt(Native, false, Some("qemu:///system?foo=bar"), None),
            values: &["''\\''qemu:///system?foo=bar'\\'''"],
        },
        Row {
            command: "sh -c 'virt-ssh-helper '''\\''qemu:///sys'\\''\\'\\'''\\''tem'\\'''''",
            tunnel: libvirt(Native, false, Some("qemu:///sys'tem"), None),
            values: &["''\\''qemu:///sys'\\''\\'\\'''\\''tem'\\'''"],
        },
        Row {
            command: "sh -c 'virt-ssh-helper -r '''\\''qemu:///system?mode=legacy'\\'''''",
            tunnel: libvirt(Native, true, Some("qemu:///system?mode=legacy"), None),
            values: &["''\\''qemu:///system?mode=legacy'\\'''"],
        },
        // virt-manager 2.2.1 – 5.1.0, virtManager/details/sshtunnels.py _make_ssh_command:
        // captured from Debian 12's virt-manager 4.1.0.
        Row {
            command: "sh -c 'nc -q 2>&1 | grep \"requires an argument\" >/dev/null;if [ $? -eq 0 ] ; then   CMD=\"nc -q 0 127.0.0.1 5900\";else   CMD=\"nc 127.0.0.1 5900\";fi;eval \"$CMD\";'",
            tunnel: tcp(VirtManager, "127.0.0.1", 5900),
            values: &["127.0.0.1", "5900"],
        },
        Row {
            command: "sh -c 'nc -q 2>&1 | grep \"requires an argument\" >/dev/null;if [ $? -eq 0 ] ; then   CMD=\"nc -q 0 ::1 5902\";else   CMD=\"nc ::1 5902\";fi;eval \"$CMD\";'",
            tunnel: tcp(VirtManager, "::1", 5902),
            values: &["::1", "5902"],
        },
        Row {
            command: "sh -c 'nc -q 2>&1 | grep \"requires an argument\" >/dev/null;if [ $? -eq 0 ] ; then   CMD=\"nc -q 0 -U /var/lib/libvirt/qemu/domain-1-web1/vnc.sock\";else   CMD=\"nc -U /var/lib/libvirt/qemu/domain-1-web1/vnc.sock\";fi;eval \"$CMD\";'",
            tunnel: unix(VirtManager, "/var/lib/libvirt/qemu/domain-1-web1/vnc.sock"),
            values: &["/var/lib/libvirt/qemu/domain-1-web1/vnc.sock"],
        },
        // virt-viewer 7.0 – 11.0, src/virt-viewer-app.c virt_viewer_app_open_tunnel_ssh,
        // host from src/virt-viewer.c: `localhost` for a wildcard or missing listen.
        Row {
            command: "if (command -v socat) >/dev/null 2>&1; then socat - TCP:localhost:5900; else nc localhost 5900; fi",
            tunnel: tcp(VirtViewer, "localhost", 5900),
            values: &["localhost", "5900"],
        },
        Row {
            command: "if (command -v socat) >/dev/null 2>&1; then socat - TCP:127.0.0.1:5901; else nc 127.0.0.1 5901; fi",
            tunnel: tcp(VirtViewer, "127.0.0.1", 5901),
            values: &["127.0.0.1", "5901"],
        },
        Row {
            command: "if (command -v socat) >/dev/null 2>&1; then socat - TCP:::1:5902; else nc ::1 5902; fi",
            tunnel: tcp(VirtViewer, "::1", 5902),
            values: &["::1", "5902"],
        },
        Row {
            command: "if (command -v socat) >/dev/null 2>&1; then socat - TCP:127.0.0.1:65535; else nc 127.0.0.1 65535; fi",
            tunnel: tcp(VirtViewer, "127.0.0.1", 65535),
            values: &["127.0.0.1", "65535"],
        },
        Row {
            command: "if (command -v socat) >/dev/null 2>&1; then socat - UNIX-CONNECT:/var/lib/libvirt/qemu/domain-1-web1/spice.sock; else nc -U /var/lib/libvirt/qemu/domain-1-web1/spice.sock; fi",
            tunnel: unix(VirtViewer, "/var/lib/libvirt/qemu/domain-1-web1/spice.sock"),
            values: &["/var/lib/libvirt/qemu/domain-1-web1/spice.sock"],
        },
        // virt-viewer master since 0a6155c (2023-01, unreleased): inside sh -c '...', IPv6
        // bracketed for socat (b8e2998, 2021-12).
        Row {
            command: "sh -c 'if (command -v socat) >/dev/null 2>&1; then socat - TCP:localhost:5900; else nc localhost 5900; fi'",
            tunnel: tcp(VirtViewerSh, "localhost", 5900),
            values: &["localhost", "5900"],
        },
        Row {
            command: "sh -c 'if (command -v socat) >/dev/null 2>&1; then socat - TCP:[::1]:5902; else nc ::1 5902; fi'",
            tunnel: tcp(VirtViewerSh, "::1", 5902),
            values: &["::1", "5902"],
        },
        Row {
            command: "sh -c 'if (command -v socat) >/dev/null 2>&1; then socat - UNIX-CONNECT:/run/vnc.sock; else nc -U /run/vnc.sock; fi'",
            tunnel: unix(VirtViewerSh, "/run/vnc.sock"),
            values: &["/run/vnc.sock"],
        },
    ]
}

#[test]
fn every_real_client_string_is_recognised_as_what_it_asks() {
    for row in rows() {
        assert_eq!(
            recognise(row.command.as_bytes()),
            Some(row.tunnel.clone()),
            "{}",
            row.command
        );
        assert_eq!(
            render(&row.tunnel).as_deref(),
            Some(row.command),
            "{:?}",
            row.tunnel
        );
    }
}

/// Positions of `text` that fall inside some occurrence of one of `values`.
fn inside_values(text: &str, values: &[&str]) -> Vec<bool> {
    let mut inside = vec![false; text.len() + 1];
    for value in values {
        for (start, _) in text.match_indices(value) {
            // Both ends too: a byte added right after a port makes another port.
            for flag in &mut inside[start..=start + value.len()] {
                *flag = true;
            }
        }
    }
    inside
}

#[test]
fn any_change_to_a_clients_fixed_text_is_not_recognised() {
    for row in rows() {
        let command = row.command.as_bytes();
        let inside = inside_values(row.command, row.values);
        for i in 0..command.len() {
            if inside[i] {
                continue;
            }
            let mut deleted = command.to_vec();
            deleted.remove(i);
            assert_eq!(
                recognise(&deleted),
                None,
                "deleted byte {i} of {}",
                row.command
            );
            for replacement in [b'X', b' ', b'\'', b'"', b';', b'0'] {
                if command[i] == replacement {
                    continue;
                }
                let mut changed = command.to_vec();
                changed[i] = replacement;
                assert_eq!(
                    recognise(&changed),
                    None,
                    "byte {i} of {} made {:?}",
                    row.command,
                    replacement as char
                );
            }
        }
    }
}

#[test]
fn shell_syntax_inserted_anywhere_is_not_recognised() {
    // Anywhere, even inside a value: no value a client sends holds white space or a
    // control character.
    let anywhere: &[&[u8]] = &[
        b" ",
        b"  ",
        b"\n",
        b"\r",
        b"\t",
        b"\0",
        b"; id",
        b"-e /bin/sh ",
    ];
    // In the fixed text. (Inside a URI that libvirt quoted, these are characters of the
    // URI, which may hold any printable ASCII: the gateway judges the URI.)
    let outside: &[&[u8]] = &[
        b";", b"'", b"\"", b"$", b"`", b"|", b"&", b"$(id)", b"\\", b",fork", b"x", b"-",
    ];
    for row in rows() {
        let command = row.command.as_bytes();
        let inside = inside_values(row.command, row.values);
        for (i, &in_value) in inside.iter().enumerate() {
            let insertions = anywhere
                .iter()
                .chain(if in_value { &[][..] } else { outside });
            for insertion in insertions {
                let mut changed = command.to_vec();
                changed.splice(i..i, insertion.iter().copied());
                assert_eq!(
                    recognise(&changed),
                    None,
                    "{:?} inserted at {i} of {}",
                    String::from_utf8_lossy(insertion),
                    row.command
                );
            }
        }
    }
}

/// Hostile neighbours of the real strings, one row each, each with why it must fail.
#[test]
fn hostile_commands_are_not_recognised() {
    let netcat = |socket: &str| {
        format!(
            "sh -c 'if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG -U {socket}'"
        )
    };
    let native = |arguments: &str| format!("sh -c 'virt-ssh-helper {arguments}'");
    let manager = |nc: &str| {
        format!(
            "sh -c 'nc -q 2>&1 | grep \"requires an argument\" >/dev/null;if [ $? -eq 0 ] ; then   CMD=\"nc -q 0 {nc}\";else   CMD=\"nc {nc}\";fi;eval \"$CMD\";'"
        )
    };
    let manager2 = |first: &str, second: &str| {
        format!(
            "sh -c 'nc -q 2>&1 | grep \"requires an argument\" >/dev/null;if [ $? -eq 0 ] ; then   CMD=\"nc -q 0 {first}\";else   CMD=\"nc {second}\";fi;eval \"$CMD\";'"
        )
    };
    let viewer = |socat: &str, nc: &str| {
        format!("if (command -v socat) >/dev/null 2>&1; then socat - {socat}; else nc {nc}; fi")
    };
    let viewer_sh = |socat: &str, nc: &str| format!("sh -c '{}'", viewer(socat, nc));
    let long_path = format!("/{}", "a".repeat(MAX_PATH_BYTES));
    let long_uri = format!("qemu:///{}", "a".repeat(MAX_URI_BYTES));
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "nothing"),
        ("sh -c 'virt-ssh-helper 'qemu:///system''\n".into(), "a trailing newline"),
        (" sh -c 'virt-ssh-helper 'qemu:///system''".into(), "a leading space"),
        ("sh -c  'virt-ssh-helper 'qemu:///system''".into(), "one space more"),
        ("sh -c'virt-ssh-helper 'qemu:///system''".into(), "one space less"),
        ("sh -c 'virt-ssh-helper 'qemu:///system'' ; id".into(), "a second command"),
        ("sh -c 'virt-ssh-helper 'qemu:///system'';id".into(), "a second command"),
        ("sh -c 'virt-ssh-helper 'qemu:///system'\nid'".into(), "a newline inside"),
        ("sh -c 'virt-ssh-helper 'qemu:///system'".into(), "quotes unbalanced"),
        (native("'qemu:///system$(id)'"), "$( ) in the URI, unescaped"),
        (native("'qemu:///system;id'"), "; in the URI, unescaped"),
        (native("'qemu:///system' 'qemu:///session'"), "two URIs"),
        (native("-r -r 'qemu:///system'"), "-r twice"),
        (native("-R 'qemu:///system'"), "another flag"),
        (native("--readonly 'qemu:///system'"), "a long option"),
        (native("'qemu:///system' -r"), "-r after the URI"),
        (native("qemu:///system"), "the URI without its quotes"),
        (native("''"), "an empty URI"),
        (native("''\\'''\\'''"), "an empty URI, escaped twice"),
        (native("'QEMU:///system'"), "an upper-case scheme"),
        (native("'/system'"), "no scheme"),
        (native("'qemu:///sys\ttem'"), "a tab in the URI"),
        (native(&format!("'{long_uri}'")), "a URI over the bound"),
        (native("'qemu:///system?foo=bar'"), "a ? escaped once only"),
        (native("'''\\''qemu:///system'\\'''''"), "a plain URI quoted it needs not be"),
        ("sh -c 'virt-ssh-helpers 'qemu:///system''".into(), "another binary"),
        ("sh -c '/usr/bin/virt-ssh-helper 'qemu:///system''".into(), "a binary by path"),
        ("sh -c \"virt-ssh-helper 'qemu:///system'\"".into(), "double quotes"),
        ("bash -c 'virt-ssh-helper 'qemu:///system''".into(), "another shell"),
        ("virt-ssh-helper 'qemu:///system'".into(), "no sh -c"),
        ("virt-ssh-helper qemu:///system".into(), "no sh -c, no quotes"),
        (netcat("/var/run/libvirt/libvirt-sock; id"), "a second command after the socket"),
        (netcat("/var/run/libvirt/libvirt sock"), "a space in the socket path"),
        (netcat("/var/run/libvirt/libvirt'sock"), "a quote in the socket path"),
        (netcat("/tmp/$(id)"), "$( ) in the socket path"),
        (netcat("/tmp/`id`"), "backticks in the socket path"),
        (netcat("/tmp/a*"), "a glob in the socket path"),
        (netcat("/tmp/a,fork"), "a comma in the socket path"),
        (netcat("relative/sock"), "a relative socket path"),
        (netcat(""), "no socket path"),
        (netcat(&long_path), "a socket path over sun_path"),
        (netcat("/tmp/caf\u{e9}"), "a non-ASCII socket path"),
        (
            "sh -c 'if 'ncat' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'ncat' $ARG -U /var/run/libvirt/libvirt-sock'".into(),
            "netcat=ncat (another binary)",
        ),
        (
            "sh -c 'if '/bin/nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'/bin/nc' $ARG -U /var/run/libvirt/libvirt-sock'".into(),
            "netcat=/bin/nc",
        ),
        (
            "sh -c 'if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' -e /bin/sh -U /var/run/libvirt/libvirt-sock'".into(),
            "nc -e",
        ),
        (
            "sh -c 'if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG 127.0.0.1 16509'".into(),
            "netcat to TCP",
        ),
        (
            "sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; if test $? = 0; then     virt-ssh-helper 'qemu:///system'; else    if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG -U /var/run/libvirt/libvirt-sock; fi'; id".into(),
            "auto with a second command",
        ),
        (
            "sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; if test $? = 0; then    virt-ssh-helper 'qemu:///system'; else    if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG -U /var/run/libvirt/libvirt-sock; fi'".into(),
            "auto with one space less (6.8's broken probe differs likewise)",
        ),
        (
            "sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; if test $? = 0; then     virt-ssh-helper 'qemu:///system'; else    if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; then ARG=-q0;else ARG=;fi;'nc' $ARG -U /var/run/libvirt/libvirt-sock; else    x; fi'".into(),
            "auto with a second else",
        ),
        (manager("127.0.0.1 5900 "), "a trailing space after the port"),
        (manager("127.0.0.1  5900"), "two spaces before the port"),
        (manager2("127.0.0.1 5900", "127.0.0.1 5901"), "two different ports"),
        (manager2("127.0.0.1 5900", "127.0.0.2 5900"), "two different hosts"),
        (manager("127.0.0.1 0"), "port 0"),
        (manager("127.0.0.1 65536"), "port 65536"),
        (manager("127.0.0.1 +5900"), "a signed port"),
        (manager("127.0.0.1 05900"), "a port with a leading zero"),
        (manager("127.0.0.1 5900x"), "a port with a letter"),
        (manager("127.0.0.1 -1"), "port -1"),
        (manager("127.0.0.1"), "no port"),
        (manager("localhost 5900"), "localhost (virt-manager never tunnels to a name)"),
        (manager("vm-host.example 5900"), "a host name"),
        (manager("192.0.2.7 5900"), "a remote address (virt-manager tunnels only loopback)"),
        (manager("127.000.000.001 5900"), "an address with leading zeros"),
        (manager("[::1] 5900"), "a bracketed address"),
        (manager("fe80::1%eth0 5900"), "an address with a zone"),
        (manager("-e /bin/sh 127.0.0.1 5900"), "nc -e"),
        (manager("-U /tmp/a b"), "a space in the path"),
        (manager("-U /tmp/a\"b"), "a double quote in the path"),
        (manager("-U /tmp/$(id)"), "$( ) in the path"),
        (manager("-U tmp/x.sock"), "a relative path"),
        (viewer("TCP:127.0.0.1:5900", "127.0.0.1 5901"), "socat and nc disagree"),
        (viewer("TCP:127.0.0.2:5900", "127.0.0.1 5900"), "socat and nc disagree on the host"),
        (viewer("TCP:127.0.0.1:5900,fork", "127.0.0.1 5900"), "socat options"),
        (viewer("TCP:[::1]:5902", "::1 5902"), "a released virt-viewer brackets nothing"),
        (viewer("TCP4:127.0.0.1:5900", "127.0.0.1 5900"), "another socat address type"),
        (viewer("EXEC:/bin/sh", "127.0.0.1 5900"), "socat EXEC"),
        (viewer("TCP:vm-host.example:5900", "vm-host.example 5900"), "a host name"),
        (viewer("TCP:localhost.:5900", "localhost. 5900"), "localhost. is a name"),
        (viewer("TCP:LOCALHOST:5900", "LOCALHOST 5900"), "LOCALHOST is a name"),
        (viewer("TCP:127.0.0.1:0", "127.0.0.1 0"), "port 0"),
        (viewer("TCP:127.0.0.1:65536", "127.0.0.1 65536"), "port 65536"),
        (viewer("TCP:127.0.0.1:+80", "127.0.0.1 +80"), "a signed port"),
        (viewer("TCP:127.0.0.1:080", "127.0.0.1 080"), "a port with a leading zero"),
        (viewer("TCP:127.0.0.1:-1", "127.0.0.1 -1"), "port -1 (a domain not yet started)"),
        (viewer("UNIX-CONNECT:/tmp/a,fork", "-U /tmp/a,fork"), "socat options in the path"),
        (viewer("UNIX-CONNECT:/tmp/a", "-U /tmp/b"), "two different paths"),
        (viewer("UNIX-CONNECT:/tmp/a'b", "-U /tmp/a'b"), "a quote in the path"),
        (viewer("UNIX-CONNECT:/tmp/a b", "-U /tmp/a b"), "a space in the path"),
        (viewer("UNIX-CONNECT:/tmp/a", "-U /tmp/a -e /bin/sh"), "nc -e after the path"),
        (viewer_sh("TCP:::1:5902", "::1 5902"), "master brackets IPv6"),
        (viewer_sh("TCP:[127.0.0.1]:5900", "127.0.0.1 5900"), "master brackets only IPv6"),
        (format!("sh -c \"{}\"", viewer("TCP:localhost:5900", "localhost 5900")), "double quotes"),
        (format!("{} ", viewer("TCP:localhost:5900", "localhost 5900")), "a trailing space"),
        (format!("{};id", viewer("TCP:localhost:5900", "localhost 5900")), "a second command"),
        (
            "if (command -v socat) >/dev/null 2>&1; then socat - TCP:localhost:5900; else nc localhost 5900; fi; fi".into(),
            "fi twice",
        ),
        ("nc localhost 5900".into(), "virt-viewer before 2.0: plain nc"),
        ("nc -U /var/run/libvirt/libvirt-sock".into(), "plain nc -U"),
        ("socat - UNIX-CONNECT:/var/run/libvirt/libvirt-sock".into(), "plain socat"),
        ("start web1".into(), "a request of the grammar"),
    ];
    for (command, why) in &cases {
        assert_eq!(recognise(command.as_bytes()), None, "{why}: {command}");
    }
}

#[test]
fn bytes_that_are_not_text_are_not_recognised() {
    let real = "sh -c 'virt-ssh-helper 'qemu:///system''";
    let cases: Vec<Vec<u8>> = vec![
        [real.as_bytes(), b"\0"].concat(),
        real.replace("system", "sys\0tem").into_bytes(),
        real.replace("system", "sys\u{0}").into_bytes(),
        [b"\xff".as_slice(), real.as_bytes()].concat(),
        real.replace("system", "sys\u{e9}m").into_bytes(),
        real.replace("system", "sys\u{202e}tem").into_bytes(),
        [real.as_bytes(), b"\xc0\xaf"].concat(),
        "if (command -v socat) >/dev/null 2>&1; then socat - TCP:\u{ff11}27.0.0.1:5900; else nc \u{ff11}27.0.0.1 5900; fi".into(),
    ];
    for command in &cases {
        assert_eq!(
            recognise(command),
            None,
            "{}",
            String::from_utf8_lossy(command)
        );
    }
}

#[test]
fn very_long_commands_are_refused_at_once() {
    let mut long = b"sh -c 'virt-ssh-helper '".to_vec();
    long.resize(MAX_COMMAND_BYTES + 1, b'a');
    assert_eq!(recognise(&long), None);
    // A megabyte of anything: one length check, nothing parsed.
    let huge = vec![b'\''; 1 << 20];
    let started = std::time::Instant::now();
    assert_eq!(recognise(&huge), None);
    assert!(started.elapsed() < std::time::Duration::from_millis(50));
    // The longest that is looked at, made of what parses slowest, is still quick.
    let worst = format!(
        "sh -c 'virt-ssh-helper '{}''",
        "'\\''".repeat((MAX_COMMAND_BYTES - 30) / 4)
    );
    assert!(worst.len() <= MAX_COMMAND_BYTES);
    let started = std::time::Instant::now();
    assert_eq!(recognise(worst.as_bytes()), None);
    assert!(started.elapsed() < std::time::Duration::from_millis(50));
}

#[test]
fn libvirts_shell_escaping_as_virnetsockettest_expects() {
    // virBufferEscapeShell, and the double escaping of tests/virnetsockettest.c 7 – 9.
    let cases: &[(&str, &str)] = &[
        ("nc", "nc"),
        ("", "''"),
        ("qemu:///system", "qemu:///system"),
        ("n c", "'n c'"),
        ("n'c", r"'n'\''c'"),
        ("n\"c", "'n\"c'"),
        ("a~", "'a~'"),
        ("a%b", "a%b"),
    ];
    for (text, escaped) in cases {
        assert_eq!(&escape_shell(text), escaped);
        assert_eq!(unescape_shell(escaped).as_deref(), Some(*text));
    }
    let twice: &[(&str, &str)] = &[
        ("n c", r"''\''n c'\'''"),
        ("n'c", r"''\''n'\''\'\'''\''c'\'''"),
        ("n\"c", "''\\''n\"c'\\'''"),
    ];
    for (text, escaped) in twice {
        assert_eq!(&escape_shell(&escape_shell(text)), escaped);
    }
    for not_escaped in ["'", "a'b", "'a b", "'a'b'", "a b", "'abc'", "''''"] {
        assert_eq!(unescape_shell(not_escaped), None, "{not_escaped}");
    }
}

#[test]
fn values_no_client_sends_render_to_nothing() {
    use Proxy::*;
    let sys = Some("/var/run/libvirt/libvirt-sock");
    let cases = [
        libvirt(Auto, false, None, sys),
        libvirt(Auto, false, Some("qemu:///system"), None),
        libvirt(Netcat, true, None, sys),
        libvirt(Netcat, false, Some("qemu:///system"), sys),
        libvirt(Native, false, Some("qemu:///system"), sys),
        libvirt(Native, false, None, None),
        libvirt(Native, false, Some(""), None),
        libvirt(Native, false, Some("qemu:///a b"), None),
        libvirt(Netcat, false, None, Some("/a b")),
        tcp(Viewer::VirtManager, "localhost", 5900),
        tcp(Viewer::VirtManager, "127.0.0.1", 0),
        tcp(Viewer::VirtViewer, "vm-host", 5900),
        unix(Viewer::VirtViewer, "x.sock"),
    ];
    for tunnel in &cases {
        assert_eq!(render(tunnel), None, "{tunnel:?}");
    }
}

fn arbitrary_tunnel() -> impl Strategy<Value = Tunnel> {
    let text = "[ -~]{0,40}";
    let path = prop_oneof!["/[A-Za-z0-9/._+-]{0,30}", "[ -~]{0,20}"];
    let host = prop_oneof![
        Just("localhost".to_owned()),
        any::<std::net::Ipv4Addr>().prop_map(|a| a.to_string()),
        any::<std::net::Ipv6Addr>().prop_map(|a| a.to_string()),
        "[a-z0-9.:-]{0,12}",
    ];
    let proxy = prop_oneof![Just(Proxy::Auto), Just(Proxy::Netcat), Just(Proxy::Native)];
    let client = prop_oneof![
        Just(Viewer::VirtManager),
        Just(Viewer::VirtViewer),
        Just(Viewer::VirtViewerSh)
    ];
    let uri = prop_oneof![
        text.prop_map(|u: String| u),
        "[a-z+]{1,8}:///[ -~]{0,20}".prop_map(|u: String| u),
    ];
    let endpoint = prop_oneof![
        (host, any::<u16>()).prop_map(|(host, port)| Target::Tcp { host, port }),
        path.clone().prop_map(|p: String| Target::Unix(p.into())),
    ];
    prop_oneof![
        (
            proxy,
            any::<bool>(),
            proptest::option::of(uri),
            proptest::option::of(path)
        )
            .prop_map(|(proxy, read_only, uri, socket)| Tunnel::Libvirt {
                proxy,
                read_only,
                uri,
                socket: socket.map(PathBuf::from),
            }),
        (client, endpoint).prop_map(|(client, endpoint)| Tunnel::Viewer { client, endpoint }),
    ]
}

proptest! {
    /// What renders is recognised as itself: render and recognise are one grammar.
    #[test]
    fn whatever_renders_is_recognised_as_itself(tunnel in arbitrary_tunnel()) {
        if let Some(command) = render(&tunnel) {
            prop_assert_eq!(recognise(command.as_bytes()), Some(tunnel));
        }
    }

    /// Nothing panics, and what is recognised renders back to the very bytes.
    #[test]
    fn whatever_is_recognised_renders_back_exactly(
        command in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            "sh -c '[ -~]{0,120}'".prop_map(String::into_bytes),
        ]
    ) {
        if let Some(tunnel) = recognise(&command) {
            prop_assert_eq!(render(&tunnel).map(String::into_bytes), Some(command));
        }
    }
}
