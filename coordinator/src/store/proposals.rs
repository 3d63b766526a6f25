//! TPE sweeps in the store: the trials after the submitted ones are proposed here, inside the
//! lease transaction that will hand them out, from the sweep's plan (`sweeps.search`) and what its
//! trials reported so far. The rule is `sweep_spec::tpe::Plan::propose`; this module gathers its
//! facts. Without a schedule, each finished trial counts with its last value of the plan's metric
//! (`finals`). Under one (TPE with ASHA or Hyperband), every trial with a rung value counts with
//! the value at its highest rung, running and paused ones too, and TPE ranks the trials that got
//! further first; a finished trial counts at its last epoch. Trials with no value yet count as the
//! worst value (a constant liar). Failed and cancelled trials tell nothing about the objective and
//! are left out.

use crate::error::{Error, Result};
use crate::lifecycle::TrialState;
use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::{Map, Value};
use std::collections::HashMap;
use sweep_spec::tpe::{Observation, Plan};
use sweep_spec::TrialSpec;

/// Other TPE proposals tried for a trial the sweep already has (TPE converging on a few values of
/// a discrete space), then random draws from the space, before the space counts as exhausted.
const TPE_REDRAWS: u32 = 4;
const RANDOM_REDRAWS: u32 = 64;

/// How many trials a sweep with this plan will have in all; 0 without a plan.
pub(super) fn planned(search: Option<&str>) -> u32 {
    search.and_then(|s| serde_json::from_str::<Plan>(s).ok()).map_or(0, |p| p.trials)
}

/// The plan of `sweep`, if it proposes trials.
fn plan_of(tx: &Transaction, sweep: &str) -> Result<Option<Plan>> {
    let json: Option<String> =
        tx.query_row("SELECT search FROM sweeps WHERE name = ?1", [sweep], |r| r.get(0)).optional()?.flatten();
    json.map(|j| serde_json::from_str(&j).map_err(|e| Error::Corrupt(format!("sweep {sweep} search: {e}")))).transpose()
}

/// Active sweeps with trials still to propose (only `only` when given), oldest first.
pub(super) fn open_plans(tx: &Transaction, only: Option<&str>) -> Result<Vec<String>> {
    let mut q = tx.prepare_cached(
        "SELECT name FROM sweeps s WHERE state = 'active' AND search IS NOT NULL AND (?1 IS NULL OR name = ?1)
           AND (SELECT COUNT(*) FROM trials t WHERE t.sweep = s.name) < json_extract(search, '$.trials')
         ORDER BY seq",
    )?;
    let names = q.query_map([only], |r| r.get(0))?;
    Ok(names.collect::<rusqlite::Result<_>>()?)
}

/// Whether `sweep` still has trials to propose: until it has, no trial waiting at a rung is final.
pub(super) fn more_to_come(tx: &Transaction, sweep: &str) -> Result<bool> {
    Ok(tx.query_row(
        "SELECT search IS NOT NULL AND (SELECT COUNT(*) FROM trials WHERE sweep = ?1) < json_extract(search, '$.trials')
         FROM sweeps WHERE name = ?1",
        [sweep],
        |r| r.get::<_, Option<bool>>(0),
    )?
    .unwrap_or(false))
}

/// A trial of the sweep as the proposals see it.
struct Known {
    idx: i64,
    state: TrialState,
    spec: TrialSpec,
}

