//! Getting a config's bytes: a regular file, trusted (see `trust`) before a byte of it is
//! read, at most [`MAX_CONFIG_BYTES`] of it, and UTF-8; then the same for every file of
//! `dromaius.d` beside it, and for the directory itself.
//!
//! [`read_bounded`] is the one bounded read of the program; the administrator's subcommands
//! read `authorized_keys` and public keys with it too.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{ConfigError, MAX_CONFIG_BYTES, drop_in_dir};

/// The most all the files of one config may hold together.
const MAX_TOTAL_BYTES: u64 = 4 * MAX_CONFIG_BYTES;

/// The config at `path` and every file of `dromaius.d` beside it: each `*.json` whose name
/// does not start with `.`, in byte order of their names. No `dromaius.d` is no drop-ins;
/// one that cannot be trusted or read refuses everything, as the config itself would.
pub(super) fn read_config_and_drop_ins(path: &Path) -> Result<Vec<(PathBuf, String)>, ConfigError> {
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
    crate::trust::check(&dir, &handle).map_err(|e| refused(e.to_string()))?;
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
pub(super) fn read_config(path: &Path) -> Result<String, ConfigError> {
    let refused = |reason: String| ConfigError::whole_file(path, reason);
    let file = std::fs::File::open(path).map_err(|e| refused(format!("cannot open: {e}")))?;
    let metadata = file
        .metadata()
        .map_err(|e| refused(format!("cannot read: {e}")))?;
    if !metadata.is_file() {
        return Err(refused("not a regular file".into()));
    }
    // Before a byte is read: a config that others can rewrite grants them anything.
    crate::trust::check(path, &file).map_err(|e| refused(e.to_string()))?;
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
    let seen = std::fs::symlink_metadata(path).map_err(|e| refused(format!("cannot read: {e}")))?;
    if !seen.file_type().is_file() {
        return read_config(path);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(|e| refused(format!("cannot open: {e}")))?;
    let opened = file
        .metadata()
        .map_err(|e| refused(format!("cannot read: {e}")))?;
    if (opened.dev(), opened.ino()) != (seen.dev(), seen.ino()) || !opened.is_file() {
        return Err(refused("changed while it was being checked".into()));
    }
    let entry = crate::trust::Entry {
        path: path.to_owned(),
        kind: crate::trust::Kind::File,
        uid: opened.uid(),
        mode: opened.mode() & 0o7777,
    };
    crate::trust::judge(&[entry]).map_err(|e| refused(e.to_string()))?;
    let expected = opened.len().min(MAX_CONFIG_BYTES) + 1;
    let bytes = read_bounded(
        file,
        MAX_CONFIG_BYTES,
        usize::try_from(expected).unwrap_or(0),
    )
    .map_err(refused)?;
    utf8(path, bytes)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
