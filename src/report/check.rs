//! `check`'s reading of a config that loaded: a short summary, and warnings about what is
//! valid but probably not meant.
//!
//! Validity itself is the loader's (`config::load_all`, the gateway's own code). The
//! warnings are sound by construction — each one is a fact, never a guess:
//! - a grant that can never decide anything: every (domain pattern, command) it names is
//!   already taken by an earlier grant of the same key, found only in the plain cases
//!   (an earlier grant names `*`, the same pattern text, or a pattern that matches the
//!   exact name) — so some never-matching grants go unreported, but none is reported wrongly;
//! - a grant identical to an earlier one of the same key;
//! - a key with no grants;
//! - an exact domain name that virsh would read as a domain id or UUID (dromaius resolves
//!   names to UUIDs itself, but other tools that pass it to virsh would not reach it);
//! - a key name `keyline` cannot put in a forced command;
//! - a grant that has expired or expires within 7 days;
//! - a grant of `display` on a hypervisor not on this host, where display is refused;
//! - a named hypervisor that nothing acts on.

use std::collections::HashSet;
use std::fmt::Write as _;

use crate::action::{Action, ActionSet};
use crate::config::{Config, DomainPattern, Grant, Group, HypervisorId};
use crate::escape::escape;
use crate::lookup::{self, Reading};

/// A warning, at a grant's line when it has one (in `file`, one of `Config::files`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub file: usize,
    pub line: Option<usize>,
    pub message: String,
}

/// How long before its end `check` warns that a grant expires.
const EXPIRES_SOON: i64 = 7 * 86_400;

/// Key names in a stable order (the config's map has none).
fn sorted_keys(config: &Config) -> Vec<(&String, &Vec<Grant>)> {
    let mut keys: Vec<_> = config.keys.iter().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    keys
}

fn pattern_text(pattern: &DomainPattern) -> &str {
    pattern.text()
}

/// The URIs a list of hypervisors names, escaped, for people.
fn uris_text(uris: &[&str]) -> String {
    uris.iter().map(|u| escape(u)).collect::<Vec<_>>().join(" ")
}

