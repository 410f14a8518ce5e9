//! The command line: one module per verb.

mod apply;
mod dlq;
mod invoke;
mod jobs;
mod logs;
mod pin;
mod restart;
mod run;
mod schema;
mod status;
mod validate;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Subcommand)]
enum DlqVerb {
    /// List dead letters, oldest first.
    List {
        /// Print JSON (documented in the README; stable).
        #[arg(long)]
        json: bool,
    },
    /// Deliver a dead letter again (first attempt), or all of them.
    Replay {
        /// The event id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Replay every dead letter.
        #[arg(long)]
        all: bool,
    },
    /// Remove a dead letter for good.
    Drop {
        /// The event id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum JobsVerb {
    /// List the jobs of async operations, oldest first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one job: its state, and its response or error once settled.
    Get {
        /// The job id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a job that has not settled (its instance gets `job.canceled`).
    Cancel {
        /// The job id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `--journal`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Journal {
    /// journal.db in the state directory.
    Durable,
    /// In memory: NOT durable.
    Memory,
}

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
    /// Print the SHA-256 of every program the bundle runs, as a pinned `entry`.
    Pin {
        /// A bundle file, or a directory of YAML files.
        bundle: PathBuf,
    },
    /// Print the JSON Schema (draft 2020-12) of a bundle document, for editors.
    Schema,
    /// Run a bundle in the foreground until SIGINT/SIGTERM.
    Run {
        /// A bundle file, or a directory of YAML files.
        bundle: PathBuf,
        /// Where journal, logs, state and the control socket live (the same rule for every verb).
        #[arg(long, env = "ORCHESTRATOR_STATE_DIR", default_value = ".orchestrator")]
        state_dir: PathBuf,
        /// `durable` (journal.db, survives crashes) or `memory` (NOT durable: for tests and benchmarks).
        #[arg(long, value_enum, default_value_t = Journal::Durable)]
        journal: Journal,
        /// How long delivered events stay in the journal before compaction.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "10m")]
        retention: std::time::Duration,
        /// How long a dedupeKey makes a repeat from the same Connection a duplicate.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
        dedupe_ttl: std::time::Duration,
        /// Accepted events not yet delivered, across every agent instance, at most.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
        max_pending: u64,
        /// The uids (each also a gid) handed out, one per running child, to `sandbox.user: dynamic`.
        #[arg(long, default_value = orchestrator::sandbox::DEFAULT_UID_RANGE)]
        uid_range: orchestrator::sandbox::UidRange,
        /// Invokes let through per second across every Connection (default: no limit).
        #[arg(long)]
        max_invocations_per_second: Option<f64>,
        /// Retries of one invoke at most, whatever an operation's `retry` says.
        #[arg(long, default_value_t = 10)]
        max_retries: u32,
        /// Threads that run the orchestrator's tasks (default: one per CPU it may use).
        #[arg(long, env = "ORCHESTRATOR_WORKERS", value_parser = clap::value_parser!(u16).range(1..=1024))]
        workers: Option<u16>,
        /// Serve Prometheus metrics on http://ADDR/metrics (e.g. 127.0.0.1:9464; port 0 picks one,
        /// written to <state-dir>/metrics.address).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<std::net::SocketAddr>,
        /// Cluster mode: share the swarm with other nodes through these NATS JetStream servers
        /// (comma-separated nats://HOST:PORT; every node runs the same bundle).
        #[arg(long, value_name = "URLS", value_delimiter = ',', requires = "node")]
        cluster: Vec<String>,
        /// This node's name in the cluster (unique; A-Z a-z 0-9 _ -).
        #[arg(long, requires = "cluster")]
        node: Option<String>,
        /// Separates several swarms on one NATS.
        #[arg(long, default_value = "goondan", requires = "cluster")]
        cluster_name: String,
        /// Partitions of (agent, instanceKey) when the cluster is new (then fixed for its name).
        #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=4096), requires = "cluster")]
        partitions: u32,
        /// How long a node's leases outlive it: a node killed is replaced after this.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "5s", requires = "cluster")]
        lease_ttl: std::time::Duration,
    },
    /// Show what `apply` would change in the running orchestrator: exit 0 when
    /// nothing differs, 1 when something does, 3 for an invalid bundle, 2 for other trouble.
    Diff {
        /// A bundle file, or a directory of YAML files.
        bundle: PathBuf,
        /// Print the plan as JSON.
        #[arg(long)]
        json: bool,
        /// The running orchestrator's state directory.
        #[arg(long, env = "ORCHESTRATOR_STATE_DIR", default_value = ".orchestrator")]
        state_dir: PathBuf,
    },
    /// Bring the running orchestrator to a changed bundle, restarting only what changed
    /// (an invalid bundle is refused whole: exit 3, nothing changes).
    Apply {
        /// A bundle file, or a directory of YAML files.
        bundle: PathBuf,
        /// Print the plan carried out as JSON.
        #[arg(long)]
        json: bool,
        /// The most to wait for the apply (graceful restarts included).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
        timeout: std::time::Duration,
        /// The running orchestrator's state directory.
        #[arg(long, env = "ORCHESTRATOR_STATE_DIR", default_value = ".orchestrator")]
        state_dir: PathBuf,
    },
    /// Show every process: state, pid, restarts, last exit and error, events in/out.
    Status {
        /// One process in detail (`connection/<name>`, `agent/<name>/<key>`),
        /// or an Agent's instances (`agent/<name>`).
        target: Option<String>,
        /// The running orchestrator's state directory.
        #[arg(long, env = "ORCHESTRATOR_STATE_DIR", default_value = ".orchestrator")]
        state_dir: PathBuf,
        /// Print JSON (documented in the README; stable).
        #[arg(long)]
        json: bool,
    },
    /// Print (and with -f follow) process logs, interleaved by time.
    Logs {
        /// orchestrator, connection/<name>, agent/<name> or agent/<name>/<instanceKey>; all when omitted.
        target: Option<String>,
        /// Keep printing new lines, across rotation, restarts and new instances.
        #[arg(short, long)]
        follow: bool,
        /// How many past lines per file to print first.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: usize,
        /// The state directory.
        #[arg(long, env = "ORCHESTRATOR_STATE_DIR", default_value = ".orchestrator")]
        state_dir: PathBuf,
    },
    /// The dead-letter queue: events given up on after their attempts.
    Dlq {
        #[command(subcommand)]
        verb: DlqVerb,
        /// The state directory (the journal is used directly when no orchestrator runs there).
        #[arg(
            long,
            global = true,
            env = "ORCHESTRATOR_STATE_DIR",
            default_value = ".orchestrator"
        )]
        state_dir: PathBuf,
    },
    /// Restart a process now, resetting its backoff and crash-loop circuit.
    Restart {
        /// connection/<name>, agent/<name> (every instance) or agent/<name>/<instanceKey>.
        target: String,
        /// The running orchestrator's state directory.
        #[arg(long, env = "ORCHESTRATOR_STATE_DIR", default_value = ".orchestrator")]
        state_dir: PathBuf,
    },
    /// The jobs of async operations: list, show, cancel.
    Jobs {
        #[command(subcommand)]
        verb: JobsVerb,
        /// The running orchestrator's state directory.
        #[arg(
            long,
            global = true,
            env = "ORCHESTRATOR_STATE_DIR",
            default_value = ".orchestrator"
        )]
        state_dir: PathBuf,
    },
    /// Run an operation of a Connection, as the operator, through the same governed path as an agent.
    Invoke {
        /// The Connection.
        connection: String,
        /// The operation.
        operation: String,
        /// Its input, as JSON.
        #[arg(long, default_value = "null")]
        input: String,
        /// Passed to the connector with every attempt.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// The most to wait for the whole invoke (e.g. 5s).
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// Print the result as JSON (the `result` message an agent gets).
        #[arg(long)]
        json: bool,
        /// The running orchestrator's state directory.
        #[arg(long, env = "ORCHESTRATOR_STATE_DIR", default_value = ".orchestrator")]
        state_dir: PathBuf,
    },
}

