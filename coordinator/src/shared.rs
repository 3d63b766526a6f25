//! The one owner of scheduler state: the store behind a mutex held only for one short, blocking
//! transaction at a time (never across an `.await`), plus a change counter that wakes watchers.
//! Reads go through read-only connections of their own, so a long read (a million-trial sweep's
//! results) never holds up the agents' calls, which all write. Heartbeats, which keep leases
//! alive, do not queue behind the other writes either (`write_first`).

use crate::error::{Error, Result};
use crate::store::{now_ms, Store};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use tokio::sync::watch;

/// Read-only connections for concurrent reads: enough that status, results and watchers rarely
/// queue behind each other.
const READERS: usize = 4;

/// How long one batch of a whole-sweep change should hold the store. In a big sweep each new trial
/// lands on its own page of the trial-id index, so a batch's commit writes about 4 kB to the log
/// per trial: 2,000 trials at a million took a few hundred milliseconds, which a heartbeat waited.
const BATCH_HOLD: std::time::Duration = std::time::Duration::from_millis(20);
/// The fewest trials a batch shrinks to.
const MIN_BATCH: usize = 64;

/// The size of the next batch of a whole-sweep change (moving an upload's trials in, cancelling):
/// starting at [`crate::store::BATCH`] trials, halved after a transaction that held the store
/// longer than [`BATCH_HOLD`], doubled back after one under half of it. So a batch costs an agent's
/// call about the same wait whatever the sweep's size.
pub struct Batches {
    size: usize,
}

impl Default for Batches {
    fn default() -> Self {
        Batches { size: crate::store::BATCH }
    }
}

impl Batches {
    fn took(&mut self, held: std::time::Duration) {
        if held > BATCH_HOLD {
            self.size = (self.size / 2).max(MIN_BATCH);
        } else if held < BATCH_HOLD / 2 {
            self.size = (self.size * 2).min(crate::store::BATCH);
        }
    }
}

#[derive(Clone)]
pub struct Shared {
    store: Arc<Mutex<Store>>,
    /// Who goes next to the store's lock: heartbeats before the other writes.
    order: Arc<WriteOrder>,
    readers: Arc<Readers>,
    changes: Arc<watch::Sender<u64>>,
    /// Set once the server begins to stop; long-lived streams end on it.
    stopping: Arc<watch::Sender<bool>>,
    /// Bumped when trials may have become leasable; idle agents' lease calls wait on it.
    queued: Arc<watch::Sender<u64>>,
}

/// Ordinary writes take their turn one at a time and then wait while a heartbeat waits, so a
/// heartbeat waits for the write in progress and at most one more, not for every report and
/// completion of 64 busy agents. (The store's mutex alone would not do: it lets a thread that
/// arrives take it ahead of one that was asleep waiting for it.) Writes wait for their turn on the
/// runtime, in order of arrival, not each on a blocking thread of its own: 64 agents with 8 calls
/// in flight each had some 440 threads parked on the store's lock.
#[derive(Default)]
struct WriteOrder {
    turn: tokio::sync::Mutex<()>,
    heartbeats_waiting: Mutex<usize>,
    no_heartbeat_waiting: Condvar,
}

/// A lock that a panic elsewhere did not spoil: every write is one transaction, rolled back if it
/// did not finish.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
            order: Arc::new(WriteOrder::default()),
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
            let guard = lock(&readers.stores[turn]);
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
        let out = self.write_on_lock(false, f).await;
        if out.as_ref().map_or(true, changed) {
            self.changes.send_modify(|v| *v = v.wrapping_add(1));
        }
        out
    }

    /// One batch of a whole-sweep change: `f` gets the number of trials to handle, and how long it
    /// held the store sizes the next batch. Wakes watchers like [`Shared::write`].
    pub async fn write_batch<T, F>(&self, batches: &mut Batches, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store, i64, usize) -> Result<T> + Send + 'static,
    {
        let size = batches.size;
        let (out, held) = self
            .write(move |s, now| {
                let start = std::time::Instant::now();
                f(s, now, size).map(|out| (out, start.elapsed()))
            })
            .await?;
        batches.took(held);
        Ok(out)
    }

    /// A write that goes ahead of those waiting their turn: a heartbeat, which keeps leases alive
    /// and must not wait behind a queue of reports and completions. It waits only for the write in
    /// progress (and at most one about to start). Wakes watchers like [`Shared::write`].
    pub async fn write_first<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store, i64) -> Result<T> + Send + 'static,
    {
        let out = self.write_on_lock(true, f).await;
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
        out
    }

    async fn write_on_lock<T, F>(&self, first: bool, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store, i64) -> Result<T> + Send + 'static,
    {
        let (store, order) = (self.store.clone(), self.order.clone());
        let _turn = if first { None } else { Some(self.order.turn.lock().await) };
        tokio::task::spawn_blocking(move || {
            let mut guard = if first {
                *lock(&order.heartbeats_waiting) += 1;
                let guard = lock(&*store);
                let mut waiting = lock(&order.heartbeats_waiting);
                *waiting -= 1;
                if *waiting == 0 {
                    order.no_heartbeat_waiting.notify_all();
                }
                guard
            } else {
                let mut waiting = lock(&order.heartbeats_waiting);
                while *waiting > 0 {
                    waiting = order.no_heartbeat_waiting.wait(waiting).unwrap_or_else(|p| p.into_inner());
                }
                drop(waiting);
                lock(&*store)
            };
            f(&mut guard, now_ms())
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
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
        lock(&self.store).reader()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_batch_shrinks_while_it_holds_the_store_too_long_and_grows_back() {
        let mut b = Batches::default();
        b.took(BATCH_HOLD * 3);
        assert_eq!(b.size, crate::store::BATCH / 2);
        for _ in 0..20 {
            b.took(BATCH_HOLD * 3);
        }
        assert_eq!(b.size, MIN_BATCH);
        b.took(BATCH_HOLD * 3 / 4);
        assert_eq!(b.size, MIN_BATCH, "within the hold: kept");
        for _ in 0..20 {
            b.took(BATCH_HOLD / 4);
        }
        assert_eq!(b.size, crate::store::BATCH);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_heartbeat_goes_ahead_of_writes_waiting_their_turn() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Shared::new(Store::open(dir.path(), 30_000).unwrap()).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let write = |name: &'static str, hold: Duration| {
            let (shared, order) = (shared.clone(), order.clone());
            tokio::spawn(async move {
                shared
                    .write(move |_, _| {
                        std::thread::sleep(hold);
                        order.lock().unwrap().push(name);
                        Ok(())
                    })
                    .await
            })
        };
        let mut queued = vec![write("long", Duration::from_millis(800))];
        tokio::time::sleep(Duration::from_millis(100)).await;
        for name in ["q1", "q2", "q3", "q4"] {
            queued.push(write(name, Duration::from_millis(200)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let first_order = order.clone();
        shared
            .write_first(move |_, _| {
                first_order.lock().unwrap().push("heartbeat");
                Ok(())
            })
            .await
            .unwrap();
        for w in queued {
            w.await.unwrap().unwrap();
        }
        let order = order.lock().unwrap().clone();
        let at = order.iter().position(|n| *n == "heartbeat").unwrap();
        assert!(at <= 2, "the heartbeat waited only for the write in progress and at most one more: {order:?}");
    }
}
