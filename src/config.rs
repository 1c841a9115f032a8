//! `dromaius.json`: reading it, validating all of it, and nothing else.
//!
//! The loader is all-or-nothing: a config with an unknown field, a wrong type, an empty
//! `domains`, an unknown command, a bad pattern or a relative path is refused as a whole
//! with the file, line, column and reason, so that no request ever runs on a config that was
//! only partly understood. Deciding what a config allows is `policy`'s job, not this one's.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::action::{Action, ActionSet};

/// Where the gateway looks when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/dromaius/dromaius.json";
/// Where go-dromaius looked: relative to the working directory (the account's home when
/// sshd runs the forced command).
pub const LEGACY_DEFAULT_PATH: &str = "dromaius.json";
pub const DEFAULT_VIRSH: &str = "/usr/bin/virsh";
pub const DEFAULT_CONNECT: &str = "qemu:///system";
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_SYSLOG_SOCKET: &str = "/dev/log";
/// A config is a few kilobytes; a huge file is a mistake or an attack, not a config.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;
const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// A fully validated config.
#[derive(Debug, Clone)]
pub struct Config {
    pub virsh: PathBuf,
    pub connect: String,
    pub timeout: Duration,
    pub syslog_socket: PathBuf,
    /// Key name → its grants, in file order.
    pub keys: HashMap<String, Vec<Grant>>,
    /// go-dromaius: the domains a `-host` session may be bound to, with every action.
    pub allowed_hosts: Vec<String>,
}

/// One entry of a key's list: these domains, these commands, on this libvirt.
#[derive(Debug, Clone)]
pub struct Grant {
    pub domains: Vec<DomainPattern>,
    pub commands: ActionSet,
    /// The grant's own URI; `None` means the top-level `connect`.
    pub connect: Option<String>,
    /// 1-based line of the grant's opening brace, for `explain` and `check`.
    pub line: usize,
}

/// An exact domain name, or a shell-style pattern (`*`, `?`, `[...]`).
#[derive(Debug, Clone)]
pub enum DomainPattern {
    Exact(String),
    Glob(glob::Pattern),
}

impl DomainPattern {
    pub fn matches(&self, domain: &str) -> bool {
        match self {
            DomainPattern::Exact(name) => name == domain,
            DomainPattern::Glob(pattern) => pattern.matches_with(domain, GLOB_OPTIONS),
        }
    }

    fn parse(text: &str) -> Result<DomainPattern, String> {
        DomainPattern::check(text)?;
        if !text.contains(['*', '?', '[']) {
            return Ok(DomainPattern::Exact(text.to_owned()));
        }
        // The glob crate reads `**` as "any number of path components": it refuses `web**`
        // and lets `**/x` match `x`. In a shell `**` is `*`, and domain names are not paths,
        // so a run of `*` is one `*` (inside `[...]` a repeated `*` changes nothing).
        let mut collapsed = String::with_capacity(text.len());
        for c in text.chars() {
            if !(c == '*' && collapsed.ends_with('*')) {
                collapsed.push(c);
            }
        }
        glob::Pattern::new(&collapsed)
            .map(DomainPattern::Glob)
            .map_err(|e| format!("domain pattern {text:?} is not a valid pattern: {e}"))
    }

