//! The queue as a lease reads it: pending trials of active sweeps, oldest sweep first, each with the
//! pending trials it trains fused with. The facts a fused group is sized from are read here; how
//! large it may be is decided in `fused_sizing`.

use super::counters_at;
use super::sweeps::parse_spec;
use crate::error::Result;
use crate::fused_sizing::{self, KeyHistory, Setbacks};
use crate::lifecycle::Counters;
use rusqlite::{params, Transaction};
use std::collections::HashSet;
use sweep_spec::TrialSpec;

/// A pending trial about to be leased.
pub(super) struct Pending {
    pub trial_id: String,
    pub counters: Counters,
    pub spec: TrialSpec,
}

/// A pending trial and the partners it trains fused with: one candidate, taking one slot.
#[derive(Default)]
pub(super) struct Group {
    /// The fusion key its members share; none for a trial alone.
    pub key: Option<String>,
    /// The first member leads; the rest follow in queue order.
    pub members: Vec<Pending>,
}

/// What the agent asking for work has room for.
#[derive(Debug, Clone)]
pub(super) struct Room {
    /// How many candidates to read (`scheduler::candidates_to_read`).
    pub candidates: usize,
    /// GPUs with any room left (`scheduler::gpus_with_room`).
    pub gpus: u32,
    /// The most memory free on one of them, where the driver said.
    pub most_free: Option<u64>,
    /// Only this sweep's trials (`LeaseRequest.only_sweep`); None: every active sweep's.
    pub only_sweep: Option<String>,
}

