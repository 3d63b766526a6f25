//! Early stopping: the `[search]` objective (`metric`, `mode`) and the `[schedule]` that judges
//! trials by it while they train.
//!
//! ASHA (asynchronous successive halving, Li et al. 2020) judges a trial at each rung, the epochs
//! `min_epochs * reduction_factor^k` below `max_epochs`: it goes on if its value there is among
//! the best `ceil(n / reduction_factor)` of the `n` trials that reached that rung so far, itself
//! included. No trial waits for a rung to fill. Otherwise, with `promote = true` (the default), it
//! is paused: it trains only to the rung (each lease says the epoch to stop after), keeps its
//! checkpoint and frees its slot, and is promoted to the next rung as soon as later, worse values
//! put it inside the cut there; it resumes from its checkpoint on any agent. When nothing is left
//! to run, a trial still paused is stopped early. With `promote = false` it is stopped at once.
//! With `brackets = b`,
//! trial `i` of the sweep is in bracket `i mod b` and judged from that rung on, against the trials of
//! its bracket only, so later brackets give each trial more epochs before its first cut
//! (asynchronous Hyperband's brackets).
//!
//! Median stopping (`type = "median"`, [`median`]) judges at more epochs by a simpler rule and
//! never pauses. Population based training (`type = "pbt"`, [`pbt`]) pauses every trial at each
//! interval and replaces the worst with perturbed copies of the best.
//!
//! What is decided lives in the coordinator's store (`decisions`), in the transaction of the report
//! that reached the rung; the rules themselves are [`decide`] and [`median::decide`], plain
//! functions of the values, which [`Schedule::decide`] picks between.

pub mod median;
pub mod pbt;

use serde::{Deserialize, Serialize};

pub use median::Median;
pub use pbt::Pbt;

/// The environment variable that tells a trial the last epoch its attempt trains (a rung of a
/// promoting schedule): it checkpoints after that epoch and exits 0.
pub const STOP_AFTER_EPOCH: &str = "SWEEP_STOP_AFTER_EPOCH";

/// Most rungs a schedule may have; `reduction_factor >= 2` gives at most 32 below 2^32 epochs.
pub const MAX_RUNGS: usize = 32;

/// Most brackets of an ASHA schedule.
pub const MAX_BRACKETS: u32 = 8;

/// Whether smaller or larger values of the metric are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Min,
    Max,
}

impl Mode {
    pub const NAMES: [&'static str; 2] = ["min", "max"];

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "min" => Some(Mode::Min),
            "max" => Some(Mode::Max),
            _ => None,
        }
    }

    /// `a` is strictly better than `b`. A missing value (NaN, infinite, or a failed trial) is worse
    /// than any value.
    pub fn better(self, a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => match self {
                Mode::Min => a < b,
                Mode::Max => a > b,
            },
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// What the schedule judges: the metric and its direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub metric: String,
    pub mode: Mode,
}

/// An ASHA schedule: trials below the cut at a rung are paused (and promoted later) or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Asha {
    pub min_epochs: u32,
    pub max_epochs: u32,
    pub reduction_factor: u32,
    pub brackets: u32,
    /// Pause trials below the cut and promote them when they qualify, rather than stop them.
    /// Schedules stored before pausing existed read as stop-only.
    #[serde(default)]
    pub promote: bool,
}

/// The sweep's early stopping, as the coordinator keeps it (`SubmitSweepRequest.schedule_json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Stored", into = "Stored")]
pub struct Schedule {
    pub objective: Objective,
    /// What the sweep file asked for (`[schedule] type`).
    pub kind: Kind,
    pub rule: Rule,
}

/// The rule a schedule judges by, with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// ASHA and Hyperband.
    Asha(Asha),
    Median(Median),
    Pbt(Pbt),
}

/// A schedule as JSON: the form schedules had before median stopping (`objective` and `asha`),
/// with `kind` and `median` added.
#[derive(Serialize, Deserialize)]
struct Stored {
    objective: Objective,
    #[serde(default)]
    kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    asha: Option<Asha>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    median: Option<Median>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pbt: Option<Pbt>,
}

impl TryFrom<Stored> for Schedule {
    type Error = String;

