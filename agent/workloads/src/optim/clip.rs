//! Gradient clipping by global L2 norm, op for op as `torch.nn.utils.clip_grad_norm_`: the norm
//! of the per-tensor norms, and a scale of min(max_norm / (norm + 1e-6), 1) applied to every
//! gradient. It stays on the device (no host sync), so a captured training step can include it.

use tch::Tensor;

/// PyTorch's guard against dividing by a zero norm.
const NORM_EPS: f64 = 1e-6;

/// Scales `grads` in place so that their global L2 norm is at most `max_norm`; returns the norm
/// before clipping as a 0-d tensor, or none when there are no gradients.
pub(super) fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> Option<Tensor> {
    let first = grads.first()?;
    let device = first.device();
    let norms: Vec<Tensor> = grads.iter().map(|g| g.norm().to_device(device)).collect();
    let total = Tensor::stack(&norms, 0).norm();
    // Python's `max_norm / tensor` is `tensor.reciprocal() * max_norm`; same ops, same bits.
    let coef = ((&total + NORM_EPS).reciprocal() * max_norm).clamp_max(1.0);
    for g in grads.iter_mut() {
        // Multiplying by exactly 1 when under the limit avoids a data-dependent branch (and sync).
        let _ = g.g_mul_(&coef.to_device(g.device()));
    }
    Some(total)
}
