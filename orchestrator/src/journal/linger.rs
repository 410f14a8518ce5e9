//! How long the writer keeps a batch open for more commands before it
//! commits ([`Open::next`]).
//!
//! A commit costs far more than what it carries: at 10,000 events a second,
//! committing as soon as anything waits took the writer half a CPU of two.
//! So a batch may wait a little for company, under two rules:
//!
//! - **Marks only** (nobody waits on them): up to [`MARK_LINGER`]; the first
//!   command someone waits on ends the wait.
//! - **Commands someone waits on** (accepts, dead letters, flushes…): only
//!   when callers overlap — at least two of them were already queued when
//!   the batch opened — and only while more keep coming: a gap of
//!   [`DURABLE_GAP`] with nothing new ends the wait, and the batch never
//!   waits longer than [`DURABLE_LINGER`] in all. A lone caller, such as a
//!   connector that awaits each emit's ack before the next, is never held.
//!   The writer sleeps through each gap and then takes what came, rather
//!   than blocking on the channel: a command sent to a receiver that is not
//!   blocked wakes nobody, so the callers' sends stay free of wake-ups
//!   (blocking, the writer was woken for nearly every command: 0.9 context
//!   switches per event at 10,000 events a second).

use std::time::{Duration, Instant};

use super::cmd::Cmd;

/// Most commands in one transaction: bounds the latency one commit adds.
pub(super) const MAX_BATCH: usize = 8192;

/// How long a batch of marks alone waits for more commands before it
/// commits: one commit per delivered event would cost more than the
/// delivery itself.
pub(super) const MARK_LINGER: Duration = Duration::from_millis(5);

/// The longest a batch of overlapping callers is held open, from when it
/// opened: what an ack may be delayed by under load.
pub(super) const DURABLE_LINGER: Duration = Duration::from_millis(1);

/// How long a held batch waits for the next command: nothing within it
/// means the burst is over, and the batch commits.
pub(super) const DURABLE_GAP: Duration = Duration::from_micros(150);

/// What the writer does next with the batch it is gathering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    Commit,
    /// Block on the channel for the next command, at most this long: the
    /// first command ends the wait at once.
    Receive(Duration),
    /// Sleep this long, then take whatever came meanwhile.
    Sleep(Duration),
}

/// What the writer knows of the batch it is gathering.
#[derive(Debug, Clone, Copy)]
pub(super) struct Open {
    /// When its first command was taken.
    since: Instant,
    len: usize,
    /// Commands someone waits on (their answers come with the commit).
    waited_on: usize,
    /// Set by [`Open::opened`]: two or more callers were already queued.
    overlapping: bool,
    stop: bool,
    /// `len` when the last [`Next::Sleep`] began, if one did.
    before_sleep: Option<usize>,
}

impl Open {
    pub fn new(since: Instant) -> Self {
        Open {
            since,
            len: 0,
            waited_on: 0,
            overlapping: false,
            stop: false,
            before_sleep: None,
        }
    }

    /// Counts a command taken into the batch.
    pub fn add(&mut self, cmd: &Cmd) {
        self.len += 1;
        self.waited_on += usize::from(cmd.durable());
        self.stop |= matches!(cmd, Cmd::Stop);
    }

    /// Whether the batch takes no more commands at all.
    pub fn closed(&self) -> bool {
        self.stop || self.len >= MAX_BATCH
    }

    /// Marks the end of the first drain (what was queued when the batch
    /// opened): whether callers overlap is decided here, once.
    pub fn opened(&mut self) {
        self.overlapping = self.waited_on >= 2;
    }

