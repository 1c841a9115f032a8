//! Turning config text into a [`Config`]: the one reading, section by section.
//!
//! Each file's top level is read first (it must be a JSON object with known fields, each
//! once); then each section on its own — the scalars, `hypervisors`, `connect`, `groups`,
//! `AllowedHosts`, and `keys` grant by grant — so that a mistake in one does not hide a
//! mistake in another, and each error names the line of the value at fault. The config is
//! accepted only when nothing at all was refused; `check` shows every refusal, the gateway
//! the first in file order. What a config allows is `policy`'s question, not this module's.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::fields::{
    AbsolutePath, Connect, Entries, HostName, MemberName, RawGrant, Sections, Text, Timeout, Uri,
    check_group_name, check_hypervisor_name, check_key_name, domain_pattern,
};
use super::position::Positions;
use super::registry::Registry;
use super::{
    Config, ConfigError, DEFAULT_CONNECT, DEFAULT_SYSLOG_SOCKET, DEFAULT_TIMEOUT_SECS,
    DEFAULT_VIRSH, Grant, Group, Hypervisor, HypervisorId,
};

/// Reads a config: `files` are the main file and then those of `dromaius.d`, each its path
/// (named in errors) and its text.
pub(super) fn read(
    files: &[(PathBuf, String)],
    keep: Keep<'_>,
) -> Result<Config, Vec<ConfigError>> {
    let mut reader = Reader {
        files,
        keep,
        errors: Vec::new(),
    };
    let sections: Vec<Option<Sections<'_, Vec<Listed<'_>>>>> = (0..files.len())
        .map(|file| reader.top_level(file))
        .collect();
    let Some(Some(main)) = sections.first() else {
        return Err(reader.errors);
    };
    let mut registry = reader.hypervisors(main.hypervisors);
    let connect = reader.top_connect(main.connect, &mut registry);
    let groups = reader.groups(&sections);
    let entries = reader.key_entries(&sections, &groups);
    if sections
        .iter()
        .all(|s| s.as_ref().is_none_or(|s| s.keys.is_none()))
        && main.allowed_hosts.is_none()
    {
        reader.refuse(
            0,
            None,
            "a config needs `keys`, `AllowedHosts` or both".into(),
        );
    }
    let keys = reader.grants(&entries, &groups, &mut registry);
    let config = Config {
        virsh: reader
            .value::<AbsolutePath>(0, main.virsh)
            .map_or_else(|| PathBuf::from(DEFAULT_VIRSH), |p| p.0),
        connect,
        timeout: reader
            .value::<Timeout>(0, main.timeout_secs)
            .map_or(Duration::from_secs(DEFAULT_TIMEOUT_SECS), |t| t.0),
        syslog_socket: reader
            .value::<AbsolutePath>(0, main.syslog_socket)
            .map_or_else(|| PathBuf::from(DEFAULT_SYSLOG_SOCKET), |p| p.0),
        idle_timeout: reader
            .value::<Timeout>(0, main.idle_timeout_secs)
            .map(|t| t.0),
        files: files.iter().map(|(path, _)| path.clone()).collect(),
        groups,
        hypervisors: registry.0,
        keys,
        allowed_hosts: reader
            .value::<Vec<HostName>>(0, main.allowed_hosts)
            .map(|hosts| hosts.into_iter().map(|h| h.0).collect())
            .unwrap_or_default(),
    };
    if reader.errors.is_empty() {
        Ok(config)
    } else {
        let mut errors = reader.errors;
        errors.sort_by_key(|e| {
            (
                files.iter().position(|(p, _)| *p == e.file),
                e.line,
                e.column,
            )
        });
        Err(errors)
    }
}

/// One entry of `keys` as a file lists it: a key's or a group's name, its grants as
/// written, and where the entry is when the reading that found it knew (otherwise it is
/// looked for only if something about the entry is refused).
struct Listed<'a> {
    name: Cow<'a, str>,
    at: Option<&'a RawValue>,
    grants: Vec<&'a RawValue>,
}