    /// Why `text` is not a domain name or pattern, if it is not; [`DomainPattern::parse`]
    /// accepts exactly what this accepts, without compiling anything (the gateway checks
    /// every other key's patterns this way). Once runs of `*` are one `*`, the only way a
    /// pattern can fail to compile is a `[` with no `]` after at least one character (not
    /// counting a leading `!`); a unit test holds this to the glob crate itself.
    fn check(text: &str) -> Result<(), String> {
        if text.is_empty() {
            return Err("a domain name or pattern must not be empty".into());
        }
        if has_control(text) {
            return Err(format!("domain pattern {text:?} holds a control character"));
        }
        // Bytes serve as well as characters: `[`, `!` and `]` are ASCII, so never part of
        // another character, and one character is at least one byte.
        let bytes = text.as_bytes();
        let mut at = 0;
        while let Some(offset) = bytes[at..].iter().position(|b| *b == b'[') {
            let open = at + offset;
            let first = if bytes.get(open + 1) == Some(&b'!') {
                open + 2
            } else {
                open + 1
            };
            match bytes
                .get(first + 1..)
                .and_then(|r| r.iter().position(|b| *b == b']'))
            {
                Some(close) => at = first + 1 + close + 1,
                None => {
                    return Err(format!(
                        "domain pattern {text:?} is not a valid pattern: the `[` at byte {} \
                         has no `]` after it that closes a non-empty set",
                        open + 1
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether `text` holds a control character (C0, DEL or C1). Byte by byte while it is ASCII,
/// as names nearly always are; decoded only where it is not.
fn has_control(text: &str) -> bool {
    // One pass: a control byte settles it; a non-ASCII byte sends it to the slow path.
    for byte in text.bytes() {
        if byte.is_ascii_control() {
            return true;
        }
        if !byte.is_ascii() {
            return text.chars().any(char::is_control);
        }
    }
    false
}

/// Case-sensitive like libvirt's names; `/` and leading dots are ordinary characters here.
const GLOB_OPTIONS: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: false,
    require_literal_leading_dot: false,
};

impl Grant {
    pub fn matches_domain(&self, domain: &str) -> bool {
        self.domains.iter().any(|pattern| pattern.matches(domain))
    }
}

impl Config {
    /// The URI a grant's domains are looked up and acted on.
    pub fn connect_of<'c>(&'c self, grant: &'c Grant) -> &'c str {
        grant.connect.as_deref().unwrap_or(&self.connect)
    }
}

/// Why a config was refused: which file, where in it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is not at one place in the file (missing, unreadable).
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = crate::escape::escape(&self.file.to_string_lossy());
        if self.line == 0 {
            write!(f, "{file}: {}", self.reason)
        } else {
            write!(f, "{file}:{}:{}: {}", self.line, self.column, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates the config at `path`. Refused unread if others could rewrite it
/// (see `trust`); bounded: a file over [`MAX_CONFIG_BYTES`] is refused without being read
/// whole.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_all(path).map_err(first)
}

/// The gateway's [`load`]: see [`parse_for_key`].
pub fn load_for_key(path: &Path, key: &str) -> Result<Config, ConfigError> {
    let text = read_bounded(path).map_err(|reason| unreadable(path, reason))?;
    parse_for_key(&text, path, key)
}

/// Like [`load`], but a config whose grants hold several mistakes is refused with all of
/// them (`check` shows every one). A file that is not JSON stops at its first error.
pub fn load_all(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let text = read_bounded(path).map_err(|reason| vec![unreadable(path, reason)])?;
    parse_all(&text, path)
}

/// A file that could not be read at all: no line to point at.
fn unreadable(path: &Path, reason: String) -> ConfigError {
    ConfigError {
        file: path.to_owned(),
        line: 0,
        column: 0,
        reason,
    }
}

/// The first of a non-empty list of errors, in file order.
fn first(errors: Vec<ConfigError>) -> ConfigError {
    errors.into_iter().next().unwrap_or_else(|| ConfigError {
        file: PathBuf::new(),
        line: 0,
        column: 0,
        reason: "refused".into(),
    })
}

fn read_bounded(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let metadata = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !metadata.is_file() {
        return Err("not a regular file".into());
    }
    // Before a byte is read: a config that others can rewrite grants them anything.
    crate::trust::check(path, &file).map_err(|e| e.to_string())?;
    // Sized up front: grown by doubling, a 2 MiB config was copied and faulted in twice.
    let expected = metadata.len().min(MAX_CONFIG_BYTES) + 1;
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(format!(
            "larger than {} MiB; refused",
            MAX_CONFIG_BYTES / 1024 / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        format!("line {line}: not valid UTF-8")
    })
}

/// Validates config text; `file` is only used in errors. Pure: no I/O.
#[cfg_attr(not(test), allow(dead_code))] // the unit tests' way in
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    parse_all(text, file).map_err(first)
}

/// Like [`parse`], with every refused grant reported (each grant is read on its own, so a
/// mistake in one does not hide a mistake in the next).
pub fn parse_all(text: &str, file: &Path) -> Result<Config, Vec<ConfigError>> {
    read(text, file, Reading::GrantByGrant { only: None })
}

/// [`parse`] for a gateway that serves `key`: every grant of every key is validated all the
/// same (a config is taken whole or not at all), but only `key`'s grants are kept. Building
/// and then freeing 20,000 grants it never looks at was most of what a request cost on a big
/// config, in time and in memory.
///
/// The other keys' grants are checked in the one pass over the file ([`Reading::InPlace`]).
/// That reading's refusals are not final: the config is then read again the way `check`
/// reads it, grant by grant, and that answer stands, so that the gateway refuses a config
/// exactly when `check` does and with its words. The one-pass reading must never accept what
/// `check` refuses: a property test and the config fuzz target hold it to that.
pub fn parse_for_key(text: &str, file: &Path, key: &str) -> Result<Config, ConfigError> {
    read(text, file, Reading::InPlace { kept: key })
        .or_else(|_| read(text, file, Reading::GrantByGrant { only: Some(key) }))
        .map_err(first)
}

/// Which keys' grants a [`read`] keeps, and how it checks the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading<'k> {
    /// Each grant is cut out of the file and read on its own: a mistake in one does not hide
    /// a mistake in the next, and each is reported with its own line. Keeps the grants of
    /// `only` (every key's when `None`).
    GrantByGrant { only: Option<&'k str> },
    /// Keeps `kept`'s grants; the others are checked where they stand, in the one pass over
    /// the file, stopping at the first mistake: no grant is read twice.
    InPlace { kept: &'k str },
}

/// Reads `text` as a config.
fn read(text: &str, file: &Path, reading: Reading<'_>) -> Result<Config, Vec<ConfigError>> {
    let at = |line: usize, column: usize, reason: String| ConfigError {
        file: file.to_owned(),
        line,
        column,
        reason,
    };
    let from_json = |e: serde_json::Error| vec![at(e.line(), e.column(), describe(&e))];

    // serde's derive would also take a struct written as a JSON array; a config that is not
    // an object is the wrong type, so refuse it before serde sees it.
    if !text.trim_start().starts_with('{') {
        let (line, column) = position_of(text, text.trim_start());
        return Err(vec![at(
            line,
            column,
            "the config must be a JSON object".into(),
        )]);
    }
    let (only, in_place) = match reading {
        Reading::GrantByGrant { only } => (only, None),
        Reading::InPlace { kept } => (Some(kept), Some(kept)),
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let raw = ConfigSeed { in_place }
        .deserialize(&mut deserializer)
        .and_then(|raw| deserializer.end().map(|()| raw))
        .map_err(from_json)?;
    if raw.keys.is_none() && raw.allowed_hosts.is_none() {
        return Err(vec![at(
            1,
            1,
            "a config needs `keys`, `AllowedHosts` or both".into(),
        )]);
    }

    let mut keys = HashMap::new();
    let mut errors = Vec::new();
    let mut positions = Positions::new(text);
    for (name, raw_grants) in raw.keys.map(|k| k.0).unwrap_or_default() {
        let kept = only.is_none_or(|key| key == name);
        let mut grants = Vec::with_capacity(if kept { raw_grants.len() } else { 0 });
        for raw_grant in raw_grants {
            let grant = raw_grant.get();
            let refused = if !grant.starts_with('{') {
                Some((0, 1, "a grant must be a JSON object".to_owned()))
            } else if kept {
                match serde_json::from_str::<RawGrant>(grant) {
                    Ok(raw) => {
                        let (line, _) = positions.of(grant);
                        grants.push(raw.build(line));
                        None
                    }
                    Err(e) => Some((e.line() - 1, e.column(), describe(&e))),
                }
            } else {
                // Another key's grant, held to the same rules without being built.
                serde_json::from_str::<CheckedGrant>(grant)
                    .err()
                    .map(|e| (e.line() - 1, e.column(), describe(&e)))
            };
            if let Some((lines_in, column_in, reason)) = refused {
                // serde_json counts from the start of the grant; count from the file's.
                let (line, column) = positions.of(grant);
                let column = if lines_in == 0 {
                    column + column_in - 1
                } else {
                    column_in
                };
                errors.push(at(line + lines_in, column, reason));
            }
        }
        if kept {
            keys.insert(name.into_owned(), grants);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    Ok(Config {
        virsh: raw
            .virsh
            .map_or_else(|| PathBuf::from(DEFAULT_VIRSH), |p| PathBuf::from(&*p.0)),
        connect: raw
            .connect
            .map_or_else(|| DEFAULT_CONNECT.to_owned(), |u| u.0.into_owned()),
        timeout: Duration::from_secs(raw.timeout_secs.map_or(DEFAULT_TIMEOUT_SECS, |t| t.0)),
        syslog_socket: raw.syslog_socket.map_or_else(
            || PathBuf::from(DEFAULT_SYSLOG_SOCKET),
            |p| PathBuf::from(&*p.0),
        ),
        keys,
        allowed_hosts: raw
            .allowed_hosts
            .map(|hosts| hosts.into_iter().map(|h| h.0.into_owned()).collect())
            .unwrap_or_default(),
    })
}

/// serde_json's message without its own " at line L column C" (we print ours in front).
fn describe(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

/// 1-based line and column of `inner`, which must be a slice of `text`.
fn position_of(text: &str, inner: &str) -> (usize, usize) {
    Positions::new(text).of(inner)
}

/// Finds the positions of slices of one text that come in file order (the grants) in one
/// pass over it: counting each grant's line from the start of the file made loading a
/// 20,000-grant config quadratic (seconds, where it should be milliseconds).
struct Positions<'t> {
    text: &'t str,
    /// Where the last answer was, and its line and the offset of that line's start.
    offset: usize,
    line: usize,
    line_start: usize,
}

impl<'t> Positions<'t> {
    fn new(text: &'t str) -> Positions<'t> {
        Positions {
            text,
            offset: 0,
            line: 1,
            line_start: 0,
        }
    }

    fn of(&mut self, inner: &str) -> (usize, usize) {
        let offset = (inner.as_ptr() as usize)
            .saturating_sub(self.text.as_ptr() as usize)
            .min(self.text.len());
        if offset < self.offset {
            // Out of order: start again from the top (never happens for grants).
            *self = Positions::new(self.text);
        }
        let between = &self.text.as_bytes()[self.offset..offset];
        self.line += count_newlines(between);
        if let Some(last) = between.iter().rposition(|b| *b == b'\n') {
            self.line_start = self.offset + last + 1;
        }
        self.offset = offset;
        (self.line, offset - self.line_start + 1)
    }
}

/// `\n` in `bytes`, in blocks the compiler turns into vector compares: one at a time, the
/// 2 MiB before the last key's grants of a big config took a millisecond to count.
fn count_newlines(bytes: &[u8]) -> usize {
    let mut blocks = bytes.chunks_exact(128);
    let mut count = 0;
    for block in &mut blocks {
        // At most 128 per block: it fits in a u8.
        count += usize::from(block.iter().map(|b| u8::from(*b == b'\n')).sum::<u8>());
    }
    count + blocks.remainder().iter().filter(|b| **b == b'\n').count()
}

/// The top level of the file.
struct RawConfig<'a> {
    virsh: Option<AbsolutePath<'a>>,
    connect: Option<Uri<'a>>,
    timeout_secs: Option<TimeoutSecs>,
    syslog_socket: Option<AbsolutePath<'a>>,
    keys: Option<Keys<'a>>,
    allowed_hosts: Option<Vec<HostName<'a>>>,
}

const FIELDS: &[&str] = &[
    "virsh",
    "connect",
    "timeout_secs",
    "syslog_socket",
    "keys",
    "AllowedHosts",
];

/// Reads [`RawConfig`]. Written out rather than derived because `keys` must be told which
/// key's grants to check in place (a derive cannot pass that down); the rules are the
/// derive's: no unknown field, no field twice, an optional field left out but never `null`
/// (`null` is the wrong type for every field).
struct ConfigSeed<'k> {
    /// The kept key of a [`Reading::InPlace`]: every other key's grants are checked in place.
    in_place: Option<&'k str>,
}

impl<'de> DeserializeSeed<'de> for ConfigSeed<'_> {
    type Value = RawConfig<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ConfigSeed<'_> {
    type Value = RawConfig<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a config object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        fn unset<T, E: de::Error>(field: &Option<T>, name: &'static str) -> Result<(), E> {
            match field {
                Some(_) => Err(E::duplicate_field(name)),
                None => Ok(()),
            }
        }
        let mut raw = RawConfig {
            virsh: None,
            connect: None,
            timeout_secs: None,
            syslog_socket: None,
            keys: None,
            allowed_hosts: None,
        };
        while let Some(Text(field)) = map.next_key()? {
            match &*field {
                "virsh" => {
                    unset(&raw.virsh, "virsh")?;
                    raw.virsh = Some(map.next_value()?);
                }
                "connect" => {
                    unset(&raw.connect, "connect")?;
                    raw.connect = Some(map.next_value()?);
                }
                "timeout_secs" => {
                    unset(&raw.timeout_secs, "timeout_secs")?;
                    raw.timeout_secs = Some(map.next_value()?);
                }
                "syslog_socket" => {
                    unset(&raw.syslog_socket, "syslog_socket")?;
                    raw.syslog_socket = Some(map.next_value()?);
                }
                "keys" => {
                    unset(&raw.keys, "keys")?;
                    raw.keys = Some(map.next_value_seed(KeysSeed {
                        in_place: self.in_place,
                    })?);
                }
                "AllowedHosts" => {
                    unset(&raw.allowed_hosts, "AllowedHosts")?;
                    raw.allowed_hosts = Some(map.next_value()?);
                }
                other => return Err(de::Error::unknown_field(other, FIELDS)),
            }
        }
        Ok(raw)
    }
}

/// A grant's fields and their rules, written once for the two ways a grant is read: `P` is
/// how `domains` is read, built ([`Patterns`]) or only checked ([`CheckedPatterns`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "P: Deserialize<'de>"))]
struct GrantFields<'a, P> {
    domains: P,
    #[serde(default, deserialize_with = "present")]
    commands: Option<Commands>,
    #[serde(borrow, default, deserialize_with = "present")]
    connect: Option<Uri<'a>>,
}

/// A grant the config keeps.
type RawGrant<'a> = GrantFields<'a, Patterns>;

/// Another key's grant, in the gateway: accepted exactly when [`RawGrant`] would accept it,
/// but no pattern is compiled. Compiling the 20,000 grants of a big config, only to free
/// them, was most of what loading it cost.
type CheckedGrant<'a> = GrantFields<'a, CheckedPatterns>;

impl RawGrant<'_> {
    fn build(self, line: usize) -> Grant {
        Grant {
            domains: self.domains.0,
            commands: self.commands.map_or(ActionSet::ALL, |c| c.0),
            connect: self.connect.map(|u| u.0.into_owned()),
            line,
        }
    }
}

/// An optional field may be left out, but not set to `null`: `"commands": null` could be
/// read as "no commands" or as "all of them", so it is refused as the wrong type.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `keys`: each key's grants as they are written, to be read one by one, except those of
/// the keys that were checked in place. A key named twice is refused: JSON parsers differ on
/// which one wins, so a config that names a key twice does not say what it means.
struct Keys<'a>(Vec<(Cow<'a, str>, Vec<&'a RawValue>)>);

struct KeysSeed<'k> {
    /// Every key but this one is checked in place and left out of [`Keys`].
    in_place: Option<&'k str>,
}

impl<'de> DeserializeSeed<'de> for KeysSeed<'_> {
    type Value = Keys<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeysSeed<'_> {
    type Value = Keys<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of key names to lists of grants")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Keys<'de>, M::Error> {
        // The names seen so far, as 64-bit hashes: 8 bytes a key, where a table of the names
        // themselves was most of the fresh memory a 10,000-key config made the gateway touch.
        // One hash twice is one name written twice, or (about once in 2^64) two names; the
        // names kept tell which. The one-pass reading keeps one key's name, so there it
        // gives up, and `check`'s reading, which keeps every name, decides.
        let mut seen: HashSet<u64, BuildHasherDefault<Fnv1a>> = HashSet::default();
        let mut keys: Vec<(Cow<'de, str>, Vec<&'de RawValue>)> = Vec::new();
        while let Some(Text(name)) = map.next_key()? {
            if name.is_empty() {
                return Err(de::Error::custom("a key name must not be empty"));
            }
            let mut hash = Fnv1a::default();
            hash.write(name.as_bytes());
            if !seen.insert(hash.finish())
                && (self.in_place.is_some() || keys.iter().any(|(kept, _)| *kept == name))
            {
                return Err(de::Error::custom(format!("key {name:?} is named twice")));
            }
            if self.in_place.is_some_and(|kept| kept != name) {
                map.next_value::<CheckedGrants>()?;
            } else {
                let grants: Vec<&'de RawValue> = map.next_value()?;
                keys.push((name, grants));
            }
        }
        Ok(Keys(keys))
    }
}

/// The FNV-1a hash, of the key names seen so far and of those hashes in their set. Names
/// come from the administrator's file, which is trusted, so there is no flood of colliding
/// names to fear, and the standard SipHash was a tenth of the cost of reading a 10,000-key
/// config.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A key's grants checked in place by the rules of [`RawGrant`], keeping nothing.
struct CheckedGrants;

impl<'de> Deserialize<'de> for CheckedGrants {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GrantsVisitor;
        impl<'de> Visitor<'de> for GrantsVisitor {
            type Value = CheckedGrants;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of grants")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CheckedGrants, A::Error> {
                while seq.next_element::<CheckedObject>()?.is_some() {}
                Ok(CheckedGrants)
            }
        }
        deserializer.deserialize_seq(GrantsVisitor)
    }
}

