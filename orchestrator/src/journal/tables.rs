//! The tables and every change the writer makes to them.
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `events` | event id | [`EventRecord`] JSON, from accept until compacted (pending, then delivered and kept for `retention`) |
//! | `pending_ids` | event id | attempts made (0 until a retry records more); one entry per pending event |
//! | `delivered_at` | (delivered at ms, event id) | nothing: the retention index |
//! | `dead` | event id | [`DeadRecord`] JSON |
//! | `dedupe` | (connection, dedupe key) | (first event id, accepted at ms) |
//! | `dedupe_expiry` | (accepted at ms, event id) | (connection, dedupe key) |
//! | `idempotency` | (connection, operation, idempotency key) | (remembered at ms, the first result as JSON) |
//! | `jobs` | job id | (updated at ms, settled 0/1, the job record as JSON) |
//!
//! Event ids are UUIDv7 keys, so id order is acceptance order. The two tables
//! keyed by time exist so compaction finds what expired by a key range
//! instead of a scan.
//!
//! A record is written once, at accept. Marking it delivered moves its id
//! from `pending_ids` to `delivered_at` (two small entries) and leaves the
//! record where it is; compaction deletes it. An event whose delivered mark
//! reaches the writer in the same batch as its accept (it went to its agent
//! while its commit was under way) is written straight into `delivered_at`,
//! never pending. Files written before this
//! layout (`pending` with the records, `attempts`, `delivered` with a copy of
//! each record) are converted when opened ([`super::migrate`]).

use redb::{ReadableTable, ReadableTableMetadata, Table, TableDefinition};
use redb::{StorageError, TableError, WriteTransaction};
use uuid::Uuid;

use super::records::{DeadRecord, EventRecord, decode, encode};
use super::{Accepted, CompactStats, JournalError, JournaledEvent};

pub(super) const EVENTS: TableDefinition<Uuid, &[u8]> = TableDefinition::new("events");
pub(super) const PENDING_IDS: TableDefinition<Uuid, u32> = TableDefinition::new("pending_ids");
pub(super) const DELIVERED_AT: TableDefinition<(u64, Uuid), ()> =
    TableDefinition::new("delivered_at");
pub(super) const DEAD: TableDefinition<Uuid, &[u8]> = TableDefinition::new("dead");
const DEDUPE: TableDefinition<(&str, &str), (Uuid, u64)> = TableDefinition::new("dedupe");
const DEDUPE_EXPIRY: TableDefinition<(u64, Uuid), (&str, &str)> =
    TableDefinition::new("dedupe_expiry");
pub(super) const IDEMPOTENCY: TableDefinition<(&str, &str, &str), (u64, &[u8])> =
    TableDefinition::new("idempotency");
pub(super) const JOBS: TableDefinition<Uuid, (u64, u8, &[u8])> = TableDefinition::new("jobs");

/// Most expired deliveries compaction reads before deleting them.
const COMPACT_SLICE: usize = 4096;

/// How many entries each table holds.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Sizes {
    pub pending: u64,
    pub delivered: u64,
    pub dead: u64,
    pub dedupe: u64,
}

/// The tables, open in one write transaction.
pub(super) struct Tables<'t> {
    events: Table<'t, Uuid, &'static [u8]>,
    pending: Table<'t, Uuid, u32>,
    delivered: Table<'t, (u64, Uuid), ()>,
    dead: Table<'t, Uuid, &'static [u8]>,
    dedupe: Table<'t, (&'static str, &'static str), (Uuid, u64)>,
    expiry: Table<'t, (u64, Uuid), (&'static str, &'static str)>,
    idempotency: Table<'t, (&'static str, &'static str, &'static str), (u64, &'static [u8])>,
    jobs: Table<'t, Uuid, (u64, u8, &'static [u8])>,
}

fn not_pending(id: Uuid) -> JournalError {
    JournalError::NotFound {
        id: id.to_string(),
        place: "pending",
    }
}

fn not_dead(id: Uuid) -> JournalError {
    JournalError::NotFound {
        id: id.to_string(),
        place: "in the dead-letter queue",
    }
}

impl<'t> Tables<'t> {
    /// Opens (creating on first use) every table.
    pub fn open(txn: &'t WriteTransaction) -> Result<Self, TableError> {
        Ok(Self {
            events: txn.open_table(EVENTS)?,
            pending: txn.open_table(PENDING_IDS)?,
            delivered: txn.open_table(DELIVERED_AT)?,
            dead: txn.open_table(DEAD)?,
            dedupe: txn.open_table(DEDUPE)?,
            expiry: txn.open_table(DEDUPE_EXPIRY)?,
            idempotency: txn.open_table(IDEMPOTENCY)?,
            jobs: txn.open_table(JOBS)?,
        })
    }

