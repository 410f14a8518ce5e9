//! `orchestrator logs [TARGET] [-f] [-n N]`: read the log files directly, no socket needed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use orchestrator::exit_code;
use orchestrator::logs::StateDir;
use orchestrator::logs::read::{self, Follower};

/// How often `-f` looks for new lines and new files.
const POLL: Duration = Duration::from_millis(100);

pub fn main(state_dir: &Path, target: Option<&str>, follow: bool, lines: usize) -> u8 {
    let state = StateDir::at(state_dir);
    let files = match read::files(&state, target) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("orchestrator: {e}");
            return match e {
                read::TargetError::Unknown(_) => exit_code::USAGE,
                read::TargetError::NoMatch { .. } => exit_code::FAILURE,
            };
        }
    };
    let prefix = target.is_none() || files.len() > 1;
    let width = files.iter().map(|f| f.label.len()).max().unwrap_or(0);
    let mut batches = Vec::new();
    for f in &files {
        match read::tail(&f.path, lines) {
            Ok(l) => batches.push((f.label.clone(), l)),
            Err(e) => eprintln!("orchestrator: {}: {e}", f.path.display()),
        }
    }
    let mut out = std::io::stdout().lock();
    for (label, line) in read::interleave(batches) {
        if print(&mut out, prefix, width, &label, &line).is_err() {
            return exit_code::OK; // stdout closed (e.g. piped into head)
        }
    }
    if !follow {
        return exit_code::OK;
    }
    let mut followers: BTreeMap<String, (String, Follower)> = files
        .into_iter()
        .map(|f| {
            (
                f.path.display().to_string(),
                (f.label, Follower::at_end(f.path)),
            )
        })
        .collect();
    loop {
        std::thread::sleep(POLL);
        // New instances (and, with no target, new connections) show up as new files.
        if let Ok(now) = read::files(&state, target) {
            for f in now {
                followers
                    .entry(f.path.display().to_string())
                    .or_insert_with(|| (f.label, Follower::at_start(f.path)));
            }
        }
        let batches = followers
            .values_mut()
            .map(|(label, f)| (label.clone(), f.poll()))
            .collect();
        for (label, line) in read::interleave(batches) {
            if print(
                &mut out,
                prefix || followers.len() > 1,
                width.max(label.len()),
                &label,
                &line,
            )
            .is_err()
            {
                return exit_code::OK;
            }
        }
        if out.flush().is_err() {
            return exit_code::OK;
        }
    }
}

fn print(
    out: &mut impl Write,
    prefix: bool,
    width: usize,
    label: &str,
    line: &str,
) -> std::io::Result<()> {
    if prefix {
        writeln!(out, "{label:<width$} | {line}")
    } else {
        writeln!(out, "{line}")
    }
}
