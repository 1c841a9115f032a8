//! The fixed remote commands that standard libvirt clients send through ssh, recognised
//! byte for byte.
//!
//! libvirt's ssh transport (virsh, virt-manager, python3-libvirt, Ansible) and the
//! graphical-console tunnels of virt-manager and virt-viewer run one fixed shell snippet on
//! the remote host; sshd hands it to dromaius as `SSH_ORIGINAL_COMMAND`. This module says
//! whether a command is exactly one of those snippets and, if so, what it asked for: which
//! proxy, read-only or not, which URI or socket, which display endpoint. Nothing is run and
//! no shell is interpreted: a command is recognised only when rendering the parsed value
//! again ([`render`]) gives back every byte of it, so a recognised command is always one a
//! real client sends, and anything else stays the request grammar (`request`). Whether a
//! URI, socket or endpoint is served is the gateway's question, not this module's; the
//! values inside are still the user's and are only bounded and held to the characters the
//! clients can produce.
//!
//! # Where the strings come from
//!
//! Each form below was read in the clients' sources, and the forms of the installed
//! Debian 12 clients (libvirt 9.0, virt-manager 4.1.0, virt-viewer 11.0) were captured
//! from the programs themselves (`tests/tunnel_strings.rs`). The versions the
//! distributions ship:
//!
//! | distribution | libvirt | virt-manager | virt-viewer |
//! |---|---|---|---|
//! | Debian 11 | 7.0.0 | 3.2.0 | 7.0 |
//! | Debian 12 | 9.0.0 (backports 11.3.0) | 4.1.0 | 11.0 |
//! | Debian 13 | 11.3.0 | 5.0.0 | 11.0 |
//! | Ubuntu 20.04 | 6.0.0 | 2.2.1 | 7.0 |
//! | Ubuntu 22.04 | 8.0.0 | 4.0.0 | 7.0 |
//! | Ubuntu 24.04 | 10.0.0 | 4.1.0 | 11.0 |
//! | RHEL 8 | 8.0.0 (6.0.0 in early minors) | 2.2.1 | 9.0 |
//! | RHEL 9 | 9.0.0 – 10.10.0 | 4.1.0 | 11.0 |
//! | RHEL 10 | 10.10.0 – 11.x | not shipped | 11.0 |
//!
//! Debian's rows are `apt-cache showsrc` of bullseye, bookworm, bookworm-backports and
//! trixie. The Ubuntu and RHEL rows are the versions those releases are known to ship;
//! they could not be checked against their archives here, which matters little: each
//! string form is the same over a whole range of versions, the ranges are these, and
//! every version in the table falls inside one. libvirt 6.0, 8.0, 10.0 and 10.10 were not
//! read themselves: 8.0 – 10.10 lie between 7.0 and 11.3, whose forms are identical, with
//! no change to them in 11.3's `NEWS.rst` but 9.1's (below); 6.0 lies between 2.3 and 6.8,
//! with the same netcat format string at both ends.
//!
//! - **libvirt** (`src/rpc/virnetclient.c`, `virNetClientSSHHelperCommand`; before 6.8
//!   `virNetClientNewSSH` / `virNetSocketNewConnectSSH`; the expected strings are in
//!   `tests/virnetsockettest.c`). Read in 2.3.0 (2016), 7.0.0, 9.0.0 and 11.3.0 (Debian's
//!   orig tarballs; no Debian patch touches these files), with 11.3.0's `NEWS.rst` for
//!   what changed between.
//!   - Before 6.8 (Ubuntu 20.04's 6.0): the netcat form only.
//!   - 6.8 added `virt-ssh-helper` and `proxy=`; 6.9 fixed the helper probe into the
//!     auto form read here, unchanged in 7.0, 9.0 and 11.3. Default `proxy=auto`;
//!     `socket=` or `netcat=` in the URI force `netcat`; a `/session` URI of a non-root
//!     client defaults to `native`.
//!   - The netcat binary is quoted with `virBufferEscapeShell` twice since 6.8 and once
//!     before; for the default `nc` both give `nc`. **Decision:** only `nc` is recognised;
//!     a URI with `netcat=` (another binary) gets the request grammar.
//!   - The socket path is pasted in unquoted, so a path with a space or a quote changes
//!     what the remote shell runs: only absolute paths of `A-Za-z0-9/._+-` are recognised.
//!     The default is `$LOCALSTATEDIR/run/libvirt/libvirt-sock` (`-sock-ro` when
//!     read-only), i.e. `/var/run/...`, deliberately not `/run` so that hosts without
//!     `/run` work (7.0, 9.0, 11.3; whether 6.0 sent `/run/...` instead, from its
//!     switch to `RUNSTATEDIR`, could not be read here: both are recognised, as is any
//!     `socket=`); a non-root client's `/session` URI with `proxy=netcat` sends its own
//!     `$XDG_RUNTIME_DIR/libvirt/libvirt-sock`, a root client's the system socket.
//!   - The URI given to the helper is the client's URI without transport, host, user,
//!     port and the remote driver's own parameters (`qemu:///system`), escaped twice with
//!     `virBufferEscapeShell`: left bare when it holds no shell metacharacter, otherwise
//!     `'...'` with each `'` written `'\''`. Since 9.1 `mode=` and `socket=` stay in it.
//! - **virt-manager** (`virtManager/details/sshtunnels.py`, `_make_ssh_command`): the
//!   same snippet in 2.2.1, 3.2.0, 4.0.0, 4.1.0, 5.0.0 and 5.1.0 (only reformatted). ssh
//!   gets `sh -c` and `'...'` as two words and joins them with one space. The host is the
//!   display's `listen` address as the domain XML spells it (`127.0.0.1` when there is
//!   none), and a tunnel is only made when that address is loopback: an IP literal, never
//!   `localhost`.
//! - **virt-viewer / remote-viewer** (`src/virt-viewer-app.c`,
//!   `virt_viewer_app_open_tunnel_ssh`): the same bare snippet in 7.0, 9.0, 10.0 and
//!   11.0, with the host of `src/virt-viewer.c`: the XML's listen address, or `localhost`
//!   when it is missing or a wildcard (`0.0.0.0`, `::`). An IPv6 address goes in as is
//!   (`TCP:::1:5900`). Unreleased master wraps the snippet in `sh -c '...'` (0a6155c,
//!   2023-01) and brackets IPv6 for socat (`TCP:[::1]:5900`, Dec 2021): both are
//!   recognised together, as [`Viewer::VirtViewerSh`]. A snapshot with only the bracket
//!   change (bare, bracketed) was never released and is not recognised.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The longest command looked at, in bytes; anything longer is not a client's.
pub const MAX_COMMAND_BYTES: usize = 8192;
/// The longest libvirt URI recognised, in bytes, before escaping.
pub const MAX_URI_BYTES: usize = 1024;
/// The longest socket path: what fits in `sun_path` with its NUL.
pub const MAX_PATH_BYTES: usize = 107;

