//! The writer thread: the only place that writes to the database.
//!
//! It blocks for the first command, drains whatever else is queued, may wait
//! a little for more (the rules, and why, are in [`super::linger`]), applies
//! it all in one write transaction, commits once, and only then answers
//! every caller of the batch. Delivered marks come outside the channel,
//! taken whole with each batch (see [`Marks`]). A batch holding anything a
//! caller waits on commits with `Durability::Immediate` (one fsync for all of
//! it); a batch of delivered/attempted marks only commits with
//! `Durability::None`: visible then, made durable by the next immediate
//! commit, which comes with the next accept or at most `mark_sync_interval`
//! later (an idle writer wakes up for it). A storage failure fails every
//! caller in the batch and nothing of it is kept.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Instant;

use redb::{Database, Durability};
use uuid::Uuid;

use super::cmd::{Cmd, Done, fatal, finish, marked_in_batch};
use super::linger::{Next, Open};
use super::records::{duration_ms, millis};
use super::stats::Stats;
use super::tables::{Sizes, Tables};
use super::{Accepted, JournalError, JournalOptions, Marks};

/// What one batch changed, applied to [`Stats`] only once it committed.
#[derive(Default)]
struct Delta {
    accepted: u64,
    duplicates: u64,
    delivered: u64,
    dead_lettered: u64,
    replayed: u64,
}

/// The writer's state, owned by its thread.
pub(super) struct Writer {
    db: Arc<Database>,
    rx: mpsc::Receiver<Cmd>,
    marks: Arc<Marks>,
    stats: Arc<Stats>,
    opts: JournalOptions,
    commits_since_compact: u64,
    last_compact: Instant,
    /// When the oldest commit not yet made durable happened.
    unsynced_since: Option<Instant>,
    /// `orchestrator_journal_commit_seconds`, `orchestrator_journal_batch_size`.
    commit_seconds: metrics::Histogram,
    batch_size: metrics::Histogram,
}

