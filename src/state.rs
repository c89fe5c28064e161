//! The state file: what must survive a restart or a `kill -9`.
//!
//! Writes are write-to-temp, fsync, rename, fsync-directory, so the file on disk is
//! always either the old or the new complete state, never a torn one. Workers change
//! the in-memory [`State`] through [`StateStore::update`] and call
//! [`StateStore::save`] after a change that must not be lost (a wake seen, an alert
//! about to go out).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::alerts::OutboxEntry;
use crate::clock::Timestamp;
use crate::leaf::LeafState;

/// Bumped when the format changes incompatibly.
const VERSION: u32 = 1;

/// Everything persisted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    #[serde(default)]
    pub version: u32,
    /// Per-leaf memory, by leaf name.
    #[serde(default)]
    pub leafs: BTreeMap<String, LeafState>,
    /// Per-log-group tail memory, by group name.
    #[serde(default)]
    pub tail: BTreeMap<String, TailState>,
    /// Alerts decided but not yet published.
    #[serde(default)]
    pub outbox: Vec<OutboxEntry>,
}

/// What the tail of one log group must not forget.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailState {
    /// Keys of leaf queries already acted on (or refused), with their event time (for
    /// pruning). Only events that a read can still return are kept.
    #[serde(default)]
    pub acted: BTreeMap<String, Timestamp>,
    /// Every line before this has been read once, unfiltered, after it could no longer
    /// change: after downtime the sweep resumes here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swept_until: Option<Timestamp>,
    /// Written by versions before the sweep: the end of the last read, which re-read the
    /// whole look-back window. Read once as `read_until - lookback`, then dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_until: Option<Timestamp>,
}

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
}

/// The in-memory state and the file behind it.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    inner: Mutex<Inner>,
    /// Serialises file writes so an older snapshot never overwrites a newer one.
    write: tokio::sync::Mutex<u64>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// Bumped by every update; compared with what was last written.
    generation: u64,
}

impl StateStore {
    /// Opens `path`. A missing file is a fresh start. A file that cannot be parsed is
    /// moved aside (never deleted) and the daemon starts fresh, logging loudly: a
    /// daemon that refuses to start leaves every leaf unattended.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let io = |source| StateError::Io { path: path.to_owned(), source };
        let state = match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
                Ok(state) => state,
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
        let mut state = state;
        let now = crate::clock::now();
        let mut generation = 0;
        for (leaf, memory) in &mut state.leafs {
            let cleared = memory.repair_future(now);
            if !cleared.is_empty() {
                tracing::warn!(leaf, ?cleared, "the state file held times from the future (a bogus query-log line read by an older version); forgot them");
                generation = 1;
            }
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        Ok(Self { path: path.to_owned(), inner: Mutex::new(Inner { state, generation }), write: tokio::sync::Mutex::new(0) })
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

    /// Writes the state if it changed since the last write.
    pub async fn save(&self) -> Result<(), StateError> {
        let mut written = self.write.lock().await;
        let (bytes, generation) = {
            let mut inner = self.lock();
            if inner.generation == *written {
                return Ok(());
            }
            inner.state.version = VERSION;
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

/// Write to a temp file beside `path`, fsync it, rename over `path`, fsync the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
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
        let again = StateStore::open(&path).unwrap();
        assert_eq!(again.read(|s| s.leafs["mc"].wake.clone().map(|w| w.query_at)), Some(Timestamp(5)));
        assert!(!path.with_extension("json.tmp").exists());
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

    #[tokio::test]
    async fn nothing_is_written_when_nothing_changed() {
        let path = temp_dir().join("state.json");
        let store = StateStore::open(&path).unwrap();
        store.save().await.unwrap();
        assert!(!path.exists());
    }
}
