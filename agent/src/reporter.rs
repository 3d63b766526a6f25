//! The agent's outbound queue to the coordinator: metric reports and completions, sent in the
//! order they happened and retried until the coordinator takes them. Consecutive records of one
//! lease travel in one call. A refusal (stale lease) drops the item: that attempt is over. Each
//! item goes out under the session of the registration that holds its lease. When a report tells
//! that the sweep's schedule stopped its trial, a heartbeat goes out at once to fetch the stop.

use crate::client::{self, Client};
use crate::session::Session;
use std::collections::VecDeque;
use std::sync::Arc;
use sweep_proto::v1::{CompleteRequest, EpochMetrics, Metric, MetricWarning, ReportMetricsRequest};
use sweep_spec::EpochRecord;
use tokio::sync::{mpsc, oneshot, Notify};

/// Items waiting to be sent. When the coordinator is unreachable the queue fills, and then trial
/// output waits in its pipe: training pauses rather than losing a row.
const QUEUE_DEPTH: usize = 4096;
/// Epoch records per call at most.
const MAX_EPOCHS_PER_CALL: usize = 256;
/// Warnings per call at most: the coordinator's bound (`limits::MAX_WARNINGS_PER_REPORT`).
const MAX_WARNINGS_PER_CALL: usize = 16;

/// What a report call carries for one lease.
enum Report {
    Epoch(EpochRecord),
    /// A metric of the trial's output that could not be recorded, for `sweep status`.
    Warning(MetricWarning),
}

enum Outbound {
    Metrics {
        lease_id: i64,
        item: Report,
        session: Session,
    },
    /// Answered once the coordinator took the completion (or refused it for good).
    Complete(CompleteRequest, oneshot::Sender<()>),
    /// Answered once everything queued before it was sent.
    Barrier(oneshot::Sender<()>),
}

/// A handle on the queue that sends under one session: the agent's, or (for output an earlier
/// run left unreported) that run's.
#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::Sender<Outbound>,
    session: Session,
}

impl Reporter {
    /// Starts the sender. It ends once every `Reporter` clone is dropped and the queue is empty.
    /// `beat_now` wakes the heartbeats.
    pub fn spawn(client: Client, session: Session, beat_now: Arc<Notify>) -> (Reporter, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        (Reporter { tx, session }, tokio::spawn(send_forever(client, rx, beat_now)))
    }

    /// The registration this handle reports for.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// A handle on the same queue that sends under `session`.
    pub fn under(&self, session: Session) -> Reporter {
        Reporter { tx: self.tx.clone(), session }
    }

    pub async fn metrics(&self, lease_id: i64, record: EpochRecord) {
        let item = Report::Epoch(record);
        let _ = self.tx.send(Outbound::Metrics { lease_id, item, session: self.session.clone() }).await;
    }

    /// Tells the coordinator, in order with the metrics, that `field` of the trial's output could
    /// not be recorded (`field` "" for a whole line).
    pub async fn warning(&self, lease_id: i64, field: String, message: String) {
        let item = Report::Warning(MetricWarning { field, message });
        let _ = self.tx.send(Outbound::Metrics { lease_id, item, session: self.session.clone() }).await;
    }

    /// Queues the completion after the metrics before it, and returns once it was delivered.
    pub async fn complete(&self, req: CompleteRequest) {
        if let Some(delivered) = self.complete_queued(req).await {
            let _ = delivered.await;
        }
    }

    /// Queues the completion and returns what answers once it was delivered (None if the sender
    /// has stopped), so the caller can free the trial's slot at once and drop the lease from its
    /// heartbeats only when the coordinator has the outcome.
    pub async fn complete_queued(&self, mut req: CompleteRequest) -> Option<oneshot::Receiver<()>> {
        req.session_secret = self.session.secret();
        let (done, delivered) = oneshot::channel();
        self.tx.send(Outbound::Complete(req, done)).await.ok().map(|_| delivered)
    }

    /// Returns once every report queued so far was delivered (or refused for good).
    pub async fn barrier(&self) {
        let (done, reached) = oneshot::channel();
        if self.tx.send(Outbound::Barrier(done)).await.is_ok() {
            let _ = reached.await;
        }
    }
}

