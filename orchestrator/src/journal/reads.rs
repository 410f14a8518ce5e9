//! Reads for callers outside the writer: start-up recovery, `dlq`,
//! idempotency results and job records, each in a read transaction.

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, TableError};
use uuid::Uuid;

use super::records::{DeadRecord, EventRecord, decode, from_millis};
use super::tables::{DEAD, EVENTS, IDEMPOTENCY, JOBS, PENDING_IDS};
use super::{DeadLetter, JournalError, JournaledEvent};

/// Every pending event in acceptance order.
pub(super) fn pending(txn: &ReadTransaction) -> Result<Vec<JournaledEvent>, JournalError> {
    let pending = txn.open_table(PENDING_IDS).map_err(JournalError::storage)?;
    let events = txn.open_table(EVENTS).map_err(JournalError::storage)?;
    let mut out = Vec::with_capacity(usize::try_from(pending.len().unwrap_or(0)).unwrap_or(0));
    for entry in pending.iter().map_err(JournalError::storage)? {
        let (id, attempts) = entry.map_err(JournalError::storage)?;
        let id = id.value();
        let stored = events.get(id).map_err(JournalError::storage)?;
        let bytes = stored.ok_or_else(|| JournalError::NotFound {
            id: id.to_string(),
            place: "in the events table, though pending",
        })?;
        let record: EventRecord = decode(id, bytes.value())?;
        out.push(JournaledEvent {
            event: record.event,
            route: record.route,
            attempts: attempts.value(),
        });
    }
    Ok(out)
}

/// Every dead letter, in id order.
pub(super) fn dead_letters(txn: &ReadTransaction) -> Result<Vec<DeadLetter>, JournalError> {
    let dead = txn.open_table(DEAD).map_err(JournalError::storage)?;
    let mut out = Vec::new();
    for entry in dead.iter().map_err(JournalError::storage)? {
        let (id, bytes) = entry.map_err(JournalError::storage)?;
        let record: DeadRecord = decode(id.value(), bytes.value())?;
        out.push(DeadLetter {
            event: record.event,
            route: record.route,
            attempts: record.attempts,
            error: record.error,
            dead_at: from_millis(record.dead_at_ms),
        });
    }
    Ok(out)
}

/// The remembered result for `key`: when it was remembered (ms) and its JSON.
pub(super) fn recall(
    txn: &ReadTransaction,
    key: (&str, &str, &str),
) -> Result<Option<(u64, Vec<u8>)>, JournalError> {
    let table = match txn.open_table(IDEMPOTENCY) {
        Ok(t) => t,
        // Nothing was ever remembered in this file.
        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(JournalError::storage(e)),
    };
    let found = table.get(key).map_err(JournalError::storage)?;
    Ok(found.map(|v| {
        let (at, bytes) = v.value();
        (at, bytes.to_vec())
    }))
}

/// One job's record, if the journal holds it.
pub(super) fn job(txn: &ReadTransaction, id: Uuid) -> Result<Option<Vec<u8>>, JournalError> {
    let table = match txn.open_table(JOBS) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(JournalError::storage(e)),
    };
    let found = table.get(id).map_err(JournalError::storage)?;
    Ok(found.map(|v| v.value().2.to_vec()))
}

/// Every job record, oldest first (ids are UUIDv7).
pub(super) fn jobs(txn: &ReadTransaction) -> Result<Vec<Vec<u8>>, JournalError> {
    let table = match txn.open_table(JOBS) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(JournalError::storage(e)),
    };
    let mut out = Vec::new();
    for entry in table.iter().map_err(JournalError::storage)? {
        let (_, v) = entry.map_err(JournalError::storage)?;
        out.push(v.value().2.to_vec());
    }
    Ok(out)
}
