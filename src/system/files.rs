//! Getting a config's bytes: a regular file, trusted (see `trust`) before a byte of it is
//! read, at most [`MAX_CONFIG_BYTES`] of it, and UTF-8; then the same for every file of
//! `dromaius.d` beside it, and for the directory itself.
//!
//! [`read_bounded`] is the one bounded read of the program; the administrator's subcommands
//! read `authorized_keys` and public keys with it too.

use std::ffi::OsStr;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

use crate::config::{self, Config, ConfigError, Keep, MAX_CONFIG_BYTES, drop_in_dir};
use crate::escape::escape_truncated;
use crate::sshkey::auth_info::{self, Identity};
use crate::trust;
use crate::trust::{FileFacts, FileKind};

/// The most all the files of one config may hold together.
const MAX_TOTAL_BYTES: u64 = 4 * MAX_CONFIG_BYTES;

/// The config file the gateway serves one key from, read again whole each time.
pub struct ConfigFile {
    path: PathBuf,
    key: String,
}

impl ConfigFile {
    pub fn new(path: &Path, key: &str) -> ConfigFile {
        ConfigFile {
            path: path.to_owned(),
            key: key.to_owned(),
        }
    }
}

impl crate::gateway::ConfigSource for ConfigFile {
    fn load(&self) -> Result<Config, ConfigError> {
        load_for_key(&self.path, &self.key)
    }
}

/// Reads and validates the config at `path` and its drop-ins; refused with the first
/// problem in file order. Refused unread if others could rewrite it (see `trust`), and
/// bounded (see [`MAX_CONFIG_BYTES`]).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_all(path).map_err(config::first)
}

/// Like [`load`], but refused with every problem (`check` shows them all). A file that is
/// not JSON stops at its first error; the other files and sections are still read.
pub fn load_all(path: &Path) -> Result<Config, Vec<ConfigError>> {
    let texts = read_config_and_drop_ins(path).map_err(|error| vec![error])?;
    config::parse_files(&texts)
}

/// The gateway's [`load`]: the same reading, the same verdict, but only `key`'s grants are
/// built (every other grant is checked all the same).
pub fn load_for_key(path: &Path, key: &str) -> Result<Config, ConfigError> {
    let texts = read_config_and_drop_ins(path)?;
    config::parse_files_keeping(&texts, Keep::Key(key)).map_err(config::first)
}

/// The config at `path` and every file of `dromaius.d` beside it: each `*.json` whose name
/// does not start with `.`, in byte order of their names. No `dromaius.d` is no drop-ins;
/// one that cannot be trusted or read refuses everything, as the config itself would.
pub fn read_config_and_drop_ins(path: &Path) -> Result<Vec<(PathBuf, String)>, ConfigError> {
    let main = read_config(path)?;
    let mut total = main.len() as u64;
    let mut files = vec![(path.to_owned(), main)];
    let dir = drop_in_dir(path);
    let refused = |reason: String| ConfigError::whole_file(&dir, reason);
    match std::fs::symlink_metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(refused(format!("cannot read: {e}"))),
        Ok(_) => {}
    }
    let handle = std::fs::File::open(&dir).map_err(|e| refused(format!("cannot open: {e}")))?;
    let is_dir = handle.metadata().map(|m| m.is_dir()).unwrap_or(false);
    if !is_dir {
        return Err(refused("not a directory".into()));
    }
    check_trusted(&dir, &handle).map_err(|e| refused(e.to_string()))?;
    let mut names: Vec<Vec<u8>> = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| refused(format!("cannot list: {e}")))? {
        let entry = entry.map_err(|e| refused(format!("cannot list: {e}")))?;
        let name = entry.file_name().as_bytes().to_vec();
        if name.ends_with(b".json") && !name.starts_with(b".") {
            names.push(name);
        }
    }
    names.sort();
    for name in names {
        let file = dir.join(std::ffi::OsStr::from_bytes(&name));
        let text = read_drop_in(&file)?;
        total += text.len() as u64;
        if total > MAX_TOTAL_BYTES {
            return Err(ConfigError::whole_file(
                &file,
                format!(
                    "the config and dromaius.d hold more than {} MiB together; refused",
                    MAX_TOTAL_BYTES / 1024 / 1024
                ),
            ));
        }
        files.push((file, text));
    }
    Ok(files)
}

