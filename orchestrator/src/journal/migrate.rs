//! Converts a journal file written before the `events` table existed.
//!
//! The old layout kept each pending record in `pending` (id → record), retry
//! counts in `attempts` (id → attempts) and a second copy of each delivered
//! record in `delivered` ((delivered at ms, id) → record). The new layout
//! (see [`super::tables`]) writes a record once, into `events`, and tracks
//! its state by id. Opening an old file moves everything over in the
//! start-up transaction and deletes the old tables, so what was pending is
//! still pending with its attempts, and what was delivered is kept for the
//! rest of its retention. A file with none of the old tables is left alone.

use redb::{ReadableTable, TableDefinition, TableError, TableHandle, WriteTransaction};
use uuid::Uuid;

use super::tables::{DELIVERED_AT, EVENTS, PENDING_IDS};

const OLD_PENDING: TableDefinition<Uuid, &[u8]> = TableDefinition::new("pending");
const OLD_ATTEMPTS: TableDefinition<Uuid, u32> = TableDefinition::new("attempts");
const OLD_DELIVERED: TableDefinition<(u64, Uuid), &[u8]> = TableDefinition::new("delivered");

/// What a conversion moved (all zero for a file already in the new layout).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Migrated {
    pub pending: u64,
    pub delivered: u64,
}

/// Moves the old tables' contents into the new ones, in `txn`.
pub(super) fn legacy_tables(txn: &WriteTransaction) -> Result<Migrated, TableError> {
    let names: Vec<String> = txn.list_tables()?.map(|t| t.name().to_owned()).collect();
    let has = |name: &str| names.iter().any(|n| n == name);
    let mut moved = Migrated::default();
    if !has(OLD_PENDING.name()) && !has(OLD_ATTEMPTS.name()) && !has(OLD_DELIVERED.name()) {
        return Ok(moved);
    }
    {
        let mut events = txn.open_table(EVENTS)?;
        let mut pending = txn.open_table(PENDING_IDS)?;
        let mut delivered = txn.open_table(DELIVERED_AT)?;
        let attempts = txn.open_table(OLD_ATTEMPTS)?;
        for entry in txn.open_table(OLD_PENDING)?.iter()? {
            let (id, record) = entry?;
            let id = id.value();
            let tried = attempts.get(id)?.map_or(0, |g| g.value());
            events.insert(id, record.value())?;
            pending.insert(id, tried)?;
            moved.pending += 1;
        }
        for entry in txn.open_table(OLD_DELIVERED)?.iter()? {
            let (key, record) = entry?;
            let (at, id) = key.value();
            events.insert(id, record.value())?;
            delivered.insert((at, id), ())?;
            moved.delivered += 1;
        }
    }
    txn.delete_table(OLD_PENDING)?;
    txn.delete_table(OLD_ATTEMPTS)?;
    txn.delete_table(OLD_DELIVERED)?;
    Ok(moved)
}
