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
    fn expiry_is_inclusive_of_the_deadline() {
        assert!(!is_expired(1_000, 999));
        assert!(is_expired(1_000, 1_000));
    }
}
