//! The optimizer a trial asks for: the sweep's `optimizer = { name = "adam", lr = 1e-4, ... }`
//! table plus the separate `weight_decay` parameter, validated into one `OptimizerConfig`.
//! Every default is a named constant, so a sweep file can override it and the records show it.

use serde_json::{Map, Value};

/// Plain SGD unless the sweep asks for momentum (PyTorch's default too).
pub const DEFAULT_MOMENTUM: f64 = 0.0;
pub const DEFAULT_NESTEROV: bool = false;
/// Adam's (beta1, beta2), as in Kingma & Ba and `torch.optim.Adam`.
pub const DEFAULT_BETAS: (f64, f64) = (0.9, 0.999);
pub const DEFAULT_EPS: f64 = 1e-8;
/// No clipping unless the sweep sets a maximum global gradient norm.
pub const DEFAULT_GRAD_CLIP: Option<f64> = None;

const KEYS: &[&str] = &["name", "lr", "momentum", "nesterov", "betas", "eps", "grad_clip"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerKind {
    /// SGD with optional (Nesterov) momentum; weight decay is an L2 term added to the gradient.
    Sgd,
    /// Adam; weight decay is an L2 term added to the gradient (`torch.optim.Adam`).
    Adam,
    /// Adam with decoupled weight decay, `p -= lr * wd * p` before the update (`torch.optim.AdamW`).
    AdamW,
}

impl OptimizerKind {
    pub const ALL: [OptimizerKind; 3] = [OptimizerKind::Sgd, OptimizerKind::Adam, OptimizerKind::AdamW];

    /// The name a sweep file uses.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
        }
    }

    fn is_adam(self) -> bool {
        matches!(self, OptimizerKind::Adam | OptimizerKind::AdamW)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerConfig {
    pub name: OptimizerKind,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Maximum global L2 norm of all gradients together; none: no clipping.
    pub grad_clip: Option<f64>,
}

impl OptimizerConfig {
    /// From the sweep parameter table `optimizer = { name = "adam", lr = 1e-4, ... }` plus the
    /// separate `weight_decay` parameter. Keys that do not apply to the named optimizer (momentum
    /// for Adam, betas for SGD) are errors rather than silently ignored: a sweep over a knob that
    /// does nothing would mislabel its results.
    pub fn from_params(table: &Map<String, Value>, weight_decay: f64) -> Result<Self, String> {
        if let Some(key) = table.keys().find(|k| !KEYS.contains(&k.as_str())) {
            let hint =
                if key == "weight_decay" { "; weight decay is the separate `weight_decay` parameter" } else { "" };
            return Err(format!(
                "params.optimizer.{key}: not an optimizer setting; expected one of {}{hint}",
                KEYS.join(", ")
            ));
        }
        let name = match table.get("name") {
            None => return Err("params.optimizer.name: missing; expected \"sgd\", \"adam\" or \"adamw\"".into()),
            Some(Value::String(s)) => OptimizerKind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
                format!("params.optimizer.name: expected \"sgd\", \"adam\" or \"adamw\", got \"{s}\"")
            })?,
            Some(other) => return Err(format!("params.optimizer.name: expected a string, got {other}")),
        };
        let lr = match table.get("lr") {
            None => return Err("params.optimizer.lr: missing; expected a number > 0".into()),
            Some(v) => number("lr", v, |x| x > 0.0, "a number > 0")?,
        };
        // Settings of the other family: refuse them by name.
        let only_for = |key: &str, sgd: bool| -> Result<(), String> {
            if table.contains_key(key) && (sgd == name.is_adam()) {
                let owner = if sgd { "\"sgd\"" } else { "\"adam\" and \"adamw\"" };
                return Err(format!("params.optimizer.{key}: applies to name = {owner} only, not \"{}\"", name.name()));
            }
            Ok(())
        };
        for key in ["momentum", "nesterov"] {
            only_for(key, true)?;
        }
        for key in ["betas", "eps"] {
            only_for(key, false)?;
        }
        let momentum = match table.get("momentum") {
            None => DEFAULT_MOMENTUM,
            Some(v) => number("momentum", v, |x| (0.0..1.0).contains(&x), "a number in [0, 1)")?,
        };
        let nesterov = match table.get("nesterov") {
            None => DEFAULT_NESTEROV,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(format!("params.optimizer.nesterov: expected true or false, got {other}")),
        };
        // PyTorch refuses this too: Nesterov's look-ahead is a momentum term.
        if nesterov && momentum <= 0.0 {
            return Err("params.optimizer.nesterov: expected momentum > 0 with nesterov = true".into());
        }
        let (beta1, beta2) = match table.get("betas") {
            None => DEFAULT_BETAS,
            Some(v) => betas(v)?,
        };
        let eps = match table.get("eps") {
            None => DEFAULT_EPS,
            Some(v) => number("eps", v, |x| x > 0.0, "a number > 0")?,
        };
        let grad_clip = match table.get("grad_clip") {
            None => DEFAULT_GRAD_CLIP,
            Some(v) => Some(number("grad_clip", v, |x| x > 0.0, "a number > 0 (the maximum global L2 norm)")?),
        };
        if !(weight_decay.is_finite() && weight_decay >= 0.0) {
            return Err(format!("params.weight_decay: expected a number >= 0, got {weight_decay}"));
        }
        Ok(OptimizerConfig { name, lr, momentum, nesterov, beta1, beta2, eps, weight_decay, grad_clip })
    }
}

