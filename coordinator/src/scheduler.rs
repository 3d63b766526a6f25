//! Scheduling decisions as plain functions of the state and `now`: which pending trials an agent
//! gets, and what a heartbeat tells an agent about each of its leases.

use crate::lifecycle::TrialState;

/// A pending trial, in queue order (oldest sweep first, then expansion order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub gpus: u32,
}

/// Indices of the candidates to lease, first come first served, within the agent's free slots and
/// GPUs. A trial that needs more GPUs than are left is skipped, not waited for, so small trials
/// behind it still start.
pub fn choose(candidates: &[Candidate], free_slots: u32, mut free_gpus: u32) -> Vec<usize> {
    let mut chosen = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        if chosen.len() as u32 >= free_slots {
            break;
        }
        if c.gpus <= free_gpus {
            free_gpus -= c.gpus;
            chosen.push(i);
        }
    }
    chosen
}

/// What the agent holding `lease_id` must do, given the trial's current record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseVerdict {
    /// Still the trial's lease: extend it.
    Extend,
    /// The trial was cancelled while this lease ran: stop it.
    Stop,
    /// Not the trial's lease any more (expired, superseded, finished): kill it, report nothing.
    Abandon,
}

pub fn judge_lease(state: TrialState, current_lease: Option<i64>, lease_id: i64) -> LeaseVerdict {
    match (state, current_lease == Some(lease_id)) {
        (TrialState::Leased | TrialState::Running, true) => LeaseVerdict::Extend,
        (TrialState::Cancelled, true) => LeaseVerdict::Stop,
        _ => LeaseVerdict::Abandon,
    }
}

/// When a failed trial may run again: exponential backoff with full jitter from the sweep's
/// base, capped, so a broken trial does not spin and a flaky one retries soon.
pub fn retry_not_before(now_ms: i64, user_failures: u32, base_ms: u32, unit: f64) -> i64 {
    let delay = sweep_spec::backoff::full_jitter(
        user_failures.saturating_sub(1),
        std::time::Duration::from_millis(base_ms as u64),
        RETRY_BACKOFF_CAP,
        unit,
    );
    now_ms + delay.as_millis() as i64
}

/// Longest wait before a retry, however often the trial failed.
pub const RETRY_BACKOFF_CAP: std::time::Duration = std::time::Duration::from_secs(300);

/// Whether an agent whose trials failed `consecutive` times in a row gets no more leases.
/// `after = 0` turns quarantine off.
pub fn is_quarantined(consecutive: u32, after: u32) -> bool {
    after > 0 && consecutive >= after
}

/// A lease whose deadline has passed is lost. Heartbeats move deadlines; nothing else does.
pub fn is_expired(deadline_ms: i64, now_ms: i64) -> bool {
    deadline_ms <= now_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_respects_slots_and_gpus() {
        let c = |gpus| Candidate { gpus };
        assert_eq!(choose(&[c(0), c(0), c(0)], 2, 0), vec![0, 1]);
        assert_eq!(choose(&[c(2), c(1), c(1), c(0)], 4, 2), vec![0, 3]);
        assert_eq!(choose(&[c(4), c(1)], 4, 2), vec![1], "a big trial does not block small ones");
        assert!(choose(&[c(0)], 0, 8).is_empty());
    }

    #[test]
    fn only_the_current_lease_is_extended() {
        use TrialState::*;
        assert_eq!(judge_lease(Running, Some(7), 7), LeaseVerdict::Extend);
        assert_eq!(judge_lease(Leased, Some(7), 7), LeaseVerdict::Extend);
        assert_eq!(judge_lease(Running, Some(8), 7), LeaseVerdict::Abandon);
        assert_eq!(judge_lease(Pending, None, 7), LeaseVerdict::Abandon);
        assert_eq!(judge_lease(Succeeded, Some(7), 7), LeaseVerdict::Abandon);
        assert_eq!(judge_lease(Cancelled, Some(7), 7), LeaseVerdict::Stop);
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let almost_one = 0.999_999;
        assert_eq!(retry_not_before(1_000, 1, 0, almost_one), 1_000, "no backoff configured");
        assert!(retry_not_before(0, 1, 1_000, almost_one) < 1_000);
        assert!(retry_not_before(0, 3, 1_000, almost_one) > 3_900);
        assert!(retry_not_before(0, 40, 1_000, almost_one) <= RETRY_BACKOFF_CAP.as_millis() as i64);
    }

    #[test]
    fn quarantine_after_n_failures_in_a_row() {
        assert!(!is_quarantined(4, 5));
        assert!(is_quarantined(5, 5));
        assert!(!is_quarantined(100, 0), "0 turns it off");
    }

    #[test]
    fn expiry_is_inclusive_of_the_deadline() {
        assert!(!is_expired(1_000, 999));
        assert!(is_expired(1_000, 1_000));
    }
}