/// Reads the config at `path` as text, refusing it whole (no line) when it cannot be.
pub fn read_config(path: &Path) -> Result<String, ConfigError> {
    let refused = |reason: String| ConfigError::whole_file(path, reason);
    let file = std::fs::File::open(path).map_err(|e| refused(format!("cannot open: {e}")))?;
    let metadata = file
        .metadata()
        .map_err(|e| refused(format!("cannot read: {e}")))?;
    if !metadata.is_file() {
        return Err(refused("not a regular file".into()));
    }
    // Before a byte is read: a config that others can rewrite grants them anything.
    check_trusted(path, &file).map_err(|e| refused(e.to_string()))?;
    // Sized up front: a big config grown by doubling is copied and faulted in twice.
    let expected = metadata.len().min(MAX_CONFIG_BYTES) + 1;
    let bytes = read_bounded(
        file,
        MAX_CONFIG_BYTES,
        usize::try_from(expected).unwrap_or(0),
    )
    .map_err(refused)?;
    utf8(path, bytes)
}

/// Reads a file of `dromaius.d`, whose directory (and every one above it) was checked: a
/// regular file there needs only its own check; a symlink goes the whole way again.
fn read_drop_in(path: &Path) -> Result<String, ConfigError> {
    let refused = |reason: String| ConfigError::whole_file(path, reason);
    let seen = fs::symlink_metadata(path).map_err(|e| refused(format!("cannot read: {e}")))?;
    if !seen.file_type().is_file() {
        return read_config(path);
    }
    let (file, opened) = open_checked(path, facts_of(&seen), OFlag::empty())
        .map_err(|e| refused(format!("cannot open: {e}")))?;
    let entry = trust::Entry {
        path: path.to_owned(),
        facts: opened,
        last: true,
    };
    trust::judge(&[entry]).map_err(|e| refused(e.to_string()))?;
    let expected = opened.size.min(MAX_CONFIG_BYTES) + 1;
    let bytes = read_bounded(
        file,
        MAX_CONFIG_BYTES,
        usize::try_from(expected).unwrap_or(0),
    )
    .map_err(refused)?;
    utf8(path, bytes)
}

/// Opens `path` without following a link (`O_NOFOLLOW`, and `flags`) and returns the file
/// with what `fstat` says of it, which must be the file `seen` (its `lstat`) describes: a
/// file swapped in between is refused, never read.
fn open_checked(path: &Path, seen: FileFacts, flags: OFlag) -> std::io::Result<(File, FileFacts)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | flags).bits())
        .open(path)?;
    let opened = facts_of(&file.metadata()?);
    if (opened.dev, opened.ino) != (seen.dev, seen.ino) || opened.kind != FileKind::Regular {
        return Err(std::io::Error::other(
            "it changed while it was being checked",
        ));
    }
    Ok((file, opened))
}

/// The bytes of a config file as text, or where they stop being UTF-8.
fn utf8(path: &Path, bytes: Vec<u8>) -> Result<String, ConfigError> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        ConfigError::whole_file(path, format!("line {line}: not valid UTF-8"))
    })
}

/// Reads all of `reader` if it holds at most `max` bytes; refuses it, having read at most
/// one byte more, if it holds more. `capacity` is how much to reserve up front.
pub fn read_bounded(reader: impl Read, max: u64, capacity: usize) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::with_capacity(capacity);
    reader
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(if max >= 1024 * 1024 {
            format!("larger than {} MiB; refused", max / 1024 / 1024)
        } else {
            format!("larger than {max} bytes; refused")
        });
    }
    Ok(bytes)
}

