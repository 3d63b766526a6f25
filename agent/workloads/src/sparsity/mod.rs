//! The `sparsity` workload (Hoefler et al. 2021, "Sparsity in Deep Learning"; Han et al. 2015):
//! how far an image classifier can be thinned before its accuracy falls, which way of thinning it
//! does best, and what that buys in bytes and in inference time.
//!
//! The network trains through the one training loop ([`harness::train_with`]); before each epoch
//! the [`Pruner`] brings it to the sparsity its method and schedule ask for then. The masks are
//! variables of the var store and the optimizer applies them at every step, so a checkpoint holds
//! them and a pruned weight stays zero through momentum and Adam's moments. Every evaluated epoch
//! reports the accuracy with the sparsity, per layer too, the model's bytes dense, sparse (CSR)
//! and int8, and for the fully connected network the forward time dense against sparse.

mod footprint;
mod inference;
mod masks;
mod params;
#[cfg(test)]
mod tests;

pub use params::Params;

use crate::data;
use crate::error::TrialError;
use crate::harness::{self, BetweenEpochs, EvalOn, Objective, Plan, TrainData};
use crate::image_data::{self, Draws, ImageData};
use crate::models::{self, dense, ModelSpec};
use crate::optim::Optimizer;
use crate::{Sink, TrialContext};
use masks::Masks;
use params::{Method, Model};
use std::collections::BTreeMap;
use sweep_spec::TrialSpec;
use tch::nn::{ModuleT, VarStore};
use tch::Tensor;

/// Hidden layers of LeNet-300-100.
const LENET_HIDDEN: [usize; 2] = [300, 100];

pub fn run(spec: &TrialSpec, ctx: &TrialContext, sink: &mut Sink<'_>) -> Result<(), TrialError> {
    let p = Params::parse(&spec.params)?;
    let data_ref = spec.data.as_ref().ok_or_else(|| {
        TrialError::bad_config("data: workload `sparsity` needs a [data] section with `format` and `path`")
    })?;
    let splits = image_data::load(data_ref)?;
    let train = image_data::first(splits.train, p.n_train);
    let mut vars = VarStore::new(ctx.device);
    let net = network(&vars, &p, &train)?;
    let masks = Masks::new(&vars);
    let prunable: i64 = masks.layers.iter().map(|l| l.numel()).sum();
    eprintln!(
        "sparsity: {} training images, {} test; {} parameters, {prunable} of them prunable in {} layers; {:?} to {}",
        train.len(),
        splits.test.len(),
        models::parameter_count(&vars),
        masks.layers.len(),
        p.method,
        p.final_sparsity
    );
    let rewind = p.rewinds().then(|| Rewind::new(&vars));
    let mut optimizer = Optimizer::new(p.optimizer.clone(), &vars);
    optimizer.set_masks(&masks.by_variable()).map_err(|e| TrialError::Other(anyhow::anyhow!(e)))?;
    let mut plan = Plan::new(&spec.workload, ctx, p.total_epochs().unwrap_or(p.epochs), p.seed);
    plan.eval_every = p.eval_every;
    // The final weights and masks stay in the trial's checkpoint folder, where `sweep plot` draws
    // the first layer's filters and the masks from.
    plan.checkpoint_at_end = true;
    let draws = Draws {
        train,
        batch_size: p.batch_size,
        seed: p.seed,
        augment: p.augment,
        sampler: data::SamplerKind::Instance,
    };
    let data = ImageData::new(draws, splits.test, (splits.mean, splits.std), ctx.device);
    let objective = Report { p: &p, parameters: models::parameter_count(&vars), masks: &masks };
    let mut pruner = Pruner { p: &p, masks: &masks, rewind };
    let trial = harness::Trial {
        net: net.as_ref(),
        vars: &mut vars,
        optimizer: &mut optimizer,
        schedule: &p.schedule,
        base_lr: p.optimizer.lr,
        data: &data,
        objective: &objective,
        checkpoint_dir: ctx.checkpoint_dir.clone(),
    };
    harness::train_with(trial, &plan, sink, Some(&mut pruner))
}

/// The network of the trial's `model`, its variables drawn from the trial's seed.
fn network(vars: &VarStore, p: &Params, train: &data::ImageSet) -> Result<Box<dyn ModuleT + Send>, TrialError> {
    let size = train.images.size();
    match p.model {
        Model::Lenet300100 => {
            let inputs = (size[1] * size[2] * size[3]) as usize;
            let sizes = [inputs, LENET_HIDDEN[0], LENET_HIDDEN[1], train.classes as usize];
            Ok(Box::new(dense::Dense::new(&vars.root(), &sizes, dense::Activation::Relu, p.seed)))
        }
        Model::Net(arch) => {
            tch::manual_seed(p.seed as i64);
            let spec = ModelSpec {
                arch,
                width: p.width,
                in_channels: size[1],
                image_size: size[2],
                classes: train.classes,
                dropout: 0.0,
            };
            models::build(&vars.root(), &spec).map_err(|e| TrialError::bad_config(format!("params: {e}")))
        }
    }
}

