//! The rule of each value in a config file, one type per kind of value.
//!
//! Each type reads one JSON value and refuses it with a reason when it breaks its rule:
//! serde's derive (`try_from`) wherever it can say the rule, a visitor by hand only where it
//! cannot (`connect` is one entry or a list; maps keep their order and refuse a name written
//! twice). Where in the file a value is, and what a value means next to the others (does a
//! hypervisor name exist, is a key defined twice across files), is `read`'s business.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{DomainPattern, MAX_TIMEOUT_SECS};
use crate::action::{Action, ActionSet};
use crate::expiry::Expiry;
use crate::pattern::Pattern;

/// The top level of a file, each section kept as written so that each is read on its own
/// (a mistake in one section does not hide a mistake in another). Unknown fields and a
/// field written twice are refused here. `K` is how `keys` is read: as written (`&RawValue`),
/// or straight into its entries and their grants ([`Entries`] of lists of grants), which
/// spares a big config a pass over its biggest section when every entry is a list.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, bound(deserialize = "K: Deserialize<'de>"))]
pub(super) struct Sections<'a, K> {
    #[serde(borrow, default, deserialize_with = "present")]
    pub virsh: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub connect: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub hypervisors: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub timeout_secs: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub syslog_socket: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub idle_timeout_secs: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "present")]
    pub keys: Option<K>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub groups: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present", rename = "AllowedHosts")]
    pub allowed_hosts: Option<&'a RawValue>,
}

impl<'a, K> Sections<'a, K> {
    /// The same sections with `keys` as given.
    pub fn with_keys<L>(self, keys: Option<L>) -> Sections<'a, L> {
        Sections {
            virsh: self.virsh,
            connect: self.connect,
            hypervisors: self.hypervisors,
            timeout_secs: self.timeout_secs,
            syslog_socket: self.syslog_socket,
            idle_timeout_secs: self.idle_timeout_secs,
            keys,
            groups: self.groups,
            allowed_hosts: self.allowed_hosts,
        }
    }
}

/// An optional field may be left out, but not set to `null`: `"commands": null` could be
/// read as "no commands" or as "all of them", so `null` is the wrong type for every field.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// One grant: these domains, these commands, on these hypervisors, until then. Its
/// strings stay borrowed from the file: a grant the reading does not keep is checked by the
/// same rules without being built.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGrant<'a> {
    #[serde(borrow)]
    pub domains: Vec<Text<'a>>,
    #[serde(default, deserialize_with = "present")]
    pub commands: Option<Vec<Action>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub connect: Option<Connect<'a>>,
    #[serde(default, deserialize_with = "present")]
    pub expires: Option<ExpiresField>,
}

impl RawGrant<'_> {
    /// The commands it names; a grant without `commands` has the seven original ones.
    pub fn commands(&self) -> Result<ActionSet, &'static str> {
        match &self.commands {
            None => Ok(ActionSet::DEFAULT),
            Some(list) if list.is_empty() => Err(
                "`commands` must not be empty; leave it out to allow the seven original commands",
            ),
            Some(list) => Ok(list.iter().copied().collect()),
        }
    }
}

/// Checks a string of `domains` (an exact name or a pattern, see `crate::pattern`) and,
/// when `build`, builds it.
pub(super) fn domain_pattern(text: &str, build: bool) -> Result<Option<DomainPattern>, String> {
    if text.is_empty() {
        return Err("a domain name or pattern must not be empty".into());
    }
    if text.chars().any(char::is_control) {
        return Err(format!("domain pattern {text:?} holds a control character"));
    }
    let refused =
        |refused: crate::pattern::Refused| format!("domain pattern {text:?} is refused: {refused}");
    if !text.contains(['*', '?', '[', '\\', '(']) {
        return Ok(build.then(|| DomainPattern::Exact(text.to_owned())));
    }
    if !build {
        return Pattern::check(text).map(|()| None).map_err(refused);
    }
    let pattern = Pattern::new(text).map_err(refused)?;
    Ok(Some(match pattern.literal() {
        Some(name) if name == text => DomainPattern::Exact(name),
        _ => DomainPattern::Glob(pattern),
    }))
}

/// `expires`: see `crate::expiry`.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct ExpiresField(pub Expiry);

impl TryFrom<String> for ExpiresField {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Expiry::parse(&text).map(ExpiresField)
    }
}

/// `virsh` and `syslog_socket`.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct AbsolutePath(pub PathBuf);

impl TryFrom<String> for AbsolutePath {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("{text:?} must be an absolute path"));
        }
        if text.contains('\0') {
            return Err("a path must not hold a NUL byte".into());
        }
        Ok(AbsolutePath(PathBuf::from(text)))
    }
}

/// `timeout_secs` and `idle_timeout_secs`.
#[derive(Deserialize)]
#[serde(try_from = "u64")]
pub(super) struct Timeout(pub Duration);

impl TryFrom<u64> for Timeout {
    type Error = String;

    fn try_from(secs: u64) -> Result<Self, String> {
        if secs == 0 || secs > MAX_TIMEOUT_SECS {
            return Err(format!(
                "a timeout must be between 1 and {MAX_TIMEOUT_SECS} seconds"
            ));
        }
        Ok(Timeout(Duration::from_secs(secs)))
    }
}

/// A domain of go-dromaius's `AllowedHosts`.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct HostName(pub String);

impl TryFrom<String> for HostName {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if text.is_empty() || text.chars().any(char::is_control) {
            return Err(format!("{text:?} is not a domain name"));
        }
        Ok(HostName(text))
    }
}