    /// What to do at `now`, with what the batch has taken so far.
    pub fn next(&mut self, now: Instant) -> Next {
        if self.closed() {
            return Next::Commit;
        }
        if self.waited_on == 0 {
            let left = (self.since + MARK_LINGER).saturating_duration_since(now);
            return if left.is_zero() {
                Next::Commit
            } else {
                Next::Receive(left)
            };
        }
        // A sleep that brought nothing new: the burst is over.
        if !self.overlapping || self.before_sleep == Some(self.len) {
            return Next::Commit;
        }
        let left = (self.since + DURABLE_LINGER).saturating_duration_since(now);
        if left.is_zero() {
            return Next::Commit;
        }
        self.before_sleep = Some(self.len);
        Next::Sleep(left.min(DURABLE_GAP))
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;

    fn flush() -> Cmd {
        Cmd::Flush(oneshot::channel().0)
    }

    /// A batch opened at `t0` with `cmds` queued at once.
    fn opened(t0: Instant, cmds: &[Cmd]) -> Open {
        let mut open = Open::new(t0);
        for cmd in cmds {
            open.add(cmd);
        }
        open.opened();
        open
    }

    #[test]
    fn a_lone_caller_is_never_held() {
        let t0 = Instant::now();
        assert_eq!(opened(t0, &[flush()]).next(t0), Next::Commit);
        // Marks beside it are not callers: still one.
        let mut open = opened(
            t0,
            &[Cmd::Marks, flush(), Cmd::Attempted(uuid::Uuid::nil(), 1)],
        );
        assert_eq!(open.next(t0), Next::Commit);
    }

    #[test]
    fn a_caller_arriving_later_does_not_make_a_lone_one_overlap() {
        let t0 = Instant::now();
        let mut open = opened(t0, &[flush()]);
        open.add(&flush());
        assert_eq!(open.next(t0), Next::Commit);
    }

    #[test]
    fn overlapping_callers_sleep_a_gap_at_a_time_while_more_come() {
        let t0 = Instant::now();
        let mut open = opened(t0, &[flush(), flush()]);
        assert_eq!(open.next(t0), Next::Sleep(DURABLE_GAP));
        // Something came during the sleep: another gap.
        open.add(&flush());
        let t1 = t0 + DURABLE_GAP;
        assert_eq!(open.next(t1), Next::Sleep(DURABLE_GAP));
        // Nothing came during that one: commit.
        assert_eq!(open.next(t1 + DURABLE_GAP), Next::Commit);
    }

    #[test]
    fn overlapping_callers_are_held_no_longer_than_the_linger() {
        let t0 = Instant::now();
        let mut open = opened(t0, &[flush(), flush()]);
        open.next(t0);
        open.add(&Cmd::Marks);
        let late = t0 + DURABLE_LINGER - Duration::from_micros(40);
        assert_eq!(open.next(late), Next::Sleep(Duration::from_micros(40)));
        open.add(&flush());
        assert_eq!(open.next(t0 + DURABLE_LINGER), Next::Commit);
    }

    #[test]
    fn marks_alone_wait_on_the_channel_until_a_caller_comes() {
        let t0 = Instant::now();
        let mut open = opened(t0, &[Cmd::Marks]);
        assert_eq!(open.next(t0), Next::Receive(MARK_LINGER));
        assert_eq!(open.next(t0 + MARK_LINGER), Next::Commit);
        // A command someone waits on ends a marks-only wait at once.
        let mut open = opened(t0, &[Cmd::Marks]);
        open.add(&flush());
        assert_eq!(open.next(t0), Next::Commit);
    }

    #[test]
    fn stop_and_a_full_batch_commit_at_once() {
        let t0 = Instant::now();
        assert_eq!(
            opened(t0, &[flush(), flush(), Cmd::Stop]).next(t0),
            Next::Commit
        );
        assert_eq!(opened(t0, &[Cmd::Marks, Cmd::Stop]).next(t0), Next::Commit);
        let mut open = opened(t0, &[flush(), flush()]);
        for _ in 2..MAX_BATCH {
            open.add(&Cmd::Marks);
        }
        assert!(open.closed());
        assert_eq!(open.next(t0), Next::Commit);
    }
}
