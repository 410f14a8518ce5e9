//! `orchestrator diff BUNDLE` and `orchestrator apply BUNDLE`.

use std::path::Path;
use std::time::Duration;

use orchestrator::control::{Request, Response, request_within};
use orchestrator::exit_code;
use orchestrator::logs::StateDir;

/// `diff`'s exit code when the bundle differs from the running one (like diff(1)).
const DIFFERS: u8 = 1;
/// `diff`'s exit code for any other trouble (like diff(1)).
const TROUBLE: u8 = 2;

/// Runs `diff` (`apply: false`) or `apply` against the orchestrator of `state_dir`.
pub fn main(state_dir: &Path, bundle: &Path, apply: bool, json: bool, timeout: Duration) -> u8 {
    let failure = if apply { exit_code::FAILURE } else { TROUBLE };
    let bundle = match std::path::absolute(bundle) {
        Ok(p) => p.display().to_string(),
        Err(e) => {
            eprintln!("orchestrator: {}: {e}", bundle.display());
            return failure;
        }
    };
    let req = if apply {
        Request::Apply { bundle }
    } else {
        Request::Diff { bundle }
    };
    let socket = StateDir::at(state_dir).control_socket();
    let response = match request_within(&socket, &req, timeout) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orchestrator: {e}");
            return failure;
        }
    };
    let Response {
        ok,
        error,
        plan,
        diagnostics,
        ..
    } = response;
    if !ok {
        for d in diagnostics.as_deref().unwrap_or_default() {
            eprintln!("{d}");
        }
        eprintln!("orchestrator: {}", error.unwrap_or_default());
        return if diagnostics.is_some() {
            exit_code::INVALID_BUNDLE
        } else {
            failure
        };
    }
    let plan = plan.unwrap_or_default();
    if json {
        match serde_json::to_string_pretty(&plan) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("orchestrator: {e}");
                return failure;
            }
        }
    } else {
        print!("{}", plan.render());
        if apply && !plan.is_empty() {
            println!("applied");
        }
    }
    match (apply, plan.is_empty()) {
        (false, false) => DIFFERS,
        _ => exit_code::OK,
    }
}
