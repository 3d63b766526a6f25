//! Live updates: one task follows the store's change counter (the one `WatchSweep` wakes on) and
//! reads where every sweep stands once per burst of changes; each open page holds a server-sent
//! event stream fed from that one reading. So a hundred open pages cost the store nothing more
//! than one.

use crate::shared::Shared;
use axum::response::sse::{Event, KeepAlive, Sse};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_stream::Stream;

/// Changes come in bursts (a report of many metrics, a heartbeat of many leases); waiting this long
/// after the first one reads the store once for the whole burst.
const BURST: Duration = Duration::from_millis(150);
/// Most event streams open at once; more are refused with 503 rather than holding connections.
pub const MAX_STREAMS: usize = 256;

/// Where each sweep stands: its trial version, last metric row and last decision, and whether
/// trials are still to run.
pub type Cursors = Arc<HashMap<String, (i64, i64, i64, bool)>>;

#[derive(Clone)]
pub struct Feed {
    cursors: watch::Receiver<Cursors>,
    streams: Arc<tokio::sync::Semaphore>,
}

impl Feed {
    /// Starts following `shared`; the feed ends when the coordinator stops.
    pub fn follow(shared: Shared) -> Feed {
        let (tx, rx) = watch::channel(Cursors::default());
        tokio::spawn(async move {
            let mut changes = shared.subscribe();
            let mut stopping = shared.stopping();
            loop {
                match shared.read(|s, _| s.cursors()).await {
                    Ok(cursors) => {
                        let now: HashMap<_, _> = cursors
                            .into_iter()
                            .map(|c| (c.name, (c.trials_version, c.last_metric_seq, c.last_decision_seq, c.open)))
                            .collect();
                        tx.send_if_modified(|held| {
                            let changed = **held != now;
                            if changed {
                                *held = Arc::new(now);
                            }
                            changed
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "the dashboard's live feed could not read the store"),
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    _ = stopping.wait_for(|s| *s) => return,
                    _ = tx.closed() => return,
                }
                tokio::time::sleep(BURST).await;
            }
        });
        Feed { cursors: rx, streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)) }
    }

    /// Where every sweep stands, as last read; changes when any sweep changes.
    pub fn cursors(&self) -> watch::Receiver<Cursors> {
        self.cursors.clone()
    }

    /// A stream of `sweep` events, one per sweep that changed, as JSON `{"sweep", "trials_version",
    /// "metric_seq", "decision_seq"}`; None when [`MAX_STREAMS`] are open already.
    pub fn stream(&self) -> Option<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
        let permit = self.streams.clone().try_acquire_owned().ok()?;
        let mut rx = self.cursors.clone();
        let stream = async_stream(move |tx| async move {
            let _permit = permit;
            let mut sent: Cursors = Cursors::default();
            loop {
                let now = rx.borrow_and_update().clone();
                for (name, c) in now.iter() {
                    if sent.get(name) != Some(c) {
                        let data = serde_json::json!({
                            "sweep": name, "trials_version": c.0, "metric_seq": c.1, "decision_seq": c.2, "open": c.3,
                        });
                        if tx.send(Event::default().event("sweep").data(data.to_string())).await.is_err() {
                            return;
                        }
                    }
                }
                sent = now;
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
        Some(Sse::new(stream).keep_alive(KeepAlive::default()))
    }
}

/// A stream fed by a task through a small channel; the task ends when the page hangs up.
fn async_stream<F, Fut>(body: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(body(tx));
    tokio_stream::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), Ok)
}
