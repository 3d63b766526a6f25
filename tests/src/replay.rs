//! Replayed and reordered reports: the suite acts as one more agent over gRPC, leases a few
//! trials, and "runs" them itself by sending their epochs in shuffled chunks, each chunk possibly
//! twice, then all of them again, then once more after completion under the now-stale lease
//! (which must add nothing).

use crate::faults::{FaultLog, Rng};
use std::path::Path;
use std::time::Duration;
use sweep_proto::v1::agent_service_client::AgentServiceClient;
use sweep_proto::v1::{self as pb, LeaseAction};
use tonic::transport::{Channel, Endpoint};

/// What one burst sent and what the coordinator answered.
#[derive(Debug, Default, Clone)]
pub struct ReplayStats {
    pub trials: u32,
    pub reports_sent: u32,
    /// Reports that repeated rows already sent (each should add nothing).
    pub reports_replayed: u32,
    pub rows_added: u32,
    pub rows_duplicate: u32,
    pub stale_refused: u32,
    /// Answers that break the contract (a replay that added rows, a stale write accepted, …).
    pub anomalies: Vec<String>,
}

/// The checkpoint file the suite's trial script keeps: the last finished epoch.
pub const CHECKPOINT_FILE: &str = "epoch";

/// The metrics the trial script prints for `epoch` of `attempt` of the trial whose grid index is
/// `score`; the replayer sends the same.
pub fn epoch_metrics(epoch: u32, attempt: u32, score: f64) -> pb::EpochMetrics {
    let loss: f64 = format!("0.{}", 100 - epoch).parse().expect("loss");
    pb::EpochMetrics {
        epoch,
        step: epoch as i64,
        metrics: vec![
            pb::Metric { name: "loss".into(), value: loss },
            pb::Metric { name: "attempt".into(), value: attempt as f64 },
            pb::Metric { name: "score".into(), value: score },
        ],
    }
}

/// One burst against the coordinator at `url`. Errors mean the burst could not run (no trial to
/// lease, coordinator unreachable); contract breaks land in `anomalies`.
pub fn replay_burst(
    url: &str,
    checkpoint_root: &Path,
    epochs: u32,
    max_trials: u32,
    rng: &mut Rng,
    log: &FaultLog,
) -> Result<ReplayStats, String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(burst(url, checkpoint_root, epochs, max_trials, rng, log))
}

