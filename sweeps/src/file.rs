//! The sweep file: TOML read into typed sections, with errors that name the file and the key.

use crate::error::SpecError;
use crate::param_names;
use crate::sample::Distribution;
use crate::schedule::{Objective, Schedule};
use crate::workloads;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

mod search;

const TOP_LEVEL_KEYS: &[&str] = &[
    "name",
    "description",
    "workload",
    "command",
    "command_bool",
    "data",
    "params",
    "grid",
    "random",
    "resources",
    "retry",
    "search",
    "schedule",
];

/// Longest sweep name. The name becomes a folder under the results and checkpoint roots.
pub const MAX_NAME_LEN: usize = 100;

/// Most GPUs one trial may ask for (`resources.gpus`).
pub const MAX_GPUS_PER_TRIAL: u32 = 64;

/// Whether `name` is a safe sweep name (or trial id): 1 to [`MAX_NAME_LEN`] ASCII letters, digits,
/// '-', '_' or '.', not starting with '.'. Such a name is exactly one normal path component, so
/// joining it to a folder stays inside that folder: it is never empty, `.`, `..` or absolute and
/// holds no separator. The coordinator, the results writer and the agent all check names with it.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && matches!(
            Path::new(name).components().collect::<Vec<_>>()[..],
            [std::path::Component::Normal(c)] if c == name
        )
}

#[derive(Debug, Clone, PartialEq)]
pub struct SweepFile {
    /// Where it was read from; used in every error message.
    pub path: PathBuf,
    pub name: String,
    pub description: Option<String>,
    pub workload: String,
    /// For the `command` workload: the program and its fixed arguments, relative paths resolved
    /// against the sweep file's folder.
    pub command: Option<Vec<String>>,
    /// For the `command` workload: how boolean parameters are passed (`command_bool`).
    pub command_bool: crate::trial::CommandBool,
    pub data: Option<DataRef>,
    pub params: Map<String, Value>,
    /// In file order; the last key varies fastest.
    pub grid: Vec<(String, Vec<Value>)>,
    pub random: Option<RandomSearch>,
    pub resources: Resources,
    pub retry: RetryPolicy,
    /// `[search] metric` and `mode`: what the schedule judges trials by.
    pub objective: Option<Objective>,
    /// `[schedule]`: early stopping, judged by `objective`.
    pub schedule: Option<Schedule>,
    /// `[search] sampler = "tpe"`: the coordinator proposes the trials after the first ones
    /// (`random`, drawn from the same space) from their results.
    pub tpe: Option<crate::tpe::Plan>,
}

