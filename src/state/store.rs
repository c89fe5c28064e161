//! The state file: what must survive a restart or a `kill -9`, and who may write it.
//!
//! Writes are write-to-temp (a name of this process's own), fsync, rename,
//! fsync-directory, so the file on disk is always either the old or the new complete
//! state, never a torn one. Workers change the in-memory [`State`] through
//! [`StateStore::update`] and call [`StateStore::save`] after a change that must not be
//! lost (a wake seen, an alert about to go out); several changes make one write.
//!
//! One daemon per state file: [`StateStore::open`] takes an exclusive lock
//! (`flock` on `<state>.lock`, holding the holder's pid) for as long as the daemon runs.
//! A second daemon started by hand next to the service would otherwise act on the same
//! leafs and send the same alerts. The control token lives in the same directory, so the
//! lock covers it too.

use std::collections::BTreeSet;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use std::collections::BTreeMap;

use super::parts;
use super::schema::{migrate, SchemaError, State};
use super::parts::PARTS_PER_WRITE;

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading, writing or renaming failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another daemon holds the state file.
    #[error("state file {path} is in use by another container-manager{} (lock {lock}); stop it first, or give this one its own state_file", holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        /// The state file.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// The holder's pid, as it wrote it.
        holder: Option<u32>,
    },
    /// With `[daemon.ha]`: this daemon does not hold the lease, so it may not write.
    #[error("not the holder of the lease: the other daemon writes the state")]
    NotHolder,
    /// With `[daemon.ha]`: the table refused or failed the write (or the read).
    #[error("shared state in DynamoDB: {0}")]
    Table(String),
    /// Written by a newer version: refused, and left as it is.
    #[error("state file {path}: {source}")]
    Newer {
        /// The file.
        path: PathBuf,
        /// What the schema said.
        source: SchemaError,
    },
}

impl From<StateError> for crate::worker::WorkerError {
    fn from(e: StateError) -> Self {
        Self::new("state", e.to_string())
    }
}

impl StateError {
    /// True when the operator must act before the daemon can start (exit 2).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Locked { .. } | Self::Newer { .. })
    }
}

/// The in-memory state and the file behind it.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    inner: Mutex<Inner>,
    /// Serialises file writes so an older snapshot never overwrites a newer one.
    write: tokio::sync::Mutex<u64>,
    /// Held (open, locked) for the life of the store.
    _lock: std::fs::File,
    /// With `[daemon.ha]`: the table the state lives in instead of the file.
    shared: Option<Shared>,
}

/// A boxed future, for the [`Table`] trait's methods.
pub type Pending<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, String>> + Send + 'a>>;

/// Where `[daemon.ha]` keeps the state: the DynamoDB adapter implements it
/// (`aws::dynamodb`), so the store needs no AWS types.
pub trait Table: std::fmt::Debug + Send + Sync {
    /// Every part under `prefix` (key, body), read consistently.
    fn parts<'a>(&'a self, prefix: &'a str) -> Pending<'a, Vec<(String, String)>>;
    /// Puts and deletes parts in one transaction if the lease `key` is still `me`'s at
    /// `fence`; false (nothing written) when it is not.
    fn write<'a>(&'a self, key: &'a str, me: &'a str, fence: u64, puts: &'a [(String, String)], deletes: &'a [String]) -> Pending<'a, bool>;
}

/// The `[daemon.ha]` table, and what this daemon's term has written to it.
#[derive(Debug)]
struct Shared {
    table: Box<dyn Table>,
    name: String,
    me: String,
    /// The fence and the parts as written, while this daemon holds the lease.
    term: Mutex<Option<(u64, BTreeMap<String, String>)>>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// Bumped by every update; compared with what was last written.
    generation: u64,
}

