//! One pre-LayerNorm block (Xiong et al. 2020): self-attention, cross-attention to the source in
//! a decoder of the encoder-decoder form, and the feed-forward layer, each added to the residual
//! stream after a LayerNorm of its input.

use super::attention::{Attention, FeedForward};
use tch::nn::{self, Module};
use tch::Tensor;

#[derive(Debug)]
pub struct Block {
    norm_self: nn::LayerNorm,
    attention: Attention,
    cross: Option<(nn::LayerNorm, Attention)>,
    norm_ff: nn::LayerNorm,
    ff: FeedForward,
    dropout: f64,
}

/// The source a decoder block attends to: the encoder's output and where it may look.
pub struct Source<'a> {
    pub states: &'a Tensor,
    pub allowed: &'a Tensor,
}

/// A decoder block's keys and values so far, so that decoding one more token projects only that
/// token; the source's keys and values, computed once.
#[derive(Default)]
pub struct LayerCache {
    pub keys: Option<Tensor>,
    pub values: Option<Tensor>,
    pub source: Option<(Tensor, Tensor)>,
}

impl LayerCache {
    /// Keeps the rows `rows` (i64 [R]) of every cached tensor, in that order: beam search's reorder.
    pub fn select(&mut self, rows: &Tensor) {
        for t in [&mut self.keys, &mut self.values].into_iter().flatten() {
            *t = t.index_select(0, rows);
        }
        if let Some((k, v)) = &mut self.source {
            *k = k.index_select(0, rows);
            *v = v.index_select(0, rows);
        }
    }
}

impl Block {
    pub fn new(path: &nn::Path, d_model: i64, heads: i64, ff: i64, dropout: f64, cross: bool) -> Block {
        let norm = |name: &str| nn::layer_norm(path / name, vec![d_model], Default::default());
        Block {
            norm_self: norm("norm_self"),
            attention: Attention::new(&(path / "attention"), d_model, heads, dropout),
            cross: cross.then(|| (norm("norm_cross"), Attention::new(&(path / "cross"), d_model, heads, dropout))),
            norm_ff: norm("norm_ff"),
            ff: FeedForward::new(&(path / "ff"), d_model, ff),
            dropout,
        }
    }

    /// `x` [B, T, D] through the block. `allowed` is the self-attention mask over the cached keys
    /// and `x`'s; with a cache, `x`'s keys and values are appended to it.
    pub fn forward(
        &self,
        x: &Tensor,
        allowed: &Tensor,
        source: Option<&Source<'_>>,
        cache: Option<&mut LayerCache>,
        train: bool,
    ) -> Tensor {
        let h = x.apply(&self.norm_self);
        let (mut keys, mut values) = self.attention.keys_values(&h);
        let mut cache = cache;
        if let Some(c) = cache.as_deref_mut() {
            if let (Some(k), Some(v)) = (&c.keys, &c.values) {
                keys = Tensor::cat(&[k, &keys], 2);
                values = Tensor::cat(&[v, &values], 2);
            }
            c.keys = Some(keys.shallow_clone());
            c.values = Some(values.shallow_clone());
        }
        let mut x = x + self.attention.attend(&h, &keys, &values, allowed, train).dropout(self.dropout, train);
        if let (Some((norm, cross)), Some(source)) = (&self.cross, source) {
            let h = x.apply(norm);
            let (k, v) = match cache {
                Some(c) => {
                    let (k, v) = c.source.get_or_insert_with(|| cross.keys_values(source.states));
                    (k.shallow_clone(), v.shallow_clone())
                }
                None => cross.keys_values(source.states),
            };
            // Not `+=`: that adds in place into the tensor the LayerNorm above saved for its
            // backward pass.
            #[allow(clippy::assign_op_pattern)]
            {
                x = x + cross.attend(&h, &k, &v, source.allowed, train).dropout(self.dropout, train);
            }
        }
        let h = x.apply(&self.norm_ff);
        x + self.ff.forward(&h).dropout(self.dropout, train)
    }
}
