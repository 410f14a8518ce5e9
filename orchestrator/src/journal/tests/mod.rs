//! Behaviour of the journal, table-driven over both backends where the
//! backend cannot matter.

mod bench;
mod crash;
mod durability;
mod migrate;
mod retention;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipc_proto::DeliveredEvent;
use tempfile::TempDir;

use super::*;

/// Both backends: every behavioural test runs on each.
const BACKENDS: [Backend; 2] = [Backend::Memory, Backend::File];

#[derive(Clone, Copy, Debug)]
enum Backend {
    Memory,
    File,
}

/// A journal and, for the file backend, the directory holding it.
struct Harness {
    journal: Journal,
    dir: Option<TempDir>,
}

impl Harness {
    fn start(backend: Backend, opts: JournalOptions) -> Harness {
        match backend {
            Backend::Memory => Harness {
                journal: Journal::memory(opts).expect("memory journal"),
                dir: None,
            },
            Backend::File => {
                let dir = tempfile::tempdir().expect("tempdir");
                let journal = Journal::open(&dir.path().join("journal.db"), opts).expect("open");
                Harness {
                    journal,
                    dir: Some(dir),
                }
            }
        }
    }
}

/// A clock that moves only when told.
#[derive(Clone)]
struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    fn new() -> Self {
        ManualClock(Arc::new(AtomicU64::new(1_700_000_000_000)))
    }

    fn clock(&self) -> Clock {
        let ms = self.0.clone();
        Clock::new(move || UNIX_EPOCH + Duration::from_millis(ms.load(Ordering::SeqCst)))
    }

    fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }

    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0.load(Ordering::SeqCst))
    }
}

fn event(connection: &str, n: usize) -> DeliveredEvent {
    DeliveredEvent {
        id: uuid::Uuid::now_v7().to_string(),
        connection: connection.into(),
        connector: "webhook".into(),
        name: "message".into(),
        message: Some(ipc_proto::Message::text(format!("event {n}"))),
        properties: BTreeMap::from([("n".to_string(), n.to_string())]),
        instance_key: format!("key-{}", n % 3),
        received_at: "2026-01-01T00:00:00Z".into(),
        payload: None,
    }
}

fn route() -> RouteRecord {
    RouteRecord {
        agent: "handler".into(),
        swarm: "main".into(),
    }
}

fn routed(event: DeliveredEvent) -> NewEvent {
    NewEvent {
        event,
        route: Some(route()),
        dedupe_key: None,
    }
}

fn with_key(event: DeliveredEvent, key: &str) -> NewEvent {
    NewEvent {
        dedupe_key: Some(key.into()),
        ..routed(event)
    }
}

fn pending_ids(journal: &Journal) -> Vec<String> {
    journal
        .pending()
        .expect("pending")
        .into_iter()
        .map(|p| p.event.id)
        .collect()
}

/// Waits for `cond` with a deadline, polling (the writer has no hook to await).
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn accepted_events_are_pending_until_delivered() {
    for backend in BACKENDS {
        let h = Harness::start(backend, JournalOptions::default());
        let j = &h.journal;
        let (a, b) = (event("tg", 1), event("tg", 2));
        assert_eq!(j.accept(routed(a.clone())).await.unwrap(), Accepted::New);
        assert_eq!(j.accept(routed(b.clone())).await.unwrap(), Accepted::New);
        let pending = j.pending().unwrap();
        assert_eq!(pending.len(), 2, "{backend:?}");
        assert_eq!(pending[0].event, a);
        assert_eq!(pending[0].route, route());
        assert_eq!(pending[0].attempts, 0);

        j.delivered(&a.id);
        j.delivered(&a.id); // a repeated ack changes nothing
        j.delivered(&uuid::Uuid::now_v7().to_string()); // nor does an unknown id
        j.flush().await.unwrap();
        assert_eq!(pending_ids(j), vec![b.id.clone()], "{backend:?}");
        let c = j.counts();
        assert_eq!(
            (c.accepted, c.delivered, c.pending, c.retained),
            (2, 1, 1, 1)
        );
    }
}

