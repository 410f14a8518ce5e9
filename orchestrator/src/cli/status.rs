//! `orchestrator status [--json]`.

use std::path::Path;

use orchestrator::control::{Request, request};
use orchestrator::exit_code;
use orchestrator::logs::StateDir;

pub fn main(state_dir: &Path, json: bool) -> u8 {
    let state = StateDir::at(state_dir);
    let response = match request(&state.control_socket(), &Request::Status) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orchestrator: {e}");
            return exit_code::FAILURE;
        }
    };
    let Some(processes) = response.processes.filter(|_| response.ok) else {
        eprintln!(
            "orchestrator: {}",
            response
                .error
                .unwrap_or_else(|| "no status in the answer".into())
        );
        return exit_code::FAILURE;
    };
    if json {
        match serde_json::to_string_pretty(&serde_json::json!({ "processes": processes })) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("orchestrator: {e}");
                return exit_code::FAILURE;
            }
        }
    } else {
        print!("{}", orchestrator::status::render_table(&processes));
    }
    exit_code::OK
}