/// A libvirt URI in `hypervisors`.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Uri(pub String);

impl TryFrom<String> for Uri {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        check_uri(&text)?;
        Ok(Uri(text))
    }
}

/// A key named in a group.
#[derive(Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub(super) struct MemberName(pub String);

impl TryFrom<String> for MemberName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        if name.is_empty() || name.chars().any(char::is_control) || name.starts_with('@') {
            return Err(format!(
                "{name:?} is not a key name (not empty, no control characters, not starting \
                 with `@`: groups do not nest)"
            ));
        }
        Ok(MemberName(name))
    }
}

/// Whether a `connect` entry is a URI (it has a scheme) rather than a hypervisor name.
pub(super) fn is_uri(entry: &str) -> bool {
    entry.contains(':')
}

/// A libvirt URI dromaius will hand virsh with `--connect`.
pub(super) fn check_uri(text: &str) -> Result<(), String> {
    // A string without a scheme would be looked up as a URI alias in libvirt.conf; only a
    // full URI says for sure which libvirt we talk to.
    let scheme_ok = text.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    // Printable ASCII is clean; anything else is asked character by character.
    let clean = text.bytes().all(|b| b.is_ascii_graphic())
        || !text.chars().any(|c| c.is_control() || c.is_whitespace());
    if !scheme_ok || !clean {
        return Err(format!(
            "{text:?} is not a libvirt URI (like \"qemu:///system\")"
        ));
    }
    Ok(())
}

/// A name in `hypervisors`: letters, digits, `.`, `_`, `-`.
pub(super) fn check_hypervisor_name(name: &str) -> Result<(), String> {
    if is_uri(name) {
        return Err(format!(
            "hypervisor name {name:?} holds a `:`: names are letters, digits, `.`, `_`, `-`"
        ));
    }
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(format!(
            "{name:?} is neither a libvirt URI (like \"qemu:///system\") nor a hypervisor \
             name (letters, digits, `.`, `_`, `-`)"
        ));
    }
    Ok(())
}

/// A group's name: letters, digits, `.`, `_`, `-`, `+` (its entry in `keys` is `@NAME`).
pub(super) fn check_group_name(name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'));
    if plain {
        Ok(())
    } else {
        Err(format!(
            "group name {name:?} is not letters, digits, `.`, `_`, `-`, `+`"
        ))
    }
}

/// An entry of `keys`: a key name, or `@GROUP`.
pub(super) fn check_key_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a key name must not be empty".into());
    }
    if name == "@" {
        return Err("an entry for a group is `@` followed by the group's name".into());
    }
    Ok(())
}

/// `connect`: where a grant's domains live. One hypervisor or a non-empty list of them,
/// each a libvirt URI (it has a scheme: `qemu:///system`) or a name from `hypervisors`
/// (no `:`), each once. Whether a name is defined is known only once the whole config is
/// read. By hand: a derive cannot read "one entry or a list" with errors that say which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Connect<'a>(pub Vec<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Connect<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ConnectVisitor<'a>(PhantomData<&'a ()>);
        fn entry<E: de::Error>(text: Cow<'_, str>) -> Result<Cow<'_, str>, E> {
            if is_uri(&text) {
                check_uri(&text).map_err(E::custom)?;
            } else {
                check_hypervisor_name(&text).map_err(E::custom)?;
            }
            Ok(text)
        }
        impl<'de: 'a, 'a> Visitor<'de> for ConnectVisitor<'a> {
            type Value = Connect<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a libvirt URI, a hypervisor name, or a list of them")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Connect<'a>, E> {
                Ok(Connect(vec![entry(Cow::Borrowed(text))?]))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Connect<'a>, E> {
                Ok(Connect(vec![entry(Cow::Owned(text.to_owned()))?]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Connect<'a>, A::Error> {
                let mut entries: Vec<Cow<'a, str>> = Vec::new();
                while let Some(Text(text)) = seq.next_element()? {
                    let text = entry(text)?;
                    if entries.contains(&text) {
                        return Err(de::Error::custom(format!("`connect` names {text:?} twice")));
                    }
                    entries.push(text);
                }
                if entries.is_empty() {
                    return Err(de::Error::custom(
                        "`connect` must name at least one hypervisor",
                    ));
                }
                Ok(Connect(entries))
            }
        }
        deserializer.deserialize_any(ConnectVisitor(PhantomData))
    }
}

/// A JSON object read in file order, every entry kept, each value read as a `V`: `keys`,
/// `groups`, `hypervisors`. serde's maps would keep only one of two equal names (which one
/// differs between JSON parsers); `read` refuses a name written twice, saying what it names.
pub(super) struct Entries<'a, V>(pub Vec<(Cow<'a, str>, V)>);

impl<'de: 'a, 'a, V: Deserialize<'de>> Deserialize<'de> for Entries<'a, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<'a, V>(PhantomData<(&'a (), V)>);
        impl<'de: 'a, 'a, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<'a, V> {
            type Value = Entries<'a, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Entries<'a, V>, M::Error> {
                let mut entries = Vec::new();
                while let Some(Text(name)) = map.next_key()? {
                    entries.push((name, map.next_value()?));
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}

/// A string from the file, borrowed unless it is written with an escape: the 10,000 names
/// and 20,000 patterns of a big config need not each be copied to be checked. (serde reads a
/// `Cow` as an owned string except as a struct's own field, so this says it by hand.)
pub(super) struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'a>(PhantomData<&'a ()>);
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
        deserializer.deserialize_str(TextVisitor(PhantomData))
    }
}
