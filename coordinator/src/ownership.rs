//! Who may change a sweep, and what a resubmission may change. A sweep belongs to the user token
//! that submitted it: only that name or an admin may cancel or resubmit it. A resubmission may add
//! trials; changing the retry policy or the trials' definition needs `force`. Plain functions of
//! what is stored and what was sent, tested without a network or SQLite.

use crate::error::{Error, Result};
use crate::lifecycle::Policy;
use serde_json::Value;
use sweep_spec::TrialSpec;

/// The token name that may manage every sweep (`admin:TOKEN` in `--user-tokens`).
pub const ADMIN: &str = "admin";

/// Who makes a call: the name of the token it presented, or nobody in particular when the
/// coordinator runs without token files (then everything is allowed, as it always was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    name: Option<String>,
}

impl Caller {
    /// Authentication is off.
    pub fn open() -> Caller {
        Caller { name: None }
    }

    pub fn named(name: &str) -> Caller {
        Caller { name: Some(name.to_string()) }
    }

    /// The token's name; recorded as the owner of the sweeps it submits.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// May manage every sweep: an admin token, or anyone when authentication is off.
    pub fn is_admin(&self) -> bool {
        self.name.as_deref().is_none_or(|n| n == ADMIN)
    }

    /// May cancel or resubmit a sweep owned by `owner`. Sweeps without a recorded owner (submitted
    /// without token files, or before owners were recorded) stay open to every user.
    pub fn may_manage(&self, owner: Option<&str>) -> bool {
        self.is_admin() || owner.is_none() || owner == self.name()
    }

    /// Refuses with PERMISSION_DENIED, naming the owner, unless this caller may `action` the sweep.
    pub fn check_may(&self, action: &str, sweep: &str, owner: Option<&str>) -> Result<()> {
        if self.may_manage(owner) {
            return Ok(());
        }
        let owner = owner.unwrap_or_default();
        Err(Error::PermissionDenied(format!(
            "sweep `{sweep}` was submitted by `{owner}`: only `{owner}` or an `{ADMIN}` token may {action} it"
        )))
    }
}

/// What a resubmission may not change silently: the retry policy and the trials' definition
/// (workload, command, data, resources, checkpoint cadence; everything of a trial but its
/// parameters), as stored or as submitted.
#[derive(Debug, Clone, PartialEq)]
pub struct Terms {
    pub policy: Policy,
    /// The distinct definitions of the sweep's trials, in order; one for a sweep file.
    pub definitions: Vec<Value>,
    /// The early-stopping schedule as JSON; None: none.
    pub schedule: Option<String>,
}

/// A trial's definition: its spec without what tells trials of one sweep apart.
pub fn definition(spec: &TrialSpec) -> Value {
    let mut value = serde_json::to_value(spec).expect("trial specs serialize");
    if let Value::Object(map) = &mut value {
        for key in ["id", "sweep", "index", "params"] {
            map.remove(key);
        }
    }
    value
}

/// The distinct definitions of `trials`, in order of first appearance.
pub fn definitions(trials: &[TrialSpec]) -> Vec<Value> {
    let mut out = Definitions::default();
    out.extend(trials);
    out.into_vec()
}

/// The distinct definitions of a submission's trials, gathered as its parts arrive: each is
/// compared by its text, so a million trials cost a million lookups rather than a million scans.
#[derive(Default)]
pub struct Definitions {
    seen: std::collections::HashSet<String>,
    list: Vec<Value>,
}

impl Definitions {
    pub fn extend<'a>(&mut self, trials: impl IntoIterator<Item = &'a TrialSpec>) {
        for t in trials {
            let d = definition(t);
            if self.seen.insert(d.to_string()) {
                self.list.push(d);
            }
        }
    }

    /// In order of first appearance.
    pub fn into_vec(self) -> Vec<Value> {
        self.list
    }
}

/// How much of a value a difference quotes.
const SHOWN_CHARS: usize = 120;