    fn try_from(s: Stored) -> Result<Schedule, String> {
        let rule = match (s.kind, s.asha, s.median, s.pbt) {
            (Kind::Asha | Kind::Hyperband, Some(asha), None, None) => Rule::Asha(asha),
            (Kind::Median, None, Some(median), None) => Rule::Median(median),
            (Kind::Pbt, None, None, Some(pbt)) => Rule::Pbt(pbt),
            (kind, ..) => {
                return Err(format!(
                    "a `{}` schedule holds its settings under `{}` alone",
                    kind.as_str(),
                    kind.settings()
                ))
            }
        };
        Ok(Schedule { objective: s.objective, kind: s.kind, rule })
    }
}

impl From<Schedule> for Stored {
    fn from(s: Schedule) -> Stored {
        let (asha, median, pbt) = match s.rule {
            Rule::Asha(a) => (Some(a), None, None),
            Rule::Median(m) => (None, Some(m), None),
            Rule::Pbt(p) => (None, None, Some(p)),
        };
        Stored { objective: s.objective, kind: s.kind, asha, median, pbt }
    }
}

/// `[schedule] type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Asynchronous successive halving: one bracket unless `brackets` says more.
    #[default]
    Asha,
    /// Asynchronous Hyperband: brackets of ASHA, by default one per rung, so that trial `i`
    /// first faces a cut at rung `i mod brackets`: from the most aggressive bracket to one that
    /// lets its trials train to the last rung before any cut.
    Hyperband,
    /// Median stopping.
    Median,
    /// Population based training.
    Pbt,
}

impl Kind {
    pub const NAMES: [&'static str; 4] = ["asha", "hyperband", "median", "pbt"];

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "asha" => Some(Kind::Asha),
            "hyperband" => Some(Kind::Hyperband),
            "median" => Some(Kind::Median),
            "pbt" => Some(Kind::Pbt),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Asha => "asha",
            Kind::Hyperband => "hyperband",
            Kind::Median => "median",
            Kind::Pbt => "pbt",
        }
    }

    /// Where a stored schedule of this kind keeps its settings.
    fn settings(self) -> &'static str {
        match self {
            Kind::Asha | Kind::Hyperband => "asha",
            Kind::Median => "median",
            Kind::Pbt => "pbt",
        }
    }
}

impl Asha {
    /// What is wrong with these settings, naming the key; checked for the sweep file and again by
    /// the coordinator for what a client sent.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.min_epochs < 1 {
            return Err(("min_epochs", "an integer >= 1".into()));
        }
        if self.max_epochs <= self.min_epochs {
            return Err(("max_epochs", format!("an integer above min_epochs ({})", self.min_epochs)));
        }
        if self.reduction_factor < 2 {
            return Err(("reduction_factor", "an integer >= 2".into()));
        }
        if !(1..=MAX_BRACKETS).contains(&self.brackets) {
            return Err(("brackets", format!("an integer from 1 to {MAX_BRACKETS}")));
        }
        if self.brackets as usize > self.all_rungs().len() {
            return Err((
                "brackets",
                format!(
                    "at most {} with these epochs: one per rung below max_epochs ({:?})",
                    self.all_rungs().len(),
                    self.all_rungs()
                ),
            ));
        }
        Ok(())
    }

    /// How many brackets Hyperband has by default with these epochs: one per rung, at most
    /// [`MAX_BRACKETS`].
    pub fn hyperband_brackets(&self) -> u32 {
        (self.all_rungs().len() as u32).clamp(1, MAX_BRACKETS)
    }

    /// Every rung below `max_epochs`: `min_epochs * reduction_factor^k`.
    fn all_rungs(&self) -> Vec<u32> {
        let mut rungs = Vec::new();
        let mut r = u64::from(self.min_epochs);
        while r < u64::from(self.max_epochs) && rungs.len() < MAX_RUNGS {
            rungs.push(r as u32);
            r = r.saturating_mul(u64::from(self.reduction_factor.max(2)));
        }
        rungs
    }

    /// The bracket of the sweep's trial at queue position `index`.
    pub fn bracket(&self, index: u32) -> u32 {
        index % self.brackets.max(1)
    }

    /// The epochs at which a trial of `bracket` is judged, in order.
    pub fn rungs(&self, bracket: u32) -> Vec<u32> {
        self.all_rungs().into_iter().skip(bracket as usize).collect()
    }

    /// The epoch a promoting schedule lets a trial of `bracket` train to, once it went on from the
    /// rung at `epoch` (None: its first rung); None when nothing stops it after that: it trains to
    /// its last epoch. A stop-only schedule stops no trial at a rung it went on from.
    pub fn budget_after(&self, bracket: u32, epoch: Option<u32>) -> Option<u32> {
        if !self.promote {
            return None;
        }
        self.rungs(bracket).into_iter().find(|r| epoch.is_none_or(|e| *r > e))
    }
}

