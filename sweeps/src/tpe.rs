//! TPE (the tree-structured Parzen estimator of Bergstra et al. 2011, as Optuna's default
//! sampler): `[search] sampler = "tpe"`. The first [`STARTUP_TRIALS`] configurations are random
//! draws from the space, made by the sweep file like any random search; the coordinator proposes
//! each later one from the results so far ([`propose`]). Per parameter, the observations are split
//! into the best `gamma` and the rest; the next value is the candidate, drawn from a density over
//! the best, that is likeliest under it relative to a density over the rest. The density
//! estimators are the `tpe` crate's (by the author of Optuna's benchmark tool kurobako).
//!
//! Under a schedule, a trial is ranked by how far it got, then by its value there (as Optuna ranks
//! pruned trials): one that reached a later rung is better than any that stopped or paused below
//! it. The best are `gamma` of the trials, at most [`MAX_BEST`] (Optuna's default split).
//!
//! Trials still running count as the worst value seen (a constant liar), so the proposals for many
//! free slots at once spread instead of repeating one point. A proposal is a pure function of the
//! plan, the observations in queue order and its own index: the same seed and the same results
//! give the same trials, however the agents interleave.

use crate::sample::{condition, Distribution, SplitMix64, When};
use crate::schedule::{Mode, Objective};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Random configurations before TPE takes over (Optuna's `n_startup_trials`).
pub const STARTUP_TRIALS: u32 = 10;

/// Most trials of a TPE sweep: each proposal reads every trial before it.
pub const MAX_TRIALS: u32 = 10_000;

/// The share of the trials TPE's density of the best is drawn from, and their most.
const GAMMA: f64 = 0.1;
const MAX_BEST: usize = 25;

/// What the coordinator needs to propose a TPE sweep's trials (`SubmitSweepRequest.search_json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Configurations in all, the random first ones included.
    pub trials: u32,
    pub seed: u64,
    pub space: Vec<(String, Distribution)>,
    /// The space's conditional parameters (`when`); one left out of a trial tells TPE nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<(String, When)>,
    pub objective: Objective,
}

/// One trial as TPE learns from it: its parameters, how far it got, and its value of the
/// objective there, `None` when it has none (NaN, infinite): the worst.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub params: &'a Map<String, Value>,
    /// The epoch its value was taken at under a schedule (its highest rung, or its last epoch
    /// once it finished); 0 without one. A trial that got further ranks above one that did not.
    pub reached: u32,
    pub value: Option<f64>,
}

impl Plan {
    /// The proposal at queue position `index` (from 0), learning from the `finished` trials in
    /// queue order, with the `running` ones (queued, running or paused) told as the worst value.
    /// Until [`STARTUP_TRIALS`] trials finished it is a random draw.
    pub fn propose(
        &self,
        finished: &[Observation<'_>],
        running: &[&Map<String, Value>],
        index: u32,
    ) -> Map<String, Value> {
        if finished.len() < STARTUP_TRIALS as usize {
            return self.draw_at_random(index);
        }
        let seed = self.seed_of(index);
        let liars = running.iter().map(|params| Observation { params, reached: 0, value: None });
        let history: Vec<Observation<'_>> = finished.iter().copied().chain(liars).collect();
        let rank = self.ranks(&history);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut proposal = Map::new();
        for (name, dist) in &self.space {
            let when = condition(&self.when, name);
            if when.is_some_and(|w| !w.holds(&proposal)) {
                continue;
            }
            let axis = Axis::of(dist);
            let mut optimizer = tpe::TpeOptimizerBuilder::new()
                .gamma(gamma(history.len()))
                .build(axis.estimator(), axis.range)
                .expect("gamma is within 0 and 1, and there are candidates");
            for (o, rank) in history.iter().zip(&rank) {
                // Left out by its condition: its value is a default TPE must not learn from.
                let used = when.is_none_or(|w| w.holds(o.params));
                let x = o.params.get(name).filter(|_| used).map_or(f64::NAN, |v| axis.encode(dist, v));
                // A value outside the space (the file changed since) tells nothing.
                let _ = optimizer.tell(x, *rank);
            }
            let x = optimizer.ask(&mut rng).unwrap_or(axis.range.start());
            proposal.insert(name.clone(), axis.decode(dist, x));
        }
        proposal
    }
}

impl Plan {
    /// Each observation's place from the best (0) as the loss TPE minimises: no value last, then
    /// the further along first, then the better value; ties keep queue order.
    fn ranks(&self, history: &[Observation<'_>]) -> Vec<f64> {
        let loss = |v: f64| match self.objective.mode {
            Mode::Min => v,
            Mode::Max => -v,
        };
        let mut order: Vec<usize> = (0..history.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&history[a], &history[b]);
            a.value
                .is_none()
                .cmp(&b.value.is_none())
                .then(b.reached.cmp(&a.reached))
                .then_with(|| loss(a.value.unwrap_or(f64::INFINITY)).total_cmp(&loss(b.value.unwrap_or(f64::INFINITY))))
        });
        let mut rank = vec![0.0; history.len()];
        for (place, i) in order.into_iter().enumerate() {
            rank[i] = place as f64;
        }
        rank
    }

