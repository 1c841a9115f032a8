//! Domain patterns in a grant: what bash's `[[ NAME == PATTERN ]]` means, or a refusal.
//!
//! Administrators write grants the way they write shell patterns, so a pattern means exactly
//! what it means to bash (extglob off, `globasciiranges` on, as bash 5 runs scripts, in a
//! UTF-8 locale): `*` any run of characters, `?` one character, `[...]` one character of a
//! set — `[!...]` and `[^...]` negate it, `a-z` is a range, `[:digit:]` and the other POSIX
//! classes are classes — and `\` makes the next character literal, inside a set too. `/` and
//! a leading `.` are ordinary characters, and case matters.
//!
//! Whatever bash would read in more than one way, or differently from one machine to
//! another, is refused with a reason, never given a third meaning: a `[` with no `]`
//! closing a non-empty set (bash would take the `[` literally), a trailing `\`, an unknown
//! class, `[=x=]` and `[.x.]`, a range whose ends are not ASCII or are reversed, a `-`
//! right after a range, and the extglob openers `?(`, `*(`, `+(`, `@(`, `!(` (their meaning
//! depends on `shopt extglob`; escape the character to mean it literally). Matching is
//! pure and bounded: O(pattern × name) steps at most.

use std::fmt;

/// A compiled pattern, as the administrator wrote it.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Literal(char),
    /// `?`
    AnyOne,
    /// `*` (a run of them is one)
    AnyRun,
    /// `[...]`
    Set {
        negated: bool,
        members: Vec<Member>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Member {
    Char(char),
    Range(char, char),
    Class(Class),
}

/// The POSIX character classes bash knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Alnum,
    Alpha,
    Ascii,
    Blank,
    Cntrl,
    Digit,
    Graph,
    Lower,
    Print,
    Punct,
    Space,
    Upper,
    Word,
    Xdigit,
}

impl Class {
    fn named(name: &str) -> Option<Class> {
        Some(match name {
            "alnum" => Class::Alnum,
            "alpha" => Class::Alpha,
            "ascii" => Class::Ascii,
            "blank" => Class::Blank,
            "cntrl" => Class::Cntrl,
            "digit" => Class::Digit,
            "graph" => Class::Graph,
            "lower" => Class::Lower,
            "print" => Class::Print,
            "punct" => Class::Punct,
            "space" => Class::Space,
            "upper" => Class::Upper,
            "word" => Class::Word,
            "xdigit" => Class::Xdigit,
            _ => return None,
        })
    }

    /// Whether `c` is in the class, as glibc's UTF-8 locales classify it: ASCII exactly as
    /// POSIX says; beyond ASCII by Unicode's properties (digits and hex digits are ASCII only).
    fn contains(self, c: char) -> bool {
        match self {
            Class::Alnum => c.is_alphabetic() || c.is_ascii_digit(),
            Class::Alpha => c.is_alphabetic(),
            Class::Ascii => c.is_ascii(),
            Class::Blank => c == ' ' || c == '\t',
            Class::Cntrl => c.is_control(),
            Class::Digit => c.is_ascii_digit(),
            Class::Graph => !c.is_control() && !c.is_whitespace() && c != ' ',
            Class::Lower => c.is_lowercase(),
            Class::Print => !c.is_control(),
            Class::Punct => {
                if c.is_ascii() {
                    c.is_ascii_punctuation()
                } else {
                    !c.is_control() && !c.is_whitespace() && !c.is_alphanumeric()
                }
            }
            Class::Space => c.is_whitespace(),
            Class::Upper => c.is_uppercase(),
            Class::Word => c.is_alphanumeric() || c == '_',
            Class::Xdigit => c.is_ascii_hexdigit(),
        }
    }
}

/// Why a pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The 1-based character position the problem starts at.
    pub at: usize,
    pub why: &'static str,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (character {})", self.why, self.at)
    }
}

impl Pattern {
    /// Compiles `text`, or says why bash would not read it one way only.
    pub fn new(text: &str) -> Result<Pattern, Refused> {
        let mut items = Vec::new();
        read(text, &mut |event| match event {
            Event::Item(item) => items.push(item),
            Event::Member(member) => {
                if let Some(Item::Set { members, .. }) = items.last_mut() {
                    members.push(member);
                }
            }
        })?;
        Ok(Pattern {
            text: text.to_owned(),
            items,
        })
    }

