//! Trained mode of `mlp` (`hidden_trainable = true`): a ReLU MLP (`models::dense`) fitted on cross-entropy by the
//! shared training loop, so it checkpoints and resumes like every other study. Initialisation and
//! shuffling draw from the seed's own streams, never libtorch's global generator.

use super::data::Dataset;
use super::MlpParams;
use crate::error::TrialError;
use crate::harness::{self, Batch, Plan, TrainData};
use crate::models::dense::{Activation, Dense};
use crate::optim::{LrSchedule, Optimizer};
use crate::rng::{Rng, Stream};
use crate::{Sink, TrialContext};
use tch::nn;
use tch::{Device, Tensor};

/// The synthetic set as the training loop sees it: shuffled mini-batches by (seed, epoch).
struct VectorData {
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    batch_size: i64,
    seed: u64,
}

impl TrainData for VectorData {
    fn train_batches(&self, epoch: u64, start: u64) -> Box<dyn Iterator<Item = Batch> + '_> {
        let n = self.train_y.size()[0];
        let mut rng = Rng::new(crate::rng::mix(self.seed, epoch), Stream::Shuffle);
        let order = Tensor::from_slice(&rng.permutation(n as usize));
        let bs = self.batch_size;
        Box::new((start as i64 * bs..n).step_by(bs as usize).map(move |first| {
            let idx = order.narrow(0, first, bs.min(n - first));
            Batch { inputs: self.train_x.index_select(0, &idx), labels: self.train_y.index_select(0, &idx) }
        }))
    }

    fn batches_per_epoch(&self) -> u64 {
        (self.train_y.size()[0] as u64).div_ceil(self.batch_size as u64)
    }

    fn eval_train(&self) -> Box<dyn Iterator<Item = Batch> + '_> {
        Box::new(std::iter::once(Batch { inputs: self.train_x.shallow_clone(), labels: self.train_y.shallow_clone() }))
    }

    fn eval_test(&self) -> Box<dyn Iterator<Item = Batch> + '_> {
        Box::new(std::iter::once(Batch { inputs: self.test_x.shallow_clone(), labels: self.test_y.shallow_clone() }))
    }
}

pub fn train(p: &MlpParams, data: &Dataset, ctx: &TrialContext, sink: &mut Sink<'_>) -> Result<(), TrialError> {
    let t = data.to_tensors(Device::Cpu);
    let mut vs = nn::VarStore::new(ctx.device);
    let mut sizes = vec![data.dim];
    sizes.extend(std::iter::repeat_n(p.width, p.depth));
    sizes.push(data.classes);
    let model = Dense::new(&vs.root(), &sizes, Activation::Relu, p.seed);
    let mut optimizer = Optimizer::new(p.optimizer.clone(), &vs);
    let vectors = VectorData {
        train_x: t.train_x,
        train_y: t.train_y,
        test_x: t.test_x,
        test_y: t.test_y,
        batch_size: p.batch_size as i64,
        seed: p.seed,
    };
    let plan = Plan::new(sweep_spec::workloads::MLP.name, ctx, p.epochs as u32, p.seed);
    let constant = LrSchedule::from_params(None, p.epochs as u32).map_err(TrialError::bad_config)?;
    let trial = harness::Trial {
        net: &model,
        vars: &mut vs,
        optimizer: &mut optimizer,
        schedule: &constant,
        base_lr: p.optimizer.lr,
        data: &vectors,
        objective: &harness::ErrorRates,
        checkpoint_dir: ctx.checkpoint_dir.clone(),
    };
    harness::train(trial, &plan, sink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlp::data::DataParams;
    use crate::optim::OptimizerConfig;
    use serde_json::json;
    use sweep_spec::EpochRecord;

    fn params(optimizer: serde_json::Value, epochs: usize) -> MlpParams {
        MlpParams {
            width: 32,
            depth: 2,
            hidden_trainable: true,
            data: DataParams { n: 256, n_test: 256, dim: 4, classes: 2, label_noise: 0.0 },
            epochs,
            batch_size: 32,
            optimizer: OptimizerConfig::from_params(optimizer.as_object().unwrap(), 0.0).unwrap(),
            weight_decay: 0.0,
            seed: 1,
        }
    }

    fn run(p: &MlpParams) -> Vec<EpochRecord> {
        let mut records = Vec::new();
        let data = Dataset::generate(&p.data, p.seed);
        train(p, &data, &TrialContext::cpu(), &mut |r| {
            records.push(r);
            Ok(())
        })
        .unwrap();
        records
    }

    #[test]
    fn train_error_falls_on_an_easy_set() {
        for optimizer in [json!({"name": "adam", "lr": 1e-2}), json!({"name": "sgd", "lr": 0.1, "momentum": 0.9})] {
            let records = run(&params(optimizer.clone(), 8));
            let errors: Vec<f64> = records.iter().map(|r| r.metrics["train_error"]).collect();
            let (first, last) = (errors[0], errors[errors.len() - 1]);
            assert!(last < first && last < 0.1, "{optimizer}: train error {errors:?}");
            assert!(records.last().unwrap().metrics["test_error"] < 0.2, "{optimizer}");
        }
    }

    #[test]
    fn records_count_epochs_and_steps() {
        let mut p = params(json!({"name": "adam", "lr": 1e-3}), 3);
        p.batch_size = 100; // 256 points: two full batches and one of 56
        let records = run(&p);
        assert_eq!(records.iter().map(|r| r.epoch).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(records.iter().map(|r| r.step.unwrap()).collect::<Vec<_>>(), vec![3, 6, 9]);
        for name in
            ["train_loss", "train_error", "test_loss", "test_error", "lr", "epoch_seconds", "samples_per_second"]
        {
            assert!(records[0].metrics.contains_key(name), "missing {name}");
        }
        assert_eq!(records[0].metrics["lr"], 1e-3);
    }

    #[test]
    fn same_seed_same_metrics() {
        let p = params(json!({"name": "sgd", "lr": 0.05, "momentum": 0.5}), 2);
        let strip = |rs: Vec<EpochRecord>| -> Vec<Vec<(String, f64)>> {
            rs.into_iter()
                .map(|r| {
                    r.metrics
                        .into_iter()
                        .filter(|(k, _)| !["epoch_seconds", "samples_per_second"].contains(&k.as_str()))
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
