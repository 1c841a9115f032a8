//! The lines of an `authorized_keys` file (and of a principals file) as sshd reads them:
//! options, with sshd's quoting, then the key; and a forced command split into words the
//! way `sh -c` would, where reading it can tell.

use crate::escape::escape;
use crate::sshkey::{self, PublicKey};

/// One parsed `authorized_keys` line.
#[derive(Debug)]
pub(super) struct Entry {
    /// Option names (lower case, as sshd compares them) with their unquoted values, in order.
    pub options: Vec<(String, Option<String>)>,
    pub key: PublicKey,
}

pub(super) fn parse_line(line: &str) -> Result<Entry, String> {
    let line = line.trim_end_matches(['\r', ' ', '\t']);
    let first = line.split([' ', '\t']).next().unwrap_or_default();
    // sshd tries the line as a bare key first, then as options followed by a key.
    let (options, key_text) = if sshkey::known_types().any(|t| t == first) {
        (Vec::new(), line)
    } else {
        let (options, rest) = split_options(line)?;
        (parse_options(options)?, rest)
    };
    let key = sshkey::parse(key_text)?;
    Ok(Entry { options, key })
}

/// Option names (lower case) with their unquoted values, in order.
type Options = Vec<(String, Option<String>)>;

/// An `AuthorizedPrincipalsFile` line as sshd reads it (auth2-pubkeyfile.c): a `#` anywhere
/// starts a comment; the principal is the last word; whatever is before it is the options.
pub(super) fn parse_principal_line(line: &str) -> Result<(Options, String), String> {
    let line = line.split('#').next().unwrap_or_default();
    let line = line.trim_end_matches([' ', '\t', '\r']);
    let (options, principal) = match line.rfind([' ', '\t']) {
        Some(at) => (line[..at].trim_end_matches([' ', '\t']), &line[at + 1..]),
        None => ("", line),
    };
    if principal.is_empty() {
        return Err("no principal".into());
    }
    let options = if options.is_empty() {
        Vec::new()
    } else {
        parse_options(options)?
    };
    Ok((options, principal.to_owned()))
}

/// Splits the options field (up to the first space or tab outside double quotes) from the
/// rest of the line.
fn split_options(line: &str) -> Result<(&str, &str), String> {
    let mut quoted = false;
    let mut escaped = false;
    for (at, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => {
                return Ok((&line[..at], line[at..].trim_start_matches([' ', '\t'])));
            }
            _ => {}
        }
    }
    if quoted {
        Err("a double quote in the options is not closed".into())
    } else {
        Err("no public key after the options".into())
    }
}

/// Options sshd 9 knows, and whether each takes a `="value"`.
const OPTIONS: [(&str, bool); 22] = [
    ("agent-forwarding", false),
    ("cert-authority", false),
    ("command", true),
    ("environment", true),
    ("expiry-time", true),
    ("from", true),
    ("no-agent-forwarding", false),
    ("no-port-forwarding", false),
    ("no-pty", false),
    ("no-touch-required", false),
    ("no-user-rc", false),
    ("no-x11-forwarding", false),
    ("permitlisten", true),
    ("permitopen", true),
    ("port-forwarding", false),
    ("principals", true),
    ("pty", false),
    ("restrict", false),
    ("tunnel", true),
    ("user-rc", false),
    ("verify-required", false),
    ("x11-forwarding", false),
];

/// `name,name="value",...` → names in lower case and values with `\"` unescaped (the only
/// escape sshd knows), refusing what sshd would refuse.
pub(super) fn parse_options(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut options = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let name_end = rest.find([',', '=']).unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        let Some(&(_, takes_value)) = OPTIONS.iter().find(|(known, _)| *known == name) else {
            return Err(format!(
                "unknown option \"{}\" (sshd ignores the whole line)",
                escape(&name)
            ));
        };
        rest = &rest[name_end..];
        let value = if let Some(after) = rest.strip_prefix('=') {
            let Some(quoted) = after.strip_prefix('"') else {
                return Err(format!("the value of {name} must be in double quotes"));
            };
            let (value, after) = unquote(quoted)
                .ok_or_else(|| format!("the value of {name} has no closing quote"))?;
            rest = after;
            Some(value)
        } else {
            None
        };
        if name == "command" && options.iter().any(|(n, _)| n == "command") {
            return Err("more than one command= option (sshd refuses the line)".into());
        }
        if takes_value != value.is_some() {
            return Err(if takes_value {
                format!("option {name} needs a value")
            } else {
                format!("option {name} takes no value")
            });
        }
        options.push((name, value));
        match rest.strip_prefix(',') {
            Some(after) if !after.is_empty() => rest = after,
            Some(_) => return Err("the options end with a comma".into()),
            None if rest.is_empty() => {}
            None => return Err("options must be separated by commas".into()),
        }
    }
    Ok(options)
}

/// The text up to the closing `"`, with `\"` turned into `"` (other backslashes are kept,
/// as sshd keeps them), and what follows the quote.
fn unquote(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[at + 1..])),
            '\\' if text[at + 1..].starts_with('"') => {
                value.push('"');
                chars.next();
            }
            other => value.push(other),
        }
    }
    None
}

/// Splits a forced command into words the way `sh -c` would, for commands made of plain
/// words and simple quotes only. Anything the shell would expand or interpret (`$`,
/// backquotes, `;`, `|`, `&`, redirections, globs, `~`, ...) is refused: such a command
/// cannot be judged by reading it.
pub(super) fn shell_words(command: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if let Some(done) = word.take() {
                    words.push(done);
                }
            }
            '\'' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(inner) => current.push(inner),
                        None => return Err("has an unclosed single quote".into()),
                    }
                }
            }
            '"' => {
                let current = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(inner @ ('$' | '`' | '\\')) => {
                            return Err(format!("expands {inner} inside double quotes"));
                        }
                        Some(inner) => current.push(inner),
                        None => return Err("has an unclosed double quote".into()),
                    }
                }
            }
            c if crate::report::keyline::is_plain_word_char(c) => {
                word.get_or_insert_with(String::new).push(c);
            }
            other => {
                return Err(format!(
                    "uses shell syntax ({})",
                    escape(&other.to_string())
                ));
            }
        }
    }
    words.extend(word);
    Ok(words)
}
