//! `orchestrator schema`: the JSON Schema of a bundle document on stdout.

use std::io::Write;

use orchestrator::exit_code;

pub fn main() -> u8 {
    let text = orchestrator::bundle::bundle_schema_text();
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => exit_code::OK,
        Err(e) => {
            eprintln!("orchestrator schema: cannot write to stdout: {e}");
            exit_code::FAILURE
        }
    }
}