/// Up to `room.candidates` groups, sweep by sweep, oldest first. Each query walks the (state, sweep,
/// idx) index in order and stops at the limit, instead of sorting every pending trial of every
/// sweep. Partners come from further down the queue, so a sweep is read page by page until there
/// are enough candidates.
pub(super) fn read_groups(tx: &Transaction, room: Room, now_ms: i64) -> Result<Vec<Group>> {
    let active: Vec<String> = {
        let mut q = tx.prepare_cached(
            "SELECT name FROM sweeps WHERE state = 'active' AND (?1 IS NULL OR name = ?1) ORDER BY seq",
        )?;
        let rows = q.query_map([&room.only_sweep], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut taken: HashSet<(String, String)> = HashSet::new();
    let mut groups = Vec::new();
    for sweep in active {
        let mut after_idx = -1i64;
        while groups.len() < room.candidates {
            let page: Vec<(i64, String, Counters, String)> = {
                let mut q = tx.prepare_cached(
                    "SELECT idx, trial_id, attempt, user_failures, lost, spec FROM trials
                     WHERE state = 'pending' AND sweep = ?1 AND gpus <= ?2 AND not_before_ms <= ?4 AND idx > ?5
                     ORDER BY idx LIMIT ?3",
                )?;
                let limit = (room.candidates - groups.len()) as i64;
                let rows = q.query_map(params![sweep, room.gpus, limit, now_ms, after_idx], |r| {
                    Ok((r.get(0)?, r.get(1)?, counters_at(r, 2)?, r.get(5)?))
                })?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let Some(last) = page.last() else { break };
            after_idx = last.0;
            for (_, trial_id, counters, spec) in page {
                if taken.insert((sweep.clone(), trial_id.clone())) {
                    let first = Pending { trial_id, counters, spec: parse_spec(&spec)? };
                    groups.push(group_led_by(tx, first, now_ms, room.most_free, &mut taken)?);
                }
            }
        }
    }
    Ok(groups)
}

/// `first` and the pending trials of its sweep that can train fused with it
/// (`sweep_spec::fusion`), as many as `fused_sizing::group_size` allows, in queue order; each is
/// added to `taken`.
fn group_led_by(
    tx: &Transaction,
    first: Pending,
    now_ms: i64,
    most_free: Option<u64>,
    taken: &mut HashSet<(String, String)>,
) -> Result<Group> {
    let sweep = first.spec.sweep.clone();
    let configured = first.spec.resources.fuse.members(first.spec.resources.gpus);
    let limit = |trial_id: &str| setbacks(tx, &sweep, trial_id).map(|s| fused_sizing::trial_limit(configured, s));
    // A sweep that does not fuse reads nothing more.
    let Some(key) = (configured > 1).then(|| sweep_spec::fusion::key(&first.spec).ok()).flatten() else {
        return Ok(Group { key: None, members: vec![first] });
    };
    // Each trial of a promoting schedule stops at its own rung: none trains fused (the sweep file
    // refuses the pair; this holds whatever a client sent).
    if super::rungs::schedule_of(tx, &sweep)?.is_some_and(|s| s.promotes()) {
        return Ok(Group { key: None, members: vec![first] });
    }
    let history = key_history(tx, &sweep, &key, most_free.is_some())?;
    let size = fused_sizing::group_size(limit(&first.trial_id)?, &history, most_free);
    if size <= 1 {
        return Ok(Group { key: None, members: vec![first] });
    }
    let mut q = tx.prepare_cached(
        "SELECT trial_id, attempt, user_failures, lost, spec FROM trials
         WHERE state = 'pending' AND sweep = ?1 AND not_before_ms <= ?2 ORDER BY idx LIMIT ?3",
    )?;
    let lookahead = i64::try_from(fused_sizing::lookahead(size)).unwrap_or(i64::MAX);
    let rows = q.query_map(params![sweep, now_ms, lookahead], |r| {
        Ok((r.get::<_, String>(0)?, counters_at(r, 1)?, r.get::<_, String>(4)?))
    })?;
    let mut members = vec![first];
    for row in rows {
        if members.len() == size {
            break;
        }
        let (trial_id, counters, spec) = row?;
        if taken.contains(&(sweep.clone(), trial_id.clone())) {
            continue;
        }
        let spec = parse_spec(&spec)?;
        if sweep_spec::fusion::key(&spec).is_ok_and(|k| k == key) && fused_sizing::may_join(limit(&trial_id)?, size) {
            taken.insert((sweep.clone(), trial_id.clone()));
            members.push(Pending { trial_id, counters, spec });
        }
    }
    Ok(Group { key: Some(key), members })
}

/// A trial's attempts that ran out of GPU memory or failed as a group.
fn setbacks(tx: &Transaction, sweep: &str, trial_id: &str) -> Result<Setbacks> {
    Ok(tx.query_row(
        "SELECT COUNT(*) FILTER (WHERE outcome = 'out_of_memory'), COUNT(*) FILTER (WHERE outcome = 'group_failed')
         FROM attempts WHERE sweep = ?1 AND trial_id = ?2",
        params![sweep, trial_id],
        |r| Ok(Setbacks { out_of_memory: r.get(0)?, group_failed: r.get(1)? }),
    )?)
}

/// What earlier groups of `key` showed. Their peak memory is read only when the agent reported
/// free memory to weigh it against (`with_memory`).
fn key_history(tx: &Transaction, sweep: &str, key: &str, with_memory: bool) -> Result<KeyHistory> {
    let smallest_out_of_memory: Option<i64> = tx.query_row(
        "SELECT MIN(group_size) FROM attempts WHERE sweep = ?1 AND fusion_key = ?2 AND outcome = 'out_of_memory'",
        params![sweep, key],
        |r| r.get(0),
    )?;
    // A member's need: the peak its group reported (`gpu_mem_peak_bytes` of its last epoch) over
    // the group's size.
    let member_peak_bytes: Option<f64> = if with_memory {
        tx.query_row(
            "SELECT MAX(f.value / a.group_size) FROM attempts a JOIN finals f
               ON f.sweep = a.sweep AND f.trial_id = a.trial_id AND f.metric = 'gpu_mem_peak_bytes'
              AND f.attempt = a.attempt
             WHERE a.sweep = ?1 AND a.fusion_key = ?2",
            params![sweep, key],
            |r| r.get(0),
        )?
    } else {
        None
    };
    Ok(KeyHistory { smallest_out_of_memory: smallest_out_of_memory.map(|n| n as usize), member_peak_bytes })
}
