//! `dromaius.json`: reading it, validating all of it, and nothing else.
//!
//! The loader is all-or-nothing: a config with an unknown field, a wrong type, an empty
//! `domains`, an unknown command, a bad pattern or a relative path is refused as a whole
//! with the file, line, column and reason, so that no request ever runs on a config that was
//! only partly understood. Deciding what a config allows is `policy`'s job, not this one's.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
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
        if text.is_empty() {
            return Err("a domain name or pattern must not be empty".into());
        }
        if text.chars().any(char::is_control) {
            return Err(format!("domain pattern {text:?} holds a control character"));
        }
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

/// Like [`load`], but a config whose grants hold several mistakes is refused with all of
/// them (`check` shows every one). A file that is not JSON stops at its first error.
pub fn load_all(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let text = read_bounded(path).map_err(|reason| {
        vec![ConfigError {
            file: path.to_owned(),
            line: 0,
            column: 0,
            reason,
        }]
    })?;
    parse_all(&text, path)
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
    let mut bytes = Vec::new();
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
    let raw: RawConfig<'_> = serde_json::from_str(text).map_err(from_json)?;
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
        let mut grants = Vec::with_capacity(raw_grants.len());
        for raw_grant in raw_grants {
            let (line, column) = positions.of(raw_grant.get());
            if !raw_grant.get().starts_with('{') {
                errors.push(at(line, column, "a grant must be a JSON object".into()));
                continue;
            }
            let grant: RawGrant = match serde_json::from_str(raw_grant.get()) {
                Ok(grant) => grant,
                Err(e) => {
                    // serde_json counts from the start of the grant; count from the file's.
                    let column = if e.line() == 1 {
                        column + e.column() - 1
                    } else {
                        e.column()
                    };
                    errors.push(at(line + e.line() - 1, column, describe(&e)));
                    continue;
                }
            };
            grants.push(Grant {
                domains: grant.domains.0,
                commands: grant.commands.map_or(ActionSet::ALL, |c| c.0),
                connect: grant.connect.map(|u| u.0),
                line,
            });
        }
        keys.insert(name, grants);
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    Ok(Config {
        virsh: raw
            .virsh
            .map_or_else(|| PathBuf::from(DEFAULT_VIRSH), |p| p.0),
        connect: raw
            .connect
            .map_or_else(|| DEFAULT_CONNECT.to_owned(), |u| u.0),
        timeout: Duration::from_secs(raw.timeout_secs.map_or(DEFAULT_TIMEOUT_SECS, |t| t.0)),
        syslog_socket: raw
            .syslog_socket
            .map_or_else(|| PathBuf::from(DEFAULT_SYSLOG_SOCKET), |p| p.0),
        keys,
        allowed_hosts: raw
            .allowed_hosts
            .map(|hosts| hosts.into_iter().map(|h| h.0).collect())
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
        self.line += between.iter().filter(|b| **b == b'\n').count();
        if let Some(last) = between.iter().rposition(|b| *b == b'\n') {
            self.line_start = self.offset + last + 1;
        }
        self.offset = offset;
        (self.line, offset - self.line_start + 1)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig<'a> {
    #[serde(default, deserialize_with = "present")]
    virsh: Option<AbsolutePath>,
    #[serde(default, deserialize_with = "present")]
    connect: Option<Uri>,
    #[serde(default, deserialize_with = "present")]
    timeout_secs: Option<TimeoutSecs>,
    #[serde(default, deserialize_with = "present")]
    syslog_socket: Option<AbsolutePath>,
    #[serde(borrow, default, deserialize_with = "present")]
    keys: Option<Keys<'a>>,
    #[serde(rename = "AllowedHosts", default, deserialize_with = "present")]
    allowed_hosts: Option<Vec<HostName>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    domains: Patterns,
    #[serde(default, deserialize_with = "present")]
    commands: Option<Commands>,
    #[serde(default, deserialize_with = "present")]
    connect: Option<Uri>,
}

/// An optional field may be left out, but not set to `null`: `"commands": null` could be
/// read as "no commands" or as "all of them", so it is refused as the wrong type.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `keys`, refusing a key named twice: JSON parsers differ on which one wins, so a config
/// that names a key twice does not say what it means.
struct Keys<'a>(Vec<(String, Vec<&'a RawValue>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Keys<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeysVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for KeysVisitor<'a> {
            type Value = Keys<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of key names to lists of grants")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Keys<'a>, M::Error> {
                let mut seen = std::collections::HashSet::new();
                let mut keys = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if name.is_empty() {
                        return Err(de::Error::custom("a key name must not be empty"));
                    }
                    if !seen.insert(name.clone()) {
                        return Err(de::Error::custom(format!("key {name:?} is named twice")));
                    }
                    let grants: Vec<&'a RawValue> = map.next_value()?;
                    keys.push((name, grants));
                }
                Ok(Keys(keys))
            }
        }
        deserializer.deserialize_map(KeysVisitor(std::marker::PhantomData))
    }
}

/// Implements `Deserialize` for a newtype by parsing a string with `check`.
macro_rules! validated_string {
    ($name:ident, $inner:ty, $check:expr) => {
        struct $name($inner);
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                let check: fn(String) -> Result<$inner, String> = $check;
                check(text).map($name).map_err(de::Error::custom)
            }
        }
    };
}

validated_string!(AbsolutePath, PathBuf, |text| {
    if !text.starts_with('/') {
        return Err(format!("{text:?} must be an absolute path"));
    }
    if text.contains('\0') {
        return Err("a path must not hold a NUL byte".into());
    }
    Ok(PathBuf::from(text))
});

validated_string!(Uri, String, |text| {
    // A string without a scheme would be looked up as a URI alias in libvirt.conf; only a
    // full URI says for sure which libvirt we talk to.
    let scheme_ok = text
        .split_once(':')
        .is_some_and(|(scheme, _)| !scheme.is_empty() && scheme.chars().all(is_scheme_char));
    if !scheme_ok || text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "{text:?} is not a libvirt URI (like \"qemu:///system\")"
        ));
    }
    Ok(text)
});

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

validated_string!(HostName, String, |text| {
    if text.is_empty() || text.chars().any(char::is_control) {
        return Err(format!("{text:?} is not a domain name"));
    }
    Ok(text)
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
        let texts = Vec::<String>::deserialize(deserializer)?;
        if texts.is_empty() {
            return Err(de::Error::custom("`domains` must name at least one domain"));
        }
        let patterns = texts
            .iter()
            .map(|t| DomainPattern::parse(t))
            .collect::<Result<_, _>>()
            .map_err(de::Error::custom)?;
        Ok(Patterns(patterns))
    }
}

struct Commands(ActionSet);

impl<'de> Deserialize<'de> for Commands {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let actions = Vec::<Action>::deserialize(deserializer)?;
        if actions.is_empty() {
            return Err(de::Error::custom(
                "`commands` must not be empty; leave it out to allow all seven",
            ));
        }
        Ok(Commands(actions.into_iter().collect()))
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
}
