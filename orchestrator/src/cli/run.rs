//! `orchestrator run BUNDLE [--state-dir D]`.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::Arc;

use orchestrator::{JournalMode, Retention, RunError, RunOptions, exit_code};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub fn main(
    bundle: PathBuf,
    state_dir: Option<PathBuf>,
    journal: JournalMode,
    retention: Retention,
    max_pending: usize,
    uid_range: orchestrator::sandbox::UidRange,
) -> u8 {
    // Not dumpable: no process of the same uid (a sandboxed child running
    // as root, say) may read our memory, environ or fds, or attach to us.
    // SAFETY: prctl with these arguments only changes this process's flag.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    let state_dir = state_dir.unwrap_or_else(|| orchestrator::default_state_dir(&bundle));
    if let Err(e) = init_tracing(&state_dir) {
        eprintln!(
            "orchestrator: cannot open the log in {}: {e}",
            state_dir.display()
        );
        return exit_code::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
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
        tokio::spawn(watch_signals(stop.clone(), kill_now.clone()));
        let shim = std::env::current_exe().ok();
        orchestrator::run(
            RunOptions {
                bundle,
                state_dir,
                shim,
                journal,
                retention,
                max_pending,
                uid_range,
            },
            stop,
            kill_now,
        )
        .await
    });
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
async fn watch_signals(stop: CancellationToken, kill_now: CancellationToken) {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    for (i, token) in [stop, kill_now].into_iter().enumerate() {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        if i == 0 {
            tracing::info!("signal received: stopping gracefully (send another to kill at once)");
        } else {
            tracing::warn!("second signal: killing every child now");
        }
        token.cancel();
    }
}

/// Logs to stderr and to `logs/orchestrator.log` in the state directory.
fn init_tracing(state_dir: &std::path::Path) -> std::io::Result<()> {
    let logs = state_dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(logs.join("orchestrator.log"))?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(Arc::new(file)),
        )
        .init();
    Ok(())
}
