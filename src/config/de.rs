//! The serde plumbing of the config: how each field is read and what it must hold.
//!
//! Written out by hand where a derive cannot do what the rules need: `keys` must be told
//! which key's grants to check in place (a derive cannot pass that down); strings stay
//! borrowed from the file where they have no escapes (checking the other keys' URIs and
//! names need not copy them); `domains`, `commands` and the top level go straight into their
//! final form. The rules are the derive's where a derive exists: no unknown field, no field
//! twice, an optional field left out but never `null` (`null` is the wrong type for every
//! field, so `"commands": null` cannot mean "none" or "all").

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{DomainPattern, MAX_TIMEOUT_SECS};
use crate::action::{Action, ActionSet};
use crate::expiry::Expiry;

impl DomainPattern {
    /// Validates `text` and builds the pattern.
    pub(super) fn parse(text: &str) -> Result<DomainPattern, String> {
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
    pub(super) fn check(text: &str) -> Result<(), String> {
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

/// The top level of the file.
pub(super) struct RawConfig<'a> {
    pub virsh: Option<AbsolutePath<'a>>,
    /// Read again on its own (see [`Connect`]) once its place in the file is known.
    pub connect: Option<&'a RawValue>,
    pub hypervisors: Option<HypervisorMap<'a>>,
    pub timeout_secs: Option<TimeoutSecs>,
    pub syslog_socket: Option<AbsolutePath<'a>>,
    pub idle_timeout_secs: Option<TimeoutSecs>,
    pub keys: Option<Keys<'a>>,
    pub groups: Option<Groups<'a>>,
    pub allowed_hosts: Option<Vec<HostName<'a>>>,
}

const FIELDS: &[&str] = &[
    "virsh",
    "connect",
    "hypervisors",
    "timeout_secs",
    "syslog_socket",
    "idle_timeout_secs",
    "keys",
    "groups",
    "AllowedHosts",
];

/// What a file of `dromaius.d` may hold.
const DROP_IN_FIELDS: &[&str] = &["keys", "groups"];

/// Reads [`RawConfig`]. Written out rather than derived because `keys` must be told which
/// key's grants to check in place (a derive cannot pass that down); the rules are the
/// derive's: no unknown field, no field twice, an optional field left out but never `null`
/// (`null` is the wrong type for every field).
pub(super) struct ConfigSeed<'k> {
    /// The kept key of a [`Reading::InPlace`]: every other key's grants are checked in place.
    pub in_place: Option<&'k str>,
    /// A file of `dromaius.d`: it holds only `keys` and `groups`.
    pub drop_in: bool,
    /// The key names seen so far in every file read, as hashes (see [`KeysSeed`]).
    pub seen: &'k mut SeenNames,
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
            hypervisors: None,
            timeout_secs: None,
            syslog_socket: None,
            idle_timeout_secs: None,
            keys: None,
            groups: None,
            allowed_hosts: None,
        };
        let seen = self.seen;
        while let Some(Text(field)) = map.next_key()? {
            if self.drop_in && !DROP_IN_FIELDS.contains(&&*field) {
                return Err(de::Error::custom(format!(
                    "a file of dromaius.d holds only `keys` and `groups`, not `{field}` (it \
                     belongs in the main config)"
                )));
            }
            match &*field {
                "virsh" => {
                    unset(&raw.virsh, "virsh")?;
                    raw.virsh = Some(map.next_value()?);
                }
                "connect" => {
                    unset(&raw.connect, "connect")?;
                    let value: &'de RawValue = map.next_value()?;
                    // Its rules now, where the error points at it; names are resolved later.
                    serde_json::from_str::<Connect<'_>>(value.get()).map_err(de::Error::custom)?;
                    raw.connect = Some(value);
                }
                "hypervisors" => {
                    unset(&raw.hypervisors, "hypervisors")?;
                    raw.hypervisors = Some(map.next_value()?);
                }
                "timeout_secs" => {
                    unset(&raw.timeout_secs, "timeout_secs")?;
                    raw.timeout_secs = Some(map.next_value()?);
                }
                "syslog_socket" => {
                    unset(&raw.syslog_socket, "syslog_socket")?;
                    raw.syslog_socket = Some(map.next_value()?);
                }
                "idle_timeout_secs" => {
                    unset(&raw.idle_timeout_secs, "idle_timeout_secs")?;
                    raw.idle_timeout_secs = Some(map.next_value()?);
                }
                "keys" => {
                    unset(&raw.keys, "keys")?;
                    raw.keys = Some(map.next_value_seed(KeysSeed {
                        in_place: self.in_place,
                        seen: &mut *seen,
                    })?);
                }
                "groups" => {
                    unset(&raw.groups, "groups")?;
                    raw.groups = Some(map.next_value()?);
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
pub(super) struct GrantFields<'a, P> {
    pub domains: P,
    #[serde(default, deserialize_with = "present")]
    pub commands: Option<Commands>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub connect: Option<Connect<'a>>,
    #[serde(default, deserialize_with = "present")]
    pub expires: Option<Expires>,
}

/// `expires`: see `crate::expiry`.
pub(super) struct Expires(pub Expiry);

impl<'de> Deserialize<'de> for Expires {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Text(text) = Text::deserialize(deserializer)?;
        Expiry::parse(&text).map(Expires).map_err(de::Error::custom)
    }
}

/// A grant the config keeps.
pub(super) type RawGrant<'a> = GrantFields<'a, Patterns>;

/// Another key's grant, in the gateway: accepted exactly when [`RawGrant`] would accept it,
/// but no pattern is compiled. Compiling the 20,000 grants of a big config, only to free
/// them, was most of what loading it cost.
pub(super) type CheckedGrant<'a> = GrantFields<'a, CheckedPatterns>;

/// An optional field may be left out, but not set to `null`: `"commands": null` could be
/// read as "no commands" or as "all of them", so it is refused as the wrong type.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `keys`: each key's grants as they are written, to be read one by one, except those of
/// the keys that were checked in place. A key named twice is refused: JSON parsers differ on
/// which one wins, so a config that names a key twice does not say what it means.
#[derive(Default)]
pub(super) struct Keys<'a> {
    /// Each kept entry's name and its list of grants as written (its place in the file is
    /// the entry's place in file order).
    pub entries: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// The hypervisor names the grants checked in place refer to, each once: whether each
    /// is defined can only be known once the whole file is read.
    pub referenced: BTreeSet<Cow<'a, str>>,
}

struct KeysSeed<'k> {
    /// Every key but this one and the `@GROUP` entries is checked in place and left out of
    /// [`Keys`].
    in_place: Option<&'k str>,
    seen: &'k mut SeenNames,
}