#[tokio::test]
async fn pending_is_in_acceptance_order() {
    for backend in BACKENDS {
        let h = Harness::start(backend, JournalOptions::default());
        let events: Vec<_> = (0..500).map(|n| event(&format!("c{}", n % 4), n)).collect();
        // Pipelined: every accept is queued before any is awaited.
        let futures: Vec<_> = events
            .iter()
            .map(|e| h.journal.accept(routed(e.clone())))
            .collect();
        for result in futures::future::join_all(futures).await {
            assert_eq!(result.unwrap(), Accepted::New);
        }
        let want: Vec<_> = events.iter().map(|e| e.id.clone()).collect();
        assert_eq!(pending_ids(&h.journal), want, "{backend:?}");
        assert_eq!(h.journal.counts().pending, 500);
    }
}

#[tokio::test]
async fn dedupe_within_ttl_and_anew_after_it() {
    for backend in BACKENDS {
        let clock = ManualClock::new();
        let opts = JournalOptions {
            dedupe_ttl: Duration::from_secs(60),
            clock: clock.clock(),
            ..JournalOptions::default()
        };
        let h = Harness::start(backend, opts);
        let j = &h.journal;
        let first = event("gh", 1);
        // The same key twice in one batch: the second is already a duplicate.
        let one = j.accept(with_key(first.clone(), "delivery-1"));
        let two = j.accept(with_key(event("gh", 2), "delivery-1"));
        assert_eq!(one.await.unwrap(), Accepted::New);
        let dup = Accepted::Duplicate {
            original_id: first.id.clone(),
        };
        assert_eq!(two.await.unwrap(), dup, "{backend:?}");
        // Keys are per connection.
        let elsewhere = event("slack", 3);
        let other = j.accept(with_key(elsewhere.clone(), "delivery-1")).await;
        assert_eq!(other.unwrap(), Accepted::New);

        clock.advance(Duration::from_secs(59));
        let again = j.accept(with_key(event("gh", 4), "delivery-1")).await;
        assert_eq!(again.unwrap(), dup);
        clock.advance(Duration::from_secs(2));
        let later = event("gh", 5);
        let after = j.accept(with_key(later.clone(), "delivery-1")).await;
        assert_eq!(after.unwrap(), Accepted::New, "{backend:?}");
        let again = j.accept(with_key(event("gh", 6), "delivery-1")).await;
        assert_eq!(
            again.unwrap(),
            Accepted::Duplicate {
                original_id: later.id.clone()
            }
        );

        assert_eq!(pending_ids(j), vec![first.id, elsewhere.id, later.id]);
        let c = j.counts();
        assert_eq!((c.accepted, c.duplicates, c.pending), (3, 3, 3));
    }
}

#[tokio::test]
async fn a_dropped_event_is_deduplicated_but_never_pending() {
    for backend in BACKENDS {
        let h = Harness::start(backend, JournalOptions::default());
        let j = &h.journal;
        let e = event("tg", 1);
        let dropped = NewEvent {
            event: e.clone(),
            route: None,
            dedupe_key: Some("k".into()),
        };
        assert_eq!(j.accept(dropped.clone()).await.unwrap(), Accepted::New);
        let again = NewEvent {
            event: event("tg", 2),
            ..dropped
        };
        let dup = Accepted::Duplicate { original_id: e.id };
        assert_eq!(j.accept(again).await.unwrap(), dup);
        let plain = NewEvent {
            event: event("tg", 3),
            route: None,
            dedupe_key: None,
        };
        assert_eq!(j.accept(plain).await.unwrap(), Accepted::New);
        assert!(j.pending().unwrap().is_empty(), "{backend:?}");
        assert_eq!(j.counts().accepted, 2);
    }
}