fn number(key: &str, value: &Value, ok: impl Fn(f64) -> bool, expected: &str) -> Result<f64, String> {
    match value.as_f64() {
        Some(x) if x.is_finite() && ok(x) => Ok(x),
        _ => Err(format!("params.optimizer.{key}: expected {expected}, got {value}")),
    }
}

fn betas(value: &Value) -> Result<(f64, f64), String> {
    let expected = "expected [beta1, beta2] with each in [0, 1)";
    let pair = value
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or_else(|| format!("params.optimizer.betas: {expected}, got {value}"))?;
    let mut out = [0.0; 2];
    for (slot, v) in out.iter_mut().zip(pair) {
        *slot = v
            .as_f64()
            .filter(|x| (0.0..1.0).contains(x))
            .ok_or_else(|| format!("params.optimizer.betas: {expected}, got {value}"))?;
    }
    Ok((out[0], out[1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value, wd: f64) -> Result<OptimizerConfig, String> {
        OptimizerConfig::from_params(v.as_object().unwrap(), wd)
    }

    #[test]
    fn absent_keys_take_the_named_defaults() {
        let c = parse(json!({"name": "adam", "lr": 1e-4}), 0.01).unwrap();
        assert_eq!(
            c,
            OptimizerConfig {
                name: OptimizerKind::Adam,
                lr: 1e-4,
                momentum: DEFAULT_MOMENTUM,
                nesterov: DEFAULT_NESTEROV,
                beta1: DEFAULT_BETAS.0,
                beta2: DEFAULT_BETAS.1,
                eps: DEFAULT_EPS,
                weight_decay: 0.01,
                grad_clip: DEFAULT_GRAD_CLIP,
            }
        );
        let c = parse(json!({"name": "sgd", "lr": 1, "momentum": 0.9, "nesterov": true, "grad_clip": 5}), 0.0).unwrap();
        assert_eq!(
            (c.name, c.lr, c.momentum, c.nesterov, c.grad_clip),
            (OptimizerKind::Sgd, 1.0, 0.9, true, Some(5.0))
        );
        let c = parse(json!({"name": "adamw", "lr": 0.001, "betas": [0.8, 0.99], "eps": 1e-6}), 0.1).unwrap();
        assert_eq!((c.name, c.beta1, c.beta2, c.eps), (OptimizerKind::AdamW, 0.8, 0.99, 1e-6));
    }

    #[test]
    fn bad_tables_name_the_key() {
        let cases = [
            (json!({"lr": 0.1}), 0.0, "params.optimizer.name"),
            (json!({"name": "rmsprop", "lr": 0.1}), 0.0, "params.optimizer.name"),
            (json!({"name": "sgd"}), 0.0, "params.optimizer.lr"),
            (json!({"name": "sgd", "lr": 0}), 0.0, "params.optimizer.lr"),
            (json!({"name": "sgd", "lr": "big"}), 0.0, "params.optimizer.lr"),
            (json!({"name": "sgd", "lr": 0.1, "momentum": 1.0}), 0.0, "params.optimizer.momentum"),
            (json!({"name": "sgd", "lr": 0.1, "nesterov": true}), 0.0, "params.optimizer.nesterov"),
            (json!({"name": "sgd", "lr": 0.1, "betas": [0.9, 0.99]}), 0.0, "params.optimizer.betas"),
            (json!({"name": "adam", "lr": 0.1, "momentum": 0.9}), 0.0, "params.optimizer.momentum"),
            (json!({"name": "adam", "lr": 0.1, "betas": [0.9]}), 0.0, "params.optimizer.betas: expected"),
            (json!({"name": "adam", "lr": 0.1, "betas": [0.9, 1.0]}), 0.0, "params.optimizer.betas: expected"),
            (json!({"name": "adam", "lr": 0.1, "eps": -1}), 0.0, "params.optimizer.eps"),
            (json!({"name": "adam", "lr": 0.1, "grad_clip": 0}), 0.0, "params.optimizer.grad_clip"),
            (json!({"name": "adam", "lr": 0.1, "weight_decay": 0.1}), 0.0, "params.optimizer.weight_decay"),
            (json!({"name": "adam", "lr": 0.1, "lr_decay": 0.1}), 0.0, "params.optimizer.lr_decay"),
            (json!({"name": "adam", "lr": 0.1}), -0.1, "params.weight_decay"),
            (json!({"name": "adam", "lr": 0.1}), f64::NAN, "params.weight_decay"),
        ];
        for (table, wd, want) in cases {
            let err = parse(table.clone(), wd).unwrap_err();
            assert!(err.starts_with(want), "{table} (wd {wd}): {err}");
        }
    }
}
