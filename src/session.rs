//! Where requests come from: one `SSH_ORIGINAL_COMMAND`, a go-dromaius `-cmd`, lines piped
//! on stdin, or the interactive prompt — each fed to the same [`Gateway::handle`].
//!
//! Reading is bounded: a line longer than a request may be is refused as one request and
//! skipped to its end without being held in memory, however long it is.

use std::io::{BufRead, IsTerminal};

use crate::gateway::{Gateway, status};
use crate::request::MAX_REQUEST_BYTES;

/// Where a session's requests come from.
pub enum Source {
    /// One request: `SSH_ORIGINAL_COMMAND` or go-dromaius `-cmd`.
    One(Vec<u8>),
    /// Lines from stdin: a prompt when stdin is a terminal, plain lines otherwise.
    Stdin,
}

/// Runs a session and returns its exit status: that of its last request.
pub fn run(gateway: &Gateway<'_>, source: Source) -> u8 {
    match source {
        Source::One(line) => gateway.handle(&line).map_or(status::OK, |h| h.status),
        Source::Stdin if std::io::stdin().is_terminal() => crate::prompt::run(gateway),
        Source::Stdin => run_lines(gateway, std::io::stdin().lock()),
    }
}

/// Plain line mode: no prompt, no escape codes, one request per line.
pub fn run_lines(gateway: &Gateway<'_>, mut input: impl BufRead) -> u8 {
    let mut last = status::OK;
    loop {
        let line = match read_bounded_line(&mut input) {
            Ok(Some(line)) => line,
            Ok(None) | Err(_) => return last,
        };
        let handled = match line {
            Line::Text(bytes) => gateway.handle(&bytes),
            Line::TooLong(length) => gateway.handle_too_long(length),
        };
        if let Some(handled) = handled {
            last = handled.status;
            if handled.end_session {
                return last;
            }
        }
    }
}

/// One line of input, without its newline.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Text(Vec<u8>),
    /// Longer than a request may be; only its length was kept.
    TooLong(usize),
}

/// Reads up to the next `\n` (or end of input), holding at most `MAX_REQUEST_BYTES + 1`
/// bytes of it. `Ok(None)` at end of input.
pub fn read_bounded_line(input: &mut impl BufRead) -> std::io::Result<Option<Line>> {
    let mut kept = Vec::new();
    let mut length = 0usize;
    let mut saw_anything = false;
    loop {
        let buffer = input.fill_buf()?;
        if buffer.is_empty() {
            break;
        }
        saw_anything = true;
        let (chunk, done) = match buffer.iter().position(|b| *b == b'\n') {
            Some(end) => (&buffer[..end], true),
            None => (buffer, false),
        };
        length = length.saturating_add(chunk.len());
        if kept.len() <= MAX_REQUEST_BYTES {
            let room = MAX_REQUEST_BYTES + 1 - kept.len();
            kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        let consumed = chunk.len() + usize::from(done);
        input.consume(consumed);
        if done {
            break;
        }
    }
    if !saw_anything {
        return Ok(None);
    }
    Ok(Some(if length > MAX_REQUEST_BYTES {
        Line::TooLong(length)
    } else {
        Line::Text(kept)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<Line> {
        let mut reader = std::io::BufReader::with_capacity(7, input);
        let mut out = Vec::new();
        while let Ok(Some(line)) = read_bounded_line(&mut reader) {
            out.push(line);
        }
        out
    }

    #[test]
    fn lines_split_on_newline_only() {
        assert_eq!(
            lines(b"status a\nlist\n\nstart b\r\nlast"),
            [
                Line::Text(b"status a".to_vec()),
                Line::Text(b"list".to_vec()),
                Line::Text(b"".to_vec()),
                Line::Text(b"start b\r".to_vec()),
                Line::Text(b"last".to_vec()),
            ]
        );
        assert!(lines(b"").is_empty());
    }

    #[test]
    fn an_overlong_line_is_one_refusal_and_reading_goes_on() {
        let mut input = vec![b'x'; 5 * 1024 * 1024];
        input.extend_from_slice(b"\nlist\n");
        assert_eq!(
            lines(&input),
            [Line::TooLong(5 * 1024 * 1024), Line::Text(b"list".to_vec())]
        );
        let mut exact = vec![b'y'; MAX_REQUEST_BYTES];
        exact.push(b'\n');
        assert_eq!(lines(&exact), [Line::Text(vec![b'y'; MAX_REQUEST_BYTES])]);
        let over = vec![b'y'; MAX_REQUEST_BYTES + 1];
        assert_eq!(lines(&over), [Line::TooLong(MAX_REQUEST_BYTES + 1)]);
    }
}