impl StateStore {
    /// Locks and opens `path`. A missing file is a fresh start. A file written by a newer
    /// version is refused (nothing is overwritten). A file that cannot be parsed is moved
    /// aside (never deleted) and the daemon starts fresh, logging loudly: a daemon that
    /// refuses to start leaves every leaf unattended.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let io = |source| StateError::Io { path: path.to_owned(), source };
        let lock = lock(path)?;
        let mut state = match std::fs::read(path) {
            Ok(bytes) => match migrate(&bytes) {
                Ok(state) => state,
                Err(source @ SchemaError::Newer { .. }) => return Err(StateError::Newer { path: path.to_owned(), source }),
                Err(err) => {
                    let aside = path.with_extension(format!("unreadable-{}", crate::clock::now().0));
                    std::fs::rename(path, &aside).map_err(io)?;
                    tracing::error!(path = %path.display(), moved_to = %aside.display(), cause = %err, "state file unreadable; starting fresh (pending wakes and alert memory lost)");
                    State::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(io(e)),
        };
        let generation = u64::from(repair_future(&mut state));
        Ok(Self { path: path.to_owned(), inner: Mutex::new(Inner { state, generation }), write: tokio::sync::Mutex::new(0), _lock: lock, shared: None })
    }

    /// With `[daemon.ha]`: the state lives in `table` under the lease `name`. It is read
    /// on each takeover ([`StateStore::take_over`]); until then it is empty. `path` is
    /// still locked (one daemon per host), and its contents become the shared state the
    /// first time a table holds none, so a single daemon moves to a pair without losing
    /// a pending wake.
    pub fn open_shared(path: &Path, table: Box<dyn Table>, name: &str, me: &str) -> Result<Self, StateError> {
        let lock = lock(path)?;
        let shared = Shared { table, name: name.to_owned(), me: me.to_owned(), term: Mutex::new(None) };
        Ok(Self { path: path.to_owned(), inner: Mutex::new(Inner { state: State::default(), generation: 0 }), write: tokio::sync::Mutex::new(0), _lock: lock, shared: Some(shared) })
    }

    /// Starts a term under the lease's `fence`: reads the shared state (or, the first
    /// time, the local file's) and replaces the memory of any earlier term with it.
    pub async fn take_over(&self, fence: u64) -> Result<(), StateError> {
        let Some(shared) = &self.shared else { return Ok(()) };
        let mut written = self.write.lock().await;
        let found = shared.table.parts(&format!("{}/", shared.name)).await.map_err(StateError::Table)?;
        let (mut state, imported) = if found.is_empty() {
            match std::fs::read(&self.path) {
                Ok(bytes) => (migrate(&bytes).map_err(|source| StateError::Newer { path: self.path.clone(), source })?, true),
                Err(_) => (State::default(), false),
            }
        } else {
            (parts::state_of(&found, &shared.name).map_err(|e| StateError::Table(format!("the shared state cannot be read: {e}")))?, false)
        };
        repair_future(&mut state);
        *shared.term.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((fence, found.into_iter().collect()));
        let mut inner = self.lock();
        inner.state = state;
        inner.generation = *written + u64::from(imported) + 1;
        *written = inner.generation - 1;
        Ok(())
    }

    /// Ends the term: nothing more is written until the next [`StateStore::take_over`].
    pub fn step_down(&self) {
        if let Some(shared) = &self.shared {
            *shared.term.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Updates are plain field assignments that cannot panic halfway in a way that
        // matters; keep going with the data rather than crash every worker.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the state.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock().state)
    }

    /// Changes the state; the change is written by the next [`save`](Self::save).
    pub fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut inner = self.lock();
        inner.generation += 1;
        f(&mut inner.state)
    }

    /// Changes the state; `f` says whether anything worth writing changed, so a poll
    /// that found nothing new does not rewrite the file.
    pub fn change<R>(&self, f: impl FnOnce(&mut State) -> (R, bool)) -> R {
        let mut inner = self.lock();
        let (result, changed) = f(&mut inner.state);
        if changed {
            inner.generation += 1;
        }
        result
    }

    /// Forgets the memory of leafs no longer configured (a reload removed them); the
    /// alerts already queued for them still go out.
    pub fn forget_leafs_except(&self, keep: &BTreeSet<String>) -> Vec<String> {
        self.change(|s| {
            let gone: Vec<String> = s.leafs.keys().filter(|k| !keep.contains(*k)).cloned().collect();
            for name in &gone {
                s.leafs.remove(name);
            }
            let changed = !gone.is_empty();
            (gone, changed)
        })
    }

    /// Writes the state if it changed since the last write: to the file, or with
    /// `[daemon.ha]` the changed parts to the table, fenced by the lease.
    pub async fn save(&self) -> Result<(), StateError> {
        if let Some(shared) = &self.shared {
            return self.save_shared(shared).await;
        }
        let mut written = self.write.lock().await;
        let (bytes, generation) = {
            let mut inner = self.lock();
            if inner.generation == *written {
                return Ok(());
            }
            inner.state.version = super::schema::VERSION;
            (serde_json::to_vec_pretty(&inner.state).expect("state is plain data"), inner.generation)
        };
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| StateError::Io { path: self.path.clone(), source: std::io::Error::other(e) })?
            .map_err(|source| StateError::Io { path: self.path.clone(), source })?;
        *written = generation;
        Ok(())
    }
}

