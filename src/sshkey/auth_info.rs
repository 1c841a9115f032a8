//! Which key logged in, exactly: sshd's `ExposeAuthInfo` file, named by `SSH_USER_AUTH`.
//!
//! With `ExposeAuthInfo yes`, sshd (session.c `prepare_auth_info_file`) writes one line per
//! authentication method that succeeded to a fresh `mkstemp` file
//! `/tmp/sshauth.XXXXXXXXXXXXXXX`, as the logged-in user, mode 0600, and removes it when
//! the connection ends. This module decides whether a file is that file — the path sshd's
//! template makes, a regular file that is no link, owned by this user, no access for
//! anybody else, one hard link, not empty and not huge — and reads the identity from its
//! text: the key of the first `publickey` line (the key whose `authorized_keys` options sshd
//! applied first), its fingerprint, and for a certificate its key ID and serial. Anything
//! else is not an identity, with a reason the caller logs at debug level: a missing or
//! odd file must never fail or delay a request. Everything here is pure; opening and
//! reading the file is `system::files::read_auth_info`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::escape::escape_truncated;
use crate::sshkey::{self, Parsed};
pub use crate::trust::{FileFacts, FileKind};

/// Larger than anything sshd writes here: one line per method, and the largest is a
/// certificate (an RSA-16384 certificate signed by an RSA-16384 CA is under 10 KiB of
/// base64). Bounds what a hostile file costs to read.
pub const MAX_AUTH_INFO_BYTES: u64 = 64 * 1024;

/// The directory and name prefix of sshd's template, `/tmp/sshauth.XXXXXXXXXXXXXXX`
/// (session.c; TMPDIR is not consulted).
const PATH_PREFIX: &[u8] = b"/tmp/sshauth.";
/// The X's of the template, which `mkstemp` replaces with letters and digits.
const RANDOM_CHARS: usize = 15;

/// Who logged in, as far as sshd says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `SHA256:...`, as `ssh-keygen -lf` and sshd's log print it; for a certificate, the
    /// certified key's.
    pub fingerprint: String,
    pub cert: Option<Cert>,
}

/// What a certificate adds. The key ID is the CA's text: escape it wherever it is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cert {
    pub key_id: String,
    pub serial: u64,
}

/// The identity in the text of an `SSH_USER_AUTH` file, or `None` if it holds none.
#[cfg(test)]
pub fn parse_auth_info(text: &str) -> Option<Identity> {
    explain_auth_info(text).ok()
}

/// [`parse_auth_info`], saying why there is no identity.
///
/// The text is what sshd's `auth2_update_session_info` writes: for each method that
/// succeeded, in order, `METHOD[/SUBMETHOD][ KEY][ INFO]` and a newline, where KEY is
/// `TYPE BASE64` (`sshkey_format_text`, no comment). Only `publickey` lines name the user's
/// key (`hostbased` names the client host's key). With several `publickey` lines
/// (`AuthenticationMethods publickey,publickey`) the first is taken: sshd gives the options,
/// and so the forced command, of the first key precedence (auth-options.c
/// `sshauthopt_merge`). Anything not of that shape means the file is not sshd's: no
/// identity, rather than a guess.
pub fn explain_auth_info(text: &str) -> Result<Identity, String> {
    if text.len() as u64 > MAX_AUTH_INFO_BYTES {
        return Err(format!("it is larger than {MAX_AUTH_INFO_BYTES} bytes"));
    }
    let Some(body) = text.strip_suffix('\n') else {
        return Err("it does not end with a line break (sshd ends every line)".into());
    };
    // Every line must have sshd's shape, not only the one taken.
    let mut methods = Vec::new();
    let mut first_key = None;
    for (index, line) in body.split('\n').enumerate() {
        let number = index + 1;
        let (method, rest) = line.split_once(' ').unwrap_or((line, ""));
        if !is_method(method) {
            return Err(format!(
                "line {number} does not start with an authentication method (\"{}\")",
                escape_truncated(method.as_bytes(), 40)
            ));
        }
        methods.push(method);
        if method != "publickey" {
            continue;
        }
        // sshd writes the key as `TYPE BASE64`; what may follow is method information
        // (none for publickey in 9.2, but later versions may add some), never a comment.
        if !rest.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(format!(
                "line {number} holds a byte sshd does not write there"
            ));
        }
        let mut words = rest.splitn(3, ' ');
        match (words.next(), words.next()) {
            (Some(kind), Some(base64)) => {
                first_key.get_or_insert((number, format!("{kind} {base64}")));
            }
            _ => return Err(format!("line {number} is publickey without a key")),
        }
    }
    let Some((number, key_text)) = first_key else {
        return Err(format!(
            "no public key authentication in it (methods: {})",
            methods.join(", ")
        ));
    };
    match sshkey::parse_key_or_certificate(&key_text) {
        Ok(parsed) => Ok(identity_of(&parsed)),
        Err(why) => Err(format!("line {number}: {why}")),
    }
}

