//! OpenSSH public keys as they appear in a `.pub` file or at the end of an
//! `authorized_keys` line: `TYPE BASE64-BLOB [COMMENT]`.
//!
//! A key is accepted only when its type is one sshd takes for a user key, its blob is
//! strict base64, and the blob decodes to the wire format of that same type (the type
//! string inside the blob, then exactly the fields that type has). This is a sanity check
//! of what an administrator pastes, not cryptography: no signature is verified and no curve
//! point is checked. Options in front of a key are `authorized_keys`'s business, not this.

/// Key types sshd accepts for a user key (OpenSSH 9), and how each blob is laid out.
const KEY_TYPES: [(&str, Layout); 7] = [
    ("ssh-ed25519", Layout::Ed25519 { sk: false }),
    ("ssh-rsa", Layout::Rsa),
    ("ecdsa-sha2-nistp256", Layout::Ecdsa("nistp256", 65, false)),
    ("ecdsa-sha2-nistp384", Layout::Ecdsa("nistp384", 97, false)),
    ("ecdsa-sha2-nistp521", Layout::Ecdsa("nistp521", 133, false)),
    ("sk-ssh-ed25519@openssh.com", Layout::Ed25519 { sk: true }),
    (
        "sk-ecdsa-sha2-nistp256@openssh.com",
        Layout::Ecdsa("nistp256", 65, true),
    ),
];

/// The fields of a key blob after its type string (RFC 4253 §6.6, RFC 5656 §3.1,
/// RFC 8709 §4, OpenSSH PROTOCOL.u2f).
#[derive(Clone, Copy)]
enum Layout {
    /// `string pk` (32 bytes); security keys add `string application`.
    Ed25519 { sk: bool },
    /// `mpint e`, `mpint n`.
    Rsa,
    /// `string curve`, `string Q` (uncompressed point of this length); security keys add
    /// `string application`.
    Ecdsa(&'static str, usize, bool),
}

/// sshd refuses RSA keys below this size (SSH_RSA_MINIMUM_MODULUS_SIZE).
const RSA_MIN_BITS: usize = 1024;

/// The names of the key types accepted, for messages.
pub fn known_types() -> impl Iterator<Item = &'static str> {
    KEY_TYPES.iter().map(|(name, _)| *name)
}

/// A validated public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kind: String,
    /// The base64 text, exactly as given (it decoded and checked out).
    pub base64: String,
    /// The comment, if any, with its inner spacing kept.
    pub comment: Option<String>,
}

impl PublicKey {
    /// `TYPE BLOB [COMMENT]`, one space between each.
    pub fn to_line(&self) -> String {
        match &self.comment {
            Some(comment) => format!("{} {} {comment}", self.kind, self.base64),
            None => format!("{} {}", self.kind, self.base64),
        }
    }
}

/// Parses `TYPE BLOB [COMMENT]` (spaces or tabs between the fields; the text must hold no
/// line break). Says what is wrong in words an administrator can act on.
pub fn parse(text: &str) -> Result<PublicKey, String> {
    // Said first: a private key file has many lines, and "it has many lines" would not help.
    if text.trim_start().starts_with("-----") {
        return Err(
            "this is a private key (or another PEM file), not a public key: give the .pub file"
                .into(),
        );
    }
    if text.contains(['\n', '\r']) {
        return Err("holds a line break: a public key is one line".into());
    }
    let text = text.trim_matches([' ', '\t']);
    let (kind, rest) = split_word(text);
    let (base64, comment) = split_word(rest);
    if kind.is_empty() {
        return Err("empty: no public key".into());
    }
    let Some(layout) = KEY_TYPES
        .iter()
        .find(|(name, _)| *name == kind)
        .map(|(_, l)| *l)
    else {
        return Err(unknown_type_message(kind, rest));
    };
    if base64.is_empty() {
        return Err(format!("no key data after the type {kind}"));
    }
    let blob = decode_base64(base64).ok_or("the key data is not valid base64")?;
    check_blob(kind, layout, &blob)?;
    if let Some(c) = comment.chars().find(|c| c.is_control() && *c != '\t') {
        return Err(format!(
            "the comment holds a control character (U+{:04X})",
            u32::from(c)
        ));
    }
    Ok(PublicKey {
        kind: kind.to_owned(),
        base64: base64.to_owned(),
        comment: (!comment.is_empty()).then(|| comment.to_owned()),
    })
}

