//! The interactive prompt, for a person at a terminal (`ssh -t`): a [`LineSource`] with
//! line editing, Tab completion and in-memory history (rustyline). Its lines go through the
//! same session loop and gateway as a one-shot or piped request.
//!
//! It decides nothing: completion asks the gateway (through [`Completions`]), which offers
//! only what the key may use, and a typed line is refused or run exactly as
//! `ssh dromaius@vm-host LINE` would be. No
//! history file is read or written anywhere (the account's home is shared by every key).
//! What one line may hold is bounded, as in piped mode: keys that would grow it past a
//! request's size, repeat it (Alt-digit counts) or paste from the kill ring are refused, and
//! bracketed paste is off so that pasted text arrives as keys and meets the same bound.

use std::io::{StdinLock, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rustyline::completion::{Completer, Pair};
use rustyline::error::{ReadlineError, Signal};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{
    Cmd, CompletionType, ConditionalEventHandler, Config, Context, EditMode, Editor, Event,
    EventContext, EventHandler, Helper, KeyCode, KeyEvent, Modifiers, RepeatCount,
};

use crate::action::Action;
use crate::escape::escape;
use crate::request::{self, MAX_REQUEST_BYTES, Request, Verb};
use crate::session::{Line, LineSource, Next, PlainLines};

/// Lines kept for Up/Down, in memory only.
const HISTORY_SIZE: usize = 100;
/// Keys one line may take before only Enter, Ctrl-C and Ctrl-D still work: each edit is
/// kept for undo, so a client streaming keys could otherwise grow the process without end.
const MAX_KEYS_PER_LINE: usize = 4 * MAX_REQUEST_BYTES;
/// `TERM` values rustyline cannot edit on (it would read lines unbounded): plain lines then.
const UNSUPPORTED_TERMS: [&str; 3] = ["dumb", "cons25", "emacs"];

/// What Tab may offer, and how long a line may be waited for: asked of the gateway, which
/// reads the config again for it.
pub trait Completions {
    /// The command words this key may use on some domain, then the session words.
    fn commands(&self) -> Vec<&'static str>;
    /// The existing domains this key may run `action` on, sorted.
    fn domains(&self, action: Action) -> Vec<String>;
    /// `idle_timeout_secs` of the config as last read.
    fn idle(&self) -> Option<Duration>;
}

/// The line source for a person at a terminal.
pub struct Prompt<'c> {
    kind: Kind<'c>,
    /// Asked, before each line, how long it may be waited for.
    completions: &'c dyn Completions,
}

enum Kind<'c> {
    Editor {
        editor: Box<Editor<Completion<'c>, DefaultHistory>>,
        prompt: String,
        keys: Arc<AtomicUsize>,
    },
    /// A terminal rustyline cannot drive: the prompt, then one bounded line at a time.
    Plain(PlainLines<StdinLock<'static>>),
}

impl<'c> Prompt<'c> {
    /// The prompt for the session named `name`, completing from `completions`; a session
    /// left waiting for a line as long as the config's `idle_timeout_secs` ends.
    pub fn new(name: &str, completions: &'c dyn Completions) -> Prompt<'c> {
        crate::system::process::remember_session_terminal();
        let prompt = prompt_text(name);
        let term = std::env::var("TERM").unwrap_or_default();
        let plain = || {
            Kind::Plain(PlainLines::new(
                std::io::stdin().lock(),
                Some(prompt.clone()),
            ))
        };
        let unsupported = UNSUPPORTED_TERMS
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&term));
        let keys = Arc::new(AtomicUsize::new(0));
        let editor = if unsupported {
            None
        } else {
            editor(completions, &keys).ok()
        };
        let kind = match editor {
            Some(editor) => Kind::Editor {
                editor: Box::new(editor),
                prompt: prompt.clone(),
                keys,
            },
            None => plain(),
        };
        Prompt { kind, completions }
    }
}

impl LineSource for Prompt<'_> {
    fn next_line(&mut self) -> Next {
        // The limit of the config as last read: one the administrator set while the session
        // was open applies from the next line on.
        crate::system::process::idle_from_now(self.completions.idle());
        let next = self.wait_for_line();
        crate::system::process::idle_from_now(None);
        next
    }
}

