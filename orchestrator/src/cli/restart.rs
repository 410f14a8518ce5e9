//! `orchestrator restart TARGET`.

use std::path::Path;

use orchestrator::control::{Request, request};
use orchestrator::exit_code;
use orchestrator::logs::StateDir;

pub fn main(state_dir: &Path, target: String) -> u8 {
    let state = StateDir::at(state_dir);
    match request(&state.control_socket(), &Request::Restart { target }) {
        Ok(r) if r.ok => {
            for t in r.restarted.unwrap_or_default() {
                println!("restarting {t}");
            }
            exit_code::OK
        }
        Ok(r) => {
            eprintln!("orchestrator: {}", r.error.unwrap_or_default());
            exit_code::FAILURE
        }
        Err(e) => {
            eprintln!("orchestrator: {e}");
            exit_code::FAILURE
        }
    }
}
