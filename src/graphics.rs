//! Where a domain's graphical console is, from what `virsh domdisplay` says, and whether
//! dromaius relays it.
//!
//! The rules: VNC or SPICE; only an endpoint on this host (the hypervisor's URI is local,
//! see `config::Hypervisor::is_local`: a remote hypervisor's `127.0.0.1` is that machine's,
//! not ours); only an IP address or a unix socket path, never a host name to resolve; a
//! SPICE display only on its plain port (its TLS port is refused: the relay carries bytes,
//! and a viewer that must be given the CA and host subject of QEMU's certificate is not
//! one a relay can serve honestly); and never an endpoint that carries a password
//! (dromaius asks read-only, so libvirt cannot give it one; one that arrives anyway is
//! refused, not relayed or shown).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// The first TCP port of VNC displays: `vnc://HOST:N` is port 5900 + N.
const VNC_BASE_PORT: i64 = 5900;

/// Where to connect for a domain's graphical console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// Which protocol a display speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Vnc,
    Spice,
}

impl Protocol {
    /// As virsh's `domdisplay --type` names it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Vnc => "vnc",
            Protocol::Spice => "spice",
        }
    }
}

/// A domain's graphical console: its protocol and where it listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Display {
    pub protocol: Protocol,
    pub endpoint: Endpoint,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(address) => write!(f, "{address}"),
            Endpoint::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// How a relayed display ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The viewer's side closed.
    ViewerClosed,
    /// QEMU closed the display (the domain shut down, say).
    DisplayClosed,
    /// The client hung up, or we were told to stop.
    HungUp,
    /// The config no longer allows it: why.
    Revoked(crate::error::Revocation),
    /// The display reached named another desktop (this one) than the domain's.
    WrongDisplay(String),
}

impl Ending {
    /// For the audit record.
    pub fn word(&self) -> &'static str {
        match self {
            Ending::ViewerClosed => "viewer closed",
            Ending::DisplayClosed => "display closed",
            Ending::HungUp => "hung up",
            Ending::Revoked(_) => "revoked while attached",
            Ending::WrongDisplay(_) => "wrong display",
        }
    }
}

/// What passed through a relayed display, for the audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Traffic {
    pub to_display: u64,
    pub to_viewer: u64,
    pub lasted: std::time::Duration,
}

/// Why a display could not be connected to, for the user.
pub fn why_not(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (the account dromaius runs as may not use that socket)".into()
        }
        std::io::ErrorKind::ConnectionRefused => "nothing listens there".into(),
        std::io::ErrorKind::NotFound => "no such socket".into(),
        std::io::ErrorKind::TimedOut => "it did not answer in time".into(),
        _ => error.to_string(),
    }
}

/// Whether a viewer that asked for `host` and `port` (as virt-manager and virt-viewer
/// write them: an IP literal, or `localhost` for a display listening on every address)
/// asked for `display`'s TCP endpoint: the same port on the same address, `localhost` and
/// the loopback addresses being one.
pub fn names_tcp(display: &Display, host: &str, port: u16) -> bool {
    let Endpoint::Tcp(address) = display.endpoint else {
        return false;
    };
    let asked = match host {
        "localhost" => None,
        literal => match literal
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => Some(ip),
            Err(_) => return false,
        },
    };
    let same_host = match asked {
        Some(ip) => ip == address.ip() || ip.is_loopback() && address.ip().is_loopback(),
        None => address.ip().is_loopback() || address.ip().is_unspecified(),
    };
    address.port() == port && same_host
}

/// Whether a viewer that asked for the unix socket `path` asked for `display`'s.
pub fn names_socket(display: &Display, path: &std::path::Path) -> bool {
    matches!(&display.endpoint, Endpoint::Unix(socket) if socket == path)
}

/// Why `domdisplay`'s answer is not relayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRelayed {
    /// Neither VNC nor SPICE (RDP, D-Bus, ...): the scheme it has.
    Unsupported(String),
    /// A SPICE display with a TLS port only.
    TlsOnly,
    /// A host name, which dromaius does not resolve.
    HostName(String),
    /// It carries credentials.
    Credentials,
    /// Not a display URI dromaius understands.
    Malformed,
}