/// The settings `submitted` changes, as (key, stored value, submitted value), keys as in the sweep
/// file (`retry.max_attempts`, `resources.gpus`, `command`, …). A submission without trials says
/// nothing about definitions, nor does a stored sweep without any.
pub fn differences(stored: &Terms, submitted: &Terms) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let policy = |p: &Policy| {
        [
            ("retry.max_attempts", p.max_attempts.to_string()),
            ("retry.max_lost", p.max_lost.to_string()),
            ("retry.backoff", format!("{}ms", p.retry_backoff_ms)),
        ]
    };
    for ((key, was), (_, now)) in policy(&stored.policy).into_iter().zip(policy(&submitted.policy)) {
        if was != now {
            out.push((key.to_string(), was, now));
        }
    }
    if !same_schedule(&stored.schedule, &submitted.schedule) {
        let shown = |s: &Option<String>| s.clone().unwrap_or_else(|| "none".to_string());
        out.push(("schedule".to_string(), shown(&stored.schedule), shown(&submitted.schedule)));
    }
    if stored.definitions.is_empty() || submitted.definitions.is_empty() || stored.definitions == submitted.definitions
    {
        return out;
    }
    match (&stored.definitions[..], &submitted.definitions[..]) {
        ([was], [now]) => {
            let (was, now) = (settings(was), settings(now));
            let keys: std::collections::BTreeSet<&String> = was.keys().chain(now.keys()).collect();
            for key in keys {
                let (a, b) = (was.get(key), now.get(key));
                if a != b {
                    out.push((key.clone(), shown(a), shown(b)));
                }
            }
        }
        (was, now) => out.push((
            "trial definitions".to_string(),
            format!("{} kinds", was.len()),
            format!("{} kinds, not the same", now.len()),
        )),
    }
    out
}

/// Refuses a resubmission of sweep `name` (stored with `owner` and `stored` terms) that the caller
/// may not make: someone else's sweep (PERMISSION_DENIED), or one that changes its terms without
/// `force` (FAILED_PRECONDITION naming every difference).
pub fn check_resubmission(
    name: &str,
    owner: Option<&str>,
    stored: &Terms,
    submitted: &Terms,
    caller: &Caller,
    force: bool,
) -> Result<()> {
    caller.check_may("resubmit", name, owner)?;
    let diffs = differences(stored, submitted);
    if diffs.is_empty() || force {
        return Ok(());
    }
    let listed: Vec<String> = diffs
        .iter()
        .map(|(key, was, now)| format!("sweep `{name}` exists with {key} = {was}; this submission has {now}"))
        .collect();
    Err(Error::Conflict(format!(
        "{}. Pass --force to replace its retry policy, schedule and definition (stored trials and results are kept), or submit under another name",
        listed.join("; ")
    )))
}

/// A definition as `key → value`, with the sweep file's names: `resources.*` one by one, the
/// checkpoint cadence under `retry.`.
fn settings(definition: &Value) -> std::collections::BTreeMap<String, Value> {
    let mut out = std::collections::BTreeMap::new();
    let Value::Object(map) = definition else { return out };
    for (key, value) in map {
        match (key.as_str(), value) {
            ("resources", Value::Object(resources)) => {
                for (k, v) in resources {
                    out.insert(format!("resources.{k}"), v.clone());
                }
            }
            ("checkpoint_every_epochs", v) => {
                out.insert("retry.checkpoint_every_epochs".to_string(), v.clone());
            }
            (k, v) => {
                out.insert(k.to_string(), v.clone());
            }
        }
    }
    out
}

fn shown(value: Option<&Value>) -> String {
    let Some(value) = value else { return "(not set)".to_string() };
    let text = value.to_string();
    if text.chars().count() <= SHOWN_CHARS {
        return text;
    }
    let cut: String = text.chars().take(SHOWN_CHARS).collect();
    format!("{cut}…")
}

