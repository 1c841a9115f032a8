//! Where a domain's graphical console is, from what `virsh domdisplay` says, and whether
//! dromaius relays it.
//!
//! The rules: only VNC; only an endpoint on this host (the hypervisor's URI is local, see
//! `config::Hypervisor::is_local`: a remote hypervisor's `127.0.0.1` is that machine's,
//! not ours); only an IP address or a unix socket path, never a host name to resolve; and
//! never an endpoint that carries a password (dromaius asks read-only, so libvirt cannot
//! give it one; one that arrives anyway is refused, not relayed or shown).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// The first TCP port of VNC displays: `vnc://HOST:N` is port 5900 + N.
const VNC_BASE_PORT: i64 = 5900;

/// Where to connect for a domain's VNC console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
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
}

impl Ending {
    /// For the audit record.
    pub fn word(&self) -> &'static str {
        match self {
            Ending::ViewerClosed => "viewer closed",
            Ending::DisplayClosed => "display closed",
            Ending::HungUp => "hung up",
            Ending::Revoked(_) => "revoked while attached",
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

/// Why `domdisplay`'s answer is not relayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRelayed {
    /// Not a VNC display (SPICE, RDP, ...): the scheme it has.
    NotVnc(String),
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
            NotRelayed::NotVnc(scheme) => {
                write!(f, "its display is {scheme}; only VNC is relayed")
            }
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

/// Reads `virsh domdisplay --type vnc` output: `vnc://ADDRESS:DISPLAY` (IPv6 in brackets)
/// or `vnc+unix:///PATH`.
pub fn endpoint(domdisplay: &str) -> Result<Endpoint, NotRelayed> {
    let uri = domdisplay.trim();
    if uri.is_empty() || uri.contains(char::is_whitespace) || uri.contains('\0') {
        return Err(NotRelayed::Malformed);
    }
    let (scheme, rest) = uri.split_once("://").ok_or(NotRelayed::Malformed)?;
    match scheme {
        "vnc+unix" => {
            // `vnc+unix://:PASSWORD@/path` is how virsh gives a socket's password.
            if rest.contains('@') {
                return Err(NotRelayed::Credentials);
            }
            if !rest.starts_with('/') || rest.contains(['?', '#']) {
                return Err(NotRelayed::Malformed);
            }
            Ok(Endpoint::Unix(PathBuf::from(rest)))
        }
        "vnc" => {
            if rest.contains('@') {
                return Err(NotRelayed::Credentials);
            }
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
            Ok(Endpoint::Tcp(SocketAddr::new(address(host)?, port)))
        }
        other
            if other
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+') =>
        {
            Err(NotRelayed::NotVnc(other.to_owned()))
        }
        _ => Err(NotRelayed::Malformed),
    }
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

    fn tcp(address: &str) -> Result<Endpoint, NotRelayed> {
        Ok(Endpoint::Tcp(address.parse().expect("a socket address")))
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
            (
                "spice://127.0.0.1:5901",
                Err(NotRelayed::NotVnc("spice".into())),
            ),
            (
                "rdp://127.0.0.1:3389",
                Err(NotRelayed::NotVnc("rdp".into())),
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
    fn reasons_never_carry_what_they_refused_but_the_host_name() {
        assert!(!NotRelayed::Credentials.to_string().contains("secret"));
        assert!(
            NotRelayed::HostName("h.example".into())
                .to_string()
                .contains("h.example")
        );
    }
}