impl StateStore {
    async fn save_shared(&self, shared: &Shared) -> Result<(), StateError> {
        let mut written = self.write.lock().await;
        let (now, generation) = {
            let inner = self.lock();
            if inner.generation == *written {
                return Ok(());
            }
            (parts::parts(&inner.state, &shared.name), inner.generation)
        };
        let Some((fence, before)) = shared.term.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone() else {
            return Err(StateError::NotHolder);
        };
        let (puts, deletes) = parts::diff(&before, &now);
        for (puts, deletes) in parts::transactions(&puts, &deletes, PARTS_PER_WRITE) {
            match shared.table.write(&shared.name, &shared.me, fence, puts, deletes).await {
                Ok(true) => crate::metrics::count("cm_ha_state_writes_total", "State writes to the shared table", &[], 1),
                Ok(false) => return Err(StateError::NotHolder),
                Err(e) => return Err(StateError::Table(e)),
            }
        }
        if let Some((_, parts)) = shared.term.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_mut().filter(|(f, _)| *f == fence) {
            *parts = now;
        }
        *written = generation;
        Ok(())
    }
}

/// Forgets times from the future in the leafs' memory (a bogus query-log line read by an
/// older version); true when it did.
fn repair_future(state: &mut State) -> bool {
    let now = crate::clock::now();
    let mut repaired = false;
    for (leaf, memory) in &mut state.leafs {
        let cleared = memory.repair_future(now);
        if !cleared.is_empty() {
            tracing::warn!(leaf, ?cleared, "the state held times from the future (a bogus query-log line read by an older version); forgot them");
            repaired = true;
        }
    }
    repaired
}

/// Creates the state file's directory, takes the exclusive lock beside `path` and writes
/// our pid into it.
fn lock(path: &Path) -> Result<std::fs::File, StateError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io { path: path.to_owned(), source })?;
    }
    let lock_path = path.with_extension("lock");
    let io = |source| StateError::Io { path: lock_path.clone(), source };
    let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&lock_path).map_err(io)?;
    // SAFETY: flock on a descriptor we own; it is released when the file is closed.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !locked {
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        return Err(StateError::Locked { path: path.to_owned(), lock: lock_path.clone(), holder: text.trim().parse().ok() });
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(file)
}

/// Write to a temp file of our own beside `path`, fsync it, rename over `path`, fsync the
/// directory. The temp name carries the pid and a counter: no other writer can rename a
/// half-written file of ours into place, nor we one of theirs.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static N: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_extension(format!("json.tmp-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;

    /// A directory of its own for each test (they run in parallel).
    fn temp_dir() -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("cm-state-test-{}-{}-{n}", std::process::id(), crate::clock::now().0));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn a_saved_wake_is_there_after_reopening() {
        let path = temp_dir().join("state.json");
        let store = StateStore::open(&path).unwrap();
        store.update(|s| s.leafs.entry("mc".into()).or_default().request_wake(Timestamp(5), "FRA6"));
        store.save().await.unwrap();
        drop(store); // the daemon that wrote it has stopped
        let again = StateStore::open(&path).unwrap();
        assert_eq!(again.read(|s| s.leafs["mc"].wake.clone().map(|w| w.query_at)), Some(Timestamp(5)));
        let leftovers = std::fs::read_dir(path.parent().unwrap()).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".tmp")).count();
        assert_eq!(leftovers, 0, "no temp file is left behind");
    }

    #[tokio::test]
    async fn an_unreadable_file_is_moved_aside_not_lost() {
        let dir = temp_dir();
        let path = dir.join("state.json");
        std::fs::write(&path, b"{ not json").unwrap();
        let store = StateStore::open(&path).unwrap();
        assert_eq!(store.read(Clone::clone), State::default());
        let aside: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().contains("unreadable")).collect();
        assert_eq!(aside.len(), 1);
    }

    #[test]
    fn regression_a_second_daemon_on_the_same_state_file_is_refused_naming_the_holder() {
        let path = temp_dir().join("state.json");
        let first = StateStore::open(&path).unwrap();
        let second = StateStore::open(&path).unwrap_err();
        assert!(second.is_refusal(), "{second}");
        let text = second.to_string();
        assert!(text.contains(&path.display().to_string()) && text.contains(&format!("pid {}", std::process::id())), "{text}");
        drop(first);
        assert!(StateStore::open(&path).is_ok(), "free again once the holder is gone");
    }

    #[test]
    fn regression_a_newer_state_file_is_refused_and_left_untouched() {
        let path = temp_dir().join("state.json");
        let text = r#"{"version": 999, "leafs": {}, "future_field": true}"#;
        std::fs::write(&path, text).unwrap();
        let err = StateStore::open(&path).unwrap_err();
        assert!(err.is_refusal() && err.to_string().contains("newer"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "nothing overwritten");
    }

    #[tokio::test]
    async fn nothing_is_written_when_nothing_changed() {
        let path = temp_dir().join("state.json");
        let store = StateStore::open(&path).unwrap();
        store.save().await.unwrap();
        assert!(!path.exists());
    }
}