fn unknown_type_message(word: &str, rest: &str) -> String {
    let shown = crate::escape::escape(&word.chars().take(40).collect::<String>());
    if word.starts_with("----") {
        return "this is an RFC 4716 (SSH2) public key: convert it with `ssh-keygen -i -f FILE`"
            .into();
    }
    if word.contains("-cert-v01@openssh.com") {
        return format!("{shown} is a certificate, not a plain public key");
    }
    let key_follows = rest
        .split([' ', '\t'])
        .any(|w| known_types().any(|t| t == w));
    if key_follows || word.contains(['=', ',', '"']) {
        return format!(
            "starts with {shown}, which looks like authorized_keys options: give a bare public key"
        );
    }
    let known: Vec<&str> = known_types().collect();
    format!(
        "{shown} is not a key type sshd accepts for a user key (known: {})",
        known.join(", ")
    )
}

/// The first word of `text` (up to a space or tab) and what follows it, trimmed.
fn split_word(text: &str) -> (&str, &str) {
    match text.find([' ', '\t']) {
        Some(end) => (&text[..end], text[end..].trim_matches([' ', '\t'])),
        None => (text, ""),
    }
}

fn check_blob(kind: &str, layout: Layout, blob: &[u8]) -> Result<(), String> {
    let mut reader = Reader(blob);
    let mismatch = || format!("the key data does not hold a {kind} key");
    let inner = reader.string().ok_or_else(mismatch)?;
    if inner != kind.as_bytes() {
        let inner = crate::escape::escape_bytes(&inner[..inner.len().min(40)]);
        return Err(format!(
            "the type says {kind} but the key data holds a \"{inner}\" key"
        ));
    }
    match layout {
        Layout::Ed25519 { sk } => {
            let point = reader.string().ok_or_else(mismatch)?;
            if point.len() != 32 {
                return Err(mismatch());
            }
            if sk {
                reader.string().ok_or_else(mismatch)?;
            }
        }
        Layout::Rsa => {
            reader.string().ok_or_else(mismatch)?; // e
            let modulus = reader.string().ok_or_else(mismatch)?;
            let bits = bit_length(modulus);
            if bits < RSA_MIN_BITS {
                return Err(format!(
                    "the RSA key has {bits} bits; sshd refuses keys under {RSA_MIN_BITS}"
                ));
            }
        }
        Layout::Ecdsa(curve, point_len, sk) => {
            let named = reader.string().ok_or_else(mismatch)?;
            let point = reader.string().ok_or_else(mismatch)?;
            if named != curve.as_bytes() || point.len() != point_len || point[0] != 4 {
                return Err(mismatch());
            }
            if sk {
                reader.string().ok_or_else(mismatch)?;
            }
        }
    }
    if !reader.0.is_empty() {
        return Err(format!(
            "the key data has {} stray bytes at its end",
            reader.0.len()
        ));
    }
    Ok(())
}

/// Bits of a big-endian unsigned integer (an mpint's leading zero bytes are skipped).
fn bit_length(number: &[u8]) -> usize {
    let Some(first) = number.iter().position(|b| *b != 0) else {
        return 0;
    };
    (number.len() - first - 1) * 8 + (8 - number[first].leading_zeros() as usize)
}