impl fmt::Display for NotRelayed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotRelayed::Unsupported(scheme) => {
                write!(f, "its display is {scheme}; only VNC and SPICE are relayed")
            }
            NotRelayed::TlsOnly => write!(
                f,
                "its SPICE display listens only on a TLS port; only a plain port is relayed"
            ),
            NotRelayed::HostName(host) => write!(
                f,
                "its display listens on the host name {host}; only an address or a unix \
                 socket is relayed"
            ),
            NotRelayed::Credentials => write!(f, "libvirt gave its display with credentials"),
            NotRelayed::Malformed => write!(f, "libvirt's answer is not a display address"),
        }
    }
}

/// Reads `virsh domdisplay` output: `vnc://ADDRESS:DISPLAY` (IPv6 in brackets),
/// `vnc+unix:///PATH`, `spice://ADDRESS:PORT[?tls-port=PORT]`, `spice+unix:///PATH`.
pub fn display(domdisplay: &str) -> Result<Display, NotRelayed> {
    let uri = domdisplay.trim();
    if uri.is_empty() || uri.contains(char::is_whitespace) || uri.contains('\0') {
        return Err(NotRelayed::Malformed);
    }
    let (scheme, rest) = uri.split_once("://").ok_or(NotRelayed::Malformed)?;
    // `vnc://:PASSWORD@host` and `vnc+unix://:PASSWORD@/path` are how virsh gives a password.
    let known = matches!(scheme, "vnc" | "vnc+unix" | "spice" | "spice+unix");
    if known && rest.contains('@') {
        return Err(NotRelayed::Credentials);
    }
    let (protocol, endpoint) = match scheme {
        "vnc+unix" => (Protocol::Vnc, socket(rest)?),
        "spice+unix" => (Protocol::Spice, socket(rest)?),
        "vnc" => {
            let (host, display) = rest.rsplit_once(':').ok_or(NotRelayed::Malformed)?;
            let display: i64 = display
                .parse()
                .ok()
                .filter(|_| display.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
                .ok_or(NotRelayed::Malformed)?;
            let port = u16::try_from(VNC_BASE_PORT + display)
                .ok()
                .filter(|port| *port != 0)
                .ok_or(NotRelayed::Malformed)?;
            (
                Protocol::Vnc,
                Endpoint::Tcp(SocketAddr::new(address(host)?, port)),
            )
        }
        "spice" => (Protocol::Spice, spice_tcp(rest)?),
        other
            if other
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+') =>
        {
            return Err(NotRelayed::Unsupported(other.to_owned()));
        }
        _ => return Err(NotRelayed::Malformed),
    };
    Ok(Display { protocol, endpoint })
}

/// `/PATH` of a `+unix` display.
fn socket(rest: &str) -> Result<Endpoint, NotRelayed> {
    if !rest.starts_with('/') || rest.contains(['?', '#']) {
        return Err(NotRelayed::Malformed);
    }
    Ok(Endpoint::Unix(PathBuf::from(rest)))
}

/// `ADDRESS:PORT`, `ADDRESS:PORT?tls-port=PORT` or `ADDRESS?tls-port=PORT` of a SPICE
/// display: its plain port, which a TLS-only display has none of.
fn spice_tcp(rest: &str) -> Result<Endpoint, NotRelayed> {
    let (authority, query) = match rest.split_once('?') {
        Some((authority, query)) => (authority, Some(query)),
        None => (rest, None),
    };
    if let Some(query) = query {
        let tls = query
            .strip_prefix("tls-port=")
            .ok_or(NotRelayed::Malformed)?;
        if tls.is_empty() || !tls.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NotRelayed::Malformed);
        }
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed.split_once(']').ok_or(NotRelayed::Malformed)?;
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err(NotRelayed::Malformed),
            }
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let Some(port) = port else {
        return match query {
            Some(_) => Err(NotRelayed::TlsOnly),
            None => Err(NotRelayed::Malformed),
        };
    };
    let port = Some(port)
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0)
        .ok_or(NotRelayed::Malformed)?;
    Ok(Endpoint::Tcp(SocketAddr::new(address(host)?, port)))
}