impl Writer {
    /// Starts the writer thread.
    pub fn spawn(
        db: Arc<Database>,
        rx: mpsc::Receiver<Cmd>,
        marks: Arc<Marks>,
        stats: Arc<Stats>,
        opts: JournalOptions,
    ) -> std::io::Result<JoinHandle<()>> {
        let writer = Writer {
            db,
            rx,
            marks,
            stats,
            opts,
            commits_since_compact: 0,
            last_compact: Instant::now(),
            unsynced_since: None,
            commit_seconds: crate::metrics::journal().0,
            batch_size: crate::metrics::journal().1,
        };
        std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer.run())
    }

    fn run(mut self) {
        loop {
            let wait = self.next_wakeup().saturating_duration_since(Instant::now());
            let first = match self.rx.recv_timeout(wait) {
                Ok(cmd) => cmd,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let (cmds, marks) = self.gather(Vec::new());
                    self.batch(cmds, marks, false);
                    continue;
                }
                // Every handle is gone without a Stop: still leave nothing unsynced.
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let mut open = Open::new(Instant::now());
            let mut cmds = Vec::new();
            take(&mut open, &mut cmds, first);
            // What is queued already, then (see `linger`) maybe more.
            self.drain(&mut open, &mut cmds);
            open.opened();
            loop {
                match open.next(Instant::now()) {
                    Next::Commit => break,
                    Next::Receive(wait) => match self.rx.recv_timeout(wait) {
                        Ok(cmd) => take(&mut open, &mut cmds, cmd),
                        Err(_) => break,
                    },
                    Next::Sleep(gap) => {
                        std::thread::sleep(gap);
                        self.drain(&mut open, &mut cmds);
                    }
                }
            }
            let (cmds, marks) = self.gather(cmds);
            let stop = cmds.iter().any(|c| matches!(c, Cmd::Stop));
            self.batch(cmds, marks, stop);
            if stop {
                return;
            }
        }
        let (cmds, marks) = self.gather(Vec::new());
        self.batch(cmds, marks, true);
    }

    /// Takes what is in the channel now into the batch, while it takes more.
    fn drain(&self, open: &mut Open, cmds: &mut Vec<Cmd>) {
        while !open.closed() {
            let Ok(cmd) = self.rx.try_recv() else { break };
            take(open, cmds, cmd);
        }
    }

    /// Takes every delivered mark, then everything still in the channel:
    /// the accept of each mark's event is in it or in `cmds` (see [`Marks`]).
    fn gather(&self, mut cmds: Vec<Cmd>) -> (Vec<Cmd>, Vec<Uuid>) {
        let marks = self.marks.take();
        if !marks.is_empty() {
            while let Ok(cmd) = self.rx.try_recv() {
                cmds.push(cmd);
            }
        }
        (cmds, marks)
    }

    /// When the writer must wake up with nothing queued: periodic compaction,
    /// or making marks durable.
    fn next_wakeup(&self) -> Instant {
        let compact = self.last_compact + self.opts.compact_interval;
        match self.unsynced_since {
            Some(t) => compact.min(t + self.opts.mark_sync_interval),
            None => compact,
        }
    }

    /// Applies `cmds` in one transaction and answers their callers.
    fn batch(&mut self, cmds: Vec<Cmd>, marks: Vec<Uuid>, last: bool) {
        let now = Instant::now();
        let compact = self.commits_since_compact + 1 >= self.opts.compact_every_commits
            || now.duration_since(self.last_compact) >= self.opts.compact_interval;
        let sync_marks = self
            .unsynced_since
            .is_some_and(|t| last || now.duration_since(t) >= self.opts.mark_sync_interval);
        if cmds.is_empty() && marks.is_empty() && !compact && !sync_marks {
            return;
        }
        let durable = sync_marks || cmds.iter().any(Cmd::durable);

        let mut answers = Vec::with_capacity(cmds.len());
        let mut delta = Delta::default();
        self.batch_size.record((cmds.len() + marks.len()) as f64);
        let started = Instant::now();
        let result = self.transact(cmds, &marks, compact, durable, &mut answers, &mut delta);
        self.commit_seconds.record(started.elapsed().as_secs_f64());
        match result {
            Ok(sizes) => {
                self.count(delta, sizes, durable);
                if compact {
                    self.commits_since_compact = 0;
                    self.last_compact = now;
                    self.stats.compactions.fetch_add(1, Ordering::Relaxed);
                }
                if durable {
                    self.unsynced_since = None;
                } else {
                    self.unsynced_since.get_or_insert(now);
                }
                for answer in answers {
                    answer(None);
                }
            }
            Err(e) => {
                tracing::error!("journal commit failed: {e}");
                // Retry timed work after its interval, not in a tight loop.
                if compact {
                    self.last_compact = now;
                }
                if let Some(t) = &mut self.unsynced_since {
                    *t = now;
                }
                for answer in answers {
                    answer(Some(&e));
                }
            }
        }
    }

    fn transact(
        &self,
        cmds: Vec<Cmd>,
        marks: &[Uuid],
        compact: bool,
        durable: bool,
        answers: &mut Vec<Done>,
        delta: &mut Delta,
    ) -> Result<Sizes, Arc<redb::Error>> {
        let mut cmds = cmds.into_iter();
        let result = self.write(&mut cmds, marks, compact, durable, answers, delta);
        if result.is_err() {
            answers.extend(cmds.filter_map(Cmd::unreached));
        }
        result
    }

    fn write(
        &self,
        cmds: &mut std::vec::IntoIter<Cmd>,
        marks: &[Uuid],
        compact: bool,
        durable: bool,
        answers: &mut Vec<Done>,
        delta: &mut Delta,
    ) -> Result<Sizes, Arc<redb::Error>> {
        let now_ms = millis(self.opts.clock.now());
        let mut marked = marked_in_batch(cmds.as_slice(), marks);
        let mut txn = self.db.begin_write().map_err(fatal)?;
        let sizes = {
            let mut tables = Tables::open(&txn).map_err(fatal)?;
            for cmd in cmds.by_ref() {
                self.apply(&mut tables, cmd, now_ms, &mut marked, answers, delta)?;
            }
            // After the commands: each mark's accept is among them or earlier.
            // Those whose accept was among them are done already.
            for &id in marks {
                if !marked.remove(&id) && tables.delivered(id, now_ms).map_err(fatal)? {
                    delta.delivered += 1;
                }
            }
            if compact {
                let (retention, ttl) = (self.opts.retention, self.opts.dedupe_ttl);
                tables
                    .compact(now_ms, duration_ms(retention), duration_ms(ttl))
                    .map_err(fatal)?;
                let cutoff = now_ms.saturating_sub(duration_ms(self.opts.idempotency_ttl));
                tables.forget_results_before(cutoff).map_err(fatal)?;
                tables.forget_jobs_before(cutoff).map_err(fatal)?;
            }
            tables.sizes().map_err(fatal)?
        };
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        txn.set_durability(durability).map_err(fatal)?;
        txn.commit().map_err(fatal)?;
        Ok(sizes)
    }

    /// Applies one command; `Err` only for a storage failure, which aborts the batch.
    ///
    /// `marked`: the ids whose accept and delivered mark are both in this
    /// batch. Such an event is written delivered at once, and its id is kept
    /// in `marked` (the mark is then done); an accept that records nothing
    /// (a duplicate) takes its id out, so the mark is applied the usual way.
    fn apply(
        &self,
        tables: &mut Tables<'_>,
        cmd: Cmd,
        now_ms: u64,
        marked: &mut HashSet<Uuid>,
        answers: &mut Vec<Done>,
        delta: &mut Delta,
    ) -> Result<(), Arc<redb::Error>> {
        match cmd {
            Cmd::Accept {
                id,
                record,
                dedupe,
                reply,
            } => {
                let key = dedupe.as_ref().map(|(c, k)| (c.as_str(), k.as_str()));
                let ttl = duration_ms(self.opts.dedupe_ttl);
                let delivered = record.is_some() && marked.contains(&id);
                let result = tables.accept(id, record.as_deref(), key, now_ms, ttl, delivered);
                let written_delivered = delivered && matches!(result, Ok(Accepted::New));
                if written_delivered {
                    delta.delivered += 1;
                } else {
                    marked.remove(&id);
                }
                match &result {
                    Ok(Accepted::New) => delta.accepted += 1,
                    Ok(Accepted::Duplicate { .. }) => delta.duplicates += 1,
                    Err(_) => {}
                }
                finish(reply, result, answers)
            }
            Cmd::Marks => Ok(()),
            Cmd::Attempted(id, n) => tables.attempted(id, n).map_err(fatal),
            Cmd::DeadLetter {
                id,
                attempts,
                error,
                reply,
            } => {
                let result = tables.dead_letter(id, attempts, error, now_ms);
                if result.is_ok() {
                    delta.dead_lettered += 1;
                }
                finish(reply, result, answers)
            }
            Cmd::Replay(id, reply) => {
                let result = tables.replay(id);
                if result.is_ok() {
                    delta.replayed += 1;
                }
                finish(reply, result, answers)
            }
            Cmd::ReplayAll(reply) => {
                let result = tables.replay_all();
                if let Ok(all) = &result {
                    delta.replayed += all.len() as u64;
                }
                finish(reply, result, answers)
            }
            Cmd::DropDead(id, reply) => finish(reply, tables.drop_dead(id), answers),
            Cmd::Remember { key, result, reply } => {
                finish(reply, tables.remember(&key, now_ms, &result), answers)
            }
            Cmd::PutJob {
                id,
                settled,
                record,
                reply,
            } => finish(reply, tables.put_job(id, settled, now_ms, &record), answers),
            Cmd::Compact(reply) => {
                let (retention, ttl) = (self.opts.retention, self.opts.dedupe_ttl);
                let result = tables
                    .compact(now_ms, duration_ms(retention), duration_ms(ttl))
                    .and_then(|stats| {
                        let cutoff = now_ms.saturating_sub(duration_ms(self.opts.idempotency_ttl));
                        tables.forget_results_before(cutoff)?;
                        tables.forget_jobs_before(cutoff).map(|_| stats)
                    });
                finish(reply, result.map_err(JournalError::storage), answers)
            }
            Cmd::Flush(reply) => finish(reply, Ok(()), answers),
            Cmd::Stop => Ok(()),
        }
    }

    fn count(&mut self, d: Delta, sizes: Sizes, durable: bool) {
        let s = &self.stats;
        s.accepted.fetch_add(d.accepted, Ordering::Relaxed);
        s.duplicates.fetch_add(d.duplicates, Ordering::Relaxed);
        s.delivered.fetch_add(d.delivered, Ordering::Relaxed);
        s.dead_lettered
            .fetch_add(d.dead_lettered, Ordering::Relaxed);
        s.replayed.fetch_add(d.replayed, Ordering::Relaxed);
        s.commits.fetch_add(1, Ordering::Relaxed);
        if durable {
            s.durable_commits.fetch_add(1, Ordering::Relaxed);
        }
        s.set_sizes(sizes);
        self.commits_since_compact += 1;
    }
}

/// One command into the batch being gathered.
fn take(open: &mut Open, cmds: &mut Vec<Cmd>, cmd: Cmd) {
    open.add(&cmd);
    cmds.push(cmd);
}