/// How libvirt's ssh transport reaches the daemon on the remote host (`proxy=` in the URI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxy {
    /// `virt-ssh-helper` if the remote host has it, else `nc -U` (the default since 6.8).
    Auto,
    /// `nc -U SOCKET` (the only form before 6.8; forced by `socket=`).
    Netcat,
    /// `virt-ssh-helper URI` (the default for a non-root client's `/session` URI).
    Native,
}

/// Which viewer opened a graphical console's tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// virt-manager 2.2.1 – 5.1.0.
    VirtManager,
    /// virt-viewer / remote-viewer 2.0 – 11.0: the bare snippet.
    VirtViewer,
    /// virt-viewer's unreleased master: inside `sh -c '...'`, IPv6 bracketed for socat.
    VirtViewerSh,
}

/// Where a viewer asked to be connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `host` as the viewer printed it: an IP literal, or `localhost` (virt-viewer only).
    Tcp {
        host: String,
        port: u16,
    },
    Unix(PathBuf),
}

/// A recognised client command: what it asked for, as parsed and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tunnel {
    /// libvirt's ssh transport: relay libvirt's RPC protocol to a daemon.
    ///
    /// `uri` is what `virt-ssh-helper` was given (`Auto`, `Native`), unescaped; `socket`
    /// is what `nc -U` was given (`Auto`, `Netcat`); `read_only` is the helper's `-r`
    /// (a netcat client says read-only only through the socket it names).
    Libvirt {
        proxy: Proxy,
        read_only: bool,
        uri: Option<String>,
        socket: Option<PathBuf>,
    },
    /// A viewer's tunnel to a graphical console.
    Viewer { client: Viewer, endpoint: Target },
}

