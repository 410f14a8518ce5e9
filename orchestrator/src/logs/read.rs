//! Reading the logs back: which files a target names, their last lines, and following them.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::StateDir;

/// One log file and the label its lines are shown with.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogFile {
    /// `connection/<name>`, `agent/<name>/<instanceKey>` or `orchestrator`.
    pub label: String,
    /// The file.
    pub path: PathBuf,
}

/// Why a target names no log file.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Not the shape of a target at all (a usage error).
    #[error(
        "unknown target '{0}': use orchestrator, connection/<name>, agent/<name> or agent/<name>/<instanceKey>"
    )]
    Unknown(String),
    /// A well-formed target that no process of this state directory ever had.
    #[error("no process matches '{target}' (nothing under {})", dir.display())]
    NoMatch {
        /// The target asked for.
        target: String,
        /// Where its logs would be.
        dir: PathBuf,
    },
}

/// The log files `target` names right now: `orchestrator`, `connection/<name>`,
/// `agent/<name>` (every instance), `agent/<name>/<instanceKey>`, or `None` for
/// all. A target that matches no process is an error, not an empty answer.
pub fn files(state: &StateDir, target: Option<&str>) -> Result<Vec<LogFile>, TargetError> {
    let out = matching(state, target)?;
    let Some(target) = target else {
        return Ok(out);
    };
    // An Agent of the bundle has its state directory from the start, so
    // `agent/<name>` of one with no instance yet is fine (and `-f` shows
    // its instances as they come); a name no run ever had is not.
    let (exists, dir) = match target.splitn(3, '/').collect::<Vec<_>>().as_slice() {
        ["agent", name] => {
            let dir = state.root().join("logs/agents").join(name);
            let known = dir.is_dir() || state.root().join("state/agents").join(name).is_dir();
            (known, dir)
        }
        _ => {
            let exists = out.iter().any(|f| f.path.exists());
            let dir = out
                .first()
                .and_then(|f| f.path.parent())
                .map_or_else(|| state.root().join("logs"), Path::to_path_buf);
            (exists, dir)
        }
    };
    if exists {
        return Ok(out);
    }
    Err(TargetError::NoMatch {
        target: target.to_string(),
        dir,
    })
}

fn matching(state: &StateDir, target: Option<&str>) -> Result<Vec<LogFile>, TargetError> {
    let mut out = Vec::new();
    let parts: Vec<&str> = target
        .map(|t| t.splitn(3, '/').collect())
        .unwrap_or_default();
    match parts.as_slice() {
        [] => {
            out.push(orchestrator_file(state));
            out.extend(connection_files(state));
            for agent in dir_names(&state.root().join("logs/agents")) {
                out.extend(agent_files(state, &agent));
            }
        }
        ["orchestrator"] => out.push(orchestrator_file(state)),
        ["connection", name] => out.push(LogFile {
            label: format!("connection/{name}"),
            path: state.connection_log(name),
        }),
        ["agent", name] => out.extend(agent_files(state, name)),
        ["agent", name, key] => out.push(LogFile {
            label: format!("agent/{name}/{key}"),
            path: state.agent_log(name, key),
        }),
        _ => return Err(TargetError::Unknown(target.unwrap_or_default().to_string())),
    }
    Ok(out)
}

fn orchestrator_file(state: &StateDir) -> LogFile {
    LogFile {
        label: "orchestrator".into(),
        path: state.orchestrator_log(),
    }
}

fn connection_files(state: &StateDir) -> Vec<LogFile> {
    let dir = state.root().join("logs/connections");
    log_names(&dir)
        .into_iter()
        .map(|name| LogFile {
            label: format!("connection/{name}"),
            path: dir.join(format!("{name}.log")),
        })
        .collect()
}

fn agent_files(state: &StateDir, agent: &str) -> Vec<LogFile> {
    let dir = state.root().join("logs/agents").join(agent);
    log_names(&dir)
        .into_iter()
        .map(|escaped| LogFile {
            label: format!("agent/{agent}/{}", super::unescape_key(&escaped)),
            path: dir.join(format!("{escaped}.log")),
        })
        .collect()
}

/// File stems of the `*.log` files in `dir` (rotated `*.log.N` are not current), sorted.
fn log_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".log")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

/// The last `n` lines of `path` (fewer if it has fewer; none if it is missing).
pub fn tail(path: &Path, n: usize) -> io::Result<Vec<String>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    // Read backwards in blocks until there are enough newlines.
    let len = file.metadata()?.len();
    let mut start = len;
    let mut buf = Vec::new();
    while start > 0 && buf.iter().filter(|b| **b == b'\n').count() <= n {
        let block = start.min(64 * 1024);
        start -= block;
        file.seek(SeekFrom::Start(start))?;
        let mut chunk = vec![0; block as usize];
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(n);
    Ok(lines[skip..].iter().map(|l| l.to_string()).collect())
}