async fn burst(
    url: &str,
    checkpoint_root: &Path,
    epochs: u32,
    max_trials: u32,
    rng: &mut Rng,
    log: &FaultLog,
) -> Result<ReplayStats, String> {
    let channel = Endpoint::from_shared(url.to_string())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    let mut client = AgentServiceClient::new(channel);
    let reg = client
        .register(pb::RegisterRequest {
            name: "replayer".into(),
            hostname: "chaos".into(),
            slots: max_trials,
            gpus: vec![],
        })
        .await
        .map_err(|e| format!("register: {e}"))?
        .into_inner();
    let agent_id = reg.agent_id;
    let secret = reg.session_secret;

    // Trials are pending only between waves and after faults: ask for a few seconds.
    let mut leases = Vec::new();
    for _ in 0..50 {
        let resp = client
            .lease(pb::LeaseRequest {
                agent_id: agent_id.clone(),
                free_slots: max_trials,
                free_gpus: 0,
                session_secret: secret.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("lease: {e}"))?;
        leases = resp.into_inner().leases;
        if !leases.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if leases.is_empty() {
        return Err("no pending trial to lease within 5 s".into());
    }

    let mut stats = ReplayStats::default();
    for lease in leases {
        stats.trials += 1;
        let trial_id = lease.trial.as_ref().map(|t| t.trial_id.clone()).unwrap_or_default();
        let dir = checkpoint_root.join(&lease.sweep_id).join(&trial_id);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // A copy PBT made starts from the epoch it copied, as an agent's copy of the parent's
        // checkpoint would; this replayer keeps no checkpoints for PBT, so none copies its own.
        let copied = lease.trial.as_ref().map_or(0, |t| t.copy_from_epoch);
        let start: u32 = std::fs::read_to_string(dir.join(CHECKPOINT_FILE))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(copied);
        log.note(format!(
            "replayer leased trial {trial_id} attempt {} (lease {}), resuming after epoch {start}",
            lease.attempt, lease.lease_id
        ));
        let params: serde_json::Value =
            lease.trial.as_ref().and_then(|t| serde_json::from_str(&t.params_json).ok()).unwrap_or_default();
        let score = params["i"].as_f64().unwrap_or(0.0);
        // A promoting schedule's lease trains to its rung only.
        let last = if lease.stop_after_epoch > 0 { lease.stop_after_epoch.min(epochs) } else { epochs };
        let records: Vec<pb::EpochMetrics> =
            (start + 1..=last).map(|e| epoch_metrics(e, lease.attempt, score)).collect();
        let rows: u32 = records.iter().map(|r| r.metrics.len() as u32).sum();

        // Shuffled chunks of 1-3 epochs; about half of them sent twice in a row.
        let mut chunks: Vec<Vec<pb::EpochMetrics>> = Vec::new();
        let mut rest = records.as_slice();
        while !rest.is_empty() {
            let n = (rng.range(1, 4) as usize).min(rest.len());
            chunks.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        rng.shuffle(&mut chunks);
        // Under an early-stopping schedule the coordinator may stop the trial at a rung: its
        // heartbeats then say stop and its completion leaves it stopped_early.
        let mut stopped = false;
        for chunk in &chunks {
            let sends = 1 + rng.range(0, 2);
            for k in 0..sends {
                let (added, dup, stop) =
                    report(&mut client, &secret, lease.lease_id, chunk.clone(), &mut stats).await?;
                stopped |= stop;
                let expected = chunk.iter().map(|r| r.metrics.len() as u32).sum::<u32>();
                if k == 0 && (added, dup) != (expected, 0) {
                    stats.anomalies.push(format!(
                        "lease {}: first send added {added}, dup {dup}, expected {expected} new",
                        lease.lease_id
                    ));
                }
                if k > 0 {
                    stats.reports_replayed += 1;
                    if (added, dup) != (0, expected) {
                        stats.anomalies.push(format!("lease {}: replay added {added}, dup {dup}", lease.lease_id));
                    }
                }
            }
            heartbeat(&mut client, &agent_id, &secret, lease.lease_id, stopped, &mut stats).await?;
        }
        // Everything again, in reverse order: all duplicates.
        if !records.is_empty() {
            let mut all = records.clone();
            all.reverse();
            let (added, dup, _) = report(&mut client, &secret, lease.lease_id, all, &mut stats).await?;
            stats.reports_replayed += 1;
            if (added, dup) != (0, rows) {
                stats.anomalies.push(format!("lease {}: full replay added {added}, dup {dup}", lease.lease_id));
            }
        }
        // The checkpoint moves only after the coordinator has every epoch: tmp + rename.
        let tmp = dir.join(format!("{CHECKPOINT_FILE}.replayer.tmp"));
        std::fs::write(&tmp, format!("{}\n", last.max(start))).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, dir.join(CHECKPOINT_FILE)).map_err(|e| e.to_string())?;
        let done = client
            .complete(pb::CompleteRequest {
                lease_id: lease.lease_id,
                exit_code: Some(0),
                session_secret: secret.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("complete lease {}: {e}", lease.lease_id))?
            .into_inner();
        // A segment ends paused, queued for its next rung, or stopped early when it was the last
        // trial that could promote it.
        let expected: &[&str] = match () {
            _ if stopped => &["stopped_early"],
            _ if last < epochs => &["paused", "pending", "stopped_early"],
            _ => &["succeeded"],
        };
        if !expected.contains(&done.trial_state.as_str()) {
            stats.anomalies.push(format!("lease {}: completion left the trial {}", lease.lease_id, done.trial_state));
        }
        // The lease is no longer the trial's and the trial has finished: a late replay of an epoch
        // it sent must add nothing (the coordinator refuses it: the results are final). A lease
        // that resumed after the last epoch sent nothing, so it has nothing to replay.
        if let Some(last) = records.last() {
            stats.reports_sent += 1;
            stats.reports_replayed += 1;
            match client
                .report_metrics(pb::ReportMetricsRequest {
                    lease_id: lease.lease_id,
                    epochs: vec![last.clone()],
                    session_secret: secret.clone(),
                    warnings: Vec::new(),
                })
                .await
            {
                Err(s) if s.code() == tonic::Code::FailedPrecondition => stats.stale_refused += 1,
                Ok(r) if r.get_ref().rows_added == 0 => stats.stale_refused += 1,
                other => stats
                    .anomalies
                    .push(format!("lease {}: report after completion answered {other:?}", lease.lease_id)),
            }
        }
        log.note(format!("replayer finished trial {trial_id}: {} epochs sent", records.len()));
    }
    Ok(stats)
}

async fn report(
    client: &mut AgentServiceClient<Channel>,
    secret: &str,
    lease_id: i64,
    epochs: Vec<pb::EpochMetrics>,
    stats: &mut ReplayStats,
) -> Result<(u32, u32, bool), String> {
    stats.reports_sent += 1;
    let r = client
        .report_metrics(pb::ReportMetricsRequest {
            lease_id,
            epochs,
            session_secret: secret.to_string(),
            warnings: Vec::new(),
        })
        .await
        .map_err(|e| format!("report under lease {lease_id}: {e}"))?
        .into_inner();
    stats.rows_added += r.rows_added;
    stats.rows_duplicate += r.rows_duplicate;
    Ok((r.rows_added, r.rows_duplicate, r.trial_stopped))
}

async fn heartbeat(
    client: &mut AgentServiceClient<Channel>,
    agent_id: &str,
    secret: &str,
    lease_id: i64,
    stopped: bool,
    stats: &mut ReplayStats,
) -> Result<(), String> {
    let r = client
        .heartbeat(pb::HeartbeatRequest {
            agent_id: agent_id.to_string(),
            leases: vec![pb::LeaseState { lease_id, running: true }],
            session_secret: secret.to_string(),
        })
        .await
        .map_err(|e| format!("heartbeat: {e}"))?
        .into_inner();
    let expected = if stopped { LeaseAction::Stop } else { LeaseAction::Continue };
    for c in r.commands {
        if c.lease_id == lease_id && LeaseAction::try_from(c.action) != Ok(expected) {
            stats.anomalies.push(format!("lease {lease_id}: heartbeat answered {:?}", c.action));
        }
    }
    Ok(())
}
