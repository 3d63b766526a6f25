//! Evaluation passes: summed loss and error count stay on the device and are read once per pass,
//! so evaluation never stalls the GPU batch by batch.

use super::{autocast, Batch, Precision};
use tch::{nn::ModuleT, Device, Kind, Reduction, Tensor};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction of misclassified examples.
    pub error: f64,
    pub examples: i64,
}

pub fn evaluate(
    net: &dyn ModuleT,
    batches: impl Iterator<Item = Batch>,
    device: Device,
    precision: Precision,
) -> Evaluation {
    let mut loss_sum = Tensor::zeros([], (Kind::Double, device));
    let mut wrong = Tensor::zeros([], (Kind::Int64, device));
    let mut examples = 0i64;
    for_each_batch(net, batches, device, precision, |logits, y| {
        let _ = loss_sum.f_add_(&summed_cross_entropy(logits, y));
        let _ = wrong.f_add_(&logits.argmax(-1, false).ne_tensor(y).sum(Kind::Int64));
        examples += y.size()[0];
    });
    let n = examples.max(1) as f64;
    Evaluation { loss: loss_sum.double_value(&[]) / n, error: wrong.int64_value(&[]) as f64 / n, examples }
}

/// One pass in evaluation mode without gradients: each batch's logits (f32) and labels, both on
/// `device`, handed to `visit`, which keeps its tallies on the device too.
pub fn for_each_batch(
    net: &dyn ModuleT,
    batches: impl Iterator<Item = Batch>,
    device: Device,
    precision: Precision,
    mut visit: impl FnMut(&Tensor, &Tensor),
) {
    tch::no_grad(|| {
        for b in batches {
            let x = b.inputs.to_device(device);
            let y = b.labels.to_device(device);
            let logits = autocast(precision, device, || net.forward_t(&x, false)).to_kind(Kind::Float);
            visit(&logits, &y);
        }
    })
}

/// The batch's cross-entropy summed over its examples, as a 0-d f64 tensor on the logits' device.
pub fn summed_cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::Sum, -100, 0.0).to_kind(Kind::Double)
}

/// Each member's evaluation of a fused group, from one pass of fused batches
/// ([`super::fused_batches`]): logits [B, G, classes] against labels [B, G]. Sums stay on the
/// device until the pass ends.
pub fn evaluate_members(
    net: &dyn ModuleT,
    batches: impl Iterator<Item = Batch>,
    members: i64,
    device: Device,
    precision: Precision,
) -> Vec<Evaluation> {
    let mut loss_sum = Tensor::zeros([members], (Kind::Double, device));
    let mut wrong = Tensor::zeros([members], (Kind::Int64, device));
    let mut examples = 0i64;
    for_each_batch(net, batches, device, precision, |logits, y| {
        let _ = loss_sum.f_add_(&member_cross_entropy(logits, y).to_kind(Kind::Double).sum_dim_intlist(0, false, None));
        let _ = wrong.f_add_(&logits.argmax(-1, false).ne_tensor(y).sum_dim_intlist(0, false, Kind::Int64));
        examples += y.size()[0];
    });
    let n = examples.max(1) as f64;
    let (loss, wrong) =
        (Vec::<f64>::try_from(&loss_sum).unwrap_or_default(), Vec::<i64>::try_from(&wrong).unwrap_or_default());
    loss.iter().zip(&wrong).map(|(l, w)| Evaluation { loss: l / n, error: *w as f64 / n, examples }).collect()
}

/// Every example's cross-entropy for every member, [B, G], from logits [B, G, classes] and
/// labels [B, G].
pub fn member_cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    let (b, g, classes) = logits.size3().expect("fused logits are [batch, members, classes]");
    logits
        .reshape([b * g, classes])
        .cross_entropy_loss::<Tensor>(&labels.reshape([b * g]), None, Reduction::None, -100, 0.0)
        .view([b, g])
}
