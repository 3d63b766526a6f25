//! Multi-head attention over libtorch's fused `scaled_dot_product_attention` (flash or
//! memory-efficient kernels on CUDA), and the masks it takes: causal, padding, and both at once
//! with a key cache in front of the queries.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// Queries of one sequence attend to keys and values of the same or another sequence through
/// `heads` heads of `d_model / heads` dimensions each.
#[derive(Debug)]
pub struct Attention {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    out: nn::Linear,
    heads: i64,
    dropout: f64,
}

impl Attention {
    pub fn new(path: &nn::Path, d_model: i64, heads: i64, dropout: f64) -> Attention {
        let linear = |name: &str| nn::linear(path / name, d_model, d_model, Default::default());
        Attention {
            query: linear("query"),
            key: linear("key"),
            value: linear("value"),
            out: linear("out"),
            heads,
            dropout,
        }
    }

    /// The keys and values of `states` [B, T, D], split into heads: [B, H, T, D/H] each. A cache
    /// keeps them so later queries need not project them again.
    pub fn keys_values(&self, states: &Tensor) -> (Tensor, Tensor) {
        (self.heads_of(&states.apply(&self.key)), self.heads_of(&states.apply(&self.value)))
    }

    /// `x` [B, Tq, D] attending to `keys`/`values` [B, H, Tk, D/H] where `allowed` (bool,
    /// broadcastable to [B, H, Tq, Tk]) is true; returns [B, Tq, D].
    pub fn attend(&self, x: &Tensor, keys: &Tensor, values: &Tensor, allowed: &Tensor, train: bool) -> Tensor {
        let queries = self.heads_of(&x.apply(&self.query));
        let p = if train { self.dropout } else { 0.0 };
        let mixed = Tensor::scaled_dot_product_attention(&queries, keys, values, Some(allowed), p, false, None, false);
        let (b, h, t, dh) = mixed.size4().expect("attention output is [B, H, T, D/H]");
        mixed.transpose(1, 2).contiguous().view([b, t, h * dh]).apply(&self.out)
    }

    /// [B, T, D] -> [B, H, T, D/H].
    fn heads_of(&self, x: &Tensor) -> Tensor {
        let (b, t, d) = x.size3().expect("attention input is [B, T, D]");
        x.view([b, t, self.heads, d / self.heads]).transpose(1, 2)
    }
}

/// Where queries may look in self-attention: [B, 1, Tq, Tk], true where query i (at key position
/// `offset + i`, after `offset` cached keys) may see key j. Keys that are padding (`key_ok` false,
/// [B, Tk]) are hidden, and so are later keys when `causal`. A query always sees its own key, so a
/// padding query's row is never empty (an empty row would make the softmax NaN, and NaN times a
/// zero weight is still NaN in the rows that read it).
pub fn self_mask(key_ok: &Tensor, queries: i64, offset: i64, causal: bool) -> Tensor {
    let device = key_ok.device();
    let keys = key_ok.size()[1];
    let q = Tensor::arange_start(offset, offset + queries, (Kind::Int64, device)).unsqueeze(1);
    let k = Tensor::arange(keys, (Kind::Int64, device)).unsqueeze(0);
    let own = k.eq_tensor(&q);
    let mut allowed = key_ok.unsqueeze(1).unsqueeze(1);
    if causal {
        allowed = allowed.logical_and(&k.le_tensor(&q));
    }
    allowed.logical_or(&own)
}

/// Where decoder queries may look in the source: [B, 1, 1, S], every source token but padding.
/// The first key stays visible so that an empty source leaves no empty row.
pub fn source_mask(source_ok: &Tensor) -> Tensor {
    let first = Tensor::arange(source_ok.size()[1], (Kind::Int64, source_ok.device())).eq(0).unsqueeze(0);
    source_ok.logical_or(&first).unsqueeze(1).unsqueeze(1)
}

/// Position-wise feed-forward: d_model -> ff -> d_model with GELU between.
#[derive(Debug)]
pub struct FeedForward {
    up: nn::Linear,
    down: nn::Linear,
}

impl FeedForward {
    pub fn new(path: &nn::Path, d_model: i64, ff: i64) -> FeedForward {
        FeedForward {
            up: nn::linear(path / "up", d_model, ff, Default::default()),
            down: nn::linear(path / "down", ff, d_model, Default::default()),
        }
    }
}

impl Module for FeedForward {
    fn forward(&self, x: &Tensor) -> Tensor {
        x.apply(&self.up).gelu("none").apply(&self.down)
    }
}
