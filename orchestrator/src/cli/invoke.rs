//! `orchestrator invoke CONNECTION OPERATION --input JSON [--idempotency-key K] [--timeout 5s] [--json]`.

use std::path::Path;
use std::time::Duration;

use orchestrator::control::{Request, request};
use orchestrator::exit_code;
use orchestrator::logs::StateDir;

/// What was asked on the command line.
pub struct Args {
    pub connection: String,
    pub operation: String,
    pub input: String,
    pub idempotency_key: Option<String>,
    pub timeout: Option<Duration>,
    pub json: bool,
}

pub fn main(state_dir: &Path, args: Args) -> u8 {
    let input: serde_json::Value = match serde_json::from_str(&args.input) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("orchestrator: --input is not JSON: {e}");
            return exit_code::USAGE;
        }
    };
    let req = Request::Invoke {
        connection: args.connection,
        operation: args.operation,
        input,
        idempotency_key: args.idempotency_key,
        timeout_ms: args.timeout.map(|t| t.as_millis() as u64),
    };
    let state = StateDir::at(state_dir);
    let response = match request(&state.control_socket(), &req) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orchestrator: {e}");
            return exit_code::FAILURE;
        }
    };
    let Some(result) = response.result.filter(|_| response.ok) else {
        eprintln!("orchestrator: {}", response.error.unwrap_or_default());
        return exit_code::FAILURE;
    };
    if args.json {
        match serde_json::to_string_pretty(&result) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("orchestrator: {e}");
                return exit_code::FAILURE;
            }
        }
    } else if let Some(r) = &result.response {
        let m = &r.metadata;
        println!(
            "ok: {} attempt(s), {} ms, request {}",
            m.attempts, m.duration_ms, m.request_id
        );
        println!(
            "{}",
            serde_json::to_string_pretty(&r.data.0).unwrap_or_default()
        );
    } else if let Some(e) = &result.error {
        eprintln!(
            "orchestrator: {}: {} ({} attempt(s))",
            e.class, e.message, e.attempts
        );
    }
    if result.ok {
        exit_code::OK
    } else {
        exit_code::FAILURE
    }
}
