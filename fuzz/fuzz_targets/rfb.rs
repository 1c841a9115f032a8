//! Fuzzes `rfb::Handshake`, the reader of a relayed VNC handshake that checks which desktop
//! the display names. The input is a sequence of chunks, each a header byte (bit 0: from
//! the server or the viewer; the rest: the chunk's length) and its bytes, fed to the
//! reader as a relay would. Checks that nothing panics, that a verdict once given never
//! changes, that feeding every chunk at once gives the same verdict as feeding them one
//! by one (while each side stays within the bound), and that `Verified` means the server's
//! bytes hold the expected desktop name.

#![no_main]
#![forbid(unsafe_code)]

use dromaius::rfb::{Handshake, MAX_HANDSHAKE, Verdict};
use libfuzzer_sys::fuzz_target;

const DOMAIN: &str = "web1";

fuzz_target!(|data: &[u8]| {
    let mut chunked = Handshake::for_domain(DOMAIN);
    let (mut server, mut client) = (Vec::new(), Vec::new());
    let mut verdict = Verdict::Pending;
    let mut rest = data;
    while let Some((&header, after)) = rest.split_first() {
        let length = usize::from(header >> 1).min(after.len());
        let (chunk, after) = after.split_at(length);
        rest = after;
        let now = if header & 1 == 0 {
            server.extend_from_slice(chunk);
            chunked.from_server(chunk)
        } else {
            client.extend_from_slice(chunk);
            chunked.from_client(chunk)
        };
        if verdict != Verdict::Pending {
            assert_eq!(now, verdict, "a verdict changed");
        }
        verdict = now;
    }
    if server.len() <= MAX_HANDSHAKE && client.len() <= MAX_HANDSHAKE {
        let mut whole = Handshake::for_domain(DOMAIN);
        whole.from_server(&server);
        assert_eq!(
            whole.from_client(&client),
            verdict,
            "chunking changed the verdict"
        );
    }
    match &verdict {
        Verdict::Verified => {
            let name = format!("QEMU ({DOMAIN})");
            assert!(
                server.windows(name.len()).any(|w| w == name.as_bytes()),
                "verified without the desktop's name"
            );
        }
        Verdict::Mismatch(named) => {
            assert!(named.len() <= MAX_HANDSHAKE);
            assert_ne!(named, &format!("QEMU ({DOMAIN})"));
        }
        _ => {}
    }
});