/// Proposes and queues up to `wanted` new trials of `sweep`, at most as many as its plan has left,
/// each learning from the ones before (those proposed in this call count as running). Returns how
/// many were queued.
pub(super) fn propose(tx: &Transaction, sweep: &str, wanted: u32) -> Result<u32> {
    if wanted == 0 {
        return Ok(0);
    }
    let Some(plan) = plan_of(tx, sweep)? else { return Ok(0) };
    let known = trials(tx, sweep)?;
    let room = plan.trials.saturating_sub(known.len() as u32);
    let Some(template) = known.first().map(|k| k.spec.clone()) else { return Ok(0) };
    if room == 0 {
        return Ok(0);
    }
    let observed = observed(tx, sweep, &plan, &known)?;
    let mut finished: Vec<Observation<'_>> = Vec::new();
    let mut running: Vec<&Map<String, Value>> = Vec::new();
    for k in &known {
        if matches!(k.state, TrialState::Failed | TrialState::Cancelled | TrialState::Stopped) {
            continue;
        }
        match observed.get(&k.spec.id.0) {
            Some(&(reached, value)) => {
                finished.push(Observation { params: &k.spec.params, reached, value: value.filter(|v| v.is_finite()) })
            }
            None => running.push(&k.spec.params),
        }
    }
    let mut ids: std::collections::HashSet<String> = known.iter().map(|k| k.spec.id.0.clone()).collect();
    // Each proposal is queued after the sweep's last trial, one place after the other.
    let first_idx = known.last().map_or(0, |k| k.idx + 1);
    let mut proposed: Vec<TrialSpec> = Vec::new();
    for n in 0..wanted.min(room) {
        let index = known.len() as u32 + n;
        let in_flight: Vec<&Map<String, Value>> =
            running.iter().copied().chain(proposed.iter().map(|t| &t.params)).collect();
        let fresh = (0..=TPE_REDRAWS + RANDOM_REDRAWS).find_map(|redraw| {
            let salted = index.wrapping_add(redraw.wrapping_mul(plan.trials));
            let draw = if redraw <= TPE_REDRAWS {
                plan.propose(&finished, &in_flight, salted)
            } else {
                plan.draw_at_random(salted)
            };
            let spec = trial(&template, draw, index);
            (!ids.contains(&spec.id.0)).then_some(spec)
        });
        // A small discrete space may hold no configuration left to try: the sweep then has all
        // it will have, and is done once they are.
        let Some(spec) = fresh else {
            tx.execute(
                "UPDATE sweeps SET search = json_set(search, '$.trials', ?2) WHERE name = ?1",
                params![sweep, index],
            )?;
            break;
        };
        ids.insert(spec.id.0.clone());
        super::sweeps::insert_trials(
            tx,
            sweep,
            first_idx + i64::from(n),
            std::iter::once(super::sweeps::NewTrial {
                trial_id: spec.id.0.clone(),
                index: 0,
                workload: spec.workload.clone(),
                spec: serde_json::to_string(&spec).expect("trial specs serialize"),
                gpus: spec.resources.gpus,
            }),
        )?;
        proposed.push(spec);
    }
    Ok(proposed.len() as u32)
}

/// The trial `draw` makes of the sweep's `template` (any trial of it: they differ only in the
/// space's parameters), at queue position `index`, with its content id.
fn trial(template: &TrialSpec, draw: Map<String, Value>, index: u32) -> TrialSpec {
    let mut spec = template.clone();
    spec.params.extend(draw);
    spec.index = index;
    spec.id = TrialSpec::content_id(&spec.workload, spec.command.as_deref(), &spec.params, spec.data.as_ref());
    spec
}

/// Every trial of `sweep`, in queue order.
fn trials(tx: &Transaction, sweep: &str) -> Result<Vec<Known>> {
    let mut q = tx.prepare_cached("SELECT idx, state, spec FROM trials WHERE sweep = ?1 ORDER BY idx")?;
    let rows = q.query_map([sweep], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))?;
    rows.map(|row| {
        let (idx, state, spec) = row?;
        Ok(Known {
            idx,
            state: state.parse().map_err(Error::Corrupt)?,
            spec: serde_json::from_str(&spec).map_err(|e| Error::Corrupt(format!("trial spec: {e}")))?,
        })
    })
    .collect()
}

