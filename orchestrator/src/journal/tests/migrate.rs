//! A file written in the old layout (records in `pending`, a copy of each
//! delivered record in `delivered`, retries in `attempts`) opens with its
//! pending events, their attempts and its retained deliveries intact.

use redb::{ReadableDatabase, TableDefinition};

use super::super::records::{EventRecord, encode};
use super::*;

const OLD_PENDING: TableDefinition<uuid::Uuid, &[u8]> = TableDefinition::new("pending");
const OLD_ATTEMPTS: TableDefinition<uuid::Uuid, u32> = TableDefinition::new("attempts");
const OLD_DELIVERED: TableDefinition<(u64, uuid::Uuid), &[u8]> = TableDefinition::new("delivered");

fn record(e: &DeliveredEvent) -> Vec<u8> {
    let rec = EventRecord {
        event: e.clone(),
        route: route(),
    };
    encode(&e.id, &rec).unwrap()
}

#[tokio::test]
async fn an_old_layout_file_keeps_its_pending_attempts_and_retained_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let clock = ManualClock::new();
    let pending: Vec<_> = (0..5).map(|n| event("tg", n)).collect();
    let delivered: Vec<_> = (5..8).map(|n| event("tg", n)).collect();
    let delivered_at = crate::journal::records::millis(clock.now());
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut p = txn.open_table(OLD_PENDING).unwrap();
            for e in &pending {
                p.insert(uuid::Uuid::parse_str(&e.id).unwrap(), record(e).as_slice())
                    .unwrap();
            }
            let mut a = txn.open_table(OLD_ATTEMPTS).unwrap();
            a.insert(uuid::Uuid::parse_str(&pending[2].id).unwrap(), 4)
                .unwrap();
            let mut d = txn.open_table(OLD_DELIVERED).unwrap();
            for e in &delivered {
                let id = uuid::Uuid::parse_str(&e.id).unwrap();
                d.insert((delivered_at, id), record(e).as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    let opts = JournalOptions {
        retention: Duration::from_secs(600),
        clock: clock.clock(),
        ..JournalOptions::default()
    };
    let j = Journal::open(&path, opts.clone()).unwrap();
    let got = j.pending().unwrap();
    let ids: Vec<_> = got.iter().map(|p| p.event.id.clone()).collect();
    let want: Vec<_> = pending.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, want);
    assert_eq!(got[0].event, pending[0]);
    let attempts: Vec<_> = got.iter().map(|p| p.attempts).collect();
    assert_eq!(attempts, vec![0, 0, 4, 0, 0]);
    let c = j.counts();
    assert_eq!((c.pending, c.retained), (5, 3));

    // The converted events behave like any: delivered, dead-lettered, and
    // the old deliveries compacted once their retention is over.
    clock.advance(Duration::from_secs(601));
    j.delivered(&pending[0].id);
    j.dead_letter(&pending[1].id, 4, "boom").await.unwrap();
    let stats = j.compact().await.unwrap();
    assert_eq!(stats.delivered_removed, 3);
    assert_eq!(j.counts().retained, 1);
    assert_eq!(j.dead_letters().unwrap()[0].event, pending[1]);
    j.close();

    // Converted once: the old tables are gone, a reopen changes nothing.
    let j = Journal::open(&path, opts).unwrap();
    assert_eq!(pending_ids(&j), want[2..].to_vec());
    assert_eq!(j.pending().unwrap()[0].attempts, 4);
    let c = j.counts();
    assert_eq!((c.pending, c.dead, c.retained), (3, 1, 1));
    j.close();
    let db = redb::Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let names: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| redb::TableHandle::name(&t).to_owned())
        .collect();
    for old in ["pending", "attempts", "delivered"] {
        assert!(
            !names.iter().any(|n| n == old),
            "{old} is still in {names:?}"
        );
    }
}