    /// A random draw from the space for queue position `index`: the first trials, and a proposal
    /// that keeps landing on configurations the sweep already has.
    pub fn draw_at_random(&self, index: u32) -> Map<String, Value> {
        crate::sample::draw(&self.space, &self.when, &mut SplitMix64::new(self.seed_of(index)))
    }

    fn seed_of(&self, index: u32) -> u64 {
        SplitMix64::new(self.seed ^ u64::from(index).wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
    }
}

/// The share of `n` trials TPE takes as the best: a tenth, at most [`MAX_BEST`] (the `tpe` crate
/// takes the ceiling of `n` times it).
fn gamma(n: usize) -> f64 {
    GAMMA.min(MAX_BEST as f64 / n as f64)
}

/// One parameter as TPE sees it: a range on the real line.
struct Axis {
    range: tpe::range::Range,
    categorical: bool,
}

impl Axis {
    fn of(dist: &Distribution) -> Axis {
        let (lo, hi, categorical) = match dist {
            Distribution::Uniform(lo, hi) => (*lo, *hi, false),
            Distribution::LogUniform(lo, hi) => (lo.ln(), hi.ln(), false),
            // Each integer owns the unit cell above it.
            Distribution::IntUniform(lo, hi) => (*lo as f64, *hi as f64 + 1.0, false),
            Distribution::Choice(options) => (0.0, options.len().max(1) as f64, true),
        };
        let range = tpe::range(lo, hi).unwrap_or_else(|_| tpe::range(0.0, 1.0).expect("a unit range"));
        Axis { range, categorical }
    }

    fn estimator(&self) -> tpe::density_estimation::DefaultEstimatorBuilder {
        if self.categorical {
            tpe::histogram_estimator()
        } else {
            tpe::parzen_estimator()
        }
    }

    /// A parameter's value on the axis; NaN when it is not one the distribution can give.
    fn encode(&self, dist: &Distribution, v: &Value) -> f64 {
        let x = match dist {
            Distribution::Uniform(..) => v.as_f64().unwrap_or(f64::NAN),
            Distribution::LogUniform(..) => v.as_f64().filter(|x| *x > 0.0).map_or(f64::NAN, f64::ln),
            Distribution::IntUniform(..) => v.as_f64().map_or(f64::NAN, |x| x.floor() + 0.5),
            Distribution::Choice(options) => options.iter().position(|o| o == v).map_or(f64::NAN, |i| i as f64 + 0.5),
        };
        if self.range.contains(x) {
            x
        } else {
            f64::NAN
        }
    }