fn commands_text(commands: ActionSet) -> String {
    if commands == ActionSet::ALL {
        return "all commands".into();
    }
    commands
        .iter()
        .map(Action::name)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The summary printed when the config is valid.
pub fn summary(config: &Config, file: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{file}: valid");
    settings(&mut out, config);
    for group in &config.groups {
        group_line(&mut out, config, group);
    }
    for hypervisor in config.hypervisors.iter() {
        if let Some(name) = &hypervisor.name {
            let _ = writeln!(
                out,
                "  hypervisor {}: {}",
                escape(name),
                escape(&hypervisor.uri)
            );
        }
    }
    counts(&mut out, config);
    for (name, grants) in sorted_keys(config) {
        let _ = writeln!(out, "  key {}", escape(name));
        if grants.is_empty() {
            let _ = writeln!(out, "    (no grants: every request is refused)");
        }
        for (index, grant) in grants.iter().enumerate() {
            grant_line(&mut out, config, index, grant);
        }
    }
    out
}

/// virsh, the default hypervisors, the timeout, the audit socket, and the files read
/// after the main one.
fn settings(out: &mut String, config: &Config) {
    let _ = writeln!(
        out,
        "  virsh {}, connect {}, timeout {} s, audit to {}",
        escape(&config.virsh.to_string_lossy()),
        uris_text(
            &config
                .connect
                .iter()
                .map(|id| config.hypervisor(*id).uri.as_str())
                .collect::<Vec<_>>()
        ),
        config.timeout.as_secs(),
        escape(&config.syslog_socket.to_string_lossy()),
    );
    for extra in config.files.iter().skip(1) {
        let _ = writeln!(out, "  and {}", escape(&extra.to_string_lossy()));
    }
}

/// A group: where it is defined, and its members.
fn group_line(out: &mut String, config: &Config, group: &Group) {
    let members: Vec<String> = group.members.iter().map(|m| escape(m)).collect();
    let _ = writeln!(
        out,
        "  group {} ({}): {}",
        escape(&group.name),
        escape(&format!(
            "{}:{}",
            config
                .files
                .get(group.file)
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            group.line
        )),
        if members.is_empty() {
            "(no members)".to_owned()
        } else {
            members.join(" ")
        }
    );
}

/// How many keys and grants, and the `AllowedHosts`.
fn counts(out: &mut String, config: &Config) {
    let grants: usize = config.keys.values().map(Vec::len).sum();
    let hosts = if config.allowed_hosts.is_empty() {
        "none".to_string()
    } else {
        config
            .allowed_hosts
            .iter()
            .map(|h| escape(h))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(
        out,
        "  {} {}, {grants} {}; AllowedHosts: {hosts}",
        config.keys.len(),
        if config.keys.len() == 1 {
            "key"
        } else {
            "keys"
        },
        if grants == 1 { "grant" } else { "grants" },
    );
}

/// One grant of a key: where it is, its domains and commands, and what limits it.
fn grant_line(out: &mut String, config: &Config, index: usize, grant: &Grant) {
    let domains: Vec<String> = grant
        .domains
        .iter()
        .map(|p| escape(pattern_text(p)))
        .collect();
    let connect = match &grant.connect {
        Some(_) => format!(" (connect {})", uris_text(&config.uris_of(grant))),
        None => String::new(),
    };
    let place = if grant.file == 0 {
        format!("line {}", grant.line)
    } else {
        config.place_of(grant)
    };
    let group = grant
        .group
        .as_deref()
        .map(|g| format!(" (group {})", escape(g)))
        .unwrap_or_default();
    let expires = grant
        .expires
        .as_ref()
        .map(|e| format!(" (expires {})", escape(&e.text)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "    #{} {place}: {} -> {}{connect}{group}{expires}",
        index + 1,
        domains.join(" "),
        commands_text(grant.commands),
    );
}

/// Every warning, in file order, as of now.
pub fn warnings(config: &Config) -> Vec<Warning> {
    warnings_at(config, crate::expiry::now())
}

/// Every warning, in file order, as of `now` (Unix seconds). Each kind of warning is one
/// function below; they are asked in this order, key by key and grant by grant where they
/// concern one, so that warnings on the same line keep this order after the sort.
pub fn warnings_at(config: &Config, now: i64) -> Vec<Warning> {
    let mut warnings = expiring_grants(config, now);
    // A group's grant is every member's: it is told of once.
    let mut display_told = HashSet::new();
    for (name, grants) in sorted_keys(config) {
        warnings.extend(key_name_keyline_refuses(name, grants));
        warnings.extend(key_without_grants(name, grants));
        for (index, grant) in grants.iter().enumerate() {
            if grant.commands.contains(Action::Display)
                && display_told.insert((grant.file, grant.line))
            {
                warnings.extend(display_not_here(config, name, index, grant));
            }
            warnings.extend(never_decides(name, &grants[..index], grant));
        }
    }
    warnings.extend(unused_hypervisors(config));
    warnings.extend(names_virsh_misreads(config));
    warnings.sort_by_key(|w| (w.file, w.line.unwrap_or(0)));
    warnings
}

/// How a warning names a key's grant: `key "K", grant #N`.
fn grant_at(key: &str, index: usize) -> String {
    format!("key \"{}\", grant #{}", escape(key), index + 1)
}

/// Grants that have expired or expire within 7 days, each once (a group's grant is every
/// member's).
fn expiring_grants(config: &Config, now: i64) -> Vec<Warning> {
    let mut warnings = Vec::new();
    let mut told = HashSet::new();
    for (name, grants) in sorted_keys(config) {
        for (index, grant) in grants.iter().enumerate() {
            let Some(expiry) = &grant.expires else {
                continue;
            };
            if !told.insert((grant.file, grant.line)) {
                continue;
            }
            let whose = match &grant.group {
                Some(group) => format!("group \"{}\"", escape(group)),
                None => grant_at(name, index),
            };
            let when = escape(&expiry.to_string());
            let message = if expiry.has_ended(now) {
                format!("{whose} has expired: {when}; it matches nothing")
            } else if expiry.ends_within(now, EXPIRES_SOON) {
                format!("{whose} expires within 7 days: {when}")
            } else {
                continue;
            };
            warnings.push(Warning {
                file: grant.file,
                line: Some(grant.line),
                message,
            });
        }
    }
    warnings
}

/// A key name `keyline` cannot put in a forced command.
fn key_name_keyline_refuses(name: &str, grants: &[Grant]) -> Option<Warning> {
    let why = super::keyline::check_key_name(name).err()?;
    Some(Warning {
        file: grants.first().map_or(0, |g| g.file),
        line: grants.first().map(|g| g.line),
        message: format!(
            "key \"{}\": keyline cannot make a line for it: {why}",
            escape(name)
        ),
    })
}

/// A key with no grants.
fn key_without_grants(name: &str, grants: &[Grant]) -> Option<Warning> {
    grants.is_empty().then(|| Warning {
        file: 0,
        line: None,
        message: format!(
            "key \"{}\" has no grants: every request with it is refused",
            escape(name)
        ),
    })
}

/// A grant of `display` on hypervisors not on this host, where display is refused.
fn display_not_here(config: &Config, name: &str, index: usize, grant: &Grant) -> Option<Warning> {
    let remote: Vec<String> = config
        .hypervisors_of(grant)
        .iter()
        .map(|id| config.hypervisor(*id))
        .filter(|at| !at.is_local())
        .map(|at| escape(&at.label()))
        .collect();
    if remote.is_empty() {
        return None;
    }
    let whose = match &grant.group {
        Some(group) => format!("group \"{}\"", escape(group)),
        None => grant_at(name, index),
    };
    Some(Warning {
        file: grant.file,
        line: Some(grant.line),
        message: format!(
            "{whose} grants display on {}, not on this host: display is refused there (only \
             a hypervisor on this host has its graphical console relayed)",
            remote.join(", ")
        ),
    })
}

/// A grant that can never decide anything: a duplicate of an earlier grant of the same
/// key, or one whose every (pattern, command) an earlier grant surely takes.
fn never_decides(name: &str, earlier: &[Grant], grant: &Grant) -> Option<Warning> {
    let at = grant_at(name, earlier.len());
    let message = if let Some(same) = earlier.iter().position(|e| same_grant(e, grant)) {
        format!(
            "{at} is a duplicate of grant #{} (line {})",
            same + 1,
            earlier[same].line
        )
    } else {
        let list: Vec<String> = shadowed_by(earlier, grant)?
            .iter()
            .map(|i| format!("#{} (line {})", i + 1, earlier[*i].line))
            .collect();
        format!(
            "{at} can never match: every domain and command it names is decided first by \
             grant {}",
            list.join(", ")
        )
    };
    Some(Warning {
        file: grant.file,
        line: Some(grant.line),
        message,
    })
}

/// Named hypervisors that no grant, and no `AllowedHosts` session, acts on.
fn unused_hypervisors(config: &Config) -> Vec<Warning> {
    let mut warnings = Vec::new();
    for hypervisor in &config.hypervisors {
        let Some(name) = &hypervisor.name else {
            continue;
        };
        let used = |ids: &[HypervisorId]| ids.iter().any(|id| config.hypervisor(*id) == hypervisor);
        let by_grants = config
            .keys
            .values()
            .flatten()
            .any(|grant| used(config.hypervisors_of(grant)));
        // AllowedHosts sessions act on the top-level connect.
        let by_hosts = used(&config.connect) && !config.allowed_hosts.is_empty();
        if !by_grants && !by_hosts {
            warnings.push(Warning {
                file: 0,
                line: None,
                message: format!(
                    "hypervisor \"{}\" ({}) is in `hypervisors`, but no grant acts on it",
                    escape(name),
                    escape(&hypervisor.uri)
                ),
            });
        }
    }
    warnings
}

/// Exact domain names (of grants, then of `AllowedHosts`) that virsh would read as a
/// domain id or UUID, each once, where it is first named.
fn names_virsh_misreads(config: &Config) -> Vec<Warning> {
    let exact_names = sorted_keys(config).into_iter().flat_map(|(name, grants)| {
        grants.iter().enumerate().flat_map(move |(index, grant)| {
            grant.domains.iter().filter_map(move |p| match p {
                DomainPattern::Exact(domain) => Some((
                    domain.as_str(),
                    grant.file,
                    Some(grant.line),
                    grant_at(name, index),
                )),
                DomainPattern::Glob(_) => None,
            })
        })
    });
    let hosts = config
        .allowed_hosts
        .iter()
        .map(|h| (h.as_str(), 0, None, "AllowedHosts".to_string()));
    let mut warnings = Vec::new();
    let mut seen = HashSet::new();
    for (domain, file, line, at) in exact_names.chain(hosts) {
        if !seen.insert(domain) {
            continue;
        }
        if let Some(reading) = virsh_reading(domain) {
            warnings.push(Warning {
                file,
                line,
                message: format!(
                    "{at}: virsh reads the domain name \"{}\" as {reading}; dromaius still \
                     reaches only the domain of that name, but scripts or people passing the \
                     name to virsh reach another domain",
                    escape(domain)
                ),
            });
        }
    }
    warnings
}

fn same_grant(a: &Grant, b: &Grant) -> bool {
    a.commands == b.commands && a.connect == b.connect && pattern_set(a) == pattern_set(b)
}

/// A grant's pattern texts, sorted, each once.
fn pattern_set(grant: &Grant) -> Vec<&str> {
    let mut texts: Vec<&str> = grant.domains.iter().map(pattern_text).collect();
    texts.sort_unstable();
    texts.dedup();
    texts
}

/// If every (pattern, command) of `grant` is taken by some earlier grant, the indexes of
/// the earlier grants that take them; `None` if any pair may still reach `grant`.
fn shadowed_by(earlier: &[Grant], grant: &Grant) -> Option<Vec<usize>> {
    let mut deciders = Vec::new();
    for pattern in &grant.domains {
        for action in grant.commands.iter() {
            let decider = earlier
                .iter()
                .position(|e| e.commands.contains(action) && covers(&e.domains, pattern))?;
            if !deciders.contains(&decider) {
                deciders.push(decider);
            }
        }
    }
    deciders.sort_unstable();
    Some(deciders)
}

/// Whether every domain `pattern` matches is surely matched by one of `patterns`.
fn covers(patterns: &[DomainPattern], pattern: &DomainPattern) -> bool {
    patterns.iter().any(|p| {
        pattern_text(p) == "*"
            || pattern_text(p) == pattern_text(pattern)
            || matches!(pattern, DomainPattern::Exact(name) if p.matches(name))
    })
}

/// How virsh would read `name` as a domain argument before trying it as a name, in words:
/// `Some("the domain id N")` / `Some("a domain UUID")`, or `None` when it is only ever a
/// name. A 32-digit name without dashes is also reported: virsh skips it, but libvirt's UUID
/// lookup (and tools built on it) accepts it.
pub fn virsh_reading(name: &str) -> Option<String> {
    Some(match lookup::reading(name)? {
        Reading::Id(id) => format!("the domain id {id}"),
        Reading::Uuid => "a domain UUID".into(),
        Reading::UuidWithoutDashes => {
            "a domain UUID (libvirt's UUID lookup; not virsh, which wants 36 characters)".into()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        crate::config::parse(text, Path::new("t.json")).unwrap()
    }

    fn messages(text: &str) -> Vec<(Option<usize>, String)> {
        warnings(&config(text))
            .into_iter()
            .map(|w| (w.line, w.message))
            .collect()
    }

    #[test]
    fn virsh_readings_are_worded() {
        assert_eq!(virsh_reading("+5").as_deref(), Some("the domain id 5"));
        assert_eq!(
            virsh_reading("6695eb01-f6a4-8304-79aa-97f2502e193f").as_deref(),
            Some("a domain UUID")
        );
        assert_eq!(
            virsh_reading("6695eb01f6a4830479aa97f2502e193f").as_deref(),
            Some("a domain UUID (libvirt's UUID lookup; not virsh, which wants 36 characters)")
        );
        assert_eq!(virsh_reading("web1"), None);
    }

    #[test]
    fn sound_shadowing_table() {
        // (grants of one key, whether the LAST grant is reported as never matching)
        let cases: &[(&str, bool)] = &[
            (r#"{"domains": ["*"]}, {"domains": ["web1"]}"#, true),
            (
                r#"{"domains": ["*"], "commands": ["status"]}, {"domains": ["web1"], "commands": ["status"]}"#,
                true,
            ),
            (
                r#"{"domains": ["*"], "commands": ["status"]}, {"domains": ["web1"]}"#,
                false,
            ),
            (
                r#"{"domains": ["web*"]}, {"domains": ["web1", "web2"]}"#,
                true,
            ),
            (
                r#"{"domains": ["web*"]}, {"domains": ["web1", "db1"]}"#,
                false,
            ),
            (r#"{"domains": ["web*"]}, {"domains": ["web?"]}"#, false), // not worked out: never claimed
            (
                r#"{"domains": ["web?"]}, {"domains": ["web?"], "connect": "test:///x"}"#,
                true,
            ),
            (
                r#"{"domains": ["a"], "commands": ["start"]}, {"domains": ["b"], "commands": ["status"]}"#,
                false,
            ),
            (
                r#"{"domains": ["a"], "commands": ["start"]}, {"domains": ["a"], "commands": ["status"]}, {"domains": ["a"], "commands": ["start", "status"]}"#,
                true,
            ),
            (
                r#"{"domains": ["a"], "commands": ["start"]}, {"domains": ["a"], "commands": ["start", "status"]}"#,
                false,
            ),
        ];
        for (grants, expected) in cases {
            let text = format!(r#"{{"keys": {{"k": [{grants}]}}}}"#);
            let found = messages(&text)
                .iter()
                .any(|(_, m)| m.contains("can never match") || m.contains("duplicate"));
            assert_eq!(found, *expected, "{grants}");
        }
    }

    #[test]
    fn warnings_name_key_grant_and_line() {
        let text = r#"{
  "AllowedHosts": ["7"],
  "keys": {
    "alice": [
      { "domains": ["alice-*"] },
      { "domains": ["alice-web"], "commands": ["status"] },
      { "domains": ["alice-*"] },
      { "domains": ["2", "6695eb01-f6a4-8304-79aa-97f2502e193f"] }
    ],
    "bad name": [],
    "ops": [ { "domains": ["*"] } ]
  }
}"#;
        let tail = "; dromaius still reaches only the domain of that name, but scripts or \
                    people passing the name to virsh reach another domain";
        let expected: Vec<(Option<usize>, String)> = vec![
            (
                None,
                "key \"bad name\": keyline cannot make a line for it: key name \"bad name\" \
                    holds a space, which cannot be put safely in a forced command (use letters, \
                    digits and . _ - + @)"
                    .into(),
            ),
            (
                None,
                "key \"bad name\" has no grants: every request with it is refused".into(),
            ),
            (
                None,
                format!("AllowedHosts: virsh reads the domain name \"7\" as the domain id 7{tail}"),
            ),
            (
                Some(6),
                "key \"alice\", grant #2 can never match: every domain and command it \
                       names is decided first by grant #1 (line 5)"
                    .into(),
            ),
            (
                Some(7),
                "key \"alice\", grant #3 is a duplicate of grant #1 (line 5)".into(),
            ),
            (
                Some(8),
                format!(
                    "key \"alice\", grant #4: virsh reads the domain name \"2\" as the domain id 2{tail}"
                ),
            ),
            (
                Some(8),
                format!(
                    "key \"alice\", grant #4: virsh reads the domain name \
                       \"6695eb01-f6a4-8304-79aa-97f2502e193f\" as a domain UUID{tail}"
                ),
            ),
        ];
        assert_eq!(messages(text), expected);
    }

    #[test]
    fn a_hypervisor_no_grant_acts_on_is_warned_about() {
        let text = r#"{"hypervisors": {"hv1": "test:///one", "hv2": "test:///two", "hv3": "test:///three"},
            "connect": "hv3",
            "keys": {"ops": [{"domains": ["a"], "connect": "hv1"}]}}"#;
        let found = messages(text);
        let unused: Vec<&String> = found
            .iter()
            .map(|(_, m)| m)
            .filter(|m| m.contains("no grant acts on it"))
            .collect();
        assert_eq!(unused.len(), 2, "{found:?}");
        assert!(unused.iter().any(|m| m.contains("\"hv2\"")));
        assert!(unused.iter().any(|m| m.contains("\"hv3\"")));
        let summary = summary(&config(text), "f.json");
        assert!(
            summary.contains("  hypervisor hv1: test:///one\n"),
            "{summary}"
        );
        assert!(summary.contains("connect test:///three"), "{summary}");
    }

    #[test]
    fn display_granted_on_a_remote_hypervisor_is_warned_about() {
        let text = r#"{"hypervisors": {"hv1": "qemu+ssh://hv1.example/system"},
            "groups": {"desk": ["a", "b"]},
            "keys": {
              "ops": [{"domains": ["w"], "commands": ["display"], "connect": ["qemu:///system", "hv1"]},
                      {"domains": ["x"], "commands": ["display"]},
                      {"domains": ["y"], "commands": ["screenshot"], "connect": "hv1"}],
              "@desk": [{"domains": ["z"], "commands": ["display", "status"], "connect": "hv1"}]
            }}"#;
        let found: Vec<String> = messages(text).into_iter().map(|(_, m)| m).collect();
        let remote: Vec<&String> = found
            .iter()
            .filter(|m| m.contains("grants display"))
            .collect();
        assert_eq!(remote.len(), 2, "{found:?}");
        assert!(
            remote[0].starts_with("key \"ops\", grant #1 grants display on hv1, not on this host"),
            "{found:?}"
        );
        assert!(
            remote[1].starts_with("group \"desk\" grants display on hv1"),
            "{found:?}"
        );
    }

    #[test]
    fn the_example_config_has_no_warnings_and_a_summary() {
        let example = include_str!("../../dromaius.json.example");
        let config = config(example);
        assert_eq!(warnings(&config), []);
        let text = summary(&config, "dromaius.json.example");
        assert_eq!(
            text,
            "dromaius.json.example: valid\n\
             \x20 virsh /usr/bin/virsh, connect qemu:///system, timeout 60 s, audit to /dev/log\n\
             \x20 2 keys, 3 grants; AllowedHosts: none\n\
             \x20 key alice\n\
             \x20   #1 line 8: alice-* -> start shutdown reboot console status\n\
             \x20   #2 line 9: shared-db -> status\n\
             \x20 key ops\n\
             \x20   #1 line 11: * -> start shutdown reboot reset destroy console status\n"
        );
    }
}
