//! A transformer over token ids (Vaswani et al. 2017) with pre-LayerNorm blocks: token and
//! position embeddings (learned, or the fixed sinusoids), multi-head attention with causal and
//! padding masks, in an encoder-decoder and a decoder-only form, and batched greedy, sampled and
//! beam decoding with a key/value cache ([`decode`]).
//!
//! As a [`ModuleT`] it reads one tensor of token ids, so the training loop handles it like the
//! image networks: the decoder-only form takes [B, T] (one sequence per row), the encoder-decoder
//! form [B, 2, T] (row 0 the source, row 1 the decoder's input), both right-padded with
//! [`tokens::PAD`]; the output is logits [B, T, vocab]. [`Encoder`] is the encoder alone, with
//! embeddings of its own, for models that read text next to something else.

mod attention;
mod block;
pub mod decode;
#[cfg(test)]
mod tests;

pub use attention::{self_mask, source_mask, Attention};
use block::LayerCache;
pub use block::{Block, Source};
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// The special tokens every vocabulary starts with, at these ids.
pub mod tokens {
    pub const PAD: i64 = 0;
    pub const BOS: i64 = 1;
    pub const EOS: i64 = 2;
    /// Between source and target when the decoder-only form reads both as one sequence.
    pub const SEP: i64 = 3;
    pub const UNK: i64 = 4;
    pub const SPECIALS: [&str; 5] = ["<pad>", "<bos>", "<eos>", "<sep>", "<unk>"];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// An encoder reads the source; a decoder attends to it and to its own earlier tokens.
    EncoderDecoder,
    /// One causal stack reads `source <sep> target` as a single sequence.
    DecoderOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    Learned,
    /// sin/cos of position / 10000^(2i/d), added unscaled; nothing to learn.
    Sinusoidal,
}

crate::params::named!(Form, "form", Form::EncoderDecoder => "encoder_decoder", Form::DecoderOnly => "decoder_only");
crate::params::named!(Positions, "positions", Positions::Learned => "learned", Positions::Sinusoidal => "sinusoidal");

/// Everything that sizes a transformer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransformerSpec {
    pub form: Form,
    /// Token ids lie in 0..vocab; the first ids are [`tokens::SPECIALS`].
    pub vocab: i64,
    pub d_model: i64,
    pub heads: i64,
    /// Blocks of the decoder, and of the encoder in that form.
    pub layers: i64,
    /// Width of the feed-forward layers.
    pub ff: i64,
    /// The longest sequence a row may hold (decoder-only: source, separator and target together).
    pub max_len: i64,
    pub positions: Positions,
    pub dropout: f64,
}

impl TransformerSpec {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), String> {
        let specials = tokens::SPECIALS.len() as i64;
        if self.vocab <= specials {
            return Err(format!("vocab: expected more than the {specials} special tokens, got {}", self.vocab));
        }
        if self.d_model < 1 || self.heads < 1 || self.d_model % self.heads != 0 {
            return Err(format!(
                "d_model: expected a positive multiple of heads = {}, got {}",
                self.heads, self.d_model
            ));
        }
        if self.layers < 1 || self.ff < 1 {
            return Err(format!("layers and ff: expected integers >= 1, got {} and {}", self.layers, self.ff));
        }
        if self.max_len < 2 {
            return Err(format!("max_len: expected an integer >= 2, got {}", self.max_len));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout: expected a probability in [0, 1), got {}", self.dropout));
        }
        Ok(())
    }
}

/// Token plus position embedding.
#[derive(Debug)]
struct Embed {
    tokens: nn::Embedding,
    learned: Option<nn::Embedding>,
    /// [max_len, d_model], for sinusoidal positions.
    sinusoids: Option<Tensor>,
    dropout: f64,
}

