//! Population based training (Jaderberg et al. 2017), asynchronous: every `interval` epochs a
//! trial pauses with a checkpoint and is judged against the values the other trials recorded at
//! that same epoch. One in the bottom `quantile` of them is exploited: it ends, and a new trial
//! (a segment of the same lineage) starts from the checkpoint a random trial of the top `quantile`
//! kept at that epoch, with that trial's parameters, the listed ones perturbed (explore): each
//! multiplied by 0.8 or 1.2 (a `choice` moves to a neighbouring option), or drawn afresh from its
//! distribution with `resample_probability`. Any other trial goes on to the next interval.
//!
//! A trial judged early at an epoch is compared with the few values there so far; alone there, or
//! while the bottom quantile of the values holds no whole trial, it goes on. The rule is
//! [`Pbt::decide`]; [`Pbt::explore`] makes the new parameters. Both are plain functions of their
//! inputs; the coordinator's store passes in the values and the seed.

use super::{Action, Cut, Decision, Mode};
use crate::sample::{Distribution, SplitMix64};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Most epochs a PBT schedule judges a trial at.
pub const MAX_INTERVALS: u32 = 1024;

/// Most parameters a PBT schedule perturbs.
pub const MAX_PERTURBED: usize = 64;

/// The factors a perturbed number is multiplied by, one of the two at random.
pub const FACTORS: [f64; 2] = [0.8, 1.2];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pbt {
    /// Epochs between two judgements of a trial.
    pub interval: u32,
    /// The last epoch a trial trains; no epoch from it on is judged.
    pub max_epochs: u32,
    /// The bottom fraction exploited and the top fraction copied from, in (0, 0.5].
    pub quantile: f64,
    /// How often a perturbed parameter is drawn afresh instead of multiplied.
    pub resample_probability: f64,
    /// The parameters perturbed and the distribution each is drawn from and kept inside. A dotted
    /// name (`optimizer.lr`) is a key of a table parameter.
    pub perturb: Vec<(String, Distribution)>,
    /// Seeds the choices of parents and perturbations (`[search] seed`).
    #[serde(default)]
    pub seed: u64,
}

impl Pbt {
    /// What is wrong with these settings, naming the key.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.interval < 1 {
            return Err(("interval", "an integer >= 1".into()));
        }
        if self.max_epochs <= self.interval {
            return Err(("max_epochs", format!("an integer above interval ({})", self.interval)));
        }
        if (self.max_epochs - 1) / self.interval > MAX_INTERVALS {
            return Err((
                "interval",
                format!(
                    "at least {}: at most {MAX_INTERVALS} epochs are judged",
                    self.max_epochs.div_ceil(MAX_INTERVALS)
                ),
            ));
        }
        if !(self.quantile > 0.0 && self.quantile <= 0.5) {
            return Err(("quantile", "a number above 0 and at most 0.5".into()));
        }
        if !(0.0..=1.0).contains(&self.resample_probability) {
            return Err(("resample_probability", "a number from 0 to 1".into()));
        }
        if self.perturb.is_empty() {
            return Err((
                "perturb",
                "a table of the parameters to perturb with their distributions, e.g. { lr = { log_uniform = [1e-4, 0.1] } } (PBT without one only copies)"
                    .into(),
            ));
        }
        if self.perturb.len() > MAX_PERTURBED {
            return Err(("perturb", format!("at most {MAX_PERTURBED} parameters")));
        }
        for (name, d) in &self.perturb {
            if !crate::param_names::is_valid(name) {
                return Err(("perturb", format!("{}, got {name:?}", crate::param_names::RULE)));
            }
            d.check().map_err(|e| ("perturb", format!("{name}: {e}")))?;
        }
        Ok(())
    }

    /// The epochs at which a trial is judged, in order: every `interval` below `max_epochs`.
    pub fn rungs(&self) -> Vec<u32> {
        (self.interval..self.max_epochs).step_by(self.interval.max(1) as usize).take(MAX_INTERVALS as usize).collect()
    }

    /// The epoch a trial that went on from `epoch` (None: one that starts from scratch) trains
    /// to: the next judged epoch, None past the last.
    pub fn budget_after(&self, epoch: Option<u32>) -> Option<u32> {
        self.rungs().into_iter().find(|r| epoch.is_none_or(|e| *r > e))
    }

    /// How many of `reached` values form the bottom (and the top) quantile.
    fn tail(&self, reached: u32) -> u32 {
        (f64::from(reached) * self.quantile).floor() as u32
    }

    /// The rule at one judged epoch: the trial's `value` against the `others` recorded there.
    /// It is exploited when it is strictly worse than every value outside the bottom quantile.
    pub fn decide(&self, others: &[Option<f64>], value: Option<f64>, mode: Mode) -> Decision {
        let mut all = others.to_vec();
        all.push(value);
        let reached = all.len() as u32;
        let kept = reached - self.tail(reached);
        let cut = Cut::keeping(&all, mode, kept);
        let action = if cut.admits(value) { Action::Continue } else { Action::Exploit };
        Decision { action, threshold: cut.threshold, reached, kept }
    }

    /// Which of `candidates` (the values at the epoch of the trials that kept a checkpoint there)
    /// are in the top quantile of `values` (every value there): those at least as good as the
    /// worst value inside it.
    pub fn top(&self, values: &[Option<f64>], candidates: &[Option<f64>], mode: Mode) -> Vec<usize> {
        let top = self.tail(values.len() as u32).max(1);
        let cut = Cut::keeping(values, mode, top);
        candidates.iter().enumerate().filter(|(_, v)| v.is_some() && cut.admits(**v)).map(|(i, _)| i).collect()
    }

    /// The parent of an exploit, one of `top` (at least one). `seed` makes it and [`Pbt::explore`]
    /// reproducible: the store passes one made of the exploited trial and its epoch, which this
    /// mixes with the sweep's seed.
    pub fn parent(&self, top: &[usize], seed: u64) -> usize {
        top[self.rng(seed).below(top.len() as u64) as usize]
    }

    /// The parent's `params` with every perturbed parameter moved: resampled, or multiplied by 0.8
    /// or 1.2 and kept inside its distribution's range (a `choice` moves to a neighbouring option).
    pub fn explore(&self, params: &Map<String, Value>, seed: u64) -> Map<String, Value> {
        let mut rng = self.rng(seed);
        let _parent_draw = rng.next_u64();
        let rng = &mut rng;
        let mut out = params.clone();
        for (name, d) in &self.perturb {
            let current = get(&out, name).cloned();
            let resample = rng.next_f64() < self.resample_probability;
            let up = rng.below(2) == 1;
            let value = match (current, resample) {
                (Some(current), false) => perturbed(d, &current, up).unwrap_or_else(|| d.sample(rng)),
                _ => d.sample(rng),
            };
            set(&mut out, name, value);
        }
        out
    }

    fn rng(&self, seed: u64) -> SplitMix64 {
        SplitMix64::new(seed ^ self.seed.rotate_left(17))
    }
}