/// Key names seen so far, across every file of a config, as 64-bit hashes: 8 bytes a key.
/// One hash twice is one name written twice, or (about once in 2^64) two names; the
/// reading that keeps every name tells which.
pub(super) type SeenNames = HashSet<u64, BuildHasherDefault<Fnv1a>>;

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
        // In one file a name twice is refused here; across files, where each entry is, is
        // for the reading that keeps every name to say. The one-pass reading keeps few names,
        // so on a repeated hash it gives up and that reading decides.
        let mut keys: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
        let mut referenced = BTreeSet::new();
        while let Some(Text(name)) = map.next_key()? {
            if name.is_empty() {
                return Err(de::Error::custom("a key name must not be empty"));
            }
            if name == "@" {
                return Err(de::Error::custom(
                    "an entry for a group is `@` followed by the group's name",
                ));
            }
            let mut hash = Fnv1a::default();
            hash.write(name.as_bytes());
            if !self.seen.insert(hash.finish())
                && (self.in_place.is_some() || keys.iter().any(|(kept, _)| *kept == name))
            {
                return Err(de::Error::custom(format!("key {name:?} is named twice")));
            }
            if self
                .in_place
                .is_some_and(|kept| kept != name && !name.starts_with('@'))
            {
                referenced.extend(map.next_value::<CheckedGrants>()?.0);
            } else {
                keys.push((name, map.next_value()?));
            }
        }
        Ok(Keys {
            entries: keys,
            referenced,
        })
    }
}

