//! The `edge_of_stability` workload (Cohen et al. 2021): full-batch gradient descent, with the
//! gradient summed over chunks of the training set, and the sharpness (the top eigenvalue of the
//! training loss's Hessian) measured by Lanczos on exact Hessian-vector products as it trains.
//!
//! Each step is one epoch and one record, numbered from 1. A record carries the loss, accuracy and
//! gradient norm of the iterate its step started from, and, every `sharpness_every` steps, that
//! iterate's sharpness (for Adam also the preconditioned sharpness, the top eigenvalue of
//! P^-1 H with Adam's current preconditioner P). Lanczos starts from the previous top eigenvector,
//! which the checkpoint keeps (as the non-trainable variables `lanczos.*`), so a resumed trial
//! measures what an uninterrupted one would.

mod full_batch;
mod lanczos;
mod params;
#[cfg(test)]
mod tests;

pub use params::Params;

use crate::error::TrialError;
use crate::harness::{self, Position};
use crate::models::dense::Dense;
use crate::models::{self, Arch, ModelSpec};
use crate::optim::Optimizer;
use crate::rng::{mix, Rng, Stream};
use crate::{checkpoint, image_data, Sink, TrialContext};
use full_batch::{FullBatch, Params as Flat};
use lanczos::top_eigenpairs;
use params::{Method, Model};
use std::collections::BTreeMap;
use std::time::Instant;
use sweep_spec::workloads::EDGE_OF_STABILITY;
use sweep_spec::{EpochRecord, TrialSpec};
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

pub fn run(spec: &TrialSpec, ctx: &TrialContext, sink: &mut Sink<'_>) -> Result<(), TrialError> {
    let p = Params::parse(&spec.params)?;
    let data_ref = spec.data.as_ref().ok_or_else(|| {
        TrialError::bad_config(format!(
            "data: workload `{}` needs a [data] section with `format` and `path`",
            EDGE_OF_STABILITY.name
        ))
    })?;
    let splits = image_data::load(data_ref)?;
    let train = image_data::first(splits.train, p.n_train);
    let size = train.images.size();
    let inputs = image_data::normalised(&train.images, &splits.mean, &splits.std).to_kind(Kind::Float);
    let data = FullBatch::new(
        inputs.to_device(ctx.device),
        train.labels.to_device(ctx.device),
        train.classes,
        p.loss,
        p.chunk_size,
    );

    let mut vars = VarStore::new(ctx.device);
    let net: Box<dyn ModuleT> = match p.model {
        Model::Mlp { activation, width, depth } => {
            let features = (size[1] * size[2] * size[3]) as usize;
            let mut sizes = vec![features];
            sizes.extend(std::iter::repeat_n(width, depth));
            sizes.push(train.classes as usize);
            Box::new(Dense::new(&vars.root(), &sizes, activation, p.seed))
        }
        Model::Cnn5 { width } => {
            tch::manual_seed(p.seed as i64);
            let spec = ModelSpec {
                arch: Arch::Cnn5,
                width,
                in_channels: size[1],
                image_size: size[2],
                classes: train.classes,
                dropout: 0.0,
            };
            models::build(&vars.root(), &spec).map_err(|e| TrialError::bad_config(format!("params: {e}")))?
        }
    };
    let flat = Flat::of(&vars);
    let starts = Starts::new(&vars, flat.count());
    let mut optimizer = Optimizer::new(p.optimizer(), &vars);
    eprintln!(
        "edge_of_stability: {} training points, {} parameters, lr {} (stability threshold {:.4})",
        data.len(),
        flat.count(),
        p.lr,
        p.stability_threshold()
    );
    let start = harness::resume(ctx.checkpoint_dir.as_deref(), &mut vars, &mut optimizer, EDGE_OF_STABILITY.name)?;
    let mut run = Run { p: &p, ctx, net: net.as_ref(), vars: &vars, optimizer: &mut optimizer, flat, data, starts };
    run.train(start.epoch, sink)
}

/// Lanczos's start vectors, kept in the checkpoint as non-trainable variables.
struct Starts {
    hessian: Tensor,
    preconditioned: Tensor,
}

impl Starts {
    fn new(vars: &VarStore, count: i64) -> Starts {
        let root = vars.root();
        let lanczos = root.sub("lanczos");
        Starts {
            hessian: lanczos.zeros_no_train("start", &[count]),
            preconditioned: lanczos.zeros_no_train("preconditioned_start", &[count]),
        }
    }
}

struct Run<'a> {
    p: &'a Params,
    ctx: &'a TrialContext,
    net: &'a dyn ModuleT,
    vars: &'a VarStore,
    optimizer: &'a mut Optimizer,
    flat: Flat,
    data: FullBatch,
    starts: Starts,
}