    /// Keeps the first result of an idempotent operation for its key.
    pub fn remember(
        &mut self,
        key: &(String, String, String),
        now_ms: u64,
        result: &[u8],
    ) -> Result<(), JournalError> {
        let key = (key.0.as_str(), key.1.as_str(), key.2.as_str());
        self.idempotency
            .insert(key, (now_ms, result))
            .map_err(JournalError::storage)?;
        Ok(())
    }

    /// Forgets idempotency records remembered before `cutoff_ms`.
    pub fn forget_results_before(&mut self, cutoff_ms: u64) -> Result<u64, StorageError> {
        let removed = self.idempotency.extract_if(|_, v| v.0 < cutoff_ms)?.count() as u64;
        Ok(removed)
    }

    /// Writes a job's record.
    pub fn put_job(
        &mut self,
        id: Uuid,
        settled: bool,
        now_ms: u64,
        record: &[u8],
    ) -> Result<(), JournalError> {
        self.jobs
            .insert(id, (now_ms, u8::from(settled), record))
            .map_err(JournalError::storage)?;
        Ok(())
    }

    /// Forgets settled jobs last changed before `cutoff_ms`.
    pub fn forget_jobs_before(&mut self, cutoff_ms: u64) -> Result<u64, StorageError> {
        let removed = self
            .jobs
            .extract_if(|_, v| v.1 == 1 && v.0 < cutoff_ms)?
            .count() as u64;
        Ok(removed)
    }

    /// Records an accepted event: `record` (absent for a dropped event) becomes
    /// pending unless `dedupe` names a key first seen less than `ttl_ms` ago.
    /// `delivered`: its agent acked it before this commit, so it is written
    /// delivered at once (as [`Self::delivered`] would leave it, without the
    /// pending entry in between).
    pub fn accept(
        &mut self,
        id: Uuid,
        record: Option<&[u8]>,
        dedupe: Option<(&str, &str)>,
        now_ms: u64,
        ttl_ms: u64,
        delivered: bool,
    ) -> Result<Accepted, JournalError> {
        if let Some(key) = dedupe {
            let seen = self.dedupe.get(key).map_err(JournalError::storage)?;
            if let Some((original, at)) = seen.map(|g| g.value())
                && now_ms.saturating_sub(at) < ttl_ms
            {
                return Ok(Accepted::Duplicate {
                    original_id: original.to_string(),
                });
            }
            // A key past its TTL starts over; its old expiry entry no longer
            // matches and compaction leaves the new one alone.
            self.dedupe
                .insert(key, (id, now_ms))
                .map_err(JournalError::storage)?;
            self.expiry
                .insert((now_ms, id), key)
                .map_err(JournalError::storage)?;
        }
        if let Some(record) = record {
            self.events
                .insert(id, record)
                .map_err(JournalError::storage)?;
            if delivered {
                self.delivered
                    .insert((now_ms, id), ())
                    .map_err(JournalError::storage)?;
            } else {
                self.pending.insert(id, 0).map_err(JournalError::storage)?;
            }
        }
        Ok(Accepted::New)
    }

    /// Marks a pending event delivered: its id moves from `pending_ids` to
    /// the retention index, its record stays. False when it was not pending
    /// (a repeated ack, or an event already dead-lettered).
    pub fn delivered(&mut self, id: Uuid, now_ms: u64) -> Result<bool, StorageError> {
        if self.pending.remove(id)?.is_none() {
            return Ok(false);
        }
        self.delivered.insert((now_ms, id), ())?;
        Ok(true)
    }

    /// Records how many attempts a pending event has had.
    pub fn attempted(&mut self, id: Uuid, attempts: u32) -> Result<(), StorageError> {
        if self.pending.get(id)?.is_some() {
            self.pending.insert(id, attempts)?;
        }
        Ok(())
    }

    /// Moves a pending event to the dead-letter queue.
    pub fn dead_letter(
        &mut self,
        id: Uuid,
        attempts: u32,
        error: String,
        now_ms: u64,
    ) -> Result<(), JournalError> {
        if self
            .pending
            .get(id)
            .map_err(JournalError::storage)?
            .is_none()
        {
            return Err(not_pending(id));
        }
        let stored = self.events.get(id).map_err(JournalError::storage)?;
        let bytes = stored.ok_or_else(|| not_pending(id))?.value().to_vec();
        let record: EventRecord = decode(id, &bytes)?;
        let dead = DeadRecord {
            event: record.event,
            route: record.route,
            attempts,
            error,
            dead_at_ms: now_ms,
        };
        let bytes = encode(&dead.event.id, &dead)?;
        self.pending.remove(id).map_err(JournalError::storage)?;
        self.events.remove(id).map_err(JournalError::storage)?;
        self.dead
            .insert(id, bytes.as_slice())
            .map_err(JournalError::storage)?;
        Ok(())
    }