    /// Whether [`Pattern::new`] would compile `text`, without building anything (the
    /// reading checks every grant of a big config this way, and builds only those it keeps).
    pub fn check(text: &str) -> Result<(), Refused> {
        // Only a `[`, a `\` or an extglob's `(` can be refused; nearly every grant's
        // pattern (`web-*`) holds none of them.
        if !text.contains(['[', '\\', '(']) {
            return Ok(());
        }
        read(text, &mut |_| {})
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The one name this pattern matches, when it holds no wildcard (`web\*` is the name
    /// `web*`).
    pub fn literal(&self) -> Option<String> {
        self.items
            .iter()
            .map(|item| match item {
                Item::Literal(c) => Some(*c),
                _ => None,
            })
            .collect()
    }

    /// Whether `name` matches, as `[[ NAME == PATTERN ]]` says.
    pub fn matches(&self, name: &str) -> bool {
        let items = &self.items;
        // Classic matching with one backtrack point, the last `*`: each `*` only ever has to
        // take one more character, so the work is bounded by pattern × name. `n` is a byte
        // offset into `name`, always at a character boundary.
        let (mut p, mut n) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        loop {
            let next = name.get(n..).and_then(|rest| rest.chars().next());
            match (items.get(p), next) {
                (Some(Item::AnyRun), _) => {
                    star = Some((p, n));
                    p += 1;
                    continue;
                }
                (Some(item), Some(c)) if item.matches_one(c) => {
                    p += 1;
                    n += c.len_utf8();
                    continue;
                }
                (None, None) => return true,
                _ => {}
            }
            let taken = star.and_then(|(star_p, star_n)| {
                let c = name.get(star_n..)?.chars().next()?;
                Some((star_p, star_n + c.len_utf8()))
            });
            match taken {
                Some((star_p, star_n)) => {
                    star = Some((star_p, star_n));
                    p = star_p + 1;
                    n = star_n;
                }
                None => return false,
            }
        }
    }
}

/// What reading a pattern finds, in order: items, and after a set's item, its members.
enum Event {
    Item(Item),
    Member(Member),
}

/// Reads `text` from start to end, telling `found` each item and set member as it goes.
fn read(text: &str, found: &mut dyn FnMut(Event)) -> Result<(), Refused> {
    let chars = Chars::new(text);
    let mut at = 0;
    let mut last_was_run = false;
    while let Some(c) = chars.get(at) {
        let refused = |why| Err(Refused { at: at + 1, why });
        let mut item = match c {
            '\\' => match chars.get(at + 1) {
                Some(next) => {
                    at += 1;
                    Item::Literal(next)
                }
                None => return refused("a `\\` at the end escapes nothing"),
            },
            '?' | '*' | '+' | '@' | '!' if chars.get(at + 1) == Some('(') => {
                return refused(
                    "`?(`, `*(`, `+(`, `@(` and `!(` are extended globs in bash when \
                     extglob is on and plain characters when it is off; write `\\(` for a \
                     literal `(`",
                );
            }
            '*' => Item::AnyRun,
            '?' => Item::AnyOne,
            '[' => {
                at = bracket(&chars, at, found)?;
                last_was_run = false;
                continue;
            }
            _ => Item::Literal(c),
        };
        at += 1;
        // A run of `*` is one `*`.
        let is_run = item == Item::AnyRun;
        if !(is_run && last_was_run) {
            found(Event::Item(std::mem::replace(&mut item, Item::AnyOne)));
        }
        last_was_run = is_run;
    }
    Ok(())
}

/// The characters of a pattern by index: ASCII patterns (nearly all) byte by byte, others
/// decoded once.
enum Chars<'t> {
    Ascii(&'t [u8]),
    Wide(Vec<char>),
}

impl<'t> Chars<'t> {
    fn new(text: &'t str) -> Chars<'t> {
        if text.is_ascii() {
            Chars::Ascii(text.as_bytes())
        } else {
            Chars::Wide(text.chars().collect())
        }
    }

    fn get(&self, index: usize) -> Option<char> {
        match self {
            Chars::Ascii(bytes) => bytes.get(index).map(|b| char::from(*b)),
            Chars::Wide(chars) => chars.get(index).copied(),
        }
    }
}

impl Item {
    fn matches_one(&self, c: char) -> bool {
        match self {
            Item::Literal(l) => *l == c,
            Item::AnyOne => true,
            Item::AnyRun => false,
            Item::Set { negated, members } => members.iter().any(|m| m.contains(c)) != *negated,
        }
    }
}

impl Member {
    fn contains(&self, c: char) -> bool {
        match self {
            Member::Char(m) => *m == c,
            Member::Range(low, high) => (*low..=*high).contains(&c),
            Member::Class(class) => class.contains(c),
        }
    }
}

/// Reads the set that starts with the `[` at `open`, telling `found` its item and then its
/// members; returns where reading goes on.
fn bracket(chars: &Chars<'_>, open: usize, found: &mut dyn FnMut(Event)) -> Result<usize, Refused> {
    let unclosed = Refused {
        at: open + 1,
        why: "this `[` has no `]` closing a non-empty set (bash would take the `[` \
              literally; write `\\[` for that)",
    };
    let mut at = open + 1;
    let negated = matches!(chars.get(at), Some('!' | '^'));
    if negated {
        at += 1;
    }
    // Members are told as they are read; a set that turns out unclosed refuses the whole
    // pattern, so nothing half-read is ever used.
    found(Event::Item(Item::Set {
        negated,
        members: Vec::new(),
    }));
    let mut first = true;
    loop {
        let Some(c) = chars.get(at) else {
            return Err(unclosed);
        };
        // A `]` first in the set is a member, not its end.
        if c == ']' && !first {
            return Ok(at + 1);
        }
        first = false;
        let (member, next) = member(chars, at, &unclosed)?;
        at = next;
        // `X-Y` is a range unless the `-` is last in the set.
        match member {
            Member::Char(low) if chars.get(at) == Some('-') && chars.get(at + 1) != Some(']') => {
                let (range, next) = range(chars, low, at, &unclosed)?;
                found(Event::Member(range));
                at = next;
            }
            other => found(Event::Member(other)),
        }
    }
}

/// One member of a set at `at` (a character, an escaped one, or a `[:class:]`), and where
/// reading goes on.
fn member(chars: &Chars<'_>, at: usize, unclosed: &Refused) -> Result<(Member, usize), Refused> {
    let refused = |why| Err(Refused { at: at + 1, why });
    let c = chars.get(at).ok_or_else(|| unclosed.clone())?;
    match (c, chars.get(at + 1)) {
        ('[', Some(':')) => {
            let name_start = at + 2;
            let mut name = String::new();
            let mut end = name_start;
            loop {
                match (chars.get(end), chars.get(end + 1)) {
                    (Some(':'), Some(']')) => break,
                    (Some(c), _) if name.len() < 16 => name.push(c),
                    _ => return refused("`[:` opens a class that no `:]` closes"),
                }
                end += 1;
            }
            match Class::named(&name) {
                Some(class) => Ok((Member::Class(class), end + 2)),
                None => refused(
                    "unknown character class: bash knows alnum, alpha, ascii, blank, cntrl, \
                     digit, graph, lower, print, punct, space, upper, word and xdigit",
                ),
            }
        }
        ('[', Some('=' | '.')) => refused(
            "equivalence classes `[=x=]` and collating symbols `[.x.]` depend on the locale; \
             list the characters instead",
        ),
        ('\\', Some(escaped)) => Ok((Member::Char(escaped), at + 2)),
        ('\\', None) => Err(unclosed.clone()),
        _ => Ok((Member::Char(c), at + 1)),
    }
}

/// The range from `low` whose `-` is at `dash`, and where reading goes on.
fn range(
    chars: &Chars<'_>,
    low: char,
    dash: usize,
    unclosed: &Refused,
) -> Result<(Member, usize), Refused> {
    let refused = |at: usize, why| Err(Refused { at, why });
    let (high, next) = match (chars.get(dash + 1), chars.get(dash + 2)) {
        (Some('\\'), Some(escaped)) => (escaped, dash + 3),
        (Some('['), Some(':' | '=' | '.')) => {
            return refused(dash + 2, "a range must end in a character, not a class");
        }
        (Some(high), _) => (high, dash + 2),
        (None, _) => return Err(unclosed.clone()),
    };
    if !low.is_ascii() || !high.is_ascii() {
        return refused(
            dash + 1,
            "a range between characters beyond ASCII depends on the locale; list the \
             characters instead",
        );
    }
    if high < low {
        return refused(dash + 1, "this range is reversed: it would match nothing");
    }
    if chars.get(next) == Some('-') && chars.get(next + 1) != Some(']') {
        return refused(
            next + 1,
            "a `-` right after a range is read differently by different shells; put a \
             literal `-` first or last in the set",
        );
    }
    Ok((Member::Range(low, high), next))
}

#[cfg(test)]
mod tests;
