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
/// Adagrad's defaults, `torch.optim.Adagrad`'s; its `eps` is smaller than Adam's.
pub const DEFAULT_ADAGRAD: AdagradConfig = AdagradConfig { lr_decay: 0.0, initial_accumulator_value: 0.0 };
pub const DEFAULT_ADAGRAD_EPS: f64 = 1e-10;
/// Adafactor's defaults, `torch.optim.Adafactor`'s (which has no first moment).
pub const DEFAULT_ADAFACTOR: AdafactorConfig = AdafactorConfig {
    beta1: None,
    beta2_decay: -0.8,
    eps1: None,
    eps2: 1e-3,
    clip_threshold: 1.0,
    relative_step: true,
};
/// Shampoo's defaults: Gupta et al.'s algorithm as written (every step preconditioned with fresh
/// roots, no grafting), with blocks of at most 256 so no preconditioner exceeds 256 x 256.
pub const DEFAULT_SHAMPOO: ShampooConfig = ShampooConfig {
    epsilon: 1e-6,
    precondition_every: 1,
    start_preconditioning_step: 1,
    block_size: 256,
    graft: Graft::None,
};

/// Every key of the table besides `name`, `lr` and `grad_clip`, with the optimizers it applies to.
const SETTINGS: &[(&str, &[OptimizerKind])] = {
    use OptimizerKind::*;
    &[
        ("momentum", &[Sgd, Shampoo]),
        ("nesterov", &[Sgd]),
        ("betas", &[Adam, AdamW]),
        ("eps", &[Adam, AdamW, Adagrad, Adafactor]),
        ("lr_decay", &[Adagrad]),
        ("initial_accumulator_value", &[Adagrad]),
        ("beta1", &[Adafactor]),
        ("beta2_decay", &[Adafactor]),
        ("clip_threshold", &[Adafactor]),
        ("relative_step", &[Adafactor]),
        ("epsilon", &[Shampoo]),
        ("precondition_every", &[Shampoo]),
        ("start_preconditioning_step", &[Shampoo]),
        ("block_size", &[Shampoo]),
        ("graft", &[Shampoo]),
    ]
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerKind {
    /// SGD with optional (Nesterov) momentum; weight decay is an L2 term added to the gradient.
    Sgd,
    /// Adam; weight decay is an L2 term added to the gradient (`torch.optim.Adam`).
    Adam,
    /// Adam with decoupled weight decay, `p -= lr * wd * p` before the update (`torch.optim.AdamW`).
    AdamW,
    /// Adagrad (Duchi et al. 2011), `torch.optim.Adagrad`; weight decay is an L2 term.
    Adagrad,
    /// Adafactor (Shazeer & Stern 2018), `torch.optim.Adafactor` plus an optional first moment;
    /// weight decay is decoupled, `p *= 1 - lr * wd`.
    Adafactor,
    /// Shampoo (Gupta et al. 2018); weight decay is an L2 term.
    Shampoo,
}

impl OptimizerKind {
    pub const ALL: [OptimizerKind; 6] = [
        OptimizerKind::Sgd,
        OptimizerKind::Adam,
        OptimizerKind::AdamW,
        OptimizerKind::Adagrad,
        OptimizerKind::Adafactor,
        OptimizerKind::Shampoo,
    ];

    /// The name a sweep file uses.
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Adam => "adam",
            OptimizerKind::AdamW => "adamw",
            OptimizerKind::Adagrad => "adagrad",
            OptimizerKind::Adafactor => "adafactor",
            OptimizerKind::Shampoo => "shampoo",
        }
    }

    /// Whether the rule runs with per-member rates (fused groups) and with the step count on the
    /// device (captured CUDA graphs). The others read their step count and norms on the host.
    pub fn fuses(self) -> bool {
        sweep_spec::fusion::OPTIMIZERS.contains(&self.name())
    }
}