    /// Moves a dead letter back to pending with no attempts made.
    pub fn replay(&mut self, id: Uuid) -> Result<JournaledEvent, JournalError> {
        let stored = self.dead.get(id).map_err(JournalError::storage)?;
        let bytes = stored.ok_or_else(|| not_dead(id))?.value().to_vec();
        let dead: DeadRecord = decode(id, &bytes)?;
        self.revive(id, dead)
    }

    /// Replays every dead letter, in id order. One that cannot be decoded
    /// fails the call before anything moves.
    pub fn replay_all(&mut self) -> Result<Vec<JournaledEvent>, JournalError> {
        let mut all = Vec::new();
        for entry in self.dead.iter().map_err(JournalError::storage)? {
            let (id, bytes) = entry.map_err(JournalError::storage)?;
            let id = id.value();
            all.push((id, decode::<DeadRecord>(id, bytes.value())?));
        }
        all.into_iter()
            .map(|(id, dead)| self.revive(id, dead))
            .collect()
    }

    fn revive(&mut self, id: Uuid, dead: DeadRecord) -> Result<JournaledEvent, JournalError> {
        let record = EventRecord {
            event: dead.event,
            route: dead.route,
        };
        let bytes = encode(&record.event.id, &record)?;
        self.dead.remove(id).map_err(JournalError::storage)?;
        self.events
            .insert(id, bytes.as_slice())
            .map_err(JournalError::storage)?;
        self.pending.insert(id, 0).map_err(JournalError::storage)?;
        Ok(JournaledEvent {
            event: record.event,
            route: record.route,
            attempts: 0,
        })
    }

    /// Forgets a dead letter.
    pub fn drop_dead(&mut self, id: Uuid) -> Result<(), JournalError> {
        match self.dead.remove(id).map_err(JournalError::storage)? {
            Some(_) => Ok(()),
            None => Err(not_dead(id)),
        }
    }

    /// Deletes delivered events older than `retention_ms` and dedupe keys
    /// older than `ttl_ms`. Pending and dead events are never touched.
    pub fn compact(
        &mut self,
        now_ms: u64,
        retention_ms: u64,
        ttl_ms: u64,
    ) -> Result<CompactStats, StorageError> {
        let cutoff = (now_ms.saturating_sub(retention_ms), Uuid::nil());
        let mut delivered_removed = 0;
        loop {
            // In slices, so a long backlog never becomes one large Vec.
            let expired: Vec<(u64, Uuid)> = self
                .delivered
                .range(..cutoff)?
                .take(COMPACT_SLICE)
                .map(|entry| entry.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()?;
            if expired.is_empty() {
                break;
            }
            for key in expired {
                self.delivered.remove(key)?;
                self.events.remove(key.1)?;
                delivered_removed += 1;
            }
        }

        let cutoff = (now_ms.saturating_sub(ttl_ms), Uuid::nil());
        let expired: Vec<(Uuid, String, String)> = self
            .expiry
            .extract_from_if(..cutoff, |_, _| true)?
            .map(|entry| {
                entry.map(|(k, v)| {
                    let (conn, key) = v.value();
                    (k.value().1, conn.to_owned(), key.to_owned())
                })
            })
            .collect::<Result<_, _>>()?;
        let mut dedupe_removed = 0;
        for (id, conn, key) in expired {
            let key = (conn.as_str(), key.as_str());
            let current = self.dedupe.get(key)?.map(|g| g.value().0);
            if current == Some(id) {
                self.dedupe.remove(key)?;
                dedupe_removed += 1;
            }
        }
        Ok(CompactStats {
            delivered_removed,
            dedupe_removed,
        })
    }

    /// Entries per table.
    pub fn sizes(&self) -> Result<Sizes, StorageError> {
        Ok(Sizes {
            pending: self.pending.len()?,
            delivered: self.delivered.len()?,
            dead: self.dead.len()?,
            dedupe: self.dedupe.len()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::backends::InMemoryBackend;

    #[test]
    fn an_event_accepted_delivered_is_never_pending_and_is_retained() {
        let db = redb::Builder::new()
            .create_with_backend(InMemoryBackend::new())
            .unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = Tables::open(&txn).unwrap();
            let (acked, waiting) = (Uuid::now_v7(), Uuid::now_v7());
            t.accept(acked, Some(b"{}"), None, 1, 10, true).unwrap();
            t.accept(waiting, Some(b"{}"), None, 1, 10, false).unwrap();
            let s = t.sizes().unwrap();
            assert_eq!((s.pending, s.delivered), (1, 1));
            // Its mark, applied the usual way too, finds nothing pending.
            assert!(!t.delivered(acked, 2).unwrap());
            assert!(t.delivered(waiting, 2).unwrap());
            // Both records are compacted once past retention.
            let c = t.compact(100, 10, 1000).unwrap();
            assert_eq!(c.delivered_removed, 2);
        }
        txn.commit().unwrap();
    }
}