impl Prompt<'_> {
    fn wait_for_line(&mut self) -> Next {
        let (editor, prompt, keys) = match &mut self.kind {
            Kind::Plain(lines) => return lines.next_line(),
            Kind::Editor {
                editor,
                prompt,
                keys,
            } => (editor, prompt, keys),
        };
        // A Ctrl-C that reached us between commands is not meant for the next one.
        crate::system::process::take_interrupt();
        keys.store(0, Ordering::SeqCst);
        match editor.readline(prompt) {
            Ok(line) => {
                if worth_remembering(&line) {
                    let _ = editor.add_history_entry(line.as_str());
                }
                Next::Line(Line::Text(line.into_bytes()))
            }
            Err(ReadlineError::Interrupted | ReadlineError::Signal(Signal::Interrupt)) => {
                Next::Nothing
            }
            Err(ReadlineError::Io(error)) if error.kind() == std::io::ErrorKind::InvalidData => {
                // rustyline drops the line at the first byte that is not UTF-8; what was
                // typed after it on that line must not come back as a request of its own.
                crate::system::process::discard_typed_ahead();
                let _ = writeln!(std::io::stdout());
                Next::Line(Line::NotUtf8)
            }
            // End of input, or the terminal is gone (hang-up) or unusable.
            Err(_) => Next::End,
        }
    }
}

/// `dromaius (alice)> `, or `dromaius (web1)> ` in a session bound to `web1.example.org`.
fn prompt_text(name: &str) -> String {
    if name.is_empty() {
        "dromaius> ".to_owned()
    } else {
        format!("dromaius ({})> ", escape(name))
    }
}

/// History keeps lines that could be a request: not blank, not too long, and nothing that
/// would repaint the terminal when recalled.
fn worth_remembering(line: &str) -> bool {
    !line.trim().is_empty()
        && line.len() <= MAX_REQUEST_BYTES
        && !line.chars().any(|c| c.is_control() && c != '\t')
}

fn editor<'c>(
    completions: &'c dyn Completions,
    keys: &Arc<AtomicUsize>,
) -> rustyline::Result<Editor<Completion<'c>, DefaultHistory>> {
    let config = Config::builder()
        .edit_mode(EditMode::Emacs)
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .max_history_size(HISTORY_SIZE)?
        .history_ignore_dups(true)?
        .bracketed_paste(false)
        .build();
    let mut editor = Editor::with_config(config)?;
    editor.set_helper(Some(Completion {
        commands: completions.commands(),
        completions,
    }));
    editor.bind_sequence(
        Event::Any,
        EventHandler::Conditional(Box::new(LineBound {
            keys: Arc::clone(keys),
        })),
    );
    Ok(editor)
}

/// What a key does to the length of the line, as far as the bound is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyClass {
    /// Enter, Ctrl-C, Ctrl-D: always allowed, they end the line or the session.
    Ends,
    /// Inserts one character (typed, or quoted with Ctrl-V / Ctrl-Q), times the repeat count.
    Inserts,
    /// Ctrl-Y, Alt-Y: inserts the kill ring, which could be made to double at each yank.
    Yanks,
    /// Moves, deletes, completes, recalls history: nothing that grows the line unbounded.
    Other,
}

fn classify(key: KeyEvent) -> KeyClass {
    let KeyEvent(code, modifiers) = key;
    match (code, modifiers) {
        (KeyCode::Enter, _) => KeyClass::Ends,
        (KeyCode::Char('C' | 'D' | 'J' | 'M'), Modifiers::CTRL) => KeyClass::Ends,
        (KeyCode::Char('V' | 'Q'), Modifiers::CTRL) => KeyClass::Inserts,
        (KeyCode::Char('Y'), Modifiers::CTRL) | (KeyCode::Char('Y' | 'y'), Modifiers::ALT) => {
            KeyClass::Yanks
        }
        (KeyCode::Char(_), Modifiers::NONE | Modifiers::SHIFT) => KeyClass::Inserts,
        _ => KeyClass::Other,
    }
}

/// Whether a key is refused, given how many keys this line has taken, its repeat count and
/// the line's current length. Pure, for the table in the tests.
fn refused(class: KeyClass, keys: usize, repeat: RepeatCount, line_len: usize) -> bool {
    match class {
        KeyClass::Ends => false,
        _ if keys > MAX_KEYS_PER_LINE => true,
        KeyClass::Yanks => true,
        KeyClass::Inserts => repeat > 1 || line_len > MAX_REQUEST_BYTES,
        KeyClass::Other => false,
    }
}

/// Consulted by rustyline before every key: returns `Noop` for a refused one.
struct LineBound {
    keys: Arc<AtomicUsize>,
}

