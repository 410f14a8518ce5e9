//! `orchestrator`: parse arguments, set up tracing, hand over to the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                orchestrator::exit_code::USAGE
            } else {
                0
            });
        }
    };
    ExitCode::from(cli::dispatch(args))
}