fn identity_of(parsed: &Parsed) -> Identity {
    Identity {
        fingerprint: parsed.fingerprint(),
        cert: match parsed {
            Parsed::Key(_) => None,
            Parsed::Certificate(cert) => Some(Cert {
                key_id: cert.key_id.clone(),
                serial: cert.serial,
            }),
        },
    }
}

/// `METHOD` or `METHOD/SUBMETHOD` as sshd names them (`publickey`, `password`,
/// `keyboard-interactive/pam`, `gssapi-with-mic`, `hostbased`, `none`).
fn is_method(word: &str) -> bool {
    let (method, submethod) = word.split_once('/').unwrap_or((word, "a"));
    let name = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.@".contains(&b))
    };
    name(method) && name(submethod)
}

/// Whether the path is one sshd's template makes: `/tmp/sshauth.` and 15 letters or digits
/// (what glibc's and OpenBSD's `mkstemp` put for the X's), nothing else. Checked before the
/// file system is asked anything.
pub fn check_path(path: &OsStr) -> Result<(), String> {
    let bytes = path.as_bytes();
    let random = bytes.strip_prefix(PATH_PREFIX).unwrap_or_default();
    if !bytes.starts_with(PATH_PREFIX)
        || random.len() != RANDOM_CHARS
        || !random.iter().all(u8::is_ascii_alphanumeric)
    {
        return Err(format!(
            "\"{}\" is not a name sshd makes (/tmp/sshauth. and {RANDOM_CHARS} letters or digits)",
            escape_truncated(bytes, 80)
        ));
    }
    Ok(())
}

/// Whether what `lstat`/`fstat` says is what sshd's file is: a regular file (not a
/// symbolic link), owned by the user this process runs as (sshd writes it as the
/// logged-in user), with no permission beyond the owner's read and write (`mkstemp` makes
/// 0600, less any umask bits), one hard link (a fresh `mkstemp` file has one), and between
/// 1 byte and [`MAX_AUTH_INFO_BYTES`].
pub fn check_file(facts: &FileFacts, euid: u32) -> Result<(), String> {
    match facts.kind {
        FileKind::Regular => {}
        FileKind::Symlink => return Err("it is a symbolic link".into()),
        FileKind::Directory => return Err("it is a directory".into()),
        FileKind::Other => return Err("it is not a regular file".into()),
    }
    if facts.uid != euid {
        return Err(format!(
            "it is owned by uid {}, not by this user (uid {euid})",
            facts.uid
        ));
    }
    if facts.mode & !0o600 != 0 {
        return Err(format!(
            "its mode is {:04o}; sshd makes it 0600 or less",
            facts.mode
        ));
    }
    if facts.nlink != 1 {
        return Err(format!("it has {} hard links; sshd's has one", facts.nlink));
    }
    if facts.size == 0 {
        return Err("it is empty".into());
    }
    if facts.size > MAX_AUTH_INFO_BYTES {
        return Err(format!("it is larger than {MAX_AUTH_INFO_BYTES} bytes"));
    }
    Ok(())
}