async fn send_forever(client: Client, mut rx: mpsc::Receiver<Outbound>, beat_now: Arc<Notify>) {
    // What was taken off the queue and not sent yet, in queue order: while a call is under way
    // more piles up, and each lease's records in it go out together.
    let mut backlog: VecDeque<Outbound> = VecDeque::new();
    loop {
        while backlog.len() < QUEUE_DEPTH {
            match rx.try_recv() {
                Ok(item) => backlog.push_back(item),
                Err(_) => break,
            }
        }
        let item = match backlog.pop_front() {
            Some(item) => item,
            None => match rx.recv().await {
                Some(item) => item,
                None => return,
            },
        };
        match item {
            Outbound::Metrics { lease_id, item, session } => {
                let (mut epochs, mut warnings) = (Vec::new(), Vec::new());
                item.add_to(&mut epochs, &mut warnings);
                take_same_lease(&mut backlog, lease_id, &session, &mut epochs, &mut warnings);
                let req = ReportMetricsRequest { lease_id, epochs, session_secret: session.secret(), warnings };
                let sent = client::with_retry("report_metrics", || {
                    let mut c = client.clone();
                    let req = req.clone();
                    async move { c.report_metrics(req).await }
                })
                .await;
                match sent {
                    Ok(resp) if resp.get_ref().trial_stopped => {
                        tracing::info!(lease = lease_id, "the sweep's schedule stopped the trial");
                        beat_now.notify_one();
                    }
                    Ok(_) => {}
                    Err(status) => {
                        tracing::warn!(lease = lease_id, error = status.message(), "metrics refused; dropped")
                    }
                }
            }
            Outbound::Barrier(done) => {
                let _ = done.send(());
            }
            Outbound::Complete(req, done) => {
                let lease_id = req.lease_id;
                let sent = client::with_retry("complete", || {
                    let mut c = client.clone();
                    let req = req.clone();
                    async move { c.complete(req).await }
                })
                .await;
                match sent {
                    Ok(resp) => {
                        tracing::info!(lease = lease_id, trial_state = %resp.into_inner().trial_state, "completion recorded")
                    }
                    Err(status) => tracing::warn!(lease = lease_id, error = status.message(), "completion refused"),
                }
                let _ = done.send(());
            }
        }
    }
}

/// Moves the later records of `lease_id` (under `session`) out of `backlog` into one call, up to
/// the call's bounds: records of other leases may be passed, never a barrier or the lease's own
/// completion, so each lease's reports keep their order and a barrier still follows everything
/// queued before it.
fn take_same_lease(
    backlog: &mut VecDeque<Outbound>,
    lease_id: i64,
    session: &Session,
    epochs: &mut Vec<EpochMetrics>,
    warnings: &mut Vec<MetricWarning>,
) {
    let mut i = 0;
    while i < backlog.len() && epochs.len() < MAX_EPOCHS_PER_CALL && warnings.len() < MAX_WARNINGS_PER_CALL {
        match &backlog[i] {
            Outbound::Barrier(_) => return,
            Outbound::Complete(req, _) if req.lease_id == lease_id => return,
            Outbound::Metrics { lease_id: l, session: s, .. } if *l == lease_id && s == session => {
                if let Some(Outbound::Metrics { item, .. }) = backlog.remove(i) {
                    item.add_to(epochs, warnings);
                }
            }
            _ => i += 1,
        }
    }
}

impl Report {
    fn add_to(self, epochs: &mut Vec<EpochMetrics>, warnings: &mut Vec<MetricWarning>) {
        match self {
            Report::Epoch(record) => epochs.push(to_wire(record)),
            Report::Warning(w) => warnings.push(w),
        }
    }
}

fn to_wire(r: EpochRecord) -> EpochMetrics {
    EpochMetrics {
        epoch: r.epoch,
        step: r.step_or_epoch(),
        metrics: r.metrics.into_iter().map(|(name, value)| Metric { name, value }).collect(),
    }
}
