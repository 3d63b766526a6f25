//! The masks of a pruned network and the ways of choosing them. A prunable weight is every
//! trainable variable of two or more dimensions (weight matrices, convolution kernels); biases and
//! BatchNorm are not pruned, except that structured pruning removes a neuron's bias with it. Each
//! mask is a 0/1 variable of the var store, `mask.<variable>`, so a checkpoint holds it; the
//! optimizer zeroes the masked gradients and weights at every step (`Optimizer::set_masks`).

use crate::rng::{mix, Rng, Stream};
use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// One prunable weight, its mask, and its bias with the bias's mask where it has one.
pub struct Layer {
    /// The variable's name without `.weight`: `layer0`, `conv1`, `fc`.
    pub name: String,
    pub weight_name: String,
    pub weight: Tensor,
    pub mask: Tensor,
    /// (name, bias, mask) of the bias of the same outputs.
    pub bias: Option<(String, Tensor, Tensor)>,
}

impl Layer {
    pub fn numel(&self) -> i64 {
        self.weight.numel() as i64
    }

    /// Output channels (rows of the weight viewed as [outputs, rest]).
    pub fn rows(&self) -> i64 {
        self.weight.size()[0]
    }

    pub fn nonzeros(&self) -> i64 {
        self.weight.count_nonzero(None).int64_value(&[])
    }
}

/// Whether magnitude pruning ranks weights over the whole network or within each layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    Layer,
}

pub struct Masks {
    /// Sorted by variable name.
    pub layers: Vec<Layer>,
}

impl Masks {
    /// A mask of ones for every prunable variable of `vars` and for each such layer's bias (a
    /// 1-d variable `<layer>.bias` of as many outputs), made in `vars` before a checkpoint is
    /// loaded into it.
    pub fn new(vars: &VarStore) -> Masks {
        let named = trainable_by_name(vars);
        let mut layers = Vec::new();
        for (name, weight) in &named {
            if weight.dim() < 2 {
                continue;
            }
            let layer = name.strip_suffix(".weight").unwrap_or(name).to_string();
            let bias_name = format!("{layer}.bias");
            let bias = named
                .get(&bias_name)
                .filter(|b| b.dim() == 1 && b.size()[0] == weight.size()[0])
                .map(|b| (bias_name.clone(), b.shallow_clone(), ones_like_var(vars, &bias_name, b)));
            layers.push(Layer {
                name: layer,
                weight_name: name.clone(),
                weight: weight.shallow_clone(),
                mask: ones_like_var(vars, name, weight),
                bias,
            });
        }
        Masks { layers }
    }

    /// Every mask by the name of the variable it masks, for `Optimizer::set_masks`.
    pub fn by_variable(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for l in &self.layers {
            out.push((l.weight_name.clone(), l.mask.shallow_clone()));
            if let Some((name, _, mask)) = &l.bias {
                out.push((name.clone(), mask.shallow_clone()));
            }
        }
        out
    }

    /// Zeroes the masked weights and biases.
    pub fn apply(&self) {
        tch::no_grad(|| {
            for l in &self.layers {
                let _ = l.weight.shallow_clone().g_mul_(&l.mask);
                if let Some((_, bias, mask)) = &l.bias {
                    let _ = bias.shallow_clone().g_mul_(mask);
                }
            }
        });
    }

    /// Prunes the weights of smallest magnitude until `target` of them (over the network, or in
    /// each layer) are pruned. What is pruned stays pruned.
    pub fn prune_magnitude(&self, target: f64, scope: Scope) {
        let score = |l: &Layer| (&l.weight * &l.mask).abs().flatten(0, -1).to_kind(Kind::Float);
        match scope {
            Scope::Layer => {
                for l in &self.layers {
                    self.keep_largest(std::slice::from_ref(l), &[score(l)], target);
                }
            }
            Scope::Global => {
                let scores: Vec<Tensor> = self.layers.iter().map(score).collect();
                self.keep_largest(&self.layers, &scores, target);
            }
        }
        self.apply();
    }

    /// Zeroes the masks of the lowest-scoring `target` fraction of the weights of `layers`, whose
    /// flat scores are `scores`; ties go to the earlier weight, so the choice is deterministic.
    fn keep_largest(&self, layers: &[Layer], scores: &[Tensor], target: f64) {
        let all = Tensor::cat(scores, 0);
        let total = all.size()[0];
        let k = ((target * total as f64).round() as i64).clamp(0, total);
        if k == 0 {
            return;
        }
        let pruned = all.argsort_stable(true, 0, false).narrow(0, 0, k);
        let keep = Tensor::ones([total], (Kind::Float, all.device())).index_fill(0, &pruned, 0.0);
        let mut at = 0;
        tch::no_grad(|| {
            for l in layers {
                let n = l.numel();
                let part = keep.narrow(0, at, n).view(l.mask.size().as_slice()).to_kind(l.mask.kind());
                let _ = l.mask.shallow_clone().g_mul_(&part);
                at += n;
            }
        });
    }