/// The whole rule: the path, the file as `lstat` saw it before it was opened, and the file
/// that was opened (`fstat`), which must be the same one.
pub fn accept(
    path: &OsStr,
    before: &FileFacts,
    opened: &FileFacts,
    euid: u32,
) -> Result<(), String> {
    check_path(path)?;
    check_file(before, euid)?;
    check_file(opened, euid)?;
    if (before.dev, before.ino) != (opened.dev, opened.ino) {
        return Err("it was replaced while it was opened".into());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sshkey::tests::{ECDSA256, ED25519, ED25519_CERT, Keygen};
    use std::os::unix::ffi::OsStringExt;

    pub(crate) fn key_of(line: &str) -> String {
        let mut words = line.split(' ');
        format!(
            "{} {}",
            words.next().unwrap_or(""),
            words.next().unwrap_or("")
        )
    }

    pub(crate) fn fingerprint(line: &str) -> String {
        sshkey::parse_key_or_certificate(line)
            .map(|p| p.fingerprint())
            .unwrap_or_default()
    }

    #[test]
    fn the_first_publickey_line_is_the_identity() {
        let ed = key_of(ED25519);
        let ec = key_of(ECDSA256);
        let cert = key_of(ED25519_CERT);
        let plain = |line: &str| {
            Some(Identity {
                fingerprint: fingerprint(line),
                cert: None,
            })
        };
        let certified = Some(Identity {
            fingerprint: fingerprint(ED25519),
            cert: Some(Cert {
                key_id: "alice@example".into(),
                serial: 42,
            }),
        });
        let cases: Vec<(String, Option<Identity>)> = vec![
            (format!("publickey {ed}\n"), plain(ED25519)),
            (format!("publickey {ec}\n"), plain(ECDSA256)),
            (format!("publickey {cert}\n"), certified.clone()),
            // AuthenticationMethods publickey,publickey: the first key.
            (format!("publickey {ed}\npublickey {ec}\n"), plain(ED25519)),
            (
                format!("publickey {ec}\npublickey {cert}\n"),
                plain(ECDSA256),
            ),
            (format!("publickey {cert}\npublickey {ed}\n"), certified),
            // publickey,keyboard-interactive and the other way round; password first.
            (
                format!("publickey {ed}\nkeyboard-interactive/pam\n"),
                plain(ED25519),
            ),
            (
                format!("keyboard-interactive/pam\npublickey {ed}\n"),
                plain(ED25519),
            ),
            (format!("password\npublickey {ec}\n"), plain(ECDSA256)),
            (
                format!("gssapi-with-mic alice@EXAMPLE.ORG\npublickey {ed}\n"),
                plain(ED25519),
            ),
            // Method information after the key is not part of it.
            (
                format!("publickey {ed} signature count = 7\n"),
                plain(ED25519),
            ),
            // No user key: hostbased names the client host's key.
            (
                format!("hostbased {ed} client user \"a\", client host \"h\"\n"),
                None,
            ),
            ("password\n".into(), None),
            ("keyboard-interactive/pam\npassword\n".into(), None),
            ("none\n".into(), None),
            // Hostile or broken content.
            (String::new(), None),
            ("\n".into(), None),
            (format!("publickey {ed}"), None),
            (format!("publickey {ed}\n\n"), None),
            (format!("\npublickey {ed}\n"), None),
            (format!("publickey {ed}\r\n"), None),
            (format!("publickey  {ed}\n"), None),
            (format!("publickey\t{ed}\n"), None),
            (format!("PUBLICKEY {ed}\n"), None),
            (format!("publickey/x {ed}\n"), None),
            (format!("public key {ed}\n"), None),
            (format!(" publickey {ed}\n"), None),
            ("publickey\n".into(), None),
            ("publickey ssh-ed25519\n".into(), None),
            ("publickey ssh-ed25519 AAAA\n".into(), None),
            (format!("publickey {ed}\u{1b}[2J\n"), None),
            (format!("publickey {ed} \u{fffd}\n"), None),
            (format!("publickey {ed}\0\n"), None),
            (
                format!("publickey {}\n", ed.replacen("ssh-ed25519", "ssh-rsa", 1)),
                None,
            ),
            (
                format!("publickey {}\n", ed.replacen("AAAA", "AAA", 1)),
                None,
            ),
            (format!("publickey {ed}x\n"), None),
            (format!("publickey restrict {ed}\n"), None),
            (
                "publickey -----BEGIN OPENSSH PRIVATE KEY-----\n".to_string(),
                None,
            ),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n".into(),
                None,
            ),
            // A broken first publickey line is not skipped for a good second one.
            (
                format!("publickey ssh-ed25519 AAAA\npublickey {ed}\n"),
                None,
            ),
            (format!("\u{1b}]0;x\u{7}\npublickey {ed}\n"), None),
            (format!("{}\npublickey {ed}\n", "a".repeat(65)), None),
            (
                format!(
                    "publickey {ed}\n{}",
                    "x".repeat(MAX_AUTH_INFO_BYTES as usize)
                ),
                None,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_auth_info(&text), expected, "{text:?}");
        }
    }

    /// What sshd 9.2 (Debian 9.2p1-2+deb12u10) wrote on the rig, copied from its files:
    /// `AuthenticationMethods publickey,publickey` with a certificate first, then a key.
    const SSHD_WROTE_CERT_THEN_KEY: &str = "publickey ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAII+LnnVN0qn9vjd0vcNlSMrVaY26SQmq3et1wvN8p1PjAAAAIGA7KRrv216b5ypHxIpNnrgkwJbgevYV3iOSOixaTGvqAAAAAAAAEJIAAAABAAAAC2Nhcm9sJ3Mga2V5AAAACQAAAAVjYXJvbAAAAABrD0F8AAAAAGsPULgAAAAAAAAAggAAABVwZXJtaXQtWDExLWZvcndhcmRpbmcAAAAAAAAAF3Blcm1pdC1hZ2VudC1mb3J3YXJkaW5nAAAAAAAAABZwZXJtaXQtcG9ydC1mb3J3YXJkaW5nAAAAAAAAAApwZXJtaXQtcHR5AAAAAAAAAA5wZXJtaXQtdXNlci1yYwAAAAAAAAAAAAAAMwAAAAtzc2gtZWQyNTUxOQAAACCWT74xSyzKrBYJRhL9kQDwZCVb5r+wOcg6rkXxm8lMGQAAAFMAAAALc3NoLWVkMjU1MTkAAABAAdv3uz0YIvL9DFfPTl034dW7zu53ZK585plHPOCS3BXp3uA0I5D7JPA0MXKqdW/sLwVsX2ZFO4be23HQ30WeAw==\npublickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDqsonY/HMvSImOiVn0rkbibBbSKFDaLSeSccayrjA25\n";
    /// And with two plain keys, ED25519 then ECDSA.
    const SSHD_WROTE_TWO_KEYS: &str = "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDqsonY/HMvSImOiVn0rkbibBbSKFDaLSeSccayrjA25\npublickey ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPPEgsm3LGDBW9LzT92+HeRbKAtfD9H6Ki/YKqd5RjvNIMi1qSbUZN+KYB8DKDvTNySSeJNaGqgzW2PrZkqFv0c=\n";

    #[test]
    fn what_sshd_9_2_wrote_is_read_as_sshd_logged_it() {
        // sshd logged: "Accepted publickey ... ED25519-CERT SHA256:vEEZ... ID carol's key
        // (serial 4242) CA ED25519 ..." and "ED25519 SHA256:EyYu..." then "ECDSA SHA256:I9L8...".
        assert_eq!(
            parse_auth_info(SSHD_WROTE_CERT_THEN_KEY),
            Some(Identity {
                fingerprint: "SHA256:vEEZHG5LS8iLusVgK0Ow0Nkw7C1YgzxakqG8UpwoWy0".into(),
                cert: Some(Cert {
                    key_id: "carol's key".into(),
                    serial: 4242
                }),
            })
        );
        assert_eq!(
            parse_auth_info(SSHD_WROTE_TWO_KEYS),
            Some(Identity {
                fingerprint: "SHA256:EyYutpZm1ffiS6olBbczwnX4RpJaqskyHaRwv7PeUkc".into(),
                cert: None,
            })
        );
    }

    #[test]
    fn reasons_say_what_was_wrong() {
        let ed = key_of(ED25519);
        let cases = [
            (String::new(), "does not end with a line break"),
            (format!("publickey {ed}"), "does not end with a line break"),
            (
                "password\n".into(),
                "no public key authentication in it (methods: password)",
            ),
            ("publickey\n".into(), "publickey without a key"),
            (
                "publickey ssh-ed25519 AAAA\n".into(),
                "line 1: the key data does not hold",
            ),
            (
                format!("password\nPUBLICKEY {ed}\n"),
                "line 2 does not start with an authentication method",
            ),
            (format!("publickey {ed}\u{1b}\n"), "line 1 holds a byte"),
            ("x".repeat(70_000), "larger than 65536 bytes"),
        ];
        for (text, reason) in cases {
            match explain_auth_info(&text) {
                Ok(identity) => panic!("{text:?} gave {identity:?}"),
                Err(why) => assert!(why.contains(reason), "{text:?}: {why}"),
            }
        }
    }

    #[test]
    fn hostile_text_never_panics() {
        let good = format!("publickey {}\n", key_of(ED25519_CERT));
        for cut in 0..good.len() {
            if let Some(text) = good.get(..cut) {
                let _ = explain_auth_info(text);
            }
        }
        let bytes = good.as_bytes();
        for at in 0..bytes.len() {
            for value in [0u8, b' ', b'\n', b'/', 0x80, 0xff] {
                let mut changed = bytes.to_vec();
                changed[at] = value;
                let _ = explain_auth_info(&String::from_utf8_lossy(&changed));
            }
        }
        let _ = explain_auth_info(&"publickey \n".repeat(5000));
        let _ = explain_auth_info(&"/".repeat(1000));
    }

    #[test]
    fn only_sshds_path_template_is_accepted() {
        let good = [
            "/tmp/sshauth.htaxC5QV9mdaAWQ",
            "/tmp/sshauth.000000000000000",
            "/tmp/sshauth.ZZZZZZZZZZZZZZZ",
        ];
        for path in good {
            assert_eq!(check_path(OsStr::new(path)), Ok(()), "{path}");
        }
        let bad: Vec<Vec<u8>> = [
            "",
            "/tmp/sshauth.",
            "/tmp/sshauth.htaxC5QV9mdaAW",
            "/tmp/sshauth.htaxC5QV9mdaAWQQ",
            "/tmp/sshauth.htaxC5QV9mda/WQ",
            "/tmp/sshauth.htaxC5QV9mda.WQ",
            "/tmp/sshauth.../../etc/pass",
            "/tmp//sshauth.htaxC5QV9mdaAWQ",
            "/tmp/./sshauth.htaxC5QV9mdaAW",
            "/var/tmp/sshauth.htaxC5QV9mdaAWQ",
            "tmp/sshauth.htaxC5QV9mdaAWQ",
            "sshauth.htaxC5QV9mdaAWQ",
            "/tmp/sshauth.htaxC5QV9mdaAWQ/",
            "/tmp/sshauth.htaxC5QV9mdaAWQ\n",
            " /tmp/sshauth.htaxC5QV9mdaAWQ",
            "/TMP/sshauth.htaxC5QV9mdaAWQ",
            "/tmp/SSHAUTH.htaxC5QV9mdaAWQ",
            "/tmp/sshauth.htaxC5QV9mdaAW\u{e9}",
            "/tmp/sshauth.htaxC5QV9mdaA\0Q",
            "/tmp/sshauth.XXXXXXXXXXXXXX-",
            "/proc/self/fd/0",
            "/dev/stdin",
        ]
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .chain([b"/tmp/sshauth.htaxC5QV9mdaAW\xff".to_vec()])
        .collect();
        for path in bad {
            let path = std::ffi::OsString::from_vec(path);
            let why = check_path(&path).expect_err(&format!("{path:?}"));
            assert!(why.contains("is not a name sshd makes"), "{why}");
            assert!(!why.contains(['\n', '\0', '\u{e9}']), "{why}");
        }
    }

    fn sshd_made() -> FileFacts {
        FileFacts {
            kind: FileKind::Regular,
            dev: 2049,
            ino: 77,
            uid: 1001,
            mode: 0o600,
            nlink: 1,
            size: 91,
        }
    }

    #[test]
    fn only_a_file_like_sshds_is_accepted() {
        let ok = |f: FileFacts| check_file(&f, 1001);
        let base = sshd_made();
        assert_eq!(ok(base), Ok(()));
        // mkstemp's 0600 less umask bits, and the largest size.
        for mode in [0o400, 0o200, 0o000] {
            assert_eq!(ok(FileFacts { mode, ..base }), Ok(()), "{mode:o}");
        }
        assert_eq!(
            ok(FileFacts {
                size: MAX_AUTH_INFO_BYTES,
                ..base
            }),
            Ok(())
        );
        // root's own login: sshd runs the session as root and the file is root's.
        assert_eq!(check_file(&FileFacts { uid: 0, ..base }, 0), Ok(()));
        let cases = [
            (
                FileFacts {
                    kind: FileKind::Symlink,
                    ..base
                },
                "symbolic link",
            ),
            (
                FileFacts {
                    kind: FileKind::Directory,
                    ..base
                },
                "directory",
            ),
            (
                FileFacts {
                    kind: FileKind::Other,
                    ..base
                },
                "not a regular file",
            ),
            (
                FileFacts { uid: 0, ..base },
                "owned by uid 0, not by this user (uid 1001)",
            ),
            (FileFacts { uid: 1002, ..base }, "owned by uid 1002"),
            (
                FileFacts {
                    mode: 0o644,
                    ..base
                },
                "mode is 0644",
            ),
            (
                FileFacts {
                    mode: 0o640,
                    ..base
                },
                "mode is 0640",
            ),
            (
                FileFacts {
                    mode: 0o602,
                    ..base
                },
                "mode is 0602",
            ),
            (
                FileFacts {
                    mode: 0o700,
                    ..base
                },
                "mode is 0700",
            ),
            (
                FileFacts {
                    mode: 0o4600,
                    ..base
                },
                "mode is 4600",
            ),
            (
                FileFacts {
                    mode: 0o2600,
                    ..base
                },
                "mode is 2600",
            ),
            (
                FileFacts {
                    mode: 0o1600,
                    ..base
                },
                "mode is 1600",
            ),
            (
                FileFacts {
                    mode: 0o7777,
                    ..base
                },
                "mode is 7777",
            ),
            (FileFacts { nlink: 2, ..base }, "2 hard links"),
            (FileFacts { nlink: 0, ..base }, "0 hard links"),
            (FileFacts { size: 0, ..base }, "empty"),
            (
                FileFacts {
                    size: MAX_AUTH_INFO_BYTES + 1,
                    ..base
                },
                "larger than",
            ),
            (
                FileFacts {
                    size: u64::MAX,
                    ..base
                },
                "larger than",
            ),
        ];
        for (facts, reason) in cases {
            match ok(facts) {
                Ok(()) => panic!("accepted {facts:?}"),
                Err(why) => assert!(why.contains(reason), "{facts:?}: {why}"),
            }
        }
        let path = OsStr::new("/tmp/sshauth.htaxC5QV9mdaAWQ");
        assert_eq!(accept(path, &base, &base, 1001), Ok(()));
        let other = FileFacts { ino: 78, ..base };
        assert!(
            accept(path, &base, &other, 1001)
                .unwrap_err()
                .contains("replaced")
        );
        let other = FileFacts { dev: 1, ..base };
        assert!(
            accept(path, &base, &other, 1001)
                .unwrap_err()
                .contains("replaced")
        );
        let link = FileFacts {
            kind: FileKind::Symlink,
            ..base
        };
        assert!(
            accept(path, &link, &base, 1001)
                .unwrap_err()
                .contains("symbolic link")
        );
        assert!(
            accept(OsStr::new("/etc/passwd"), &base, &base, 1001)
                .unwrap_err()
                .contains("not a name")
        );
    }

    /// Lines as sshd writes them (`publickey` and `sshkey_format_text`), for keys and
    /// certificates made by ssh-keygen: the identity's fingerprint is `ssh-keygen -lf`'s.
    #[test]
    fn identities_of_ssh_keygen_keys_have_its_fingerprints() {
        let Some(keygen) = Keygen::new("identity") else {
            return;
        };
        keygen.key("ca", "ed25519", None);
        for (name, kind, bits) in [
            ("ed", "ed25519", None),
            ("rsa", "rsa", Some("3072")),
            ("ec", "ecdsa", Some("521")),
        ] {
            let line = keygen.key(name, kind, bits);
            let identity = parse_auth_info(&format!("publickey {}\n", key_of(&line)));
            let fingerprint = keygen.fingerprint(&format!("{name}.pub"));
            assert_eq!(
                identity,
                Some(Identity {
                    fingerprint: fingerprint.clone(),
                    cert: None
                })
            );
            let cert = keygen.certify(
                "ca",
                name,
                "carol's key",
                &["-n", "carol", "-z", "4242", "-V", "-5m:+1h"],
            );
            let text = format!("publickey {}\npublickey {}\n", key_of(&cert), key_of(&line));
            assert_eq!(
                parse_auth_info(&text),
                Some(Identity {
                    fingerprint: keygen.fingerprint(&format!("{name}-cert.pub")),
                    cert: Some(Cert {
                        key_id: "carol's key".into(),
                        serial: 4242
                    }),
                })
            );
        }
    }
}
