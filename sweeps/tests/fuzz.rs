//! Property tests of the sweep-file parser and expansion: arbitrary text never panics and every
//! error names the file; generated valid files expand to exactly the distinct grid points times
//! the samples, with ids that are stable and change only with content. 256 cases per property by
//! default; `PROPTEST_CASES=10000 cargo test -p sweep-spec --test fuzz` searches harder.

use proptest::prelude::*;
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;
use sweep_spec::{expand, SweepFile, TrialSpec};

const FILE: &str = "fuzz/sweep.toml";

/// Parses `text`, expands it when that is cheap, and checks that any error names the file.
fn parse_and_expand(text: &str) {
    let checked = SweepFile::parse(text, Path::new(FILE), Path::new("/tmp")).and_then(|f| {
        let grid: usize = f.grid.iter().map(|(_, v)| v.len()).fold(1usize, usize::saturating_mul);
        let samples = f.random.as_ref().map_or(1, |r| r.samples as usize);
        // Sizes past MAX_TRIALS are refused before any work; those in between are merely slow.
        if grid.saturating_mul(samples) <= 2_000 || grid.saturating_mul(samples) > sweep_spec::expand::MAX_TRIALS {
            expand(&f).map(|_| ())
        } else {
            Ok(())
        }
    });
    if let Err(e) = checked {
        let message = e.to_string();
        assert!(message.starts_with(&format!("{FILE}: ")), "the error names the file: {message}");
    }
}

/// A TOML literal for `f`, including the spellings of nan and inf.
fn toml_float(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{f:?}")
    }
}

/// TOML values, nested, biased towards the shapes the parser looks for.
fn toml_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        (-3i64..5).prop_map(|i| i.to_string()),
        any::<f64>().prop_map(toml_float),
        prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(1e308), Just(-0.0)]
            .prop_map(toml_float),
        "[a-z./ é-]{0,8}".prop_map(|s| format!("{s:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(", "))),
            (
                prop_oneof![
                    prop::sample::select(vec!["uniform", "log_uniform", "int_uniform", "choice"])
                        .prop_map(str::to_string),
                    "[a-z]{1,4}",
                ],
                prop::collection::vec(inner.clone(), 0..4),
            )
                .prop_map(|(k, v)| format!("{{ {k} = [{}] }}", v.join(", "))),
            prop::collection::vec(("[a-z]{1,4}", inner), 0..4).prop_map(|kv| {
                let unique: std::collections::BTreeMap<_, _> = kv.into_iter().collect();
                format!(
                    "{{ {} }}",
                    unique.into_iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", ")
                )
            }),
        ]
    })
}

/// Lines of a sweep file: section headers and `key = value` lines with keys the parser knows.
fn toml_line() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "name",
            "workload",
            "command",
            "description",
            "samples",
            "seed",
            "gpus",
            "max_attempts",
            "max_lost",
            "checkpoint_every_epochs",
            "format",
            "path",
            "width",
            "depth",
            "lr",
            "optimizer",
            "epochs",
        ])
        .prop_map(str::to_string),
        "[a-zé_]{1,6}",
        "\"[^\"\\\\]{0,6}\"",
    ];
    prop_oneof![
        prop::sample::select(vec!["[params]", "[grid]", "[random]", "[resources]", "[retry]", "[data]", "[[x]]"])
            .prop_map(str::to_string),
        (key, toml_value()).prop_map(|(k, v)| format!("{k} = {v}")),
    ]
}

