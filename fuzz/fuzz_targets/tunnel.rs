//! Fuzzes `tunnel::recognise`, the reader of the fixed ssh commands of standard libvirt
//! clients: the whole input is the command sshd would hand over. Checks that nothing
//! panics, that only short UTF-8 text is recognised, and that whatever is recognised
//! renders back to exactly the input bytes (so it is a command a real client sends) and
//! carries only values the clients can print.

#![no_main]
#![forbid(unsafe_code)]

use dromaius::tunnel::{self, MAX_COMMAND_BYTES, MAX_PATH_BYTES, Target, Tunnel};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|command: &[u8]| {
    let Some(tunnel) = tunnel::recognise(command) else {
        return;
    };
    assert!(command.len() <= MAX_COMMAND_BYTES);
    assert!(std::str::from_utf8(command).is_ok());
    assert!(
        !command.iter().any(|b| b.is_ascii_control()),
        "a recognised command holds no control character"
    );
    assert_eq!(
        tunnel::render(&tunnel).map(String::into_bytes).as_deref(),
        Some(command),
        "recognised {tunnel:?} does not render back to the input"
    );
    match &tunnel {
        Tunnel::Libvirt { uri, socket, .. } => {
            if let Some(uri) = uri {
                assert!(uri.bytes().all(|b| b.is_ascii_graphic()), "{uri:?}");
            }
            if let Some(socket) = socket {
                assert_safe_path(socket);
            }
        }
        Tunnel::Viewer { endpoint, .. } => match endpoint {
            Target::Tcp { host, port } => {
                assert_ne!(*port, 0);
                assert!(
                    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok(),
                    "{host:?}"
                );
            }
            Target::Unix(path) => assert_safe_path(path),
        },
    }
});

fn assert_safe_path(path: &std::path::Path) {
    let text = path.to_str().expect("a recognised path is text");
    assert!(
        text.starts_with('/') && text.len() <= MAX_PATH_BYTES,
        "{text:?}"
    );
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._+-".contains(&b)),
        "{text:?}"
    );
}