/// `current` multiplied by 0.8 (or 1.2 when `up`) inside the distribution's range, or the next
/// option down (or up) of a `choice`; None when `current` is not a value the distribution holds.
fn perturbed(d: &Distribution, current: &Value, up: bool) -> Option<Value> {
    let factor = FACTORS[usize::from(up)];
    match d {
        Distribution::Uniform(lo, hi) | Distribution::LogUniform(lo, hi) => {
            let x = current.as_f64()? * factor;
            Some(crate::sample::json_f64(x.clamp(*lo, *hi)))
        }
        Distribution::IntUniform(lo, hi) => {
            let x = current.as_i64()?;
            let moved = (x as f64 * factor).round() as i64;
            // A small integer that rounding leaves where it was still moves by one.
            let moved = if moved == x { x.saturating_add(if up { 1 } else { -1 }) } else { moved };
            Some(Value::from(moved.clamp(*lo, *hi)))
        }
        Distribution::Choice(options) => {
            let i = options.iter().position(|o| o == current)?;
            let j = if up { (i + 1).min(options.len() - 1) } else { i.saturating_sub(1) };
            Some(options[j].clone())
        }
    }
}

/// The parameter `name`, a dotted name reaching into a table parameter.
pub fn get<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    match params.get(name) {
        Some(v) => Some(v),
        None => {
            let (table, key) = name.split_once('.')?;
            params.get(table)?.as_object()?.get(key)
        }
    }
}

