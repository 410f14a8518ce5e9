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
//! are the child's own and are left alone, and so is anything at the top of
//! the state directory that the orchestrator does not write.

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

/// Brings the state directory at `root` to the modes above (see the module
/// docs). A path below it that cannot be changed (not ours to change) is
/// left as it is and reported as a warning; only the root itself must work.
pub fn tighten(root: &Path) -> io::Result<()> {
    set_mode(root, PASS_THROUGH)?;
    let mut t = Tightener;
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        let name = entry.file_name();
        let name = name.to_str().unwrap_or_default();
        match name {
            _ if kind.is_symlink() => {}
            "state" if kind.is_dir() => t.state(&path),
            "logs" if kind.is_dir() => t.tree(&path),
            _ if kind.is_dir() => {}
            _ if is_ours(name) => t.mode(&path, FILE),
            // Not the orchestrator's: a --state-dir pointed at a directory
            // with other things in it must not change them.
            _ => {}
        }
    }
    Ok(())
}

/// Whether `name`, at the top of the state directory, is a file the
/// orchestrator writes there.
fn is_ours(name: &str) -> bool {
    let rotated = |base: &str| {
        name.strip_prefix(base)
            .and_then(|n| n.strip_prefix('.'))
            .is_some_and(|n| n.parse::<u32>().is_ok())
    };
    matches!(
        name,
        "journal.db" | "audit.log" | "control.sock" | "orchestrator.lock"
    ) || rotated("audit.log")
}

/// Walks the state directory, warning about what it cannot change.
struct Tightener;

impl Tightener {
    fn mode(&mut self, path: &Path, mode: u32) {
        if let Err(e) = set_mode(path, mode) {
            tracing::warn!(
                "state directory: cannot set {} to {mode:o}: {e}",
                path.display()
            );
        }
    }

    fn entries(&mut self, dir: &Path) -> Vec<(std::path::PathBuf, std::fs::FileType)> {
        match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .flatten()
                .filter_map(|e| Some((e.path(), e.file_type().ok()?)))
                .collect(),
            Err(e) => {
                tracing::warn!("state directory: cannot read {}: {e}", dir.display());
                vec![]
            }
        }
    }

    /// `state/`: pass-through levels, then each `stateDir` itself (not its contents).
    fn state(&mut self, state: &Path) {
        self.mode(state, PASS_THROUGH);
        for (kind, levels) in [("connections", 1), ("agents", 2)] {
            let dir = state.join(kind);
            if dir.is_dir() {
                self.mode(&dir, PASS_THROUGH);
                self.levels(&dir, levels);
            }
        }
    }

    /// Below `dir`, directories `levels` deep are stateDirs (0700); those
    /// above them pass-through.
    fn levels(&mut self, dir: &Path, levels: u32) {
        for (path, kind) in self.entries(dir) {
            if !kind.is_dir() {
                continue;
            }
            if levels == 1 {
                self.mode(&path, DIR);
            } else {
                self.mode(&path, PASS_THROUGH);
                self.levels(&path, levels - 1);
            }
        }
    }

    /// Every directory 0700 and every file 0600 below (and at) `dir`;
    /// symbolic links are not followed.
    fn tree(&mut self, dir: &Path) {
        self.mode(dir, DIR);
        for (path, kind) in self.entries(dir) {
            if kind.is_dir() {
                self.tree(&path);
            } else if !kind.is_symlink() {
                self.mode(&path, FILE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn mode_of(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn tighten_brings_a_loose_state_directory_to_its_modes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state-dir");
        for d in [
            "logs/agents/a",
            "state/connections/c",
            "state/agents/a/k/sub",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "not ours").unwrap();
        chmod(&outside, 0o644);
        for f in [
            "journal.db",
            "logs/agents/a/k.log.2",
            "state/agents/a/k/sub/mine",
        ] {
            std::fs::write(root.join(f), "x").unwrap();
            chmod(&root.join(f), 0o644);
        }
        chmod(&root.join("state/agents/a/k/sub"), 0o755);
        chmod(&root.join("state/agents/a/k"), 0o755);
        chmod(&root, 0o755);
        // Not the orchestrator's: left alone.
        std::fs::create_dir_all(root.join("other/dir")).unwrap();
        std::fs::write(root.join("notes.txt"), "x").unwrap();
        chmod(&root.join("notes.txt"), 0o644);
        chmod(&root.join("other"), 0o755);
        std::fs::write(root.join("audit.log.3"), "x").unwrap();
        chmod(&root.join("audit.log.3"), 0o644);
        // A link planted in the logs must not carry the change outside.
        symlink(&outside, root.join("logs/agents/a/evil.log")).unwrap();

        tighten(&root).unwrap();
        for (p, want) in [
            ("", PASS_THROUGH),
            ("state", PASS_THROUGH),
            ("state/agents", PASS_THROUGH),
            ("state/agents/a", PASS_THROUGH),
            ("state/connections", PASS_THROUGH),
            ("state/connections/c", DIR),
            ("state/agents/a/k", DIR),
            ("logs", DIR),
            ("logs/agents/a", DIR),
            ("journal.db", FILE),
            ("logs/agents/a/k.log.2", FILE),
            // A stateDir's contents are the child's own.
            ("state/agents/a/k/sub", 0o755),
            ("state/agents/a/k/sub/mine", 0o644),
            ("audit.log.3", FILE),
            ("notes.txt", 0o644),
            ("other", 0o755),
        ] {
            assert_eq!(mode_of(&root.join(p)), want, "{p}");
        }
        assert_eq!(mode_of(&outside), 0o644, "a symlink was followed");
    }
}
