//! Whether the config file may be trusted at all: sshd's `StrictModes`, for `dromaius.json`.
//!
//! A config that someone else can rewrite is a config that grants them anything, so the
//! loader refuses it (78) before reading a byte of it. The decision ([`judge`]) is pure, over
//! facts about each path component; `system::files` collects those facts with
//! `lstat`/`stat`. What the config *says* is `config`'s business, not this module's.
//!
//! The rule, for the file and every directory above it (both as the path is written and
//! after symlinks are resolved):
//! - it is owned by root. Not by the account running dromaius: in whole-account mode
//!   (`ForceCommand`) that account *is* the constrained user, and a config it owns — such
//!   as go-dromaius's `./dromaius.json` in its own home — is one it can rewrite to grant
//!   itself any domain;
//! - the file is not writable by group or others;
//! - a directory is not writable by group or others, unless it has the sticky bit (`/tmp`):
//!   there only an entry's owner, the directory's owner or root may rename or remove an
//!   entry, and every entry on the way down is itself checked;
//! - a symlink on the way is owned by root (its target is checked as well, through the
//!   resolved path).

use std::fmt;
use std::path::PathBuf;

/// What `lstat` or `fstat` says about a file, as far as the rules need (this one, and
/// `sshkey::auth_info`'s for sshd's `SSH_USER_AUTH` file). `system::files` reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFacts {
    pub kind: FileKind,
    pub dev: u64,
    pub ino: u64,
    pub uid: u32,
    /// Permission bits and set-id/sticky bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub nlink: u64,
    pub size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Symlink,
    Directory,
    /// FIFO, socket, device.
    Other,
}

/// The facts [`judge`] needs about one path component: where it is, what `lstat` (or `stat`,
/// along the resolved path) says of it, and whether it is the last component, the file
/// itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    pub facts: FileFacts,
    pub last: bool,
}

const GROUP_OR_OTHER_WRITE: u32 = 0o022;
const STICKY: u32 = 0o1000;