impl Embed {
    fn new(path: &nn::Path, spec: &TransformerSpec) -> Embed {
        let init = nn::EmbeddingConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: 0.02 }, ..Default::default() };
        let (learned, sinusoids) = match spec.positions {
            Positions::Learned => (Some(nn::embedding(path / "positions", spec.max_len, spec.d_model, init)), None),
            Positions::Sinusoidal => (None, Some(sinusoids(spec.max_len, spec.d_model).to_device(path.device()))),
        };
        Embed {
            tokens: nn::embedding(path / "tokens", spec.vocab, spec.d_model, init),
            learned,
            sinusoids,
            dropout: spec.dropout,
        }
    }

    /// `ids` [B, T] at `positions` [B, T] -> [B, T, D].
    fn forward(&self, ids: &Tensor, positions: &Tensor, train: bool) -> Tensor {
        let x = ids.apply(&self.tokens);
        let p = match (&self.learned, &self.sinusoids) {
            (Some(table), _) => positions.apply(table),
            (None, Some(table)) => table.index_select(0, &positions.flatten(0, -1)).view_as(&x),
            (None, None) => unreachable!("one of the two position tables exists"),
        };
        (x + p).dropout(self.dropout, train)
    }
}

/// sin(pos / 10000^(2i/d)) in even columns, cos in odd ones: [len, d].
fn sinusoids(len: i64, d: i64) -> Tensor {
    let pos = Tensor::arange(len, (Kind::Float, tch::Device::Cpu)).unsqueeze(1);
    let i = Tensor::arange(d, (Kind::Float, tch::Device::Cpu));
    let rate = ((&i / 2.0).floor() * 2.0 / d as f64 * -(10000f64.ln())).exp();
    let angle = pos * rate.unsqueeze(0);
    let even = (i.remainder(2.0).eq(0.0)).unsqueeze(0);
    angle.sin().where_self(&even, &angle.cos())
}

/// The encoder's output for a batch of sources, ready for the decoder's cross-attention.
pub struct Memory {
    pub states: Tensor,
    pub allowed: Tensor,
}

impl Memory {
    /// Keeps the rows `rows` (i64 [R]), in that order.
    pub fn select(&self, rows: &Tensor) -> Memory {
        Memory { states: self.states.index_select(0, rows), allowed: self.allowed.index_select(0, rows) }
    }
}

/// A decoder's keys and values for the tokens it has read, and which of those tokens are padding.
pub struct Cache {
    layers: Vec<LayerCache>,
    key_ok: Option<Tensor>,
}

impl Cache {
    /// Tokens read so far.
    pub fn len(&self) -> i64 {
        self.key_ok.as_ref().map_or(0, |k| k.size()[1])
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the rows `rows` (i64 [R]), in that order: beam search's reorder.
    pub fn select(&mut self, rows: &Tensor) {
        for layer in &mut self.layers {
            layer.select(rows);
        }
        if let Some(k) = &mut self.key_ok {
            *k = k.index_select(0, rows);
        }
    }
}

/// Blocks that attend both ways over a padded sequence, and the LayerNorm after them: the encoder
/// of the encoder-decoder form.
#[derive(Debug)]
struct EncoderStack {
    blocks: Vec<Block>,
    norm: nn::LayerNorm,
}

impl EncoderStack {
    /// Variables `encoder/<i>/...` and `encoder_norm` under `path`.
    fn new(path: &nn::Path, s: &TransformerSpec) -> EncoderStack {
        EncoderStack {
            blocks: (0..s.layers)
                .map(|i| Block::new(&(path / "encoder" / i), s.d_model, s.heads, s.ff, s.dropout, false))
                .collect(),
            norm: nn::layer_norm(path / "encoder_norm", vec![s.d_model], Default::default()),
        }
    }

    /// Embedded tokens `x` [B, S, D] of `ids` [B, S] (right-padded) through the blocks.
    fn forward(&self, mut x: Tensor, ids: &Tensor, train: bool) -> Memory {
        let ok = ids.ne(tokens::PAD);
        let allowed = self_mask(&ok, ids.size()[1], 0, false);
        for block in &self.blocks {
            x = block.forward(&x, &allowed, None, None, train);
        }
        Memory { states: x.apply(&self.norm), allowed: source_mask(&ok) }
    }
}

/// An encoder on its own, with its own embeddings: what the multimodal workload reads captions
/// with. `spec.form` is not used; `spec.max_len` bounds the tokens it reads.
#[derive(Debug)]
pub struct Encoder {
    embed: Embed,
    stack: EncoderStack,
}

impl Encoder {
    pub fn new(path: &nn::Path, spec: &TransformerSpec) -> Result<Encoder, String> {
        spec.validate()?;
        Ok(Encoder { embed: Embed::new(&(path / "embed"), spec), stack: EncoderStack::new(path, spec) })
    }