/// The weights every round of iterative pruning starts from: a copy of the trainable variables taken before
/// epoch `rewind_epoch`, kept as variables `rewind.<name>` so a checkpoint holds them.
struct Rewind {
    pairs: Vec<(Tensor, Tensor)>,
}

impl Rewind {
    fn new(vars: &VarStore) -> Rewind {
        let pairs = masks::trainable_by_name(vars)
            .into_iter()
            .map(|(name, var)| {
                let (path, last) = masks::path_under(vars, "rewind", &name);
                let copy = path.zeros_no_train(last, &var.size());
                (var, copy)
            })
            .collect();
        Rewind { pairs }
    }

    fn take(&self) {
        tch::no_grad(|| {
            for (var, copy) in &self.pairs {
                copy.shallow_clone().copy_(var);
            }
        });
    }

    fn restore(&self) {
        tch::no_grad(|| {
            for (var, copy) in &self.pairs {
                var.shallow_clone().copy_(copy);
            }
        });
    }
}

/// Brings the network to the sparsity of its schedule before each epoch. Each step prunes to an
/// absolute sparsity, so running it twice for the same epoch changes nothing.
struct Pruner<'a> {
    p: &'a Params,
    masks: &'a Masks,
    rewind: Option<Rewind>,
}

impl BetweenEpochs for Pruner<'_> {
    fn before_epoch(&mut self, epoch: u32, optimizer: &mut Optimizer) {
        let p = self.p;
        if let Some(rewind) = &self.rewind {
            if epoch == p.rewind_epoch {
                rewind.take();
            }
        }
        let Some(target) = p.target_before(epoch) else {
            return;
        };
        match p.method {
            Method::Dense => {}
            Method::Magnitude | Method::L1 => self.masks.prune_magnitude(target, p.scope),
            Method::Random => self.masks.prune_random(target, p.seed, epoch),
            Method::Structured => self.masks.prune_neurons(target),
        }
        if let Some(rewind) = &self.rewind {
            rewind.restore();
            self.masks.apply();
            optimizer.reset();
        }
        let (s, _, nonzeros) = self.masks.sparsity();
        eprintln!("sparsity: before epoch {} pruned to {s:.4} ({nonzeros} weights left)", epoch + 1);
    }
}

/// What `sparsity` optimises and reports: cross-entropy (plus the L1 penalty while `l1` asks for
/// it), and after each evaluated epoch the error rates, accuracies, sparsity, bytes, int8 accuracy
/// and forward times.
struct Report<'a> {
    p: &'a Params,
    /// Trainable scalars, pruned or not.
    parameters: i64,
    masks: &'a Masks,
}

impl Objective for Report<'_> {
    fn loss(&self, logits: &Tensor, labels: &Tensor, epoch: u32) -> Tensor {
        let ce = logits.cross_entropy_for_logits(labels);
        if !self.p.l1_during(epoch) {
            return ce;
        }
        let penalty =
            self.masks.layers.iter().map(|l| l.weight.abs().sum(l.weight.kind())).fold(ce.zeros_like(), |a, b| a + b);
        ce + penalty * self.p.l1
    }

    fn evaluate(&self, net: &dyn ModuleT, data: &dyn TrainData, on: EvalOn) -> Result<BTreeMap<String, f64>, String> {
        let test = harness::evaluate(net, data.eval_test(), on)?;
        let mut m = harness::error_metrics(&harness::evaluate(net, data.eval_train(), on)?, &test);
        m.insert("train_acc".into(), 1.0 - m["train_error"]);
        m.insert("test_acc".into(), 1.0 - test.error);
        let (sparsity, per_layer, nonzeros) = self.masks.sparsity();
        m.insert("sparsity".into(), sparsity);
        for (layer, s) in per_layer {
            m.insert(format!("sparsity/{layer}"), s);
        }
        m.insert("nonzeros".into(), nonzeros as f64);
        let bytes = footprint::bytes(self.parameters, self.masks);
        m.insert("model_bytes_dense".into(), bytes.dense);
        m.insert("model_bytes_sparse".into(), bytes.sparse);
        m.insert("model_bytes_int8".into(), bytes.int8);
        m.insert("model_bytes_sparse_int8".into(), bytes.sparse_int8);
        if self.p.quantize {
            let int8 = footprint::with_int8_weights(self.masks, || harness::evaluate(net, data.eval_test(), on))?;
            m.insert("test_acc_int8".into(), 1.0 - int8.error);
        }
        if let (Some(layers), Some(batch)) = (inference::dense_layers(self.masks), data.eval_test().next()) {
            let n = self.p.inference_batch.min(batch.inputs.size()[0]);
            let t = inference::time(&layers, &batch.inputs.narrow(0, 0, n).to_device(on.device));
            m.insert("inference_ms_dense".into(), t.dense_ms);
            m.insert("inference_ms_sparse".into(), t.sparse_ms);
            m.insert("inference_ms_smaller".into(), t.smaller_ms);
        }
        Ok(m)
    }
}
