//! What goes to the user's stdout. (Errors go to stderr through `error::report`.)

use std::io::Write;

/// Writes `text` to stdout, trailing blank lines and spaces trimmed, nothing if it is
/// empty. A closed stdout (`... | head -1`) is not an error of the request's.
pub fn say(text: &str) {
    let text = text.trim_end_matches(['\n', ' ']);
    if text.is_empty() {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
}