/// Why a config file cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted(pub String);

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decides whether every component is safe to take a config from. Pure.
pub fn judge(entries: &[Entry]) -> Result<(), Untrusted> {
    for entry in entries {
        let shown = crate::escape::escape(&entry.path.to_string_lossy());
        let facts = &entry.facts;
        let what = match facts.kind {
            FileKind::Regular if entry.last => "the config file",
            FileKind::Directory => "directory",
            FileKind::Symlink => "symlink",
            FileKind::Regular | FileKind::Other => "path component",
        };
        if facts.uid != 0 {
            return Err(Untrusted(format!(
                "{what} {shown} is owned by uid {}, not by root; refused, as sshd's \
                 StrictModes would refuse it: whoever owns it could grant any key any \
                 domain (a go-dromaius dromaius.json in the account's home belongs in \
                 /etc/dromaius, owned by root)",
                facts.uid
            )));
        }
        let writable = facts.mode & GROUP_OR_OTHER_WRITE != 0;
        let refused = match facts.kind {
            FileKind::Regular | FileKind::Other => writable,
            FileKind::Directory => writable && facts.mode & STICKY == 0,
            // A symlink's own mode means nothing; its target is checked on its own.
            FileKind::Symlink => false,
        };
        if refused {
            return Err(Untrusted(format!(
                "{what} {shown} is writable by group or others (mode {:04o}); refused, as \
                 sshd's StrictModes would",
                facts.mode
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a test calls a component, and the facts the judge reads from it.
    #[derive(Clone, Copy)]
    enum Kind {
        File,
        Directory,
        Symlink,
        Other,
    }

    fn e(path: &str, kind: Kind, uid: u32, mode: u32) -> Entry {
        let (kind, last) = match kind {
            Kind::File => (FileKind::Regular, true),
            Kind::Directory => (FileKind::Directory, false),
            Kind::Symlink => (FileKind::Symlink, false),
            Kind::Other => (FileKind::Other, false),
        };
        Entry {
            path: PathBuf::from(path),
            facts: FileFacts {
                kind,
                dev: 0,
                ino: 0,
                uid,
                mode,
                nlink: 1,
                size: 0,
            },
            last,
        }
    }

    /// The account running dromaius: owning a config is no reason to trust it.
    const ME: u32 = 1000;

    #[test]
    fn decision_table() {
        use Kind::*;
        // (entries, allowed?, a fragment of the refusal)
        let cases: Vec<(Vec<Entry>, Option<&str>)> = vec![
            (vec![e("/etc/d.json", File, 0, 0o644)], None),
            (vec![e("/etc/d.json", File, 0, 0o600)], None),
            (vec![e("/etc/d.json", File, 0, 0o400)], None),
            (
                vec![e("/etc/d.json", File, ME, 0o644)],
                Some("owned by uid 1000, not by root"),
            ),
            (
                vec![e("/etc/d.json", File, 0, 0o664)],
                Some("writable by group"),
            ),
            (vec![e("/etc/d.json", File, 0, 0o646)], Some("mode 0646")),
            (vec![e("/etc/d.json", File, 0, 0o666)], Some("writable")),
            (vec![e("/etc/d.json", File, 0, 0o1666)], Some("writable")),
            (
                vec![e("/etc/d.json", File, 33, 0o644)],
                Some("owned by uid 33"),
            ),
            (
                vec![e("/etc/d.json", File, 33, 0o600)],
                Some("could grant any key any domain"),
            ),
            (vec![e("/etc", Directory, 0, 0o755)], None),
            (
                vec![e("/home/dromaius", Directory, ME, 0o700)],
                Some("directory /home/dromaius is owned by uid 1000"),
            ),
            (
                vec![e("/etc", Directory, 0, 0o775)],
                Some("directory /etc is writable"),
            ),
            (vec![e("/etc", Directory, 0, 0o757)], Some("writable")),
            (vec![e("/etc", Directory, 0, 0o777)], Some("writable")),
            (
                vec![e("/home/x", Directory, 1001, 0o755)],
                Some("owned by uid 1001"),
            ),
            // Sticky and root's (/tmp): only owners may rename what is in it.
            (vec![e("/tmp", Directory, 0, 0o1777)], None),
            (
                vec![e("/tmp", Directory, ME, 0o1777)],
                Some("owned by uid 1000"),
            ),
            (
                vec![e("/tmp", Directory, 1001, 0o1777)],
                Some("owned by uid 1001"),
            ),
            (vec![e("/l", Symlink, 0, 0o777)], None),
            (vec![e("/l", Symlink, ME, 0o777)], Some("owned by uid 1000")),
            (
                vec![e("/l", Symlink, 1001, 0o777)],
                Some("symlink /l is owned by uid 1001"),
            ),
            (vec![e("/x", Other, 0, 0o666)], Some("writable")),
            // The first bad component is named, wherever it is.
            (
                vec![
                    e("/srv/d/c.json", File, 0, 0o644),
                    e("/srv/d", Directory, 0, 0o777),
                    e("/srv", Directory, 0, 0o755),
                    e("/", Directory, 0, 0o755),
                ],
                Some("directory /srv/d is writable"),
            ),
            (
                vec![
                    e("/srv/d/c.json", File, 0, 0o644),
                    e("/srv/d", Directory, 0, 0o755),
                    e("/srv", Directory, 0, 0o755),
                    e("/", Directory, 1001, 0o755),
                ],
                Some("directory / is owned"),
            ),
            // A name that would repaint a terminal is shown escaped.
            (
                vec![e("/tmp/\u{1b}[2J", Directory, 0, 0o777)],
                Some("/tmp/\\x1b[2J"),
            ),
        ];
        for (entries, refused) in cases {
            let verdict = judge(&entries);
            match refused {
                None => assert_eq!(verdict, Ok(()), "{entries:?}"),
                Some(fragment) => {
                    let Err(Untrusted(why)) = verdict else {
                        panic!("accepted: {entries:?}")
                    };
                    assert!(why.contains(fragment), "{why} lacks {fragment}");
                }
            }
        }
    }
}
