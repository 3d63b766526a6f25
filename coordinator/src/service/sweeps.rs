//! `sweep.v1.SweepService`: what users call from the CLI.

use super::page;
use super::upload::Uploads;
use crate::auth;
use crate::convert;
use crate::shared::Shared;
use crate::store::BATCH as STORE_BATCH;
use crate::store::{Chosen, RetryWhich};
use std::pin::Pin;
use std::time::Duration;
use sweep_proto::v1::{self as pb, sweep_service_server::SweepService};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Agents silent for longer than this are left out of listings.
const AGENT_LISTING_WINDOW_MS: i64 = 5 * 60 * 1000;

/// How often a watch looks at a sweep that did not change, for agents that went silent.
const WATCH_RECHECK: Duration = Duration::from_secs(5);

/// The sweep's summary with why its pending trials wait, if nobody can run them (agents alive
/// within `Store::alive_window_ms`).
fn summary_now(s: &crate::store::Store, name: &str, now: i64) -> crate::error::Result<crate::store::SweepSummary> {
    let mut summary = s.summary(name)?;
    summary.waiting = s.stall(name, now, s.alive_window_ms())?.map(|w| w.to_string());
    summary.rungs = s.rung_counts(name)?;
    Ok(summary)
}

/// Cancels every unfinished trial of `sweep`, a batch per transaction, as `caller` (the CLI's
/// `sweep cancel` and the dashboard's button alike). The first batch answers whether the caller
/// may; the rest goes on even if the caller hangs up (a restart finishes what a stop cuts short).
pub async fn cancel_all(shared: &Shared, sweep: &str, caller: auth::Caller) -> crate::error::Result<u32> {
    let (shared, sweep) = (shared.clone(), sweep.to_string());
    let all = tokio::spawn(async move {
        let mut batches = crate::shared::Batches::default();
        let first = {
            let sweep = sweep.clone();
            shared.write_batch(&mut batches, move |s, now, batch| s.cancel(&sweep, &caller, now, batch)).await?
        };
        let (mut n, mut more) = (first.cancelled, first.more);
        while more {
            let sweep = sweep.clone();
            let step = shared.write_batch(&mut batches, move |s, now, batch| s.cancel_more(&sweep, now, batch)).await?;
            (n, more) = (n + step.cancelled, step.more);
        }
        Ok::<_, crate::error::Error>(n)
    });
    all.await.map_err(|e| crate::error::Error::Io(std::io::Error::other(format!("cancelling the sweep: {e}"))))?
}

pub struct SweepApi {
    pub shared: Shared,
    pub uploads: Uploads,
}

#[tonic::async_trait]
impl SweepService for SweepApi {
    #[tracing::instrument(name = "submit", skip_all, fields(sweep = %req.get_ref().name, trials = req.get_ref().trials.len()))]
    async fn submit_sweep(
        &self,
        req: Request<pb::SubmitSweepRequest>,
    ) -> Result<Response<pb::SubmitSweepResponse>, Status> {
        let caller = auth::caller(&req);
        let r = req.into_inner();
        let (force, name) = (r.force, r.name.clone());
        let by = caller.name().unwrap_or_default().to_string();
        let out = if r.trials.len() <= STORE_BATCH {
            let sweep = convert::sweep_from_wire(r)?;
            self.shared.write(move |s, now| s.submit(&sweep, &caller, force, now)).await?
        } else {
            // Stored in parts as if streamed, so agents are served while it is stored.
            convert::check_trial_count(r.trials.len())?;
            let parts = tokio_stream::iter(r.into_parts(crate::limits::MAX_TRIALS_PER_PART).map(Ok));
            self.uploads.receive(&self.shared, caller, parts).await?.1
        };
        self.shared.trials_queued();
        tracing::info!(sweep = %name, by = %by, force, added = out.added, total = out.total, "sweep submitted");
        Ok(Response::new(pb::SubmitSweepResponse { sweep_id: name, trials_added: out.added, trials_total: out.total }))
    }

    #[tracing::instrument(name = "submit_stream", skip_all)]
    async fn submit_sweep_stream(
        &self,
        req: Request<tonic::Streaming<pb::SubmitSweepStreamRequest>>,
    ) -> Result<Response<pb::SubmitSweepStreamResponse>, Status> {
        let caller = auth::caller(&req);
        let by = caller.name().unwrap_or_default().to_string();
        let parts = req.into_inner();
        let (name, out) = self.uploads.receive(&self.shared, caller, parts).await?;
        self.shared.trials_queued();
        tracing::info!(sweep = %name, by = %by, added = out.added, total = out.total, "sweep submitted in parts");
        Ok(Response::new(pb::SubmitSweepStreamResponse {
            sweep_id: name,
            trials_added: out.added,
            trials_total: out.total,
        }))
    }

