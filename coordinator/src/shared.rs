//! The one owner of scheduler state: the store behind a mutex held only for one short, blocking
//! transaction at a time (never across an `.await`), plus a change counter that wakes watchers.
//! Reads go through read-only connections of their own, so a long read (a million-trial sweep's
//! results) never holds up the agents' calls, which all write.

use crate::error::{Error, Result};
use crate::store::{now_ms, Store};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Read-only connections for concurrent reads: enough that status, results and watchers rarely
/// queue behind each other.
const READERS: usize = 4;

#[derive(Clone)]
pub struct Shared {
    store: Arc<Mutex<Store>>,
    readers: Arc<Readers>,
    changes: Arc<watch::Sender<u64>>,
    /// Set once the server begins to stop; long-lived streams end on it.
    stopping: Arc<watch::Sender<bool>>,
    /// Bumped when trials may have become leasable; idle agents' lease calls wait on it.
    queued: Arc<watch::Sender<u64>>,
}

/// The read-only connections, handed out in turn.
struct Readers {
    stores: Vec<Mutex<Store>>,
    next: AtomicUsize,
}

impl Shared {
    pub fn new(store: Store) -> Result<Shared> {
        let stores = (0..READERS).map(|_| store.reader().map(Mutex::new)).collect::<Result<_>>()?;
        Ok(Shared {
            store: Arc::new(Mutex::new(store)),
            readers: Arc::new(Readers { stores, next: AtomicUsize::new(0) }),
            changes: Arc::new(watch::channel(0).0),
            stopping: Arc::new(watch::channel(false).0),
            queued: Arc::new(watch::channel(0).0),
        })
    }

    /// Runs a read on a blocking thread, on a read-only connection, with the clock read once.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store, i64) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let turn = readers.next.fetch_add(1, Ordering::Relaxed) % readers.stores.len();
            let guard = readers.stores[turn].lock().unwrap_or_else(|p| p.into_inner());
            f(&guard, now_ms())
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }

    /// Runs a write on a blocking thread, then wakes everyone watching for changes.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store, i64) -> Result<T> + Send + 'static,
    {
        self.write_then_wake_if(f, |_| true).await
    }

    /// Like [`Shared::write`], but wakes watchers only when `changed` says the write changed anything.
    pub async fn write_then_wake_if<T, F, C>(&self, f: F, changed: C) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store, i64) -> Result<T> + Send + 'static,
        C: FnOnce(&T) -> bool,
    {
        let store = self.store.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard, now_ms())
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        if out.as_ref().map_or(true, changed) {
            self.changes.send_modify(|v| *v = v.wrapping_add(1));
        }
        out
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Says that trials may have become leasable: a sweep was submitted, retried or resumed, a
    /// trial went back to the queue, or an agent was let out of quarantine. Only this wakes lease
    /// calls that wait for work, not every write, so idle agents do not ask at each heartbeat.
    pub fn trials_queued(&self) {
        self.queued.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn watch_queue(&self) -> watch::Receiver<u64> {
        self.queued.subscribe()
    }

    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Tells long-lived streams that the server is stopping.
    pub fn begin_stopping(&self) {
        self.stopping.send_replace(true);
    }

    /// A read-only connection of its own, for a reader that runs apart (the Parquet sink).
    pub fn open_reader(&self) -> Result<Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner()).reader()
    }
}
