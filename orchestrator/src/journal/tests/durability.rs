//! What survives a close, a reopen and a crash; what a commit costs.

use super::*;

fn open(dir: &TempDir, opts: JournalOptions) -> Journal {
    Journal::open(&dir.path().join("journal.db"), opts).expect("open")
}

#[tokio::test]
async fn a_reopened_journal_has_every_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir, JournalOptions::default());
    let events: Vec<_> = (0..200).map(|n| event("tg", n)).collect();
    let accepts: Vec<_> = events
        .iter()
        .map(|e| journal.accept(routed(e.clone())))
        .collect();
    futures::future::try_join_all(accepts).await.unwrap();
    journal.attempted(&events[1].id, 2);
    for e in events.iter().step_by(3) {
        journal.delivered(&e.id);
    }
    journal.dead_letter(&events[4].id, 5, "boom").await.unwrap();
    // A clean close makes the fire-and-forget marks durable too.
    journal.close();

    let journal = open(&dir, JournalOptions::default());
    let want: Vec<_> = events
        .iter()
        .enumerate()
        .filter(|(n, _)| n % 3 != 0 && *n != 4)
        .map(|(_, e)| e.id.clone())
        .collect();
    assert_eq!(pending_ids(&journal), want);
    assert_eq!(journal.pending().unwrap()[0].attempts, 2);
    assert_eq!(journal.dead_letters().unwrap()[0].event, events[4]);
    let c = journal.counts();
    assert_eq!((c.pending, c.dead, c.retained), (want.len() as u64, 1, 67));
    assert_eq!(c.accepted, 0, "totals count since open");
}

#[tokio::test]
async fn dropping_the_last_handle_closes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir, JournalOptions::default());
    let e = event("tg", 1);
    journal.accept(routed(e.clone())).await.unwrap();
    // Another process (or a second open) cannot take the file while it is open.
    let twice = Journal::open(&dir.path().join("journal.db"), JournalOptions::default());
    assert!(matches!(twice, Err(JournalError::Open { .. })), "{twice:?}");
    drop(journal);
    assert_eq!(
        pending_ids(&open(&dir, JournalOptions::default())),
        vec![e.id]
    );
}

#[tokio::test]
async fn concurrent_accepts_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir, JournalOptions::default());
    let accepts: Vec<_> = (0..1000)
        .map(|n| journal.accept(routed(event("tg", n))))
        .collect();
    for result in futures::future::join_all(accepts).await {
        assert_eq!(result.unwrap(), Accepted::New);
    }
    let c = journal.counts();
    assert_eq!(c.accepted, 1000);
    assert!(
        c.commits < 1000 / 4,
        "1000 accepts took {} commits",
        c.commits
    );
    assert_eq!(c.durable_commits, c.commits);
}

#[tokio::test]
async fn delivered_marks_alone_do_not_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        mark_sync_interval: Duration::from_secs(3600),
        ..JournalOptions::default()
    };
    let journal = open(&dir, opts);
    let events: Vec<_> = (0..50).map(|n| event("tg", n)).collect();
    let accepts: Vec<_> = events
        .iter()
        .map(|e| journal.accept(routed(e.clone())))
        .collect();
    futures::future::try_join_all(accepts).await.unwrap();
    let durable = journal.counts().durable_commits;
    for e in &events {
        journal.delivered(&e.id);
    }
    wait_until("the marks to commit", || journal.counts().delivered == 50).await;
    assert!(
        pending_ids(&journal).is_empty(),
        "marks are visible at once"
    );
    let c = journal.counts();
    assert_eq!(c.durable_commits, durable, "marks alone committed durably");
    assert!(c.commits > c.durable_commits);
    // Whatever durable commit comes next carries them.
    journal.flush().await.unwrap();
    assert_eq!(journal.counts().durable_commits, durable + 1);
}

#[tokio::test]
async fn unsynced_marks_are_made_durable_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let opts = JournalOptions {
        mark_sync_interval: Duration::from_millis(20),
        ..JournalOptions::default()
    };
    let journal = open(&dir, opts);
    let e = event("tg", 1);
    journal.accept(routed(e.clone())).await.unwrap();
    let durable = journal.counts().durable_commits;
    journal.delivered(&e.id);
    // No further traffic: the idle writer wakes up to sync on its own.
    wait_until("an idle sync", || {
        journal.counts().durable_commits > durable
    })
    .await;
    assert_eq!(journal.counts().delivered, 1);
}

#[tokio::test]
async fn a_mark_right_behind_its_accept_is_applied_after_it() {
    // An event goes to its agent while its commit is under way, so its
    // delivered mark can reach the writer in the same batch as its accept,
    // or before the writer has taken the accept out of its channel.
    let dir = tempfile::tempdir().unwrap();
    let journal = open(&dir, JournalOptions::default());
    let events: Vec<_> = (0..2000).map(|n| event("tg", n)).collect();
    let mut accepts = Vec::new();
    for e in &events {
        accepts.push(journal.accept(routed(e.clone())));
        journal.delivered(&e.id);
    }
    futures::future::try_join_all(accepts).await.unwrap();
    journal.flush().await.unwrap();
    wait_until("every mark", || journal.counts().delivered == 2000).await;
    assert!(pending_ids(&journal).is_empty(), "no mark was lost");
    // Marks that met their accept in one batch were written delivered at
    // once; they are in the retention index like the others.
    journal.flush().await.unwrap();
    assert_eq!(journal.counts().retained, 2000);
    drop(journal);
    let journal = open(&dir, JournalOptions::default());
    assert!(
        pending_ids(&journal).is_empty(),
        "nothing pending after a reopen"
    );
}
