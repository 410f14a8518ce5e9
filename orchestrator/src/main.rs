//! `orchestrator`: parse arguments, set up tracing, hand over to the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // The shim must start before anything else (no threads, no runtime).
    let mut args = std::env::args_os();
    if args
        .nth(1)
        .is_some_and(|a| a == orchestrator::shim::SHIM_ARG)
    {
        orchestrator::shim::main(args.collect());
    }
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
