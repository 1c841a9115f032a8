//! `dromaius.json`: what a config says, and the one way to get one — read all of it and
//! validate all of it, or refuse it.
//!
//! The loader is all-or-nothing: a config with an unknown field, a wrong type, an empty
//! `domains`, an unknown command, a bad pattern or a relative path is refused as a whole
//! with the file, line, column and reason, so that no request ever runs on a config that was
//! only partly understood. There is one reading, so the gateway and `check` give one
//! verdict. This file holds the model and the entry points; `read` turns text into a
//! [`Config`] section by section, and `fields` holds every value's rule. Getting the bytes
//! (bounded, after the trust check) is `system::files`'s job. Deciding what a config allows is
//! `policy`'s job, not this module's.

mod fields;
mod position;
mod read;
mod registry;

pub use read::Keep;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::action::ActionSet;
use crate::expiry::Expiry;

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
/// The longest `timeout_secs`: a week.
pub const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// A fully validated config.
#[derive(Debug, Clone)]
pub struct Config {
    pub virsh: PathBuf,
    /// The top-level `connect`: where a grant without its own looks its domains up.
    pub connect: Vec<HypervisorId>,
    pub timeout: Duration,
    pub syslog_socket: PathBuf,
    /// `idle_timeout_secs`: how long a prompt may wait for a line.
    pub idle_timeout: Option<Duration>,
    /// The files it was read from: the main one, then those of `dromaius.d`, in order.
    pub files: Vec<PathBuf>,
    /// `groups`, from every file, in file order.
    pub groups: Vec<Group>,
    /// Every hypervisor the kept grants and the top level name; grants point into it.
    pub hypervisors: Vec<Hypervisor>,
    /// Key name → its grants, in file order.
    pub keys: HashMap<String, Vec<Grant>>,
    /// go-dromaius: the domains a `-host` session may be bound to, with every action.
    pub allowed_hosts: Vec<String>,
}

/// One libvirt a grant's domains may live on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hypervisor {
    /// Its name in `hypervisors`; `None` for a URI a `connect` names directly.
    pub name: Option<String>,
    /// The URI virsh is given with `--connect`.
    pub uri: String,
}

impl Hypervisor {
    /// How the hypervisor is named to users and in records: its name, or its URI without
    /// user info, query or fragment (a `?keyfile=...` says where a key lives, which is
    /// nobody's business but the administrator's).
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => shown_uri(&self.uri),
        }
    }

    /// Whether it is on this host, where `127.0.0.1` means this machine: a URI with no host
    /// whose transport is none or `unix` (`qemu:///system`, `qemu+unix:///session?socket=`).
    /// `qemu+ssh:///system` or `qemu+ext:///system?command=...` may reach another machine.
    pub fn is_local(&self) -> bool {
        let Some((scheme, rest)) = self.uri.split_once("://") else {
            return false;
        };
        let transport = scheme.split_once('+').map(|(_, transport)| transport);
        rest.starts_with('/') && matches!(transport, None | Some("unix"))
    }
}

/// `scheme://user@host/path?query#fragment` as `scheme://host/path`.
fn shown_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.split(['?', '#']).next().unwrap_or_default().to_owned();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

/// Which of [`Config::hypervisors`] a grant means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HypervisorId(usize);

/// One entry of a key's list: these domains, these commands, on these hypervisors, until
/// then.
#[derive(Debug, Clone)]
pub struct Grant {
    pub domains: Vec<DomainPattern>,
    pub commands: ActionSet,
    /// The grant's own `connect`; `None` means the top-level one.
    pub connect: Option<Vec<HypervisorId>>,
    /// `expires`: from then on the grant matches nothing.
    pub expires: Option<Expiry>,
    /// The group whose `@GROUP` entry holds the grant, if it is not the key's own.
    pub group: Option<String>,
    /// Which of [`Config::files`] it is in, and the 1-based line of its opening brace.
    pub file: usize,
    pub line: usize,
}

/// A group of `groups`: its members, and where it is defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub members: Vec<String>,
    pub file: usize,
    pub line: usize,
}

/// An exact domain name, or a pattern as bash reads it (see `crate::pattern`). Matching
/// one is `policy`'s business.
#[derive(Debug, Clone)]
pub enum DomainPattern {
    /// A name written without any wildcard or escape.
    Exact(String),
    Glob(crate::pattern::Pattern),
}

impl DomainPattern {
    /// The pattern as the administrator wrote it.
    pub fn text(&self) -> &str {
        match self {
            DomainPattern::Exact(name) => name,
            DomainPattern::Glob(pattern) => pattern.as_str(),
        }
    }
}

impl Config {
    /// The hypervisors a grant's domains are looked up and acted on.
    pub fn hypervisors_of<'c>(&'c self, grant: &'c Grant) -> &'c [HypervisorId] {
        grant.connect.as_deref().unwrap_or(&self.connect)
    }

    pub fn hypervisor(&self, id: HypervisorId) -> &Hypervisor {
        &self.hypervisors[id.0]
    }

