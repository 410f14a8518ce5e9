//! The command line: one module per verb.

mod run;
mod validate;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// A supervisor for event-driven agent swarms.
#[derive(Debug, Parser)]
#[command(name = "orchestrator", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a bundle; print every error with its file:line:column.
    Validate {
        /// A bundle file, or a directory of YAML files.
        bundle: PathBuf,
    },
    /// Run a bundle in the foreground until SIGINT/SIGTERM.
    Run {
        /// A bundle file, or a directory of YAML files.
        bundle: PathBuf,
        /// Where journal, logs, state and the control socket live [default: .orchestrator/ beside the bundle].
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
}

/// Runs the chosen verb; returns the process exit code.
pub fn dispatch(cli: Cli) -> u8 {
    match cli.command {
        Command::Validate { bundle } => validate::main(&bundle),
        Command::Run { bundle, state_dir } => run::main(bundle, state_dir),
    }
}
