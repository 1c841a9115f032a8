//! Which desktop a relayed VNC connection reached, read from the RFB handshake as it
//! passes: the server's `ServerInit` names its desktop, and QEMU names it `QEMU (NAME)`
//! after the domain. A relay that reaches another domain's display (the domain stopped and
//! another QEMU took its port between libvirt's answer and the connect) is ended before
//! the viewer sees that desktop.
//!
//! Only the handshake is read, never relayed data after it, and only where it is in the
//! clear: security types None (1) and VNC authentication (2, whose challenge and response
//! pass through untouched). A connection that negotiates anything else (VeNCrypt, SASL)
//! cannot be read without its keys: it is [`Verdict::Unverifiable`] and relayed on
//! libvirt's word alone, as SPICE always is (its link reply names no desktop). Everything
//! is bounded: a handshake that grows past [`MAX_HANDSHAKE`] bytes is [`Verdict::Malformed`].

/// The most either side may send before the server names its desktop.
pub const MAX_HANDSHAKE: usize = 16 * 1024;

/// What the handshake says so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not far enough yet.
    Pending,
    /// The server named the expected desktop.
    Verified,
    /// The server named another desktop: this one.
    Mismatch(String),
    /// The handshake cannot be read in the clear, or failed before naming a desktop.
    Unverifiable,
    /// Not RFB as any VNC server speaks it.
    Malformed,
}

/// One connection's handshake, fed the bytes of each side as they pass.
#[derive(Debug, Clone)]
pub struct Handshake {
    expected: String,
    server: Vec<u8>,
    client: Vec<u8>,
    verdict: Verdict,
}

impl Handshake {
    /// A handshake that must name the desktop of the domain `domain`.
    pub fn for_domain(domain: &str) -> Handshake {
        Handshake {
            expected: format!("QEMU ({domain})"),
            server: Vec::new(),
            client: Vec::new(),
            verdict: Verdict::Pending,
        }
    }

    /// Bytes the display (the server) sent; what the handshake says now.
    pub fn from_server(&mut self, bytes: &[u8]) -> Verdict {
        if self.verdict == Verdict::Pending {
            take(&mut self.server, bytes);
            self.verdict = self.read();
        }
        self.verdict.clone()
    }

    /// Bytes the viewer (the client) sent; what the handshake says now.
    pub fn from_client(&mut self, bytes: &[u8]) -> Verdict {
        if self.verdict == Verdict::Pending {
            take(&mut self.client, bytes);
            self.verdict = self.read();
        }
        self.verdict.clone()
    }

    /// Reads as far as both sides' bytes go.
    fn read(&self) -> Verdict {
        if self.server.len() > MAX_HANDSHAKE || self.client.len() > MAX_HANDSHAKE {
            return Verdict::Malformed;
        }
        let mut server = Reader::new(&self.server);
        let mut client = Reader::new(&self.client);
        match self.steps(&mut server, &mut client) {
            Ok(verdict) => verdict,
            Err(Short) => Verdict::Pending,
        }
    }

    /// The handshake, step by step; `Err(Short)` where a side has not sent enough yet.
    fn steps(&self, server: &mut Reader<'_>, client: &mut Reader<'_>) -> Result<Verdict, Short> {
        let Some(server_minor) = version(server.take(12)?) else {
            return Ok(Verdict::Malformed);
        };
        let Some(minor) = version(client.take(12)?) else {
            return Ok(Verdict::Malformed);
        };
        if minor > server_minor {
            return Ok(Verdict::Malformed);
        }
        let chosen = if minor >= 7 {
            let count = server.u8()?;
            if count == 0 {
                return Ok(Verdict::Unverifiable);
            }
            let offered = server.take(usize::from(count))?;
            let chosen = client.u8()?;
            if !offered.contains(&chosen) {
                return Ok(Verdict::Malformed);
            }
            u32::from(chosen)
        } else {
            server.u32()?
        };
        // Whether a SecurityResult follows: always in 3.8, for VNC authentication in each.
        let result_follows = match chosen {
            1 => minor >= 8,
            2 => {
                server.take(16)?;
                client.take(16)?;
                true
            }
            _ => return Ok(Verdict::Unverifiable),
        };
        if result_follows && server.u32()? != 0 {
            return Ok(Verdict::Unverifiable);
        }
        client.u8()?; // ClientInit
        server.take(20)?; // width, height, pixel format
        let length = server.u32()?;
        let Ok(length) = usize::try_from(length) else {
            return Ok(Verdict::Malformed);
        };
        if length > MAX_HANDSHAKE {
            return Ok(Verdict::Malformed);
        }
        let name = String::from_utf8_lossy(server.take(length)?).into_owned();
        Ok(if name == self.expected {
            Verdict::Verified
        } else {
            Verdict::Mismatch(name)
        })
    }
}