/// Keys of `[data]`, besides `path`, that name files or folders. Like `path`, they resolve against
/// the sweep file's folder, so a study runs from any working directory.
pub const DATA_PATH_KEYS: &[&str] = &["root", "train", "test", "train_list", "test_list", "val_list", "text"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataRef {
    pub format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Any other keys of `[data]`, passed to the loader.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub options: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RandomSearch {
    pub samples: u32,
    pub seed: u64,
    pub dists: Vec<(String, Distribution)>,
    /// The conditional parameters of `[search] space` and their conditions.
    pub when: Vec<(String, crate::sample::When)>,
    /// Where the distributions were written, for errors: `random` or `search.space`.
    pub section: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// Whole GPUs per trial; 0 runs on the CPU.
    pub gpus: u32,
    /// Horizontal fusion: how many trials the coordinator may hand out as one fused group.
    #[serde(default, skip_serializing_if = "Fuse::is_off")]
    pub fuse: Fuse,
    /// Packing: the fraction of one GPU a trial needs, in (0, 1); several such trials share a
    /// GPU, each in its own process. None: whole GPUs (`gpus` of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_share: Option<f64>,
    /// Capture each training and evaluation step as a CUDA graph on CUDA devices (the default);
    /// `cuda_graphs = false` trains eagerly. A speed setting: not part of the trial's id.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub cuda_graphs: bool,
}

impl Default for Resources {
    fn default() -> Resources {
        Resources { gpus: 0, fuse: Fuse::Off, gpu_share: None, cuda_graphs: true }
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// `[resources] fuse`: trials that differ only in seed, learning rate, weight decay and label
/// noise (`crate::fusion`) train as one network, G at a time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fuse {
    /// Every trial alone (the default; `fuse = 1` too).
    #[default]
    Off,
    /// Groups of up to this many trials.
    UpTo(u32),
    /// Groups of up to [`Fuse::AUTO_MEMBERS`] on GPUs; alone on the CPU, where a fused network
    /// is no faster than its members one after another.
    Auto,
}

impl Fuse {
    /// Largest group `fuse = "auto"` forms on a GPU.
    pub const AUTO_MEMBERS: u32 = 16;
    /// Largest group a sweep file may ask for.
    pub const MAX_MEMBERS: u32 = 64;

    pub fn is_off(&self) -> bool {
        matches!(self, Fuse::Off | Fuse::UpTo(0 | 1))
    }

    /// Most trials in one group, for trials that ask for `gpus` GPUs each.
    pub fn members(&self, gpus: u32) -> u32 {
        match *self {
            Fuse::Off => 1,
            Fuse::UpTo(n) => n.max(1),
            Fuse::Auto if gpus > 0 => Fuse::AUTO_MEMBERS,
            Fuse::Auto => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts that may fail in the trial's own code (non-zero exit, crash) before it is failed.
    pub max_attempts: u32,
    /// Attempts lost to the infrastructure (agent gone, lease expired) before it is failed.
    pub max_lost: u32,
    pub checkpoint_every_epochs: Option<u32>,
    /// Base of the exponential backoff (full jitter, capped at 5 minutes) before a failed trial
    /// runs again; `retry.backoff = "30s"`.
    pub backoff_ms: u32,
}

/// A failed trial waits up to 1 s, then 2 s, 4 s, … before its next attempt.
pub const DEFAULT_RETRY_BACKOFF_MS: u32 = 1_000;

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            max_lost: 10,
            checkpoint_every_epochs: None,
            backoff_ms: DEFAULT_RETRY_BACKOFF_MS,
        }
    }
}

impl SweepFile {
    pub fn read(path: &Path) -> Result<SweepFile, SpecError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| SpecError::Read { file: path.to_path_buf(), source })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, path, &base)
    }

    /// Parse `text` as if read from `path`; relative paths resolve against `base_dir`.
    pub fn parse(text: &str, path: &Path, base_dir: &Path) -> Result<SweepFile, SpecError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| SpecError::Syntax {
            file: path.to_path_buf(),
            message: e.to_string().trim().to_string(),
        })?;
        Reader { path, base_dir }.sweep(table)
    }
}

/// Walks the TOML table; owns the file path so every error can name it.
struct Reader<'a> {
    path: &'a Path,
    base_dir: &'a Path,
}

