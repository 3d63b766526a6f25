//! Optimizers written over plain tensors (tch's `nn::Optimizer` cannot save its state), so that a
//! checkpoint holds every moment and step count and a resumed run is bit-identical on the CPU.
//! One `Optimizer` for SGD, Adam, AdamW, Adagrad and Adafactor with PyTorch's semantics and for
//! Shampoo, plus learning-rate schedules.

mod adafactor;
mod clip;
mod config;
mod schedule;
mod shampoo;
mod update;

pub use config::{
    AdafactorConfig, AdagradConfig, Graft, OptimizerConfig, OptimizerKind, ShampooConfig, DEFAULT_ADAFACTOR,
    DEFAULT_ADAGRAD, DEFAULT_ADAGRAD_EPS, DEFAULT_BETAS, DEFAULT_EPS, DEFAULT_GRAD_CLIP, DEFAULT_MOMENTUM,
    DEFAULT_NESTEROV, DEFAULT_SHAMPOO, MAX_BLOCK_SIZE,
};
pub use schedule::{LrSchedule, Schedule, DEFAULT_GAMMA, DEFAULT_MIN_LR, DEFAULT_WARMUP_EPOCHS};

use std::collections::HashMap;
use tch::{Kind, Tensor};
use update::{Count, Rate, Slots};

/// Name of the optimizer's own step count in `state()`.
const STEP: &str = "step";

/// One trainable variable, its name in the VarStore and its state.
struct Param {
    name: String,
    var: Tensor,
    /// Updates this parameter has taken. It can trail the optimizer's count: as in PyTorch, a
    /// parameter without a gradient (unused so far) is skipped, and Adam's bias correction and
    /// SGD's first momentum step go by this count.
    step: u64,
    slots: Slots,
    /// 0/1 of the variable's shape for a pruned network ([`Optimizer::set_masks`]).
    mask: Option<Tensor>,
}

pub struct Optimizer {
    cfg: OptimizerConfig,
    /// Sorted by name: a stable order for the clipping norm and for `state()`.
    params: Vec<Param>,
    steps: u64,
    /// Per-member rates on the device (fused groups, captured steps), and a captured step's count.
    graph: Option<GraphState>,
}

struct GraphState {
    /// The step count, as a 0-d float32 tensor; the captured step advances it.
    count: Tensor,
    lr: Vec<f64>,
    weight_decay: Vec<f64>,
    lr_t: Tensor,
    weight_decay_t: Tensor,
}

impl Optimizer {
    /// Optimizes `vars.trainable_variables()`, named by their `vars.variables()` names. State
    /// tensors live on each variable's device.
    pub fn new(cfg: OptimizerConfig, vars: &tch::nn::VarStore) -> Self {
        let named = vars.variables();
        let mut params: Vec<Param> = vars
            .trainable_variables()
            .into_iter()
            // A trainable variable is one of the named ones; the same storage identifies it. An
            // empty tensor has no storage to match and nothing to update.
            .filter(|var| var.numel() > 0)
            .map(|var| {
                let name = named
                    .iter()
                    .find(|(_, t)| t.data_ptr() == var.data_ptr() && t.size() == var.size())
                    .map(|(name, _)| name.clone())
                    .expect("a trainable variable is also a named variable of its VarStore");
                let slots = Slots::new(&cfg, &var);
                Param { name, var, step: 0, slots, mask: None }
            })
            .collect();
        params.sort_by(|a, b| a.name.cmp(&b.name));
        Optimizer { cfg, params, steps: 0, graph: None }
    }

    pub fn config(&self) -> &OptimizerConfig {
        &self.cfg
    }

    /// Masks the parameters of a pruned network, by variable name: each mask (0 or 1, the
    /// variable's shape and device) zeroes the gradient before every update and the variable after
    /// it, so a pruned weight stays exactly zero whatever the optimizer's state (momentum, Adam's
    /// moments) holds for it, and its state stops growing. The masks are the caller's tensors:
    /// pruning changes them in place, and a captured step reads them where they are.
    pub fn set_masks(&mut self, masks: &[(String, Tensor)]) -> Result<(), String> {
        for (name, mask) in masks {
            let p = self
                .params
                .iter_mut()
                .find(|p| &p.name == name)
                .ok_or_else(|| format!("mask for `{name}`, which is not a trainable variable"))?;
            if mask.size() != p.var.size() {
                return Err(format!("mask for `{name}` has shape {:?}, the variable {:?}", mask.size(), p.var.size()));
            }
            p.mask = Some(mask.shallow_clone());
        }
        Ok(())
    }

    /// Forgets every step and moment, as a newly made optimizer of the same configuration over the
    /// same variables would have them; masks stay. A lottery-ticket round starts from here.
    pub fn reset(&mut self) {
        for p in &mut self.params {
            p.slots = Slots::new(&self.cfg, &p.var);
            p.step = 0;
        }
        self.steps = 0;
        self.graph = None;
    }