    /// The states of `ids` [B, S] (right-padded, S at most `max_len`).
    pub fn encode(&self, ids: &Tensor, train: bool) -> Memory {
        self.stack.forward(self.embed.forward(ids, &positions_of(ids), train), ids, train)
    }
}

#[derive(Debug)]
pub struct Transformer {
    spec: TransformerSpec,
    embed: Embed,
    encoder: Option<EncoderStack>,
    decoder: Vec<Block>,
    decoder_norm: nn::LayerNorm,
    head: nn::Linear,
}

impl Transformer {
    /// Builds the variables under `path`; they draw from libtorch's global generator, so
    /// `tch::manual_seed` before this fixes them.
    pub fn new(path: &nn::Path, spec: &TransformerSpec) -> Result<Transformer, String> {
        spec.validate()?;
        let s = spec;
        let encoder_decoder = s.form == Form::EncoderDecoder;
        Ok(Transformer {
            spec: *spec,
            embed: Embed::new(&(path / "embed"), spec),
            encoder: encoder_decoder.then(|| EncoderStack::new(path, spec)),
            decoder: (0..s.layers)
                .map(|i| Block::new(&(path / "decoder" / i), s.d_model, s.heads, s.ff, s.dropout, encoder_decoder))
                .collect(),
            decoder_norm: nn::layer_norm(path / "decoder_norm", vec![s.d_model], Default::default()),
            head: nn::linear(path / "head", s.d_model, s.vocab, Default::default()),
        })
    }

    pub fn spec(&self) -> &TransformerSpec {
        &self.spec
    }

    /// A cache for decoding `rows` sequences token by token.
    pub fn cache(&self) -> Cache {
        Cache { layers: self.decoder.iter().map(|_| LayerCache::default()).collect(), key_ok: None }
    }

    /// The encoder over `source` [B, S] (right-padded), for the encoder-decoder form.
    pub fn encode(&self, source: &Tensor, train: bool) -> Memory {
        let stack = self.encoder.as_ref().expect("encode is for the encoder-decoder form");
        stack.forward(self.embed.forward(source, &positions_of(source), train), source, train)
    }

    /// Logits [B, T, vocab] of the decoder over `ids` [B, T] at `positions` [B, T]: each token
    /// sees the tokens before it (those in `cache`, then those of `ids`) that are not padding, and
    /// the source in `memory`. With a cache, `ids` are appended to it.
    pub fn decode(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        memory: Option<&Memory>,
        mut cache: Option<&mut Cache>,
        train: bool,
    ) -> Tensor {
        let ok = ids.ne(tokens::PAD);
        let offset = cache.as_ref().map_or(0, |c| c.len());
        let key_ok = match cache.as_deref_mut() {
            Some(c) => {
                let all = match &c.key_ok {
                    Some(before) => Tensor::cat(&[before, &ok], 1),
                    None => ok,
                };
                c.key_ok = Some(all.shallow_clone());
                all
            }
            None => ok,
        };
        let allowed = self_mask(&key_ok, ids.size()[1], offset, true);
        let source = memory.map(|m| Source { states: &m.states, allowed: &m.allowed });
        let mut x = self.embed.forward(ids, positions, train);
        for (i, block) in self.decoder.iter().enumerate() {
            let layer = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            x = block.forward(&x, &allowed, source.as_ref(), layer, train);
        }
        x.apply(&self.decoder_norm).apply(&self.head)
    }
}

/// Positions 0, 1, ... of each row's tokens, skipping padding on the left: [B, T]. Right-padded
/// rows get 0..T; a left-padded prompt's first real token gets 0.
pub fn positions_of(ids: &Tensor) -> Tensor {
    (ids.ne(tokens::PAD).to_kind(Kind::Int64).cumsum(1, Kind::Int64) - 1).clamp_min(0)
}

impl ModuleT for Transformer {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self.spec.form {
            Form::DecoderOnly => self.decode(xs, &positions_of(xs), None, None, train),
            Form::EncoderDecoder => {
                let memory = self.encode(&xs.select(1, 0), train);
                let target = xs.select(1, 1);
                self.decode(&target, &positions_of(&target), Some(&memory), None, train)
            }
        }
    }
}