/// The identity sshd exposed at `path` (the value of `SSH_USER_AUTH`), or why there is
/// none, for a debug line.
pub fn read_identity(path: &OsStr) -> Result<Identity, String> {
    let text = read_auth_file(path)?;
    auth_info::explain_auth_info(&text).map_err(|why| format!("{}: {why}", shown(path)))
}

/// Reads the file at `path` if [`accept`] takes it. The path is checked first, so nothing
/// else is ever opened; `lstat` comes before `open`, so no FIFO (which would block) or
/// device is opened either; `O_NOFOLLOW` refuses a link put there in between, and the
/// `fstat` of what was opened must be the file `lstat` saw.
pub fn read_auth_file(path: &OsStr) -> Result<String, String> {
    let at = |why: String| format!("{}: {why}", shown(path));
    auth_info::check_path(path).map_err(|why| format!("SSH_USER_AUTH: {why}"))?;
    let euid = nix::unistd::geteuid().as_raw();
    let before = fs::symlink_metadata(path).map_err(|e| at(e.to_string()))?;
    let before = facts_of(&before);
    auth_info::check_file(&before, euid).map_err(at)?;
    let path = Path::new(path);
    let (file, opened) = open_checked(path, before, OFlag::O_NONBLOCK | OFlag::O_NOCTTY)
        .map_err(|e| at(e.to_string()))?;
    auth_info::accept(path.as_os_str(), &before, &opened, euid).map_err(at)?;
    let bytes = read_bounded(file, auth_info::MAX_AUTH_INFO_BYTES, 0).map_err(at)?;
    if bytes.len() as u64 != opened.size {
        return Err(at("it changed while it was read".into()));
    }
    // Lossy: a byte that is not UTF-8 can only sit where sshd writes free text (a GSSAPI
    // name); on a publickey line the replacement character is refused like any other.
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn shown(path: &OsStr) -> String {
    format!(
        "SSH_USER_AUTH \"{}\"",
        escape_truncated(path.as_bytes(), 80)
    )
}

/// What `lstat`/`fstat`/`stat` said, as the rules of `trust` and `sshkey::auth_info` read
/// it.
fn facts_of(metadata: &Metadata) -> FileFacts {
    let file_type = metadata.file_type();
    let kind = if file_type.is_symlink() {
        FileKind::Symlink
    } else if file_type.is_file() {
        FileKind::Regular
    } else if file_type.is_dir() {
        FileKind::Directory
    } else {
        FileKind::Other
    };
    FileFacts {
        kind,
        dev: metadata.dev(),
        ino: metadata.ino(),
        uid: metadata.uid(),
        mode: metadata.mode() & 0o7777,
        nlink: metadata.nlink(),
        size: metadata.size(),
    }
}

/// Collects the facts about `path` (as written, with `lstat`, and resolved, with `stat`)
/// and checks that `opened` — the file the loader will read — is the file they describe.
pub fn gather(path: &Path, opened: &File) -> Result<Vec<trust::Entry>, trust::Untrusted> {
    let cannot = |p: &Path, e: std::io::Error| {
        trust::Untrusted(format!(
            "cannot check {}: {e}",
            crate::escape::escape(&p.to_string_lossy())
        ))
    };
    let written = std::path::absolute(path).map_err(|e| cannot(path, e))?;
    let resolved = fs::canonicalize(&written).map_err(|e| cannot(&written, e))?;
    let mut entries = Vec::new();
    for (top, follow) in [(&written, false), (&resolved, true)] {
        for (depth, component) in top.ancestors().enumerate() {
            let metadata = if follow {
                fs::metadata(component)
            } else {
                fs::symlink_metadata(component)
            }
            .map_err(|e| cannot(component, e))?;
            entries.push(trust::Entry {
                path: component.to_owned(),
                facts: facts_of(&metadata),
                last: depth == 0,
            });
        }
    }
    // What is read must be what was checked: the open file is the resolved path's inode.
    let checked = fs::metadata(&resolved).map_err(|e| cannot(&resolved, e))?;
    let read = opened.metadata().map_err(|e| cannot(&resolved, e))?;
    if (checked.dev(), checked.ino()) != (read.dev(), read.ino()) {
        return Err(trust::Untrusted(format!(
            "{} changed while it was being checked",
            crate::escape::escape(&written.to_string_lossy())
        )));
    }
    Ok(entries)
}

/// [`gather`] then [`judge`]: the one call the loader makes.
pub fn check_trusted(path: &Path, opened: &File) -> Result<(), trust::Untrusted> {
    trust::judge(&gather(path, opened)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sshkey::auth_info::tests::{fingerprint, key_of};
    use crate::sshkey::tests::{ED25519, ED25519_CERT};

    #[test]
    fn reads_are_bounded() {
        assert_eq!(read_bounded(&b"abc"[..], 3, 0), Ok(b"abc".to_vec()));
        assert_eq!(read_bounded(&b""[..], 0, 0), Ok(Vec::new()));
        assert_eq!(
            read_bounded(&b"abcd"[..], 3, 0),
            Err("larger than 3 bytes; refused".into())
        );
        let big = vec![0u8; 2 * 1024 * 1024 + 1];
        assert_eq!(
            read_bounded(&big[..], 2 * 1024 * 1024, 0),
            Err("larger than 2 MiB; refused".into())
        );
        // An endless reader is read one byte past the bound, not to its end.
        assert!(read_bounded(std::io::repeat(b'x'), 1000, 0).is_err());
    }

    #[test]
    fn files_that_cannot_be_read_are_refused() {
        let dir = std::env::temp_dir().join(format!("dromaius-config-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let missing = read_config(&dir.join("missing.json"))
            .map(|_| ())
            .unwrap_err();
        assert!(missing.reason.contains("cannot open"), "{missing}");
        let directory = read_config(&dir).map(|_| ()).unwrap_err();
        assert!(
            directory.reason.contains("not a regular file"),
            "{directory}"
        );
        let binary = dir.join("binary.json");
        std::fs::write(&binary, b"{\"keys\": {}}\n\xff").unwrap();
        let not_utf8 = read_config(&binary).map(|_| ()).unwrap_err();
        assert!(
            not_utf8.reason.contains("line 2: not valid UTF-8"),
            "{not_utf8}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A file under sshd's own template, made and removed by a test.
    struct AuthFile(std::path::PathBuf);

    impl AuthFile {
        fn new(tag: &str) -> AuthFile {
            // 15 letters or digits, unique per test and process, like mkstemp's.
            let name = format!("{tag:0>5}{:0>10}", std::process::id());
            assert_eq!(name.len(), 15, "{name}");
            AuthFile(std::path::PathBuf::from(format!("/tmp/sshauth.{name}")))
        }

        fn write(&self, text: &[u8], mode: u32) -> &Self {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::remove_file(&self.0);
            std::fs::write(&self.0, text).unwrap_or_else(|e| panic!("{:?}: {e}", self.0));
            std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("{:?}: {e}", self.0));
            self
        }

        fn path(&self) -> &OsStr {
            self.0.as_os_str()
        }
    }

    impl Drop for AuthFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn the_file_sshd_made_is_read_and_nothing_else_is() {
        let text = format!("publickey {}\n", key_of(ED25519_CERT));
        let file = AuthFile::new("a");
        file.write(text.as_bytes(), 0o600);
        let identity = read_identity(file.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            identity.cert.map(|c| (c.key_id, c.serial)),
            Some(("alice@example".into(), 42))
        );
        assert_eq!(identity.fingerprint, fingerprint(ED25519));
        file.write(text.as_bytes(), 0o400);
        assert!(read_identity(file.path()).is_ok());

        let refused = |path: &OsStr, reason: &str| match read_identity(path) {
            Ok(identity) => panic!("{path:?} gave {identity:?}"),
            Err(why) => assert!(why.contains(reason), "{path:?}: {why}"),
        };
        file.write(text.as_bytes(), 0o644);
        refused(file.path(), "mode is 0644");
        file.write(b"", 0o600);
        refused(file.path(), "empty");
        file.write(b"password\n", 0o600);
        refused(file.path(), "no public key authentication");
        file.write(
            &vec![b'x'; auth_info::MAX_AUTH_INFO_BYTES as usize + 1],
            0o600,
        );
        refused(file.path(), "larger than");
        file.write(
            format!("publickey {}\n\u{ff}", key_of(ED25519)).as_bytes(),
            0o600,
        );
        refused(file.path(), "does not end with a line break");

        // A symbolic link to a good file, a hard link to one, a directory, a FIFO (which
        // must not block), a missing file, and a path outside the template.
        let target = AuthFile::new("b");
        target.write(text.as_bytes(), 0o600);
        let _ = std::fs::remove_file(&file.0);
        std::os::unix::fs::symlink(&target.0, &file.0).unwrap_or_else(|e| panic!("{e}"));
        refused(file.path(), "symbolic link");
        let _ = std::fs::remove_file(&file.0);
        std::fs::hard_link(&target.0, &file.0).unwrap_or_else(|e| panic!("{e}"));
        refused(file.path(), "2 hard links");
        refused(target.path(), "2 hard links");
        let _ = std::fs::remove_file(&file.0);
        std::fs::create_dir(&file.0).unwrap_or_else(|e| panic!("{e}"));
        refused(file.path(), "directory");
        let _ = std::fs::remove_dir(&file.0);
        let made = std::process::Command::new("mkfifo").arg(&file.0).status();
        if made.is_ok_and(|s| s.success()) {
            refused(file.path(), "not a regular file");
        }
        let _ = std::fs::remove_file(&file.0);
        refused(file.path(), "No such file");
        refused(OsStr::new("/etc/passwd"), "not a name sshd makes");
        refused(
            OsStr::new("/tmp/sshauth.../../etc/pass"),
            "not a name sshd makes",
        );

        // Owned by somebody else: only root can make one, so only a test run as root can.
        if nix::unistd::geteuid().is_root() {
            target.write(text.as_bytes(), 0o600);
            std::os::unix::fs::chown(&target.0, Some(65534), None)
                .unwrap_or_else(|e| panic!("{e}"));
            refused(target.path(), "owned by uid 65534");
        }
    }

    #[test]
    fn gather_sees_the_written_path_and_the_resolved_one() {
        use std::os::unix::fs::{PermissionsExt, symlink};
        let dir = std::env::temp_dir().join(format!("dromaius-trust-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("real")).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(dir.join("real"), fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.join("real/c.json");
        fs::write(&file, "{}").unwrap();
        symlink(dir.join("real"), dir.join("link")).unwrap();
        let through_link = dir.join("link/c.json");
        let opened = File::open(&through_link).unwrap();
        let entries = gather(&through_link, &opened).unwrap();
        let kinds: Vec<(PathBuf, FileKind, bool)> = entries
            .iter()
            .map(|e| (e.path.clone(), e.facts.kind, e.last))
            .collect();
        for seen in [
            (dir.join("link"), FileKind::Symlink, false),
            (dir.join("real"), FileKind::Directory, false),
            (file.clone(), FileKind::Regular, true),
            (PathBuf::from("/"), FileKind::Directory, false),
        ] {
            assert!(kinds.contains(&seen), "{seen:?} not in {kinds:?}");
        }
        // A file other than the one opened is caught.
        let other = dir.join("real/other.json");
        fs::write(&other, "{}").unwrap();
        let wrong = File::open(&other).unwrap();
        assert!(gather(&through_link, &wrong).is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
