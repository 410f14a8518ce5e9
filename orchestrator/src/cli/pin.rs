//! `orchestrator pin BUNDLE`: the SHA-256 of every program the bundle runs,
//! as the `entry` to paste into it.

use std::path::Path;

use orchestrator::exit_code;
use orchestrator::supervisor::sha256_file;

pub fn main(path: &Path) -> u8 {
    let (bundle, programs) = match orchestrator::load_checked(path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            return exit_code::INVALID_BUNDLE;
        }
    };
    let kinds = bundle
        .connectors
        .values()
        .map(|c| ("Connector", &c.name, &c.program))
        .chain(
            bundle
                .agents
                .values()
                .map(|a| ("Agent", &a.name, &a.program)),
        );
    let mut failed = false;
    for (kind, name, program) in kinds {
        let Some(resolved) = programs.get(&program.entry) else {
            continue;
        };
        match sha256_file(resolved) {
            Ok(sha) => {
                let note = match &program.entry_sha256 {
                    Some(pinned) if *pinned == sha => "  # pinned, matches",
                    Some(_) => "  # pinned, DOES NOT MATCH",
                    None => "",
                };
                println!(
                    "{kind}/{name}: entry: {{ path: {}, sha256: {sha} }}{note}",
                    program.entry
                );
                println!("  # {}", resolved.display());
            }
            Err(e) => {
                eprintln!("{kind}/{name}: cannot read {}: {e}", resolved.display());
                failed = true;
            }
        }
    }
    if failed {
        exit_code::FAILURE
    } else {
        exit_code::OK
    }
}