/// Keeps at most one byte past the bound, so that a flood is seen and not stored.
fn take(into: &mut Vec<u8>, bytes: &[u8]) {
    let room = (MAX_HANDSHAKE + 1).saturating_sub(into.len());
    into.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

/// `RFB 003.00N\n`: N, for the versions VNC servers speak (3.3, 3.7, 3.8; Apple's 3.889 is
/// read as 3.8).
fn version(text: &[u8]) -> Option<u32> {
    let minor = text.strip_prefix(b"RFB 003.")?.strip_suffix(b"\n")?;
    if minor.len() != 3 || !minor.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let minor: u32 = std::str::from_utf8(minor).ok()?.parse().ok()?;
    match minor {
        3 | 7 | 8 => Some(minor),
        889 => Some(8),
        _ => None,
    }
}

/// Not enough bytes yet.
struct Short;

/// Reads a side's bytes in order.
struct Reader<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    fn new(bytes: &'b [u8]) -> Reader<'b> {
        Reader { bytes, at: 0 }
    }

    fn take(&mut self, count: usize) -> Result<&'b [u8], Short> {
        let end = self.at.checked_add(count).ok_or(Short)?;
        let taken = self.bytes.get(self.at..end).ok_or(Short)?;
        self.at = end;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<u8, Short> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, Short> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_init(name: &str) -> Vec<u8> {
        let mut bytes = vec![0x02, 0xd0, 0x01, 0x90];
        bytes.extend([0u8; 16]);
        bytes.extend((name.len() as u32).to_be_bytes());
        bytes.extend(name.as_bytes());
        bytes
    }

    /// The server's and the client's bytes of a whole handshake of `minor`, `security`.
    fn handshake(minor: u8, security: u8, name: &str) -> (Vec<u8>, Vec<u8>) {
        let version = format!("RFB 003.00{minor}\n").into_bytes();
        let mut server = version.clone();
        let mut client = version;
        if minor >= 7 {
            server.extend([2, 1, 2]);
            client.push(security);
        } else {
            server.extend(u32::from(security).to_be_bytes());
        }
        if security == 2 {
            server.extend([7u8; 16]);
            client.extend([9u8; 16]);
        }
        if security == 2 || minor >= 8 {
            server.extend(0u32.to_be_bytes());
        }
        client.push(1);
        server.extend(server_init(name));
        (server, client)
    }

    /// Feeds both sides a byte at a time, the client first, as a relay might see them.
    fn verdict_of(server: &[u8], client: &[u8]) -> Verdict {
        let mut shake = Handshake::for_domain("web1");
        let mut last = Verdict::Pending;
        for i in 0..server.len().max(client.len()) {
            if let Some(b) = client.get(i) {
                last = shake.from_client(&[*b]);
            }
            if let Some(b) = server.get(i) {
                last = shake.from_server(&[*b]);
            }
        }
        last
    }

    #[test]
    fn the_desktop_qemu_names_is_read_in_every_clear_handshake() {
        for minor in [3, 7, 8] {
            for security in [1, 2] {
                let (server, client) = handshake(minor, security, "QEMU (web1)");
                assert_eq!(
                    verdict_of(&server, &client),
                    Verdict::Verified,
                    "3.{minor} {security}"
                );
                let (server, client) = handshake(minor, security, "QEMU (web2)");
                assert_eq!(
                    verdict_of(&server, &client),
                    Verdict::Mismatch("QEMU (web2)".into()),
                    "3.{minor} {security}"
                );
            }
        }
    }

    #[test]
    fn what_cannot_be_read_in_the_clear_is_unverifiable_and_hostile_bytes_malformed() {
        let (mut server, mut client) = handshake(8, 1, "QEMU (web1)");
        client[12] = 19;
        server[13] = 19;
        assert_eq!(verdict_of(&server, &client), Verdict::Unverifiable);
        let (server, mut client) = handshake(8, 1, "QEMU (web1)");
        client[12] = 5;
        assert_eq!(verdict_of(&server, &client), Verdict::Malformed);
        assert_eq!(
            verdict_of(b"SSH-2.0-OpenSSH\r\n", b"RFB 003.008\n"),
            Verdict::Malformed
        );
        assert_eq!(
            verdict_of(b"RFB 003.008\n", b"RFB 003.009\n"),
            Verdict::Malformed
        );
        let (mut server, client) = handshake(8, 1, "QEMU (web1)");
        let at = server.len() - "QEMU (web1)".len() - 4;
        server[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(verdict_of(&server, &client), Verdict::Malformed);
        let mut shake = Handshake::for_domain("web1");
        assert_eq!(
            shake.from_server(&vec![b'x'; MAX_HANDSHAKE * 2]),
            Verdict::Malformed
        );
        // A refusal before any desktop is named (no security type offered, a failed result).
        let (mut server, client) = handshake(8, 2, "QEMU (web1)");
        let at = 12 + 3 + 16;
        server[at..at + 4].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(verdict_of(&server, &client), Verdict::Unverifiable);
        assert_eq!(
            verdict_of(b"RFB 003.008\n\0", b"RFB 003.008\n"),
            Verdict::Unverifiable
        );
        assert_eq!(verdict_of(b"RFB 003.008\n", b""), Verdict::Pending);
    }
}
