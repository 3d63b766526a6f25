//! The submission of a parsed sweep file: one builder and one sender for the CLI, the benchmark
//! and the tests. A sweep goes out in parts of at most [`TRIALS_PER_PART`] trials, so a million-trial
//! sweep never makes one huge message and the coordinator stores it part by part.

use crate::v1::sweep_service_client::SweepServiceClient;
use crate::v1::{SubmitSweepRequest, SubmitSweepResponse, SubmitSweepStreamRequest, Trial};
use prost::Message;
use sweep_spec::{SweepFile, TrialSpec};
use tonic::codegen::{Body, Bytes, StdError};

/// Trials in one part of `SubmitSweepStream`: the coordinator's bound.
pub const TRIALS_PER_PART: usize = 10_000;

/// Encoded bytes of trials in one part, at most: a part of large trials (64 KiB of parameters
/// each) is cut before it comes near the coordinator's message limit.
pub const BYTES_PER_PART: usize = 8 * 1024 * 1024;

impl SubmitSweepRequest {
    /// `source` is the file's text and `source_path` where it was read, kept with the sweep.
    pub fn from_file(
        file: &SweepFile,
        trials: &[TrialSpec],
        source: String,
        source_path: String,
    ) -> SubmitSweepRequest {
        SubmitSweepRequest {
            name: file.name.clone(),
            source,
            source_path,
            max_attempts: file.retry.max_attempts,
            max_lost: file.retry.max_lost,
            retry_backoff_ms: file.retry.backoff_ms,
            trials: trials.iter().map(Trial::from).collect(),
            force: false,
            schedule_json: file
                .schedule
                .as_ref()
                .map(|s| serde_json::to_string(s).expect("a schedule of names and numbers serializes"))
                .unwrap_or_default(),
            search_json: file
                .tpe
                .as_ref()
                .map(|p| serde_json::to_string(p).expect("a plan of names, numbers and JSON values serializes"))
                .unwrap_or_default(),
        }
    }

    /// The parts of this submission for `SubmitSweepStream`: the first names the sweep and
    /// announces how many trials follow, each carries at most `per_part` trials (and about
    /// [`BYTES_PER_PART`]). A sweep without trials is one part.
    pub fn into_parts(mut self, per_part: usize) -> impl Iterator<Item = SubmitSweepStreamRequest> + Send {
        let per_part = per_part.max(1);
        let trials_in_all = u32::try_from(self.trials.len()).unwrap_or(u32::MAX);
        let mut trials = std::mem::take(&mut self.trials).into_iter().peekable();
        let mut head = Some(self);
        std::iter::from_fn(move || {
            if head.is_none() && trials.peek().is_none() {
                return None;
            }
            let mut part = Vec::new();
            let mut bytes = 0usize;
            while let Some(t) = trials.peek() {
                let size = t.encoded_len();
                if part.len() == per_part || (!part.is_empty() && bytes + size > BYTES_PER_PART) {
                    break;
                }
                bytes += size;
                part.extend(trials.next());
            }
            let sweep = head.take();
            Some(SubmitSweepStreamRequest {
                trials_in_all: if sweep.is_some() { trials_in_all } else { 0 },
                sweep,
                trials: part,
            })
        })
    }
}

/// Sends `req` with `SubmitSweepStream` in parts of at most `per_part` trials ([`TRIALS_PER_PART`]
/// unless a test wants more parts), and answers as `SubmitSweep` would.
pub async fn submit_in_parts<T>(
    client: &mut SweepServiceClient<T>,
    req: SubmitSweepRequest,
    per_part: usize,
) -> Result<SubmitSweepResponse, tonic::Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    let parts = tokio_stream::iter(req.into_parts(per_part));
    let r = client.submit_sweep_stream(parts).await?.into_inner();
    Ok(SubmitSweepResponse { sweep_id: r.sweep_id, trials_added: r.trials_added, trials_total: r.trials_total })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(n: usize, params_bytes: usize) -> SubmitSweepRequest {
        let trials = (0..n)
            .map(|i| Trial { index: i as u32, params_json: "x".repeat(params_bytes), ..Default::default() })
            .collect();
        SubmitSweepRequest { name: "s".into(), trials, ..Default::default() }
    }

    #[test]
    fn parts_carry_every_trial_once_in_order_and_the_head_first() {
        let parts: Vec<_> = request(25, 10).into_parts(10).collect();
        assert_eq!(parts.iter().map(|p| p.trials.len()).collect::<Vec<_>>(), vec![10, 10, 5]);
        assert_eq!(parts[0].sweep.as_ref().map(|s| s.name.as_str()), Some("s"));
        assert!(parts[0].sweep.as_ref().unwrap().trials.is_empty(), "the head's trials travel in `trials`");
        assert_eq!(parts[0].trials_in_all, 25);
        assert!(parts[1..].iter().all(|p| p.sweep.is_none() && p.trials_in_all == 0));
        let order: Vec<u32> = parts.iter().flat_map(|p| p.trials.iter().map(|t| t.index)).collect();
        assert_eq!(order, (0..25).collect::<Vec<_>>());
    }

    #[test]
    fn a_sweep_without_trials_is_one_part() {
        let parts: Vec<_> = request(0, 0).into_parts(10).collect();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].trials_in_all, 0);
    }

    #[test]
    fn large_trials_are_cut_by_bytes() {
        let parts: Vec<_> = request(300, 60 * 1024).into_parts(TRIALS_PER_PART).collect();
        assert!(parts.len() >= 3, "{} parts", parts.len());
        for p in &parts {
            let bytes: usize = p.trials.iter().map(|t| t.encoded_len()).sum();
            assert!(bytes <= BYTES_PER_PART, "{bytes} bytes in one part");
        }
        assert_eq!(parts.iter().map(|p| p.trials.len()).sum::<usize>(), 300);
    }
}