/// Runs the chosen verb; returns the process exit code.
pub fn dispatch(cli: Cli) -> u8 {
    match cli.command {
        Command::Validate { bundle } => validate::main(&bundle),
        Command::Pin { bundle } => pin::main(&bundle),
        Command::Schema => schema::main(),
        Command::Run {
            bundle,
            state_dir,
            journal,
            retention,
            dedupe_ttl,
            max_pending,
            uid_range,
            max_invocations_per_second,
            max_retries,
            workers,
            metrics,
            cluster,
            node,
            cluster_name,
            partitions,
            lease_ttl,
        } => {
            if max_invocations_per_second.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
                eprintln!("orchestrator: --max-invocations-per-second must be a positive number");
                return orchestrator::exit_code::USAGE;
            }
            let limits = orchestrator::operations::GlobalLimits {
                invocations_per_second: max_invocations_per_second,
                max_retries,
            };
            let mode = match journal {
                Journal::Durable => orchestrator::JournalMode::Durable,
                Journal::Memory => orchestrator::JournalMode::Memory,
            };
            let retention = orchestrator::Retention {
                delivered: retention,
                dedupe_ttl,
            };
            run::main(run::Args {
                bundle,
                state_dir,
                journal: mode,
                retention,
                max_pending: max_pending as usize,
                uid_range,
                operations: limits,
                workers: workers.map_or_else(run::default_workers, usize::from),
                metrics,
                cluster: node.map(|node| orchestrator::cluster::ClusterOptions {
                    urls: cluster,
                    node,
                    name: cluster_name,
                    partitions,
                    lease_ttl: lease_ttl.max(std::time::Duration::from_secs(2)),
                    // `run` sets it from the bundle.
                    keep_results: std::time::Duration::from_secs(24 * 3600),
                }),
            })
        }
        Command::Status {
            target,
            state_dir,
            json,
        } => status::main(&state_dir, target.as_deref(), json),
        Command::Logs {
            target,
            follow,
            lines,
            state_dir,
        } => logs::main(&state_dir, target.as_deref(), follow, lines),
        Command::Restart { target, state_dir } => restart::main(&state_dir, target),
        Command::Diff {
            bundle,
            json,
            state_dir,
        } => {
            let timeout = std::time::Duration::from_secs(60);
            apply::main(&state_dir, &bundle, false, json, timeout)
        }
        Command::Apply {
            bundle,
            json,
            timeout,
            state_dir,
        } => apply::main(&state_dir, &bundle, true, json, timeout),
        Command::Invoke {
            connection,
            operation,
            input,
            idempotency_key,
            timeout,
            json,
            state_dir,
        } => invoke::main(
            &state_dir,
            invoke::Args {
                connection,
                operation,
                input,
                idempotency_key,
                timeout,
                json,
            },
        ),
        Command::Jobs { verb, state_dir } => {
            use orchestrator::control::Request;
            let (req, json) = match verb {
                JobsVerb::List { json } => (Request::JobsList, json),
                JobsVerb::Get { id, json } => (Request::JobGet { id }, json),
                JobsVerb::Cancel { id, json } => (Request::JobCancel { id }, json),
            };
            jobs::main(&state_dir, req, json)
        }
        Command::Dlq { verb, state_dir } => {
            let (req, json) = match verb {
                DlqVerb::List { json } => (orchestrator::control::Request::DlqList, json),
                DlqVerb::Replay { id, .. } => {
                    (orchestrator::control::Request::DlqReplay { id }, false)
                }
                DlqVerb::Drop { id } => (orchestrator::control::Request::DlqDrop { id }, false),
            };
            dlq::main(&state_dir, req, json)
        }
    }
}