impl Schedule {
    /// ASHA's settings, for an ASHA or Hyperband schedule.
    pub fn asha(&self) -> Option<&Asha> {
        match &self.rule {
            Rule::Asha(a) => Some(a),
            Rule::Median(_) | Rule::Pbt(_) => None,
        }
    }

    /// PBT's settings, for a PBT schedule.
    pub fn pbt(&self) -> Option<&Pbt> {
        match &self.rule {
            Rule::Pbt(p) => Some(p),
            Rule::Asha(_) | Rule::Median(_) => None,
        }
    }

    /// Each attempt of a trial trains only to its next judged epoch, where it keeps a checkpoint
    /// and frees its slot: ASHA with `promote` (trials outside the cut wait there, and may be
    /// promoted later), and PBT (every trial, at every interval).
    pub fn promotes(&self) -> bool {
        self.asha().is_some_and(|a| a.promote) || self.pbt().is_some()
    }

    /// The last epoch trials train, checked against the trials' own `epochs`.
    pub fn max_epochs(&self) -> u32 {
        match &self.rule {
            Rule::Asha(a) => a.max_epochs,
            Rule::Median(m) => m.max_epochs,
            Rule::Pbt(p) => p.max_epochs,
        }
    }

    /// The bracket of the sweep's trial at queue position `index` (always 0 but for Hyperband).
    pub fn bracket(&self, index: u32) -> u32 {
        self.asha().map_or(0, |a| a.bracket(index))
    }

    /// The epochs at which a trial of `bracket` is judged, in order.
    pub fn rungs(&self, bracket: u32) -> Vec<u32> {
        match &self.rule {
            Rule::Asha(a) => a.rungs(bracket),
            Rule::Median(m) => m.rungs(),
            Rule::Pbt(p) => p.rungs(),
        }
    }

    /// See [`Asha::budget_after`] and [`Pbt::budget_after`]; None for a rule that never pauses.
    pub fn budget_after(&self, bracket: u32, epoch: Option<u32>) -> Option<u32> {
        match &self.rule {
            Rule::Asha(a) => a.budget_after(bracket, epoch),
            Rule::Median(_) => None,
            Rule::Pbt(p) => p.budget_after(epoch),
        }
    }

    /// The rule at one rung: the trial's `value` against the `others` recorded there before.
    pub fn decide(&self, others: &[Option<f64>], value: Option<f64>) -> Decision {
        match &self.rule {
            Rule::Asha(a) => decide(others, value, self.objective.mode, a.reduction_factor),
            Rule::Median(m) => median::decide(others, value, self.objective.mode, m.min_trials),
            Rule::Pbt(p) => p.decide(others, value, self.objective.mode),
        }
    }

    /// ASHA's cut at a rung holding `values`, which decides promotions; None for median stopping.
    pub fn cut(&self, values: &[Option<f64>]) -> Option<Cut> {
        self.asha().map(|a| Cut::of(values, self.objective.mode, a.reduction_factor))
    }