/// Whether `command` is exactly a command that a standard client sends, and what it asks.
/// `None` means it is not: it is then a request of the user's grammar, or nothing.
pub fn recognise(command: &[u8]) -> Option<Tunnel> {
    if command.len() > MAX_COMMAND_BYTES {
        return None;
    }
    let text = std::str::from_utf8(command).ok()?;
    let tunnel = libvirt(text).or_else(|| viewer(text))?;
    // The parsers only pick the values out; this is what makes them exact.
    (render(&tunnel)?.as_bytes() == command).then_some(tunnel)
}

/// The command a client sends for `tunnel`, byte for byte; `None` for a value that no
/// client sends (a field its form does not have or lacks, a value outside what the client
/// can print).
pub fn render(tunnel: &Tunnel) -> Option<String> {
    match tunnel {
        Tunnel::Libvirt {
            proxy,
            read_only,
            uri,
            socket,
        } => render_libvirt(*proxy, *read_only, uri.as_deref(), socket.as_deref()),
        Tunnel::Viewer { client, endpoint } => render_viewer(*client, endpoint),
    }
}

// libvirt ---------------------------------------------------------------------------------

/// `nc`'s `-q` probe and the relay, up to the socket path (virnetclient.c's `nccmd`).
const NETCAT: &str = "if 'nc' -q 2>&1 | grep \"requires an argument\" >/dev/null 2>&1; \
                      then ARG=-q0;else ARG=;fi;'nc' $ARG -U ";
/// proxy=auto, up to the helper's arguments.
const AUTO_HEAD: &str = "sh -c 'which virt-ssh-helper 1>/dev/null 2>&1; \
                         if test $? = 0; then     virt-ssh-helper ";
/// proxy=auto, between the helper's arguments and the netcat fallback (which follows).
const AUTO_ELSE: &str = "; else    ";
const AUTO_TAIL: &str = "; fi'";
const NATIVE_HEAD: &str = "sh -c 'virt-ssh-helper ";
const SH_C: &str = "sh -c '";

fn render_libvirt(
    proxy: Proxy,
    read_only: bool,
    uri: Option<&str>,
    socket: Option<&Path>,
) -> Option<String> {
    let helper = |uri: &str| -> Option<String> {
        valid_uri(uri).then(|| {
            let flag = if read_only { "-r " } else { "" };
            format!("{flag}'{}'", escape_shell(&escape_shell(uri)))
        })
    };
    let netcat =
        |socket: &Path| -> Option<String> { Some(format!("{NETCAT}{}", safe_path(socket)?)) };
    match (proxy, uri, socket) {
        (Proxy::Auto, Some(uri), Some(socket)) => Some(format!(
            "{AUTO_HEAD}{}{AUTO_ELSE}{}{AUTO_TAIL}",
            helper(uri)?,
            netcat(socket)?
        )),
        (Proxy::Netcat, None, Some(socket)) if !read_only => {
            Some(format!("{SH_C}{}'", netcat(socket)?))
        }
        (Proxy::Native, Some(uri), None) => Some(format!("{NATIVE_HEAD}{}'", helper(uri)?)),
        _ => None,
    }
}