/// Adagrad's settings beyond `eps` (the `eps` field of [`OptimizerConfig`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdagradConfig {
    /// The rate at step t is lr / (1 + (t - 1) lr_decay).
    pub lr_decay: f64,
    /// The sum of squared gradients starts here.
    pub initial_accumulator_value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdafactorConfig {
    /// A first moment of the clipped update with this decay; none: no first moment (the paper's
    /// memory-saving default).
    pub beta1: Option<f64>,
    /// The second moments decay with beta2_t = 1 - t^beta2_decay.
    pub beta2_decay: f64,
    /// Floor of the second-moment estimate; none: the machine epsilon of the parameter's dtype.
    pub eps1: Option<f64>,
    /// Floor of the parameter scale RMS(x) that multiplies the relative step.
    pub eps2: f64,
    /// d: the update is scaled down to RMS at most d.
    pub clip_threshold: f64,
    /// The relative step rho_t = min(lr, 1/sqrt(t)); false: rho_t = lr.
    pub relative_step: bool,
}

/// How a Shampoo step's size is set: by its own preconditioned direction, or by the norm of a
/// simpler optimizer's direction (grafting, Agarwal et al. 2020; used by Anil et al. 2020).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Graft {
    None,
    /// The norm of the gradient.
    Sgd,
    /// The norm of diagonal Adagrad's direction.
    Adagrad,
}

