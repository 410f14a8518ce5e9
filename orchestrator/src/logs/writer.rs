//! The one thread that writes every log file.
//!
//! Log files are written by a dedicated thread (`log-writer`), never on a
//! tokio worker: a slow disk holds up that thread only. Each file is a
//! [`Channel`]: its lines go through one process-wide queue, in order, and
//! each file may have at most `cap` lines waiting — beyond that
//! [`Channel::send`] refuses (the caller counts what it refused). A file is
//! flushed whenever the queue runs dry (so `logs -f` sees lines at once) and
//! rotated by size: `x.log` becomes `x.log.1`, older ones shift up to
//! `x.log.<keep>`. [`flush`] waits until everything sent so far is on disk.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often files with [`Periodic`] lines are asked for them.
const TICK: Duration = Duration::from_millis(500);

/// Messages handled before the dirty files are flushed even if more wait.
const BATCH: usize = 4096;

/// Lines a file produces by itself from time to time (summaries of what was
/// refused), written by the writer thread so that they can never be refused.
pub(crate) trait Periodic: Send + Sync {
    /// The lines due at `now`; with `all`, every line pending (the file closes).
    fn due(&self, now: Instant, all: bool) -> Vec<String>;
}

/// Size and rotation of one file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rotation {
    /// Rotate once the file passes this size.
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: u32,
}

enum Msg {
    Open(u64, Box<Target>),
    /// Create the directory and open the file on the writer thread.
    OpenHere(u64, Box<Target>),
    Line(u64, String),
    /// Flush and close the file until its next line.
    Release(u64),
    Close(u64),
    Flush(SyncSender<()>),
}

/// The sending half of one file.
pub(crate) struct Channel {
    tx: Sender<Msg>,
    id: u64,
    queued: Arc<AtomicUsize>,
    cap: usize,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("id", &self.id)
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .finish()
    }
}

impl Channel {
    /// Opens `path` for appending (mode 0600, its directory 0700 when created)
    /// and hands it to the writer thread.
    pub fn open(
        path: &Path,
        rotation: Rotation,
        cap: usize,
        periodic: Option<Arc<dyn Periodic>>,
    ) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            super::private::create_dirs(dir)?;
        }
        let file = open_append(path)?;
        Self::start(path, Some(file), rotation, cap, periodic)
    }

    /// Like [`Channel::open`], but the directory is created and the file
    /// opened by the writer thread: nothing here touches the disk. Should
    /// that fail, the reason goes to stderr and the lines to nowhere.
    pub fn open_deferred(
        path: &Path,
        rotation: Rotation,
        cap: usize,
        periodic: Option<Arc<dyn Periodic>>,
    ) -> io::Result<Self> {
        Self::start(path, None, rotation, cap, periodic)
    }

    /// A channel to the process's stderr (never rotated), so that a stderr
    /// nobody reads holds up the writer thread, not the runtime.
    pub fn stderr(cap: usize) -> io::Result<Self> {
        use std::os::fd::AsFd;
        let fd = io::stderr().as_fd().try_clone_to_owned()?;
        let rotation = Rotation {
            max_bytes: u64::MAX,
            keep: 0,
        };
        Self::start(
            Path::new("<stderr>"),
            Some(File::from(fd)),
            rotation,
            cap,
            None,
        )
    }

    /// Hands `file` (or, if `None`, the opening of `path`) to the writer thread.
    fn start(
        path: &Path,
        file: Option<File>,
        rotation: Rotation,
        cap: usize,
        periodic: Option<Arc<dyn Periodic>>,
    ) -> io::Result<Self> {
        let size = match &file {
            Some(f) => f.metadata()?.len(),
            None => 0,
        };
        let tx = writer()?;
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let queued = Arc::new(AtomicUsize::new(0));
        let deferred = file.is_none();
        let target = Target {
            path: path.to_path_buf(),
            out: file.map(BufWriter::new),
            size,
            rotation,
            queued: queued.clone(),
            periodic,
            dirty: false,
            broken: false,
            released: false,
        };
        let msg = if deferred {
            Msg::OpenHere(id, Box::new(target))
        } else {
            Msg::Open(id, Box::new(target))
        };
        tx.send(msg)
            .map_err(|_| io::Error::other("the log writer thread is gone"))?;
        Ok(Self {
            tx,
            id,
            queued,
            cap,
        })
    }

    /// Queues one line (ending in `\n`); `false` when this file's queue is full.
    pub fn send(&self, line: String) -> bool {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.cap {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        if self.tx.send(Msg::Line(self.id, line)).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }
}

impl Channel {
    /// Closes the file (after what is queued) until the next line comes.
    pub fn release(&self) {
        let _ = self.tx.send(Msg::Release(self.id));
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Close(self.id));
    }
}

/// Waits (at most 10 s) until every line sent so far, by any file, is written
/// and flushed. For the end of a run, and for tests.
pub fn flush() {
    let Ok(tx) = writer() else { return };
    let (done, wait) = std::sync::mpsc::sync_channel(1);
    if tx.send(Msg::Flush(done)).is_ok() {
        let _ = wait.recv_timeout(Duration::from_secs(10));
    }
}