impl Reader<'_> {
    /// An error naming `key`, which is shown escaped: a key is the user's text and may hold
    /// anything TOML can quote.
    fn err(&self, key: &str, expected: impl Into<String>) -> SpecError {
        SpecError::invalid(self.path, &crate::text::escape(key), expected)
    }

    fn sweep(&self, mut t: toml::Table) -> Result<SweepFile, SpecError> {
        if let Some(k) = t.keys().find(|k| !TOP_LEVEL_KEYS.contains(&k.as_str())) {
            return Err(self.err(k, format!("one of {} (unknown key)", TOP_LEVEL_KEYS.join(", "))));
        }
        let name = self.required_string(&mut t, "name")?;
        if !is_safe_name(&name) {
            return Err(self.err(
                "name",
                "1-100 letters, digits, '-', '_' or '.', not starting with '.' (it names the results folder)",
            ));
        }
        let description = match t.remove("description") {
            None => None,
            Some(toml::Value::String(s)) => Some(s),
            Some(_) => return Err(self.err("description", "a string")),
        };
        let workload = self.required_string(&mut t, "workload")?;
        let catalogue = workloads::find(&workload);
        if catalogue.is_none() && workload != workloads::COMMAND {
            return Err(self.err("workload", format!("one of {}, got \"{workload}\"", workloads::names().join(", "))));
        }
        let command = self.command(t.remove("command"), &workload)?;
        let command_bool = self.command_bool(t.remove("command_bool"), &workload)?;
        let data = t.remove("data").map(|v| self.data(v)).transpose()?;
        let params = match t.remove("params") {
            None => Map::new(),
            Some(v) => self.table("params", v)?,
        };
        let grid = match t.remove("grid") {
            None => Vec::new(),
            Some(v) => self.grid(v)?,
        };
        let mut random = t.remove("random").map(|v| self.random(v)).transpose()?;
        let (objective, sampled, tpe) = match t.remove("search") {
            None => (None, None, None),
            Some(v) => self.search(v)?,
        };
        if tpe.is_some() {
            if let Some((key, _)) = grid.first() {
                return Err(self.err(
                    &format!("grid.{key}"),
                    "no [grid] with sampler = \"tpe\": TPE proposes every parameter it varies (give it a `choice` in search.space)",
                ));
            }
        }
        if let Some(sampled) = sampled {
            if random.is_some() {
                return Err(
                    self.err("search.sampler", "\"grid\" when the file has a [random] section (draw from one of them)")
                );
            }
            random = Some(sampled);
        }
        let mut schedule = t.remove("schedule").map(|v| self.schedule(v, objective.as_ref(), catalogue)).transpose()?;
        if let Some(crate::schedule::Rule::Pbt(pbt)) = schedule.as_mut().map(|s| &mut s.rule) {
            if tpe.is_some() {
                return Err(self.err(
                    "search.sampler",
                    "\"grid\" or \"random\" under a PBT schedule: PBT makes its own new trials, from the best ones",
                ));
            }
            pbt.seed = random.as_ref().map_or(0, |r| r.seed);
        }
        let resources = t.remove("resources").map(|v| self.resources(v)).transpose()?.unwrap_or_default();
        let retry = t.remove("retry").map(|v| self.retry(v)).transpose()?.unwrap_or_default();
        if schedule.as_ref().is_some_and(|s| s.promotes()) && !resources.fuse.is_off() {
            return Err(self.err(
                "resources.fuse",
                "off under a [schedule] that pauses trials (ASHA with promotion, PBT): each trial stops at its own \
                 rung (with ASHA, set schedule.promote = false to fuse trials and stop them for good)",
            ));
        }

        let file = SweepFile {
            path: self.path.to_path_buf(),
            name,
            description,
            workload,
            command,
            command_bool,
            data,
            params,
            grid,
            random,
            resources,
            retry,
            objective,
            schedule,
            tpe,
        };
        self.check_param_names(&file, catalogue)?;
        Ok(file)
    }

    fn required_string(&self, t: &mut toml::Table, key: &str) -> Result<String, SpecError> {
        match t.remove(key) {
            Some(toml::Value::String(s)) => Ok(s),
            Some(other) => Err(self.err(key, format!("a string, got {}", other.type_str()))),
            None => Err(self.err(key, "a string (missing)")),
        }
    }

    fn command(&self, v: Option<toml::Value>, workload: &str) -> Result<Option<Vec<String>>, SpecError> {
        let is_command = workload == workloads::COMMAND;
        let Some(v) = v else {
            return if is_command {
                Err(self.err("command", "an array of strings such as [\"python3\", \"train.py\"] (missing; workload = \"command\" needs it)"))
            } else {
                Ok(None)
            };
        };
        if !is_command {
            return Err(self.err("command", "no `command` unless workload = \"command\""));
        }
        let items = match v {
            toml::Value::Array(a) if !a.is_empty() => a,
            _ => return Err(self.err("command", "a non-empty array of strings")),
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let toml::Value::String(s) = item else {
                return Err(self.err(&format!("command[{i}]"), "a string"));
            };
            out.push(self.resolve_command_word(i, s));
        }
        Ok(Some(out))
    }

    fn command_bool(&self, v: Option<toml::Value>, workload: &str) -> Result<crate::trial::CommandBool, SpecError> {
        use crate::trial::CommandBool;
        let Some(v) = v else { return Ok(CommandBool::default()) };
        if workload != workloads::COMMAND {
            return Err(self.err("command_bool", "no `command_bool` unless workload = \"command\""));
        }
        let expected = || format!("one of \"{}\"", CommandBool::NAMES.join("\", \""));
        match v {
            toml::Value::String(s) => {
                CommandBool::parse(&s).ok_or_else(|| self.err("command_bool", format!("{}, got \"{s}\"", expected())))
            }
            other => Err(self.err("command_bool", format!("{}, got {}", expected(), other.type_str()))),
        }
    }

    /// The program resolves against the sweep file's folder when it is a relative path (it has a
    /// '/'); a bare name is looked up on PATH. An argument resolves when it names an existing file
    /// in that folder, so `["python3", "train.py"]` works from any working directory.
    fn resolve_command_word(&self, index: usize, word: String) -> String {
        let p = Path::new(&word);
        if p.is_absolute() || word.starts_with('-') {
            return word;
        }
        let candidate = self.base_dir.join(p);
        let looks_like_path = if index == 0 { word.contains('/') } else { candidate.exists() };
        if looks_like_path {
            absolute(&candidate).to_string_lossy().into_owned()
        } else {
            word
        }
    }

    fn data(&self, v: toml::Value) -> Result<DataRef, SpecError> {
        let mut t = self.table("data", v)?;
        let format = match t.remove("format") {
            Some(Value::String(s)) => s,
            _ => return Err(self.err("data.format", "a string naming the on-disk format, e.g. \"cifar10\"")),
        };
        let path = match t.remove("path") {
            None => None,
            Some(Value::String(s)) => Some(self.data_path(s)),
            Some(_) => return Err(self.err("data.path", "a string")),
        };
        for key in DATA_PATH_KEYS {
            match t.get_mut(*key) {
                None => {}
                Some(Value::String(s)) => *s = self.data_path(std::mem::take(s)),
                Some(_) => return Err(self.err(&format!("data.{key}"), "a string (a path)")),
            }
        }
        Ok(DataRef { format, path, options: t })
    }

    /// A data path as written in the sweep file, made absolute against the file's folder.
    fn data_path(&self, s: String) -> String {
        let p = Path::new(&s);
        if p.is_absolute() {
            s
        } else {
            absolute(&self.base_dir.join(p)).to_string_lossy().into_owned()
        }
    }

    fn table(&self, key: &str, v: toml::Value) -> Result<Map<String, Value>, SpecError> {
        self.check_finite(key, &v)?;
        match to_json(v) {
            Value::Object(m) => Ok(m),
            _ => Err(self.err(key, "a table")),
        }
    }

    fn grid(&self, v: toml::Value) -> Result<Vec<(String, Vec<Value>)>, SpecError> {
        let toml::Value::Table(t) = v else {
            return Err(self.err("grid", "a table of arrays"));
        };
        let mut out = Vec::new();
        for (k, v) in t {
            self.check_finite(&format!("grid.{k}"), &v)?;
            match to_json(v) {
                Value::Array(a) if !a.is_empty() => out.push((k, a)),
                _ => return Err(self.err(&format!("grid.{k}"), "a non-empty array of values")),
            }
        }
        Ok(out)
    }

    fn random(&self, v: toml::Value) -> Result<RandomSearch, SpecError> {
        let toml::Value::Table(t) = v else {
            return Err(self.err("random", "a table"));
        };
        let mut samples = None;
        let mut seed = 0u64;
        let mut dists = Vec::new();
        for (k, v) in t {
            let key = format!("random.{k}");
            match k.as_str() {
                "samples" => match v.as_integer() {
                    Some(n) if (1..=1_000_000).contains(&n) => samples = Some(n as u32),
                    _ => return Err(self.err(&key, "an integer from 1 to 1000000")),
                },
                "seed" => match v.as_integer() {
                    Some(n) if n >= 0 => seed = n as u64,
                    _ => return Err(self.err(&key, "a non-negative integer")),
                },
                _ => dists.push((k.clone(), self.distribution(&key, v)?)),
            }
        }
        let samples = samples.ok_or_else(|| self.err("random.samples", "an integer number of samples (missing)"))?;
        if dists.is_empty() {
            return Err(self.err(
                "random",
                "at least one parameter with a distribution, e.g. lr = { log_uniform = [1e-5, 1e-2] }",
            ));
        }
        Ok(RandomSearch { samples, seed, dists, when: Vec::new(), section: "random" })
    }

    fn distribution(&self, key: &str, v: toml::Value) -> Result<Distribution, SpecError> {
        const EXPECTED: &str = "one of { uniform = [lo, hi] }, { log_uniform = [lo, hi] }, { int_uniform = [lo, hi] }, { choice = [a, b, ...] }";
        let toml::Value::Table(t) = v else {
            return Err(self.err(key, EXPECTED));
        };
        if t.len() != 1 {
            return Err(self.err(key, EXPECTED));
        }
        let (kind, arg) = t.into_iter().next().expect("one entry");
        let key = format!("{key}.{kind}");
        let arr = match arg {
            toml::Value::Array(a) => a,
            _ => return Err(self.err(&key, "an array")),
        };
        let pair = || -> Result<(f64, f64), SpecError> {
            let nums: Vec<f64> = arr
                .iter()
                .map(|x| x.as_float().or_else(|| x.as_integer().map(|i| i as f64)))
                .collect::<Option<_>>()
                .ok_or_else(|| self.err(&key, "two numbers [lo, hi]"))?;
            match nums[..] {
                [lo, hi] => Ok((lo, hi)),
                _ => Err(self.err(&key, "two finite numbers [lo, hi] with lo < hi")),
            }
        };
        let dist = match kind.as_str() {
            "uniform" => pair().map(|(a, b)| Distribution::Uniform(a, b))?,
            "log_uniform" => pair().map(|(a, b)| Distribution::LogUniform(a, b))?,
            "int_uniform" => match arr.iter().map(|x| x.as_integer()).collect::<Option<Vec<i64>>>().as_deref() {
                Some(&[lo, hi]) => Distribution::IntUniform(lo, hi),
                _ => return Err(self.err(&key, "two integers [lo, hi] with lo <= hi and hi - lo < 2^63 - 1")),
            },
            "choice" => {
                for (i, option) in arr.iter().enumerate() {
                    self.check_finite(&format!("{key}[{i}]"), option)?;
                }
                Distribution::Choice(arr.into_iter().map(to_json).collect())
            }
            _ => return Err(self.err(&key, EXPECTED)),
        };
        dist.check().map_err(|expected| self.err(&key, expected))?;
        Ok(dist)
    }

    fn resources(&self, v: toml::Value) -> Result<Resources, SpecError> {
        let toml::Value::Table(t) = v else {
            return Err(self.err("resources", "a table"));
        };
        let mut r = Resources::default();
        for (k, v) in t {
            match k.as_str() {
                "gpus" => match v.as_integer() {
                    Some(n) if (0..=MAX_GPUS_PER_TRIAL as i64).contains(&n) => r.gpus = n as u32,
                    _ => return Err(self.err("resources.gpus", format!("an integer from 0 to {MAX_GPUS_PER_TRIAL}"))),
                },
                "fuse" => {
                    r.fuse = match &v {
                        toml::Value::String(s) if s == "auto" => Fuse::Auto,
                        toml::Value::Integer(n) if (1..=Fuse::MAX_MEMBERS as i64).contains(n) => match *n {
                            1 => Fuse::Off,
                            n => Fuse::UpTo(n as u32),
                        },
                        _ => {
                            return Err(self.err(
                                "resources.fuse",
                                format!("\"auto\" or a group size from 1 to {}", Fuse::MAX_MEMBERS),
                            ))
                        }
                    }
                }
                "gpu_share" => match v.as_float().or(v.as_integer().map(|n| n as f64)) {
                    Some(f) if f > 0.0 && f < 1.0 => r.gpu_share = Some(f),
                    Some(1.0) => r.gpu_share = None,
                    _ => return Err(self.err("resources.gpu_share", "a fraction of one GPU in (0, 1]")),
                },
                "cuda_graphs" => match v.as_bool() {
                    Some(b) => r.cuda_graphs = b,
                    None => return Err(self.err("resources.cuda_graphs", "true or false")),
                },
                _ => {
                    return Err(
                        self.err(&format!("resources.{k}"), "one of gpus, fuse, gpu_share, cuda_graphs (unknown key)")
                    )
                }
            }
        }
        if r.gpu_share.is_some() {
            match r.gpus {
                // A share is of one GPU.
                0 | 1 => r.gpus = 1,
                _ => {
                    return Err(
                        self.err("resources.gpu_share", "no share with gpus > 1: a shared trial runs on one GPU")
                    )
                }
            }
        }
        Ok(r)
    }

    fn retry(&self, v: toml::Value) -> Result<RetryPolicy, SpecError> {
        let toml::Value::Table(t) = v else {
            return Err(self.err("retry", "a table"));
        };
        let mut r = RetryPolicy::default();
        for (k, v) in t {
            let key = format!("retry.{k}");
            if k == "backoff" {
                let parsed = v.as_str().map(crate::duration::parse_duration);
                match parsed {
                    Some(Ok(d)) if d.as_millis() <= u32::MAX as u128 => r.backoff_ms = d.as_millis() as u32,
                    _ => return Err(self.err(&key, "a duration such as \"0s\", \"500ms\" or \"30s\"")),
                }
                continue;
            }
            let n = v.as_integer().filter(|n| (1..=1_000_000).contains(n));
            match (k.as_str(), n) {
                ("max_attempts", Some(n)) => r.max_attempts = n as u32,
                ("max_lost", Some(n)) => r.max_lost = n as u32,
                ("checkpoint_every_epochs", Some(n)) => r.checkpoint_every_epochs = Some(n as u32),
                ("max_attempts" | "max_lost" | "checkpoint_every_epochs", None) => {
                    return Err(self.err(&key, "a positive integer"))
                }
                _ => {
                    return Err(
                        self.err(&key, "one of max_attempts, max_lost, checkpoint_every_epochs, backoff (unknown key)")
                    )
                }
            }
        }
        Ok(r)
    }

    /// JSON, and so trial parameters, cannot hold nan or inf: refuse them instead of silently
    /// turning them into `null`. `key` names the value; the error names the exact element.
    fn check_finite(&self, key: &str, v: &toml::Value) -> Result<(), SpecError> {
        match v {
            toml::Value::Float(f) if !f.is_finite() => {
                Err(self.err(key, format!("a finite number, got {f} (nan and inf cannot be parameters)")))
            }
            toml::Value::Array(a) => {
                a.iter().enumerate().try_for_each(|(i, x)| self.check_finite(&format!("{key}[{i}]"), x))
            }
            toml::Value::Table(t) => t.iter().try_for_each(|(k, x)| self.check_finite(&format!("{key}.{k}"), x)),
            _ => Ok(()),
        }
    }

    /// A parameter may be set in one place only, its name must make a clean flag and an
    /// environment variable of its own (`param_names`), and a built-in workload only takes its own
    /// parameters, with the right types.
    fn check_param_names(&self, f: &SweepFile, catalogue: Option<&workloads::Workload>) -> Result<(), SpecError> {
        let mut seen: Vec<(&str, String)> = Vec::new();
        let mut names = param_names::Names::default();
        let fixed = f.params.iter().map(|(k, v)| (k.as_str(), format!("params.{k}"), vec![v.clone()]));
        let grid = f.grid.iter().map(|(k, vs)| (k.as_str(), format!("grid.{k}"), vs.clone()));
        let random = f.random.iter().flat_map(|r| {
            r.dists.iter().map(|(k, d)| {
                let samples = match d {
                    Distribution::Choice(options) => options.clone(),
                    Distribution::IntUniform(lo, hi) => vec![Value::from(*lo), Value::from(*hi)],
                    Distribution::Uniform(lo, _) | Distribution::LogUniform(lo, _) => vec![Value::from(*lo)],
                };
                (k.as_str(), format!("{}.{k}", r.section), samples)
            })
        });
        for (name, key, values) in fixed.chain(grid).chain(random) {
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
                return Err(self
                    .err(&key, format!("each parameter set in one place only; `{name}` is already set by `{first}`")));
            }
            if let Err(problem) = names.add(name) {
                let other = match &problem {
                    param_names::Problem::SameVariable { first, .. } => seen.iter().find(|(n, _)| n == first),
                    param_names::Problem::Invalid { .. } => None,
                };
                let other = other.map(|(_, k)| format!(" (the other is set by `{k}`)")).unwrap_or_default();
                return Err(self.err(&key, format!("{problem}{other}")));
            }
            seen.push((name, key.clone()));
            if let Some(w) = catalogue {
                let Some(p) = w.param(name) else {
                    let known: Vec<_> = w.params.iter().map(|p| p.name).collect();
                    return Err(
                        self.err(&key, format!("a parameter of workload `{}`: one of {}", w.name, known.join(", ")))
                    );
                };
                if let Some(problem) = values.iter().find_map(|v| p.check(v).err()) {
                    return Err(self.err(&key, problem));
                }
            }
        }
        Ok(())
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// TOML values as JSON values. Dates become strings.
pub fn to_json(v: toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.into_iter().map(to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.into_iter().map(|(k, v)| (k, to_json(v))).collect()),
    }
}