/// An address as libvirt prints it. `localhost` is what virsh prints for a display that
/// listens on every address; it is this host's loopback, never looked up.
fn address(host: &str) -> Result<IpAddr, NotRelayed> {
    if host == "localhost" {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match literal.parse::<IpAddr>() {
        Ok(address) => Ok(address),
        Err(_)
            if host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b)) =>
        {
            Err(NotRelayed::HostName(host.to_owned()))
        }
        Err(_) => Err(NotRelayed::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_is_the_schemes() {
        assert_eq!(
            display("vnc://127.0.0.1:0").map(|d| d.protocol),
            Ok(Protocol::Vnc)
        );
        assert_eq!(
            display("vnc+unix:///s").map(|d| d.protocol),
            Ok(Protocol::Vnc)
        );
        assert_eq!(
            display("spice://127.0.0.1:5900").map(|d| d.protocol),
            Ok(Protocol::Spice)
        );
        assert_eq!(
            display("spice+unix:///s").map(|d| d.protocol),
            Ok(Protocol::Spice)
        );
    }

    fn tcp(address: &str) -> Result<Endpoint, NotRelayed> {
        Ok(Endpoint::Tcp(address.parse().expect("a socket address")))
    }

    fn endpoint(answer: &str) -> Result<Endpoint, NotRelayed> {
        display(answer).map(|d| d.endpoint)
    }

    #[test]
    fn domdisplay_answers() {
        let cases: &[(&str, Result<Endpoint, NotRelayed>)] = &[
            ("vnc://127.0.0.1:0\n", tcp("127.0.0.1:5900")),
            ("vnc://127.0.0.1:1", tcp("127.0.0.1:5901")),
            ("vnc://127.0.0.1:59635", tcp("127.0.0.1:65535")),
            ("vnc://127.0.0.1:59636", Err(NotRelayed::Malformed)),
            ("vnc://127.0.0.1:-100", tcp("127.0.0.1:5800")),
            ("vnc://127.0.0.1:-5900", Err(NotRelayed::Malformed)),
            ("vnc://localhost:3", tcp("127.0.0.1:5903")),
            ("vnc://[::1]:2", tcp("[::1]:5902")),
            ("vnc://::1:2", tcp("[::1]:5902")),
            ("vnc://192.0.2.7:0", tcp("192.0.2.7:5900")),
            (
                "vnc+unix:///var/lib/libvirt/qemu/domain-1-web1/vnc.sock\n",
                Ok(Endpoint::Unix(
                    "/var/lib/libvirt/qemu/domain-1-web1/vnc.sock".into(),
                )),
            ),
            ("vnc://:secret@127.0.0.1:1", Err(NotRelayed::Credentials)),
            (
                "vnc+unix://:secret@/tmp/four.sock",
                Err(NotRelayed::Credentials),
            ),
            (
                "vnc://vm-host.example:0",
                Err(NotRelayed::HostName("vm-host.example".into())),
            ),
            ("spice://127.0.0.1:5901", tcp("127.0.0.1:5901")),
            (
                "spice://127.0.0.1:5900?tls-port=5901",
                tcp("127.0.0.1:5900"),
            ),
            ("spice://127.0.0.1?tls-port=5901", Err(NotRelayed::TlsOnly)),
            ("spice://[::1]:5930", tcp("[::1]:5930")),
            ("spice://[::1]?tls-port=5931", Err(NotRelayed::TlsOnly)),
            ("spice://localhost:5930", tcp("127.0.0.1:5930")),
            (
                "spice+unix:///var/lib/libvirt/qemu/domain-2-sp/spice.sock",
                Ok(Endpoint::Unix(
                    "/var/lib/libvirt/qemu/domain-2-sp/spice.sock".into(),
                )),
            ),
            (
                "spice://:secret@127.0.0.1:5900",
                Err(NotRelayed::Credentials),
            ),
            ("spice://127.0.0.1:0", Err(NotRelayed::Malformed)),
            ("spice://127.0.0.1:65536", Err(NotRelayed::Malformed)),
            ("spice://127.0.0.1:+1", Err(NotRelayed::Malformed)),
            (
                "spice://127.0.0.1:5900?password=x",
                Err(NotRelayed::Malformed),
            ),
            (
                "spice://127.0.0.1:5900?tls-port=",
                Err(NotRelayed::Malformed),
            ),
            ("spice://127.0.0.1", Err(NotRelayed::Malformed)),
            ("spice://[::1", Err(NotRelayed::Malformed)),
            ("spice+unix://relative", Err(NotRelayed::Malformed)),
            (
                "rdp://127.0.0.1:3389",
                Err(NotRelayed::Unsupported("rdp".into())),
            ),
            ("", Err(NotRelayed::Malformed)),
            ("\n", Err(NotRelayed::Malformed)),
            ("vnc://127.0.0.1", Err(NotRelayed::Malformed)),
            ("vnc://127.0.0.1:", Err(NotRelayed::Malformed)),
            ("vnc://127.0.0.1:+1", Err(NotRelayed::Malformed)),
            ("vnc://127.0.0.1:0x10", Err(NotRelayed::Malformed)),
            (
                "vnc://127.0.0.1:0\nvnc://127.0.0.1:1",
                Err(NotRelayed::Malformed),
            ),
            ("vnc+unix://relative/path", Err(NotRelayed::Malformed)),
            ("vnc+unix:///tmp/x.sock?x=1", Err(NotRelayed::Malformed)),
            ("vnc://127.0.0.1:0/", Err(NotRelayed::Malformed)),
            ("vnc://[127.0.0.1:0", Err(NotRelayed::Malformed)),
            ("127.0.0.1:0", Err(NotRelayed::Malformed)),
            ("vnc://127.0.0.1:0 ", tcp("127.0.0.1:5900")),
            ("vnc://a b:0", Err(NotRelayed::Malformed)),
            ("vnc://\u{1b}[2J:0", Err(NotRelayed::Malformed)),
            ("x\u{0}y://127.0.0.1:0", Err(NotRelayed::Malformed)),
        ];
        for (answer, expected) in cases {
            assert_eq!(&endpoint(answer), expected, "{answer:?}");
        }
    }

    #[test]
    fn a_viewer_names_a_display_by_its_port_and_loopback() {
        let vnc = display("vnc://127.0.0.1:1").expect("vnc");
        let spice6 = display("spice://[::1]:5930").expect("spice");
        let socket = display("spice+unix:///run/x/spice.sock").expect("socket");
        let rows: &[(&Display, &str, u16, bool)] = &[
            (&vnc, "127.0.0.1", 5901, true),
            (&vnc, "localhost", 5901, true),
            (&vnc, "::1", 5901, true),
            (&vnc, "127.0.0.1", 5900, false),
            (&vnc, "192.0.2.7", 5901, false),
            (&vnc, "vm-host", 5901, false),
            (&spice6, "::1", 5930, true),
            (&spice6, "[::1]", 5930, true),
            (&spice6, "127.0.0.1", 5930, true),
            (&spice6, "::1", 5931, false),
            (&socket, "127.0.0.1", 5930, false),
        ];
        for (shown, host, port, named) in rows {
            assert_eq!(
                names_tcp(shown, host, *port),
                *named,
                "{shown:?} {host}:{port}"
            );
        }
        assert!(names_socket(
            &socket,
            std::path::Path::new("/run/x/spice.sock")
        ));
        assert!(!names_socket(
            &socket,
            std::path::Path::new("/run/x/vnc.sock")
        ));
        assert!(!names_socket(
            &vnc,
            std::path::Path::new("/run/x/spice.sock")
        ));
        let wildcard = display("vnc://0.0.0.0:2").expect("vnc");
        assert!(names_tcp(&wildcard, "localhost", 5902));
    }

    #[test]
    fn reasons_never_carry_what_they_refused_but_the_host_name() {
        assert!(!NotRelayed::Credentials.to_string().contains("secret"));
        assert!(
            NotRelayed::HostName("h.example".into())
                .to_string()
                .contains("h.example")
        );
    }
}
