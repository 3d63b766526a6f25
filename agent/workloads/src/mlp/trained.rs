//! Trained mode of `mlp` (`hidden_trainable = true`): a ReLU MLP fitted by mini-batch Adam or SGD
//! on cross-entropy, reporting train and test loss and error on the full sets after every epoch.
//! Initialisation and shuffling draw from the seed's own streams, never libtorch's global generator.

use super::data::{Dataset, Tensors};
use super::{MlpParams, Optimizer};
use crate::random_features::error_rate;
use crate::error::TrialError;
use crate::rng::{Rng, Stream};
use crate::Sink;
use std::collections::BTreeMap;
use std::time::Instant;
use sweep_spec::EpochRecord;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Tensor};

/// `depth` hidden ReLU layers of `width` units and a linear output layer; weights are [out, in].
struct Mlp {
    layers: Vec<(Tensor, Tensor)>,
}

impl Mlp {
    /// PyTorch's default `nn.Linear` initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights
    /// and biases, drawn from the seed so that a trial is reproducible.
    fn new(root: &nn::Path, sizes: &[usize], seed: u64) -> Mlp {
        let mut rng = Rng::new(seed, Stream::Init);
        let mut uniform = |count: usize, bound: f64| -> Vec<f32> {
            (0..count)
                .map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32)
                .collect()
        };
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, io)| {
                let (fan_in, fan_out) = (io[0], io[1]);
                let bound = 1.0 / (fan_in as f64).sqrt();
                let w = Tensor::from_slice(&uniform(fan_out * fan_in, bound))
                    .view([fan_out as i64, fan_in as i64]);
                let b = Tensor::from_slice(&uniform(fan_out, bound));
                let layer = root / format!("layer{i}");
                (layer.var_copy("weight", &w), layer.var_copy("bias", &b))
            })
            .collect();
        Mlp { layers }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let last = self.layers.len() - 1;
        self.layers
            .iter()
            .enumerate()
            .fold(x.shallow_clone(), |h, (i, (w, b))| {
                let z = h.linear(w, Some(b));
                if i < last {
                    z.relu()
                } else {
                    z
                }
            })
    }

    /// Mean cross-entropy and error on a whole set, without building a graph.
    fn evaluate(&self, x: &Tensor, y: &Tensor) -> (f64, f64) {
        tch::no_grad(|| {
            let logits = self.forward(x);
            (
                logits.cross_entropy_for_logits(y).double_value(&[]),
                error_rate(&logits, y),
            )
        })
    }
}

pub fn train(
    p: &MlpParams,
    data: &Dataset,
    device: Device,
    sink: &mut Sink<'_>,
) -> Result<(), TrialError> {
    let t = data.to_tensors(device);
    let vs = nn::VarStore::new(device);
    let mut sizes = vec![data.dim];
    sizes.extend(std::iter::repeat_n(p.width, p.depth));
    sizes.push(data.classes);
    let model = Mlp::new(&vs.root(), &sizes, p.seed);
    // Both use weight_decay as an L2 term added to the gradient (torch.optim semantics).
    let mut opt = match p.optimizer {
        Optimizer::Adam { lr } => nn::Adam {
            wd: p.weight_decay,
            ..Default::default()
        }
        .build(&vs, lr)?,
        Optimizer::Sgd { lr, momentum } => nn::Sgd {
            momentum,
            dampening: 0.0,
            wd: p.weight_decay,
            nesterov: false,
        }
        .build(&vs, lr)?,
    };
    let mut shuffle = Rng::new(p.seed, Stream::Shuffle);
    let n = data.train_y.len() as i64;
    let mut steps: i64 = 0;
    for epoch in 1..=p.epochs {
        let start = Instant::now();
        let order = Tensor::from_slice(&shuffle.permutation(n as usize)).to_device(device);
        for first in (0..n).step_by(p.batch_size) {
            let idx = order.narrow(0, first, (p.batch_size as i64).min(n - first));
            let loss = model
                .forward(&t.train_x.index_select(0, &idx))
                .cross_entropy_for_logits(&t.train_y.index_select(0, &idx));
            opt.backward_step(&loss);
            steps += 1;
        }
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
        let seconds = start.elapsed().as_secs_f64();
        sink(EpochRecord {
            epoch: epoch as u32,
            step: Some(steps),
            metrics: epoch_metrics(&model, &t, p.optimizer.lr(), seconds, n),
        })?;
    }
    Ok(())
}

