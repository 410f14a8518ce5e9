//! `orchestrator run BUNDLE [--state-dir D]`.

use std::path::PathBuf;

use orchestrator::logs::lock::{Role, lock};
use orchestrator::logs::{LogOptions, StateDir, TracingLog};
use orchestrator::{JournalMode, Retention, RunError, RunOptions, exit_code};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// What `orchestrator run` was asked.
pub struct Args {
    pub bundle: PathBuf,
    pub state_dir: PathBuf,
    pub journal: JournalMode,
    pub retention: Retention,
    pub max_pending: usize,
    pub uid_range: orchestrator::sandbox::UidRange,
    pub operations: orchestrator::operations::GlobalLimits,
    pub workers: usize,
    pub metrics: Option<std::net::SocketAddr>,
    pub cluster: Option<orchestrator::cluster::ClusterOptions>,
}

/// `--workers` when not given: one per CPU this process may use. On two
/// cores one worker spends 5–15% less CPU per event than two (a delivery
/// and its ack no longer wake a thread on the other core), but a single
/// worker has no one to take over while the journal's writer thread holds
/// its CPU, and the latency tail grows several-fold (README, Benchmarks).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn main(args: Args) -> u8 {
    let Args {
        bundle,
        state_dir,
        journal,
        retention,
        max_pending,
        uid_range,
        operations,
        workers,
        metrics,
        cluster,
    } = args;
    // Not dumpable: no process of the same uid (a sandboxed child running
    // as root, say) may read our memory, environ or fds, or attach to us.
    // SAFETY: prctl with these arguments only changes this process's flag.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    // Whatever the orchestrator creates (journal.db, control.sock, state
    // directories) is private from the first byte; children inherit it.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    // One orchestrator per state directory, held until this function returns.
    let _lock = match lock(&state_dir, Role::Run) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("orchestrator: {e}");
            return exit_code::FAILURE;
        }
    };
    if let Err(e) = init_tracing(&state_dir) {
        eprintln!(
            "orchestrator: cannot open the log in {}: {e}",
            state_dir.display()
        );
        return exit_code::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("orchestrator: cannot start the runtime: {e}");
            return exit_code::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let stop = CancellationToken::new();
        let kill_now = CancellationToken::new();
        let reload = std::sync::Arc::new(tokio::sync::Notify::new());
        tokio::spawn(watch_signals(
            stop.clone(),
            kill_now.clone(),
            reload.clone(),
        ));
        let shim = std::env::current_exe().ok();
        orchestrator::run(
            RunOptions {
                bundle,
                state_dir,
                shim,
                journal,
                retention,
                max_pending,
                console: orchestrator::console::Console::stdout(),
                uid_range,
                operations,
                metrics,
                reload: Some(reload),
                cluster,
            },
            stop,
            kill_now,
        )
        .await
    });
    // Every log line written before the lock is released.
    drop(runtime);
    let code = exit_code_of(result);
    orchestrator::logs::flush();
    code
}

fn exit_code_of(result: Result<(), RunError>) -> u8 {
    match result {
        Ok(()) => exit_code::OK,
        Err(RunError::InvalidBundle(errors)) => {
            for e in &errors {
                eprintln!("{e}");
            }
            exit_code::INVALID_BUNDLE
        }
        Err(e) => {
            // The whole chain: "journal: cannot open …: Database already open".
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !message.contains(&cause_text) {
                    message.push_str(&format!(": {cause_text}"));
                }
                source = cause.source();
            }
            tracing::error!("{message}");
            exit_code::FAILURE
        }
    }
}

/// The first SIGINT/SIGTERM stops gracefully; the second kills at once.
/// SIGHUP applies the bundle again (as `orchestrator apply` would).
async fn watch_signals(
    stop: CancellationToken,
    kill_now: CancellationToken,
    reload: std::sync::Arc<tokio::sync::Notify>,
) {
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    for (i, token) in [stop, kill_now].into_iter().enumerate() {
        loop {
            tokio::select! {
                _ = int.recv() => break,
                _ = term.recv() => break,
                // Not a reason to stop: re-read the bundle and apply it.
                _ = hup.recv() => reload.notify_one(),
            }
        }
        if i == 0 {
            tracing::info!("signal received: stopping gracefully (send another to kill at once)");
        } else {
            tracing::warn!("second signal: killing every child now");
        }
        token.cancel();
    }
}

/// Logs to stderr and to `logs/orchestrator.log` in the state directory
/// (rotated like the other logs, written by the log writer thread).
fn init_tracing(state_dir: &std::path::Path) -> std::io::Result<()> {
    let path = StateDir::at(state_dir).orchestrator_log();
    let file = TracingLog::open(&path, LogOptions::default())?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let stderr = TracingLog::stderr(ansi)?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(ansi)
                .with_writer(stderr),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(file),
        )
        .init();
    Ok(())
}