/// The FNV-1a hash, of the key names seen so far and of those hashes in their set. Names
/// come from the administrator's files, which are trusted: there is no flood of colliding
/// names to fear, and it costs a tenth of the standard SipHash.
pub(super) struct Fnv1a(u64);

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

/// A key's grants checked in place by the rules of [`RawGrant`], keeping only the
/// hypervisor names they refer to.
struct CheckedGrants<'a>(BTreeSet<Cow<'a, str>>);

impl<'de> Deserialize<'de> for CheckedGrants<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GrantsVisitor;
        impl<'de> Visitor<'de> for GrantsVisitor {
            type Value = CheckedGrants<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of grants")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut names = BTreeSet::new();
                while let Some(CheckedObject(connect)) = seq.next_element()? {
                    names.extend(connect.into_iter().flat_map(Connect::into_names));
                }
                Ok(CheckedGrants(names))
            }
        }
        deserializer.deserialize_seq(GrantsVisitor)
    }
}

/// One grant of [`CheckedGrants`], which must be a JSON object: serde's derive would also
/// take a struct written as an array, which a grant read on its own is refused for.
struct CheckedObject<'a>(Option<Connect<'a>>);

impl<'de> Deserialize<'de> for CheckedObject<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = CheckedObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a grant object")
            }
            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                let grant = CheckedGrant::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(CheckedObject(grant.connect))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// `groups`: group name → its members, each entry with its list as written (for its place
/// in the file). A group named twice in one file is refused here.
pub(super) struct Groups<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Groups<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GroupsVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for GroupsVisitor<'a> {
            type Value = Groups<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of group names to lists of key names")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut groups: Vec<(Cow<'a, str>, &'a RawValue)> = Vec::new();
                while let Some(Text(name)) = map.next_key()? {
                    check_group_name(&name).map_err(de::Error::custom)?;
                    if groups.iter().any(|(seen, _)| *seen == name) {
                        return Err(de::Error::custom(format!("group {name:?} is named twice")));
                    }
                    let members: &'de RawValue = map.next_value()?;
                    serde_json::from_str::<Members>(members.get()).map_err(de::Error::custom)?;
                    groups.push((name, members));
                }
                Ok(Groups(groups))
            }
        }
        deserializer.deserialize_map(GroupsVisitor(std::marker::PhantomData))
    }
}

/// A group's name: letters, digits, `.`, `_`, `-`, `+` (its entry in `keys` is `@NAME`).
fn check_group_name(name: &str) -> Result<(), String> {
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

/// A group's members: key names, each once (a name need not be a key elsewhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Members(pub Vec<String>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of key names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Members, A::Error> {
                let mut members: Vec<String> = Vec::new();
                while let Some(Text(name)) = seq.next_element()? {
                    if name.is_empty()
                        || name.chars().any(char::is_control)
                        || name.starts_with('@')
                    {
                        return Err(de::Error::custom(format!(
                            "{name:?} is not a key name (not empty, no control characters, \
                             not starting with `@`: groups do not nest)"
                        )));
                    }
                    if members.iter().any(|m| *m == name) {
                        return Err(de::Error::custom(format!("the group lists {name:?} twice")));
                    }
                    members.push(name.into_owned());
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_seq(MembersVisitor)
    }
}

/// `connect`: where a grant's domains live. One hypervisor or a non-empty list of them,
/// each a libvirt URI (it has a scheme: `qemu:///system`) or a name from `hypervisors`
/// (no `:`). Whether a name is defined is known only once the whole config is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Connect<'a>(pub Vec<Cow<'a, str>>);