    /// Zeroes the gradients in place: the buffers stay allocated (and at fixed addresses, which a
    /// captured CUDA graph needs), unlike PyTorch's default of dropping them.
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.var.zero_grad();
        }
    }

    /// One update with learning rate `lr` (the schedule decides it), after clipping the global
    /// gradient norm if configured. Parameters whose gradient was never created are skipped.
    pub fn step(&mut self, lr: f64) {
        let weight_decay = Rate::One(self.cfg.weight_decay);
        self.update(&Rate::One(lr), &weight_decay);
    }

    /// One update of a fused group's variables (see `models::fused`), member g with learning rate
    /// `lr[g]` and weight decay `weight_decay[g]`; the configured weight decay is not used. Global
    /// gradient clipping would couple the members and is refused.
    pub fn step_members(&mut self, lr: &[f64], weight_decay: &[f64]) -> Result<(), String> {
        if self.cfg.grad_clip.is_some() {
            return Err("optimizer.grad_clip: global clipping couples the members of a fused group".into());
        }
        self.set_graph_rates(lr, weight_decay)?;
        let Some(g) = &self.graph else {
            return Ok(());
        };
        let (lr, weight_decay) = (Rate::Each(g.lr_t.shallow_clone()), Rate::Each(g.weight_decay_t.shallow_clone()));
        self.update(&lr, &weight_decay);
        Ok(())
    }

    fn update(&mut self, lr: &Rate, weight_decay: &Rate) {
        self.apply_all(lr, weight_decay, None);
        self.steps += 1;
        if let Some(g) = &self.graph {
            // A later captured step counts on from here.
            let _ = g.count.shallow_clone().fill_(self.steps as f64);
        }
    }

    /// Clips the gradients if configured, then updates every parameter that has one. Counts on the
    /// host (each parameter's own count moves) or, for a captured step, with `device_count`.
    fn apply_all(&mut self, lr: &Rate, weight_decay: &Rate, device_count: Option<&Tensor>) {
        tch::no_grad(|| {
            let mut live: Vec<(usize, Tensor)> =
                self.params.iter().enumerate().map(|(i, p)| (i, p.var.grad())).filter(|(_, g)| g.defined()).collect();
            for (i, grad) in &mut live {
                if let Some(mask) = &self.params[*i].mask {
                    let _ = grad.g_mul_(mask);
                }
            }
            if let Some(max_norm) = self.cfg.grad_clip {
                let mut grads: Vec<Tensor> = live.iter().map(|(_, g)| g.shallow_clone()).collect();
                clip::clip_grad_norm(&mut grads, max_norm);
            }
            for (i, grad) in live.drain(..) {
                let p = &mut self.params[i];
                let count = match device_count {
                    Some(t) => Count::Device(t),
                    None => {
                        p.step += 1;
                        Count::Host(p.step)
                    }
                };
                update::apply(&self.cfg, lr, weight_decay, &mut p.var, &grad, &mut p.slots, &count);
                if let Some(mask) = &p.mask {
                    let _ = p.var.g_mul_(mask);
                }
            }
        });
    }

    /// Sets the learning rates and weight decays [`Optimizer::graph_step`] and
    /// [`Optimizer::step_members`] use, one per member (one for a lone network). They live on the
    /// device and change in place, so a captured graph sees new values without reading the host,
    /// and a constant rate costs nothing per step (a copy from the host would wait for the GPU).
    pub fn set_graph_rates(&mut self, lr: &[f64], weight_decay: &[f64]) -> Result<(), String> {
        if !self.cfg.name.fuses() {
            let fusing: Vec<&str> = OptimizerKind::ALL.into_iter().filter(|k| k.fuses()).map(|k| k.name()).collect();
            return Err(format!(
                "optimizer.name = \"{}\": fused groups and captured CUDA graphs take {} only",
                self.cfg.name.name(),
                fusing.join(", ")
            ));
        }
        if lr.len() != weight_decay.len() || lr.is_empty() {
            return Err(format!("{} learning rates for {} weight decays", lr.len(), weight_decay.len()));
        }
        let Some(device) = self.params.first().map(|p| p.var.device()) else {
            return Ok(());
        };
        match &mut self.graph {
            Some(g) if g.lr.len() == lr.len() => {
                for (host, (values, device_values)) in
                    [(&mut g.lr, (lr, &g.lr_t)), (&mut g.weight_decay, (weight_decay, &g.weight_decay_t))]
                {
                    for (i, (old, new)) in host.iter_mut().zip(values).enumerate() {
                        if old != new {
                            // fill_ takes the value as a kernel argument: no copy from the host.
                            let _ = device_values.narrow(0, i as i64, 1).fill_(*new);
                            *old = *new;
                        }
                    }
                }
            }
            _ => {
                let column = |v: &[f64]| Tensor::from_slice(v).to_kind(Kind::Float).view([-1, 1]).to_device(device);
                self.graph = Some(GraphState {
                    count: Tensor::from(self.steps as f32).to_device(device),
                    lr_t: column(lr),
                    weight_decay_t: column(weight_decay),
                    lr: lr.to_vec(),
                    weight_decay: weight_decay.to_vec(),
                });
            }
        }
        Ok(())
    }

    /// The update a CUDA graph captures: the rates of [`Optimizer::set_graph_rates`], the step
    /// count kept and advanced on the device, nothing read back to the host. The host's counts do
    /// not move here (recording runs no kernel): call [`Optimizer::count_step`] after each step
    /// that ran. Every parameter is assumed to have a gradient (true after one eager step, which a
    /// capture needs anyway: SGD's first momentum step differs from the rest): `count_step`
    /// advances every parameter's count.
    pub fn graph_step(&mut self) -> Result<(), String> {
        let g = self.graph.as_ref().ok_or("graph_step before set_graph_rates")?;
        if self.steps == 0 {
            return Err("a graph step needs one eager step before it".into());
        }
        let (lr, weight_decay) = (Rate::Each(g.lr_t.shallow_clone()), Rate::Each(g.weight_decay_t.shallow_clone()));
        let count = g.count.shallow_clone();
        tch::no_grad(|| {
            let _ = count.shallow_clone().g_add_scalar_(1.0);
        });
        self.apply_all(&lr, &weight_decay, Some(&count));
        Ok(())
    }

    /// Counts one step that ran outside `step` (a graph replay) on the host.
    pub fn count_step(&mut self) {
        for p in &mut self.params {
            p.step += 1;
        }
        self.steps += 1;
    }

    /// Calls of `step` so far, including those before a checkpoint that was loaded.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Every state tensor under a stable name: `step` (this optimizer's count), and per variable
    /// `step/<var>`, `momentum_buffer/<var>` (SGD with momentum, Shampoo with momentum),
    /// `exp_avg/<var>` and `exp_avg_sq/<var>` (Adam, AdamW), `sum/<var>` (Adagrad), `row_var/<var>`
    /// and `col_var/<var>` or `variance/<var>`, and `exp_avg/<var>` with beta1 (Adafactor),
    /// `shampoo_left.<b>/<var>` and the rest of [`shampoo`]'s per block. Counts are 0-d int64
    /// tensors on the CPU. The state tensors are the live ones, not copies: write them out before
    /// the next `step`.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![(STEP.to_string(), count(self.steps))];
        for p in &self.params {
            out.push((format!("{STEP}/{}", p.name), count(p.step)));
            for (slot, t) in p.slots.named() {
                out.push((format!("{slot}/{}", p.name), t.shallow_clone()));
            }
        }
        out
    }

    /// Bytes the optimizer's state tensors take (the step counts included), wherever they live.
    pub fn state_bytes(&self) -> u64 {
        self.state().iter().map(|(_, t)| t.numel() as u64 * t.kind().elt_size_in_bytes() as u64).sum()
    }

    /// Restores the state `state()` gave, exactly: every expected tensor must be present with the
    /// same shape and dtype, and nothing else may be there (a checkpoint of another optimizer or
    /// model is refused). Checked in full before anything is copied, so an error changes nothing.
    pub fn load_state(&mut self, named: &HashMap<String, Tensor>) -> Result<(), String> {
        let expected = self.state();
        for (name, mine) in &expected {
            let theirs = named.get(name).ok_or_else(|| format!("optimizer state: missing tensor `{name}`"))?;
            if theirs.size() != mine.size() || theirs.kind() != mine.kind() {
                return Err(format!(
                    "optimizer state: tensor `{name}` has shape {:?} and dtype {:?}, expected {:?} and {:?}",
                    theirs.size(),
                    theirs.kind(),
                    mine.size(),
                    mine.kind()
                ));
            }
        }
        if let Some(extra) = named.keys().find(|k| !expected.iter().any(|(name, _)| name == *k)) {
            return Err(format!(
                "optimizer state: unexpected tensor `{extra}` (a checkpoint of another optimizer or model?)"
            ));
        }
        let count_of = |name: &str| named[name].int64_value(&[]);
        let counts: Vec<i64> = std::iter::once(count_of(STEP))
            .chain(self.params.iter().map(|p| count_of(&format!("{STEP}/{}", p.name))))
            .collect();
        if let Some(bad) = counts.iter().find(|&&c| c < 0) {
            return Err(format!("optimizer state: negative step count {bad}"));
        }
        self.steps = counts[0] as u64;
        tch::no_grad(|| {
            for (p, &c) in self.params.iter_mut().zip(&counts[1..]) {
                p.step = c as u64;
                for (slot, t) in p.slots.named() {
                    // copy_ writes into the live state (a shallow clone shares its storage) and moves
                    // a CPU checkpoint onto the variable's device.
                    t.shallow_clone().copy_(&named[&format!("{slot}/{}", p.name)]);
                }
            }
        });
        Ok(())
    }
}

fn count(n: u64) -> Tensor {
    Tensor::from(n as i64).to_kind(Kind::Int64)
}

#[cfg(test)]
mod second_order_tests;
#[cfg(test)]
mod tests;