    async fn get_sweep(&self, req: Request<pb::GetSweepRequest>) -> Result<Response<pb::GetSweepResponse>, Status> {
        let r = req.into_inner();
        let name = r.sweep_id;
        convert::check_sweep_name("sweep_id", &name)?;
        let (offset, fetch) = (r.trials_offset, page::fetch_limit(r.trials_limit));
        let (summary, trials, agents) = self
            .shared
            .read(move |s, now| {
                let trials = s.trials(&name, Chosen::Page { offset, limit: fetch })?;
                Ok((summary_now(s, &name, now)?, trials, s.agents(now, AGENT_LISTING_WINDOW_MS)?))
            })
            .await?;
        let trials = trials.into_iter().map(convert::trial_status_to_wire).collect();
        let (trials, trials_next_offset) = page::cut(trials, offset, fetch);
        Ok(Response::new(pb::GetSweepResponse {
            summary: Some(convert::summary_to_wire(&summary)),
            trials,
            agents: agents.into_iter().map(convert::agent_to_wire).collect(),
            trials_next_offset,
        }))
    }

    async fn get_trial(&self, req: Request<pb::GetTrialRequest>) -> Result<Response<pb::GetTrialResponse>, Status> {
        let r = req.into_inner();
        convert::check_sweep_name("sweep_id", &r.sweep_id)?;
        convert::check_trial_id("trial_id", &r.trial_id)?;
        let (trial, attempts) = self
            .shared
            .read(move |s, _| Ok((s.trial(&r.sweep_id, &r.trial_id)?, s.attempts(&r.sweep_id, &r.trial_id)?)))
            .await?;
        Ok(Response::new(pb::GetTrialResponse {
            trial: Some(convert::trial_status_to_wire(trial)),
            attempts: attempts.into_iter().map(convert::attempt_to_wire).collect(),
        }))
    }

    async fn list_sweeps(
        &self,
        _req: Request<pb::ListSweepsRequest>,
    ) -> Result<Response<pb::ListSweepsResponse>, Status> {
        let (summaries, agents) = self
            .shared
            .read(|s, now| {
                let summaries =
                    s.sweep_names()?.iter().map(|n| summary_now(s, n, now)).collect::<Result<Vec<_>, _>>()?;
                Ok((summaries, s.agents(now, AGENT_LISTING_WINDOW_MS)?))
            })
            .await?;
        Ok(Response::new(pb::ListSweepsResponse {
            sweeps: summaries.iter().map(convert::summary_to_wire).collect(),
            agents: agents.into_iter().map(convert::agent_to_wire).collect(),
        }))
    }

    #[tracing::instrument(name = "cancel", skip_all, fields(sweep = %req.get_ref().sweep_id))]
    async fn cancel_sweep(
        &self,
        req: Request<pb::CancelSweepRequest>,
    ) -> Result<Response<pb::CancelSweepResponse>, Status> {
        let caller = auth::caller(&req);
        let name = req.into_inner().sweep_id;
        convert::check_sweep_name("sweep_id", &name)?;
        let by = caller.name().unwrap_or_default().to_string();
        let n = cancel_all(&self.shared, &name, caller).await?;
        tracing::info!(sweep = %name, by = %by, trials = n, "sweep cancelled");
        Ok(Response::new(pb::CancelSweepResponse { trials_cancelled: n }))
    }

    type WatchSweepStream = Pin<Box<dyn Stream<Item = Result<pb::WatchSweepResponse, Status>> + Send>>;