    fn decode(&self, dist: &Distribution, x: f64) -> Value {
        let number = |v: f64| serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number);
        match dist {
            Distribution::Uniform(lo, hi) => number(x.clamp(*lo, *hi)),
            Distribution::LogUniform(lo, hi) => number(x.exp().clamp(*lo, *hi)),
            Distribution::IntUniform(lo, hi) => Value::from((x.floor() as i64).clamp(*lo, *hi)),
            Distribution::Choice(options) => options[(x.floor().max(0.0) as usize).min(options.len() - 1)].clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan(seed: u64) -> Plan {
        Plan {
            trials: 60,
            seed,
            space: vec![
                ("x".into(), Distribution::Uniform(-5.0, 5.0)),
                ("lr".into(), Distribution::LogUniform(1e-4, 1.0)),
                ("width".into(), Distribution::IntUniform(1, 64)),
                ("act".into(), Distribution::Choice(vec![json!("relu"), json!("tanh"), json!("gelu")])),
            ],
            when: Vec::new(),
            objective: Objective { metric: "loss".into(), mode: Mode::Min },
        }
    }

    /// Smallest at x = 1.5, lr = 0.01, width 40, gelu.
    fn loss(p: &Map<String, Value>) -> f64 {
        let x = p["x"].as_f64().unwrap();
        let lr = p["lr"].as_f64().unwrap();
        let width = p["width"].as_f64().unwrap();
        let act = if p["act"] == json!("gelu") { 0.0 } else { 1.0 };
        (x - 1.5).powi(2) + (lr.log10() + 2.0).powi(2) + ((width - 40.0) / 20.0).powi(2) + act
    }

    /// Runs `n` trials one at a time, each told before the next is proposed.
    fn run(plan: &Plan, n: u32) -> Vec<(Map<String, Value>, f64)> {
        let mut done: Vec<(Map<String, Value>, f64)> = Vec::new();
        for i in 0..n {
            let history: Vec<Observation> =
                done.iter().map(|(p, v)| Observation { params: p, reached: 0, value: Some(*v) }).collect();
            let p = plan.propose(&history, &[], i);
            let v = loss(&p);
            done.push((p, v));
        }
        done
    }

    #[test]
    fn the_same_seed_and_results_give_the_same_proposals() {
        let a = run(&plan(7), 30);
        let b = run(&plan(7), 30);
        assert_eq!(a, b);
        let other = run(&plan(8), 30);
        assert_ne!(a[20].0, other[20].0, "another seed proposes other trials");
    }

    #[test]
    fn proposals_stay_inside_the_space() {
        for (p, _) in run(&plan(1), 40) {
            assert!((-5.0..=5.0).contains(&p["x"].as_f64().unwrap()), "{p:?}");
            assert!((1e-4..=1.0).contains(&p["lr"].as_f64().unwrap()), "{p:?}");
            assert!((1..=64).contains(&p["width"].as_i64().unwrap()), "{p:?}");
            assert!(["relu", "tanh", "gelu"].contains(&p["act"].as_str().unwrap()), "{p:?}");
        }
    }

    #[test]
    fn tpe_finds_better_configurations_than_random_draws() {
        // Over 5 seeds, the best of 60 TPE trials beats the best of 60 random draws (the first
        // STARTUP_TRIALS are random in both) in the median.
        let best = |trials: &[(Map<String, Value>, f64)]| trials.iter().map(|t| t.1).fold(f64::INFINITY, f64::min);
        let mut tpe_wins = 0;
        for seed in 0..5 {
            let plan = plan(seed);
            let tpe = run(&plan, 60);
            let mut rng = SplitMix64::new(seed);
            let random: Vec<(Map<String, Value>, f64)> = (0..60)
                .map(|_| {
                    let p: Map<String, Value> =
                        plan.space.iter().map(|(k, d)| (k.clone(), d.sample(&mut rng))).collect();
                    let v = loss(&p);
                    (p, v)
                })
                .collect();
            tpe_wins += usize::from(best(&tpe) < best(&random));
        }
        assert!(tpe_wins >= 4, "TPE beat random search on {tpe_wins} of 5 seeds");
    }

    #[test]
    fn a_conditional_parameter_is_proposed_only_where_its_condition_holds() {
        let mut p = plan(5);
        p.space.push(("momentum".into(), Distribution::Uniform(0.0, 0.99)));
        p.when.push(("momentum".into(), When(vec![("act".into(), vec![json!("gelu")])])));
        let trials = run(&p, 40);
        assert!(trials.iter().skip(STARTUP_TRIALS as usize).any(|(t, _)| t.contains_key("momentum")));
        for (t, _) in &trials {
            assert_eq!(t.contains_key("momentum"), t["act"] == json!("gelu"), "{t:?}");
        }
    }

    #[test]
    fn pending_trials_told_as_the_worst_value_spread_a_batch_of_proposals() {
        let done = run(&plan(3), 20);
        let mut batch: Vec<Map<String, Value>> = Vec::new();
        let finished: Vec<Observation> =
            done.iter().map(|(p, v)| Observation { params: p, reached: 0, value: Some(*v) }).collect();
        for i in 20..28 {
            // The constant liar: a proposal still running counts as the worst value.
            let running: Vec<&Map<String, Value>> = batch.iter().collect();
            let p = plan(3).propose(&finished, &running, i);
            batch.push(p);
        }
        let distinct: std::collections::HashSet<String> =
            batch.iter().map(|p| Value::Object(p.clone()).to_string()).collect();
        assert_eq!(distinct.len(), batch.len(), "eight slots get eight different proposals");
    }

    #[test]
    fn a_trial_that_got_further_ranks_above_the_better_values_below_it() {
        // Trials near x = 4 reached the rung at epoch 9 with middling values; those near x = -4
        // were cut at epoch 1 with far better ones. TPE draws from the first.
        let mut p = plan(11);
        p.space.truncate(1);
        let params: Vec<Map<String, Value>> = (0..40)
            .map(|i| {
                let x = if i % 4 == 0 { 4.0 + f64::from(i) / 100.0 } else { -4.0 + f64::from(i) / 100.0 };
                Map::from_iter([("x".to_string(), json!(x))])
            })
            .collect();
        let history: Vec<Observation> = params
            .iter()
            .map(|params| {
                let further = params["x"].as_f64().unwrap() > 0.0;
                Observation {
                    params,
                    reached: if further { 9 } else { 1 },
                    value: Some(if further { 5.0 } else { 0.1 }),
                }
            })
            .collect();
        for i in 40..50 {
            let x = p.propose(&history, &[], i)["x"].as_f64().unwrap();
            assert!(x > 0.0, "proposal {i} at x = {x}, among the trials cut at epoch 1");
        }
        // Compared at one epoch, the better values win.
        let level: Vec<Observation> = history.iter().map(|o| Observation { reached: 1, ..*o }).collect();
        let below = (40..50).filter(|&i| p.propose(&level, &[], i)["x"].as_f64().unwrap() < 0.0).count();
        assert!(below >= 8, "{below} of 10 proposals near the better values");
    }

    #[test]
    fn the_best_are_a_tenth_of_the_trials_and_at_most_25() {
        for (n, best) in [(10, 1), (11, 2), (100, 10), (250, 25), (251, 25), (4_000, 25)] {
            assert_eq!((n as f64 * gamma(n)).ceil() as usize, best, "{n} trials");
        }
    }
}