/// Merges lines from several files by their leading timestamp (stable within a file).
pub fn interleave(batches: Vec<(String, Vec<String>)>) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = batches
        .into_iter()
        .flat_map(|(label, lines)| lines.into_iter().map(move |l| (label.clone(), l)))
        .collect();
    all.sort_by(|a, b| timestamp_of(&a.1).cmp(timestamp_of(&b.1)));
    all
}

fn timestamp_of(line: &str) -> &str {
    line.split_whitespace().next().unwrap_or("")
}

/// Follows one file across rotation: keeps the file it reads open, finishes
/// it when it has been renamed away, then goes on with the new file from its
/// start. A truncated file is read again from its start.
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
    inode: Option<u64>,
    offset: u64,
    partial: Vec<u8>,
}

impl Follower {
    /// Starts following at the current end of `path` (or its start, once it appears).
    pub fn at_end(path: PathBuf) -> Self {
        let mut f = Self {
            path,
            file: None,
            inode: None,
            offset: 0,
            partial: Vec::new(),
        };
        if let Ok(file) = File::open(&f.path)
            && let Ok(meta) = file.metadata()
        {
            f.inode = Some(meta.ino());
            f.offset = meta.len();
            f.file = Some(file);
        }
        f
    }

    /// Starts following from the beginning of a file that just appeared.
    pub fn at_start(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            inode: None,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// The complete lines written since the last call.
    pub fn poll(&mut self) -> Vec<String> {
        let mut lines = self.read_current();
        let current = std::fs::metadata(&self.path).ok().map(|m| m.ino());
        if current.is_some() && current != self.inode {
            // Rotated (or first seen). The old file may have got its last
            // lines between the read above and the rename; the writer flushes
            // before it renames, so one more read of it sees them all. Then
            // the new one is read from its start.
            lines.extend(self.read_current());
            self.file = File::open(&self.path).ok();
            self.inode = self
                .file
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .map(|m| m.ino());
            self.offset = 0;
            self.partial.clear();
            lines.extend(self.read_current());
        }
        lines
    }

    fn read_current(&mut self) -> Vec<String> {
        let Some(file) = &mut self.file else {
            return vec![];
        };
        let Ok(len) = file.metadata().map(|m| m.len()) else {
            return vec![];
        };
        if len < self.offset {
            // Truncated in place.
            self.offset = 0;
            self.partial.clear();
        }
        if len == self.offset || file.seek(SeekFrom::Start(self.offset)).is_err() {
            return vec![];
        }
        let mut buf = Vec::new();
        if file.read_to_end(&mut buf).is_err() {
            return vec![];
        }
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let Some(last_nl) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return vec![];
        };
        let complete: Vec<u8> = self.partial.drain(..=last_nl).collect();
        String::from_utf8_lossy(&complete)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn tail_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = File::create(&path).unwrap();
        for i in 0..1000 {
            writeln!(f, "line {i}").unwrap();
        }
        assert_eq!(
            tail(&path, 3).unwrap(),
            ["line 997", "line 998", "line 999"]
        );
        assert_eq!(tail(&path, 0).unwrap(), Vec::<String>::new());
        assert_eq!(
            tail(&dir.path().join("missing.log"), 3).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn follower_sees_appends_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "old\n").unwrap();
        let mut f = Follower::at_end(path.clone());
        assert!(f.poll().is_empty());
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        write!(file, "new 1\nhalf").unwrap();
        assert_eq!(f.poll(), ["new 1"]);
        writeln!(file, " done").unwrap();
        assert_eq!(f.poll(), ["half done"]);
        // Rotation: the file gets a last line, is renamed away, and a new one begins.
        writeln!(file, "last of the old file").unwrap();
        std::fs::rename(&path, dir.path().join("a.log.1")).unwrap();
        std::fs::write(&path, "after rotation\n").unwrap();
        assert_eq!(f.poll(), ["last of the old file", "after rotation"]);
        // Truncation in place starts over.
        std::fs::write(&path, "").unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"fresh\n")
            .unwrap();
        assert_eq!(f.poll(), ["fresh"]);
    }

    #[test]
    fn interleave_orders_by_timestamp() {
        let merged = interleave(vec![
            (
                "a".into(),
                vec![
                    "2026-01-01T00:00:01.000Z x".into(),
                    "2026-01-01T00:00:03.000Z z".into(),
                ],
            ),
            ("b".into(), vec!["2026-01-01T00:00:02.000Z y".into()]),
        ]);
        let labels: Vec<&str> = merged.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["a", "b", "a"]);
    }
}
