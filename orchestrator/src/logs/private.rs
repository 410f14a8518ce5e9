//! File modes in the state directory: nothing in it is readable by anyone
//! but the orchestrator's user.
//!
//! Files are 0600 and directories 0700, with one exception: the directories
//! on the way to a child's own `stateDir` — the state directory itself,
//! `state/`, `state/connections/`, `state/agents/` and `state/agents/<agent>/`
//! — are 0711, so that a child running as another uid (`sandbox.user`) can
//! pass through to its `stateDir` without being able to list or read
//! anything on the way. Each `stateDir` is 0700 (its owner is the child's uid
//! where the sandbox gives it one). [`tighten`] brings an existing state
//! directory to these modes at start; the contents of a child's `stateDir`
//! are the child's own and are left alone.

use std::fs::{DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Directories others may pass through (not list).
pub const PASS_THROUGH: u32 = 0o711;
/// Every other directory.
pub const DIR: u32 = 0o700;
/// Every file the orchestrator writes.
pub const FILE: u32 = 0o600;

/// `create_dir_all`, each directory it creates being 0700.
pub fn create_dirs(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR).create(dir)
}

/// Creates `dir` (and missing parents, 0700) and sets its mode to `mode`.
pub fn ensure_dir(dir: &Path, mode: u32) -> io::Result<()> {
    create_dirs(dir)?;
    set_mode(dir, mode)
}

/// Sets `path`'s mode unless it is a symbolic link (which is left alone, as
/// is whatever it points to) or has it already.
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() || meta.permissions().mode() & 0o7777 == mode {
        return Ok(());
    }
    std::fs::set_permissions(path, Permissions::from_mode(mode))
}

/// Brings the state directory at `root` to the modes above (see the module docs).
pub fn tighten(root: &Path) -> io::Result<()> {
    set_mode(root, PASS_THROUGH)?;
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        match entry.file_name().to_str() {
            _ if kind.is_symlink() => {}
            Some("state") if kind.is_dir() => tighten_state(&path)?,
            _ if kind.is_dir() => tighten_tree(&path)?,
            _ => set_mode(&path, FILE)?,
        }
    }
    Ok(())
}

/// `state/`: pass-through levels, then each `stateDir` itself (not its contents).
fn tighten_state(state: &Path) -> io::Result<()> {
    set_mode(state, PASS_THROUGH)?;
    for (kind, levels) in [("connections", 1), ("agents", 2)] {
        let dir = state.join(kind);
        if dir.is_dir() {
            set_mode(&dir, PASS_THROUGH)?;
            tighten_levels(&dir, levels)?;
        }
    }
    Ok(())
}

/// Below `dir`, directories `levels` deep are stateDirs (0700); those above
/// them pass-through.
fn tighten_levels(dir: &Path, levels: u32) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        if levels == 1 {
            set_mode(&entry.path(), DIR)?;
        } else {
            set_mode(&entry.path(), PASS_THROUGH)?;
            tighten_levels(&entry.path(), levels - 1)?;
        }
    }
    Ok(())
}

/// Every directory 0700 and every file 0600 below (and at) `dir`; symbolic
/// links are not followed.
fn tighten_tree(dir: &Path) -> io::Result<()> {
    set_mode(dir, DIR)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            tighten_tree(&entry.path())?;
        } else if !kind.is_symlink() {
            set_mode(&entry.path(), FILE)?;
        }
    }
    Ok(())
}
