//! Every value a sweep file gives a built-in workload's parameter is checked against the workload
//! catalogue before anything runs: for every enumerated or bounded parameter of every workload,
//! one value outside its domain is refused by the sweep file, naming the key, wherever it is set
//! (`[params]`, `[grid]`, `[random]`), while the values inside are accepted.

use std::path::Path;
use sweep_spec::workloads::{Domain, Kind, Param, BUILT_IN};
use sweep_spec::SweepFile;

fn parse(workload: &str, body: &str) -> Result<SweepFile, String> {
    let text = format!("name = \"catalogue\"\nworkload = \"{workload}\"\n{body}");
    SweepFile::parse(&text, Path::new("catalogue.toml"), Path::new("/tmp")).map_err(|e| e.to_string())
}

fn expand(workload: &str, body: &str) -> Result<usize, String> {
    let file = parse(workload, body)?;
    sweep_spec::expand(&file).map(|t| t.len()).map_err(|e| e.to_string())
}

/// A value of the parameter's kind as TOML: an integer for `Int`, a float otherwise.
fn number(p: &Param, x: f64) -> String {
    if p.kind == Kind::Int {
        format!("{}", x as i64)
    } else {
        format!("{x:?}")
    }
}

/// A name for a string parameter, or a table with that name for `optimizer` and `schedule`.
fn named(p: &Param, name: &str) -> String {
    match p.kind {
        Kind::Str | Kind::StrOrTable => format!("\"{name}\""),
        _ => format!("{{ name = \"{name}\" }}"),
    }
}

/// One value just outside the domain, and one inside it.
fn outside_and_inside(p: &Param) -> Option<(String, String)> {
    Some(match p.domain {
        Domain::Any => return None,
        Domain::OneOf(names) => (named(p, "not_a_choice"), named(p, names[0])),
        Domain::AtLeast(min) => (number(p, min - 1.0), number(p, min)),
        Domain::Above(min) => (number(p, min), number(p, min + 1.0)),
        Domain::HalfOpen(lo, hi) => (number(p, hi), number(p, lo)),
        // Past the upper end by half a unit, or by one for an integer (half would round back in).
        Domain::Closed(_, hi) => (number(p, hi + if p.kind == Kind::Int { 1.0 } else { 0.5 }), number(p, hi)),
    })
}

#[test]
fn one_value_outside_each_parameters_domain_is_refused_naming_the_key() {
    let mut checked = 0;
    for w in BUILT_IN {
        for p in w.params {
            let Some((bad, good)) = outside_and_inside(p) else { continue };
            let name = p.name;
            for (key, body) in [
                (format!("params.{name}"), format!("[params]\n{name} = {bad}\n")),
                (format!("grid.{name}"), format!("[grid]\n{name} = [{good}, {bad}]\n")),
                (format!("random.{name}"), format!("[random]\nsamples = 2\n{name} = {{ choice = [{good}, {bad}] }}\n")),
            ] {
                if key == "random.seed" {
                    continue; // `[random] seed` seeds the draws: a parameter named seed is not drawn
                }
                let err = parse(w.name, &body).expect_err(&format!("{} {key} = {bad} must be refused", w.name));
                assert!(err.contains(&format!("key `{key}`")), "{}: {err}", w.name);
                assert!(err.contains(&p.domain.describe(p.kind)), "{}: the domain is named: {err}", w.name);
            }
            assert_eq!(expand(w.name, &format!("[grid]\n{name} = [{good}]\n")), Ok(1), "{} {name} = {good}", w.name);
            checked += 1;
        }
    }
    assert!(checked >= 40, "the catalogue declares domains for most parameters; checked {checked}");
}

#[test]
fn the_label_tree_loss_hinge_is_refused_before_any_trial_runs() {
    let err = parse("xmc_tree", "[grid]\nloss = [\"squared_hinge\", \"hinge\", \"logistic\"]\n").unwrap_err();
    assert!(err.contains("key `grid.loss`: expected one of \"squared_hinge\", \"logistic\", got \"hinge\""), "{err}");
}

#[test]
fn random_draws_outside_a_bounded_parameter_are_refused_with_the_trial() {
    let body = "[random]\nsamples = 50\nseed = 3\ndropout = { uniform = [0.5, 1.5] }\n";
    let err = expand("double_descent", body).unwrap_err();
    assert!(err.contains("key `random.dropout`: expected a range inside a number in [0, 1), but trial"), "{err}");
    let ok = "[random]\nsamples = 50\nseed = 3\ndropout = { uniform = [0.0, 1.0] }\n";
    assert_eq!(expand("double_descent", ok), Ok(50), "uniform draws lie in [lo, hi)");
    let err = parse("mlp", "[random]\nsamples = 2\nwidth = { int_uniform = [0, 8] }\n").unwrap_err();
    assert!(err.contains("key `random.width`: expected an integer >= 1, got 0"), "{err}");
}
