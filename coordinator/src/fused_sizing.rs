//! How large a fused group may be. A sweep's `[resources] fuse` sets the most members; what earlier
//! groups showed shrinks it: attempts out of GPU memory or failed as a whole, and the memory each
//! member peaked at. The store reads those facts; these functions decide from them.

/// The share of free GPU memory a fused group may plan to use: the rest is left for the CUDA
/// context, cuDNN's workspace and the allocator's slack.
pub const MEMORY_HEADROOM: f64 = 0.9;

/// How many group sizes ahead in a sweep's queue partners are looked for. Members usually sit next
/// to each other (a seed or learning-rate axis), so a few groups' worth of trials is enough.
pub const LOOKAHEAD_GROUPS: usize = 8;

/// A trial's earlier attempts that said its group was too large.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Setbacks {
    /// Attempts that ran out of GPU memory, in a group or alone.
    pub out_of_memory: u32,
    /// Attempts whose group's process failed as a whole (`Exit::GroupFailure`).
    pub group_failed: u32,
}

/// What earlier groups of one fusion key (`sweep_spec::fusion::key`) showed.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct KeyHistory {
    /// The smallest group of the key that ran out of GPU memory.
    pub smallest_out_of_memory: Option<usize>,
    /// The most GPU memory one member needed: a group's reported peak over its size.
    pub member_peak_bytes: Option<f64>,
}

/// The largest group a trial may join: the `configured` size halved for each setback, down to the
/// trial alone. Which member of a failed or exhausted group was at fault is unknown, so each retry
/// splits the group and the halving ends where a failure can only be the trial's own.
pub fn trial_limit(configured: u32, setbacks: Setbacks) -> usize {
    let halvings = setbacks.out_of_memory.saturating_add(setbacks.group_failed);
    configured.checked_shr(halvings).unwrap_or(0).max(1) as usize
}

/// The size of the group a trial whose own limit is `first_limit` leads. No group of its key is
/// formed again at a size that ran out of memory, so later trials start at the size that fits; and
/// once a group reported its peak, a group is no larger than `most_free` bytes (the agent's
/// emptiest GPU) hold, so on GPUs of different sizes each gets the group it fits.
pub fn group_size(first_limit: usize, key: &KeyHistory, most_free: Option<u64>) -> usize {
    first_limit
        .min(below_out_of_memory(key.smallest_out_of_memory))
        .min(within_memory(most_free, key.member_peak_bytes))
}

/// Whether a trial whose own limit is `limit` may join a group of `size`.
pub fn may_join(limit: usize, size: usize) -> bool {
    limit >= size
}

/// How many pending trials to read, in queue order, when looking for partners of a group of `size`.
pub fn lookahead(size: usize) -> usize {
    size.saturating_mul(LOOKAHEAD_GROUPS)
}

fn below_out_of_memory(smallest: Option<usize>) -> usize {
    smallest.map_or(usize::MAX, |n| (n / 2).max(1))
}

