//! `sweep.v1.AgentService`: what agents call. Every write names its lease; the store refuses
//! writes under a lease that is no longer current, and every call after `Register` presents the
//! registration's session secret (`crate::session`), so one agent cannot act on another's leases.

use crate::convert;
use crate::lifecycle::Completion;
use crate::scheduler::LeaseVerdict;
use crate::shared::Shared;
use crate::store::{LeaseReport, MetricBatch};
use std::time::Duration;
use sweep_proto::v1::{self as pb, agent_service_server::AgentService};
use tonic::{Request, Response, Status};

/// How long a lease call waits for work when nothing can be granted at once: what the agent
/// asked, within [`crate::limits::MAX_LEASE_WAIT_MS`].
pub fn lease_wait(wait_ms: u32) -> Duration {
    Duration::from_millis(u64::from(wait_ms.min(crate::limits::MAX_LEASE_WAIT_MS)))
}

pub struct AgentApi {
    pub shared: Shared,
    pub lease_ttl: Duration,
    pub heartbeat_interval: Duration,
    /// The cluster's checkpoint root handed to agents; empty: none.
    pub checkpoint_root: String,
}

#[tonic::async_trait]
impl AgentService for AgentApi {
    async fn register(&self, req: Request<pb::RegisterRequest>) -> Result<Response<pb::RegisterResponse>, Status> {
        let r = req.into_inner();
        convert::check_register(&r)?;
        let (secret, session) = crate::session::new_secret()?;
        // Live: heard from within two lease lifetimes, as the /metrics gauge counts them.
        let alive_window_ms = 2 * self.lease_ttl.as_millis() as i64;
        let (id, other_hosts_alive) = {
            let r = r.clone();
            self.shared
                .write(move |s, now| {
                    let id = s.register_agent(&r.name, &r.hostname, r.slots, &r.gpus, &session, now)?;
                    Ok((id, s.hosts_alive_besides(&r.hostname, now, alive_window_ms)?))
                })
                .await?
        };
        tracing::info!(agent = %id, host = %r.hostname, slots = r.slots, gpus = ?r.gpus, "agent registered");
        Ok(Response::new(pb::RegisterResponse {
            agent_id: id,
            lease_ttl_ms: self.lease_ttl.as_millis() as i64,
            heartbeat_interval_ms: self.heartbeat_interval.as_millis() as i64,
            session_secret: secret,
            checkpoint_root: self.checkpoint_root.clone(),
            other_hosts_alive,
        }))
    }

    #[tracing::instrument(name = "lease", skip_all, fields(agent = %req.get_ref().agent_id, free_slots = req.get_ref().free_slots))]
    async fn lease(&self, req: Request<pb::LeaseRequest>) -> Result<Response<pb::LeaseResponse>, Status> {
        let r = req.into_inner();
        convert::check_lease(&r)?;
        let session = convert::session(&r.session_secret)?;
        let agent = r.agent_id.clone();
        let gpus = convert::gpu_rooms(&r);
        // Subscribed before the first try, so work queued between the try and the wait wakes it.
        let mut queued = self.shared.watch_queue();
        let mut stopping = self.shared.stopping();
        let give_up = tokio::time::Instant::now() + lease_wait(r.wait_ms);
        let answer = loop {
            queued.borrow_and_update();
            let (r, gpus) = (r.clone(), gpus.clone());
            let answer = self
                .shared
                .write(move |s, now| {
                    let only_sweep = Some(r.only_sweep.as_str()).filter(|n| !n.is_empty());
                    s.lease(&r.agent_id, &session, r.free_slots, gpus, only_sweep, now)
                })
                .await?;
            if !answer.grants.is_empty() || answer.quarantine.is_some() || *stopping.borrow() {
                break answer;
            }
            tokio::select! {
                woke = queued.changed() => if woke.is_err() { break answer },
                _ = tokio::time::sleep_until(give_up) => break answer,
                _ = stopping.changed() => break answer,
            }
        };
        let grants = answer.grants;
        for g in &grants {
            tracing::info!(agent = %agent, sweep = %g.spec.sweep, trial = %g.spec.id, attempt = g.attempt, lease = g.lease_id, group = g.group, "leased");
        }
        Ok(Response::new(pb::LeaseResponse {
            leases: grants
                .into_iter()
                .map(|g| pb::Lease {
                    lease_id: g.lease_id,
                    sweep_id: g.spec.sweep.clone(),
                    attempt: g.attempt,
                    deadline_ms: g.deadline_ms,
                    trial: Some(pb::Trial::from(&g.spec)),
                    group: g.group,
                    stop_after_epoch: g.stop_after.unwrap_or(0),
                    keep_checkpoint: g.keep_checkpoint,
                })
                .collect(),
            quarantine: answer.quarantine.unwrap_or_default(),
        }))
    }

