//! One line the user sent, turned into a request — or refused as unparseable.
//!
//! The grammar is `COMMAND [DOMAIN]`: words split on spaces and tabs only, nothing else
//! interpreted. There are no options and no shell syntax; a `;` or a `--force` is just part
//! of a word, and a domain word is only ever compared with granted names. Bytes that are
//! not text (control characters, invalid UTF-8, invisible formatting characters) are
//! refused here so that nothing after this point ever sees them. Whether the request is
//! allowed is `policy`'s question.

use std::fmt;

use crate::action::Action;

/// The longest request accepted, in bytes, as in the contract.
pub const MAX_REQUEST_BYTES: usize = 4096;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Act(Action),
    List,
    Help,
    /// `exit` or `quit`.
    Exit,
}

impl Verb {
    pub fn from_word(word: &str) -> Option<Verb> {
        match word {
            "list" => Some(Verb::List),
            "help" => Some(Verb::Help),
            "exit" | "quit" => Some(Verb::Exit),
            other => Action::from_word(other).map(Verb::Act),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Verb::Act(action) => action.name(),
            Verb::List => "list",
            Verb::Help => "help",
            Verb::Exit => "exit",
        }
    }
}

/// A parsed request. `domain` is what the user typed, if anything; filling in a default
/// domain depends on the grants and is done by `policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub verb: Verb,
    pub domain: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    TooLong(usize),
    NotUtf8,
    ControlCharacter,
    InvisibleCharacter,
    /// The first word is not a command. Holds the word as typed (escape it to show it).
    UnknownCommand(String),
    TooManyWords,
    /// `list`, `help`, `exit` and `quit` take no domain.
    NoDomainExpected(Verb),
    /// An action without a domain, where no default applies.
    MissingDomain(Action),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::escape::escape;
        match self {
            ParseError::TooLong(len) => write!(
                f,
                "request too long ({len} bytes, at most {MAX_REQUEST_BYTES})"
            ),
            ParseError::NotUtf8 => f.write_str("request is not valid UTF-8"),
            ParseError::ControlCharacter => f.write_str("request holds a control character"),
            ParseError::InvisibleCharacter => {
                f.write_str("request holds an invisible or formatting character")
            }
            ParseError::UnknownCommand(word) => write!(f, "unknown command \"{}\"", escape(word)),
            ParseError::TooManyWords => f.write_str("too many words: expected COMMAND [DOMAIN]"),
            ParseError::NoDomainExpected(verb) => write!(f, "{} takes no domain", verb.name()),
            ParseError::MissingDomain(action) => write!(f, "{} needs a domain", action.name()),
        }
    }
}

/// Parses one request. `Ok(None)` means a blank line: nothing was asked.
pub fn parse(bytes: &[u8]) -> Result<Option<Request>, ParseError> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(ParseError::TooLong(bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ParseError::NotUtf8)?;
    // Tab is a separator; every other control character (C0, DEL, C1) is refused.
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ParseError::ControlCharacter);
    }
    if text.chars().any(is_invisible) {
        return Err(ParseError::InvisibleCharacter);
    }
    let mut words = text.split([' ', '\t']).filter(|w| !w.is_empty());
    let Some(first) = words.next() else {
        return Ok(None);
    };
    let verb = Verb::from_word(first).ok_or_else(|| ParseError::UnknownCommand(first.into()))?;
    let domain = words.next().map(str::to_owned);
    if words.next().is_some() {
        return Err(ParseError::TooManyWords);
    }
    if domain.is_some() && !matches!(verb, Verb::Act(_)) {
        return Err(ParseError::NoDomainExpected(verb));
    }
    Ok(Some(Request { verb, domain }))
}

