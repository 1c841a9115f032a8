//! Fuzzes the reader of sshd's `ExposeAuthInfo` text (`sshkey::auth_info::explain_auth_info`):
//! the input is the file's text. Checks that nothing panics, that a refusal is a sentence
//! without control characters (it is logged), and that an identity is consistent with the
//! text: it is within the size bound and ends with a line break, it is the key of the first
//! `publickey` line as the key reader reads it, and lines of other methods around it do not
//! change it.

#![no_main]
#![forbid(unsafe_code)]

use dromaius::sshkey::auth_info::{Cert, MAX_AUTH_INFO_BYTES, explain_auth_info};
use dromaius::sshkey::{self, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let identity = match explain_auth_info(&text) {
        Ok(identity) => identity,
        Err(why) => {
            assert!(!why.is_empty());
            assert!(!why.chars().any(char::is_control), "{why:?}");
            return;
        }
    };
    assert!(text.len() as u64 <= MAX_AUTH_INFO_BYTES);
    assert!(text.ends_with('\n'));
    assert!(identity.fingerprint.starts_with("SHA256:"), "{identity:?}");

    let first = text
        .lines()
        .find_map(|line| line.strip_prefix("publickey "))
        .expect("an identity comes from a publickey line");
    let mut words = first.split(' ');
    let key = format!(
        "{} {}",
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default()
    );
    let parsed = sshkey::parse_key_or_certificate(&key)
        .unwrap_or_else(|why| panic!("{text:?} gave {identity:?}, but {key:?}: {why}"));
    assert_eq!(identity.fingerprint, parsed.fingerprint(), "{text:?}");
    let cert = match &parsed {
        Parsed::Key(_) => None,
        Parsed::Certificate(cert) => Some(Cert {
            key_id: cert.key_id.clone(),
            serial: cert.serial,
        }),
    };
    assert_eq!(identity.cert, cert, "{text:?}");

    for around in [
        format!("password\n{text}"),
        format!("{text}keyboard-interactive/pam\n"),
        format!("{text}publickey {key}\n"),
    ] {
        if around.len() as u64 <= MAX_AUTH_INFO_BYTES {
            assert_eq!(
                explain_auth_info(&around).as_ref(),
                Ok(&identity),
                "{around:?}"
            );
        }
    }
});
