//! Turning config text into a [`Config`]: the two readings and where each error points.
//!
//! Every grant of every key is validated by either reading; they differ in what they keep
//! and in how they report:
//! - **grant by grant** (`check`, and the gateway's last word): each grant is cut out of the
//!   file and read on its own, so a mistake in one does not hide a mistake in the next, and
//!   each error names the grant's own line;
//! - **in place** (the gateway first): the key it serves is kept, every other key's grants
//!   are checked where they stand in the one pass over the file, nothing of them is built,
//!   and reading stops at the first mistake.
//!
//! The in-place reading must never accept what the grant-by-grant reading refuses; a
//! property test below and the config fuzz target hold it to that.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeSeed;
use serde_json::value::RawValue;

use super::de::{
    CheckedGrant, ConfigSeed, Connect, Members, RawConfig, RawGrant, SeenNames, is_uri,
};
use super::{
    Config, ConfigError, DEFAULT_CONNECT, DEFAULT_SYSLOG_SOCKET, DEFAULT_TIMEOUT_SECS,
    DEFAULT_VIRSH, Grant, Group, Hypervisor, HypervisorId,
};
use crate::action::ActionSet;

/// Which keys' grants a [`read`] keeps, and how it checks the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reading<'k> {
    /// Keeps the grants of `only` (every key's when `None`); every grant is read on its own.
    GrantByGrant { only: Option<&'k str> },
    /// Keeps `kept`'s grants; the others are checked in place, stopping at the first mistake.
    InPlace { kept: &'k str },
}

/// Reads a config: `files` are the main file and then those of `dromaius.d`, each its path
/// (named in errors) and its text.
pub(super) fn read(
    files: &[(PathBuf, String)],
    reading: Reading<'_>,
) -> Result<Config, Vec<ConfigError>> {
    let (only, in_place) = match reading {
        Reading::GrantByGrant { only } => (only, None),
        Reading::InPlace { kept } => (Some(kept), Some(kept)),
    };
    let at = |file: usize, line: usize, column: usize, reason: String| ConfigError {
        file: files
            .get(file)
            .map(|(path, _)| path.clone())
            .unwrap_or_default(),
        line,
        column,
        reason,
    };
    let mut positions: Vec<Positions<'_>> =
        files.iter().map(|(_, text)| Positions::new(text)).collect();

    let mut seen = SeenNames::default();
    let mut raws = Vec::with_capacity(files.len());
    for (index, (_, text)) in files.iter().enumerate() {
        // serde's derive would also take a struct written as a JSON array; a config that is
        // not an object is the wrong type, so refuse it before serde sees it.
        if !text.trim_start().starts_with('{') {
            let (line, column) = Positions::new(text).of(text.trim_start());
            let what = if index == 0 {
                "the config"
            } else {
                "a file of dromaius.d"
            };
            return Err(vec![at(
                index,
                line,
                column,
                format!("{what} must be a JSON object"),
            )]);
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let raw = ConfigSeed {
            in_place,
            drop_in: index > 0,
            seen: &mut seen,
        }
        .deserialize(&mut deserializer)
        .and_then(|raw| deserializer.end().map(|()| raw))
        .map_err(|e| vec![at(index, e.line(), e.column(), describe(&e))])?;
        raws.push(raw);
    }
    let mut raws = raws.into_iter();
    let Some(RawConfig {
        virsh,
        connect: top_connect,
        hypervisors: named,
        timeout_secs,
        syslog_socket,
        idle_timeout_secs,
        keys: main_keys,
        groups: main_groups,
        allowed_hosts,
    }) = raws.next()
    else {
        return Err(vec![at(0, 0, 0, "no config file".into())]);
    };
    // Every file's key entries and groups, with the file they are in.
    let mut per_file = vec![(0, main_keys, main_groups)];
    per_file.extend(
        raws.enumerate()
            .map(|(index, raw)| (index + 1, raw.keys, raw.groups)),
    );
    if per_file.iter().all(|(_, keys, _)| keys.is_none()) && allowed_hosts.is_none() {
        return Err(vec![at(
            0,
            1,
            1,
            "a config needs `keys`, `AllowedHosts` or both".into(),
        )]);
    }

    let mut hypervisors = Registry::default();
    for (name, uri) in named.iter().flat_map(|map| &map.0) {
        hypervisors.0.push(Hypervisor {
            name: Some(name.to_string()),
            uri: uri.to_string(),
        });
    }
    let connect = match top_connect {
        None => vec![hypervisors.id_of_uri(DEFAULT_CONNECT)],
        Some(value) => {
            // Its rules were checked where it stands; what is left is whether its names exist.
            let entries: Connect<'_> =
                serde_json::from_str(value.get()).map_err(|e| vec![at(0, 1, 1, describe(&e))])?;
            hypervisors.resolve(&entries).map_err(|reason| {
                let (line, column) = positions[0].of(value.get());
                vec![at(0, line, column, reason)]
            })?
        }
    };

    // Groups from every file, each defined once.
    let mut groups: Vec<Group> = Vec::new();
    let mut entries: Vec<(usize, Cow<'_, str>, &RawValue)> = Vec::new();
    let mut referenced = BTreeSet::new();
    for (file, keys, file_groups) in per_file {
        for (name, members) in file_groups.map(|g| g.0).unwrap_or_default() {
            let (line, column) = positions[file].of(members.get());
            if let Some(first) = groups.iter().find(|g| g.name == *name) {
                return Err(vec![at(
                    file,
                    line,
                    column,
                    format!(
                        "group {name:?} is defined twice: at {}:{} and here",
                        shown(files, first.file),
                        first.line
                    ),
                )]);
            }
            let Members(members) = serde_json::from_str(members.get())
                .map_err(|e| vec![at(file, line, column, describe(&e))])?;
            groups.push(Group {
                name: name.into_owned(),
                members,
                file,
                line,
            });
        }
        if let Some(keys) = keys {
            referenced.extend(keys.referenced);
            entries.extend(
                keys.entries
                    .into_iter()
                    .map(|(name, list)| (file, name, list)),
            );
        }
    }
    // The names that grants checked in place refer to must exist; if one does not, the
    // grant-by-grant reading says where.
    if let Some(name) = referenced.iter().find(|n| !hypervisors.knows(n)) {
        return Err(vec![at(0, 1, 1, unknown_hypervisor(name))]);
    }

    // Each entry, once, of a defined group if it is `@GROUP`; and which of them are kept.
    let mut placed: HashMap<&str, (usize, usize)> = HashMap::new();
    let mut kept_entries = Vec::new();
    for (file, name, list) in &entries {
        let (line, column) = positions[*file].of(list.get());
        let group = name.strip_prefix('@');
        if let Some((first_file, first_line)) = placed.insert(name, (*file, line)) {
            let what = match group {
                Some(group) => format!("the entry for group {group:?}"),
                None => format!("key {name:?}"),
            };
            return Err(vec![at(
                *file,
                line,
                column,
                format!(
                    "{what} is defined twice: at {}:{first_line} and here",
                    shown(files, first_file)
                ),
            )]);
        }
        let members = match group {
            Some(group) => match groups.iter().find(|g| g.name == group) {
                Some(defined) => Some(&defined.members),
                None => {
                    return Err(vec![at(
                        *file,
                        line,
                        column,
                        format!("`@{group}` names no group of `groups`"),
                    )]);
                }
            },
            None => None,
        };
        let kept = match (only, members) {
            (None, _) => true,
            (Some(key), Some(members)) => members.iter().any(|m| m == key),
            (Some(key), None) => key == name,
        };
        kept_entries.push((*file, name, *list, group, kept));
    }

    // Every grant of every entry, read by its rules; those of kept entries built.
    let mut built: Vec<(Entry<'_>, Vec<Grant>)> = Vec::new();
    let mut errors = Vec::new();
    for (file, name, list, group, kept) in kept_entries {
        let grants_raw: Vec<&RawValue> = match serde_json::from_str(list.get()) {
            Ok(grants) => grants,
            Err(e) => {
                let (line, column) = positions[file].of(list.get());
                errors.push(at(file, line, column, describe(&e)));
                continue;
            }
        };
        let mut grants = Vec::with_capacity(if kept { grants_raw.len() } else { 0 });
        for raw_grant in grants_raw {
            let grant = raw_grant.get();
            let refused = if !grant.starts_with('{') {
                Some((0, 1, "a grant must be a JSON object".to_owned()))
            } else if kept {
                match serde_json::from_str::<RawGrant>(grant) {
                    Ok(raw) => {
                        let connect = raw.connect.map(|c| hypervisors.resolve(&c)).transpose();
                        match connect {
                            Ok(connect) => {
                                let (line, _) = positions[file].of(grant);
                                grants.push(Grant {
                                    domains: raw.domains.0,
                                    commands: raw.commands.map_or(ActionSet::DEFAULT, |c| c.0),
                                    connect,
                                    expires: raw.expires.map(|e| e.0),
                                    group: group.map(str::to_owned),
                                    file,
                                    line,
                                });
                                None
                            }
                            Err(reason) => Some(at_connect(grant, reason)),
                        }
                    }
                    Err(e) => Some((e.line() - 1, e.column(), describe(&e))),
                }
            } else {
                // Another key's grant, held to the same rules without being built.
                match serde_json::from_str::<CheckedGrant>(grant) {
                    Ok(checked) => checked
                        .connect
                        .and_then(|c| c.into_names().find(|n| !hypervisors.knows(n)))
                        .map(|name| at_connect(grant, unknown_hypervisor(&name))),
                    Err(e) => Some((e.line() - 1, e.column(), describe(&e))),
                }
            };
            if let Some((lines_in, column_in, reason)) = refused {
                // serde_json counts from the start of the grant; count from the file's.
                let (line, column) = positions[file].of(grant);
                let column = if lines_in == 0 {
                    column + column_in - 1
                } else {
                    column_in
                };
                errors.push(at(file, line + lines_in, column, reason));
            }
        }
        if kept {
            // A group's grants (each marked with its group) go to every member below.
            built.push((group.map_or(Entry::Key(name), Entry::Group), grants));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    // Each key's grants: its own entry's and those of the groups it is in, in file order.
    let mut keys: HashMap<String, Vec<Grant>> = HashMap::new();
    for (entry, grants) in built {
        match entry {
            Entry::Key(key) => keys.entry(key.to_owned()).or_default().extend(grants),
            Entry::Group(group) => {
                let members = groups
                    .iter()
                    .filter(|g| g.name == group)
                    .flat_map(|g| &g.members);
                for member in members {
                    if only.is_none_or(|key| key == member) {
                        keys.entry(member.clone())
                            .or_default()
                            .extend(grants.iter().cloned());
                    }
                }
            }
        }
    }
    // A member is a key even with no grants; entries in file order decide the order of
    // grants, which `extend` kept within each entry: sort the entries' grants by place.
    for group in &groups {
        for member in &group.members {
            if only.is_none_or(|key| key == member) {
                keys.entry(member.clone()).or_default();
            }
        }
    }
    for grants in keys.values_mut() {
        grants.sort_by_key(|g| (g.file, g.line));
    }

    Ok(Config {
        virsh: virsh.map_or_else(|| PathBuf::from(DEFAULT_VIRSH), |p| PathBuf::from(&*p.0)),
        connect,
        timeout: Duration::from_secs(timeout_secs.map_or(DEFAULT_TIMEOUT_SECS, |t| t.0)),
        syslog_socket: syslog_socket.map_or_else(
            || PathBuf::from(DEFAULT_SYSLOG_SOCKET),
            |p| PathBuf::from(&*p.0),
        ),
        idle_timeout: idle_timeout_secs.map(|t| Duration::from_secs(t.0)),
        files: files.iter().map(|(path, _)| path.clone()).collect(),
        groups,
        hypervisors: hypervisors.0,
        keys,
        allowed_hosts: allowed_hosts
            .map(|hosts| hosts.into_iter().map(|h| h.0.into_owned()).collect())
            .unwrap_or_default(),
    })
}

/// Whose a kept entry's grants are.
enum Entry<'a> {
    Key(&'a str),
    Group(&'a str),
}

/// A config file's name for a message.
fn shown(files: &[(PathBuf, String)], file: usize) -> String {
    files.get(file).map_or_else(
        || "?".to_owned(),
        |(path, _)| crate::escape::escape(&path.to_string_lossy()),
    )
}

/// The hypervisors a config names: those of `hypervisors` first, in file order, then each
/// URI a `connect` names directly, once (a URI that is also a named hypervisor's is that
/// hypervisor).
#[derive(Default)]
struct Registry(Vec<Hypervisor>);

impl Registry {
    fn id_of_uri(&mut self, uri: &str) -> HypervisorId {
        let index = match self.0.iter().position(|h| h.uri == uri) {
            Some(index) => index,
            None => {
                self.0.push(Hypervisor {
                    name: None,
                    uri: uri.to_owned(),
                });
                self.0.len() - 1
            }
        };
        HypervisorId(index)
    }

    /// Whether `entry` (a URI, or a name) is one the config can act on.
    fn knows(&self, entry: &str) -> bool {
        is_uri(entry) || self.0.iter().any(|h| h.name.as_deref() == Some(entry))
    }

    /// The hypervisors a `connect` means, each once.
    fn resolve(&mut self, connect: &Connect<'_>) -> Result<Vec<HypervisorId>, String> {
        let mut ids = Vec::with_capacity(connect.0.len());
        for entry in &connect.0 {
            let id = if is_uri(entry) {
                self.id_of_uri(entry)
            } else {
                match self
                    .0
                    .iter()
                    .position(|h| h.name.as_deref() == Some(&**entry))
                {
                    Some(index) => HypervisorId(index),
                    None => return Err(unknown_hypervisor(entry)),
                }
            };
            if ids.contains(&id) {
                return Err(format!(
                    "`connect` names the hypervisor {} twice (by its name and its URI)",
                    self.0[id.0].label()
                ));
            }
            ids.push(id);
        }
        Ok(ids)
    }
}

fn unknown_hypervisor(name: &str) -> String {
    format!(
        "unknown hypervisor {name:?}: it is not in `hypervisors` (a URI needs a scheme, \
         like \"qemu:///system\")"
    )
}

/// Where in a grant (lines and column from its start) its `connect` begins, with `reason`.
fn at_connect(grant: &str, reason: String) -> (usize, usize, String) {
    let offset = grant.find("\"connect\"").unwrap_or(0);
    let before = &grant[..offset];
    let lines_in = before.matches('\n').count();
    let column = offset - before.rfind('\n').map_or(0, |newline| newline + 1) + 1;
    (lines_in, column, reason)
}

/// serde_json's message without its own " at line L column C" (we print ours in front).
fn describe(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

/// The 1-based line and column of slices of one text, asked for in file order (as grants
/// are), so that the whole text is counted once however many grants it holds.
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

    /// Where `inner`, a slice of the text, starts.
    fn of(&mut self, inner: &str) -> (usize, usize) {
        let offset = (inner.as_ptr() as usize)
            .saturating_sub(self.text.as_ptr() as usize)
            .min(self.text.len());
        if offset < self.offset {
            // Asked out of order: count again from the top.
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

/// `\n` in `bytes`, counted in blocks the compiler turns into vector compares.
fn count_newlines(bytes: &[u8]) -> usize {
    let mut blocks = bytes.chunks_exact(128);
    let mut count = 0;
    for block in &mut blocks {
        // At most 128 per block: it fits in a u8.
        count += usize::from(block.iter().map(|b| u8::from(*b == b'\n')).sum::<u8>());
    }
    count + blocks.remainder().iter().filter(|b| **b == b'\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Action;
    use crate::config::{DomainPattern, parse, parse_all, parse_for_key};
    use std::path::Path;
    use std::time::Duration;

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
        assert_eq!(config.keys["ops"][0].commands, ActionSet::DEFAULT);
        assert_eq!(config.keys["ops"][0].line, 11);
    }

    #[test]
    fn defaults_apply() {
        let config = parse_ok(r#"{"keys": {}}"#);
        assert_eq!(config.virsh, Path::new(DEFAULT_VIRSH));
        assert_eq!(
            config.uris_of(&Grant {
                domains: Vec::new(),
                commands: ActionSet::DEFAULT,
                connect: None,
                expires: None,
                group: None,
                file: 0,
                line: 0,
            }),
            [DEFAULT_CONNECT]
        );
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
    fn a_grant_can_have_its_own_connect() {
        let config = parse_ok(
            r#"{"connect": "qemu:///system", "keys": {"k": [{"domains": ["a"], "connect": "test:///default"}, {"domains": ["b"]}]}}"#,
        );
        let grants = &config.keys["k"];
        assert_eq!(config.uris_of(&grants[0]), ["test:///default"]);
        assert_eq!(config.uris_of(&grants[1]), ["qemu:///system"]);
    }

    #[test]
    fn hypervisors_are_named_listed_and_resolved() {
        let text = r#"{
  "connect": ["hv1", "test:///default"],
  "hypervisors": {
    "hv1": "qemu+ssh://dromaius@hv1.example/system?keyfile=/k",
    "hv2": "qemu+tls://hv2.example/system"
  },
  "keys": {
    "a": [
      { "domains": ["x"] },
      { "domains": ["y"], "connect": "hv2" },
      { "domains": ["z"], "connect": ["hv2", "hv1", "qemu+tls://hv3/system"] },
      { "domains": ["w"], "connect": "qemu+ssh://dromaius@hv1.example/system?keyfile=/k" }
    ]
  }
}"#;
        let config = parse_ok(text);
        let labels = |grant: &Grant| -> Vec<String> {
            config
                .hypervisors_of(grant)
                .iter()
                .map(|id| config.hypervisor(*id).label())
                .collect()
        };
        let grants = &config.keys["a"];
        assert_eq!(labels(&grants[0]), ["hv1", "test:///default"]);
        assert_eq!(labels(&grants[1]), ["hv2"]);
        assert_eq!(labels(&grants[2]), ["hv2", "hv1", "qemu+tls://hv3/system"]);
        // The named hypervisor's URI is that hypervisor.
        assert_eq!(labels(&grants[3]), ["hv1"]);
        assert!(config.is_fleet());
        // The gateway's one-pass reading resolves them the same way.
        let one = parse_for_key(text, Path::new("t.json"), "a").unwrap();
        assert_eq!(one.uris_of(&one.keys["a"][2]), config.uris_of(&grants[2]));
        // Another key's grant that names an unknown hypervisor refuses the config, for
        // every reading, with its line.
        let bad = text.replace(r#""connect": "hv2" }"#, r#""connect": "hv7" }"#);
        let error = parse_err(&bad);
        assert_eq!(error.line, 10, "{error}");
        assert!(
            error.reason.contains("unknown hypervisor \"hv7\""),
            "{error}"
        );
        let error = parse_for_key(
            &bad.replace("\"a\": [", "\"b\": ["),
            Path::new("t.json"),
            "c",
        )
        .map(|_| ())
        .unwrap_err();
        assert_eq!(error.line, 10, "{error}");
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
                "unknown hypervisor \"hv1\"",
            ),
            (
                "{\"keys\": {\"a\": [{\"domains\": [\"x\"], \"connect\": \"h v\"}]}}",
                1,
                "neither a libvirt URI",
            ),
            (
                "{\"hypervisors\": {\"hv1\": \"qemu:///system\"}, \"keys\": {\"a\": [{\"domains\": [\"x\"], \"connect\": []}]}}",
                1,
                "at least one hypervisor",
            ),
            (
                "{\"hypervisors\": {\"hv1\": \"qemu:///system\"}, \"keys\": {\"a\": [{\"domains\": [\"x\"], \"connect\": [\"hv1\", \"hv1\"]}]}}",
                1,
                "names \"hv1\" twice",
            ),
            (
                "{\"hypervisors\": {\"hv1\": \"qemu:///system\"}, \"keys\": {\"a\": [{\"domains\": [\"x\"], \"connect\": [\"hv1\", \"qemu:///system\"]}]}}",
                1,
                "twice (by its name and its URI)",
            ),
            (
                "{\"hypervisors\": {\"hv1\": \"qemu:///system\", \"hv1\": \"test:///default\"}, \"keys\": {}}",
                1,
                "hypervisor \"hv1\" is named twice",
            ),
            (
                "{\"hypervisors\": {\"hv1\": \"qemu:///system\", \"hv2\": \"qemu:///system\"}, \"keys\": {}}",
                1,
                "have the same URI",
            ),
            (
                "{\"hypervisors\": {\"hv:1\": \"qemu:///system\"}, \"keys\": {}}",
                1,
                "holds a `:`",
            ),
            (
                "{\"hypervisors\": {\"hv1\": \"system\"}, \"keys\": {}}",
                1,
                "not a libvirt URI",
            ),
            ("{\"hypervisors\": [], \"keys\": {}}", 1, "invalid type"),
            (
                "{\"connect\": \"hv9\", \"keys\": {}}",
                1,
                "unknown hypervisor \"hv9\"",
            ),
            (
                "{\"connect\": [], \"keys\": {}}",
                1,
                "at least one hypervisor",
            ),
            ("{\"connect\": null, \"keys\": {}}", 1, "invalid type"),
            ("{\"connect\": 5, \"keys\": {}}", 1, "invalid type"),
            ("{\"virsh\": \"virsh\", \"keys\": {}}", 1, "absolute path"),
            ("{\"virsh\": \"./virsh\", \"keys\": {}}", 1, "absolute path"),
            (
                "{\"syslog_socket\": \"dev/log\", \"keys\": {}}",
                1,
                "absolute path",
            ),
            ("{\"connect\": \"\", \"keys\": {}}", 1, "libvirt URI"),
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

    mod properties {
        use super::*;
        use proptest::prelude::*;

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

        /// What a reading kept for `key`, with hypervisors as URIs (each reading numbers
        /// them in its own way).
        fn kept(config: &Config, key: &str) -> String {
            let top: Vec<&str> = config
                .connect
                .iter()
                .map(|id| config.hypervisor(*id).uri.as_str())
                .collect();
            let grants: Option<Vec<String>> = config.keys.get(key).map(|grants| {
                grants
                    .iter()
                    .map(|g| {
                        let domains: Vec<&str> =
                            g.domains.iter().map(DomainPattern::text).collect();
                        format!(
                            "{domains:?} {:?} {:?} {}",
                            g.commands,
                            config.uris_of(g),
                            g.line
                        )
                    })
                    .collect()
            });
            format!(
                "{:?} {top:?} {:?} {:?} {:?} {grants:?}",
                config.virsh, config.timeout, config.syslog_socket, config.allowed_hosts,
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

            /// The gateway's one-pass reading accepts exactly the configs that `check`'s
            /// reading accepts, keeps the same grants for its key, and refuses with the
            /// same first error.
            #[test]
            fn the_gateway_reads_a_config_as_check_does(text in config_text()) {
                let file = Path::new("t.json");
                let all = parse_all(&text, file);
                for key in ["a", "b", "c", "", "a\nb", "absent"] {
                    let files = [(file.to_owned(), text.clone())];
                    let in_place = read(&files, Reading::InPlace { kept: key });
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