/// One grant of [`CheckedGrants`], which must be a JSON object: serde's derive would also
/// take a struct written as an array, which a grant read on its own is refused for.
struct CheckedObject;

impl<'de> Deserialize<'de> for CheckedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = CheckedObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a grant object")
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<CheckedObject, M::Error> {
                CheckedGrant::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(CheckedObject)
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// A string from the file, borrowed unless it is written with an escape: checking the
/// 10,000 names and URIs of a big config need not copy each one to throw it away.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}

/// Implements `Deserialize` for a string newtype that `check` accepts. The text stays
/// borrowed from the file: the gateway checks every other key's URIs only to drop them.
macro_rules! validated_string {
    ($name:ident, $check:expr) => {
        struct $name<'a>(Cow<'a, str>);
        impl<'de: 'a, 'a> Deserialize<'de> for $name<'a> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let Text(text) = Text::deserialize(deserializer)?;
                let check: fn(&str) -> Result<(), String> = $check;
                check(&text).map_err(de::Error::custom)?;
                Ok($name(text))
            }
        }
    };
}

validated_string!(AbsolutePath, |text| {
    if !text.starts_with('/') {
        return Err(format!("{text:?} must be an absolute path"));
    }
    if text.contains('\0') {
        return Err("a path must not hold a NUL byte".into());
    }
    Ok(())
});

