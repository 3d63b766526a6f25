//! What a pruned or quantised network takes to store, and its int8 form: post-training,
//! per-channel symmetric quantisation of every prunable weight (one f32 scale per output channel,
//! values in [-127, 127]), the other variables kept in fp32.

use super::masks::Masks;
use tch::{Kind, Tensor};

/// Bytes of the model's trainable variables, four ways.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bytes {
    /// Every variable in fp32.
    pub dense: f64,
    /// Prunable weights in CSR (fp32 values, int32 column indices, int32 row pointers over the
    /// weight viewed as [outputs, rest]), the rest in fp32.
    pub sparse: f64,
    /// Prunable weights in int8 with an fp32 scale per output channel, the rest in fp32.
    pub int8: f64,
    /// CSR with int8 values and the per-channel scales.
    pub sparse_int8: f64,
}

/// The bytes of a model of `all` trainable scalars whose prunable weights are `masks`'s.
pub fn bytes(all: i64, masks: &Masks) -> Bytes {
    let prunable: i64 = masks.layers.iter().map(|l| l.numel()).sum();
    let rest = 4.0 * (all - prunable) as f64;
    let (mut csr_index, mut scales, mut nonzeros) = (0i64, 0i64, 0i64);
    for l in &masks.layers {
        let (rows, nz) = (l.rows(), l.nonzeros());
        csr_index += 4 * nz + 4 * (rows + 1);
        scales += 4 * rows;
        nonzeros += nz;
    }
    Bytes {
        dense: 4.0 * all as f64,
        sparse: rest + (4 * nonzeros + csr_index) as f64,
        int8: rest + (prunable + scales) as f64,
        sparse_int8: rest + (nonzeros + csr_index + scales) as f64,
    }
}

/// `weight` through int8 and back: per output channel, scale = max |w| / 127, w -> round(w /
/// scale) * scale. Zeros stay zero, so a pruned weight stays pruned.
pub fn int8_round_trip(weight: &Tensor) -> Tensor {
    let rows = weight.size()[0];
    let flat = weight.reshape([rows, -1]).to_kind(Kind::Float);
    let scale = (flat.abs().amax(1, true) / 127.0).clamp_min(f32::MIN_POSITIVE as f64);
    let q = (&flat / &scale).round().clamp(-127.0, 127.0);
    (q * scale).to_kind(weight.kind()).view(weight.size().as_slice())
}

/// Runs `f` with every prunable weight replaced by its int8 round trip, then puts the weights back.
pub fn with_int8_weights<T>(masks: &Masks, f: impl FnOnce() -> T) -> T {
    let saved: Vec<Tensor> = masks.layers.iter().map(|l| l.weight.copy()).collect();
    tch::no_grad(|| {
        for l in &masks.layers {
            l.weight.shallow_clone().copy_(&int8_round_trip(&l.weight));
        }
    });
    let out = f();
    tch::no_grad(|| {
        for (l, w) in masks.layers.iter().zip(&saved) {
            l.weight.shallow_clone().copy_(w);
        }
    });
    out
}