fn set(params: &mut Map<String, Value>, name: &str, value: Value) {
    if !params.contains_key(name) {
        if let Some((table, key)) = name.split_once('.') {
            if let Some(t) = params.get_mut(table).and_then(Value::as_object_mut) {
                t.insert(key.to_string(), value);
                return;
            }
        }
    }
    params.insert(name.to_string(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pbt() -> Pbt {
        Pbt {
            interval: 4,
            max_epochs: 20,
            quantile: 0.25,
            resample_probability: 0.0,
            perturb: vec![
                ("optimizer.lr".into(), Distribution::LogUniform(1e-4, 1.0)),
                ("width".into(), Distribution::Choice(vec![json!(8), json!(16), json!(32)])),
            ],
            seed: 0,
        }
    }

    #[test]
    fn a_trial_is_judged_every_interval_and_trains_to_the_next() {
        let p = pbt();
        assert_eq!(p.rungs(), vec![4, 8, 12, 16]);
        assert_eq!((p.budget_after(None), p.budget_after(Some(4)), p.budget_after(Some(16))), (Some(4), Some(8), None));
        assert_eq!(p.budget_after(Some(6)), Some(8), "a copy made at epoch 6 trains to the next interval");
    }

    #[test]
    fn only_the_bottom_quantile_is_exploited() {
        let p = pbt();
        let mode = Mode::Min;
        // Three values: the bottom quarter holds no whole trial, so even the worst goes on.
        assert_eq!(p.decide(&[Some(0.1), Some(0.2)], Some(0.9), mode).action, Action::Continue);
        // Four: the worst is exploited, the others go on; a tie with the last kept value is kept.
        let others = [Some(0.1), Some(0.2), Some(0.3)];
        let d = p.decide(&others, Some(0.9), mode);
        assert_eq!((d.action, d.reached, d.kept, d.threshold), (Action::Exploit, 4, 3, Some(0.3)));
        assert_eq!(p.decide(&others, Some(0.3), mode).action, Action::Continue);
        assert_eq!(p.decide(&others, Some(0.9), Mode::Max).action, Action::Continue);
        // A NaN is the worst value for its own trial alone.
        assert_eq!(p.decide(&[None, Some(0.2), Some(0.3)], Some(0.25), mode).action, Action::Continue);
        assert_eq!(p.decide(&others, None, mode).action, Action::Exploit);
    }

    #[test]
    fn parents_come_from_the_top_quantile_of_those_with_a_checkpoint() {
        let p = pbt();
        let values = [Some(0.1), Some(0.2), Some(0.3), Some(0.4), Some(0.5), Some(0.6), Some(0.7), Some(0.9)];
        // The top quarter of eight is the best two; of the candidates, 0.1 and 0.2 are inside.
        assert_eq!(p.top(&values, &[Some(0.3), Some(0.2), Some(0.1), None], Mode::Min), vec![1, 2]);
        // With few values the best one is the top.
        assert_eq!(p.top(&values[..2], &[Some(0.1), Some(0.2)], Mode::Min), vec![0]);
    }

    #[test]
    fn explore_multiplies_inside_the_range_or_moves_to_a_neighbouring_option() {
        let p = pbt();
        let params = json!({"optimizer": {"name": "sgd", "lr": 0.1}, "width": 16, "seed": 3});
        let params = params.as_object().unwrap();
        let mut seen_lr = std::collections::BTreeSet::new();
        let mut seen_width = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let e = p.explore(params, seed);
            let lr = e["optimizer"]["lr"].as_f64().unwrap();
            seen_lr.insert((lr * 1e6).round() as i64);
            seen_width.insert(e["width"].as_i64().unwrap());
            assert_eq!((&e["seed"], &e["optimizer"]["name"]), (&json!(3), &json!("sgd")));
        }
        assert_eq!(seen_lr.into_iter().collect::<Vec<_>>(), vec![80_000, 120_000]);
        assert_eq!(seen_width.into_iter().collect::<Vec<_>>(), vec![8, 32]);
        // Inside the range: 1.0 * 1.2 stays 1.0.
        assert_eq!(perturbed(&Distribution::LogUniform(1e-4, 1.0), &json!(1.0), true), Some(json!(1.0)));
        assert_eq!(perturbed(&Distribution::IntUniform(1, 10), &json!(2), true), Some(json!(3)));
        assert_eq!(perturbed(&Distribution::IntUniform(1, 10), &json!(1), false), Some(json!(1)));
    }

    #[test]
    fn resampling_draws_from_the_distribution_and_the_same_seed_gives_the_same_exploit() {
        let p = Pbt { resample_probability: 1.0, ..pbt() };
        let params = json!({"optimizer": {"lr": 0.1}, "width": 16});
        let params = params.as_object().unwrap();
        assert_eq!((p.parent(&[0, 1], 7), p.explore(params, 7)), (p.parent(&[0, 1], 7), p.explore(params, 7)));
        let lrs: Vec<f64> = (0..32).map(|s| p.explore(params, s)["optimizer"]["lr"].as_f64().unwrap()).collect();
        assert!(lrs.iter().all(|lr| (1e-4..=1.0).contains(lr)));
        assert!(lrs.iter().any(|lr| *lr < 0.01), "drawn afresh, not multiplied: {lrs:?}");
        let parents: std::collections::BTreeSet<usize> = (0..32).map(|s| p.parent(&[3, 5], s)).collect();
        assert_eq!(parents, [3, 5].into_iter().collect(), "either trial of the top");
    }

    #[test]
    fn settings_that_cannot_work_name_their_key() {
        assert_eq!(Pbt { interval: 0, ..pbt() }.check().unwrap_err().0, "interval");
        assert_eq!(Pbt { max_epochs: 4, ..pbt() }.check().unwrap_err().0, "max_epochs");
        assert_eq!(Pbt { quantile: 0.6, ..pbt() }.check().unwrap_err().0, "quantile");
        assert_eq!(Pbt { quantile: f64::NAN, ..pbt() }.check().unwrap_err().0, "quantile");
        assert_eq!(Pbt { resample_probability: 1.5, ..pbt() }.check().unwrap_err().0, "resample_probability");
        assert_eq!(Pbt { perturb: vec![], ..pbt() }.check().unwrap_err().0, "perturb");
        let bad = vec![("lr".to_string(), Distribution::LogUniform(0.0, 1.0))];
        assert_eq!(Pbt { perturb: bad, ..pbt() }.check().unwrap_err().0, "perturb");
        assert_eq!(Pbt { interval: 1, max_epochs: 5000, ..pbt() }.check().unwrap_err().0, "interval");
        assert!(pbt().check().is_ok());
    }
}