impl Run<'_> {
    /// Steps from `first` (steps done) to the last, one record each.
    fn train(&mut self, first: u32, sink: &mut Sink<'_>) -> Result<(), TrialError> {
        let p = self.p;
        if let Some(rung) = harness::paused_before(first, p.steps, self.ctx.stop_after) {
            return Err(TrialError::Paused(rung));
        }
        for step in first..p.steps {
            if self.ctx.stop.is_raised() {
                self.save(step)?;
                return Err(TrialError::Interrupted);
            }
            let started = Instant::now();
            self.optimizer.zero_grad();
            let fit = self.data.gradient(self.net);
            let grads: Vec<Tensor> = self.flat.tensors().iter().map(|t| t.grad()).collect();
            let grad_norm = Flat::flatten(&grads).norm().double_value(&[]);
            let mut metrics = BTreeMap::new();
            if !(fit.loss.is_finite() && grad_norm.is_finite()) {
                eprintln!("edge_of_stability: diverged at step {}: training loss {}", step + 1, fit.loss);
                metrics.insert("diverged".to_string(), 1.0);
                return sink(EpochRecord { epoch: step + 1, step: Some(step as i64 + 1), metrics }).map_err(Into::into);
            }
            let mut seconds = started.elapsed().as_secs_f64();
            if p.measures_at(step) {
                self.measure(step, &mut metrics);
            }
            let stepped = Instant::now();
            self.optimizer.step(p.lr);
            if let Device::Cuda(i) = self.ctx.device {
                tch::Cuda::synchronize(i as i64);
            }
            seconds += stepped.elapsed().as_secs_f64();
            metrics.insert("train_loss".into(), fit.loss);
            metrics.insert("train_acc".into(), fit.accuracy);
            metrics.insert("grad_norm".into(), grad_norm);
            metrics.insert("two_over_lr".into(), 2.0 / p.lr);
            metrics.insert("stability_threshold".into(), p.stability_threshold());
            metrics.insert("lr".into(), p.lr);
            metrics.insert("epoch_seconds".into(), seconds);
            metrics.insert("samples_per_second".into(), self.data.len() as f64 / seconds.max(1e-9));
            sink(EpochRecord { epoch: step + 1, step: Some(step as i64 + 1), metrics })?;
            let done = step + 1;
            let due = harness::due_after(done, p.steps, self.ctx.checkpoint_every, self.ctx.stop_after);
            if due.save {
                self.save(done)?;
            }
            if due.pause {
                return Err(TrialError::Paused(done));
            }
        }
        Ok(())
    }

    /// The sharpness of the current iterate (and Adam's preconditioned sharpness) into `metrics`.
    fn measure(&mut self, step: u32, metrics: &mut BTreeMap<String, f64>) {
        let started = Instant::now();
        let (net, data, flat) = (self.net, &self.data, &self.flat);
        let mut fresh = fresh_vectors(self.p.seed, step, flat.count(), self.ctx.device);
        let hessian = top_eigenpairs(&mut |v| data.hvp(net, flat, v), &self.starts.hessian, self.p.lanczos, &mut fresh);
        let mut iterations = hessian.iterations;
        for (i, value) in hessian.values.iter().enumerate() {
            metrics.insert(format!("eigenvalue/{}", i + 1), *value);
        }
        metrics.insert("sharpness".into(), hessian.values[0]);
        tch::no_grad(|| self.starts.hessian.copy_(&hessian.vectors[0]));
        if let Some(scale) = self.adam_scale() {
            // The eigenvalues of P^-1 H are those of the symmetric P^-1/2 H P^-1/2.
            let one = crate::edge_of_stability::lanczos::Settings { k: 1, ..self.p.lanczos };
            let found = top_eigenpairs(
                &mut |v| &scale * data.hvp(net, flat, &(&scale * v)),
                &self.starts.preconditioned,
                one,
                &mut fresh,
            );
            iterations += found.iterations;
            metrics.insert("preconditioned_sharpness".into(), found.values[0]);
            tch::no_grad(|| self.starts.preconditioned.copy_(&found.vectors[0]));
        }
        if let Device::Cuda(i) = self.ctx.device {
            tch::Cuda::synchronize(i as i64);
        }
        metrics.insert("lanczos_iterations".into(), iterations as f64);
        metrics.insert("sharpness_seconds".into(), started.elapsed().as_secs_f64());
    }

    /// P^-1/2 as a flat vector, with Adam's preconditioner P = (1 - beta1^t)(sqrt(v / (1 - beta2^t)) + eps)
    /// after its t steps so far; none before the first step or for the other methods.
    fn adam_scale(&self) -> Option<Tensor> {
        if self.p.method != Method::Adam || self.optimizer.steps() == 0 {
            return None;
        }
        let cfg = self.optimizer.config();
        let state: BTreeMap<String, Tensor> = self.optimizer.state().into_iter().collect();
        let parts: Vec<Tensor> = self
            .flat
            .named
            .iter()
            .map(|(name, var)| {
                let t = state[&format!("step/{name}")].int64_value(&[]) as f64;
                let second = &state[&format!("exp_avg_sq/{name}")];
                let p = ((second / (1.0 - cfg.beta2.powf(t))).sqrt() + cfg.eps) * (1.0 - cfg.beta1.powf(t));
                p.reciprocal().sqrt().to_kind(var.kind())
            })
            .collect();
        Some(Flat::flatten(&parts))
    }

    fn save(&self, steps_done: u32) -> Result<(), TrialError> {
        if let Some(dir) = &self.ctx.checkpoint_dir {
            let at = Position { epoch: steps_done, batch: 0, step: steps_done as u64 };
            checkpoint::save(dir, self.vars, self.optimizer, &at.meta(EDGE_OF_STABILITY.name))?;
        }
        Ok(())
    }
}

/// Random start vectors for Lanczos, a function of (seed, step) only.
fn fresh_vectors(seed: u64, step: u32, count: i64, device: Device) -> impl FnMut() -> Tensor {
    let mut rng = Rng::new(mix(seed, step as u64), Stream::Lanczos);
    move || Tensor::from_slice(&rng.normals(count as usize)).to_device(device)
}
