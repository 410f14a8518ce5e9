//! `orchestrator validate BUNDLE`.

use std::path::Path;

use orchestrator::exit_code;

pub fn main(path: &Path) -> u8 {
    match orchestrator::load_checked(path) {
        Ok((bundle, _)) => {
            println!(
                "{}: valid ({} connectors, {} connections, {} swarms, {} agents, {} secrets)",
                path.display(),
                bundle.connectors.len(),
                bundle.connections.len(),
                bundle.swarms.len(),
                bundle.agents.len(),
                bundle.secrets.len(),
            );
            exit_code::OK
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            let n = errors.len();
            eprintln!(
                "{}: {n} error{}",
                path.display(),
                if n == 1 { "" } else { "s" }
            );
            exit_code::INVALID_BUNDLE
        }
    }
}
