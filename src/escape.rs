//! The one rule for showing a user-controlled string anywhere: in an audit record, in a
//! message on the user's terminal, in a virsh error passed back.
//!
//! Printable ASCII passes (except `\` and `"`, which are escaped so that a quoted field
//! cannot be closed early); every other byte — control characters, escape sequences, DEL,
//! all non-ASCII, invalid UTF-8 — becomes `\xNN`. The result is plain ASCII with no line
//! breaks: it can neither forge a syslog line or field nor repaint a terminal.

/// Escapes `bytes` as described in the module doc.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\x");
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
        }
    }
    out
}

/// Escapes a string (see [`escape_bytes`]).
pub fn escape(text: &str) -> String {
    escape_bytes(text.as_bytes())
}

/// Escapes and truncates to at most `max` input bytes, marking the cut, so that a 100 KiB
/// request cannot flood a log line.
pub fn escape_truncated(bytes: &[u8], max: usize) -> String {
    if bytes.len() <= max {
        return escape_bytes(bytes);
    }
    let mut out = escape_bytes(&bytes[..max]);
    out.push_str(&format!("...({} bytes)", bytes.len()));
    out
}

/// Makes virsh's own output safe to copy to the user's terminal: keeps printable ASCII,
/// newlines and tabs; escapes everything else. Domain names are chosen by the administrator,
/// but a name holding ESC must still not repaint anybody's screen.
pub fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        for part in body.split('\t').enumerate() {
            if part.0 > 0 {
                out.push('\t');
            }
            let escaped = escape(part.1);
            // Quotes and backslashes in virsh's output are not fields: show them as they are.
            out.push_str(&escaped.replace("\\\"", "\"").replace("\\\\", "\\"));
        }
        out.push_str(newline);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_table() {
        let cases: &[(&[u8], &str)] = &[
            (b"web1", "web1"),
            (b"a b", "a b"),
            (b"", ""),
            (b"a\"b", "a\\\"b"),
            (b"a\\b", "a\\\\b"),
            (b"x\ndecision=allow", "x\\x0adecision=allow"),
            (b"\r", "\\x0d"),
            (b"\x1b[2J", "\\x1b[2J"),
            (b"\x7f", "\\x7f"),
            (b"\0", "\\x00"),
            (b"\xff\xfe", "\\xff\\xfe"),
            ("caf\u{e9}".as_bytes(), "caf\\xc3\\xa9"),
            ("\u{202e}evil".as_bytes(), "\\xe2\\x80\\xaeevil"),
            (b"\t", "\\x09"),
        ];
        for (input, expected) in cases {
            assert_eq!(escape_bytes(input), *expected, "{input:?}");
        }
    }

    #[test]
    fn escaped_output_is_always_printable_ascii() {
        let all: Vec<u8> = (0..=255u8).collect();
        let escaped = escape_bytes(&all);
        assert!(escaped.bytes().all(|b| (0x20..0x7f).contains(&b)));
    }

    #[test]
    fn truncation_is_marked_and_bounded() {
        let long = vec![b'a'; 100_000];
        let out = escape_truncated(&long, 256);
        assert!(out.len() < 300, "{}", out.len());
        assert!(out.ends_with("...(100000 bytes)"));
        assert_eq!(escape_truncated(b"short", 256), "short");
    }

    #[test]
    fn terminal_safe_keeps_layout_and_drops_control_sequences() {
        assert_eq!(terminal_safe("a\tb\nc 'd'\n"), "a\tb\nc 'd'\n");
        assert_eq!(
            terminal_safe("x\x1b]0;owned\x07\n"),
            "x\\x1b]0;owned\\x07\n"
        );
        assert_eq!(terminal_safe("say \"hi\" \\o/"), "say \"hi\" \\o/");
        assert_eq!(terminal_safe("cr\r\n"), "cr\\x0d\n");
    }
}
