//! The `optimizers` workload: how fast each optimizer of [`crate::optim`] brings a problem's
//! training loss down, counted in steps and in seconds (Shampoo, Gupta et al. 2018; Adafactor,
//! Shazeer & Stern 2018; against SGD, Adam and Adagrad).
//!
//! Records are numbered by step (epoch = step = steps taken), every `record_every` steps and after
//! the last. Each carries the loss over the whole training set at that iterate, the last
//! mini-batch's loss, the seconds spent in training steps so far (evaluation and checkpoints not
//! counted) and the optimizer's state size; the first record at or below `target_loss` also
//! carries `steps_to_target` and `seconds_to_target`. Mini-batches follow a shuffled order per
//! pass that is a function of (seed, pass), so a trial resumed mid-pass draws the batches an
//! uninterrupted one would; the clock and the target's step travel in the checkpoint.

mod params;
mod problem;
#[cfg(test)]
mod tests;

pub use params::Params;

use crate::error::TrialError;
use crate::harness::{self, Position};
use crate::optim::Optimizer;
use crate::rng::{mix, Rng, Stream};
use crate::{checkpoint, Sink, TrialContext};
use problem::Data;
use std::collections::BTreeMap;
use std::time::Instant;
use sweep_spec::workloads::OPTIMIZERS;
use sweep_spec::{EpochRecord, TrialSpec};
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

pub fn run(spec: &TrialSpec, ctx: &TrialContext, sink: &mut Sink<'_>) -> Result<(), TrialError> {
    let p = Params::parse(&spec.params)?;
    let data = problem::data(p.problem, spec, p.n_train, p.seed, ctx.device)?;
    let mut vars = VarStore::new(ctx.device);
    let net = problem::network(p.problem, &vars.root(), &data, p.seed)?;
    let progress = vars.root().zeros_no_train("progress", &[Progress::LEN]);
    let mut optimizer = Optimizer::new(p.optimizer.clone(), &vars);
    eprintln!(
        "optimizers: {:?} on {} points, batch {}, {} {} at lr {}, {} bytes of optimizer state",
        p.problem,
        data.points(),
        if p.batch_size == 0 { "all".to_string() } else { p.batch_size.to_string() },
        p.optimizer.name.name(),
        if p.optimizer.weight_decay > 0.0 {
            format!("(weight decay {})", p.optimizer.weight_decay)
        } else {
            String::new()
        },
        p.optimizer.lr,
        optimizer.state_bytes()
    );
    let start = harness::resume(ctx.checkpoint_dir.as_deref(), &mut vars, &mut optimizer, OPTIMIZERS.name)?;
    let mut run = Run {
        p: &p,
        ctx,
        net: net.as_ref(),
        vars: &vars,
        optimizer: &mut optimizer,
        order: Order::new(&data, p.batch_size, p.seed),
        data: &data,
        progress: Progress::read(&progress),
        progress_var: progress,
    };
    run.train(start.epoch, sink)
}

/// What the records accumulate across a resume, kept in the checkpoint as the non-trainable
/// variable `progress`: [seconds of training steps, step the target was reached at (0: not yet),
/// seconds then].
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    seconds: f64,
    target: Option<(u32, f64)>,
}

impl Progress {
    const LEN: i64 = 3;

    fn read(var: &Tensor) -> Progress {
        let v: Vec<f64> = Vec::try_from(var.to_kind(Kind::Double).to_device(Device::Cpu)).unwrap_or_default();
        let at = |i: usize| v.get(i).copied().unwrap_or(0.0);
        let target = (at(1) >= 1.0).then(|| (at(1) as u32, at(2)));
        Progress { seconds: at(0), target }
    }

    fn write(&self, var: &Tensor) {
        let (step, seconds) = self.target.map(|(s, t)| (s as f64, t)).unwrap_or((0.0, 0.0));
        let values = Tensor::from_slice(&[self.seconds, step, seconds]).to_kind(var.kind());
        tch::no_grad(|| var.shallow_clone().copy_(&values));
    }
}

/// The mini-batch order: every point once per pass, shuffled per pass from (seed, pass); the last
/// partial batch of a pass is dropped, so every step sees `batch_size` points.
struct Order {
    batch: i64,
    per_pass: u64,
    seed: u64,
    /// The pass whose permutation is held.
    pass: Option<(u64, Tensor)>,
}

impl Order {
    fn new(data: &Data, batch_size: usize, seed: u64) -> Order {
        let n = data.points();
        let batch = if batch_size == 0 { n } else { (batch_size as i64).min(n) };
        Order { batch, per_pass: (n / batch.max(1)).max(1) as u64, seed, pass: None }
    }