    /// Whether the config is a fleet: it names hypervisors, or more than one URI. Records
    /// then say which hypervisor a request acted on.
    pub fn is_fleet(&self) -> bool {
        self.hypervisors.len() > 1 || self.hypervisors.iter().any(|h| h.name.is_some())
    }

    /// The hypervisors `lists` name, each once, in the order first named.
    pub fn each_once<'l>(lists: impl IntoIterator<Item = &'l [HypervisorId]>) -> Vec<HypervisorId> {
        let mut ids: Vec<HypervisorId> = Vec::new();
        for id in lists.into_iter().flatten() {
            if !ids.contains(id) {
                ids.push(*id);
            }
        }
        ids
    }

    /// The hypervisor with this URI, if the config names it.
    pub fn hypervisor_id(&self, uri: &str) -> Option<HypervisorId> {
        self.hypervisors
            .iter()
            .position(|h| h.uri == uri)
            .map(HypervisorId)
    }

    /// `FILE:LINE` of a grant, for people.
    pub fn place_of(&self, grant: &Grant) -> String {
        let file = self.files.get(grant.file).map_or_else(
            || "?".to_owned(),
            |f| crate::escape::escape(&f.to_string_lossy()),
        );
        format!("{file}:{}", grant.line)
    }

    /// The URIs a grant acts through, for people: `explain` and `check`.
    pub fn uris_of(&self, grant: &Grant) -> Vec<&str> {
        self.hypervisors_of(grant)
            .iter()
            .map(|id| self.hypervisor(*id).uri.as_str())
            .collect()
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

impl ConfigError {
    /// A problem with the file as a whole (missing, unreadable, untrusted): no line.
    pub fn whole_file(file: &Path, reason: String) -> ConfigError {
        ConfigError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            reason,
        }
    }
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

/// The directory of drop-in files beside the config at `path`: `dromaius.d`.
pub fn drop_in_dir(path: &Path) -> PathBuf {
    path.parent().unwrap_or(Path::new(".")).join("dromaius.d")
}

/// Validates config text; `file` is only used in errors. Pure.
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    parse_all(text, file).map_err(first)
}

/// Like [`parse`], with every problem reported.
pub fn parse_all(text: &str, file: &Path) -> Result<Config, Vec<ConfigError>> {
    parse_files(&[(file.to_owned(), text.to_owned())])
}

/// [`parse_all`] of a main config and its drop-ins (path and text of each, main first).
pub fn parse_files(files: &[(PathBuf, String)]) -> Result<Config, Vec<ConfigError>> {
    read::read(files, Keep::Every)
}

/// [`parse_files`], building only the grants `keep` says.
pub fn parse_files_keeping(
    files: &[(PathBuf, String)],
    keep: Keep<'_>,
) -> Result<Config, Vec<ConfigError>> {
    read::read(files, keep)
}

/// [`parse`] keeping only `key`'s grants, as the gateway reads.
pub fn parse_for_key(text: &str, file: &Path, key: &str) -> Result<Config, ConfigError> {
    read::read(&[(file.to_owned(), text.to_owned())], Keep::Key(key)).map_err(first)
}

/// The first of a non-empty list of errors, in file order.
pub fn first(errors: Vec<ConfigError>) -> ConfigError {
    errors.into_iter().next().unwrap_or_else(|| ConfigError {
        file: PathBuf::new(),
        line: 0,
        column: 0,
        reason: "refused".into(),
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod label_tests {
    use super::*;

    #[test]
    fn labels_leave_out_user_info_and_query() {
        let cases = [
            ("qemu:///system", "qemu:///system"),
            (
                "qemu+ssh://dromaius@hv1.example/system?keyfile=/k",
                "qemu+ssh://hv1.example/system",
            ),
            ("qemu+ssh://u:pw@h:22/system", "qemu+ssh://h:22/system"),
            ("qemu+tls://hv2/system", "qemu+tls://hv2/system"),
            ("test:///default?x=a@b", "test:///default"),
            ("test+unix:///default?socket=/a@b", "test+unix:///default"),
            ("qemu+ssh://h/system#frag", "qemu+ssh://h/system"),
        ];
        for (uri, label) in cases {
            let hypervisor = Hypervisor {
                name: None,
                uri: uri.into(),
            };
            assert_eq!(hypervisor.label(), label, "{uri}");
        }
    }

    #[test]
    fn only_a_uri_without_host_or_transport_is_this_host() {
        let cases = [
            ("qemu:///system", true),
            ("qemu:///session", true),
            ("qemu+unix:///system", true),
            ("test+unix:///default?socket=/run/x", true),
            ("test:///default", true),
            ("qemu+ssh:///system", false),
            ("qemu+ext:///system?command=/usr/bin/remote", false),
            ("qemu+tcp:///system", false),
            ("qemu+tls:///system", false),
            ("qemu+ssh://hv1/system", false),
            ("qemu://hv1/system", false),
            ("qemu+unix://hv1/system", false),
            ("qemu", false),
        ];
        for (uri, local) in cases {
            let hypervisor = Hypervisor {
                name: None,
                uri: uri.into(),
            };
            assert_eq!(hypervisor.is_local(), local, "{uri}");
        }
    }
}