/// Picks a libvirt form apart; `recognise` checks the result by rendering it.
fn libvirt(text: &str) -> Option<Tunnel> {
    if let Some(rest) = text.strip_prefix(AUTO_HEAD) {
        // The helper's arguments hold no space (a URI has none and escaping adds none), so
        // the first `; else    ` ends them.
        let (helper, fallback) = rest.strip_suffix(AUTO_TAIL)?.split_once(AUTO_ELSE)?;
        let (read_only, uri) = helper_arguments(helper)?;
        let socket = fallback.strip_prefix(NETCAT)?;
        return Some(Tunnel::Libvirt {
            proxy: Proxy::Auto,
            read_only,
            uri: Some(uri),
            socket: Some(PathBuf::from(socket)),
        });
    }
    if let Some(rest) = text.strip_prefix(NATIVE_HEAD) {
        let (read_only, uri) = helper_arguments(rest.strip_suffix('\'')?)?;
        return Some(Tunnel::Libvirt {
            proxy: Proxy::Native,
            read_only,
            uri: Some(uri),
            socket: None,
        });
    }
    let socket = text.strip_prefix(SH_C)?.strip_prefix(NETCAT)?;
    Some(Tunnel::Libvirt {
        proxy: Proxy::Netcat,
        read_only: false,
        uri: None,
        socket: Some(PathBuf::from(socket.strip_suffix('\'')?)),
    })
}

/// `[-r ]'URI'`, the URI escaped twice, as `virt-ssh-helper` gets it.
fn helper_arguments(arguments: &str) -> Option<(bool, String)> {
    let (read_only, quoted) = match arguments.strip_prefix("-r ") {
        Some(quoted) => (true, quoted),
        None => (false, arguments),
    };
    let twice = quoted.strip_prefix('\'')?.strip_suffix('\'')?;
    let uri = unescape_shell(&unescape_shell(twice)?)?;
    valid_uri(&uri).then_some((read_only, uri))
}

/// The characters on which libvirt's `virBufferEscapeShell` quotes a string.
const SHELL_METACHARACTERS: &[u8] = b"\r\t\n !\"#$&'()*;<>?[\\]^`{|}~";

