//! The per-parameter update rules of SGD, Adam, AdamW and Adagrad, written op by op after PyTorch's
//! single-tensor implementations (`torch/optim/sgd.py`, `adam.py`, `adagrad.py`; the default on the
//! CPU), so the same inputs give the same numbers in the same order of rounding. Adafactor and
//! Shampoo keep their rules in files of their own.

use super::config::{OptimizerConfig, OptimizerKind};
use super::{adafactor, shampoo};
use tch::Tensor;

/// A parameter's optimizer state. It is allocated when the optimizer is built, not on the first
/// step as in PyTorch, so that the set of state tensors (and a checkpoint's names) never changes.
pub(super) enum Slots {
    /// Plain SGD keeps nothing.
    None,
    /// SGD with momentum; meaningful once the parameter has taken one step (PyTorch's buffer is
    /// created then, as a copy of the gradient).
    Momentum {
        buf: Tensor,
    },
    Adam {
        exp_avg: Tensor,
        exp_avg_sq: Tensor,
    },
    Adagrad {
        sum: Tensor,
    },
    Adafactor(adafactor::State),
    Shampoo(shampoo::State),
}

impl Slots {
    pub(super) fn new(cfg: &OptimizerConfig, var: &Tensor) -> Slots {
        match cfg.name {
            OptimizerKind::Sgd if cfg.momentum == 0.0 => Slots::None,
            OptimizerKind::Sgd => Slots::Momentum { buf: var.zeros_like() },
            OptimizerKind::Adam | OptimizerKind::AdamW => {
                Slots::Adam { exp_avg: var.zeros_like(), exp_avg_sq: var.zeros_like() }
            }
            OptimizerKind::Adagrad => Slots::Adagrad { sum: var.full_like(cfg.adagrad.initial_accumulator_value) },
            OptimizerKind::Adafactor => Slots::Adafactor(adafactor::State::new(&cfg.adafactor, var)),
            OptimizerKind::Shampoo => Slots::Shampoo(shampoo::State::new(cfg, var)),
        }
    }

