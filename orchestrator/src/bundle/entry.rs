//! Where a program's `spec.entry` lives on this machine. The only part of
//! the bundle code besides [`super::load`] that looks at the file system,
//! and it is handed every input (root, the binary's directory, PATH) so
//! tests need not touch the process environment.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::diag::Diagnostic;
use super::model::{Bundle, Place, Program};

/// Why a candidate file can't be run.
#[derive(Debug, thiserror::Error)]
enum Unusable {
    #[error("{0} does not exist")]
    Missing(String),
    #[error("{0} is not a regular file")]
    NotAFile(String),
    #[error("{0} is not executable (chmod +x {0})")]
    NotExecutable(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn usable(path: &Path) -> Result<(), Unusable> {
    let shown = || path.display().to_string();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Unusable::Missing(shown()));
        }
        Err(source) => {
            return Err(Unusable::Io {
                path: shown(),
                source,
            });
        }
    };
    if !meta.is_file() {
        return Err(Unusable::NotAFile(shown()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(Unusable::NotExecutable(shown()));
    }
    Ok(())
}

/// Finds the executable `entry` names: a path relative to `root` when it
/// contains a `/`, else a bare name looked up in `exe_dir` (the
/// orchestrator binary's directory), then on `path_var`, then in `root` (the
/// bundle's directory) — last, so `python3` or a shipped connector's name
/// never picks up a file that happens to sit beside the bundle.
pub fn resolve_entry(
    root: &Path,
    entry: &str,
    exe_dir: Option<&Path>,
    path_var: Option<&OsStr>,
) -> Result<PathBuf, String> {
    if entry.contains('/') {
        let path = root.join(entry);
        return usable(&path)
            .map(|()| path)
            .map_err(|e| format!("entry '{entry}': {e}"));
    }
    // Empty PATH elements would mean "the current directory": never
    // implicitly, so what runs doesn't depend on where the operator stood.
    let path_dirs: Vec<PathBuf> = path_var
        .map(|p| {
            std::env::split_paths(p)
                .filter(|d| !d.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut near_misses = Vec::new();
    for dir in exe_dir
        .into_iter()
        .chain(path_dirs.iter().map(PathBuf::as_path))
        .chain(std::iter::once(root))
    {
        let candidate = dir.join(entry);
        match usable(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(Unusable::Missing(_)) => {}
            Err(e) => near_misses.push(e.to_string()),
        }
    }
    let mut message = format!(
        "entry '{entry}' not found {}",
        Looked {
            exe_dir,
            path_var: !path_dirs.is_empty()
        }
    );
    if !near_misses.is_empty() {
        message.push_str(&format!(" ({})", near_misses.join("; ")));
    }
    Err(message)
}

/// "next to /x/target/debug or on PATH", as much of it as was searched.
struct Looked<'a> {
    exe_dir: Option<&'a Path>,
    path_var: bool,
}

impl fmt::Display for Looked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.exe_dir, self.path_var) {
            (Some(dir), true) => {
                write!(f, "next to {}, on PATH or beside the bundle", dir.display())
            }
            (Some(dir), false) => write!(
                f,
                "next to {} or beside the bundle (PATH is empty)",
                dir.display()
            ),
            (None, true) => f.write_str("on PATH or beside the bundle"),
            (None, false) => {
                f.write_str("beside the bundle (no orchestrator directory and PATH is empty)")
            }
        }
    }
}

/// One diagnostic per Connector or Agent whose entry `resolve` can't find,
/// placed at its `spec.entry` value. The CLI passes a closure over [`resolve_entry`].
pub fn check_entries(
    bundle: &Bundle,
    resolve: impl Fn(&str) -> Result<PathBuf, String>,
) -> Vec<Diagnostic> {
    let programs = bundle
        .connectors
        .values()
        .map(|c| {
            (
                format!("Connector/{}", c.name),
                &c.program.entry_place,
                &c.program,
            )
        })
        .chain(bundle.agents.values().map(|a| {
            (
                format!("Agent/{}", a.name),
                &a.program.entry_place,
                &a.program,
            )
        }));
    let mut out: Vec<Diagnostic> = programs
        .filter_map(|(resource, place, program): (String, &Place, &Program)| {
            let message = format!("`spec.entry`: {}", resolve(&program.entry).err()?);
            Some(Diagnostic {
                place: Some(place.clone()),
                resource: Some(resource),
                message,
            })
        })
        .collect();
    out.sort_by(|a, b| a.place.cmp(&b.place));
    out
}