    /// The inputs and targets of the batch of step `step` (0-based).
    fn batch(&mut self, data: &Data, step: u64) -> (Tensor, Tensor) {
        if self.batch == data.points() {
            return (data.inputs.shallow_clone(), data.targets.shallow_clone());
        }
        let (pass, index) = (step / self.per_pass, (step % self.per_pass) as i64);
        if self.pass.as_ref().is_none_or(|(p, _)| *p != pass) {
            let order = Rng::new(mix(self.seed, pass), Stream::EpochOrder).permutation(data.points() as usize);
            self.pass = Some((pass, Tensor::from_slice(&order).to_device(data.inputs.device())));
        }
        let order = &self.pass.as_ref().expect("set above").1;
        let picked = order.narrow(0, index * self.batch, self.batch);
        (data.inputs.index_select(0, &picked), data.targets.index_select(0, &picked))
    }
}

struct Run<'a> {
    p: &'a Params,
    ctx: &'a TrialContext,
    net: &'a dyn ModuleT,
    vars: &'a VarStore,
    optimizer: &'a mut Optimizer,
    order: Order,
    data: &'a Data,
    progress: Progress,
    progress_var: Tensor,
}

impl Run<'_> {
    /// Steps from `first` (steps done) to the last.
    fn train(&mut self, first: u32, sink: &mut Sink<'_>) -> Result<(), TrialError> {
        let p = self.p;
        if let Some(rung) = harness::paused_before(first, p.steps, self.ctx.stop_after) {
            return Err(TrialError::Paused(rung));
        }
        let classification = self.data.classes.is_some();
        let (mut since_record, mut steps_since) = (0.0, 0u32);
        for step in first..p.steps {
            if self.ctx.stop.is_raised() {
                self.save(step)?;
                return Err(TrialError::Interrupted);
            }
            let started = Instant::now();
            let (x, y) = self.order.batch(self.data, step as u64);
            self.optimizer.zero_grad();
            let loss = problem::loss(&self.net.forward_t(&x, true), &y, classification);
            loss.backward();
            self.optimizer.step(p.optimizer.lr);
            if let Device::Cuda(i) = self.ctx.device {
                tch::Cuda::synchronize(i as i64);
            }
            let seconds = started.elapsed().as_secs_f64();
            self.progress.seconds += seconds;
            since_record += seconds;
            steps_since += 1;

            let done = step + 1;
            let due = harness::due_after(done, p.steps, self.ctx.checkpoint_every, self.ctx.stop_after);
            if p.records_at(done) || due.pause {
                let record = self.record(done, loss.double_value(&[]), since_record / steps_since as f64);
                let diverged = record.metrics.contains_key("diverged");
                sink(record)?;
                if diverged {
                    return Ok(());
                }
                (since_record, steps_since) = (0.0, 0);
            }
            if due.save {
                self.save(done)?;
            }
            if due.pause {
                return Err(TrialError::Paused(done));
            }
        }
        Ok(())
    }

    /// The record after `done` steps. A non-finite loss makes it the last, with `diverged = 1`: a
    /// step size too large for the problem is a result, not a failure to retry.
    fn record(&mut self, done: u32, batch_loss: f64, step_seconds: f64) -> EpochRecord {
        let (train_loss, accuracy) = problem::evaluate(self.net, self.data);
        let mut metrics = BTreeMap::new();
        if !(train_loss.is_finite() && batch_loss.is_finite()) {
            eprintln!("optimizers: diverged by step {done}: training loss {train_loss}");
            metrics.insert("diverged".to_string(), 1.0);
            return EpochRecord { epoch: done, step: Some(done as i64), metrics };
        }
        if self.progress.target.is_none() && train_loss <= self.p.target_loss {
            self.progress.target = Some((done, self.progress.seconds));
        }
        if let Some((step, seconds)) = self.progress.target.filter(|(step, _)| *step == done) {
            metrics.insert("steps_to_target".to_string(), step as f64);
            metrics.insert("seconds_to_target".to_string(), seconds);
        }
        metrics.insert("train_loss".into(), train_loss);
        if let Some(acc) = accuracy {
            metrics.insert("train_acc".into(), acc);
        }
        metrics.insert("batch_loss".into(), batch_loss);
        metrics.insert("seconds".into(), self.progress.seconds);
        metrics.insert("step_seconds".into(), step_seconds);
        metrics.insert("optimizer_state_bytes".into(), self.optimizer.state_bytes() as f64);
        metrics.insert("lr".into(), self.p.optimizer.lr);
        EpochRecord { epoch: done, step: Some(done as i64), metrics }
    }

    fn save(&self, steps_done: u32) -> Result<(), TrialError> {
        if let Some(dir) = &self.ctx.checkpoint_dir {
            self.progress.write(&self.progress_var);
            let at = Position { epoch: steps_done, batch: 0, step: steps_done as u64 };
            checkpoint::save(dir, self.vars, self.optimizer, &at.meta(OPTIMIZERS.name))?;
        }
        Ok(())
    }
}
