//! Receiving a sweep in parts (`SubmitSweepStream`, and a `SubmitSweep` too large for one
//! transaction). Parts are checked and converted off the store's lock, then staged a batch per
//! transaction, so agents' heartbeats and leases are served between batches. The sweep appears only
//! once every announced trial arrived; a stream broken off, refused or silent for too long leaves
//! nothing behind.

use crate::convert;
use crate::error::Error;
use crate::limits::{MAX_TRIALS_PER_PART, MAX_TRIALS_PER_SUBMIT};
use crate::ownership::{Caller, Definitions};
use crate::shared::{Batches, Shared};
use crate::store::{NewSweep, SubmitOutcome, BATCH as STORE_BATCH};
use std::sync::Arc;
use std::time::Duration;
use sweep_proto::v1 as pb;
use sweep_spec::TrialSpec;
use tokio::sync::Semaphore;
use tokio_stream::{Stream, StreamExt};
use tonic::Status;

/// Who may upload now: at most [`crate::limits::MAX_UPLOADS_IN_FLIGHT`] at once.
#[derive(Clone)]
pub struct Uploads {
    slots: Arc<Semaphore>,
    /// How long to wait for the next part ([`crate::limits::MAX_WAIT_FOR_PART`]).
    wait: Duration,
}

impl Uploads {
    pub fn new(in_flight: usize, wait: Duration) -> Uploads {
        Uploads { slots: Arc::new(Semaphore::new(in_flight)), wait }
    }

    /// Stores the sweep the parts carry; answers with its name when all its trials are in it.
    pub async fn receive<S>(
        &self,
        shared: &Shared,
        caller: Caller,
        mut parts: S,
    ) -> Result<(String, SubmitOutcome), Status>
    where
        S: Stream<Item = Result<pb::SubmitSweepStreamRequest, Status>> + Unpin + Send,
    {
        let first = self
            .next(&mut parts)
            .await?
            .ok_or_else(|| Status::invalid_argument("sweep: expected the sweep in the first part, got no part"))?;
        let head =
            first.sweep.ok_or_else(|| Status::invalid_argument("sweep: expected the sweep in the first part"))?;
        let in_all = first.trials_in_all as usize;
        if in_all > MAX_TRIALS_PER_SUBMIT {
            return Err(Status::invalid_argument(format!(
                "trials_in_all: expected at most {MAX_TRIALS_PER_SUBMIT} trials, got {in_all}"
            )));
        }
        let force = head.force;
        let (sweep, mut trials) = convert::sweep_head_from_wire(head)?;
        trials.extend(first.trials);
        let sweep = Arc::new(sweep);
        {
            let (sweep, caller) = (sweep.clone(), caller.clone());
            shared.read(move |s, _| s.check_submission(&sweep, &caller, force)).await?;
        }
        let mut received = Received { in_all, count: 0, definitions: Definitions::default(), max_index: None };
        let first_trials = received.convert(&sweep.name, trials).await?;
        let second = self.next(&mut parts).await?;
        if second.is_none() && first_trials.len() <= STORE_BATCH {
            received.check_all()?;
            let whole = NewSweep { trials: first_trials.into_iter().map(|(t, _)| t).collect(), ..clone_head(&sweep) };
            let out = shared.write(move |s, now| s.submit(&whole, &caller, force, now)).await?;
            return Ok((sweep.name.clone(), out));
        }

        let _slot = self.slots.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{} sweeps are being received in parts; send this one again when one of them is in",
                crate::limits::MAX_UPLOADS_IN_FLIGHT
            ))
        })?;
        let upload = {
            let name = sweep.name.clone();
            shared.write_then_wake_if(move |s, now| s.begin_upload(&name, now), |_| false).await?
        };
        let mut staged = Staged { shared: shared.clone(), upload, armed: true };
        staged.stage(first_trials).await?;
        let mut next = second;
        while let Some(part) = next {
            if part.sweep.is_some() || part.trials_in_all != 0 {
                return Err(Status::invalid_argument(
                    "sweep: expected the sweep and trials_in_all in the first part only",
                ));
            }
            let trials = received.convert(&sweep.name, part.trials).await?;
            staged.stage(trials).await?;
            next = self.next(&mut parts).await?;
        }
        received.check_all()?;
        // From here the upload is finished even if the caller hangs up: every part arrived.
        staged.armed = false;
        let shared = shared.clone();
        let Received { definitions, max_index, .. } = received;
        let finish = tokio::spawn(async move {
            let head = sweep.clone();
            let mut batches = Batches::default();
            let first = shared
                .write_batch(&mut batches, move |s, now, batch| {
                    s.finish_upload(upload, &head, definitions.into_vec(), max_index, &caller, force, now, batch)
                })
                .await;
            let mut step = match first {
                Ok(step) => step,
                Err(e) => {
                    drop_upload(&shared, upload).await;
                    return Err(e);
                }
            };
            let mut added = step.added;
            while step.more {
                step = shared.write_batch(&mut batches, move |s, _, batch| s.publish(upload, batch)).await?;
                added += step.added;
            }
            let name = sweep.name.clone();
            let total = shared.read(move |s, _| s.trials_total(&name)).await?;
            Ok::<_, Error>((sweep.name.clone(), SubmitOutcome { added, total }))
        });
        Ok(finish.await.map_err(|e| Status::internal(format!("storing the sweep: {e}")))??)
    }

    /// The next part, or None at the end of the stream.
    async fn next<S>(&self, parts: &mut S) -> Result<Option<pb::SubmitSweepStreamRequest>, Status>
    where
        S: Stream<Item = Result<pb::SubmitSweepStreamRequest, Status>> + Unpin,
    {
        match tokio::time::timeout(self.wait, parts.next()).await {
            Ok(part) => part.transpose(),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "no part of the sweep arrived for {}s: what was received is dropped; send the sweep again",
                self.wait.as_secs()
            ))),
        }
    }
}