/// Opens `path` for appending, created 0600 (an existing file is tightened to 0600).
pub(crate) fn open_append(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    if file.metadata()?.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// The writer thread's queue, starting the thread on first use.
fn writer() -> io::Result<Sender<Msg>> {
    static WRITER: Mutex<Option<Sender<Msg>>> = Mutex::new(None);
    let mut slot = WRITER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(tx) = &*slot {
        return Ok(tx.clone());
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || run(rx))?;
    *slot = Some(tx.clone());
    Ok(tx)
}

fn run(rx: Receiver<Msg>) {
    let mut files: HashMap<u64, Box<Target>> = HashMap::new();
    let mut next_tick = Instant::now() + TICK;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(msg) => {
                handle(&mut files, msg);
                for msg in rx.try_iter().take(BATCH) {
                    handle(&mut files, msg);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        if now >= next_tick {
            for target in files.values_mut() {
                target.periodic(now, false);
            }
            next_tick = now + TICK;
        }
        for target in files.values_mut() {
            target.flush();
        }
    }
}

fn handle(files: &mut HashMap<u64, Box<Target>>, msg: Msg) {
    match msg {
        Msg::Open(id, target) => {
            files.insert(id, target);
        }
        Msg::OpenHere(id, mut target) => {
            target.open_here();
            files.insert(id, target);
        }
        Msg::Line(id, line) => {
            if let Some(target) = files.get_mut(&id) {
                target.queued.fetch_sub(1, Ordering::AcqRel);
                target.write(&line);
            }
        }
        Msg::Release(id) => {
            if let Some(target) = files.get_mut(&id) {
                target.release();
            }
        }
        Msg::Close(id) => {
            if let Some(mut target) = files.remove(&id) {
                target.periodic(Instant::now(), true);
                target.flush();
            }
        }
        Msg::Flush(done) => {
            for target in files.values_mut() {
                target.flush();
            }
            let _ = done.send(());
        }
    }
}

/// One open log file, owned by the writer thread.
struct Target {
    path: PathBuf,
    /// `None` until a deferred open is done (or if it failed).
    out: Option<BufWriter<File>>,
    size: u64,
    rotation: Rotation,
    queued: Arc<AtomicUsize>,
    periodic: Option<Arc<dyn Periodic>>,
    dirty: bool,
    /// A write or rotation failed: the file is left alone from then on.
    broken: bool,
    /// Closed by [`Channel::release`]: the next line opens it again.
    released: bool,
}

impl Target {
    fn open_here(&mut self) {
        let opened = match self.path.parent() {
            Some(dir) => super::private::create_dirs(dir),
            None => Ok(()),
        }
        .and_then(|()| open_append(&self.path))
        .and_then(|f| Ok((f.metadata()?.len(), f)));
        match opened {
            Ok((size, file)) => {
                self.size = size;
                self.out = Some(BufWriter::new(file));
            }
            Err(e) => self.fail("open", e),
        }
    }

    /// Flushes and closes the file; [`Target::write`] opens it again.
    fn release(&mut self) {
        self.flush();
        if self.out.take().is_some() {
            self.released = true;
        }
    }

    fn write(&mut self, line: &str) {
        if self.released && !self.broken {
            self.released = false;
            match open_append(&self.path).and_then(|f| Ok((f.metadata()?.len(), f))) {
                Ok((size, file)) => {
                    self.size = size;
                    self.out = Some(BufWriter::new(file));
                }
                Err(e) => self.fail("open", e),
            }
        }
        let Some(out) = self.out.as_mut().filter(|_| !self.broken) else {
            return;
        };
        if let Err(e) = out.write_all(line.as_bytes()) {
            self.fail("write", e);
            return;
        }
        self.dirty = true;
        self.size += line.len() as u64;
        if self.size >= self.rotation.max_bytes
            && let Err(e) = self.rotate()
        {
            self.fail("rotate", e);
        }
    }

    fn periodic(&mut self, now: Instant, all: bool) {
        if let Some(p) = self.periodic.clone() {
            for line in p.due(now, all) {
                self.write(&line);
            }
        }
    }

    fn flush(&mut self) {
        if self.dirty && !self.broken {
            self.dirty = false;
            if let Some(Err(e)) = self.out.as_mut().map(Write::flush) {
                self.fail("flush", e);
            }
        }
    }

    fn fail(&mut self, what: &str, e: io::Error) {
        self.broken = true;
        // Not through tracing: orchestrator.log is itself one of these
        // files. Not eprintln!, which panics when stderr is gone.
        let _ = writeln!(
            io::stderr(),
            "orchestrator: log {}: cannot {what}, no more lines go there: {e}",
            self.path.display()
        );
    }

    /// `x.log` → `x.log.1` → … → `x.log.<keep>` (dropped beyond), then a fresh `x.log`.
    fn rotate(&mut self) -> io::Result<()> {
        if let Some(out) = self.out.as_mut() {
            out.flush()?;
        }
        let keep = self.rotation.keep.max(1);
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        let _ = std::fs::remove_file(numbered(keep));
        for n in (1..keep).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        std::fs::rename(&self.path, numbered(1))?;
        self.out = Some(BufWriter::new(open_append(&self.path)?));
        self.size = 0;
        Ok(())
    }
}