/// Characters that show as nothing or as a space, or reorder what is shown: a request
/// holding one cannot mean what it looks like, so it is refused rather than matched.
fn is_invisible(c: char) -> bool {
    (c.is_whitespace() && c != ' ' && c != '\t')
        || matches!(c,
            '\u{00ad}'                 // soft hyphen
            | '\u{034f}'               // combining grapheme joiner
            | '\u{061c}'               // Arabic letter mark
            | '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}' // Hangul fillers
            | '\u{180e}'               // Mongolian vowel separator
            | '\u{200b}'..='\u{200f}'  // zero-width space/joiners, LRM, RLM
            | '\u{202a}'..='\u{202e}'  // bidi embeddings and overrides
            | '\u{2060}'..='\u{206f}'  // word joiner, invisible operators, bidi isolates
            | '\u{fe00}'..='\u{fe0f}'  // variation selectors
            | '\u{feff}'               // zero-width no-break space, BOM
            | '\u{fff9}'..='\u{fffb}'  // interlinear annotations
            | '\u{e0000}'..='\u{e007f}' // tags
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = Result<Option<Request>, ParseError>;

    fn act(action: Action, domain: &str) -> Parsed {
        Ok(Some(Request {
            verb: Verb::Act(action),
            domain: Some(domain.into()),
        }))
    }

    fn bare(verb: Verb) -> Parsed {
        Ok(Some(Request { verb, domain: None }))
    }

    #[test]
    fn grammar_table() {
        use Action::*;
        let unknown = |w: &str| Err(ParseError::UnknownCommand(w.into()));
        let cases: Vec<(&[u8], Parsed)> = vec![
            (b"start web1", act(Start, "web1")),
            (b"  start\t\tweb1  ", act(Start, "web1")),
            (b"status 2", act(Status, "2")),
            (b"status +2", act(Status, "+2")),
            (b"status 007", act(Status, "007")),
            (b"status -x", act(Status, "-x")),
            (b"start --console", act(Start, "--console")),
            (b"console --force", act(Console, "--force")),
            (
                b"status --connect=qemu:///system",
                act(Status, "--connect=qemu:///system"),
            ),
            (b"start web1;reboot", act(Start, "web1;reboot")),
            (b"start $(id)", act(Start, "$(id)")),
            (b"start `id`", act(Start, "`id`")),
            (b"start 'web1'", act(Start, "'web1'")),
            (b"start \"web1\"", act(Start, "\"web1\"")),
            (b"start web*", act(Start, "web*")),
            (b"start ../../etc", act(Start, "../../etc")),
            (
                b"destroy 6695eb01-f6a4-8304-79aa-97f2502e193f",
                act(Destroy, "6695eb01-f6a4-8304-79aa-97f2502e193f"),
            ),
            ("status caf\u{e9}".as_bytes(), act(Status, "caf\u{e9}")),
            (
                "status \u{0430}lice".as_bytes(),
                act(Status, "\u{0430}lice"),
            ),
            (b"start", bare(Verb::Act(Start))),
            (b"list", bare(Verb::List)),
            (b"help", bare(Verb::Help)),
            (b"exit", bare(Verb::Exit)),
            (b"quit", bare(Verb::Exit)),
            (b"", Ok(None)),
            (b"   \t ", Ok(None)),
            (b"list web1", Err(ParseError::NoDomainExpected(Verb::List))),
            (b"help start", Err(ParseError::NoDomainExpected(Verb::Help))),
            (b"exit 0", Err(ParseError::NoDomainExpected(Verb::Exit))),
            (b"start web1 web2", Err(ParseError::TooManyWords)),
            (b"start web1 --force", Err(ParseError::TooManyWords)),
            (b"START web1", unknown("START")),
            (b"Start web1", unknown("Start")),
            (b"domstate web1", unknown("domstate")),
            (b"define /tmp/x.xml", unknown("define")),
            (b"undefine web1", unknown("undefine")),
            (b"--connect qemu:///system", unknown("--connect")),
            (b"-c", unknown("-c")),
            (b";start", unknown(";start")),
            (b"start;", unknown("start;")),
            (b"sh -c id", unknown("sh")),
            ("st\u{0430}rt web1".as_bytes(), unknown("st\u{0430}rt")),
            (b"start web1\n", Err(ParseError::ControlCharacter)),
            (b"start web1\r", Err(ParseError::ControlCharacter)),
            (b"start web1\x00", Err(ParseError::ControlCharacter)),
            (b"start \x1b[2Jweb1", Err(ParseError::ControlCharacter)),
            (b"start web1\x7f", Err(ParseError::ControlCharacter)),
            (
                "start web1\u{85}".as_bytes(),
                Err(ParseError::ControlCharacter),
            ),
            (b"start \xffweb1", Err(ParseError::NotUtf8)),
            (b"start \xc0\xafweb1", Err(ParseError::NotUtf8)),
            (
                "start\u{a0}web1".as_bytes(),
                Err(ParseError::InvisibleCharacter),
            ),
            (
                "start web\u{200b}1".as_bytes(),
                Err(ParseError::InvisibleCharacter),
            ),
            (
                "start \u{202e}1bew".as_bytes(),
                Err(ParseError::InvisibleCharacter),
            ),
            (
                "start\u{3000}web1".as_bytes(),
                Err(ParseError::InvisibleCharacter),
            ),
            (
                "start web1\u{feff}".as_bytes(),
                Err(ParseError::InvisibleCharacter),
            ),
            (
                "start web1\u{2028}".as_bytes(),
                Err(ParseError::InvisibleCharacter),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse(input),
                expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn length_limit_is_exact() {
        let mut at_limit = b"status ".to_vec();
        at_limit.resize(MAX_REQUEST_BYTES, b'a');
        assert!(matches!(parse(&at_limit), Ok(Some(_))));
        at_limit.push(b'a');
        assert_eq!(
            parse(&at_limit),
            Err(ParseError::TooLong(MAX_REQUEST_BYTES + 1))
        );
        assert_eq!(
            parse(&vec![b'a'; 100 * 1024]),
            Err(ParseError::TooLong(100 * 1024))
        );
    }

    #[test]
    fn messages_escape_what_the_user_typed() {
        let error = ParseError::UnknownCommand("\u{1b}]0;pwned\u{7}".into());
        assert_eq!(error.to_string(), "unknown command \"\\x1b]0;pwned\\x07\"");
    }

    #[test]
    fn no_input_panics() {
        // Every short byte string, and every byte at every position of a request.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let _ = parse(&[a, b]);
                let _ = parse(&[b's', b't', b'a', b'r', b't', b' ', a, b]);
            }
        }
    }
}