    /// What is wrong with the settings, naming the key (without the `schedule.` prefix).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match &self.rule {
            Rule::Asha(a) => a.check(),
            Rule::Median(m) => m.check(),
            Rule::Pbt(p) => p.check(),
        }
    }

    /// One line for `sweep validate`: what is judged, when, and by what rule.
    pub fn describe(&self) -> String {
        let list = |rungs: Vec<u32>| rungs.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        let better = match self.objective.mode {
            Mode::Min => "lower",
            Mode::Max => "higher",
        };
        let metric = crate::text::escape(&self.objective.metric);
        let a = match &self.rule {
            Rule::Asha(a) => a,
            Rule::Pbt(p) => {
                let names: Vec<String> =
                    p.perturb.iter().map(|(n, _)| format!("`{}`", crate::text::escape(n))).collect();
                return format!(
                    "schedule: pbt on `{metric}` ({better} is better) up to epoch {}, every {} epochs; a trial in the bottom {} \
                     of the values at its epoch continues as a copy of one in the top {}, with {} perturbed \
                     (x0.8 or x1.2, or drawn afresh with probability {})",
                    p.max_epochs,
                    p.interval,
                    p.quantile,
                    p.quantile,
                    names.join(", "),
                    p.resample_probability
                );
            }
            Rule::Median(m) => {
                let rungs = m.rungs();
                let when = match rungs.as_slice() {
                    [first, second, .., last] if rungs.len() > 4 => format!("{first}, {second}, ..., {last}"),
                    _ => list(rungs.clone()),
                };
                return format!(
                    "schedule: median on `{metric}` ({better} is better) up to epoch {}, judged at epochs {when}; \
                     a trial worse than the median of the trials before it there (once {} of them reached it) is stopped",
                    m.max_epochs, m.min_trials
                );
            }
        };
        let when = if a.brackets == 1 {
            format!("at epochs {}", list(a.rungs(0)))
        } else {
            let brackets: Vec<String> = (0..a.brackets).map(|b| format!("[{}]", list(a.rungs(b)))).collect();
            format!("at epochs {} (one bracket per trial, in turn)", brackets.join(" or "))
        };
        let outside =
            if a.promote { "paused, and promoted to the next rung when later trials put it inside" } else { "stopped" };
        format!(
            "schedule: {} on `{metric}` ({better} is better) up to epoch {}, judged {when}; a trial outside the best 1/{} at a rung is {outside}",
            self.kind.as_str(),
            a.max_epochs,
            a.reduction_factor
        )
    }
}

/// What a rung decides for the trial that just reached it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub action: Action,
    /// The value the trial had to match: the worst value still inside the cut (None: a missing
    /// value was inside it).
    pub threshold: Option<f64>,
    /// How many trials reached the rung, this one included.
    pub reached: u32,
    /// How many of them go on: `ceil(reached / reduction_factor)`.
    pub kept: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    Stop,
    /// Outside the cut under a promoting schedule: trains no further until promoted.
    Pause,
    /// A paused trial that later values put inside the cut: it resumes to the next rung.
    Promote,
    /// PBT: in the bottom quantile, it ends and a perturbed copy of a top trial takes its place.
    Exploit,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Continue => "continue",
            Action::Stop => "stop",
            Action::Pause => "pause",
            Action::Promote => "promote",
            Action::Exploit => "exploit",
        }
    }
}

/// ASHA's rule at one rung. `others` are the values the other trials recorded at this rung (None:
/// missing, NaN or infinite, or the trial failed before it), `value` is this trial's. The trial
/// goes on if it is among the best `ceil(n / reduction_factor)` of the `n` values; a tie with the
/// last value inside the cut is inside it, and a missing value is never better than another.
pub fn decide(others: &[Option<f64>], value: Option<f64>, mode: Mode, reduction_factor: u32) -> Decision {
    let mut all: Vec<Option<f64>> = others.to_vec();
    all.push(value);
    let cut = Cut::of(&all, mode, reduction_factor);
    let action = if cut.admits(value) { Action::Continue } else { Action::Stop };
    Decision { action, threshold: cut.threshold, reached: cut.reached, kept: cut.kept }
}

/// Where a rung's cut lies, given every value recorded there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cut {
    /// The worst value inside the cut (None: a missing value is inside it).
    pub threshold: Option<f64>,
    pub reached: u32,
    /// `ceil(reached / reduction_factor)`.
    pub kept: u32,
    mode: Mode,
}

impl Cut {
    /// The cut of a rung holding `values` (at least one).
    pub fn of(values: &[Option<f64>], mode: Mode, reduction_factor: u32) -> Cut {
        let reached = values.len().max(1) as u32;
        Cut::keeping(values, mode, reached.div_ceil(reduction_factor.max(2)))
    }