fn clone_head(sweep: &NewSweep) -> NewSweep {
    NewSweep {
        name: sweep.name.clone(),
        source: sweep.source.clone(),
        source_path: sweep.source_path.clone(),
        policy: sweep.policy,
        schedule: sweep.schedule.clone(),
        search: sweep.search.clone(),
        trials: Vec::new(),
    }
}

/// What the parts so far carried, against what the first announced.
struct Received {
    in_all: usize,
    count: usize,
    definitions: Definitions,
    max_index: Option<u32>,
}

impl Received {
    /// Checks and converts one part's trials on a blocking thread (a part takes milliseconds of
    /// parsing and hashing), with each trial's spec as stored.
    async fn convert(&mut self, sweep: &str, trials: Vec<pb::Trial>) -> Result<Vec<(TrialSpec, String)>, Status> {
        if trials.len() > MAX_TRIALS_PER_PART {
            return Err(Status::invalid_argument(format!(
                "trials: expected at most {MAX_TRIALS_PER_PART} trials in one part, got {}",
                trials.len()
            )));
        }
        if self.count + trials.len() > self.in_all {
            return Err(Status::invalid_argument(format!(
                "trials_in_all: the first part announced {} trials, the parts carry more",
                self.in_all
            )));
        }
        let (first, sweep) = (self.count, sweep.to_string());
        self.count += trials.len();
        let mut definitions = std::mem::take(&mut self.definitions);
        let (converted, definitions) = tokio::task::spawn_blocking(move || {
            let specs = convert::trials_from_wire(&sweep, trials, first)?;
            definitions.extend(&specs);
            let staged: Vec<(TrialSpec, String)> = specs
                .into_iter()
                .map(|t| {
                    let json = serde_json::to_string(&t).expect("trial specs serialize");
                    (t, json)
                })
                .collect();
            Ok::<_, Status>((staged, definitions))
        })
        .await
        .map_err(|e| Status::internal(format!("checking trials: {e}")))??;
        self.definitions = definitions;
        self.max_index = converted.iter().map(|(t, _)| t.index).chain(self.max_index).max();
        Ok(converted)
    }

    fn check_all(&self) -> Result<(), Status> {
        if self.count == self.in_all {
            return Ok(());
        }
        Err(Status::invalid_argument(format!(
            "trials_in_all: the first part announced {} trials, the parts carried {}; nothing was stored",
            self.in_all, self.count
        )))
    }
}

/// An open upload; dropped with its staged trials unless it reached its end.
struct Staged {
    shared: Shared,
    upload: i64,
    armed: bool,
}

impl Staged {
    async fn stage(&mut self, trials: Vec<(TrialSpec, String)>) -> Result<(), Status> {
        let upload = self.upload;
        let mut trials = trials;
        while !trials.is_empty() {
            let rest = trials.split_off(trials.len().min(STORE_BATCH));
            let batch = std::mem::replace(&mut trials, rest);
            self.shared.write_then_wake_if(move |s, _| s.stage(upload, &batch), |_| false).await?;
        }
        Ok(())
    }
}

impl Drop for Staged {
    /// Also when the caller hangs up: the handler is dropped mid-await, and the clean-up runs on.
    fn drop(&mut self) {
        // Without a runtime (the coordinator is stopping) the next start drops it instead.
        if let (true, Ok(runtime)) = (self.armed, tokio::runtime::Handle::try_current()) {
            let (shared, upload) = (self.shared.clone(), self.upload);
            runtime.spawn(async move { drop_upload(&shared, upload).await });
        }
    }
}

async fn drop_upload(shared: &Shared, upload: i64) {
    loop {
        match shared.write_then_wake_if(move |s, _| s.drop_upload(upload, STORE_BATCH), |_| false).await {
            Ok(true) => continue,
            Ok(false) => return tracing::info!(upload, "a sweep received in part was dropped"),
            Err(e) => {
                return tracing::error!(upload, error = %e, "dropping a sweep received in part failed; the next start drops it")
            }
        }
    }
}
