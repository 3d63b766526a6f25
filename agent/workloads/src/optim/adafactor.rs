//! Adafactor (Shazeer & Stern 2018), written op by op after PyTorch's single-tensor
//! `torch.optim.Adafactor`: second moments factored into row and column means for tensors of two
//! or more dimensions (over the last two axes), a time-dependent decay beta2_t = 1 - t^c, updates
//! clipped to RMS d, and a step relative to the parameter's own scale. Beyond PyTorch: an optional
//! first moment (`beta1`, the paper's section 7) and an absolute step (`relative_step = false`).

use super::config::AdafactorConfig;
use tch::{Kind, Tensor};

pub(super) struct State {
    second: Second,
    /// The running mean of the clipped update, when `beta1` asks for one.
    exp_avg: Option<Tensor>,
}

enum Second {
    /// Means of the squared gradient over the last axis (`row_var`, shape [..., m, 1]) and over the
    /// second-to-last (`col_var`, [..., 1, n]): m + n numbers per matrix instead of m n.
    Factored { row_var: Tensor, col_var: Tensor },
    /// A vector keeps the full squared-gradient average.
    Full { variance: Tensor },
}

impl State {
    pub(super) fn new(cfg: &AdafactorConfig, var: &Tensor) -> State {
        let second = if var.dim() > 1 {
            let (mut row, mut col) = (var.size(), var.size());
            let n = row.len();
            row[n - 1] = 1;
            col[n - 2] = 1;
            let zeros = |shape: Vec<i64>| Tensor::zeros(shape, (var.kind(), var.device()));
            Second::Factored { row_var: zeros(row), col_var: zeros(col) }
        } else {
            Second::Full { variance: var.zeros_like() }
        };
        State { second, exp_avg: cfg.beta1.map(|_| var.zeros_like()) }
    }

    /// PyTorch's state-dict names, and `exp_avg` for the first moment.
    pub(super) fn named(&self) -> Vec<(String, &Tensor)> {
        let mut out = match &self.second {
            Second::Factored { row_var, col_var } => {
                vec![("row_var".to_string(), row_var), ("col_var".to_string(), col_var)]
            }
            Second::Full { variance } => vec![("variance".to_string(), variance)],
        };
        out.extend(self.exp_avg.iter().map(|m| ("exp_avg".to_string(), m)));
        out
    }
}

/// The machine epsilon of the parameter's dtype, PyTorch's floor when `eps1` is not set.
fn machine_epsilon(kind: Kind) -> f64 {
    match kind {
        Kind::Double => f64::EPSILON,
        Kind::BFloat16 => 2f64.powi(-7),
        Kind::Half => 2f64.powi(-10),
        _ => f32::EPSILON as f64,
    }
}

/// Root mean square of a tensor, read on the host (as PyTorch's `.item()` does).
fn rms(t: &Tensor) -> f64 {
    t.norm().double_value(&[]) / (t.numel() as f64).sqrt()
}

/// One update; `step` counts this parameter's updates including this one. Weight decay is
/// decoupled and goes by `lr`, not by the relative step (as in PyTorch).
pub(super) fn update(
    cfg: &AdafactorConfig,
    lr: f64,
    weight_decay: f64,
    param: &mut Tensor,
    grad: &Tensor,
    state: &mut State,
    step: u64,
) {
    let eps1 = cfg.eps1.unwrap_or_else(|| machine_epsilon(param.kind()));
    let t = step as f64;
    let one_minus_beta2 = t.powf(cfg.beta2_decay);
    let rho = if cfg.relative_step { lr.min(1.0 / t.powf(0.5)) } else { lr };
    let alpha = cfg.eps2.max(rms(param)) * rho;
    if weight_decay != 0.0 {
        let _ = param.g_mul_scalar_(1.0 - lr * weight_decay);
    }
    let var_estimate = match &mut state.second {
        Second::Factored { row_var, col_var } => {
            let mean_square = |axis: i64| {
                let n = grad.size()[(grad.dim() as i64 + axis) as usize] as f64;
                grad.norm_scalaropt_dim(2, [axis], true).square() / n
            };
            let _ = row_var.lerp_(&mean_square(-1), one_minus_beta2);
            let _ = col_var.lerp_(&mean_square(-2), one_minus_beta2);
            row_var.matmul(col_var) / row_var.mean_dim(-2, true, row_var.kind()).clamp_min(eps1)
        }
        Second::Full { variance } => {
            let _ = variance.lerp_(&(grad * grad), one_minus_beta2);
            variance.copy()
        }
    };
    let update = var_estimate.clamp_min(eps1 * eps1).rsqrt() * grad;
    let denom = 1f64.max(rms(&update) / cfg.clip_threshold);
    match (&mut state.exp_avg, cfg.beta1) {
        (Some(exp_avg), Some(beta1)) => {
            let _ = exp_avg.lerp_(&(update / denom), 1.0 - beta1);
            let _ = param.g_add_(&(&*exp_avg * -alpha));
        }
        // `add_(update, alpha=-alpha / denom)`.
        _ => {
            let _ = param.g_add_(&(update * (-alpha / denom)));
        }
    }
}