/// What TPE learns of each trial that has something to tell: how far it got and its value there
/// (None: the worst). A trial missing from the map is still to tell it.
fn observed(tx: &Transaction, sweep: &str, plan: &Plan, known: &[Known]) -> Result<HashMap<String, Observed>> {
    let ended = |state: TrialState| matches!(state, TrialState::Succeeded | TrialState::StoppedEarly);
    let mut q = tx.prepare_cached("SELECT trial_id, value FROM finals WHERE sweep = ?1 AND metric = ?2")?;
    let rows = q.query_map(params![sweep, plan.objective.metric], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
    let finals: HashMap<String, Option<f64>> = rows.collect::<rusqlite::Result<_>>()?;
    let final_of = |k: &Known| finals.get(&k.spec.id.0).copied().flatten();
    if super::rungs::schedule_of(tx, sweep)?.is_none() {
        return Ok(known.iter().filter(|k| ended(k.state)).map(|k| (k.spec.id.0.clone(), (0, final_of(k)))).collect());
    }
    let mut at = highest_rungs(tx, sweep)?;
    for k in known {
        match k.state {
            // Trained to the end: further than any rung.
            TrialState::Succeeded => {
                at.insert(k.spec.id.0.clone(), (u32::MAX, final_of(k)));
            }
            // Stopped before its first rung: the worst.
            TrialState::StoppedEarly => {
                at.entry(k.spec.id.0.clone()).or_insert((0, None));
            }
            _ => {}
        }
    }
    Ok(at)
}

/// How far a trial got (an epoch) and its value there.
type Observed = (u32, Option<f64>);

/// Every trial's value at the highest rung it reached (None: missing, or it failed before it).
fn highest_rungs(tx: &Transaction, sweep: &str) -> Result<HashMap<String, Observed>> {
    // One pass over the sweep's rungs: with MAX(), SQLite takes the bare column `value` from the
    // row that holds the maximum.
    let mut q =
        tx.prepare_cached("SELECT trial_id, MAX(epoch), value FROM rungs WHERE sweep = ?1 GROUP BY trial_id")?;
    let rows = q.query_map([sweep], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use crate::lifecycle::{Completion, Policy};
    use crate::ownership::Caller;
    use crate::session::SessionHash;
    use crate::store::{Grant, MetricBatch, NewSweep, Store};
    use std::collections::BTreeMap;
    use sweep_spec::EpochRecord;

    const FILE: &str = r#"name = "s"
workload = "command"
command = ["train"]
[search]
sampler = "tpe"
trials = 16
seed = 3
metric = "loss"
mode = "min"
space = { x = { uniform = [-5.0, 5.0] }, act = { choice = ["relu", "gelu"] } }
"#;

    /// A store with the sweep of FILE submitted (its 10 random first trials) and one agent.
    struct Lab {
        _dir: tempfile::TempDir,
        store: Store,
        agent: String,
        session: SessionHash,
    }

    fn lab() -> Lab {
        let lab = lab_of(FILE);
        assert_eq!(lab.store.summary("s").unwrap().total, 10, "the first trials are random draws, submitted");
        lab
    }

    fn lab_of(text: &str) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), 60_000).unwrap();
        let file = sweep_spec::SweepFile::parse(text, "s.toml".as_ref(), ".".as_ref()).unwrap();
        let sweep = NewSweep {
            name: "s".into(),
            source: text.into(),
            source_path: "s.toml".into(),
            policy: Policy { max_attempts: 1, max_lost: 1, retry_backoff_ms: 0 },
            schedule: file.schedule.as_ref().map(|s| serde_json::to_string(s).unwrap()),
            search: file.tpe.as_ref().map(|p| serde_json::to_string(p).unwrap()),
            trials: sweep_spec::expand(&file).unwrap(),
        };
        store.submit(&sweep, &Caller::open(), false, 0).unwrap();
        let (_, session) = crate::session::new_secret().unwrap();
        let agent = store.register_agent("a", "host", 64, &[], &session, 0).unwrap();
        Lab { _dir: dir, store, agent, session }
    }

    fn x(g: &Grant) -> f64 {
        g.spec.params.get("x").and_then(|v| v.as_f64()).unwrap_or(0.0)
    }

    impl Lab {
        fn lease(&mut self, slots: u32) -> Vec<Grant> {
            self.store.lease(&self.agent, &self.session, slots, Vec::new(), None, 1).unwrap().grants
        }

        /// Reports `loss = (x - 1)^2` for the grant's trial and ends it well.
        fn finish(&mut self, g: &Grant) {
            let metrics = BTreeMap::from([("loss".to_string(), (x(g) - 1.0).powi(2))]);
            let batch = MetricBatch {
                lease_id: g.lease_id,
                session: self.session,
                epochs: vec![EpochRecord { epoch: 1, step: None, metrics }],
                warnings: vec![],
            };
            self.store.report_metrics(&batch, 1_000).unwrap();
            let done = Completion { exit_code: Some(0), ..Completion::default() };
            self.store.complete(g.lease_id, &self.session, &done, 2_000).unwrap();
        }

        /// Runs the whole sweep, `slots` trials at a time; the trial ids in queue order.
        fn run(&mut self, slots: u32) -> Vec<String> {
            let mut ids = Vec::new();
            loop {
                let grants = self.lease(slots);
                if grants.is_empty() {
                    return ids;
                }
                for g in &grants {
                    ids.push(g.spec.id.0.clone());
                    self.finish(g);
                }
            }
        }
    }

    #[test]
    fn the_coordinator_proposes_the_rest_of_a_tpe_sweep_from_its_results() {
        let mut lab = lab();
        assert!(!lab.store.summary("s").unwrap().is_done());
        let first = lab.lease(10);
        assert_eq!(first.len(), 10, "the random trials go first; nothing is proposed while they are queued");
        assert!(!lab.store.summary("s").unwrap().is_done());
        for g in &first {
            lab.finish(g);
        }
        let s = lab.store.summary("s").unwrap();
        assert_eq!((s.total, s.planned, s.is_done()), (10, 16, false), "six trials are still to come");
        // Four free slots: four proposals, each told the ones before it as running (the
        // constant liar), so they differ.
        let proposed = lab.lease(4);
        assert_eq!(proposed.len(), 4);
        let distinct: std::collections::HashSet<String> = proposed.iter().map(|g| g.spec.id.0.clone()).collect();
        assert_eq!(distinct.len(), 4);
        for g in &proposed {
            assert_eq!(g.spec.command, first[0].spec.command, "a proposal is the sweep's trial with other parameters");
            lab.finish(g);
        }
        let rest = lab.lease(64);
        assert_eq!(rest.len(), 2, "no more than the plan's 16 trials");
        for g in &rest {
            lab.finish(g);
        }
        assert!(lab.lease(64).is_empty());
        let s = lab.store.summary("s").unwrap();
        assert_eq!((s.total, s.is_done()), (16, true));
    }

    #[test]
    fn the_same_seed_and_the_same_results_propose_the_same_trials() {
        let a = lab().run(3);
        let b = lab().run(3);
        assert_eq!(a.len(), 16);
        assert_eq!(a, b);
        // Another order of results (one trial at a time) is another history: other proposals.
        let c = lab().run(1);
        assert_eq!(c.len(), 16);
        assert_eq!(a[..10], c[..10], "the random first trials are the file's");
        assert_ne!(a[10..], c[10..]);
    }

    /// TPE with ASHA: each trial counts with its value at the highest rung it reached, a trial
    /// still running at that rung or paused there too.
    #[test]
    fn under_a_schedule_tpe_learns_from_the_rung_values() {
        let text = format!("{FILE}[schedule]\ntype = \"asha\"\nmax_epochs = 9\n");
        let mut lab = lab_of(&text);
        let grants = lab.lease(10);
        for g in &grants {
            lab.finish(g);
        }
        let tx = lab.store.conn.transaction().unwrap();
        let known = super::trials(&tx, "s").unwrap();
        let plan = super::plan_of(&tx, "s").unwrap().unwrap();
        let observed = super::observed(&tx, "s", &plan, &known).unwrap();
        assert_eq!(observed.len(), 10);
        for g in &grants {
            assert_eq!(observed[&g.spec.id.0], (1, Some((x(g) - 1.0).powi(2))), "its value at the rung at epoch 1");
        }
    }

    #[test]
    fn a_trial_counts_with_its_value_at_the_highest_rung_it_reached() {
        let lab = lab();
        for (trial, epoch, value) in [("a", 1, 0.5), ("a", 3, 0.2), ("a", 9, 0.7), ("b", 3, 0.4), ("b", 1, 0.9)] {
            lab.store
                .conn
                .execute(
                    "INSERT INTO rungs (sweep, bracket, epoch, trial_id, value) VALUES ('s', 0, ?1, ?2, ?3)",
                    rusqlite::params![epoch, trial, value],
                )
                .unwrap();
        }
        let highest = super::highest_rungs(&lab.store.conn.unchecked_transaction().unwrap(), "s").unwrap();
        assert_eq!(highest["a"], (9, Some(0.7)));
        assert_eq!(highest["b"], (3, Some(0.4)));
    }

    /// A small discrete space runs out of new configurations before the plan's count (here the
    /// condition leaves 11 of the 20 the file could count): the sweep then ends with those it has
    /// instead of waiting for ever.
    #[test]
    fn a_space_with_nothing_left_to_try_ends_the_sweep() {
        let text = FILE.replace("trials = 16", "trials = 15").replace(
            "space = { x = { uniform = [-5.0, 5.0] }, act = { choice = [\"relu\", \"gelu\"] } }",
            "space = { act = { choice = [\"relu\", \"gelu\"] }, x = { int_uniform = [1, 10], when = { act = \"relu\" } } }",
        );
        let mut lab = lab_of(&text);
        let ran = lab.run(2);
        let s = lab.store.summary("s").unwrap();
        assert!(s.is_done(), "{s:?}");
        assert_eq!((s.total as usize, ran.len()), (11, 11), "every configuration the space holds, once");
    }

    #[test]
    fn a_cancelled_tpe_sweep_proposes_nothing_more_and_is_done() {
        let mut lab = lab();
        for g in lab.lease(10) {
            lab.finish(&g);
        }
        lab.store.cancel("s", &Caller::open(), 3_000, 100).unwrap();
        assert!(lab.lease(4).is_empty());
        let s = lab.store.summary("s").unwrap();
        assert_eq!((s.total, s.is_done()), (10, true));
    }
}