impl ConditionalEventHandler for LineBound {
    fn handle(
        &self,
        event: &Event,
        repeat: RepeatCount,
        _positive: bool,
        context: &EventContext,
    ) -> Option<Cmd> {
        let key = *event.get(0)?;
        let keys = self.keys.fetch_add(1, Ordering::SeqCst).saturating_add(1);
        refused(classify(key), keys, repeat, context.line().len()).then_some(Cmd::Noop)
    }
}

/// Tab: command words this key may use, then the domains it may run that command on.
pub struct Completion<'c> {
    completions: &'c dyn Completions,
    commands: Vec<&'static str>,
}

impl Completer for Completion<'_> {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _context: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let Some(word) = word_at(line, pos) else {
            return Ok((pos, Vec::new()));
        };
        let candidates = match &word.command {
            None => command_candidates(&self.commands, word.prefix),
            Some(command) => match Verb::from_word(command) {
                Some(Verb::Act(action)) => {
                    domain_candidates(action, &self.completions.domains(action), word.prefix)
                }
                _ => Vec::new(),
            },
        };
        Ok((word.start, candidates))
    }
}

impl Hinter for Completion<'_> {
    type Hint = String;
}

impl Highlighter for Completion<'_> {}

impl Validator for Completion<'_> {}

impl Helper for Completion<'_> {}

/// The word Tab completes: where it starts, what of it is typed, and the command before it
/// (`None` when it is the command itself).
#[derive(Debug, PartialEq, Eq)]
struct Word<'l> {
    start: usize,
    prefix: &'l str,
    command: Option<String>,
}

/// Finds the word under the cursor. `None` past the second word (a request has two) or
/// when `pos` is not a position in `line`.
fn word_at(line: &str, pos: usize) -> Option<Word<'_>> {
    let before = line.get(..pos)?;
    let start = before
        .rfind([' ', '\t'])
        .map_or(0, |separator| separator + 1);
    let earlier: Vec<&str> = before[..start]
        .split([' ', '\t'])
        .filter(|w| !w.is_empty())
        .collect();
    let command = match earlier.as_slice() {
        [] => None,
        [command] => Some((*command).to_owned()),
        _ => return None,
    };
    Some(Word {
        start,
        prefix: &before[start..],
        command,
    })
}

/// Command words starting with `prefix`, each followed by a space (a domain comes next).
fn command_candidates(commands: &[&str], prefix: &str) -> Vec<Pair> {
    commands
        .iter()
        .filter(|word| word.starts_with(prefix))
        .map(|word| Pair {
            display: (*word).to_owned(),
            replacement: format!("{word} "),
        })
        .collect()
}