    /// The cut that keeps the best `kept` of `values` (at least one of each).
    pub fn keeping(values: &[Option<f64>], mode: Mode, kept: u32) -> Cut {
        let reached = values.len().max(1) as u32;
        let kept = kept.clamp(1, reached);
        let mut sorted = values.to_vec();
        sorted.sort_by(|a, b| order(mode, *a, *b));
        let threshold = sorted.get(kept as usize - 1).copied().flatten();
        Cut { threshold, reached, kept, mode }
    }

    /// A value among the rung's is inside the cut: fewer than `kept` values are strictly better.
    /// Equivalently, the worst value inside the cut is not better than it.
    pub fn admits(&self, value: Option<f64>) -> bool {
        !self.mode.better(self.threshold, value)
    }
}

/// Best first: the order of values under `mode`, missing ones last.
fn order(mode: Mode, a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
    if mode.better(a, b) {
        std::cmp::Ordering::Less
    } else if mode.better(b, a) {
        std::cmp::Ordering::Greater
    } else {
        std::cmp::Ordering::Equal
    }
}

/// A reported value as the rule reads it: NaN and infinities are missing, the worst of all.
pub fn judged(value: f64) -> Option<f64> {
    value.is_finite().then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asha(min: u32, max: u32, eta: u32, brackets: u32) -> Asha {
        Asha { min_epochs: min, max_epochs: max, reduction_factor: eta, brackets, promote: false }
    }

    #[test]
    fn a_promoting_schedule_budgets_each_segment_to_the_next_rung() {
        let a = Asha { promote: true, ..asha(1, 81, 3, 2) };
        assert_eq!(a.budget_after(0, None), Some(1), "the first segment ends at the first rung");
        assert_eq!(a.budget_after(0, Some(1)), Some(3));
        assert_eq!(a.budget_after(0, Some(27)), None, "past the last rung a trial trains to its end");
        assert_eq!(a.budget_after(1, None), Some(3), "bracket 1 starts one rung later");
        assert_eq!(asha(1, 81, 3, 1).budget_after(0, None), None, "stop-only ASHA never pauses a trial");
        let stored = r#"{"min_epochs":1,"max_epochs":9,"reduction_factor":3,"brackets":1}"#;
        assert!(!serde_json::from_str::<Asha>(stored).unwrap().promote, "schedules stored before pausing stop");
    }

    #[test]
    fn stored_schedules_read_back_whatever_their_age() {
        let before = r#"{"objective":{"metric":"loss","mode":"min"},"asha":{"min_epochs":1,"max_epochs":9,"reduction_factor":3,"brackets":1}}"#;
        let s: Schedule = serde_json::from_str(before).unwrap();
        assert_eq!((s.kind, s.rule.clone(), s.promotes()), (Kind::Asha, Rule::Asha(asha(1, 9, 3, 1)), false));
        let median = Schedule {
            objective: Objective { metric: "loss".into(), mode: Mode::Max },
            kind: Kind::Median,
            rule: Rule::Median(Median { grace_epochs: 2, every: 1, min_trials: 3, max_epochs: 9 }),
        };
        let json = serde_json::to_string(&median).unwrap();
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), median);
        assert_eq!(
            (median.bracket(5), median.rungs(0), median.budget_after(0, None)),
            (0, vec![2, 3, 4, 5, 6, 7, 8], None)
        );
        let mixed = r#"{"objective":{"metric":"loss","mode":"min"},"kind":"median","asha":{"min_epochs":1,"max_epochs":9,"reduction_factor":3,"brackets":1}}"#;
        let err = serde_json::from_str::<Schedule>(mixed).unwrap_err().to_string();
        assert!(err.contains("`median` schedule holds its settings under `median`"), "{err}");
    }

    #[test]
    fn rungs_are_powers_of_the_reduction_factor_below_the_last_epoch() {
        assert_eq!(asha(1, 81, 3, 1).rungs(0), vec![1, 3, 9, 27]);
        assert_eq!(asha(1, 82, 3, 1).rungs(0), vec![1, 3, 9, 27, 81]);
        assert_eq!(asha(2, 20, 2, 1).rungs(0), vec![2, 4, 8, 16]);
        assert_eq!(asha(1, 81, 3, 3).rungs(2), vec![9, 27], "a later bracket starts at a later rung");
        assert_eq!(asha(1, 81, 3, 3).bracket(7), 1);
    }

    #[test]
    fn settings_that_cannot_work_name_their_key() {
        assert_eq!(asha(0, 9, 3, 1).check().unwrap_err().0, "min_epochs");
        assert_eq!(asha(9, 9, 3, 1).check().unwrap_err().0, "max_epochs");
        assert_eq!(asha(1, 9, 1, 1).check().unwrap_err().0, "reduction_factor");
        assert_eq!(asha(1, 9, 3, 0).check().unwrap_err().0, "brackets");
        assert_eq!(asha(1, 9, 3, 3).check().unwrap_err().0, "brackets", "rungs 1 and 3 make two brackets at most");
        assert!(asha(1, 9, 3, 2).check().is_ok());
        assert!(asha(1, u32::MAX, 2, 1).all_rungs().len() <= MAX_RUNGS);
    }

    #[test]
    fn the_first_trial_at_a_rung_goes_on() {
        let d = decide(&[], Some(0.5), Mode::Min, 3);
        assert_eq!((d.action, d.reached, d.kept, d.threshold), (Action::Continue, 1, 1, Some(0.5)));
    }

    #[test]
    fn a_trial_goes_on_only_inside_the_top_third() {
        // Four values at the rung with eta 3: the best two go on.
        let others = [Some(0.1), Some(0.2), Some(0.3)];
        assert_eq!(decide(&others, Some(0.15), Mode::Min, 3).action, Action::Continue);
        let d = decide(&others, Some(0.25), Mode::Min, 3);
        assert_eq!((d.action, d.kept, d.threshold), (Action::Stop, 2, Some(0.2)));
        // Larger is better in max mode: 0.25 is second best.
        assert_eq!(decide(&others, Some(0.25), Mode::Max, 3).action, Action::Continue);
        // A tie with the last value inside the cut is inside it.
        assert_eq!(decide(&others, Some(0.2), Mode::Min, 3).action, Action::Continue);
    }

    #[test]
    fn a_missing_value_is_the_worst_for_its_trial_alone() {
        let nan = judged(f64::NAN);
        assert_eq!(nan, None);
        assert_eq!(judged(f64::INFINITY), None);
        // One NaN at the rung does not stop the others: it only counts as the worst value there.
        // With eta 2 two of the three go on: the NaN is the one left out, whichever mode.
        let others = [nan, Some(0.9)];
        assert_eq!(decide(&others, Some(0.95), Mode::Min, 2).action, Action::Continue);
        assert_eq!(decide(&others, Some(0.95), Mode::Max, 2).action, Action::Continue);
        assert_eq!(decide(&[Some(0.9), Some(0.95)], nan, Mode::Max, 2).action, Action::Stop);
        // The NaN trial itself is stopped once someone better is at the rung.
        assert_eq!(decide(&[Some(0.9)], nan, Mode::Min, 3).action, Action::Stop);
        assert_eq!(decide(&[Some(0.9)], nan, Mode::Max, 3).action, Action::Stop);
        // Alone at the rung, even a missing value goes on.
        assert_eq!(decide(&[], nan, Mode::Min, 3).action, Action::Continue);
    }

    #[test]
    fn a_cut_admits_what_the_rule_keeps() {
        // For every value at a rung, the cut of all the rung's values says what `decide` says.
        let values = [Some(0.3), None, Some(0.1), Some(0.3), Some(0.7), None, Some(0.2)];
        for mode in [Mode::Min, Mode::Max] {
            for eta in 2..5 {
                let cut = Cut::of(&values, mode, eta);
                for (i, v) in values.iter().enumerate() {
                    let others: Vec<_> = values.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, o)| *o).collect();
                    let d = decide(&others, *v, mode, eta);
                    assert_eq!(cut.admits(*v), d.action == Action::Continue, "{mode:?} eta {eta} value {v:?}");
                    assert_eq!((cut.threshold, cut.kept), (d.threshold, d.kept));
                }
            }
        }
    }

    #[test]
    fn failed_trials_make_the_cut_more_lenient_not_stricter() {
        // Two failed trials count at the rung: three values, one goes on, and it is this one.
        assert_eq!(decide(&[None, None], Some(5.0), Mode::Min, 3).action, Action::Continue);
    }
}