    /// Prunes weights chosen uniformly at random among those left, in each layer, until `target`
    /// of each layer's weights are pruned; the draw is a function of (seed, epoch).
    pub fn prune_random(&self, target: f64, seed: u64, epoch: u32) {
        let mut rng = Rng::new(mix(seed, epoch as u64), Stream::Pruning);
        tch::no_grad(|| {
            for l in &self.layers {
                let n = l.numel();
                // A copy: a channels-last mask flattens to one anyway.
                let flat = l.mask.flatten(0, -1).copy();
                let left = flat.nonzero().view([-1]);
                let want = ((target * n as f64).round() as i64).clamp(0, n);
                let more = want - (n - left.size()[0]);
                if more <= 0 {
                    continue;
                }
                let order = Tensor::from_slice(&rng.permutation(left.size()[0] as usize)).to_device(left.device());
                let chosen = left.index_select(0, &order.narrow(0, 0, more));
                let kept = flat.index_fill(0, &chosen, 0.0).view(l.mask.size().as_slice());
                l.mask.shallow_clone().copy_(&kept);
            }
        });
        self.apply();
    }

    /// Removes the `target` fraction of each hidden layer's neurons with the smallest L1 norm of
    /// incoming weights: the neuron's row, its bias and its column in the next layer. `layers` must
    /// be in the order data flows (the fully connected `layer0`, `layer1`, ...); the output layer
    /// keeps every neuron.
    pub fn prune_neurons(&self, target: f64) {
        tch::no_grad(|| {
            for pair in self.layers.windows(2) {
                let (l, next) = (&pair[0], &pair[1]);
                let rows = l.rows();
                let k = ((target * rows as f64).round() as i64).clamp(0, rows);
                if k == 0 {
                    continue;
                }
                let norms = (&l.weight * &l.mask).abs().sum_dim_intlist(1, false, Kind::Float);
                let removed = norms.argsort_stable(true, 0, false).narrow(0, 0, k);
                let _ = l.mask.shallow_clone().index_fill_(0, &removed, 0.0);
                if let Some((_, _, mask)) = &l.bias {
                    let _ = mask.shallow_clone().index_fill_(0, &removed, 0.0);
                }
                let _ = next.mask.shallow_clone().index_fill_(1, &removed, 0.0);
            }
        });
        self.apply();
    }

    /// Weights that are exactly zero over all prunable weights; the per-layer fractions; the
    /// nonzero weights.
    pub fn sparsity(&self) -> (f64, Vec<(String, f64)>, i64) {
        let (mut total, mut nonzeros) = (0i64, 0i64);
        let mut per_layer = Vec::new();
        for l in &self.layers {
            let (n, nz) = (l.numel(), l.nonzeros());
            per_layer.push((l.name.clone(), 1.0 - nz as f64 / n.max(1) as f64));
            total += n;
            nonzeros += nz;
        }
        (1.0 - nonzeros as f64 / total.max(1) as f64, per_layer, nonzeros)
    }
}

/// The trainable variables of `vars` by name, in name order.
pub(super) fn trainable_by_name(vars: &VarStore) -> std::collections::BTreeMap<String, Tensor> {
    let trainable = vars.trainable_variables();
    let is_trainable = |t: &Tensor| trainable.iter().any(|v| v.data_ptr() == t.data_ptr());
    vars.variables().into_iter().filter(|(_, t)| is_trainable(t)).collect()
}

/// A variable of ones, not trained, named `mask.<name>`, with `like`'s shape.
fn ones_like_var(vars: &VarStore, name: &str, like: &Tensor) -> Tensor {
    let (path, last) = path_under(vars, "mask", name);
    path.ones_no_train(last, &like.size())
}

/// The path of the variable `<prefix>.<name>` (`name` dotted, as the var store names it), and
/// the last component of `name`.
pub(super) fn path_under<'a, 'n>(vars: &'a VarStore, prefix: &str, name: &'n str) -> (tch::nn::Path<'a>, &'n str) {
    let mut parts: Vec<&str> = name.split('.').collect();
    let last = parts.pop().unwrap_or(name);
    let path = parts.into_iter().fold(vars.root().sub(prefix), |path, part| path.sub(part));
    (path, last)
}
