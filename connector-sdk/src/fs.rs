//! Small files a connector keeps in its state directory (a cursor, the last
//! fired slot, a bound address), replaced whole and durably.
//!
//! [`write_atomic`] writes a temp file beside the target, `fsync`s it,
//! renames it over the target and `fsync`s the directory, so after a crash or
//! a power cut the file holds the old value or the new one, never half of one
//! or an empty file, and a value reported stored stays stored. Files are
//! created `0600`: a state directory is the connector's own.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// What [`write_atomic`] was doing when it failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}", path.display())]
pub struct WriteError {
    /// The file or directory it was working on.
    pub path: PathBuf,
    /// The step: `create directory`, `write`, `sync`, `rename to`, `sync directory`.
    pub action: &'static str,
    /// The failure.
    #[source]
    pub source: io::Error,
}

fn at<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Replaces `path` with `bytes`: temp file, `fsync`, rename, `fsync` of the
/// directory (created if missing). Blocking: from async code use
/// [`write_atomic_async`].
///
/// One writer per file: two concurrent writers of the same path share the
/// temp file name (`<name>.tmp`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(at("create directory", dir))?;
    let mut name = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(".tmp");
    let tmp = dir.join(name);
    let written = write_synced(&tmp, bytes).and_then(|()| {
        std::fs::rename(&tmp, path).map_err(at("rename to", path))?;
        // The rename is durable only once the directory entry is.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(at("sync directory", dir))
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn write_synced(tmp: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp)
        .map_err(at("write", tmp))?;
    f.write_all(bytes).map_err(at("write", tmp))?;
    f.sync_all().map_err(at("sync", tmp))
}

/// [`write_atomic`] on tokio's blocking pool, so an `fsync` never stalls a
/// runtime worker.
pub async fn write_atomic_async(
    path: impl Into<PathBuf>,
    bytes: impl Into<Vec<u8>>,
) -> Result<(), WriteError> {
    let path = path.into();
    let bytes = bytes.into();
    let job_path = path.clone();
    match tokio::task::spawn_blocking(move || write_atomic(&job_path, &bytes)).await {
        Ok(result) => result,
        Err(join) => Err(WriteError {
            path,
            action: "write",
            source: io::Error::other(join.to_string()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn replaces_whole_creates_the_directory_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/offset");
        write_atomic(&path, b"first, and longer\n").unwrap();
        write_atomic(&path, b"2\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"2\n");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["offset"]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_failure_names_the_step_and_keeps_the_old_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cursor");
        write_atomic(&path, b"old").unwrap();
        // A directory where the temp file should go: the write fails, the
        // old value stays.
        std::fs::create_dir(dir.path().join("cursor.tmp")).unwrap();
        let e = write_atomic(&path, b"new").unwrap_err();
        assert_eq!(e.action, "write");
        assert!(e.to_string().starts_with("cannot write "), "{e}");
        assert!(e.to_string().ends_with("cursor.tmp"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");

        let blocked = dir.path().join("file");
        std::fs::write(&blocked, "").unwrap();
        let e = write_atomic(&blocked.join("x"), b"y").unwrap_err();
        assert_eq!(e.action, "create directory");
    }

    #[test]
    fn async_variant_writes_too() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("address");
        rt.block_on(write_atomic_async(path.clone(), "127.0.0.1:1"))
            .unwrap();
        assert_eq!(std::fs::read_to_string(path).unwrap(), "127.0.0.1:1");
    }
}