/// Whether two stored schedules say the same, read as schedules: one stored before a field was
/// added (`kind`, `promote`) equals the same schedule written today.
fn same_schedule(a: &Option<String>, b: &Option<String>) -> bool {
    let read = |s: &Option<String>| s.as_deref().map(serde_json::from_str::<sweep_spec::schedule::Schedule>);
    match (read(a), read(b)) {
        (Some(Ok(a)), Some(Ok(b))) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn terms(extra: &str) -> Terms {
        let text =
            format!("name = \"s\"\nworkload = \"command\"\ncommand = [\"train\"]\n[grid]\nwidth = [1, 2]\n{extra}");
        let file = sweep_spec::SweepFile::parse(&text, Path::new("s.toml"), Path::new(".")).unwrap();
        let trials = sweep_spec::expand(&file).unwrap();
        let r = &file.retry;
        Terms {
            policy: Policy { max_attempts: r.max_attempts, max_lost: r.max_lost, retry_backoff_ms: r.backoff_ms },
            definitions: definitions(&trials),
            schedule: None,
        }
    }

    #[test]
    fn a_schedule_stored_before_new_fields_is_the_same_schedule() {
        let before = r#"{"objective":{"metric":"loss","mode":"min"},"asha":{"min_epochs":1,"max_epochs":9,"reduction_factor":3,"brackets":1}}"#;
        let file = "[search]\nmetric = \"loss\"\nmode = \"min\"\n[schedule]\ntype = \"asha\"\nmax_epochs = 9\npromote = false\n";
        let now = sweep_spec::SweepFile::parse(
            &format!("name = \"s\"\nworkload = \"command\"\ncommand = [\"t\"]\n{file}"),
            Path::new("s.toml"),
            Path::new("."),
        )
        .unwrap()
        .schedule
        .map(|s| serde_json::to_string(&s).unwrap());
        assert_ne!(now.as_deref(), Some(before), "the text differs");
        let stored = Terms { schedule: Some(before.to_string()), ..terms("") };
        assert!(differences(&stored, &Terms { schedule: now, ..terms("") }).is_empty(), "the schedule does not");
        let promoting =
            Terms { schedule: Some(before.replace("\"brackets\":1", "\"brackets\":1,\"promote\":true")), ..terms("") };
        assert_eq!(differences(&stored, &promoting).len(), 1, "turning promotion on is a change");
    }

    #[test]
    fn the_same_file_and_added_grid_values_change_nothing() {
        assert!(differences(&terms(""), &terms("")).is_empty());
        let wider = terms("").definitions;
        assert_eq!(wider.len(), 1, "one definition for every trial of a sweep file");
        let no_trials = Terms { definitions: Vec::new(), ..terms("") };
        assert!(differences(&terms(""), &no_trials).is_empty(), "a submission without trials changes no definition");
    }

    #[test]
    fn policy_and_definition_changes_are_named_with_both_values() {
        let stored = terms("[retry]\nmax_attempts = 3\n");
        let submitted = terms("[retry]\nmax_attempts = 5\n[resources]\ngpus = 1\n");
        let diffs = differences(&stored, &submitted);
        assert!(diffs.contains(&("retry.max_attempts".into(), "3".into(), "5".into())), "{diffs:?}");
        assert!(diffs.contains(&("resources.gpus".into(), "0".into(), "1".into())), "{diffs:?}");
        let err = check_resubmission("s", None, &stored, &submitted, &Caller::open(), false).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sweep `s` exists with retry.max_attempts = 3; this submission has 5"), "{text}");
        assert!(text.contains("--force"), "{text}");
        assert!(matches!(err, Error::Conflict(_)));
        check_resubmission("s", None, &stored, &submitted, &Caller::open(), true).expect("--force replaces");
    }

    #[test]
    fn a_changed_command_is_a_changed_definition() {
        let stored = terms("");
        let mut submitted = terms("");
        submitted.definitions[0]["command"] = serde_json::json!(["train2"]);
        let diffs = differences(&stored, &submitted);
        assert_eq!(diffs, vec![("command".into(), r#"["train"]"#.into(), r#"["train2"]"#.into())]);
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let stored = terms("");
        let mut submitted = terms("");
        submitted.definitions[0]["command"] = serde_json::json!(["x".repeat(10_000)]);
        let diffs = differences(&stored, &submitted);
        assert!(diffs[0].2.chars().count() <= SHOWN_CHARS + 1, "{}", diffs[0].2.len());
    }

    #[test]
    fn only_the_owner_or_an_admin_manages_a_sweep() {
        let (alice, bob, admin) = (Caller::named("alice"), Caller::named("bob"), Caller::named(ADMIN));
        assert!(alice.may_manage(Some("alice")));
        assert!(!bob.may_manage(Some("alice")));
        assert!(admin.may_manage(Some("alice")));
        assert!(Caller::open().may_manage(Some("alice")), "without authentication everything is allowed");
        assert!(bob.may_manage(None), "a sweep without a recorded owner stays open");
        let err = bob.check_may("cancel", "s", Some("alice")).unwrap_err();
        assert!(matches!(err, Error::PermissionDenied(_)));
        assert!(err.to_string().contains("`alice`"), "{err}");
        let t = terms("");
        let err = check_resubmission("s", Some("alice"), &t, &t, &bob, true).unwrap_err();
        assert!(matches!(err, Error::PermissionDenied(_)), "--force does not make a sweep someone else's: {err}");
        check_resubmission("s", Some("alice"), &t, &t, &admin, false).unwrap();
    }
}
