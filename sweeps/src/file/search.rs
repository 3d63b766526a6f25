//! The `[search]` and `[schedule]` sections: how configurations are drawn, what trials are judged
//! by, and when they are stopped early.

use super::{RandomSearch, Reader};
use crate::error::SpecError;
use crate::sample::{Distribution, When};
use crate::schedule::{Asha, Kind, Median, Mode, Objective, Pbt, Rule, Schedule};
use crate::workloads::{self, Workload};

const SEARCH_KEYS: &[&str] = &["sampler", "trials", "seed", "space", "metric", "mode"];
const ASHA_KEYS: &[&str] = &["min_epochs", "max_epochs", "reduction_factor", "brackets", "promote"];
const MEDIAN_KEYS: &[&str] = &["grace_epochs", "every", "min_trials", "max_epochs"];
const PBT_KEYS: &[&str] = &["interval", "max_epochs", "quantile", "resample_probability", "perturb"];
const SAMPLERS: &[&str] = &["grid", "random", "tpe"];

impl Reader<'_> {
    /// `[search]`: its objective, the random draws it asks for (`sampler = "random"`, and the first
    /// trials of `sampler = "tpe"`), and TPE's plan.
    #[allow(clippy::type_complexity)]
    pub(super) fn search(
        &self,
        v: toml::Value,
    ) -> Result<(Option<Objective>, Option<RandomSearch>, Option<crate::tpe::Plan>), SpecError> {
        let toml::Value::Table(mut t) = v else {
            return Err(self.err("search", "a table"));
        };
        if let Some(k) = t.keys().find(|k| !SEARCH_KEYS.contains(&k.as_str())) {
            return Err(self.err(&format!("search.{k}"), format!("one of {} (unknown key)", SEARCH_KEYS.join(", "))));
        }
        let metric = match t.remove("metric") {
            None => None,
            Some(toml::Value::String(m)) if crate::report::is_valid_metric_name(&m) => Some(m),
            Some(_) => {
                return Err(self.err("search.metric", "the name of a metric the trials report, e.g. \"test_error\""))
            }
        };
        let mode = match t.remove("mode") {
            None => None,
            Some(toml::Value::String(m)) => Some(
                Mode::parse(&m).ok_or_else(|| self.err("search.mode", format!("\"min\" or \"max\", got \"{m}\"")))?,
            ),
            Some(_) => return Err(self.err("search.mode", "\"min\" or \"max\"")),
        };
        let objective = match (metric, mode) {
            (Some(metric), Some(mode)) => Some(Objective { metric, mode }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(self.err(
                    "search.mode",
                    "\"min\" or \"max\" (missing; whether smaller or larger values of search.metric are better)",
                ))
            }
            (None, Some(_)) => return Err(self.err("search.metric", "the metric that `mode` applies to (missing)")),
        };
        let sampler = match t.remove("sampler") {
            None => "grid".to_string(),
            Some(toml::Value::String(s)) if SAMPLERS.contains(&s.as_str()) => s,
            Some(other) => {
                let got = other.as_str().map_or_else(|| other.type_str().to_string(), |s| format!("\"{s}\""));
                return Err(self.err("search.sampler", format!("one of \"{}\", got {got}", SAMPLERS.join("\", \""))));
            }
        };
        if sampler == "grid" {
            if let Some(k) = ["trials", "seed", "space"].into_iter().find(|k| t.contains_key(*k)) {
                return Err(
                    self.err(&format!("search.{k}"), "no such key with sampler = \"grid\" (set sampler = \"random\")")
                );
            }
            return Ok((objective, None, None));
        }
        let samples = match t.remove("trials") {
            Some(v) => match v.as_integer() {
                Some(n) if (1..=1_000_000).contains(&n) => n as u32,
                _ => return Err(self.err("search.trials", "an integer from 1 to 1000000")),
            },
            None => {
                return Err(self.err(
                    "search.trials",
                    format!("how many configurations to draw (missing; sampler = \"{sampler}\" needs it)"),
                ))
            }
        };
        let seed = match t.remove("seed") {
            None => 0,
            Some(v) => match v.as_integer() {
                Some(n) if n >= 0 => n as u64,
                _ => return Err(self.err("search.seed", "a non-negative integer")),
            },
        };
        let space = match t.remove("space") {
            Some(toml::Value::Table(space)) if !space.is_empty() => space,
            _ => {
                return Err(self.err(
                    "search.space",
                    "a table of parameters with distributions, e.g. { lr = { log_uniform = [1e-5, 1e-2] } }",
                ))
            }
        };
        let mut dists = Vec::with_capacity(space.len());
        let mut when = Vec::new();
        for (k, mut v) in space {
            let key = format!("search.space.{k}");
            if let Some(condition) = v.as_table_mut().and_then(|t| t.remove("when")) {
                when.push((k.clone(), self.when(&format!("{key}.when"), condition, &dists)?));
            }
            dists.push((k, self.distribution(&key, v)?));
        }
        if sampler != "tpe" {
            return Ok((objective, Some(RandomSearch { samples, seed, dists, when, section: "search.space" }), None));
        }
        let Some(objective) = objective else {
            return Err(self.err(
                "search.metric",
                "the metric TPE learns from, with `mode` (missing; e.g. metric = \"val_error\", mode = \"min\")",
            ));
        };
        if samples > crate::tpe::MAX_TRIALS {
            return Err(self.err(
                "search.trials",
                format!(
                    "at most {} with sampler = \"tpe\" (each proposal learns from every trial before it)",
                    crate::tpe::MAX_TRIALS
                ),
            ));
        }
        let distinct = dists.iter().try_fold(1u64, |n, (_, d)| {
            let size = match d {
                Distribution::Choice(options) => options.len() as u64,
                Distribution::IntUniform(lo, hi) => hi.abs_diff(*lo).saturating_add(1),
                Distribution::Uniform(..) | Distribution::LogUniform(..) => return None,
            };
            Some(n.saturating_mul(size))
        });
        if let Some(distinct) = distinct.filter(|d| *d < u64::from(samples)) {
            return Err(self.err(
                "search.trials",
                format!(
                    "at most {distinct}, the configurations search.space holds (or a grid of them: sampler = \"grid\")"
                ),
            ));
        }
        // The first trials are random draws from the space, made here like any random search;
        // the coordinator proposes the rest.
        let startup = samples.min(crate::tpe::STARTUP_TRIALS);
        let plan = crate::tpe::Plan {
            trials: samples,
            seed,
            space: dists.clone(),
            when: when.clone(),
            objective: objective.clone(),
        };
        Ok((
            Some(objective),
            Some(RandomSearch { samples: startup, seed, dists, when, section: "search.space" }),
            Some(plan),
        ))
    }

    /// A space parameter's `when = { name = value or [values] }`: every name is a `choice`
    /// parameter listed before it in the space, every value one of its choices.
    fn when(&self, key: &str, v: toml::Value, earlier: &[(String, Distribution)]) -> Result<When, SpecError> {
        const EXPECTED: &str = "a table of earlier `choice` parameters and their values, e.g. { optimizer = \"sgd\" }";
        let toml::Value::Table(t) = v else { return Err(self.err(key, EXPECTED)) };
        if t.is_empty() {
            return Err(self.err(key, EXPECTED));
        }
        let mut conditions = Vec::new();
        for (name, values) in t {
            let full = format!("{key}.{name}");
            let Some(Distribution::Choice(options)) = earlier.iter().find(|(k, _)| *k == name).map(|(_, d)| d) else {
                return Err(self.err(&full, "a `choice` parameter listed before this one in search.space"));
            };
            let values: Vec<serde_json::Value> = match values {
                toml::Value::Array(a) => a.into_iter().map(super::to_json).collect(),
                one => vec![super::to_json(one)],
            };
            if let Some(v) = values.iter().find(|v| !options.contains(v)) {
                return Err(self.err(&full, format!("one of the choices of `{name}`, got {v}")));
            }
            conditions.push((name, values));
        }
        Ok(When(conditions))
    }

    /// `[schedule]`, checked against the objective and, for a built-in workload, the metrics it
    /// reports.
    pub(super) fn schedule(
        &self,
        v: toml::Value,
        objective: Option<&Objective>,
        catalogue: Option<&Workload>,
    ) -> Result<Schedule, SpecError> {
        let toml::Value::Table(mut t) = v else {
            return Err(self.err("schedule", "a table"));
        };
        let kind = match t.remove("type") {
            Some(toml::Value::String(s)) if Kind::parse(&s).is_some() => Kind::parse(&s).expect("checked"),
            other => {
                let got = other.map_or("nothing".to_string(), |v| v.to_string());
                return Err(self.err("schedule.type", format!("one of \"{}\", got {got}", Kind::NAMES.join("\", \""))));
            }
        };
        let keys = match kind {
            Kind::Median => MEDIAN_KEYS,
            Kind::Pbt => PBT_KEYS,
            Kind::Asha | Kind::Hyperband => ASHA_KEYS,
        };
        if let Some(k) = t.keys().find(|k| !keys.contains(&k.as_str())) {
            return Err(self.err(
                &format!("schedule.{k}"),
                format!("one of {} with type = \"{}\" (unknown key)", keys.join(", "), kind.as_str()),
            ));
        }
        let promote = match t.remove("promote") {
            None => true,
            Some(toml::Value::Boolean(b)) => b,
            Some(_) => {
                return Err(self.err(
                    "schedule.promote",
                    "true (pause trials outside the cut and promote them later) or false (stop them for good)",
                ))
            }
        };
        let has_brackets = t.contains_key("brackets");
        let perturb = t.remove("perturb");
        let mut fraction = |key: &str, default: f64| -> Result<f64, SpecError> {
            match t.remove(key) {
                None => Ok(default),
                Some(v) => match v {
                    toml::Value::Float(x) => Ok(x),
                    toml::Value::Integer(n) => Ok(n as f64),
                    _ => Err(self.err(&format!("schedule.{key}"), "a number")),
                },
            }
        };
        let quantile = fraction("quantile", 0.25)?;
        let resample_probability = fraction("resample_probability", 0.25)?;
        let mut int = |key: &str, default: Option<u32>| -> Result<u32, SpecError> {
            let full = format!("schedule.{key}");
            match t.remove(key) {
                Some(v) => match v.as_integer() {
                    Some(n) if (0..=u32::MAX as i64).contains(&n) => Ok(n as u32),
                    _ => Err(self.err(&full, "a non-negative integer")),
                },
                None => default.ok_or_else(|| self.err(&full, "the last epoch a trial trains (missing)")),
            }
        };
        let rule = if kind == Kind::Pbt {
            Rule::Pbt(Pbt {
                interval: int("interval", Some(1))?,
                max_epochs: int("max_epochs", None)?,
                quantile,
                resample_probability,
                perturb: self.perturb(perturb)?,
                // The sweep file sets it from [search] seed.
                seed: 0,
            })
        } else if kind == Kind::Median {
            Rule::Median(Median {
                grace_epochs: int("grace_epochs", Some(1))?,
                every: int("every", Some(1))?,
                min_trials: int("min_trials", Some(3))?,
                max_epochs: int("max_epochs", None)?,
            })
        } else {
            let brackets = if has_brackets { Some(int("brackets", None)?) } else { None };
            let mut asha = Asha {
                min_epochs: int("min_epochs", Some(1))?,
                max_epochs: int("max_epochs", None)?,
                reduction_factor: int("reduction_factor", Some(3))?,
                brackets: brackets.unwrap_or(1),
                promote,
            };
            if brackets.is_none() && kind == Kind::Hyperband {
                asha.brackets = asha.hyperband_brackets();
            }
            Rule::Asha(asha)
        };
        let Some(objective) = objective.cloned() else {
            return Err(self.err(
                "search.metric",
                "the metric the schedule judges trials by, with `mode` (missing; e.g. [search] metric = \"test_error\", mode = \"min\")",
            ));
        };
        if let Some(w) = catalogue {
            self.check_reported(w, &objective.metric)?;
        }
        let schedule = Schedule { objective, kind, rule };
        schedule.check().map_err(|(key, expected)| self.err(&format!("schedule.{key}"), expected))?;
        Ok(schedule)
    }

    /// PBT's `perturb`: a table of parameters and the distributions they are drawn from.
    fn perturb(&self, v: Option<toml::Value>) -> Result<Vec<(String, Distribution)>, SpecError> {
        let Some(toml::Value::Table(t)) = v.filter(|v| v.as_table().is_some_and(|t| !t.is_empty())) else {
            return Err(self.err(
                "schedule.perturb",
                "a table of the parameters PBT perturbs, with the distribution each is drawn from and kept inside, \
                 e.g. { \"optimizer.lr\" = { log_uniform = [1e-4, 0.1] } } (missing: PBT needs at least one)",
            ));
        };
        t.into_iter().map(|(k, v)| Ok((k.clone(), self.distribution(&format!("schedule.perturb.{k}"), v)?))).collect()
    }

    /// A built-in workload must report the metric, and must train in epochs.
    fn check_reported(&self, w: &Workload, metric: &str) -> Result<(), SpecError> {
        if w.param("epochs").is_none() {
            return Err(self.err("schedule", format!("a workload that trains in epochs; `{}` does not", w.name)));
        }
        if !workloads::reports(w, metric) {
            return Err(self.err(
                "search.metric",
                format!(
                    "a metric workload `{}` reports: one of {}, got \"{}\"",
                    w.name,
                    w.metrics.join(", "),
                    crate::text::escape(metric)
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::schedule::Kind;
    use crate::SweepFile;

    fn schedule(section: &str) -> Result<crate::schedule::Schedule, String> {
        let text = format!(
            "name = \"s\"\nworkload = \"command\"\ncommand = [\"train\"]\n[search]\nmetric = \"loss\"\nmode = \"min\"\n[schedule]\n{section}"
        );
        SweepFile::parse(&text, "s.toml".as_ref(), ".".as_ref())
            .map(|f| f.schedule.expect("a schedule"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn asha_promotes_by_default_and_hyperband_has_a_bracket_per_rung() {
        let asha = schedule("type = \"asha\"\nmax_epochs = 81\n").unwrap();
        assert!(asha.promotes(), "pausing and promoting is the default");
        assert_eq!((asha.kind, asha.asha().unwrap().brackets), (Kind::Asha, 1));
        let stop_only = schedule("type = \"asha\"\nmax_epochs = 81\npromote = false\n").unwrap();
        assert!(!stop_only.promotes());
        let hyperband = schedule("type = \"hyperband\"\nmax_epochs = 81\n").unwrap();
        assert_eq!((hyperband.kind, hyperband.asha().unwrap().brackets), (Kind::Hyperband, 4), "rungs 1, 3, 9, 27");
        assert!(hyperband.describe().starts_with("schedule: hyperband"), "{}", hyperband.describe());
        let two = schedule("type = \"hyperband\"\nmax_epochs = 81\nbrackets = 2\n").unwrap();
        assert_eq!(two.asha().unwrap().brackets, 2, "brackets set by hand are kept");
        let err = schedule("type = \"sha\"\nmax_epochs = 81\n").unwrap_err();
        assert!(err.contains("schedule.type") && err.contains("\"asha\", \"hyperband\", \"median\", \"pbt\""), "{err}");
    }

    #[test]
    fn pbt_needs_parameters_to_perturb_and_takes_the_search_seed() {
        let pbt = schedule(
            "type = \"pbt\"\ninterval = 4\nmax_epochs = 20\nperturb = { lr = { log_uniform = [1e-4, 0.1] } }\n",
        )
        .unwrap();
        let p = pbt.pbt().unwrap();
        assert_eq!((p.interval, p.quantile, p.resample_probability, p.perturb.len()), (4, 0.25, 0.25, 1));
        assert!(pbt.promotes(), "every trial pauses at each interval");
        assert!(pbt.describe().starts_with("schedule: pbt on `loss`"), "{}", pbt.describe());
        for (section, key) in [
            ("type = \"pbt\"\nmax_epochs = 20\n", "schedule.perturb"),
            ("type = \"pbt\"\nmax_epochs = 20\nperturb = {}\n", "schedule.perturb"),
            (
                "type = \"pbt\"\nmax_epochs = 20\nquantile = 0.7\nperturb = { lr = { uniform = [0, 1] } }\n",
                "schedule.quantile",
            ),
            (
                "type = \"pbt\"\nmax_epochs = 20\nquantile = \"a\"\nperturb = { lr = { uniform = [0, 1] } }\n",
                "schedule.quantile",
            ),
            (
                "type = \"pbt\"\nmax_epochs = 20\nperturb = { lr = { uniform = [1, 0] } }\n",
                "schedule.perturb.lr.uniform",
            ),
            (
                "type = \"pbt\"\nmax_epochs = 20\nmin_epochs = 2\nperturb = { lr = { uniform = [0, 1] } }\n",
                "schedule.min_epochs",
            ),
        ] {
            let err = schedule(section).unwrap_err();
            assert!(err.contains(&format!("key `{key}`")), "{section}: {err}");
        }
        let text = "name = \"s\"\nworkload = \"command\"\ncommand = [\"train\"]\n[search]\nsampler = \"random\"\ntrials = 4\nseed = 9\n\
                    metric = \"loss\"\nmode = \"min\"\nspace = { lr = { log_uniform = [1e-4, 0.1] } }\n\
                    [schedule]\ntype = \"pbt\"\nmax_epochs = 20\nperturb = { lr = { log_uniform = [1e-4, 0.1] } }\n";
        let file = SweepFile::parse(text, "s.toml".as_ref(), ".".as_ref()).unwrap();
        assert_eq!(file.schedule.unwrap().pbt().unwrap().seed, 9);
        let tpe = text.replace("sampler = \"random\"\ntrials = 4", "sampler = \"tpe\"\ntrials = 40");
        let err = SweepFile::parse(&tpe, "s.toml".as_ref(), ".".as_ref()).unwrap_err().to_string();
        assert!(err.contains("key `search.sampler`") && err.contains("PBT makes its own"), "{err}");
        let unknown = text.replace("perturb = { lr", "perturb = { momentum");
        let file = SweepFile::parse(&unknown, "s.toml".as_ref(), ".".as_ref()).unwrap();
        let err = crate::expand(&file).unwrap_err().to_string();
        assert!(err.contains("key `schedule.perturb.momentum`") && err.contains("has none"), "{err}");
    }

    #[test]
    fn tpe_draws_its_first_trials_and_plans_the_rest() {
        let parse = |text: &str| {
            let text = format!("name = \"s\"\nworkload = \"command\"\ncommand = [\"train\"]\n{text}");
            SweepFile::parse(&text, "s.toml".as_ref(), ".".as_ref()).map_err(|e| e.to_string())
        };
        let search = "[search]\nsampler = \"tpe\"\ntrials = 40\nmetric = \"loss\"\nmode = \"min\"\nspace = { x = { uniform = [0.0, 1.0] } }\n";
        let file = parse(search).unwrap();
        let plan = file.tpe.as_ref().unwrap();
        assert_eq!((plan.trials, plan.space.len()), (40, 1));
        assert_eq!(file.random.as_ref().unwrap().samples, crate::tpe::STARTUP_TRIALS, "the first ten are random");
        assert_eq!(crate::expand(&file).unwrap().len(), 10);
        for (text, key) in [
            (search.replace("trials = 40\n", ""), "search.trials"),
            (search.replace("metric = \"loss\"\nmode = \"min\"\n", ""), "search.metric"),
            (format!("{search}[grid]\nseed = [1, 2]\n"), "grid.seed"),
            (search.replace("trials = 40", "trials = 10001"), "search.trials"),
            (search.replace("x = { uniform = [0.0, 1.0] }", "x = { int_uniform = [1, 6] }"), "search.trials"),
        ] {
            let err = parse(&text).unwrap_err();
            assert!(err.contains(&format!("`{key}`")), "{text}: {err}");
        }
    }

    #[test]
    fn a_conditional_parameter_is_drawn_only_when_its_condition_holds() {
        let parse = |space: &str| {
            let text = format!(
                "name = \"s\"\nworkload = \"command\"\ncommand = [\"train\"]\n[search]\nsampler = \"random\"\ntrials = 40\nspace = {{ {space} }}\n"
            );
            SweepFile::parse(&text, "s.toml".as_ref(), ".".as_ref()).map_err(|e| e.to_string())
        };
        let file = parse(
            "opt = { choice = [\"sgd\", \"adam\"] }, momentum = { uniform = [0.0, 0.99], when = { opt = \"sgd\" } }",
        )
        .unwrap();
        let trials = crate::expand(&file).unwrap();
        assert!(trials.iter().any(|t| t.params["opt"] == "adam") && trials.iter().any(|t| t.params["opt"] == "sgd"));
        for t in &trials {
            assert_eq!(t.params.contains_key("momentum"), t.params["opt"] == "sgd", "{:?}", t.params);
        }
        for (space, key, says) in [
            (
                "momentum = { uniform = [0.0, 0.99], when = { opt = \"sgd\" } }, opt = { choice = [\"sgd\"] }",
                "search.space.momentum.when.opt",
                "listed before",
            ),
            (
                "lr = { uniform = [0.0, 1.0] }, m = { uniform = [0.0, 0.99], when = { lr = 0.5 } }",
                "search.space.m.when.lr",
                "`choice`",
            ),
            (
                "opt = { choice = [\"sgd\"] }, m = { uniform = [0.0, 0.99], when = { opt = \"sdg\" } }",
                "search.space.m.when.opt",
                "one of the choices",
            ),
            (
                "opt = { choice = [\"sgd\"] }, m = { uniform = [0.0, 0.99], when = {} }",
                "search.space.m.when",
                "a table",
            ),
        ] {
            let err = parse(space).unwrap_err();
            assert!(err.contains(&format!("`{key}`")) && err.contains(says), "{space}: {err}");
        }
    }

    #[test]
    fn median_stopping_has_its_own_keys() {
        let median = schedule("type = \"median\"\nmax_epochs = 20\ngrace_epochs = 5\n").unwrap();
        assert_eq!(
            median.rule,
            crate::schedule::Rule::Median(crate::schedule::Median {
                grace_epochs: 5,
                every: 1,
                min_trials: 3,
                max_epochs: 20
            })
        );
        assert!(!median.promotes(), "median stopping never pauses");
        for (section, key) in [
            ("type = \"median\"\nmax_epochs = 20\nreduction_factor = 3\n", "schedule.reduction_factor"),
            ("type = \"asha\"\nmax_epochs = 20\nmin_trials = 3\n", "schedule.min_trials"),
            ("type = \"median\"\nmax_epochs = 20\ngrace_epochs = 20\n", "schedule.max_epochs"),
            ("type = \"median\"\nmax_epochs = 20\nmin_trials = 0\n", "schedule.min_trials"),
        ] {
            let err = schedule(section).unwrap_err();
            assert!(err.contains(&format!("`{key}`")), "{section}: {err}");
        }
    }
}