validated_string!(Uri, |text| {
    // A string without a scheme would be looked up as a URI alias in libvirt.conf; only a
    // full URI says for sure which libvirt we talk to.
    let scheme_ok = text
        .split_once(':')
        .is_some_and(|(scheme, _)| !scheme.is_empty() && scheme.chars().all(is_scheme_char));
    let clean = if text.is_ascii() {
        // The same test, byte by byte: ASCII's controls and spaces are all outside `!`..`~`.
        text.bytes().all(|b| b.is_ascii_graphic())
    } else {
        !text.chars().any(|c| c.is_control() || c.is_whitespace())
    };
    if !scheme_ok || !clean {
        return Err(format!(
            "{text:?} is not a libvirt URI (like \"qemu:///system\")"
        ));
    }
    Ok(())
});

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

validated_string!(HostName, |text| {
    if text.is_empty() || text.chars().any(char::is_control) {
        return Err(format!("{text:?} is not a domain name"));
    }
    Ok(())
});

struct TimeoutSecs(u64);

impl<'de> Deserialize<'de> for TimeoutSecs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let secs = u64::deserialize(deserializer)?;
        if secs == 0 || secs > MAX_TIMEOUT_SECS {
            return Err(de::Error::custom(format!(
                "timeout_secs must be between 1 and {MAX_TIMEOUT_SECS}"
            )));
        }
        Ok(TimeoutSecs(secs))
    }
}

