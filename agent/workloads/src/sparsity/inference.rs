//! The forward time of a pruned fully connected network on one fixed batch, three ways: dense
//! matmuls over the masked weights; libtorch's sparse CSR matmul; and the network with its removed
//! neurons cut out (the smaller dense network structured pruning leaves). All three compute the
//! same function, which the tests check.

use super::masks::Masks;
use std::time::Instant;
use tch::{Device, Tensor};

/// Median milliseconds per forward pass of the batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub dense_ms: f64,
    pub sparse_ms: f64,
    pub smaller_ms: f64,
}

/// Timed passes per way, after one untimed pass each.
const REPEATS: usize = 21;

/// The layers of a fully connected ReLU network in order, as (weight [out, in], bias [out]).
pub type Layers = Vec<(Tensor, Tensor)>;

/// `masks`'s layers as a fully connected network (each must have its bias); None if one lacks it.
pub fn dense_layers(masks: &Masks) -> Option<Layers> {
    masks
        .layers
        .iter()
        .map(|l| l.bias.as_ref().map(|(_, b, _)| (l.weight.detach(), b.detach())))
        .collect::<Option<Layers>>()
        .filter(|layers| layers.iter().all(|(w, _)| w.dim() == 2))
}

/// The three ways, timed in turns (dense, CSR, cut down, dense, ...) so that whatever else the
/// machine does falls on all three alike.
pub fn time(layers: &Layers, x: &Tensor) -> Timing {
    tch::no_grad(|| {
        let x = x.flatten(1, -1);
        let sparse: Layers = layers.iter().map(|(w, b)| (w.to_sparse_csr(None), b.shallow_clone())).collect();
        let smaller = cut_out_removed_neurons(layers);
        let ways: [(&Layers, bool); 3] = [(layers, false), (&sparse, true), (&smaller, false)];
        let mut times = [[0.0; REPEATS]; 3];
        for r in 0..=REPEATS {
            for (w, (net, csr)) in ways.iter().enumerate() {
                let start = Instant::now();
                let _ = forward(net, &x, *csr);
                if let Device::Cuda(i) = x.device() {
                    tch::Cuda::synchronize(i as i64);
                }
                // The first turn warms up.
                if r > 0 {
                    times[w][r - 1] = start.elapsed().as_secs_f64() * 1e3;
                }
            }
        }
        let [dense_ms, sparse_ms, smaller_ms] = times.map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[REPEATS / 2]
        });
        Timing { dense_ms, sparse_ms, smaller_ms }
    })
}

/// ReLU between the layers, none after the last. With `csr`, the weights are sparse CSR tensors
/// and each layer is W x^T, transposed back.
pub fn forward(layers: &[(Tensor, Tensor)], x: &Tensor, csr: bool) -> Tensor {
    let last = layers.len() - 1;
    layers.iter().enumerate().fold(x.flatten(1, -1), |h, (i, (w, b))| {
        let z = if csr { w.matmul(&h.transpose(0, 1)).transpose(0, 1) + b } else { h.linear(w, Some(b)) };
        if i < last {
            z.relu()
        } else {
            z
        }
    })
}

/// The same network without the hidden neurons that carry nothing: a neuron whose incoming
/// weights and bias are all zero outputs ReLU(0) = 0, so its row, its bias and the next layer's
/// column for it go.
pub fn cut_out_removed_neurons(layers: &Layers) -> Layers {
    let mut out: Layers = layers.iter().map(|(w, b)| (w.shallow_clone(), b.shallow_clone())).collect();
    for i in 0..out.len() - 1 {
        let (w, b) = (&out[i].0, &out[i].1);
        let alive = (w.ne(0.0).any_dim(1, false)).logical_or(&b.ne(0.0)).nonzero().view([-1]);
        out[i] = (w.index_select(0, &alive), b.index_select(0, &alive));
        out[i + 1].0 = out[i + 1].0.index_select(1, &alive);
    }
    out
}
