//! The coordinator's lease answer as launches: the members of a fused group together, every other
//! lease alone, and each lease read into the attempt its supervisor runs, with its folders.

use crate::launch::AttemptDirs;
use crate::supervise::Attempt;
use std::path::Path;
use sweep_proto::v1 as pb;

/// The leases of one response as launches, in the order the coordinator granted them: the members
/// of a fused group (same `group`) together, every other lease alone.
pub fn by_group(leases: Vec<pb::Lease>) -> Vec<Vec<pb::Lease>> {
    let mut launches: Vec<Vec<pb::Lease>> = Vec::new();
    for lease in leases {
        match launches.iter_mut().find(|l| lease.group != 0 && l[0].group == lease.group) {
            Some(group) => group.push(lease),
            None => launches.push(vec![lease]),
        }
    }
    launches
}

/// The attempts of one launch. Err: the launch cannot run, with every one of its leases (those
/// without a readable trial first): one unreadable member spoils its group.
pub fn attempts(leases: Vec<pb::Lease>, work_dir: &Path, checkpoint_root: &Path) -> Result<Vec<Attempt>, Vec<i64>> {
    let mut members = Vec::new();
    let mut unreadable = Vec::new();
    for lease in leases {
        match lease.trial.and_then(|t| t.into_spec(&lease.sweep_id).ok()) {
            Some(spec) => {
                let dirs = AttemptDirs::new(work_dir, checkpoint_root, &spec, lease.attempt);
                let stop_after = (lease.stop_after_epoch > 0).then_some(lease.stop_after_epoch);
                members.push(Attempt {
                    lease_id: lease.lease_id,
                    attempt: lease.attempt,
                    spec,
                    dirs,
                    stop_after,
                    keep_checkpoint: lease.keep_checkpoint,
                });
            }
            None => unreadable.push(lease.lease_id),
        }
    }
    if unreadable.is_empty() && !members.is_empty() {
        return Ok(members);
    }
    Err(unreadable.into_iter().chain(members.iter().map(|m| m.lease_id)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(lease_id: i64, group: i64, params_json: &str) -> pb::Lease {
        let trial = pb::Trial {
            trial_id: format!("{lease_id:016x}"),
            workload: "command".into(),
            command: vec!["true".into()],
            params_json: params_json.into(),
            ..Default::default()
        };
        pb::Lease {
            lease_id,
            sweep_id: "s".into(),
            attempt: 2,
            deadline_ms: 0,
            trial: Some(trial),
            group,
            stop_after_epoch: 0,
            keep_checkpoint: false,
        }
    }

    fn ids(launches: &[Vec<pb::Lease>]) -> Vec<Vec<i64>> {
        launches.iter().map(|l| l.iter().map(|x| x.lease_id).collect()).collect()
    }

    #[test]
    fn fused_members_launch_together_and_others_alone_in_the_granted_order() {
        let granted =
            vec![lease(1, 0, "{}"), lease(2, 2, "{}"), lease(3, 0, "{}"), lease(4, 2, "{}"), lease(5, 5, "{}")];
        assert_eq!(ids(&by_group(granted)), vec![vec![1], vec![2, 4], vec![3], vec![5]]);
        assert!(by_group(Vec::new()).is_empty());
    }

    #[test]
    fn readable_leases_become_attempts_with_their_folders() {
        let dir = tempfile::tempdir().unwrap();
        let (work, ckpt) = (dir.path().join("work"), dir.path().join("ckpt"));
        let members = attempts(vec![lease(1, 1, "{}"), lease(2, 1, "{}")], &work, &ckpt).ok().unwrap();
        assert_eq!(members.iter().map(|m| (m.lease_id, m.attempt)).collect::<Vec<_>>(), vec![(1, 2), (2, 2)]);
        assert_eq!(members[1].spec.sweep, "s");
        assert!(members[1].dirs.run.ends_with("trials/s/0000000000000002/attempt-2"));
        assert!(!work.exists(), "folders are made when the launch starts, not here");
    }

    #[test]
    fn one_unreadable_member_spoils_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let no_trial = pb::Lease { trial: None, ..lease(3, 1, "{}") };
        let group = vec![lease(1, 1, "{}"), lease(2, 1, "not json"), no_trial];
        assert_eq!(attempts(group, dir.path(), dir.path()).err(), Some(vec![2, 3, 1]));
        assert_eq!(attempts(vec![lease(4, 0, "[]")], dir.path(), dir.path()).err(), Some(vec![4]));
        assert_eq!(attempts(Vec::new(), dir.path(), dir.path()).err(), Some(vec![]));
    }
}