struct Patterns(Vec<DomainPattern>);

impl<'de> Deserialize<'de> for Patterns {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_seq(PatternsVisitor { keep: true })
            .map(Patterns)
    }
}

/// `domains` checked by the rules of [`Patterns`], keeping nothing.
struct CheckedPatterns;

impl<'de> Deserialize<'de> for CheckedPatterns {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_seq(PatternsVisitor { keep: false })
            .map(|_| CheckedPatterns)
    }
}

/// Reads `domains`; builds the patterns only if `keep`, and checks them the same either way.
struct PatternsVisitor {
    keep: bool,
}

impl<'de> Visitor<'de> for PatternsVisitor {
    type Value = Vec<DomainPattern>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of domain names and patterns")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut patterns = Vec::new();
        let mut named_any = false;
        while let Some(pattern) = seq.next_element_seed(PatternSeed { keep: self.keep })? {
            named_any = true;
            patterns.extend(pattern);
        }
        if !named_any {
            return Err(de::Error::custom("`domains` must name at least one domain"));
        }
        Ok(patterns)
    }
}

/// One string of `domains`: checked, and built only if `keep`.
struct PatternSeed {
    keep: bool,
}

impl<'de> DeserializeSeed<'de> for PatternSeed {
    type Value = Option<DomainPattern>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for PatternSeed {
    type Value = Option<DomainPattern>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a domain name or pattern")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        let pattern = if self.keep {
            DomainPattern::parse(text).map(Some)
        } else {
            DomainPattern::check(text).map(|()| None)
        };
        pattern.map_err(E::custom)
    }
}

struct Commands(ActionSet);

impl<'de> Deserialize<'de> for Commands {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Straight into the set: no list of 20,000 grants' commands is built to be dropped.
        struct CommandsVisitor;
        impl<'de> Visitor<'de> for CommandsVisitor {
            type Value = Commands;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of command names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Commands, A::Error> {
                let mut named_any = false;
                let mut actions = ActionSet::EMPTY;
                while let Some(action) = seq.next_element::<Action>()? {
                    actions.insert(action);
                    named_any = true;
                }
                if !named_any {
                    return Err(de::Error::custom(
                        "`commands` must not be empty; leave it out to allow all seven",
                    ));
                }
                Ok(Commands(actions))
            }
        }
        deserializer.deserialize_seq(CommandsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Config {
        match parse(text, Path::new("t.json")) {
            Ok(config) => config,
            Err(e) => panic!("{e}"),
        }
    }

    fn parse_err(text: &str) -> ConfigError {
        match parse(text, Path::new("t.json")) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e,
        }
    }