    /// The state tensors under PyTorch's state-dict names where PyTorch has the optimizer.
    pub(super) fn named(&self) -> Vec<(String, &Tensor)> {
        fn fixed<'a>(pairs: Vec<(&str, &'a Tensor)>) -> Vec<(String, &'a Tensor)> {
            pairs.into_iter().map(|(n, t)| (n.to_string(), t)).collect()
        }
        match self {
            Slots::None => vec![],
            Slots::Momentum { buf } => fixed(vec![("momentum_buffer", buf)]),
            Slots::Adam { exp_avg, exp_avg_sq } => fixed(vec![("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)]),
            Slots::Adagrad { sum } => fixed(vec![("sum", sum)]),
            Slots::Adafactor(state) => state.named(),
            Slots::Shampoo(state) => state.named(),
        }
    }
}

/// A learning rate or weight decay: one number, or one per member of a fused group as a [G, 1]
/// tensor against parameters viewed as [G, n] (see [`apply`]).
pub(super) enum Rate {
    One(f64),
    Each(Tensor),
}

impl Rate {
    /// `t * rate`: for one number the very op the single-network rules use.
    fn scale(&self, t: &Tensor) -> Tensor {
        match self {
            Rate::One(r) => t * *r,
            Rate::Each(r) => t * r,
        }
    }

    fn is_zero(&self) -> bool {
        matches!(self, Rate::One(r) if *r == 0.0)
    }
}

/// A parameter's update count including the update being made: on the host, or (for a step a
/// CUDA graph captures) a 0-d float tensor on the device that the graph advances itself. A
/// device count is never the first update: graphs are captured after an eager step.
pub(super) enum Count<'a> {
    Host(u64),
    Device(&'a Tensor),
}

/// One update of `param` from `grad`; `step` counts this parameter's updates including this one.
/// Must run under `no_grad`. With per-member rates ([G, 1] tensors), the parameter, its gradient and
/// its state are viewed as [G, n]: a fused variable holds its members one after another along the
/// first axis, so row g is member g's slice.
///
/// PyTorch evaluates `a.add(b, alpha=s)` as one fused multiply-add, which tch cannot call (it has
/// no `alpha` argument); here it is `a + b * s`, two roundings. SGD's update and the L2 decay term
/// therefore agree with PyTorch to the last bit or so, the rest op for op.
pub(super) fn apply(
    cfg: &OptimizerConfig,
    lr: &Rate,
    weight_decay: &Rate,
    param: &mut Tensor,
    grad: &Tensor,
    slots: &mut Slots,
    step: &Count,
) {
    if let Rate::Each(r) = lr {
        let rows = |t: &Tensor| t.view([r.size()[0], -1]);
        let (mut param, grad) = (rows(param), rows(grad));
        let mut slots = match slots {
            Slots::None => Slots::None,
            Slots::Momentum { buf } => Slots::Momentum { buf: rows(buf) },
            Slots::Adam { exp_avg, exp_avg_sq } => Slots::Adam { exp_avg: rows(exp_avg), exp_avg_sq: rows(exp_avg_sq) },
            _ => unreachable!("set_graph_rates refuses per-member rates for {}", cfg.name.name()),
        };
        return update(cfg, lr, weight_decay, &mut param, &grad, &mut slots, step);
    }
    update(cfg, lr, weight_decay, param, grad, slots, step)
}

fn update(
    cfg: &OptimizerConfig,
    lr: &Rate,
    wd: &Rate,
    param: &mut Tensor,
    grad: &Tensor,
    slots: &mut Slots,
    step: &Count,
) {
    match slots {
        Slots::None => sgd(cfg, lr, wd, param, grad, None, step),
        Slots::Momentum { buf } => sgd(cfg, lr, wd, param, grad, Some(buf), step),
        Slots::Adam { exp_avg, exp_avg_sq } => adam(cfg, lr, wd, param, grad, exp_avg, exp_avg_sq, step),
        host_only => {
            // Optimizer::set_graph_rates refuses these rules, so their rates and counts are the host's.
            let (Rate::One(lr), Rate::One(wd), Count::Host(t)) = (lr, wd, step) else {
                unreachable!("{} takes no per-member rates or device counts", cfg.name.name())
            };
            match host_only {
                Slots::Adagrad { sum } => adagrad(cfg, *lr, *wd, param, grad, sum, *t),
                Slots::Adafactor(state) => adafactor::update(&cfg.adafactor, *lr, *wd, param, grad, state, *t),
                Slots::Shampoo(state) => shampoo::update(cfg, *lr, *wd, param, grad, state, *t),
                _ => unreachable!("matched above"),
            }
        }
    }
}

fn adagrad(cfg: &OptimizerConfig, lr: f64, wd: f64, param: &mut Tensor, grad: &Tensor, sum: &mut Tensor, step: u64) {
    let g = if wd != 0.0 { grad + &*param * wd } else { grad.shallow_clone() };
    let clr = lr / (1.0 + (step - 1) as f64 * cfg.adagrad.lr_decay);
    // `addcmul_(g, g, value=1)`.
    let _ = sum.g_add_(&(&g * &g));
    let mut std = sum.sqrt();
    let _ = std.g_add_scalar_(cfg.eps);
    // `addcdiv_(g, std, value=-clr)` is value * g / std, added.
    let _ = param.g_add_(&((g * -clr) / std));
}

fn sgd(
    cfg: &OptimizerConfig,
    lr: &Rate,
    wd: &Rate,
    param: &mut Tensor,
    grad: &Tensor,
    buf: Option<&mut Tensor>,
    step: &Count,
) {
    // L2 decay: a new tensor, the stored gradient stays as backward left it (as in PyTorch).
    let mut g = if !wd.is_zero() { grad + wd.scale(param) } else { grad.shallow_clone() };
    if let Some(buf) = buf {
        if matches!(step, Count::Host(1)) {
            buf.copy_(&g);
        } else {
            // Dampening is 0, so PyTorch's `add_(g, alpha=1)` is an exact add.
            let _ = buf.g_mul_scalar_(cfg.momentum);
            let _ = buf.g_add_(&g);
        }
        g = if cfg.nesterov { &g + &*buf * cfg.momentum } else { buf.shallow_clone() };
    }
    let _ = param.g_sub_(&lr.scale(&g));
}

#[allow(clippy::too_many_arguments)]
fn adam(
    cfg: &OptimizerConfig,
    lr: &Rate,
    wd: &Rate,
    param: &mut Tensor,
    grad: &Tensor,
    exp_avg: &mut Tensor,
    exp_avg_sq: &mut Tensor,
    step: &Count,
) {
    let mut g = grad.shallow_clone();
    if !wd.is_zero() {
        match (cfg.name, lr, wd) {
            // Decoupled (Loshchilov & Hutter): shrink the weights, leave the moments alone.
            (OptimizerKind::AdamW, Rate::One(lr), Rate::One(wd)) => {
                let _ = param.g_mul_scalar_(1.0 - lr * wd);
            }
            (OptimizerKind::AdamW, _, _) => {
                let _ = param.g_sub_(&wd.scale(&lr.scale(param)));
            }
            _ => g = grad + wd.scale(param),
        }
    }
    let _ = exp_avg.lerp_(&g, 1.0 - cfg.beta1);
    // PyTorch's `addcmul_(g, g, value=1-beta2)` computes value * g * g from the left.
    let _ = exp_avg_sq.g_mul_scalar_(cfg.beta2);
    let _ = exp_avg_sq.g_add_(&(&g * (1.0 - cfg.beta2) * &g));
    let update = match step {
        Count::Host(step) => {
            // Python's `beta ** step` and `x ** 0.5` are libm's pow: powf, not powi or sqrt, gives its bits.
            let t = *step as f64;
            let bias_correction1 = 1.0 - cfg.beta1.powf(t);
            let bias_correction2 = 1.0 - cfg.beta2.powf(t);
            let mut denom = exp_avg_sq.sqrt() / bias_correction2.powf(0.5);
            let _ = denom.g_add_scalar_(cfg.eps);
            // `addcdiv_(exp_avg, denom, value=-step_size)` is value * exp_avg / denom, added.
            let scaled = match lr {
                Rate::One(lr) => &*exp_avg * (-(lr / bias_correction1)),
                Rate::Each(lr) => &*exp_avg * (lr / -bias_correction1),
            };
            scaled / &denom
        }
        Count::Device(t) => {
            // beta^t as exp(t ln beta): tensor ops, nothing read back to the host.
            let correction = |beta: f64| (*t * beta.ln()).exp().neg() + 1.0;
            let mut denom = exp_avg_sq.sqrt() / correction(cfg.beta2).sqrt();
            let _ = denom.g_add_scalar_(cfg.eps);
            lr.scale(&(&*exp_avg / correction(cfg.beta1))).neg() / &denom
        }
    };
    let _ = param.g_add_(&update);
}
