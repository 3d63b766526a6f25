//! `sweep submit FILE`: expand here (relative paths belong to this machine), send, print the id.

use crate::client;
use std::path::Path;
use sweep_proto::v1 as pb;
use sweep_spec::{SweepFile, TrialSpec};

/// The submission for a parsed sweep file and its trials.
pub fn request(file: &SweepFile, trials: &[TrialSpec]) -> anyhow::Result<pb::SubmitSweepRequest> {
    let source = std::fs::read_to_string(&file.path).unwrap_or_default();
    let source_path = std::path::absolute(&file.path)?.display().to_string();
    Ok(pb::SubmitSweepRequest::from_file(file, trials, source, source_path))
}

/// Reads, expands and submits; returns the coordinator's answer. `force` replaces the policy and
/// definition of an existing sweep of the same name instead of being refused.
pub async fn submit(remote: &client::Remote, path: &Path, force: bool) -> anyhow::Result<pb::SubmitSweepResponse> {
    let (file, trials) = super::validate::load(path)?;
    let req = pb::SubmitSweepRequest { force, ..request(&file, &trials)? };
    let mut c = client::connect(remote).await?;
    send(&mut c, req).await
}

/// Sends a submission in parts of at most 10,000 trials (`SubmitSweepStream`): the coordinator
/// stores it part by part, and the sweep appears once all of it arrived.
pub async fn send(c: &mut client::Client, req: pb::SubmitSweepRequest) -> anyhow::Result<pb::SubmitSweepResponse> {
    sweep_proto::submit::submit_in_parts(c, req, sweep_proto::submit::TRIALS_PER_PART).await.map_err(client::explain)
}

pub async fn run(remote: &client::Remote, path: &Path, force: bool) -> anyhow::Result<()> {
    let resp = submit(remote, path, force).await?;
    eprintln!("{} new trials, {} in all", resp.trials_added, resp.trials_total);
    println!("{}", sweep_spec::text::escape(&resp.sweep_id));
    Ok(())
}
