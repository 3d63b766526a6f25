//! Learning-rate schedules, evaluated before every optimizer step from the position alone (epoch,
//! batch), never from history, so a resumed run gets the same rates. Constant, step decay or
//! cosine, each behind an optional linear warmup.

use serde_json::Value;

/// `torch.optim.lr_scheduler.StepLR`'s default decay factor.
pub const DEFAULT_GAMMA: f64 = 0.1;
/// Cosine decays to zero unless the sweep names a floor.
pub const DEFAULT_MIN_LR: f64 = 0.0;
pub const DEFAULT_WARMUP_EPOCHS: f64 = 0.0;

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Constant,
    /// Multiply by `gamma` every `every_epochs` epochs, counted from epoch 0 (warmup included), as
    /// in the ImageNet recipes that decay at fixed epochs 30, 60, 90.
    Step {
        every_epochs: u32,
        gamma: f64,
    },
    /// Half a cosine from the base rate at the end of warmup down to `min_lr` at `total_epochs`.
    Cosine {
        min_lr: f64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    pub schedule: Schedule,
    /// Linear warmup, fractional epochs allowed; 0: none.
    pub warmup_epochs: f64,
    pub total_epochs: u32,
}

const KEYS: &[&str] = &["name", "every_epochs", "gamma", "min_lr", "warmup_epochs"];