fn within_memory(most_free: Option<u64>, per_member: Option<f64>) -> usize {
    match (most_free, per_member) {
        // A peak that is not a positive number says nothing about what a member needs.
        (Some(free), Some(per_member)) if per_member.is_finite() && per_member > 0.0 => {
            ((free as f64 * MEMORY_HEADROOM / per_member) as usize).max(1)
        }
        _ => usize::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GIB: u64 = 1 << 30;

    fn setbacks(out_of_memory: u32, group_failed: u32) -> Setbacks {
        Setbacks { out_of_memory, group_failed }
    }

    fn peak(bytes: f64) -> KeyHistory {
        KeyHistory { member_peak_bytes: Some(bytes), ..KeyHistory::default() }
    }

    #[test]
    fn each_setback_halves_the_trials_groups_down_to_the_trial_alone() {
        assert_eq!(trial_limit(8, Setbacks::default()), 8);
        assert_eq!(trial_limit(8, setbacks(1, 0)), 4);
        assert_eq!(trial_limit(8, setbacks(0, 1)), 4, "a group failure halves as running out of memory does");
        assert_eq!(trial_limit(8, setbacks(1, 1)), 2);
        assert_eq!(trial_limit(8, setbacks(3, 0)), 1);
        assert_eq!(trial_limit(8, setbacks(5, 0)), 1);
        assert_eq!(trial_limit(5, setbacks(1, 0)), 2, "an odd size rounds down");
        assert_eq!(trial_limit(8, setbacks(40, 0)), 1, "past the width of the size");
        assert_eq!(trial_limit(8, setbacks(u32::MAX, u32::MAX)), 1);
        assert_eq!(trial_limit(0, Setbacks::default()), 1, "a trial always runs, alone at least");
    }

    #[test]
    fn groups_of_a_key_start_below_the_smallest_that_ran_out_of_memory() {
        let oom = |n| KeyHistory { smallest_out_of_memory: Some(n), ..KeyHistory::default() };
        assert_eq!(group_size(8, &KeyHistory::default(), None), 8, "nothing known: the trial's limit");
        assert_eq!(group_size(8, &oom(8), None), 4);
        assert_eq!(group_size(8, &oom(5), None), 2);
        assert_eq!(group_size(8, &oom(1), None), 1);
        assert_eq!(group_size(2, &oom(8), None), 2, "the trial's own limit is smaller");
    }

    #[test]
    fn groups_fit_the_emptiest_gpu_with_headroom_once_a_peak_is_known() {
        let gib = GIB as f64;
        assert_eq!(group_size(8, &peak(3.0 * gib), Some(10 * GIB)), 3, "9 GiB of 10 plan for three 3 GiB members");
        assert_eq!(group_size(8, &peak(3.0 * gib), Some(9 * GIB)), 2, "the headroom is kept");
        assert_eq!(group_size(8, &peak(20.0 * gib), Some(10 * GIB)), 1, "too large for one member: alone");
        assert_eq!(group_size(2, &peak(1.0 * gib), Some(80 * GIB)), 2, "the trial's own limit is smaller");
        assert_eq!(group_size(8, &peak(3.0 * gib), None), 8, "free memory unknown");
        assert_eq!(group_size(8, &KeyHistory::default(), Some(GIB)), 8, "no peak reported yet");
        for nonsense in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(group_size(8, &peak(nonsense), Some(GIB)), 8, "{nonsense}");
        }
    }

    #[test]
    fn every_limit_applies_at_once() {
        let key = KeyHistory { smallest_out_of_memory: Some(8), member_peak_bytes: Some(GIB as f64) };
        assert_eq!(group_size(8, &key, Some(100 * GIB)), 4, "out of memory before");
        assert_eq!(group_size(8, &key, Some(3 * GIB)), 2, "the free memory");
        assert_eq!(group_size(1, &key, Some(100 * GIB)), 1, "the trial's own");
    }

    #[test]
    fn partners_join_groups_no_larger_than_their_own_limit() {
        assert!(may_join(4, 4));
        assert!(may_join(8, 4));
        assert!(!may_join(2, 4));
    }

    #[test]
    fn partners_are_looked_for_a_few_groups_ahead() {
        assert_eq!(lookahead(4), 4 * LOOKAHEAD_GROUPS);
        assert_eq!(lookahead(usize::MAX), usize::MAX);
    }

    proptest! {
        #[test]
        fn more_setbacks_never_grow_a_trials_limit(configured in 0u32..64, oom in 0u32..40, failed in 0u32..40) {
            let limit = trial_limit(configured, setbacks(oom, failed));
            prop_assert!(limit >= 1);
            prop_assert!(limit <= configured.max(1) as usize);
            prop_assert!(trial_limit(configured, setbacks(oom + 1, failed)) <= limit);
            prop_assert!(trial_limit(configured, setbacks(oom, failed + 1)) <= limit);
        }

        #[test]
        fn a_group_stays_within_every_limit(
            first_limit in 1usize..64,
            smallest in proptest::option::of(1usize..64),
            per_member in proptest::option::of(1.0f64..1e11),
            free in proptest::option::of(0u64..200 * GIB),
        ) {
            let key = KeyHistory { smallest_out_of_memory: smallest, member_peak_bytes: per_member };
            let size = group_size(first_limit, &key, free);
            prop_assert!((1..=first_limit).contains(&size));
            if let Some(n) = smallest {
                prop_assert!(size == 1 || size < n, "a size that ran out of memory is not formed again");
            }
            if let (Some(free), Some(per_member)) = (free, per_member) {
                prop_assert!(size == 1 || size as f64 * per_member <= free as f64 * MEMORY_HEADROOM);
            }
        }
    }
}