impl Graft {
    const NAMES: [(&'static str, Graft); 3] = [("none", Graft::None), ("sgd", Graft::Sgd), ("adagrad", Graft::Adagrad)];

    pub fn name(self) -> &'static str {
        Graft::NAMES.iter().find(|(_, g)| *g == self).map(|(n, _)| *n).unwrap_or("none")
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShampooConfig {
    /// The preconditioners start at epsilon times the identity.
    pub epsilon: f64,
    /// Recompute the inverse roots every this many steps (the statistics grow every step).
    pub precondition_every: u64,
    /// Steps before this one take the grafted (or plain gradient) direction.
    pub start_preconditioning_step: u64,
    /// A dimension longer than this is cut into blocks with preconditioners of their own.
    pub block_size: i64,
    pub graft: Graft,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerConfig {
    pub name: OptimizerKind,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub beta1: f64,
    pub beta2: f64,
    /// Adam's and Adagrad's epsilon (each with its own default).
    pub eps: f64,
    pub weight_decay: f64,
    /// Maximum global L2 norm of all gradients together; none: no clipping.
    pub grad_clip: Option<f64>,
    pub adagrad: AdagradConfig,
    pub adafactor: AdafactorConfig,
    pub shampoo: ShampooConfig,
}

impl OptimizerConfig {
    /// The named optimizer at rate `lr` with every other setting at its default.
    pub fn new(name: OptimizerKind, lr: f64) -> Self {
        OptimizerConfig {
            name,
            lr,
            momentum: DEFAULT_MOMENTUM,
            nesterov: DEFAULT_NESTEROV,
            beta1: DEFAULT_BETAS.0,
            beta2: DEFAULT_BETAS.1,
            eps: if name == OptimizerKind::Adagrad { DEFAULT_ADAGRAD_EPS } else { DEFAULT_EPS },
            weight_decay: 0.0,
            grad_clip: DEFAULT_GRAD_CLIP,
            adagrad: DEFAULT_ADAGRAD,
            adafactor: DEFAULT_ADAFACTOR,
            shampoo: DEFAULT_SHAMPOO,
        }
    }

    /// From the sweep parameter table `optimizer = { name = "adam", lr = 1e-4, ... }` plus the
    /// separate `weight_decay` parameter. Keys that do not apply to the named optimizer (momentum
    /// for Adam, betas for SGD) are errors rather than silently ignored: a sweep over a knob that
    /// does nothing would mislabel its results.
    pub fn from_params(table: &Map<String, Value>, weight_decay: f64) -> Result<Self, String> {
        let known = |k: &str| ["name", "lr", "grad_clip"].contains(&k) || SETTINGS.iter().any(|(s, _)| *s == k);
        if let Some(key) = table.keys().find(|k| !known(k.as_str())) {
            let hint =
                if key == "weight_decay" { "; weight decay is the separate `weight_decay` parameter" } else { "" };
            let keys: Vec<&str> =
                ["name", "lr", "grad_clip"].into_iter().chain(SETTINGS.iter().map(|(s, _)| *s)).collect();
            return Err(format!(
                "params.optimizer.{key}: not an optimizer setting; expected one of {}{hint}",
                keys.join(", ")
            ));
        }
        let names = || OptimizerKind::ALL.map(|k| format!("\"{}\"", k.name())).join(", ");
        let name = match table.get("name") {
            None => return Err(format!("params.optimizer.name: missing; expected one of {}", names())),
            Some(Value::String(s)) => OptimizerKind::ALL
                .into_iter()
                .find(|k| k.name() == s)
                .ok_or_else(|| format!("params.optimizer.name: expected one of {}, got \"{s}\"", names()))?,
            Some(other) => return Err(format!("params.optimizer.name: expected a string, got {other}")),
        };
        let lr = match table.get("lr") {
            None => return Err("params.optimizer.lr: missing; expected a number > 0".into()),
            Some(v) => number("lr", v, |x| x > 0.0, "a number > 0")?,
        };
        // Settings of another optimizer: refuse them by name.
        for (key, owners) in SETTINGS {
            if table.contains_key(*key) && !owners.contains(&name) {
                let owners: Vec<String> = owners.iter().map(|k| format!("\"{}\"", k.name())).collect();
                return Err(format!(
                    "params.optimizer.{key}: applies to name = {} only, not \"{}\"",
                    owners.join(" or "),
                    name.name()
                ));
            }
        }
        let mut cfg = OptimizerConfig::new(name, lr);
        let get = |key: &str| table.get(key);
        if let Some(v) = get("momentum") {
            cfg.momentum = number("momentum", v, |x| (0.0..1.0).contains(&x), "a number in [0, 1)")?;
        }
        if let Some(v) = get("nesterov") {
            cfg.nesterov = boolean("nesterov", v)?;
        }
        // PyTorch refuses this too: Nesterov's look-ahead is a momentum term.
        if cfg.nesterov && cfg.momentum <= 0.0 {
            return Err("params.optimizer.nesterov: expected momentum > 0 with nesterov = true".into());
        }
        if let Some(v) = get("betas") {
            (cfg.beta1, cfg.beta2) = pair("betas", v, |x| (0.0..1.0).contains(&x), "with each in [0, 1)")?;
        }
        match (name, get("eps")) {
            (OptimizerKind::Adafactor, Some(v)) => {
                let (eps1, eps2) = pair(
                    "eps",
                    v,
                    |x| x > 0.0,
                    "with each > 0 (eps1 floors the second moment, eps2 the parameter scale)",
                )?;
                (cfg.adafactor.eps1, cfg.adafactor.eps2) = (Some(eps1), eps2);
            }
            (_, Some(v)) => cfg.eps = number("eps", v, |x| x > 0.0, "a number > 0")?,
            (_, None) => {}
        }
        if let Some(v) = get("lr_decay") {
            cfg.adagrad.lr_decay = number("lr_decay", v, |x| x >= 0.0, "a number >= 0")?;
        }
        if let Some(v) = get("initial_accumulator_value") {
            cfg.adagrad.initial_accumulator_value =
                number("initial_accumulator_value", v, |x| x >= 0.0, "a number >= 0")?;
        }
        if let Some(v) = get("beta1") {
            cfg.adafactor.beta1 = Some(number("beta1", v, |x| (0.0..1.0).contains(&x), "a number in [0, 1)")?);
        }
        if let Some(v) = get("beta2_decay") {
            cfg.adafactor.beta2_decay =
                number("beta2_decay", v, |x| x < 0.0, "a number < 0 (beta2_t = 1 - t^beta2_decay)")?;
        }
        if let Some(v) = get("clip_threshold") {
            cfg.adafactor.clip_threshold = number("clip_threshold", v, |x| x > 0.0, "a number > 0")?;
        }
        if let Some(v) = get("relative_step") {
            cfg.adafactor.relative_step = boolean("relative_step", v)?;
        }
        if let Some(v) = get("epsilon") {
            cfg.shampoo.epsilon = number("epsilon", v, |x| x > 0.0, "a number > 0")?;
        }
        if let Some(v) = get("precondition_every") {
            cfg.shampoo.precondition_every = count("precondition_every", v, 1)?;
        }
        if let Some(v) = get("start_preconditioning_step") {
            cfg.shampoo.start_preconditioning_step = count("start_preconditioning_step", v, 1)?;
        }
        if let Some(v) = get("block_size") {
            cfg.shampoo.block_size = match count("block_size", v, 1)? {
                n if n <= MAX_BLOCK_SIZE => n as i64,
                _ => {
                    return Err(format!(
                        "params.optimizer.block_size: expected an integer in [1, {MAX_BLOCK_SIZE}], got {v}"
                    ))
                }
            };
        }
        if let Some(v) = get("graft") {
            let names = Graft::NAMES.map(|(n, _)| format!("\"{n}\"")).join(", ");
            cfg.shampoo.graft = v
                .as_str()
                .and_then(|s| Graft::NAMES.iter().find(|(n, _)| *n == s))
                .map(|(_, g)| *g)
                .ok_or_else(|| format!("params.optimizer.graft: expected one of {names}, got {v}"))?;
        }
        if let Some(v) = get("grad_clip") {
            cfg.grad_clip = Some(number("grad_clip", v, |x| x > 0.0, "a number > 0 (the maximum global L2 norm)")?);
        }
        if !(weight_decay.is_finite() && weight_decay >= 0.0) {
            return Err(format!("params.weight_decay: expected a number >= 0, got {weight_decay}"));
        }
        cfg.weight_decay = weight_decay;
        Ok(cfg)
    }
}

/// Shampoo's preconditioners are block_size x block_size and each refresh decomposes them in
/// f64: a block of 8192 is 512 MiB per preconditioner, the most a sweep file may ask for.
pub const MAX_BLOCK_SIZE: u64 = 8192;

fn number(key: &str, value: &Value, ok: impl Fn(f64) -> bool, expected: &str) -> Result<f64, String> {
    match value.as_f64() {
        Some(x) if x.is_finite() && ok(x) => Ok(x),
        _ => Err(format!("params.optimizer.{key}: expected {expected}, got {value}")),
    }
}

fn boolean(key: &str, value: &Value) -> Result<bool, String> {
    value.as_bool().ok_or_else(|| format!("params.optimizer.{key}: expected true or false, got {value}"))
}

/// An integer >= `min`.
fn count(key: &str, value: &Value, min: u64) -> Result<u64, String> {
    value
        .as_u64()
        .filter(|&n| n >= min)
        .ok_or_else(|| format!("params.optimizer.{key}: expected an integer >= {min}, got {value}"))
}

/// Two numbers, each passing `ok`: Adam's betas, Adafactor's eps.
fn pair(key: &str, value: &Value, ok: impl Fn(f64) -> bool, each: &str) -> Result<(f64, f64), String> {
    let expected = format!("expected a pair [a, b] {each}");
    let pair = value
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or_else(|| format!("params.optimizer.{key}: {expected}, got {value}"))?;
    let mut out = [0.0; 2];
    for (slot, v) in out.iter_mut().zip(pair) {
        *slot = v
            .as_f64()
            .filter(|x| x.is_finite() && ok(*x))
            .ok_or_else(|| format!("params.optimizer.{key}: {expected}, got {value}"))?;
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
                adagrad: DEFAULT_ADAGRAD,
                adafactor: DEFAULT_ADAFACTOR,
                shampoo: DEFAULT_SHAMPOO,
            }
        );
        let c = parse(json!({"name": "sgd", "lr": 1, "momentum": 0.9, "nesterov": true, "grad_clip": 5}), 0.0).unwrap();
        assert_eq!(
            (c.name, c.lr, c.momentum, c.nesterov, c.grad_clip),
            (OptimizerKind::Sgd, 1.0, 0.9, true, Some(5.0))
        );
        let c = parse(json!({"name": "adamw", "lr": 0.001, "betas": [0.8, 0.99], "eps": 1e-6}), 0.1).unwrap();
        assert_eq!((c.name, c.beta1, c.beta2, c.eps), (OptimizerKind::AdamW, 0.8, 0.99, 1e-6));
        let c = parse(json!({"name": "adagrad", "lr": 0.1}), 0.0).unwrap();
        assert_eq!((c.eps, c.adagrad), (DEFAULT_ADAGRAD_EPS, DEFAULT_ADAGRAD));
        let c = parse(json!({"name": "adagrad", "lr": 0.1, "eps": 1e-6, "lr_decay": 0.01}), 0.0).unwrap();
        assert_eq!((c.eps, c.adagrad.lr_decay), (1e-6, 0.01));
        let c = parse(
            json!({"name": "adafactor", "lr": 0.01, "beta1": 0.9, "eps": [1e-30, 1e-3], "relative_step": false}),
            0.0,
        )
        .unwrap();
        let want = AdafactorConfig { beta1: Some(0.9), eps1: Some(1e-30), relative_step: false, ..DEFAULT_ADAFACTOR };
        assert_eq!(c.adafactor, want);
        let c = parse(
            json!({"name": "shampoo", "lr": 0.1, "momentum": 0.9, "epsilon": 1e-4, "precondition_every": 10,
                   "start_preconditioning_step": 5, "block_size": 64, "graft": "adagrad"}),
            0.0,
        )
        .unwrap();
        let want = ShampooConfig {
            epsilon: 1e-4,
            precondition_every: 10,
            start_preconditioning_step: 5,
            block_size: 64,
            graft: Graft::Adagrad,
        };
        assert_eq!((c.momentum, c.shampoo), (0.9, want));
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
            (
                json!({"name": "adam", "lr": 0.1, "lr_decay": 0.1}),
                0.0,
                "params.optimizer.lr_decay: applies to name = \"adagrad\" only",
            ),
            (json!({"name": "sgd", "lr": 0.1, "eps": 1e-3}), 0.0, "params.optimizer.eps: applies to"),
            (json!({"name": "shampoo", "lr": 0.1, "nesterov": true}), 0.0, "params.optimizer.nesterov"),
            (json!({"name": "adafactor", "lr": 0.1, "eps": 1e-3}), 0.0, "params.optimizer.eps: expected a pair"),
            (json!({"name": "adafactor", "lr": 0.1, "beta2_decay": 0.8}), 0.0, "params.optimizer.beta2_decay"),
            (json!({"name": "adafactor", "lr": 0.1, "relative_step": 1}), 0.0, "params.optimizer.relative_step"),
            (
                json!({"name": "shampoo", "lr": 0.1, "precondition_every": 0}),
                0.0,
                "params.optimizer.precondition_every",
            ),
            (json!({"name": "shampoo", "lr": 0.1, "block_size": 1e9}), 0.0, "params.optimizer.block_size"),
            (
                json!({"name": "shampoo", "lr": 0.1, "block_size": 100000}),
                0.0,
                "params.optimizer.block_size: expected an integer in [1, 8192]",
            ),
            (json!({"name": "shampoo", "lr": 0.1, "graft": "adam"}), 0.0, "params.optimizer.graft"),
            (json!({"name": "adam", "lr": 0.1}), -0.1, "params.weight_decay"),
            (json!({"name": "adam", "lr": 0.1}), f64::NAN, "params.weight_decay"),
        ];
        for (table, wd, want) in cases {
            let err = parse(table.clone(), wd).unwrap_err();
            assert!(err.starts_with(want), "{table} (wd {wd}): {err}");
        }
    }
}