/// An entry of `keys` the config holds: a key's, or a group's (`group` is the group's index
/// in the config's groups), in file `file`, its `index`th entry there. Its grants are those
/// its file listed, borrowed: a config of 10,000 keys holds them once.
struct KeyEntry<'a, 'l> {
    file: usize,
    index: usize,
    name: Cow<'a, str>,
    group: Option<usize>,
    grants: &'l [&'a RawValue],
}

/// Whose grants a reading builds. Every grant of every key is read and checked by the same
/// rules either way, so what is refused does not depend on it; a gateway serving one key
/// need not build the other 9,999 keys' grants only to drop them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep<'k> {
    Every,
    Key(&'k str),
}

impl Keep<'_> {
    fn keeps(self, key: &str) -> bool {
        match self {
            Keep::Every => true,
            Keep::Key(kept) => kept == key,
        }
    }
}

/// The reading in progress: the files, whose grants it builds, and every refusal so far.
struct Reader<'f> {
    files: &'f [(PathBuf, String)],
    keep: Keep<'f>,
    errors: Vec<ConfigError>,
}

impl<'f> Reader<'f> {
    /// Refuses what is at `inner` (a slice of file `file`'s text; `None`: its start).
    fn refuse(&mut self, file: usize, inner: Option<&str>, reason: String) {
        let (line, column) = match inner {
            Some(inner) => self.place(file, inner),
            None => (1, 1),
        };
        self.errors.push(ConfigError {
            file: self.path(file),
            line,
            column,
            reason,
        });
    }

    /// Refuses a value serde refused, at the place serde named inside `inner`.
    fn refuse_serde(&mut self, file: usize, inner: &str, error: &serde_json::Error) {
        let (line, column) = self.place(file, inner);
        let (line, column) = if error.line() <= 1 {
            (line, column + error.column().saturating_sub(1))
        } else {
            (line + error.line() - 1, error.column())
        };
        self.errors.push(ConfigError {
            file: self.path(file),
            line,
            column,
            reason: describe(error),
        });
    }

    fn path(&self, file: usize) -> PathBuf {
        self.files
            .get(file)
            .map(|(path, _)| path.clone())
            .unwrap_or_default()
    }

    /// The 1-based line and column where `inner`, a slice of file `file`'s text, starts.
    fn place(&self, file: usize, inner: &str) -> (usize, usize) {
        self.files
            .get(file)
            .map_or((1, 1), |(_, text)| Positions::new(text).of(inner))
    }