    const EXAMPLE: &str = r#"{
  "virsh": "/usr/bin/virsh",
  "connect": "qemu:///system",
  "timeout_secs": 60,
  "syslog_socket": "/dev/log",
  "keys": {
    "alice": [
      { "domains": ["alice-*"], "commands": ["start", "shutdown", "reboot", "status", "console"] },
      { "domains": ["shared-db"], "commands": ["status"] }
    ],
    "ops": [ { "domains": ["*"] } ]
  }
}"#;

    #[test]
    fn grant_lines_counted_in_one_pass_match_counting_from_the_top() {
        let mut text = String::from("{\"keys\": {\n");
        for k in 0..200 {
            let sep = if k % 3 == 0 { "\n\n  " } else { " " };
            text.push_str(&format!(
                "\"k{k}\": [{sep}{{\"domains\": [\"a{k}\"]}},{sep}{{\"domains\": [\"b{k}\"]}}],\n"
            ));
        }
        text.push_str("\"last\": []\n}}\n");
        let config = parse_ok(&text);
        for k in 0..200 {
            for (i, name) in [format!("a{k}"), format!("b{k}")].iter().enumerate() {
                let needle = format!("{{\"domains\": [\"{name}\"]}}");
                let offset = text.find(&needle).unwrap();
                let naive = text[..offset].matches('\n').count() + 1;
                assert_eq!(config.keys[&format!("k{k}")][i].line, naive, "{name}");
            }
        }
    }

    #[test]
    fn the_contract_example_parses_with_positions() {
        let config = parse_ok(EXAMPLE);
        assert_eq!(config.virsh, Path::new("/usr/bin/virsh"));
        assert_eq!(config.timeout, Duration::from_secs(60));
        let alice = &config.keys["alice"];
        assert_eq!(alice.len(), 2);
        assert_eq!(alice[0].line, 8);
        assert_eq!(alice[1].line, 9);
        assert!(alice[0].commands.contains(Action::Console));
        assert!(!alice[0].commands.contains(Action::Destroy));
        assert_eq!(config.keys["ops"][0].commands, ActionSet::ALL);
        assert_eq!(config.keys["ops"][0].line, 11);
    }

    #[test]
    fn defaults_apply() {
        let config = parse_ok(r#"{"keys": {}}"#);
        assert_eq!(config.virsh, Path::new(DEFAULT_VIRSH));
        assert_eq!(config.connect, DEFAULT_CONNECT);
        assert_eq!(config.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECS));
        assert_eq!(config.syslog_socket, Path::new(DEFAULT_SYSLOG_SOCKET));
    }

    #[test]
    fn a_go_dromaius_file_is_a_complete_config() {
        let config = parse_ok(r#"{"AllowedHosts": ["vhost1.example.local", "vhost2"]}"#);
        assert_eq!(config.allowed_hosts, ["vhost1.example.local", "vhost2"]);
        assert!(config.keys.is_empty());
    }

    #[test]
    fn globs_and_exact_names() {
        let config =
            parse_ok(r#"{"keys": {"k": [{"domains": ["web[0-9]", "db?", "2", "-x", "a*"]}]}}"#);
        let grant = &config.keys["k"][0];
        for yes in ["web1", "db1", "2", "-x", "a", "abc"] {
            assert!(grant.matches_domain(yes), "{yes}");
        }
        for no in ["web", "web10", "db", "db12", "02", "+2", "x", "Abc", "-X"] {
            assert!(!grant.matches_domain(no), "{no}");
        }
        // `**` is `*`, as in a shell: accepted anywhere, and never "zero path components".
        let config = parse_ok(
            r#"{"keys": {"k": [{"domains": ["web**"]}, {"domains": ["**/x"]}, {"domains": ["**"]}]}}"#,
        );
        let [stars, slash, all] = &config.keys["k"][..] else {
            panic!()
        };
        for (grant, yes, no) in [
            (stars, &["web", "web1", "web*"][..], &["we", "xweb"][..]),
            (slash, &["a/x", "/x"], &["x", "ax"]),
            (all, &["", "anything", "a/b"], &[]),
        ] {
            for name in yes {
                assert!(grant.matches_domain(name), "{name}");
            }
            for name in no {
                assert!(!grant.matches_domain(name), "{name}");
            }
        }
    }

    #[test]
    fn a_grant_can_have_its_own_connect() {
        let config = parse_ok(
            r#"{"connect": "qemu:///system", "keys": {"k": [{"domains": ["a"], "connect": "test:///default"}, {"domains": ["b"]}]}}"#,
        );
        let grants = &config.keys["k"];
        assert_eq!(config.connect_of(&grants[0]), "test:///default");
        assert_eq!(config.connect_of(&grants[1]), "qemu:///system");
    }

    #[test]
    fn refusals_name_line_and_reason() {
        // (config text, expected line, a fragment of the reason)
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "must be a JSON object"),
            ("   \n", 2, "must be a JSON object"),
            ("{", 1, "EOF"),
            ("[]", 1, "must be a JSON object"),
            (
                "[null, null, null, null, {\"k\": []}, null]",
                1,
                "must be a JSON object",
            ),
            (
                "{\"keys\": {\"a\": [[[\"x\"]]]}}",
                1,
                "grant must be a JSON object",
            ),
            (
                "{\"keys\": {\"a\": [{\"domains\": [\"x\"], \"commands\": null}]}}",
                1,
                "invalid type",
            ),
            ("{}", 1, "needs `keys`"),
            ("{\"keys\": {}, \"extra\": 1}", 1, "unknown field `extra`"),
            (
                "{\"keys\": {\"a\": [{\"domains\": [\"x\"], \"comands\": []}]}}",
                1,
                "unknown field `comands`",
            ),
            (
                "{\"keys\": {\"a\": [{\"domains\": []}]}}",
                1,
                "at least one domain",
            ),
            ("{\"keys\": {\"a\": [{}]}}", 1, "missing field `domains`"),
            (
                "{\"keys\": {\"a\": [{\"domains\": \"x\"}]}}",
                1,
                "invalid type",
            ),
            (
                "{\"keys\": {\"a\": [{\"domains\": [\"\"]}]}}",
                1,
                "must not be empty",
            ),
            (
                "{\"keys\": {\"a\": [{\"domains\": [\"x[\"]}]}}",
                1,
                "not a valid pattern",
            ),
            (
                "{\"keys\": {\"a\": [{\"domains\": [\"x\\n\"]}]}}",
                1,
                "control character",
            ),
            (
                "{\"keys\": {\"a\": [{\"domains\": [\"x\"], \"commands\": [\"define\"]}]}}",
                1,
                "unknown variant `define`",
            ),
            (
                "{\"keys\": {\"a\": [{\"domains\": [\"x\"], \"commands\": [\"Start\"]}]}}",
                1,
                "unknown variant `Start`",
            ),
            (
                "{\"keys\": {\"a\": [{\"domains\": [\"x\"], \"commands\": []}]}}",
                1,
                "must not be empty",
            ),
            (
                "{\"keys\": {\"a\": [{\"domains\": [\"x\"], \"connect\": \"hv1\"}]}}",
                1,
                "not a libvirt URI",
            ),
            ("{\"virsh\": \"virsh\", \"keys\": {}}", 1, "absolute path"),
            ("{\"virsh\": \"./virsh\", \"keys\": {}}", 1, "absolute path"),
            (
                "{\"syslog_socket\": \"dev/log\", \"keys\": {}}",
                1,
                "absolute path",
            ),
            ("{\"connect\": \"\", \"keys\": {}}", 1, "not a libvirt URI"),
            (
                "{\"connect\": \"qemu:///system --readonly\", \"keys\": {}}",
                1,
                "not a libvirt URI",
            ),
            ("{\"timeout_secs\": 0, \"keys\": {}}", 1, "between 1"),
            ("{\"timeout_secs\": -1, \"keys\": {}}", 1, "invalid value"),
            (
                "{\"timeout_secs\": \"60\", \"keys\": {}}",
                1,
                "invalid type",
            ),
            ("{\"keys\": {\"a\": [], \"a\": []}}", 1, "named twice"),
            ("{\"keys\": {\"\": []}}", 1, "must not be empty"),
            ("{\"keys\": {\"a\": null}}", 1, "invalid type"),
            ("{\"keys\": null}", 1, "invalid type"),
            ("{\"virsh\": null, \"keys\": {}}", 1, "invalid type"),
            ("{\"AllowedHosts\": null}", 1, "invalid type"),
            ("{\"AllowedHosts\": \"vhost1\"}", 1, "invalid type"),
            ("{\"AllowedHosts\": [\"\"]}", 1, "not a domain name"),
            ("{\"allowedhosts\": []}", 1, "unknown field"),
            ("{\"keys\": {}} trailing", 1, "trailing characters"),
            ("{\"keys\": {}, \"keys\": {}}", 1, "duplicate field"),
        ];
        for (text, line, reason) in cases {
            let error = parse_err(text);
            assert_eq!(error.line, *line, "{text}: {error}");
            assert!(error.reason.contains(reason), "{text}: {error}");
            assert!(error.to_string().starts_with("t.json:"), "{error}");
        }
    }

    #[test]
    fn an_error_deep_in_a_grant_points_at_its_line() {
        let text = "{\n  \"keys\": {\n    \"a\": [\n      { \"domains\": [\"x\"] },\n      {\n        \"domains\": [\"y\"],\n        \"commands\": [\"start\", \"bogus\"]\n      }\n    ]\n  }\n}\n";
        let error = parse_err(text);
        assert_eq!(error.line, 7, "{error}");
        assert!(error.reason.contains("bogus"), "{error}");
        let first_line = "{\"keys\": {\"a\": [{\"domains\": [\"x\"], \"commands\": [\"bogus\"]}]}}";
        let error = parse_err(first_line);
        // Column 55 is the closing quote of "bogus", counted from the start of the file.
        assert_eq!((error.line, error.column), (1, 55), "{error}");
    }

    #[test]
    fn every_refused_grant_is_reported_in_file_order() {
        let text = "{\"keys\": {\n  \"a\": [{\"domains\": []},\n         {\"domains\": [\"ok\"]}],\n  \"b\": [{\"domains\": [\"x\"], \"commands\": [\"bogus\"]},\n         [\"not a grant\"]]\n}}\n";
        let errors = match parse_all(text, Path::new("t.json")) {
            Ok(_) => panic!("accepted"),
            Err(errors) => errors,
        };
        let found: Vec<(usize, &str)> =
            errors.iter().map(|e| (e.line, e.reason.as_str())).collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].0, 2);
        assert!(found[0].1.contains("at least one domain"));
        assert_eq!(found[1].0, 4);
        assert!(found[1].1.contains("bogus"));
        assert_eq!(found[2].0, 5);
        assert!(found[2].1.contains("grant must be a JSON object"));
        // The gateway's loader stops at the first of them.
        assert_eq!(parse_err(text), errors[0]);
    }

    #[test]
    fn files_that_cannot_be_read_are_refused() {
        let dir = std::env::temp_dir().join(format!("dromaius-config-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let missing = load(&dir.join("missing.json")).map(|_| ()).unwrap_err();
        assert!(missing.reason.contains("cannot open"), "{missing}");
        let directory = load(&dir).map(|_| ()).unwrap_err();
        assert!(
            directory.reason.contains("not a regular file"),
            "{directory}"
        );
        let binary = dir.join("binary.json");
        std::fs::write(&binary, b"{\"keys\": {}}\n\xff").unwrap();
        let not_utf8 = load(&binary).map(|_| ()).unwrap_err();
        assert!(
            not_utf8.reason.contains("line 2: not valid UTF-8"),
            "{not_utf8}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The in-place check of other keys' patterns accepts exactly what compiling them does.
    #[test]
    fn pattern_check_accepts_exactly_what_compiles() {
        let rows = [
            "a", "[", "a[", "[a", "[]", "[]]", "[]a]", "[!", "[!]", "[!]]", "[!a]", "[!!]", "[[]",
            "a]", "[é]", "[!é]", "x[0-9]y[", "[a][", "[a]]", "*[", "**[a]", "?",
        ];
        for text in rows {
            assert_eq!(
                DomainPattern::check(text).is_ok(),
                DomainPattern::parse(text).is_ok(),
                "{text:?}"
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn pattern_text() -> impl Strategy<Value = String> {
            let pieces = prop::sample::select(vec![
                "a", "-", "[", "]", "!", "*", "?", "é", "\u{1}", "\u{85}", "\u{7f}", "0",
            ]);
            prop::collection::vec(pieces, 0..8).prop_map(|p| p.concat())
        }

        /// One grant as an administrator might write it, or get it wrong.
        fn grant_text() -> impl Strategy<Value = String> {
            let domains = prop::sample::select(vec![
                r#""domains": ["a"]"#,
                r#""domains": ["a-*", "b[0-9]"]"#,
                r#""domains": ["x\u0041"]"#,
                r#""domains": []"#,
                r#""domains": ["x["]"#,
                r#""domains": [""]"#,
                r#""domains": ["a\u0001"]"#,
                r#""domains": "a""#,
                r#""domains": [1]"#,
                r#""domains": null"#,
                "",
            ]);
            let commands = prop::sample::select(vec![
                "",
                r#", "commands": ["start", "status"]"#,
                r#", "commands": ["status", "status"]"#,
                r#", "commands": []"#,
                r#", "commands": ["bogus"]"#,
                r#", "commands": "start""#,
                r#", "commands": null"#,
                r#", "comm\u0061nds": ["start"]"#,
            ]);
            let connect = prop::sample::select(vec![
                "",
                r#", "connect": "test:///default""#,
                r#", "connect": "hv1""#,
                r#", "connect": "qemu:///system x""#,
                r#", "connect": null"#,
                r#", "connect": 5"#,
            ]);
            let extra =
                prop::sample::select(vec!["", "", r#", "x": 1"#, r#", "domains": ["dup"]"#]);
            let shape = prop::sample::select(vec!["object", "object", "object", "array", "null"]);
            (domains, commands, connect, extra, shape).prop_map(|(d, c, u, x, shape)| match shape {
                "array" => format!("[{d}]"),
                "null" => "null".to_owned(),
                _ => format!("{{ {d}{c}{u}{x} }}").replace("{ , ", "{ "),
            })
        }

        fn config_text() -> impl Strategy<Value = String> {
            // As written in the file: `\u0061` is a second way to write `a`.
            let name = prop::sample::select(vec!["a", "b", "c", "", r"\u0061", r"a\nb"]);
            let key = (name, prop::collection::vec(grant_text(), 0..3))
                .prop_map(|(name, grants)| format!("\"{name}\": [\n  {}\n]", grants.join(",\n  ")));
            let top = prop::sample::select(vec![
                "",
                "\"virsh\": \"/usr/bin/virsh\", ",
                "\"virsh\": \"virsh\", ",
                "\"connect\": \"test:///default\", ",
                "\"timeout_secs\": 0, ",
                "\"AllowedHosts\": [\"h\"], ",
                "\"extra\": 1, ",
            ]);
            let keys = prop::collection::vec(key, 0..4);
            let shape = prop::sample::select(vec!["keys", "keys", "keys", "none", "null"]);
            (top, keys, shape).prop_map(|(top, keys, shape)| match shape {
                "none" => format!("{{ {top}\"AllowedHosts\": [] }}"),
                "null" => format!("{{ {top}\"keys\": null }}"),
                _ => format!("{{ {top}\"keys\": {{\n{}\n}} }}", keys.join(",\n")),
            })
        }

        fn kept(config: &Config, key: &str) -> String {
            format!(
                "{:?} {} {:?} {:?} {:?} {:?}",
                config.virsh,
                config.connect,
                config.timeout,
                config.syslog_socket,
                config.allowed_hosts,
                config.keys.get(key)
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

            #[test]
            fn pattern_check_agrees_with_the_glob_crate(text in pattern_text()) {
                prop_assert_eq!(
                    DomainPattern::check(&text).is_ok(),
                    DomainPattern::parse(&text).is_ok(),
                    "{:?}", text
                );
            }

            /// The gateway's one-pass reading accepts exactly the configs that `check`'s
            /// reading accepts, keeps the same grants for its key, and refuses with the
            /// same first error.
            #[test]
            fn the_gateway_reads_a_config_as_check_does(text in config_text()) {
                let file = Path::new("t.json");
                let all = parse_all(&text, file);
                for key in ["a", "b", "c", "", "a\nb", "absent"] {
                    let in_place = read(&text, file, Reading::InPlace { kept: key });
                    prop_assert_eq!(in_place.is_ok(), all.is_ok(), "{} for {:?}", text, key);
                    match (&all, parse_for_key(&text, file, key)) {
                        (Ok(all), Ok(one)) => {
                            prop_assert_eq!(kept(&one, key), kept(all, key));
                            prop_assert!(one.keys.len() <= 1);
                        }
                        (Err(errors), Err(error)) => prop_assert_eq!(&errors[0], &error),
                        (all, one) => prop_assert!(false, "{:?} / {:?}", all.is_ok(), one.is_ok()),
                    }
                }
            }
        }
    }
}