impl<'a> Connect<'a> {
    /// The hypervisor names among the entries (not the URIs).
    pub fn into_names(self) -> impl Iterator<Item = Cow<'a, str>> {
        self.0.into_iter().filter(|entry| !is_uri(entry))
    }
}

/// Whether a `connect` entry is a URI (it has a scheme) rather than a hypervisor name.
pub(super) fn is_uri(entry: &str) -> bool {
    entry.contains(':')
}

impl<'de: 'a, 'a> Deserialize<'de> for Connect<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ConnectVisitor<'a>(std::marker::PhantomData<&'a ()>);
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
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Connect(vec![entry(Cow::Borrowed(text))?]))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Connect(vec![entry(Cow::Owned(text.to_owned()))?]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
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
        deserializer.deserialize_any(ConnectVisitor(std::marker::PhantomData))
    }
}

/// A name in `hypervisors`: letters, digits, `.`, `_`, `-`.
fn check_hypervisor_name(name: &str) -> Result<(), String> {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if plain {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is neither a libvirt URI (like \"qemu:///system\") nor a hypervisor \
             name (letters, digits, `.`, `_`, `-`)"
        ))
    }
}

/// `hypervisors`: name → URI, in file order; a name written twice is refused.
pub(super) struct HypervisorMap<'a>(pub Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'de: 'a, 'a> Deserialize<'de> for HypervisorMap<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for MapVisitor<'a> {
            type Value = HypervisorMap<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of hypervisor names to libvirt URIs")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut entries: Vec<(Cow<'a, str>, Cow<'a, str>)> = Vec::new();
                while let Some(Text(name)) = map.next_key()? {
                    if is_uri(&name) {
                        return Err(de::Error::custom(format!(
                            "hypervisor name {name:?} holds a `:`: names are letters, digits, \
                             `.`, `_`, `-`"
                        )));
                    }
                    check_hypervisor_name(&name).map_err(de::Error::custom)?;
                    if entries.iter().any(|(seen, _)| *seen == name) {
                        return Err(de::Error::custom(format!(
                            "hypervisor {name:?} is named twice"
                        )));
                    }
                    let Uri(uri) = map.next_value()?;
                    if let Some((other, _)) = entries.iter().find(|(_, seen)| *seen == uri) {
                        return Err(de::Error::custom(format!(
                            "hypervisors {other:?} and {name:?} have the same URI: one \
                             hypervisor, two names"
                        )));
                    }
                    entries.push((name, uri));
                }
                Ok(HypervisorMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor(std::marker::PhantomData))
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
        pub(super) struct $name<'a>(pub Cow<'a, str>);
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

validated_string!(Uri, check_uri);

/// A libvirt URI dromaius will hand virsh with `--connect`.
fn check_uri(text: &str) -> Result<(), String> {
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
}

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

validated_string!(HostName, |text| {
    if text.is_empty() || text.chars().any(char::is_control) {
        return Err(format!("{text:?} is not a domain name"));
    }
    Ok(())
});

/// `timeout_secs` and `idle_timeout_secs`.
pub(super) struct TimeoutSecs(pub u64);

impl<'de> Deserialize<'de> for TimeoutSecs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let secs = u64::deserialize(deserializer)?;
        if secs == 0 || secs > MAX_TIMEOUT_SECS {
            return Err(de::Error::custom(format!(
                "a timeout must be between 1 and {MAX_TIMEOUT_SECS} seconds"
            )));
        }
        Ok(TimeoutSecs(secs))
    }
}

pub(super) struct Patterns(pub Vec<DomainPattern>);

impl<'de> Deserialize<'de> for Patterns {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_seq(PatternsVisitor { keep: true })
            .map(Patterns)
    }
}

/// `domains` checked by the rules of [`Patterns`], keeping nothing.
pub(super) struct CheckedPatterns;

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

pub(super) struct Commands(pub ActionSet);

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
                        "`commands` must not be empty; leave it out to allow the seven original commands",
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
        }
    }
}
