//! Which trials may train as one fused group (horizontal fusion, HFTA): G trials of one workload,
//! architecture and width whose parameters differ only in what each member keeps for itself (its
//! seed, learning rate, weight decay and label noise). Trials with equal keys can share a group.

use crate::trial::TrialSpec;
use crate::workloads;
use serde_json::Value;

/// Parameters each member of a group keeps for itself; `optimizer.lr` is the `lr` key of the
/// `optimizer` table.
pub const MEMBER_PARAMS: &[&str] = &["seed", "label_noise", "weight_decay", "optimizer.lr"];

/// The optimizers whose update runs with per-member rates and a step count on the device; the
/// others (Adagrad, Adafactor, Shampoo) read theirs on the host.
pub const OPTIMIZERS: &[&str] = &["sgd", "adam", "adamw"];

/// The workloads that fuse, each with the models (`params.model`) that do.
pub const MODELS: &[(&str, &[&str])] =
    &[("double_descent", &["preact_resnet18", "cnn5", "mlp"]), ("long_tail", &["resnet32", "mlp", "linear"])];

/// The group key of a trial: what must be equal for trials to train as one. The error says why
/// the trial cannot be fused at all, naming the workload or parameter.
pub fn key(spec: &TrialSpec) -> Result<String, String> {
    let Some((_, models)) = MODELS.iter().find(|(w, _)| *w == spec.workload) else {
        let names: Vec<String> = MODELS.iter().map(|(w, _)| format!("`{w}`")).collect();
        return Err(format!("workload `{}` does not fuse (only {} do)", spec.workload, names.join(" and ")));
    };
    let model = spec.params.get("model").and_then(Value::as_str).unwrap_or_default();
    if !models.contains(&model) {
        return Err(format!("params.model: `{model}` does not fuse (only {} do)", models.join(", ")));
    }
    let optimizer = spec.params.get("optimizer").and_then(|o| o.get("name")).and_then(Value::as_str);
    if let Some(name) = optimizer.filter(|name| !OPTIMIZERS.contains(name)) {
        return Err(format!("params.optimizer.name: `{name}` does not fuse (only {} do)", OPTIMIZERS.join(", ")));
    }
    let clipped = spec.params.get("optimizer").and_then(|o| o.get("grad_clip")).is_some_and(|v| !v.is_null());
    if clipped {
        return Err("params.optimizer.grad_clip: global gradient clipping couples the members of a group".into());
    }
    if spec.workload == workloads::LONG_TAIL.name
        && spec.params.get("crt_epochs").and_then(Value::as_i64).unwrap_or(0) != 0
    {
        return Err("params.crt_epochs: a trial with a classifier re-training stage does not fuse".into());
    }
    let mut shared = spec.params.clone();
    for name in MEMBER_PARAMS {
        match name.split_once('.') {
            Some((table, key)) => {
                if let Some(Value::Object(t)) = shared.get_mut(table) {
                    t.remove(key);
                }
            }
            None => {
                shared.remove(*name);
            }
        }
    }
    // serde_json's Map keeps keys sorted, so this JSON is canonical.
    Ok(serde_json::json!({
        "workload": spec.workload,
        "params": shared,
        "data": spec.data,
        "resources": spec.resources,
    })
    .to_string())
}

