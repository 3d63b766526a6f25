//! Median stopping (as Optuna's `MedianPruner` and Vizier's rule): from `grace_epochs` on, every
//! `every` epochs below `max_epochs`, a trial whose value is worse than the median of the values
//! the trials before it recorded at that epoch is stopped, once at least `min_trials` of them did.
//! A NaN or infinite value is the worst for its own trial only: among the others it only moves the
//! median towards leniency, so one diverged trial cannot stop every other.

use super::{Action, Decision, Mode};
use serde::{Deserialize, Serialize};

/// Most epochs a median schedule judges a trial at.
pub const MAX_JUDGED_EPOCHS: u32 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Median {
    /// The first epoch judged.
    pub grace_epochs: u32,
    /// Judge every this many epochs after it.
    pub every: u32,
    /// Judge only against at least this many earlier trials' values at the epoch.
    pub min_trials: u32,
    /// The last epoch a trial trains; no epoch from it on is judged.
    pub max_epochs: u32,
}

impl Median {
    /// What is wrong with these settings, naming the key.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.grace_epochs < 1 {
            return Err(("grace_epochs", "an integer >= 1".into()));
        }
        if self.max_epochs <= self.grace_epochs {
            return Err(("max_epochs", format!("an integer above grace_epochs ({})", self.grace_epochs)));
        }
        if self.every < 1 {
            return Err(("every", "an integer >= 1".into()));
        }
        if (self.max_epochs - self.grace_epochs).div_ceil(self.every) > MAX_JUDGED_EPOCHS {
            return Err((
                "every",
                format!(
                    "at least {}: at most {MAX_JUDGED_EPOCHS} epochs are judged",
                    (self.max_epochs - self.grace_epochs).div_ceil(MAX_JUDGED_EPOCHS)
                ),
            ));
        }
        if self.min_trials < 1 {
            return Err(("min_trials", "an integer >= 1".into()));
        }
        Ok(())
    }

    /// The epochs at which a trial is judged, in order.
    pub fn rungs(&self) -> Vec<u32> {
        (self.grace_epochs..self.max_epochs)
            .step_by(self.every.max(1) as usize)
            .take(MAX_JUDGED_EPOCHS as usize)
            .collect()
    }
}

/// The rule at one epoch. `others` are the values the trials before this one recorded there (None:
/// missing, the worst), `value` is this trial's. With fewer than `min_trials` others it goes on;
/// otherwise it is stopped when the median of the others is strictly better than its value. The
/// median of an even count is the better of the two middle values' worse one, i.e. the element at
/// `(n - 1) / 2` of the values sorted best first. The decision's `kept` counts the values at the
/// epoch, this one included, that are not worse than the median.
pub fn decide(others: &[Option<f64>], value: Option<f64>, mode: Mode, min_trials: u32) -> Decision {
    let reached = others.len() as u32 + 1;
    if (others.len() as u32) < min_trials {
        return Decision { action: Action::Continue, threshold: None, reached, kept: reached };
    }
    let mut sorted = others.to_vec();
    sorted.sort_by(|a, b| super::order(mode, *a, *b));
    let median = sorted[(sorted.len() - 1) / 2];
    let not_worse = |v: &Option<f64>| !mode.better(median, *v);
    let kept = others.iter().filter(|v| not_worse(v)).count() as u32 + u32::from(not_worse(&value));
    let action = if mode.better(median, value) { Action::Stop } else { Action::Continue };
    Decision { action, threshold: median, reached, kept }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trial_worse_than_the_median_of_those_before_it_is_stopped() {
        let others = [Some(0.1), Some(0.2), Some(0.3), Some(0.4)];
        // Sorted best first, the median of four is the second: 0.2.
        let d = decide(&others, Some(0.25), Mode::Min, 3);
        assert_eq!((d.action, d.threshold, d.reached, d.kept), (Action::Stop, Some(0.2), 5, 2));
        assert_eq!(decide(&others, Some(0.2), Mode::Min, 3).action, Action::Continue, "a tie is no worse");
        assert_eq!(decide(&others, Some(0.35), Mode::Max, 3).action, Action::Continue, "0.3 is the median in max mode");
        assert_eq!(decide(&others, Some(0.25), Mode::Min, 5).action, Action::Continue, "too few trials to judge by");
    }

    #[test]
    fn nan_stops_its_own_trial_only() {
        // Three of five earlier trials diverged: the median is a missing value, and nobody who
        // reported a number is worse than it.
        let others = [None, Some(0.9), None, Some(0.95), None];
        assert_eq!(decide(&others, Some(5.0), Mode::Min, 3).action, Action::Continue);
        assert_eq!(decide(&others, Some(5.0), Mode::Max, 3).action, Action::Continue);
        // The diverged trial itself is stopped once a value is better than the median.
        assert_eq!(decide(&[Some(0.9), Some(0.95), None], None, Mode::Min, 3).action, Action::Stop);
    }

    #[test]
    fn settings_name_their_key_and_rungs_follow_them() {
        let m = Median { grace_epochs: 2, every: 3, min_trials: 3, max_epochs: 12 };
        assert_eq!(m.rungs(), vec![2, 5, 8, 11]);
        assert!(m.check().is_ok());
        assert_eq!(Median { grace_epochs: 0, ..m }.check().unwrap_err().0, "grace_epochs");
        assert_eq!(Median { max_epochs: 2, ..m }.check().unwrap_err().0, "max_epochs");
        assert_eq!(Median { every: 0, ..m }.check().unwrap_err().0, "every");
        assert_eq!(Median { min_trials: 0, ..m }.check().unwrap_err().0, "min_trials");
        let long = Median { grace_epochs: 1, every: 1, min_trials: 1, max_epochs: 5000 };
        assert_eq!(long.check().unwrap_err().0, "every", "a bound on the epochs judged");
    }
}