impl LrSchedule {
    /// From the sweep's `schedule` parameter: absent (constant), a name (`"constant"`,
    /// `"cosine"`), or a table such as `{ name = "step", every_epochs = 30, gamma = 0.1,
    /// warmup_epochs = 5 }`. Step decay needs `every_epochs`, so it is written as a table.
    pub fn from_params(value: Option<&Value>, total_epochs: u32) -> Result<Self, String> {
        let empty = serde_json::Map::new();
        let (name, table) = match value {
            None => ("constant", &empty),
            Some(Value::String(name)) => (name.as_str(), &empty),
            Some(Value::Object(table)) => match table.get("name") {
                Some(Value::String(name)) => (name.as_str(), table),
                Some(other) => return Err(format!("params.schedule.name: expected a string, got {other}")),
                None => {
                    return Err("params.schedule.name: missing; expected \"constant\", \"step\" or \"cosine\"".into())
                }
            },
            Some(other) => {
                return Err(format!("params.schedule: expected a name or a table {{ name = ..., ... }}, got {other}"))
            }
        };
        if let Some(key) = table.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!("params.schedule.{key}: not a schedule setting; expected one of {}", KEYS.join(", ")));
        }
        let allowed: &[&str] = match name {
            "constant" => &[],
            "step" => &["every_epochs", "gamma"],
            "cosine" => &["min_lr"],
            other => {
                return Err(format!(
                    "params.schedule.name: expected \"constant\", \"step\" or \"cosine\", got \"{other}\""
                ))
            }
        };
        if let Some(key) =
            ["every_epochs", "gamma", "min_lr"].into_iter().find(|k| table.contains_key(*k) && !allowed.contains(k))
        {
            return Err(format!("params.schedule.{key}: does not apply to name = \"{name}\""));
        }
        let number = |key: &str, default: f64, ok: &dyn Fn(f64) -> bool, expected: &str| -> Result<f64, String> {
            match table.get(key) {
                None => Ok(default),
                Some(v) => v
                    .as_f64()
                    .filter(|x| x.is_finite() && ok(*x))
                    .ok_or_else(|| format!("params.schedule.{key}: expected {expected}, got {v}")),
            }
        };
        let schedule = match name {
            "constant" => Schedule::Constant,
            "step" => {
                let every_epochs = match table.get("every_epochs") {
                    None => {
                        return Err("params.schedule.every_epochs: missing; step decay is written \
                                    { name = \"step\", every_epochs = N, gamma = G }"
                            .into())
                    }
                    Some(v) => v
                        .as_u64()
                        .filter(|&n| (1..=u32::MAX as u64).contains(&n))
                        .ok_or_else(|| format!("params.schedule.every_epochs: expected an integer >= 1, got {v}"))?
                        as u32,
                };
                let gamma = number("gamma", DEFAULT_GAMMA, &|x| x > 0.0, "a number > 0")?;
                Schedule::Step { every_epochs, gamma }
            }
            _ => Schedule::Cosine { min_lr: number("min_lr", DEFAULT_MIN_LR, &|x| x >= 0.0, "a number >= 0")? },
        };
        let warmup_epochs = number("warmup_epochs", DEFAULT_WARMUP_EPOCHS, &|x| x >= 0.0, "a number >= 0")?;
        // Cosine decays over what is left after warmup; there must be something left.
        let fits = match schedule {
            Schedule::Cosine { .. } => warmup_epochs < total_epochs as f64,
            _ => warmup_epochs <= total_epochs as f64,
        };
        if !fits {
            return Err(format!(
                "params.schedule.warmup_epochs: expected less than the {total_epochs} training epochs, got {warmup_epochs}"
            ));
        }
        Ok(LrSchedule { schedule, warmup_epochs, total_epochs })
    }

    /// The rate for the step taken at batch `step_in_epoch` of epoch `epoch` (0-based), with
    /// `steps_per_epoch` batches an epoch.
    ///
    /// Warmup multiplies the schedule by (s + 1) / (warmup_epochs * steps_per_epoch) for global
    /// step s, so the first step already moves and the last warmup step reaches the full rate.
    pub fn lr(&self, base_lr: f64, epoch: u32, step_in_epoch: u64, steps_per_epoch: u64) -> f64 {
        let per_epoch = steps_per_epoch.max(1) as f64;
        let global = epoch as f64 * per_epoch + step_in_epoch as f64;
        let position = global / per_epoch; // in epochs, fractional
        let value = match self.schedule {
            Schedule::Constant => base_lr,
            Schedule::Step { every_epochs, gamma } => base_lr * gamma.powi((epoch / every_epochs.max(1)) as i32),
            Schedule::Cosine { min_lr } => {
                let span = (self.total_epochs as f64 - self.warmup_epochs).max(f64::MIN_POSITIVE);
                let progress = ((position - self.warmup_epochs) / span).clamp(0.0, 1.0);
                min_lr + (base_lr - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        };
        let warmup_steps = self.warmup_epochs * per_epoch;
        if warmup_steps > 0.0 {
            value * ((global + 1.0) / warmup_steps).min(1.0)
        } else {
            value
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-12)
    }

    #[test]
    fn parses_names_tables_and_absence() {
        assert_eq!(
            LrSchedule::from_params(None, 10).unwrap(),
            LrSchedule { schedule: Schedule::Constant, warmup_epochs: 0.0, total_epochs: 10 }
        );
        assert_eq!(
            LrSchedule::from_params(Some(&json!("cosine")), 10).unwrap().schedule,
            Schedule::Cosine { min_lr: DEFAULT_MIN_LR }
        );
        let s = LrSchedule::from_params(
            Some(&json!({"name": "step", "every_epochs": 30, "gamma": 0.5, "warmup_epochs": 2.5})),
            90,
        )
        .unwrap();
        assert_eq!(
            s,
            LrSchedule {
                schedule: Schedule::Step { every_epochs: 30, gamma: 0.5 },
                warmup_epochs: 2.5,
                total_epochs: 90
            }
        );
    }

    #[test]
    fn bad_schedules_name_the_key() {
        let cases = [
            (json!("linear"), "params.schedule.name"),
            (json!("step"), "params.schedule.every_epochs: missing"),
            (json!(3), "params.schedule: expected"),
            (json!({"every_epochs": 3}), "params.schedule.name: missing"),
            (json!({"name": "step", "every_epochs": 0}), "params.schedule.every_epochs"),
            (json!({"name": "step", "every_epochs": 2, "gamma": -1}), "params.schedule.gamma"),
            (json!({"name": "cosine", "gamma": 0.1}), "params.schedule.gamma: does not apply"),
            (json!({"name": "cosine", "min_lr": -1}), "params.schedule.min_lr"),
            (json!({"name": "cosine", "warmup_epochs": 10}), "params.schedule.warmup_epochs"),
            (json!({"name": "constant", "warmup_epochs": -1}), "params.schedule.warmup_epochs"),
            (json!({"name": "constant", "decay": 1}), "params.schedule.decay"),
        ];
        for (value, want) in cases {
            let err = LrSchedule::from_params(Some(&value), 10).unwrap_err();
            assert!(err.starts_with(want), "{value}: {err}");
        }
    }

    #[test]
    fn warmup_ramps_linearly_per_step() {
        // 1.5 warmup epochs of 4 steps: 6 steps at 1/6, 2/6, ..., 6/6 of the rate.
        let s = LrSchedule { schedule: Schedule::Constant, warmup_epochs: 1.5, total_epochs: 10 };
        let lrs: Vec<f64> = (0..8).map(|i| s.lr(0.6, (i / 4) as u32, i % 4, 4)).collect();
        for (i, lr) in lrs.iter().enumerate().take(6) {
            assert!(close(*lr, 0.1 * (i + 1) as f64), "step {i}: {lrs:?}");
        }
        assert_eq!(&lrs[6..], &[0.6, 0.6]);
        // Fewer warmup steps than one: no ramp at all.
        let short = LrSchedule { warmup_epochs: 0.1, ..s };
        assert_eq!(short.lr(0.6, 0, 0, 4), 0.6);
    }

    #[test]
    fn step_decays_exactly_at_the_boundaries() {
        let s = LrSchedule {
            schedule: Schedule::Step { every_epochs: 3, gamma: 0.1 },
            warmup_epochs: 0.0,
            total_epochs: 9,
        };
        assert_eq!(s.lr(1.0, 0, 0, 5), 1.0);
        assert_eq!(s.lr(1.0, 2, 4, 5), 1.0);
        assert!(close(s.lr(1.0, 3, 0, 5), 0.1));
        assert!(close(s.lr(1.0, 5, 4, 5), 0.1));
        assert!(close(s.lr(1.0, 6, 0, 5), 0.01));
    }

    #[test]
    fn cosine_starts_at_base_after_warmup_and_ends_at_min() {
        let s = LrSchedule { schedule: Schedule::Cosine { min_lr: 0.01 }, warmup_epochs: 2.0, total_epochs: 12 };
        // End of warmup: the full base rate; a warmup step before it: a fraction of it.
        assert_eq!(s.lr(1.0, 1, 9, 10), 1.0);
        assert!(close(s.lr(1.0, 1, 4, 10), 0.75));
        assert_eq!(s.lr(1.0, 2, 0, 10), 1.0);
        // Halfway through the decay (epoch 7 of 2..12): the midpoint.
        assert!(close(s.lr(1.0, 7, 0, 10), 0.505));
        assert!(close(s.lr(1.0, 12, 0, 10), 0.01));
        // Strictly decreasing over the decay.
        let lrs: Vec<f64> = (20..120).map(|i| s.lr(1.0, i / 10, (i % 10) as u64, 10)).collect();
        assert!(lrs.windows(2).all(|w| w[1] < w[0]), "{lrs:?}");
        let none = LrSchedule { warmup_epochs: 0.0, ..s.clone() };
        assert_eq!(none.lr(1.0, 0, 0, 10), 1.0);
    }
}