/// The first parameter in which two trials' shared parts differ, for an error that names it.
pub fn first_difference(a: &TrialSpec, b: &TrialSpec) -> Option<String> {
    if a.data != b.data {
        return Some("data".into());
    }
    if a.resources != b.resources {
        return Some("resources".into());
    }
    let member = |name: &str, table: Option<&str>| match table {
        Some(t) => MEMBER_PARAMS.contains(&format!("{t}.{name}").as_str()),
        None => MEMBER_PARAMS.contains(&name),
    };
    let names = a.params.keys().chain(b.params.keys());
    for name in names {
        let (x, y) = (a.params.get(name), b.params.get(name));
        match (x, y) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                for k in x.keys().chain(y.keys()) {
                    if !member(k, Some(name)) && x.get(k) != y.get(k) {
                        return Some(format!("params.{name}.{k}"));
                    }
                }
            }
            _ if !member(name, None) && x != y => return Some(format!("params.{name}")),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::Resources;
    use serde_json::{json, Map};

    fn spec(params: Value) -> TrialSpec {
        let Value::Object(params) = params else { unreachable!() };
        TrialSpec {
            id: crate::TrialId("0000000000000000".into()),
            sweep: "s".into(),
            index: 0,
            workload: "double_descent".into(),
            command: None,
            params,
            data: None,
            resources: Resources::default(),
            checkpoint_every_epochs: None,
            command_bool: Default::default(),
            copy_from: None,
        }
    }

    fn base() -> Value {
        json!({"model": "preact_resnet18", "width": 8, "seed": 0, "label_noise": 0.1, "weight_decay": 5e-4,
               "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9}})
    }

    #[test]
    fn members_may_differ_only_in_their_own_parameters() {
        let a = spec(base());
        let mut other = base();
        other["seed"] = json!(3);
        other["label_noise"] = json!(0.2);
        other["weight_decay"] = json!(0.0);
        other["optimizer"]["lr"] = json!(0.01);
        let b = spec(other);
        assert_eq!(key(&a).unwrap(), key(&b).unwrap());
        assert_eq!(first_difference(&a, &b), None);

        for (path, value) in [("width", json!(16)), ("optimizer.momentum", json!(0.0))] {
            let mut v = base();
            match path.split_once('.') {
                Some((t, k)) => v[t][k] = value,
                None => v[path] = value,
            }
            let c = spec(v);
            assert_ne!(key(&a).unwrap(), key(&c).unwrap(), "{path}");
            assert_eq!(first_difference(&a, &c), Some(format!("params.{path}")));
        }
    }

    fn file(resources: &str, model: &str) -> Result<Vec<TrialSpec>, crate::SpecError> {
        let text = format!(
            "name = \"s\"\nworkload = \"double_descent\"\n[params]\nmodel = \"{model}\"\n[grid]\nseed = [0, 1]\n[resources]\n{resources}\n"
        );
        let f = crate::SweepFile::parse(&text, std::path::Path::new("s.toml"), std::path::Path::new("."))?;
        crate::expand(&f)
    }

    #[test]
    fn sweep_files_ask_for_fusion_in_resources() {
        use crate::file::Fuse;
        assert_eq!(file("fuse = 8", "preact_resnet18").unwrap()[0].resources.fuse, Fuse::UpTo(8));
        assert_eq!(file("fuse = \"auto\"", "preact_resnet18").unwrap()[0].resources.fuse, Fuse::Auto);
        assert_eq!(file("fuse = 1", "preact_resnet18").unwrap()[0].resources.fuse, Fuse::Off);
        for bad in ["fuse = 0", "fuse = 65", "fuse = \"all\""] {
            let err = file(bad, "preact_resnet18").unwrap_err().to_string();
            assert!(err.contains("s.toml") && err.contains("resources.fuse"), "{bad}: {err}");
        }
        assert_eq!(file("fuse = 4", "cnn5").unwrap()[0].resources.fuse, Fuse::UpTo(4));
        let err = file("fuse = 4", "random_features").unwrap_err().to_string();
        assert!(
            err.contains("resources.fuse") && err.contains("params.model: `random_features` does not fuse"),
            "{err}"
        );
        assert_eq!(Fuse::Auto.members(1), Fuse::AUTO_MEMBERS);
        assert_eq!(Fuse::Auto.members(0), 1, "auto fuses on GPUs only");
    }

    #[test]
    fn other_workloads_and_models_do_not_fuse() {
        let mut v = base();
        v["model"] = json!("random_features");
        assert!(key(&spec(v.clone())).unwrap_err().contains("params.model"));
        for model in ["cnn5", "mlp"] {
            v["model"] = json!(model);
            assert!(key(&spec(v.clone())).is_ok(), "{model} fuses");
        }
        v["model"] = json!("cnn5");
        v["optimizer"] = json!({"name": "shampoo", "lr": 0.1});
        let err = key(&spec(v.clone())).unwrap_err();
        assert!(err.starts_with("params.optimizer.name: `shampoo` does not fuse"), "{err}");
        let mut s = spec(base());
        s.workload = "mlp".into();
        s.params = Map::new();
        assert!(key(&s).unwrap_err().contains("workload `mlp`"));
    }

    #[test]
    fn the_fusing_workloads_and_models_exist() {
        for (workload, models) in MODELS {
            let w = workloads::BUILT_IN.iter().find(|w| w.name == *workload).expect("a built-in workload");
            let model = w.params.iter().find(|p| p.name == "model").expect("a model parameter");
            for m in *models {
                assert!(model.help.contains(m), "{workload}: {m} is not among {}", model.help);
            }
        }
    }

    #[test]
    fn long_tail_trials_fuse_across_seeds_and_rates_but_not_losses_or_a_crt_stage() {
        let lt = |v: Value| TrialSpec { workload: "long_tail".into(), ..spec(v) };
        let base = || {
            json!({"model": "resnet32", "loss": "ldam_drw", "sampler": "instance", "crt_epochs": 0,
                             "seed": 0, "weight_decay": 2e-4, "optimizer": {"name": "sgd", "lr": 0.1}})
        };
        let mut other = base();
        other["seed"] = json!(1);
        other["optimizer"]["lr"] = json!(0.05);
        assert_eq!(key(&lt(base())).unwrap(), key(&lt(other)).unwrap());
        let mut loss = base();
        loss["loss"] = json!("ce");
        assert_ne!(key(&lt(base())).unwrap(), key(&lt(loss)).unwrap());
        let mut crt = base();
        crt["crt_epochs"] = json!(10);
        assert!(key(&lt(crt)).unwrap_err().contains("params.crt_epochs"));
        let mut imagenet = base();
        imagenet["model"] = json!("resnext50");
        assert!(key(&lt(imagenet)).unwrap_err().contains("`resnext50` does not fuse"));
        let mut clipped = base();
        clipped["optimizer"]["grad_clip"] = json!(1.0);
        assert!(key(&lt(clipped)).unwrap_err().contains("params.optimizer.grad_clip"));
    }
}
