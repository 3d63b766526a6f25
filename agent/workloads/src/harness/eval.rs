//! Evaluation passes: summed loss and error count stay on the device and are read once per pass,
//! so evaluation never stalls the GPU batch by batch. On CUDA with graphs on, the forward pass and
//! the tallies of a batch are captured after the first batch of each shape and replayed for the
//! others, as the training step is.

use super::{autocast, Batch, GraphMode, Precision, StepGraph};
use tch::{nn::ModuleT, Device, Kind, Reduction, Tensor};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction of misclassified examples.
    pub error: f64,
    pub examples: i64,
}

/// How evaluation passes run: where, at what precision, and whether batches replay a captured
/// CUDA graph (the trial's `cuda_graphs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalOn {
    pub device: Device,
    pub precision: Precision,
    pub graphs: GraphMode,
}

impl EvalOn {
    #[cfg(test)]
    pub fn cpu() -> EvalOn {
        EvalOn { device: Device::Cpu, precision: Precision::Fp32, graphs: GraphMode::Off }
    }
}

pub fn evaluate(net: &dyn ModuleT, batches: impl Iterator<Item = Batch>, on: EvalOn) -> Result<Evaluation, String> {
    let mut loss_sum = Tensor::zeros([], (Kind::Double, on.device));
    let mut wrong = Tensor::zeros([], (Kind::Int64, on.device));
    let examples = for_each_batch(net, batches, on, |logits, y| {
        let _ = loss_sum.f_add_(&summed_cross_entropy(logits, y));
        let _ = wrong.f_add_(&logits.argmax(-1, false).ne_tensor(y).sum(Kind::Int64));
    })?;
    let n = examples.max(1) as f64;
    Ok(Evaluation { loss: loss_sum.double_value(&[]) / n, error: wrong.int64_value(&[]) as f64 / n, examples })
}

/// One pass in evaluation mode without gradients: each batch's logits (f32) and labels, both on
/// the device, handed to `visit`; returns the examples seen. `visit` may only add to tallies that
/// live on the device: under a captured graph it runs once, at capture, and the graph replays
/// its device work for every later batch of the captured shape.
pub fn for_each_batch(
    net: &dyn ModuleT,
    batches: impl Iterator<Item = Batch>,
    on: EvalOn,
    mut visit: impl FnMut(&Tensor, &Tensor),
) -> Result<i64, String> {
    let mut graph = StepGraph::new(on.graphs, on.device);
    let mut examples = 0i64;
    tch::no_grad(|| {
        let mut pass = |x: &Tensor, y: &Tensor| {
            let logits = autocast(on.precision, on.device, || net.forward_t(x, false)).to_kind(Kind::Float);
            visit(&logits, y);
        };
        for b in batches {
            let x = b.inputs.to_device(on.device);
            let y = b.labels.to_device(on.device);
            examples += y.size()[0];
            // Nothing is captured while graphs are off, so this replays only what was captured.
            let replayed = graph.replay(&x, &y, |x, y| {
                pass(x, y);
                Ok(())
            })?;
            if !replayed {
                pass(&x, &y);
                graph.capture_after(&x, &y, |x, y| {
                    pass(x, y);
                    Ok(())
                });
            }
        }
        Ok(examples)
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
    on: EvalOn,
) -> Result<Vec<Evaluation>, String> {
    let mut loss_sum = Tensor::zeros([members], (Kind::Double, on.device));
    let mut wrong = Tensor::zeros([members], (Kind::Int64, on.device));
    let examples = for_each_batch(net, batches, on, |logits, y| {
        let _ = loss_sum.f_add_(&member_cross_entropy(logits, y).to_kind(Kind::Double).sum_dim_intlist(0, false, None));
        let _ = wrong.f_add_(&logits.argmax(-1, false).ne_tensor(y).sum_dim_intlist(0, false, Kind::Int64));
    })?;
    let n = examples.max(1) as f64;
    let (loss, wrong) =
        (Vec::<f64>::try_from(&loss_sum).unwrap_or_default(), Vec::<i64>::try_from(&wrong).unwrap_or_default());
    Ok(loss.iter().zip(&wrong).map(|(l, w)| Evaluation { loss: l / n, error: *w as f64 / n, examples }).collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, Module};

    /// A fixed linear classifier and batches of 4, 4, 4 and a short 3 over 15 examples.
    fn setup() -> (nn::VarStore, nn::Linear, Vec<(Tensor, Tensor)>) {
        let _rng = crate::torch_rng_lock();
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let linear = nn::linear(vs.root(), 5, 3, Default::default());
        let x = Tensor::randn([15, 5], (Kind::Float, Device::Cpu));
        let y = Tensor::randint(3, [15], (Kind::Int64, Device::Cpu));
        let batches =
            (0..15).step_by(4).map(|s| (x.narrow(0, s, 4.min(15 - s)), y.narrow(0, s, 4.min(15 - s)))).collect();
        (vs, linear, batches)
    }

    #[test]
    fn replayed_evaluation_equals_eager_and_counts_every_example() {
        let (_vs, linear, batches) = setup();
        let net = nn::func_t(move |x, _| linear.forward(x));
        let pass = |graphs| {
            let batches = batches.iter().map(|(x, y)| Batch { inputs: x.shallow_clone(), labels: y.shallow_clone() });
            evaluate(&net, batches, EvalOn { graphs, ..EvalOn::cpu() }).unwrap()
        };
        let (eager, replayed) = (pass(GraphMode::Off), pass(GraphMode::Rehearse));
        assert_eq!(eager.examples, 15);
        assert_eq!(eager, replayed);
        // The tallies are those of the whole set in one batch.
        let (x, y): (Vec<Tensor>, Vec<Tensor>) =
            batches.iter().map(|(x, y)| (x.shallow_clone(), y.shallow_clone())).unzip();
        let whole = evaluate(
            &net,
            std::iter::once(Batch { inputs: Tensor::cat(&x, 0), labels: Tensor::cat(&y, 0) }),
            EvalOn::cpu(),
        )
        .unwrap();
        assert_eq!(eager.error, whole.error);
        assert!((eager.loss - whole.loss).abs() < 1e-6, "{} vs {}", eager.loss, whole.loss);
    }
}