/// Reads SSH wire-format `string`s (a u32 big-endian length, then that many bytes).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let (length, rest) = self.0.split_first_chunk::<4>()?;
        let length = usize::try_from(u32::from_be_bytes(*length)).ok()?;
        if rest.len() < length {
            return None;
        }
        let (value, rest) = rest.split_at(length);
        self.0 = rest;
        Some(value)
    }
}

/// Strict standard base64 (RFC 4648 §4) with padding: no whitespace, no URL alphabet,
/// padding only at the end, and no stray bits in the last symbol. `None` if it is not.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return None;
    }
    let padding = bytes.iter().rev().take_while(|b| **b == b'=').count();
    if padding > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let mut accumulator: u32 = 0;
    let mut bits = 0u32;
    for &byte in &bytes[..bytes.len() - padding] {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        accumulator = (accumulator << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((accumulator >> bits) & 0xff) as u8);
        }
    }
    // Whatever is left over must be zero bits (canonical encoding).
    if accumulator & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINqzWR9UZkNr/2eeYsyo/nUbfB8OjRjUTYcE4jbe/7aA fixture-ed25519";
    pub const ECDSA256: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBBN7DNKznpNQdGeXikad+qS5R3duLYYh22pfzAGfw87dZuxHnc26PVNPEnhXakPvDlKN0DkQ85Ao/XfBNeAtyWU= fixture-ecdsab256";
    pub const ECDSA521: &str = "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAEoecyvwIcas8pQxbqC0hLXcHeM/9Pb75hGgQEDb/wCysReGkOrwM6rlbmLC2Im/pWp6ufXuvRHhBy3A1Pe0v+sRwF9fq1fhMsUXudsAp5DtwmSec2kaIn3GB4SSRERQ5oTFFh3+OY6tl42kOD/QXu0bhatAm5hjSmVUN0YgCSpyoCEVA== fixture-ecdsab521";

    /// Standard base64 with padding, to build blobs for the table.
    pub fn encode_base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.len();
            let mut group = [0u8; 3];
            group[..n].copy_from_slice(chunk);
            let v = u32::from(group[0]) << 16 | u32::from(group[1]) << 8 | u32::from(group[2]);
            for i in 0..4 {
                if i <= n {
                    out.push(char::from(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// A blob made of SSH strings.
    pub fn blob(fields: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for field in fields {
            out.extend_from_slice(&(field.len() as u32).to_be_bytes());
            out.extend_from_slice(field);
        }
        out
    }

    fn key(kind: &str, fields: &[&[u8]]) -> String {
        format!("{kind} {}", encode_base64(&blob(fields)))
    }

    #[test]
    fn base64_is_strict() {
        let cases: &[(&str, Option<&[u8]>)] = &[
            ("TWFu", Some(b"Man")),
            ("TWE=", Some(b"Ma")),
            ("TQ==", Some(b"M")),
            ("", None),
            ("TQ=", None),
            ("TQ", None),
            ("T===", None),
            ("TR==", None), // stray bits in the last symbol
            ("TW=u", None),
            ("TW u", None),
            ("TW_u", None),
            ("TW-u", None),
            ("TWFu\n", None),
            ("TWFu====", None),
        ];
        for (text, expected) in cases {
            assert_eq!(decode_base64(text).as_deref(), *expected, "{text:?}");
        }
        for len in 0..40u8 {
            let data: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            let encoded = encode_base64(&data);
            if len > 0 {
                assert_eq!(decode_base64(&encoded), Some(data), "{encoded}");
            }
        }
    }

    #[test]
    fn real_keys_from_ssh_keygen_parse() {
        for line in [ED25519, ECDSA256, ECDSA521] {
            let key = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(key.to_line(), line);
        }
        let bare = parse(ED25519.rsplit_once(' ').unwrap().0).unwrap();
        assert_eq!(bare.comment, None);
        let spaced = parse(&format!(
            "  {}\tmy laptop  key  ",
            ED25519.rsplit_once(' ').unwrap().0
        ));
        assert_eq!(spaced.unwrap().comment.as_deref(), Some("my laptop  key"));
    }

    #[test]
    fn every_known_type_with_a_well_formed_blob_parses() {
        let point256: Vec<u8> = std::iter::once(4).chain([7u8; 64]).collect();
        let mut modulus = vec![0u8];
        modulus.extend([0xc5u8; 256]);
        let cases = [
            key("ssh-ed25519", &[b"ssh-ed25519", &[1; 32]]),
            key("ssh-rsa", &[b"ssh-rsa", &[1, 0, 1], &modulus]),
            key(
                "ecdsa-sha2-nistp256",
                &[b"ecdsa-sha2-nistp256", b"nistp256", &point256],
            ),
            key(
                "sk-ssh-ed25519@openssh.com",
                &[b"sk-ssh-ed25519@openssh.com", &[2; 32], b"ssh:"],
            ),
            key(
                "sk-ecdsa-sha2-nistp256@openssh.com",
                &[
                    b"sk-ecdsa-sha2-nistp256@openssh.com",
                    b"nistp256",
                    &point256,
                    b"ssh:",
                ],
            ),
        ];
        for line in cases {
            assert!(parse(&line).is_ok(), "{line}: {:?}", parse(&line));
        }
    }

    #[test]
    fn refusals_say_why() {
        let point256: Vec<u8> = std::iter::once(4).chain([7u8; 64]).collect();
        let ed = |fields: &[&[u8]]| key("ssh-ed25519", fields);
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty"),
            ("   ".into(), "empty"),
            (format!("{ED25519}\n{ED25519}"), "line break"),
            (format!("{ED25519}\r"), "line break"),
            ("-----BEGIN OPENSSH PRIVATE KEY-----".into(), "private key"),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----".into(),
                "private key",
            ),
            ("---- BEGIN SSH2 PUBLIC KEY ----".into(), "RFC 4716"),
            (format!("restrict,pty {ED25519}"), "options"),
            (format!("command=\"x\" {ED25519}"), "options"),
            ("ssh-dss AAAAB3NzaC1kc3M=".into(), "not a key type"),
            ("ssh-ed25519-cert-v01@openssh.com AAAA".into(), "certificate"),
            ("SSH-ED25519 AAAA".into(), "not a key type"),
            ("ssh-ed25519".into(), "no key data"),
            ("ssh-ed25519 !!!!".into(), "not valid base64"),
            ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5".into(), "does not hold"),
            (ed(&[b"ssh-rsa", &[1; 32]]), "holds a \"ssh-rsa\" key"),
            (ed(&[b"ssh-ed25519", &[1; 31]]), "does not hold"),
            (ed(&[b"ssh-ed25519", &[1; 32], b"x"]), "stray bytes"),
            (ed(&[b"ssh-ed25519"]), "does not hold"),
            (key("ssh-rsa", &[b"ssh-rsa", &[1, 0, 1], &[0x80; 96]]), "768 bits"),
            (
                key("ecdsa-sha2-nistp384", &[b"ecdsa-sha2-nistp384", b"nistp256", &point256]),
                "does not hold",
            ),
            (
                key("sk-ssh-ed25519@openssh.com", &[b"sk-ssh-ed25519@openssh.com", &[2; 32]]),
                "does not hold",
            ),
            (format!("{ED25519}\u{1b}[2J"), "control character"),
        ];
        for (line, reason) in cases {
            match parse(&line) {
                Ok(key) => panic!("accepted {line:?} as {key:?}"),
                Err(e) => assert!(e.contains(reason), "{line:?}: {e}"),
            }
        }
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let real = decode_base64(ED25519.split(' ').nth(1).unwrap()).unwrap();
        for cut in 0..real.len() {
            let _ = parse(&format!("ssh-ed25519 {}", encode_base64(&real[..cut])));
        }
        let mut huge = real.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
        let _ = parse(&format!("ssh-ed25519 {}", encode_base64(&huge)));
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0, 1]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
    }
}