    /// A file's top level: a JSON object of known sections, each once; a file of
    /// `dromaius.d` holds only `keys` and `groups`. Its `keys` are read into their entries.
    fn top_level(&mut self, file: usize) -> Option<Sections<'f, Vec<Listed<'f>>>> {
        let text: &'f str = &self.files.get(file)?.1;
        let what = if file == 0 {
            "the config"
        } else {
            "a file of dromaius.d"
        };
        // serde's derive would also take a struct written as a JSON array.
        if !text.trim_start().starts_with('{') {
            let at = text.trim_start();
            self.refuse(file, Some(at), format!("{what} must be a JSON object"));
            return None;
        }
        // In one pass when every entry of `keys` is a list; otherwise section by section,
        // which says where what is wrong is.
        let sections =
            match serde_json::from_str::<Sections<'f, Entries<'f, Vec<&'f RawValue>>>>(text) {
                Ok(mut sections) => {
                    let keys = sections.keys.take().map(|Entries(entries)| {
                        entries
                            .into_iter()
                            .map(|(name, grants)| Listed {
                                name,
                                at: None,
                                grants,
                            })
                            .collect()
                    });
                    sections.with_keys(keys)
                }
                Err(_) => match serde_json::from_str::<Sections<'f, &'f RawValue>>(text) {
                    Ok(sections) => {
                        let keys = sections.keys.map(|keys| self.listed(file, keys));
                        sections.with_keys(keys)
                    }
                    Err(error) => {
                        self.refuse_serde(file, text, &error);
                        return None;
                    }
                },
            };
        if file > 0 {
            let main_only = [
                ("virsh", sections.virsh),
                ("connect", sections.connect),
                ("hypervisors", sections.hypervisors),
                ("timeout_secs", sections.timeout_secs),
                ("syslog_socket", sections.syslog_socket),
                ("idle_timeout_secs", sections.idle_timeout_secs),
                ("AllowedHosts", sections.allowed_hosts),
            ];
            for (field, value) in main_only {
                if let Some(value) = value {
                    self.refuse(
                        file,
                        Some(value.get()),
                        format!(
                            "a file of dromaius.d holds only `keys` and `groups`, not \
                             `{field}` (it belongs in the main config)"
                        ),
                    );
                }
            }
        }
        Some(sections)
    }

    /// `keys` entry by entry, each with where it is; an entry whose value is not a list of
    /// grants is refused here.
    fn listed(&mut self, file: usize, section: &'f RawValue) -> Vec<Listed<'f>> {
        let Some(Entries(entries)) = self.value::<Entries<'f, &'f RawValue>>(file, Some(section))
        else {
            return Vec::new();
        };
        let mut listed = Vec::with_capacity(entries.len());
        for (name, at) in entries {
            if let Some(grants) = self.value::<Vec<&'f RawValue>>(file, Some(at)) {
                listed.push(Listed {
                    name,
                    at: Some(at),
                    grants,
                });
            }
        }
        listed
    }

    /// Where the `index`th entry of file `file`'s `keys` is (for a refusal that names it).
    fn entry_at(&mut self, file: usize, index: usize) -> Option<&'f str> {
        let text: &'f str = &self.files.get(file)?.1;
        let sections = serde_json::from_str::<Sections<'f, &'f RawValue>>(text).ok()?;
        let Entries(entries) =
            serde_json::from_str::<Entries<'f, &'f RawValue>>(sections.keys?.get()).ok()?;
        entries.get(index).map(|(_, at)| at.get())
    }

    /// Reads one value of file `file` by its type's rule; `None` when absent or refused.
    fn value<T: Deserialize<'f>>(&mut self, file: usize, raw: Option<&'f RawValue>) -> Option<T> {
        let raw = raw?;
        match serde_json::from_str(raw.get()) {
            Ok(value) => Some(value),
            Err(error) => {
                self.refuse_serde(file, raw.get(), &error);
                None
            }
        }
    }

    /// `hypervisors`: each name once, each URI once.
    fn hypervisors(&mut self, section: Option<&'f RawValue>) -> Registry {
        let mut registry = Registry::default();
        let Some(Entries(entries)) = self.value::<Entries<'f, &'f RawValue>>(0, section) else {
            return registry;
        };
        for (name, raw) in entries {
            if let Err(reason) = check_hypervisor_name(&name) {
                self.refuse(0, Some(raw.get()), reason);
                continue;
            }
            let Some(Uri(uri)) = self.value::<Uri>(0, Some(raw)) else {
                continue;
            };
            let twice = registry.0.iter().find_map(|h| {
                let seen = h.name.as_deref().unwrap_or_default();
                if seen == name {
                    Some(format!("hypervisor {name:?} is named twice"))
                } else if h.uri == uri {
                    Some(format!(
                        "hypervisors {seen:?} and {name:?} have the same URI: one hypervisor, \
                         two names"
                    ))
                } else {
                    None
                }
            });
            match twice {
                Some(reason) => self.refuse(0, Some(raw.get()), reason),
                None => registry.0.push(Hypervisor {
                    name: Some(name.into_owned()),
                    uri,
                }),
            }
        }
        registry
    }

    /// The top-level `connect`: where a grant without its own looks its domains up.
    fn top_connect(
        &mut self,
        section: Option<&'f RawValue>,
        registry: &mut Registry,
    ) -> Vec<HypervisorId> {
        let Some(raw) = section else {
            return vec![registry.id_of_uri(DEFAULT_CONNECT)];
        };
        let Some(connect) = self.value::<Connect<'f>>(0, Some(raw)) else {
            return Vec::new();
        };
        registry.resolve(&connect).unwrap_or_else(|reason| {
            self.refuse(0, Some(raw.get()), reason);
            Vec::new()
        })
    }

    /// `groups` of every file, each group defined once in all of them.
    fn groups(&mut self, sections: &[Option<Sections<'f, Vec<Listed<'f>>>>]) -> Vec<Group> {
        let mut groups: Vec<Group> = Vec::new();
        for (file, sections) in sections.iter().enumerate() {
            let section = sections.as_ref().and_then(|s| s.groups);
            let Some(Entries(entries)) = self.value::<Entries<'f, &'f RawValue>>(file, section)
            else {
                continue;
            };
            for (name, raw) in entries {
                if let Err(reason) = check_group_name(&name) {
                    self.refuse(file, Some(raw.get()), reason);
                    continue;
                }
                let (line, _) = self.place(file, raw.get());
                if let Some(first) = groups.iter().find(|g| g.name == name) {
                    let reason = format!(
                        "group {name:?} is defined twice: at {}:{} and here",
                        self.shown(first.file),
                        first.line
                    );
                    self.refuse(file, Some(raw.get()), reason);
                    continue;
                }
                let Some(members) = self.value::<Vec<MemberName>>(file, Some(raw)) else {
                    continue;
                };
                let mut seen = HashSet::new();
                if let Some(twice) = members.iter().find(|m| !seen.insert(&m.0)) {
                    let reason = format!("the group lists {:?} twice", twice.0);
                    self.refuse(file, Some(raw.get()), reason);
                    continue;
                }
                groups.push(Group {
                    name: name.into_owned(),
                    members: members.into_iter().map(|m| m.0).collect(),
                    file,
                    line,
                });
            }
        }
        groups
    }

    /// The entries of `keys` of every file, in file order, each name once in all of them;
    /// an `@GROUP` entry names a group of `groups`.
    fn key_entries<'l>(
        &mut self,
        sections: &'l [Option<Sections<'f, Vec<Listed<'f>>>>],
        groups: &[Group],
    ) -> Vec<KeyEntry<'f, 'l>> {
        let all_listed = sections
            .iter()
            .flatten()
            .filter_map(|s| s.keys.as_ref())
            .map(Vec::len)
            .sum();
        let mut entries: Vec<KeyEntry<'f, 'l>> = Vec::with_capacity(all_listed);
        let mut placed: HashMap<Cow<'f, str>, usize> = HashMap::new();
        for (file, sections) in sections.iter().enumerate() {
            let listed = sections.as_ref().and_then(|s| s.keys.as_ref());
            for (index, Listed { name, at, grants }) in listed.into_iter().flatten().enumerate() {
                let group = name.strip_prefix('@');
                let refused = if let Err(reason) = check_key_name(name) {
                    Some(reason)
                } else if let Some(first) = placed.get(name) {
                    let first = &entries[*first];
                    let what = match group {
                        Some(group) => format!("the entry for group {group:?}"),
                        None => format!("key {name:?}"),
                    };
                    Some(if first.file == file {
                        format!("{what} is named twice")
                    } else {
                        let (first_file, first_index) = (first.file, first.index);
                        let line = self
                            .entry_at(first_file, first_index)
                            .map_or(0, |inner| self.place(first_file, inner).0);
                        format!(
                            "{what} is defined twice: at {}:{line} and here",
                            self.shown(first_file)
                        )
                    })
                } else if group.is_some_and(|g| !groups.iter().any(|d| d.name == g)) {
                    Some(format!("`{name}` names no group of `groups`"))
                } else {
                    None
                };
                if let Some(reason) = refused {
                    let at = at.map(|at| at.get()).or_else(|| self.entry_at(file, index));
                    self.refuse(file, at, reason);
                    continue;
                }
                placed.insert(name.clone(), entries.len());
                entries.push(KeyEntry {
                    file,
                    index,
                    name: name.clone(),
                    group: group.and_then(|g| groups.iter().position(|d| d.name == g)),
                    grants,
                });
            }
        }
        entries
    }

    /// Every grant of every entry, each read on its own; each key's grants are its own
    /// entry's and those of the groups it is in, in file order. A member of a group is a
    /// key even with no grants.
    fn grants(
        &mut self,
        entries: &[KeyEntry<'f, '_>],
        groups: &[Group],
        registry: &mut Registry,
    ) -> HashMap<String, Vec<Grant>> {
        let mut keys: HashMap<String, Vec<Grant>> = match self.keep {
            Keep::Every => HashMap::with_capacity(entries.len()),
            Keep::Key(_) => HashMap::new(),
        };
        let mut positions: Vec<Positions<'f>> = self
            .files
            .iter()
            .map(|(_, text)| Positions::new(text))
            .collect();
        let keep = self.keep;
        for entry in entries {
            let list = entry.grants;
            let kept: Vec<&str> = match entry.group {
                Some(group) => groups[group]
                    .members
                    .iter()
                    .map(String::as_str)
                    .filter(|m| keep.keeps(m))
                    .collect(),
                None if keep.keeps(&entry.name) => vec![&*entry.name],
                None => Vec::new(),
            };
            let mut built = Vec::with_capacity(if kept.is_empty() { 0 } else { list.len() });
            for raw in list.iter().copied() {
                let at = &mut positions[entry.file];
                let grant = self.grant(entry, raw, at, registry, !kept.is_empty());
                built.extend(grant);
            }
            for member in kept {
                keys.entry(member.to_owned())
                    .or_default()
                    .extend(built.iter().cloned());
            }
        }
        for member in groups.iter().flat_map(|g| &g.members) {
            if self.keep.keeps(member) {
                keys.entry(member.clone()).or_default();
            }
        }
        // Each entry's grants are in order; a key's come from several entries.
        for grants in keys.values_mut() {
            grants.sort_by_key(|g| (g.file, g.line));
        }
        keys
    }

    /// One grant: checked, and built when `build` (only a built grant needs its line,
    /// found with `at`; a refusal finds its own place).
    fn grant(
        &mut self,
        entry: &KeyEntry<'f, '_>,
        raw: &'f RawValue,
        at: &mut Positions<'f>,
        registry: &mut Registry,
        build: bool,
    ) -> Option<Grant> {
        let file = entry.file;
        if !raw.get().starts_with('{') {
            self.refuse(
                file,
                Some(raw.get()),
                "a grant must be a JSON object".into(),
            );
            return None;
        }
        let grant: RawGrant = self.value(file, Some(raw))?;
        if grant.domains.is_empty() {
            let reason = "`domains` must name at least one domain".into();
            self.refuse(file, Some(raw.get()), reason);
            return None;
        }
        let commands = match grant.commands() {
            Ok(commands) => commands,
            Err(reason) => {
                self.refuse(file, Some(raw.get()), reason.into());
                return None;
            }
        };
        let mut domains = Vec::with_capacity(if build { grant.domains.len() } else { 0 });
        for Text(text) in &grant.domains {
            match domain_pattern(text, build) {
                Ok(pattern) => domains.extend(pattern),
                Err(reason) => {
                    let at = raw
                        .get()
                        .find(&**text)
                        .map_or(raw.get(), |o| &raw.get()[o..]);
                    self.refuse(file, Some(at), reason);
                    return None;
                }
            }
        }
        let connect = match grant.connect.as_ref().map(|c| registry.resolve(c)) {
            None => None,
            Some(Ok(ids)) => Some(ids),
            Some(Err(reason)) => {
                let text = raw.get();
                let at = text
                    .find("\"connect\"")
                    .map_or(text, |offset| &text[offset..]);
                self.refuse(file, Some(at), reason);
                return None;
            }
        };
        if !build {
            return None;
        }
        Some(Grant {
            domains,
            commands,
            connect,
            expires: grant.expires.map(|e| e.0),
            group: entry
                .group
                .map(|_| entry.name.trim_start_matches('@').to_owned()),
            file,
            line: at.of(raw.get()).0,
        })
    }

    /// A config file's name for a message.
    fn shown(&self, file: usize) -> String {
        crate::escape::escape(&self.path(file).to_string_lossy())
    }
}

/// serde_json's message without its own " at line L column C" (we print ours in front).
fn describe(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}
