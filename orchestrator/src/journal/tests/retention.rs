//! Compaction: what it removes, what it keeps, and that it keeps the tables bounded.

use super::*;

#[tokio::test]
async fn compact_removes_old_delivered_events_and_dedupe_keys_only() {
    for backend in BACKENDS {
        let clock = ManualClock::new();
        let opts = JournalOptions {
            retention: Duration::from_secs(3600),
            dedupe_ttl: Duration::from_secs(24 * 3600),
            clock: clock.clock(),
            ..JournalOptions::default()
        };
        let h = Harness::start(backend, opts);
        let j = &h.journal;
        let old: Vec<_> = (0..10).map(|n| event("tg", n)).collect();
        for (n, e) in old.iter().enumerate() {
            j.accept(with_key(e.clone(), &format!("old-{n}")))
                .await
                .unwrap();
        }
        for e in &old[..6] {
            j.delivered(&e.id);
        }
        j.dead_letter(&old[6].id, 3, "boom").await.unwrap();
        j.flush().await.unwrap();

        // Within retention nothing goes.
        clock.advance(Duration::from_secs(1800));
        assert_eq!(j.compact().await.unwrap(), CompactStats::default());

        // Delivered an hour ago: gone; a fresh delivery stays.
        clock.advance(Duration::from_secs(1801));
        let fresh = event("tg", 99);
        j.accept(with_key(fresh.clone(), "fresh")).await.unwrap();
        j.delivered(&fresh.id);
        let stats = j.compact().await.unwrap();
        assert_eq!(stats.delivered_removed, 6, "{backend:?}");
        assert_eq!(stats.dedupe_removed, 0);
        assert_eq!(j.counts().retained, 1);

        // A day after the old keys were first seen: they go, "fresh" stays.
        clock.advance(Duration::from_secs(24 * 3600 - 3600));
        let stats = j.compact().await.unwrap();
        assert_eq!(stats.dedupe_removed, 10, "{backend:?}");
        assert_eq!(j.counts().dedupe_keys, 1);
        let reused = j.accept(with_key(event("tg", 100), "old-0")).await.unwrap();
        assert_eq!(reused, Accepted::New);

        // Pending and dead events are never compacted, however old.
        clock.advance(Duration::from_secs(365 * 24 * 3600));
        j.compact().await.unwrap();
        let still: Vec<_> = old[7..].iter().map(|e| e.id.clone()).collect();
        assert_eq!(pending_ids(j)[..3], still[..], "{backend:?}");
        assert_eq!(j.dead_letters().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_key_reused_after_its_ttl_outlives_its_old_expiry() {
    for backend in BACKENDS {
        let clock = ManualClock::new();
        let opts = JournalOptions {
            dedupe_ttl: Duration::from_secs(60),
            clock: clock.clock(),
            ..JournalOptions::default()
        };
        let h = Harness::start(backend, opts);
        let j = &h.journal;
        j.accept(with_key(event("tg", 1), "k")).await.unwrap();
        clock.advance(Duration::from_secs(61));
        let second = event("tg", 2);
        assert_eq!(
            j.accept(with_key(second.clone(), "k")).await.unwrap(),
            Accepted::New
        );
        // The first acceptance's expiry entry is due; the key now belongs to the second.
        assert_eq!(j.compact().await.unwrap().dedupe_removed, 0, "{backend:?}");
        let dup = j.accept(with_key(event("tg", 3), "k")).await.unwrap();
        assert_eq!(
            dup,
            Accepted::Duplicate {
                original_id: second.id
            }
        );
        clock.advance(Duration::from_secs(61));
        assert_eq!(j.compact().await.unwrap().dedupe_removed, 1);
        assert_eq!(j.counts().dedupe_keys, 0);
    }
}

#[tokio::test]
async fn periodic_compaction_keeps_the_tables_bounded_under_load() {
    for backend in BACKENDS {
        let clock = ManualClock::new();
        let opts = JournalOptions {
            retention: Duration::from_secs(10),
            dedupe_ttl: Duration::from_secs(10),
            compact_every_commits: 1,
            clock: clock.clock(),
            ..JournalOptions::default()
        };
        let h = Harness::start(backend, opts);
        let j = &h.journal;
        let (mut peak_retained, mut peak_keys) = (0, 0);
        for round in 0..40 {
            let events: Vec<_> = (0..50).map(|n| event("tg", round * 50 + n)).collect();
            let accepts: Vec<_> = events
                .iter()
                .map(|e| j.accept(with_key(e.clone(), &e.id)))
                .collect();
            futures::future::try_join_all(accepts).await.unwrap();
            for e in &events {
                j.delivered(&e.id);
            }
            j.flush().await.unwrap();
            let c = j.counts();
            peak_retained = peak_retained.max(c.retained);
            peak_keys = peak_keys.max(c.dedupe_keys);
            clock.advance(Duration::from_secs(1));
        }
        // 2,000 events went through; at most ~11 seconds' worth (550) are held.
        assert!(
            peak_retained <= 600,
            "{backend:?}: {peak_retained} retained"
        );
        assert!(peak_keys <= 600, "{backend:?}: {peak_keys} dedupe keys");
        assert!(j.counts().compactions >= 40);

        // Quiet for longer than both windows: the next commit's compaction empties them.
        clock.advance(Duration::from_secs(11));
        j.flush().await.unwrap();
        let c = j.counts();
        assert_eq!(
            (c.retained, c.dedupe_keys, c.pending),
            (0, 0, 0),
            "{backend:?}"
        );
        assert_eq!(c.accepted, 2000);
    }
}

#[tokio::test]
async fn idempotency_records_are_kept_for_their_ttl_then_compacted() {
    for backend in BACKENDS {
        let clock = ManualClock::new();
        let opts = JournalOptions {
            idempotency_ttl: Duration::from_secs(3600),
            clock: clock.clock(),
            ..JournalOptions::default()
        };
        let h = Harness::start(backend, opts);
        let j = &h.journal;
        assert!(
            j.recall("tg", "send", "k").unwrap().is_none(),
            "{backend:?}"
        );
        j.remember("tg", "send", "k", b"{\"data\":1}".to_vec())
            .await
            .unwrap();
        let (_, kept) = j.recall("tg", "send", "k").unwrap().expect("kept");
        assert_eq!(kept, b"{\"data\":1}");
        assert!(j.recall("tg", "send", "other").unwrap().is_none());
        assert!(j.recall("tg", "other", "k").unwrap().is_none());

        clock.advance(Duration::from_secs(1800));
        j.compact().await.unwrap();
        assert!(
            j.recall("tg", "send", "k").unwrap().is_some(),
            "{backend:?}"
        );
        clock.advance(Duration::from_secs(1801));
        j.compact().await.unwrap();
        assert!(
            j.recall("tg", "send", "k").unwrap().is_none(),
            "{backend:?}"
        );
    }
}