    async fn watch_sweep(
        &self,
        req: Request<pb::WatchSweepRequest>,
    ) -> Result<Response<Self::WatchSweepStream>, Status> {
        let name = req.into_inner().sweep_id;
        convert::check_sweep_name("sweep_id", &name)?;
        let shared = self.shared.clone();
        // Subscribe before the first read so no change between the two is missed.
        let mut changes = shared.subscribe();
        let mut stopping = shared.stopping();
        // Fail now, not in the stream, for an unknown sweep.
        let first = {
            let name = name.clone();
            shared.read(move |s, now| summary_now(s, &name, now)).await?
        };
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut summary = first;
            let mut last_sent = None;
            loop {
                if last_sent.as_ref() != Some(&summary) {
                    let msg = pb::WatchSweepResponse { summary: Some(convert::summary_to_wire(&summary)) };
                    if tx.send(Ok(msg)).await.is_err() {
                        return;
                    }
                    last_sent = Some(summary.clone());
                }
                if summary.is_done() {
                    return;
                }
                // Ends when the watcher hangs up or the server stops, not only when the sweep is done.
                // Looks again now and then without a change: agents going silent changes nothing
                // in the store, but leaves pending trials with nobody to run them (`waiting`).
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(WATCH_RECHECK) => {}
                    _ = tx.closed() => return,
                    _ = stopping.wait_for(|s| *s) => return,
                }
                // Changes arrive in bursts; a short pause batches them into one update.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let name = name.clone();
                summary = match shared.read(move |s, now| summary_now(s, &name, now)).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn get_results(
        &self,
        req: Request<pb::GetResultsRequest>,
    ) -> Result<Response<pb::GetResultsResponse>, Status> {
        let r = req.into_inner();
        let name = r.sweep_id;
        convert::check_sweep_name("sweep_id", &name)?;
        let (offset, fetch) = (r.offset, page::fetch_limit(r.limit));
        let rows = self.shared.read(move |s, _| s.trial_rows(&name, Chosen::Page { offset, limit: fetch })).await?;
        let trials =
            rows.into_iter().enumerate().map(|(i, r)| convert::result_to_wire((offset + i as u64) as u32, r)).collect();
        let (trials, next_offset) = page::cut(trials, offset, fetch);
        Ok(Response::new(pb::GetResultsResponse { trials, next_offset }))
    }

    #[tracing::instrument(name = "retry", skip_all, fields(sweep = %req.get_ref().sweep_id))]
    async fn retry_sweep(
        &self,
        req: Request<pb::RetrySweepRequest>,
    ) -> Result<Response<pb::RetrySweepResponse>, Status> {
        let caller = auth::caller(&req);
        let r = req.into_inner();
        convert::check_sweep_name("sweep_id", &r.sweep_id)?;
        let which = RetryWhich { failed: r.failed, cancelled: r.cancelled };
        let by = caller.name().unwrap_or_default().to_string();
        let name = r.sweep_id;
        let n = {
            let name = name.clone();
            // Queued trials are work for agents waiting on a lease.
            self.shared.write_then_wake_if(move |s, now| s.retry(&name, which, &caller, now), |n| *n > 0).await?
        };
        if n > 0 {
            self.shared.trials_queued();
        }
        tracing::info!(sweep = %name, by = %by, failed = which.failed, cancelled = which.cancelled, trials = n, "sweep retried");
        Ok(Response::new(pb::RetrySweepResponse { trials_retried: n }))
    }

    async fn list_agents(
        &self,
        _req: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let agents = self.shared.read(|s, now| s.agents(now, AGENT_LISTING_WINDOW_MS)).await?;
        Ok(Response::new(pb::ListAgentsResponse { agents: agents.into_iter().map(convert::agent_to_wire).collect() }))
    }

    /// Admin only when token files are in use: quarantine protects every user's sweeps.
    #[tracing::instrument(name = "unquarantine", skip_all, fields(agent = %req.get_ref().agent))]
    async fn unquarantine_agent(
        &self,
        req: Request<pb::UnquarantineAgentRequest>,
    ) -> Result<Response<pb::UnquarantineAgentResponse>, Status> {
        let caller = auth::caller(&req);
        let agent = req.into_inner().agent;
        convert::check_agent_name("agent", &agent)?;
        if !caller.is_admin() {
            return Err(Status::permission_denied(format!(
                "only an `{}` token may let agents out of quarantine, not `{}`",
                crate::ownership::ADMIN,
                caller.name().unwrap_or_default()
            )));
        }
        let by = caller.name().unwrap_or_default().to_string();
        let freed = self.shared.write(move |s, _| s.unquarantine(&agent)).await?;
        self.shared.trials_queued();
        tracing::info!(agents = ?freed, by = %by, "unquarantine requested");
        Ok(Response::new(pb::UnquarantineAgentResponse { agent_ids: freed }))
    }

    #[tracing::instrument(name = "resume", skip_all, fields(sweep = %req.get_ref().sweep_id))]
    async fn resume_sweep(
        &self,
        req: Request<pb::ResumeSweepRequest>,
    ) -> Result<Response<pb::ResumeSweepResponse>, Status> {
        let caller = auth::caller(&req);
        let name = req.into_inner().sweep_id;
        convert::check_sweep_name("sweep_id", &name)?;
        self.shared.write(move |s, _| s.resume(&name, &caller)).await?;
        self.shared.trials_queued();
        Ok(Response::new(pb::ResumeSweepResponse {}))
    }
}