/// Domain names starting with `prefix` that, typed after the command, parse back as exactly
/// that request: a name the grammar cannot carry (a space, a control character) is left out
/// rather than offered broken, and nothing unprintable is ever written to the terminal.
fn domain_candidates(action: Action, names: &[String], prefix: &str) -> Vec<Pair> {
    names
        .iter()
        .filter(|name| name.starts_with(prefix))
        .filter(|name| {
            let line = format!("{} {name}", action.name());
            request::parse(line.as_bytes())
                == Ok(Some(Request {
                    verb: Verb::Act(action),
                    domain: Some((*name).clone()),
                }))
        })
        .map(|name| Pair {
            display: name.clone(),
            replacement: name.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_names_the_session_escaped() {
        assert_eq!(prompt_text("alice"), "dromaius (alice)> ");
        assert_eq!(prompt_text("web1"), "dromaius (web1)> ");
        assert_eq!(prompt_text(""), "dromaius> ");
        assert_eq!(prompt_text("a\x1b[2Jb"), "dromaius (a\\x1b[2Jb)> ");
    }

    #[test]
    fn word_at_table() {
        let word = |start, prefix, command: Option<&str>| {
            Some(Word {
                start,
                prefix,
                command: command.map(str::to_owned),
            })
        };
        let cases: &[(&str, usize, Option<Word<'_>>)] = &[
            ("", 0, word(0, "", None)),
            ("st", 2, word(0, "st", None)),
            ("  st", 4, word(2, "st", None)),
            ("start", 2, word(0, "st", None)),
            ("start ", 6, word(6, "", Some("start"))),
            ("start we", 8, word(6, "we", Some("start"))),
            ("start\twe", 8, word(6, "we", Some("start"))),
            ("start  we", 9, word(7, "we", Some("start"))),
            ("start web1 ", 11, None),
            ("start web1 x", 12, None),
            ("start web1", 3, word(0, "sta", None)),
            ("x", 5, None),
            ("\u{e9}", 1, None),
        ];
        for (line, pos, expected) in cases {
            assert_eq!(word_at(line, *pos), *expected, "{line:?} at {pos}");
        }
    }

    fn replacements(pairs: &[Pair]) -> Vec<&str> {
        pairs.iter().map(|p| p.replacement.as_str()).collect()
    }

    #[test]
    fn commands_complete_from_the_given_words_only() {
        let words = ["start", "status", "list", "help", "exit", "quit"];
        assert_eq!(
            replacements(&command_candidates(&words, "st")),
            ["start ", "status "]
        );
        assert_eq!(
            replacements(&command_candidates(&words, "d")),
            [] as [&str; 0]
        );
        assert_eq!(command_candidates(&words, "").len(), words.len());
    }

    #[test]
    fn domains_that_could_not_be_requested_are_not_offered() {
        let names: Vec<String> = [
            "web1",
            "web2",
            "db",
            "with space",
            "esc\x1b[2J",
            "tab\tname",
            "zw\u{200b}",
            "web\u{e9}",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(
            replacements(&domain_candidates(Action::Start, &names, "")),
            ["web1", "web2", "db", "web\u{e9}"]
        );
        assert_eq!(
            replacements(&domain_candidates(Action::Console, &names, "web")),
            ["web1", "web2", "web\u{e9}"]
        );
        assert!(domain_candidates(Action::Status, &names, "x").is_empty());
    }

    #[test]
    fn keys_are_classified() {
        let key = |c, m| KeyEvent(KeyCode::Char(c), m);
        let cases = [
            (KeyEvent(KeyCode::Enter, Modifiers::NONE), KeyClass::Ends),
            (key('C', Modifiers::CTRL), KeyClass::Ends),
            (key('D', Modifiers::CTRL), KeyClass::Ends),
            (key('M', Modifiers::CTRL), KeyClass::Ends),
            (key('a', Modifiers::NONE), KeyClass::Inserts),
            (key('A', Modifiers::SHIFT), KeyClass::Inserts),
            (key(' ', Modifiers::NONE), KeyClass::Inserts),
            (key('V', Modifiers::CTRL), KeyClass::Inserts),
            (key('Q', Modifiers::CTRL), KeyClass::Inserts),
            (key('Y', Modifiers::CTRL), KeyClass::Yanks),
            (key('y', Modifiers::ALT), KeyClass::Yanks),
            (key('U', Modifiers::CTRL), KeyClass::Other),
            (key('b', Modifiers::ALT), KeyClass::Other),
            (KeyEvent(KeyCode::Up, Modifiers::NONE), KeyClass::Other),
            (KeyEvent(KeyCode::Tab, Modifiers::NONE), KeyClass::Other),
            (
                KeyEvent(KeyCode::Backspace, Modifiers::NONE),
                KeyClass::Other,
            ),
        ];
        for (key, class) in cases {
            assert_eq!(classify(key), class, "{key:?}");
        }
    }

    #[test]
    fn the_line_bound_table() {
        use KeyClass::*;
        let max = MAX_REQUEST_BYTES;
        let cases = [
            (Inserts, 1, 1, 0, false),
            (Inserts, 1, 1, max, false),
            // One more byte than a request may hold, so Enter says "too long".
            (Inserts, 1, 1, max + 1, true),
            (Inserts, 1, 2, 0, true),
            (Inserts, 1, 30000, 0, true),
            (Yanks, 1, 1, 0, true),
            (Other, 1, 5, max + 1, false),
            (Ends, 1, 1, max + 1, false),
            (Other, MAX_KEYS_PER_LINE + 1, 1, 0, true),
            (Inserts, MAX_KEYS_PER_LINE + 1, 1, 0, true),
            (Ends, MAX_KEYS_PER_LINE + 1, 1, 0, false),
            (Other, MAX_KEYS_PER_LINE, 1, 0, false),
        ];
        for (class, keys, repeat, len, expected) in cases {
            assert_eq!(
                refused(class, keys, repeat, len),
                expected,
                "{class:?} keys={keys} repeat={repeat} len={len}"
            );
        }
    }

    #[test]
    fn history_keeps_only_lines_that_could_be_requests() {
        assert!(worth_remembering("status web1"));
        assert!(worth_remembering("start\tweb1"));
        assert!(!worth_remembering(""));
        assert!(!worth_remembering("   "));
        assert!(!worth_remembering("status \x1b[2Jweb1"));
        assert!(!worth_remembering(&"x".repeat(MAX_REQUEST_BYTES + 1)));
    }
}
