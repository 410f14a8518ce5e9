//! The terminal of a foreground `orchestrator run`: one line per lifecycle
//! change of each child (started, ready, exited and why, restarting, failed,
//! crash loop), prefixed by the child like `docker compose` does, in colour
//! only on a terminal and without `NO_COLOR`.
//!
//! Writing never blocks the orchestrator: lines go through a bounded queue to
//! one thread that owns stdout. A terminal that does not keep up (or a pipe
//! nobody reads) loses lines, counted and reported once there is room.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};

/// Lines waiting for the terminal before new ones are dropped.
const QUEUE: usize = 1024;

/// Width the `target |` prefix is padded to.
const PREFIX_WIDTH: usize = 24;

/// ANSI colours the prefixes cycle through (by a hash of the target).
const COLOURS: [u8; 6] = [36, 33, 32, 35, 34, 31];

/// A cloneable handle to the terminal; [`Console::silent`] prints nothing.
#[derive(Clone, Debug, Default)]
pub struct Console {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    tx: SyncSender<String>,
    colour: bool,
    dropped: AtomicU64,
}

impl Console {
    /// Prints nothing (tests that run the orchestrator in process).
    pub fn silent() -> Self {
        Self::default()
    }

    /// Prints to stdout; in colour when stdout is a terminal and `NO_COLOR` is unset.
    pub fn stdout() -> Self {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let (tx, rx) = sync_channel::<String>(QUEUE);
        let spawned = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || {
                let mut out = std::io::stdout().lock();
                for line in rx {
                    if out.write_all(line.as_bytes()).is_err() || out.flush().is_err() {
                        return;
                    }
                }
            });
        if spawned.is_err() {
            return Self::silent();
        }
        Self {
            inner: Some(Arc::new(Inner {
                tx,
                colour,
                dropped: AtomicU64::new(0),
            })),
        }
    }

    /// One line about `target` (`connection/hook`, `agent/echo/ada`).
    pub fn line(&self, target: &str, text: &str) {
        let Some(inner) = &self.inner else {
            return;
        };
        let dropped = inner.dropped.swap(0, Ordering::Relaxed);
        let mut line = String::new();
        if dropped > 0 {
            line.push_str(&format!(
                "({dropped} lines dropped: the terminal was slow)\n"
            ));
        }
        line.push_str(&render(target, text, inner.colour));
        match inner.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                inner.dropped.fetch_add(dropped + 1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// `target | text`, the prefix padded and, with `colour`, coloured.
pub fn render(target: &str, text: &str, colour: bool) -> String {
    let text = crate::logs::escape_controls(text);
    let pad = PREFIX_WIDTH.saturating_sub(target.chars().count());
    if colour {
        let hash = target.bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        let code = COLOURS[hash % COLOURS.len()];
        format!("\x1b[{code}m{target}{:pad$} |\x1b[0m {text}\n", "")
    } else {
        format!("{target}{:pad$} | {text}\n", "")
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn plain_lines_have_no_escapes_and_a_padded_prefix() {
        let line = render("connection/hook", "ready (pid 7)", false);
        assert_eq!(line, "connection/hook          | ready (pid 7)\n");
        assert!(!line.contains('\x1b'));
    }

    #[test]
    fn coloured_lines_colour_only_the_prefix() {
        let line = render("agent/echo/ada", "exited: exit code 1", true);
        assert!(line.starts_with("\x1b["), "{line:?}");
        assert!(line.ends_with("|\x1b[0m exited: exit code 1\n"), "{line:?}");
    }

    #[test]
    fn a_child_cannot_put_escapes_or_lines_on_the_terminal() {
        let line = render("connection/x", "a\nforged | line\x1b[2J", false);
        assert_eq!(line.matches('\n').count(), 1, "{line:?}");
        assert!(!line.contains('\x1b'), "{line:?}");
    }
}