#[tokio::test]
async fn dead_letters_replay_and_drop() {
    for backend in BACKENDS {
        let clock = ManualClock::new();
        let opts = JournalOptions {
            clock: clock.clock(),
            ..JournalOptions::default()
        };
        let h = Harness::start(backend, opts);
        let j = &h.journal;
        let events: Vec<_> = (0..3).map(|n| event("tg", n)).collect();
        for e in &events {
            j.accept(routed(e.clone())).await.unwrap();
        }
        j.attempted(&events[0].id, 2);
        j.dead_letter(&events[0].id, 5, "agent crashed")
            .await
            .unwrap();
        j.dead_letter(&events[2].id, 1, "rejected").await.unwrap();

        let dead = j.dead_letters().unwrap();
        assert_eq!(dead.len(), 2, "{backend:?}");
        assert_eq!(dead[0].event, events[0]);
        assert_eq!(dead[0].route, route());
        assert_eq!(
            (dead[0].attempts, dead[0].error.as_str()),
            (5, "agent crashed")
        );
        assert_eq!(dead[0].dead_at, clock.now());
        assert_eq!(pending_ids(j), vec![events[1].id.clone()]);
        assert_eq!((j.counts().dead, j.counts().dead_lettered), (2, 2));

        // Not pending any more, so it cannot die twice.
        let twice = j.dead_letter(&events[0].id, 6, "again").await;
        assert!(
            matches!(twice, Err(JournalError::NotFound { .. })),
            "{twice:?}"
        );

        let back = j.replay(&events[0].id).await.unwrap();
        assert_eq!((back.event.clone(), back.attempts), (events[0].clone(), 0));
        let pending = j.pending().unwrap();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0], back);
        assert_eq!(j.dead_letters().unwrap().len(), 1);

        j.drop_dead(&events[2].id).await.unwrap();
        assert!(j.dead_letters().unwrap().is_empty());
        let gone = j.drop_dead(&events[2].id).await;
        assert!(
            matches!(gone, Err(JournalError::NotFound { .. })),
            "{gone:?}"
        );
        let gone = j.replay(&events[2].id).await;
        assert!(
            matches!(gone, Err(JournalError::NotFound { .. })),
            "{gone:?}"
        );
    }
}

#[tokio::test]
async fn replay_all_moves_every_dead_letter_back_in_order() {
    for backend in BACKENDS {
        let h = Harness::start(backend, JournalOptions::default());
        let j = &h.journal;
        let events: Vec<_> = (0..5).map(|n| event("tg", n)).collect();
        let accepts: Vec<_> = events.iter().map(|e| j.accept(routed(e.clone()))).collect();
        futures::future::try_join_all(accepts).await.unwrap();
        // Dead-lettered out of order; replayed in acceptance order.
        for i in [3, 0, 4] {
            j.dead_letter(&events[i].id, 3, "boom").await.unwrap();
        }
        let replayed: Vec<_> = j.replay_all().await.unwrap();
        let ids: Vec<_> = replayed.iter().map(|p| p.event.id.clone()).collect();
        let want: Vec<_> = [0, 3, 4].iter().map(|&i| events[i].id.clone()).collect();
        assert_eq!(ids, want, "{backend:?}");
        assert!(j.dead_letters().unwrap().is_empty());
        assert_eq!(pending_ids(j).len(), 5);
        assert_eq!(j.counts().replayed, 3);
        assert!(j.replay_all().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn attempts_are_recorded_and_cleared_on_delivery() {
    for backend in BACKENDS {
        let h = Harness::start(backend, JournalOptions::default());
        let j = &h.journal;
        let (a, b) = (event("tg", 1), event("tg", 2));
        j.accept(routed(a.clone())).await.unwrap();
        j.accept(routed(b.clone())).await.unwrap();
        j.attempted(&a.id, 3);
        j.attempted(&uuid::Uuid::now_v7().to_string(), 9); // not pending: ignored
        j.flush().await.unwrap();
        let attempts: Vec<_> = j.pending().unwrap().iter().map(|p| p.attempts).collect();
        assert_eq!(attempts, vec![3, 0], "{backend:?}");
        j.delivered(&a.id);
        j.flush().await.unwrap();
        assert_eq!(pending_ids(j), vec![b.id]);
    }
}

#[tokio::test]
async fn bad_ids_and_a_closed_journal_are_errors() {
    for backend in BACKENDS {
        let h = Harness::start(backend, JournalOptions::default());
        let mut bad = event("tg", 1);
        bad.id = "not-a-uuid".into();
        let r = h.journal.accept(routed(bad)).await;
        assert!(matches!(r, Err(JournalError::InvalidId(_))), "{r:?}");
        let r = h.journal.replay("nope").await;
        assert!(matches!(r, Err(JournalError::InvalidId(_))), "{r:?}");
        h.journal.delivered("nope"); // logged, not a panic

        let other = h.journal.clone();
        h.journal.close();
        let r = other.accept(routed(event("tg", 2))).await;
        assert!(matches!(r, Err(JournalError::Closed)), "{backend:?}: {r:?}");
        assert!(matches!(other.flush().await, Err(JournalError::Closed)));
        // Reads still work until the last handle is gone.
        assert!(other.pending().unwrap().is_empty());
        drop(h.dir);
    }
}