    async fn heartbeat(&self, req: Request<pb::HeartbeatRequest>) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let r = req.into_inner();
        convert::check_heartbeat(&r)?;
        let session = convert::session(&r.session_secret)?;
        let leases: Vec<LeaseReport> =
            r.leases.iter().map(|l| LeaseReport { lease_id: l.lease_id, running: l.running }).collect();
        // Ahead of queued reports and completions: a late heartbeat loses its leases.
        let verdicts = self.shared.write_first(move |s, now| s.heartbeat(&r.agent_id, &session, &leases, now)).await?;
        let commands = verdicts
            .into_iter()
            .map(|(lease_id, verdict, deadline_ms)| {
                let action = match verdict {
                    LeaseVerdict::Extend => pb::LeaseAction::Continue,
                    LeaseVerdict::Stop => pb::LeaseAction::Stop,
                    LeaseVerdict::Abandon => pb::LeaseAction::Abandon,
                };
                pb::LeaseCommand { lease_id, action: action as i32, deadline_ms }
            })
            .collect();
        Ok(Response::new(pb::HeartbeatResponse { commands }))
    }

    #[tracing::instrument(name = "report", skip_all, fields(lease = req.get_ref().lease_id, epochs = req.get_ref().epochs.len()))]
    async fn report_metrics(
        &self,
        req: Request<pb::ReportMetricsRequest>,
    ) -> Result<Response<pb::ReportMetricsResponse>, Status> {
        let r = req.into_inner();
        convert::check_report(&r)?;
        let batch = MetricBatch {
            lease_id: r.lease_id,
            session: convert::session(&r.session_secret)?,
            epochs: r.epochs.into_iter().map(convert::epoch_from_wire).collect(),
            warnings: convert::warnings_from_wire(r.warnings),
        };
        let r = self.shared.write(move |s, now| s.report_metrics(&batch, now * 1000)).await?;
        Ok(Response::new(pb::ReportMetricsResponse {
            rows_added: r.added,
            rows_duplicate: r.duplicate,
            trial_stopped: r.stopped,
        }))
    }

    #[tracing::instrument(name = "complete", skip_all, fields(lease = req.get_ref().lease_id))]
    async fn complete(&self, req: Request<pb::CompleteRequest>) -> Result<Response<pb::CompleteResponse>, Status> {
        let mut r = req.into_inner();
        convert::check_complete(&mut r)?;
        let session = convert::session(&r.session_secret)?;
        let lease_id = r.lease_id;
        let c = Completion {
            exit_code: r.exit_code,
            signal: r.signal,
            stderr_tail: r.stderr_tail,
            launch_error: r.launch_error,
            launch_error_permanent: r.launch_error_permanent,
            stopped_by_request: r.stopped_by_request,
            released: r.released,
            unstarted: r.unstarted,
            whole_group: r.whole_group,
            refused: None,
            reached_budget: r.reached_budget,
            kept_checkpoint: r.kept_checkpoint,
        };
        let state = self.shared.write(move |s, now| s.complete(lease_id, &session, &c, now)).await?;
        if state == crate::lifecycle::TrialState::Pending {
            self.shared.trials_queued();
        }
        tracing::info!(lease = lease_id, state = %state, "attempt completed");
        Ok(Response::new(pb::CompleteResponse { trial_state: state.as_str().to_string() }))
    }
}
