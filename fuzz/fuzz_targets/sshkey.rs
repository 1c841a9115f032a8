//! Fuzzes the OpenSSH key and certificate reader (`sshkey::parse`, `parse_certificate`,
//! `parse_key_or_certificate`): the input is the text of one `.pub` line, an
//! `authorized_keys` key or a certificate. Checks that nothing panics, that the three
//! readers agree, that whatever is accepted renders back (`to_line`) to a line that reads
//! again as the same key with the same fingerprint, and that every refusal is a sentence
//! without control characters (it is printed on an administrator's terminal).

#![no_main]
#![forbid(unsafe_code)]

use dromaius::sshkey::{self, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let key = sshkey::parse(&text);
    let cert = sshkey::parse_certificate(&text);
    let either = sshkey::parse_key_or_certificate(&text);
    for why in [
        &key.as_ref().err(),
        &cert.as_ref().err(),
        &either.as_ref().err(),
    ]
    .into_iter()
    .flatten()
    {
        assert!(!why.is_empty());
        assert!(!why.chars().any(char::is_control), "{why:?}");
    }
    assert!(
        key.is_err() || cert.is_err(),
        "{text:?} read as both a key and a certificate"
    );
    match &either {
        Ok(Parsed::Key(k)) => assert_eq!(key.as_ref(), Ok(k)),
        Ok(Parsed::Certificate(c)) => assert_eq!(cert.as_ref(), Ok(c)),
        Err(_) => assert!(key.is_err() && cert.is_err(), "{text:?}"),
    }
    if let Ok(key) = &key {
        assert!(sshkey::known_types().any(|t| t == key.kind), "{key:?}");
        assert!(key.fingerprint().starts_with("SHA256:"), "{key:?}");
        let line = key.to_line();
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "{line:?}"
        );
        assert_eq!(
            sshkey::parse(&line).as_ref(),
            Ok(key),
            "{text:?} renders as {line:?}"
        );
    }
    if let Ok(cert) = &cert {
        assert!(
            sshkey::known_certificate_types().any(|t| t == cert.kind),
            "{cert:?}"
        );
        assert!(cert.fingerprint().starts_with("SHA256:"), "{cert:?}");
        let line = cert.to_line();
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "{line:?}"
        );
        assert_eq!(
            sshkey::parse_certificate(&line).as_ref(),
            Ok(cert),
            "{text:?} renders as {line:?}"
        );
    }
});