/// A header that gets past the first checks most of the time, so later ones are reached.
fn header() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("name = \"f\"\nworkload = \"command\"\ncommand = [\"run\"]\n".to_string()),
        Just("name = \"f\"\nworkload = \"mlp\"\n".to_string()),
        Just("name = \"f\"\nworkload = \"double_descent\"\n".to_string()),
        "[a-z./]{0,4}".prop_map(|n| format!("name = {n:?}\nworkload = \"command\"\ncommand = [\"run\"]\n")),
    ]
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        parse_and_expand(&text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        parse_and_expand(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn toml_shaped_text_never_panics(head in header(), lines in prop::collection::vec(toml_line(), 0..12)) {
        parse_and_expand(&format!("{head}{}\n", lines.join("\n")));
    }
}

/// A grid value: few distinct ones, so duplicates are common.
#[derive(Debug, Clone)]
enum Scalar {
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
}

impl Scalar {
    fn toml(&self) -> String {
        match self {
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => format!("{f:?}"),
            Scalar::Str(s) => format!("{s:?}"),
            Scalar::Bool(b) => b.to_string(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Scalar::Int(i) => Value::from(*i),
            Scalar::Float(f) => Value::from(*f),
            Scalar::Str(s) => Value::from(s.as_str()),
            Scalar::Bool(b) => Value::from(*b),
        }
    }
}

fn scalar() -> impl Strategy<Value = Scalar> {
    prop_oneof![
        (0i64..4).prop_map(Scalar::Int),
        (0u8..3).prop_map(|i| Scalar::Float(f64::from(i) + 0.5)),
        (0u8..3).prop_map(|i| Scalar::Str(format!("s{i}"))),
        any::<bool>().prop_map(Scalar::Bool),
    ]
}

#[derive(Debug, Clone)]
struct ValidSweep {
    name: String,
    fixed: Option<Scalar>,
    grid: Vec<(String, Vec<Scalar>)>,
    /// (samples, seed); TOML integers stop at `i64::MAX`.
    random: Option<(u32, u64)>,
}

impl ValidSweep {
    fn text(&self) -> String {
        let mut t = format!("name = {:?}\nworkload = \"command\"\ncommand = [\"run\"]\n", self.name);
        if let Some(v) = &self.fixed {
            t += &format!("[params]\nfixed_p = {}\n", v.toml());
        }
        t += "[grid]\n";
        for (k, vs) in &self.grid {
            t += &format!("{k} = [{}]\n", vs.iter().map(Scalar::toml).collect::<Vec<_>>().join(", "));
        }
        if let Some((samples, seed)) = self.random {
            // A continuous draw makes every sample distinct.
            t += &format!(
                "[random]\nsamples = {samples}\nseed = {seed}\nu_rand = {{ uniform = [0.0, 1.0] }}\nc_rand = {{ choice = [1, \"two\"] }}\n"
            );
        }
        t
    }

    /// Grid points after duplicates collapse, times the samples.
    fn expected_trials(&self) -> usize {
        let points: usize = self
            .grid
            .iter()
            .map(|(_, vs)| vs.iter().map(Scalar::json).map(|v| v.to_string()).collect::<HashSet<_>>().len())
            .product();
        points * self.random.map_or(1, |(samples, _)| samples as usize)
    }
}

fn valid_sweep() -> impl Strategy<Value = ValidSweep> {
    (
        "[a-z][a-z0-9._-]{0,20}",
        prop::option::of(scalar()),
        prop::collection::btree_map("[a-z]{1,6}", prop::collection::vec(scalar(), 1..=4), 1..=4),
        prop::option::of((1u32..=5, 0..=i64::MAX as u64)),
    )
        .prop_map(|(name, fixed, grid, random)| ValidSweep {
            name,
            fixed,
            grid: grid.into_iter().collect(),
            random,
        })
}

fn expand_text(text: &str) -> Vec<TrialSpec> {
    let file = SweepFile::parse(text, Path::new(FILE), Path::new("/tmp")).expect("a generated sweep file parses");
    expand(&file).expect("a generated sweep file expands")
}

proptest! {
    #[test]
    fn expansion_is_the_product_of_distinct_values_times_samples(sweep in valid_sweep()) {
        let text = sweep.text();
        let trials = expand_text(&text);
        prop_assert_eq!(trials.len(), sweep.expected_trials(), "{}", text);
        let ids: HashSet<_> = trials.iter().map(|t| t.id.clone()).collect();
        prop_assert_eq!(ids.len(), trials.len(), "ids are unique");
        for t in &trials {
            prop_assert!(t.id.0.len() == 16 && t.id.0.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            prop_assert_eq!(&t.id, &TrialSpec::content_id(&t.workload, t.command.as_deref(), &t.params, t.data.as_ref()));
        }
        prop_assert_eq!(&expand_text(&text), &trials, "expansion is stable");
    }

    #[test]
    fn ids_change_exactly_where_a_value_changes(sweep in valid_sweep()) {
        let before = expand_text(&sweep.text());
        let old_ids: HashSet<_> = before.iter().map(|t| t.id.clone()).collect();
        let mut changed = sweep.clone();
        let (key, values) = &mut changed.grid[0];
        let key = key.clone();
        values[0] = Scalar::Str("changed-value".into());
        let after = expand_text(&changed.text());
        let fresh = Value::from("changed-value");
        prop_assert!(after.iter().any(|t| t.params[&key] == fresh));
        for t in &after {
            if t.params[&key] == fresh {
                prop_assert!(!old_ids.contains(&t.id), "a trial with a new value has a new id");
            } else {
                prop_assert!(old_ids.contains(&t.id), "a trial whose values did not change keeps its id");
            }
        }
    }
}
