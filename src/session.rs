//! Where requests come from, and the one loop that feeds them to the gateway.
//!
//! A session is a [`LineSource`] — one `SSH_ORIGINAL_COMMAND` or go-dromaius `-cmd`, lines
//! piped on stdin, or the interactive prompt (`prompt`) — and [`run`], which hands each line
//! to the gateway and keeps the status of the last request. Reading is bounded: a line longer
//! than a request may be is refused as one request and skipped to its end without being held
//! in memory, however long it is. Nothing here judges or runs a request.

use std::io::{BufRead, Write};

use crate::error::Status;
use crate::request::MAX_REQUEST_BYTES;

/// One line of input, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Text(Vec<u8>),
    /// Longer than a request may be; only its length was kept.
    TooLong(usize),
    /// From a terminal that could not keep its bytes (not UTF-8); nothing of it was kept.
    NotUtf8,
}

/// What a source has next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Line(Line),
    /// Nothing this time round (Ctrl-C cleared the line at the prompt).
    Nothing,
    /// The session is over: end of input, or the terminal is gone.
    End,
}

/// Where a session's lines come from.
pub trait LineSource {
    fn next_line(&mut self) -> Next;
}

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handled {
    pub status: Status,
    /// `exit`/`quit`, or the client hung up: the session ends here.
    pub end_session: bool,
}

/// Runs a session and returns its exit status: that of its last request (0 if none).
/// `handle` returns `None` for a line that asked for nothing (a blank one).
pub fn run(
    source: &mut dyn LineSource,
    mut handle: impl FnMut(&Line) -> Option<Handled>,
) -> Status {
    let mut last = Status::Ok;
    loop {
        match source.next_line() {
            Next::End => return last,
            Next::Nothing => {}
            Next::Line(line) => {
                if let Some(handled) = handle(&line) {
                    last = handled.status;
                    if handled.end_session {
                        return last;
                    }
                }
            }
        }
        if crate::system::process::hung_up() {
            return last;
        }
    }
}

/// One request and nothing more: `SSH_ORIGINAL_COMMAND`, or go-dromaius `-cmd`.
pub struct OneLine(Option<Vec<u8>>);

impl OneLine {
    pub fn new(line: Vec<u8>) -> OneLine {
        OneLine(Some(line))
    }
}

impl LineSource for OneLine {
    fn next_line(&mut self) -> Next {
        match self.0.take() {
            Some(line) => Next::Line(Line::Text(line)),
            None => Next::End,
        }
    }
}

/// Lines read one by one: piped stdin (no prompt, no escape codes), or a terminal the
/// line editor cannot drive (a prompt before each line).
pub struct PlainLines<R> {
    input: R,
    prompt: Option<String>,
}

impl<R: BufRead> PlainLines<R> {
    pub fn new(input: R, prompt: Option<String>) -> PlainLines<R> {
        PlainLines { input, prompt }
    }
}

impl<R: BufRead> LineSource for PlainLines<R> {
    fn next_line(&mut self) -> Next {
        if let Some(prompt) = &self.prompt {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout
                .write_all(prompt.as_bytes())
                .and_then(|()| stdout.flush());
        }
        match read_bounded_line(&mut self.input) {
            Ok(Some(line)) => Next::Line(line),
            Ok(None) | Err(_) => Next::End,
        }
    }
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

    fn handled(status: Status, end_session: bool) -> Option<Handled> {
        Some(Handled {
            status,
            end_session,
        })
    }

    #[test]
    fn the_session_status_is_the_last_request_s() {
        // (input, the session's status, how many lines were handed over)
        let cases: &[(&[u8], Status, usize)] = &[
            (b"", Status::Ok, 0),
            (b"ok\n", Status::Ok, 1),
            (b"fail\nok\n", Status::Ok, 2),
            (b"ok\nfail\n", Status::Failed, 2),
            (b"fail\n\n", Status::Failed, 2),
            (b"fail\nexit\nfail\n", Status::Ok, 2),
            (b"deny\n", Status::Denied, 1),
        ];
        for (input, expected, count) in cases {
            let mut source = PlainLines::new(*input, None);
            let mut seen = Vec::new();
            let status = run(&mut source, |line| {
                let Line::Text(text) = line else { return None };
                seen.push(text.clone());
                match text.as_slice() {
                    b"" => None,
                    b"ok" => handled(Status::Ok, false),
                    b"fail" => handled(Status::Failed, false),
                    b"deny" => handled(Status::Denied, false),
                    b"exit" => handled(Status::Ok, true),
                    _ => None,
                }
            });
            assert_eq!(status, *expected, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(seen.len(), *count, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn one_line_is_one_request() {
        let mut source = OneLine::new(b"status web1".to_vec());
        assert_eq!(
            source.next_line(),
            Next::Line(Line::Text(b"status web1".to_vec()))
        );
        assert_eq!(source.next_line(), Next::End);
    }
}