/// The per-epoch metrics; the timing covers the optimisation steps only, not the evaluation.
fn epoch_metrics(model: &Mlp, t: &Tensors, lr: f64, seconds: f64, n: i64) -> BTreeMap<String, f64> {
    let (train_loss, train_error) = model.evaluate(&t.train_x, &t.train_y);
    let (test_loss, test_error) = model.evaluate(&t.test_x, &t.test_y);
    [
        ("train_loss", train_loss),
        ("train_error", train_error),
        ("test_loss", test_loss),
        ("test_error", test_error),
        ("lr", lr),
        ("epoch_seconds", seconds),
        ("samples_per_second", n as f64 / seconds.max(1e-9)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::data::DataParams;

    fn params(optimizer: Optimizer, epochs: usize) -> MlpParams {
        MlpParams {
            width: 32,
            depth: 2,
            hidden_trainable: true,
            data: DataParams {
                n: 256,
                n_test: 256,
                dim: 4,
                classes: 2,
                label_noise: 0.0,
            },
            epochs,
            batch_size: 32,
            optimizer,
            weight_decay: 0.0,
            seed: 1,
        }
    }

    fn run(p: &MlpParams) -> Vec<EpochRecord> {
        let mut records = Vec::new();
        let data = Dataset::generate(&p.data, p.seed);
        train(p, &data, Device::Cpu, &mut |r| {
            records.push(r);
            Ok(())
        })
        .unwrap();
        records
    }

    #[test]
    fn train_error_falls_on_an_easy_set() {
        for optimizer in [
            Optimizer::Adam { lr: 1e-2 },
            Optimizer::Sgd {
                lr: 0.1,
                momentum: 0.9,
            },
        ] {
            let records = run(&params(optimizer, 8));
            let errors: Vec<f64> = records.iter().map(|r| r.metrics["train_error"]).collect();
            let (first, last) = (errors[0], errors[errors.len() - 1]);
            assert!(
                last < first && last < 0.1,
                "{optimizer:?}: train error {errors:?}"
            );
            assert!(
                records.last().unwrap().metrics["test_error"] < 0.2,
                "{optimizer:?}"
            );
        }
    }

    #[test]
    fn records_count_epochs_and_steps() {
        let mut p = params(Optimizer::Adam { lr: 1e-3 }, 3);
        p.batch_size = 100; // 256 points: two full batches and one of 56
        let records = run(&p);
        assert_eq!(
            records.iter().map(|r| r.epoch).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(
            records.iter().map(|r| r.step.unwrap()).collect::<Vec<_>>(),
            vec![3, 6, 9]
        );
        for name in [
            "train_loss",
            "train_error",
            "test_loss",
            "test_error",
            "lr",
            "epoch_seconds",
            "samples_per_second",
        ] {
            assert!(records[0].metrics.contains_key(name), "missing {name}");
        }
        assert_eq!(records[0].metrics["lr"], 1e-3);
    }

    #[test]
    fn same_seed_same_metrics() {
        let p = params(
            Optimizer::Sgd {
                lr: 0.05,
                momentum: 0.5,
            },
            2,
        );
        let strip = |rs: Vec<EpochRecord>| -> Vec<Vec<(String, f64)>> {
            rs.into_iter()
                .map(|r| {
                    r.metrics
                        .into_iter()
                        .filter(|(k, _)| {
                            !["epoch_seconds", "samples_per_second"].contains(&k.as_str())
                        })
                        .collect()
                })
                .collect()
        };
        assert_eq!(strip(run(&p)), strip(run(&p)));
        let mut other = p.clone();
        other.seed = 2;
        assert_ne!(strip(run(&p)), strip(run(&other)));
    }
}