/// libvirt's `virBufferEscapeShell` (src/util/virbuffer.c, the same in 7.0, 9.0 and
/// 11.3): `''` for nothing, the string itself when it holds no metacharacter, otherwise
/// `'...'` with each `'` written `'\''`.
pub fn escape_shell(text: &str) -> String {
    if text.is_empty() {
        "''".to_owned()
    } else if !text.bytes().any(|b| SHELL_METACHARACTERS.contains(&b)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The one string that [`escape_shell`] turns into `escaped`, if there is one.
pub fn unescape_shell(escaped: &str) -> Option<String> {
    let text = match escaped
        .strip_prefix('\'')
        .and_then(|rest| rest.strip_suffix('\''))
    {
        Some(inner) => inner.replace(r"'\''", "'"),
        None => escaped.to_owned(),
    };
    (escape_shell(&text) == escaped).then_some(text)
}

/// A URI as libvirt's remote driver formats it for the helper: a lower-case scheme, then
/// printable ASCII without spaces (libxml2 escapes the rest), bounded.
fn valid_uri(uri: &str) -> bool {
    let Some((scheme, _)) = uri.split_once(':') else {
        return false;
    };
    uri.len() <= MAX_URI_BYTES
        && uri.bytes().all(|b| b.is_ascii_graphic())
        && scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+.-".contains(&b))
}

/// A socket path that every client pastes into a shell command unquoted (and virt-viewer
/// into a socat address): absolute, bounded, and of characters that mean nothing to the
/// shell or to socat.
fn safe_path(path: &Path) -> Option<&str> {
    let text = path.to_str()?;
    (text.starts_with('/')
        && text.len() <= MAX_PATH_BYTES
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._+-".contains(&b)))
    .then_some(text)
}

// viewers ---------------------------------------------------------------------------------

/// virt-manager's `nc_cmd`, around its two copies of the `nc` arguments.
const MANAGER_HEAD: &str = "sh -c 'nc -q 2>&1 | grep \"requires an argument\" >/dev/null;\
                            if [ $? -eq 0 ] ; then   CMD=\"nc -q 0 ";
const MANAGER_MIDDLE: &str = "\";else   CMD=\"nc ";
const MANAGER_TAIL: &str = "\";fi;eval \"$CMD\";'";
/// virt-viewer's snippet, around socat's address; the `nc` arguments end it.
const VIEWER_HEAD: &str = "if (command -v socat) >/dev/null 2>&1; then socat - ";
const VIEWER_MIDDLE: &str = "; else nc ";
const VIEWER_TAIL: &str = "; fi";

fn render_viewer(client: Viewer, endpoint: &Target) -> Option<String> {
    let nc = nc_arguments(client, endpoint)?;
    match client {
        Viewer::VirtManager => Some(format!(
            "{MANAGER_HEAD}{nc}{MANAGER_MIDDLE}{nc}{MANAGER_TAIL}"
        )),
        Viewer::VirtViewer | Viewer::VirtViewerSh => {
            let socat = match endpoint {
                Target::Tcp { host, port }
                    if client == Viewer::VirtViewerSh && host.contains(':') =>
                {
                    format!("TCP:[{host}]:{port}")
                }
                Target::Tcp { host, port } => format!("TCP:{host}:{port}"),
                Target::Unix(_) => format!("UNIX-CONNECT:{}", nc.strip_prefix("-U ")?),
            };
            let snippet = format!("{VIEWER_HEAD}{socat}{VIEWER_MIDDLE}{nc}{VIEWER_TAIL}");
            Some(match client {
                Viewer::VirtViewerSh => format!("{SH_C}{snippet}'"),
                _ => snippet,
            })
        }
    }
}

/// `HOST PORT` or `-U PATH`, as `nc` gets them, for a target this client can print.
fn nc_arguments(client: Viewer, endpoint: &Target) -> Option<String> {
    match endpoint {
        Target::Tcp { host, port } => {
            (*port != 0 && valid_host(client, host)).then(|| format!("{host} {port}"))
        }
        Target::Unix(path) => Some(format!("-U {}", safe_path(path)?)),
    }
}

/// virt-manager tunnels only to a loopback listen address, which it takes as an IP
/// literal; virt-viewer tunnels to any listen address, `localhost` for a wildcard. A host
/// name is never recognised.
fn valid_host(client: Viewer, host: &str) -> bool {
    match (client, host.parse::<IpAddr>()) {
        (Viewer::VirtManager, Ok(address)) => address.is_loopback(),
        (Viewer::VirtManager, Err(_)) => false,
        (_, Ok(_)) => true,
        (_, Err(_)) => host == "localhost",
    }
}

/// Picks a viewer's form apart; `recognise` checks the result by rendering it.
fn viewer(text: &str) -> Option<Tunnel> {
    let (client, nc) = if let Some(rest) = text.strip_prefix(MANAGER_HEAD) {
        (Viewer::VirtManager, rest.split_once(MANAGER_MIDDLE)?.0)
    } else {
        let (client, snippet) = match text.strip_prefix(SH_C) {
            Some(wrapped) => (Viewer::VirtViewerSh, wrapped.strip_suffix('\'')?),
            None => (Viewer::VirtViewer, text),
        };
        let rest = snippet
            .strip_prefix(VIEWER_HEAD)?
            .strip_suffix(VIEWER_TAIL)?;
        (client, rest.rsplit_once(VIEWER_MIDDLE)?.1)
    };
    let endpoint = match nc.strip_prefix("-U ") {
        Some(path) => Target::Unix(PathBuf::from(path)),
        None => {
            let (host, port) = nc.split_once(' ')?;
            Target::Tcp {
                host: host.to_owned(),
                port: canonical_port(port)?,
            }
        }
    };
    Some(Tunnel::Viewer { client, endpoint })
}

/// A port as the clients print one: 1 to 65535 in decimal, no sign, no leading zero.
fn canonical_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || text.starts_with('0') {
        return None;
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests;
