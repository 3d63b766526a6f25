//! The per-parameter update rules of SGD, Adam and AdamW, written op by op after PyTorch's
//! single-tensor implementations (`torch/optim/sgd.py`, `adam.py`; the default on the CPU), so the
//! same inputs give the same numbers in the same order of rounding.

use super::config::{OptimizerConfig, OptimizerKind};
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
}

impl Slots {
    pub(super) fn new(cfg: &OptimizerConfig, var: &Tensor) -> Slots {
        match cfg.name {
            OptimizerKind::Sgd if cfg.momentum == 0.0 => Slots::None,
            OptimizerKind::Sgd => Slots::Momentum { buf: var.zeros_like() },
            OptimizerKind::Adam | OptimizerKind::AdamW => {
                Slots::Adam { exp_avg: var.zeros_like(), exp_avg_sq: var.zeros_like() }
            }
        }
    }

    /// The state tensors under PyTorch's state-dict names.
    pub(super) fn named(&self) -> Vec<(&'static str, &Tensor)> {
        match self {
            Slots::None => vec![],
            Slots::Momentum { buf } => vec![("momentum_buffer", buf)],
            Slots::Adam { exp_avg, exp_avg_sq } => vec![("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)],
        }
    }

    pub(super) fn named_mut(&mut self) -> Vec<(&'static str, &mut Tensor)> {
        match self {
            Slots::None => vec![],
            Slots::Momentum { buf } => vec![("momentum_buffer", buf)],
            Slots::Adam { exp_avg, exp_avg_sq } => vec![("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)],
        }
    }
}

/// One update of `param` from `grad`; `step` counts this parameter's updates including this one.
/// Must run under `no_grad`.
///
/// PyTorch evaluates `a.add(b, alpha=s)` as one fused multiply-add, which tch cannot call (it has
/// no `alpha` argument); here it is `a + b * s`, two roundings. SGD's update and the L2 decay term
/// therefore agree with PyTorch to the last bit or so, the rest op for op.
pub(super) fn apply(cfg: &OptimizerConfig, lr: f64, param: &mut Tensor, grad: &Tensor, slots: &mut Slots, step: u64) {
    match slots {
        Slots::None => sgd(cfg, lr, param, grad, None, step),
        Slots::Momentum { buf } => sgd(cfg, lr, param, grad, Some(buf), step),
        Slots::Adam { exp_avg, exp_avg_sq } => adam(cfg, lr, param, grad, exp_avg, exp_avg_sq, step),
    }
}

fn sgd(cfg: &OptimizerConfig, lr: f64, param: &mut Tensor, grad: &Tensor, buf: Option<&mut Tensor>, step: u64) {
    // L2 decay: a new tensor, the stored gradient stays as backward left it (as in PyTorch).
    let mut g = if cfg.weight_decay != 0.0 { grad + &*param * cfg.weight_decay } else { grad.shallow_clone() };
    if let Some(buf) = buf {
        if step == 1 {
            buf.copy_(&g);
        } else {
            // Dampening is 0, so PyTorch's `add_(g, alpha=1)` is an exact add.
            let _ = buf.g_mul_scalar_(cfg.momentum);
            let _ = buf.g_add_(&g);
        }
        g = if cfg.nesterov { &g + &*buf * cfg.momentum } else { buf.shallow_clone() };
    }
    let _ = param.g_sub_(&(g * lr));
}

fn adam(
    cfg: &OptimizerConfig,
    lr: f64,
    param: &mut Tensor,
    grad: &Tensor,
    exp_avg: &mut Tensor,
    exp_avg_sq: &mut Tensor,
    step: u64,
) {
    let mut g = grad.shallow_clone();
    if cfg.weight_decay != 0.0 {
        match cfg.name {
            // Decoupled (Loshchilov & Hutter): shrink the weights, leave the moments alone.
            OptimizerKind::AdamW => {
                let _ = param.g_mul_scalar_(1.0 - lr * cfg.weight_decay);
            }
            _ => g = grad + &*param * cfg.weight_decay,
        }
    }
    let _ = exp_avg.lerp_(&g, 1.0 - cfg.beta1);
    // PyTorch's `addcmul_(g, g, value=1-beta2)` computes value * g * g from the left.
    let _ = exp_avg_sq.g_mul_scalar_(cfg.beta2);
    let _ = exp_avg_sq.g_add_(&(&g * (1.0 - cfg.beta2) * &g));
    // Python's `beta ** step` and `x ** 0.5` are libm's pow: powf, not powi or sqrt, gives its bits.
    let t = step as f64;
    let bias_correction1 = 1.0 - cfg.beta1.powf(t);
    let bias_correction2 = 1.0 - cfg.beta2.powf(t);
    let step_size = lr / bias_correction1;
    let mut denom = exp_avg_sq.sqrt() / bias_correction2.powf(0.5);
    let _ = denom.g_add_scalar_(cfg.eps);
    // `addcdiv_(exp_avg, denom, value=-step_size)` is value * exp_avg / denom, added.
    let _ = param.g_add_(&(&*exp_avg * (-step_size) / &denom));
}
