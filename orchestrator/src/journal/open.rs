//! Opening a journal: on `journal.db`, or on a memory file for `--journal memory`.

use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use redb::{Database, backends::FileBackend};

use super::stats::Stats;
use super::writer::Writer;
use super::{Inner, Journal, JournalError, JournalOptions, Marks, migrate, tables};

/// redb's page cache (read cache and write buffer together). Pending events
/// are read once at start-up and the hot path writes at the right edge of
/// each table, so a few MiB hold every page it touches. redb also moves each
/// page it writes into the read cache, so a larger cache fills with pages
/// nothing reads again: at 32 MiB it was most of the orchestrator's growth
/// after 100,000 keys, at no gain in throughput (README, Benchmarks).
const CACHE_BYTES: usize = 4 << 20;

impl Journal {
    /// Opens the journal file at `path` (`<state-dir>/journal.db`), creating
    /// it and its directory if needed. Fails if another process has it open.
    pub fn open(path: &Path, opts: JournalOptions) -> Result<Journal, JournalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| JournalError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|source| JournalError::Open {
                path: path.to_owned(),
                source,
            })?;
        Self::start(db, opts, true)
    }

    /// A journal in memory: the same code, NOT durable. For tests and benchmarks.
    ///
    /// Its database is a memory file (`memfd:orchestrator-journal` among the
    /// process's fds): nothing on disk, gone when the process ends.
    pub fn memory(opts: JournalOptions) -> Result<Journal, JournalError> {
        use nix::sys::memfd::{MFdFlags, memfd_create};
        const NAME: &str = "memfd:orchestrator-journal";
        let fd = memfd_create(c"orchestrator-journal", MFdFlags::MFD_CLOEXEC)
            .map_err(|e| JournalError::MemoryFile(e.into()))?;
        let open = |source| JournalError::Open {
            path: NAME.into(),
            source,
        };
        let backend = FileBackend::new(std::fs::File::from(fd)).map_err(open)?;
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create_with_backend(backend)
            .map_err(open)?;
        Self::start(db, opts, false)
    }

    fn start(db: Database, opts: JournalOptions, durable: bool) -> Result<Journal, JournalError> {
        // Create every table up front so readers never meet a missing one.
        let txn = db.begin_write().map_err(JournalError::storage)?;
        let moved = migrate::legacy_tables(&txn).map_err(JournalError::storage)?;
        if moved != migrate::Migrated::default() {
            tracing::info!(
                "journal: converted to the events layout ({} pending, {} delivered events moved)",
                moved.pending,
                moved.delivered
            );
        }
        let sizes = tables::Tables::open(&txn)
            .map_err(JournalError::storage)?
            .sizes()
            .map_err(JournalError::storage)?;
        txn.commit().map_err(JournalError::storage)?;
        let stats = Arc::new(Stats::default());
        stats.set_sizes(sizes);
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let marks = Arc::new(Marks::default());
        let handle = Writer::spawn(db.clone(), rx, marks.clone(), stats.clone(), opts)
            .map_err(JournalError::Spawn)?;
        Ok(Journal {
            inner: Arc::new(Inner {
                tx,
                marks,
                writer: Mutex::new(Some(handle)),
                db,
                stats,
                durable,
            }),
        })
    }
}
