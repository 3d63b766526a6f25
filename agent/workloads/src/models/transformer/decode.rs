//! Batched decoding: greedy, sampled (temperature, top-k) and beam search, with or without the
//! key/value cache. The cache only saves work: both ways give the same tokens.

use super::{positions_of, tokens, Cache, Form, Memory, Transformer};
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    Greedy,
    /// Draws from softmax(logits / temperature) over the `top_k` likeliest tokens (0: all), from
    /// libtorch's global generator.
    Sample {
        temperature: f64,
        top_k: i64,
    },
    /// The `width` likeliest continuations by summed log-probability; the best one is returned.
    Beam {
        width: i64,
    },
}

/// What decoding starts from. Encoder-decoder: `source` [B, S] right-padded and `prefix` the
/// decoder's first tokens (usually `<bos>` alone). Decoder-only: no source, and `prefix` [B, P]
/// the whole prompt (`<bos> source <sep>`), left-padded so that every row ends at the last column.
pub struct Prompt<'a> {
    pub source: Option<&'a Tensor>,
    pub prefix: &'a Tensor,
}

/// Up to `max_new` tokens after each row's prefix: [B, max_new]; a row ends at `<eos>` (kept), and
/// padding fills it after. Padding, `<bos>` and `<sep>` are never generated.
pub fn generate(
    model: &Transformer,
    prompt: &Prompt<'_>,
    max_new: i64,
    strategy: Strategy,
    cached: bool,
) -> Result<Tensor, String> {
    let memory = match (model.spec().form, prompt.source) {
        (Form::EncoderDecoder, Some(source)) => Some(model.encode(source, false)),
        (Form::DecoderOnly, None) => None,
        (form, _) => return Err(format!("decoding: the {form} form takes a source only when it has an encoder")),
    };
    let room = model.spec().max_len - prompt.prefix.size()[1];
    if max_new < 1 || max_new > room {
        return Err(format!(
            "decoding: expected 1 to {room} new tokens (max_len {} less the prefix), got {max_new}",
            model.spec().max_len
        ));
    }
    tch::no_grad(|| {
        let mut run = Run::new(model, memory, prompt.prefix, cached);
        match strategy {
            Strategy::Beam { width } if width > 1 => run.beam(max_new, width),
            Strategy::Beam { .. } | Strategy::Greedy => Ok(run.stepwise(max_new, |logp| logp.argmax(-1, false))),
            Strategy::Sample { temperature, top_k } => {
                if !(temperature > 0.0 && temperature.is_finite()) {
                    return Err(format!("decoding: temperature must be > 0, got {temperature}"));
                }
                Ok(run.stepwise(max_new, |logp| sample(logp, temperature, top_k)))
            }
        }
    })
}

/// One decoding run: the tokens so far and, when cached, the decoder's cache.
struct Run<'m> {
    model: &'m Transformer,
    memory: Option<Memory>,
    /// Every token so far, prefix included: [R, T].
    ids: Tensor,
    cache: Option<Cache>,
    /// Logits of the next token: [R, vocab].
    next: Tensor,
}

impl<'m> Run<'m> {
    fn new(model: &'m Transformer, memory: Option<Memory>, prefix: &Tensor, cached: bool) -> Run<'m> {
        let mut cache = cached.then(|| model.cache());
        let logits = model.decode(prefix, &positions_of(prefix), memory.as_ref(), cache.as_mut(), false);
        let next = last(&logits);
        Run { model, memory, ids: prefix.shallow_clone(), cache, next }
    }

    /// Log-probabilities of the next token, with the tokens that are never generated ruled out.
    fn log_probs(&self) -> Tensor {
        let logp = self.next.to_kind(Kind::Float).log_softmax(-1, Kind::Float);
        for never in [tokens::PAD, tokens::BOS, tokens::SEP] {
            let _ = logp.select(1, never).fill_(f64::NEG_INFINITY);
        }
        logp
    }

    /// Appends `token` [R] to every row and computes the next logits.
    fn push(&mut self, token: &Tensor) {
        let token = token.unsqueeze(1);
        self.ids = Tensor::cat(&[&self.ids, &token], 1);
        let logits = match &mut self.cache {
            Some(cache) => {
                let position = positions_of(&self.ids).narrow(1, -1, 1);
                self.model.decode(&token, &position, self.memory.as_ref(), Some(cache), false)
            }
            None => self.model.decode(&self.ids, &positions_of(&self.ids), self.memory.as_ref(), None, false),
        };
        self.next = last(&logits);
    }

    /// Greedy or sampled decoding: `pick` chooses each row's next token from its log-probabilities.
    fn stepwise(&mut self, max_new: i64, pick: impl Fn(&Tensor) -> Tensor) -> Tensor {
        let rows = self.ids.size()[0];
        let device = self.ids.device();
        let mut done = Tensor::zeros([rows], (Kind::Bool, device));
        let mut out = Vec::new();
        for step in 0..max_new {
            let token = pick(&self.log_probs()).where_scalarother(&done.logical_not(), tokens::PAD);
            done = done.logical_or(&token.eq(tokens::EOS));
            out.push(token.shallow_clone());
            if step + 1 == max_new {
                break;
            }
            if all_done(&done) {
                out.extend((step + 1..max_new).map(|_| token.zeros_like()));
                break;
            }
            self.push(&token);
        }
        Tensor::stack(&out, 1)
    }

    /// Beam search over `width` beams per row, each beam a row of the run: [B * width, T].
    fn beam(&mut self, max_new: i64, width: i64) -> Result<Tensor, String> {
        let batch = self.ids.size()[0];
        let device = self.ids.device();
        let vocab = self.model.spec().vocab;
        let rows = Tensor::arange(batch, (Kind::Int64, device)).repeat_interleave_self_int(width, 0, None);
        self.reorder(&rows);
        // Only the first beam of a row is live at the start, so the first step does not pick the
        // same token `width` times.
        let mut scores = Tensor::full([batch, width], f64::NEG_INFINITY, (Kind::Float, device));
        let _ = scores.select(1, 0).fill_(0.0);
        let mut done = Tensor::zeros([batch * width], (Kind::Bool, device));
        let mut out = Tensor::zeros([batch * width, 0], (Kind::Int64, device));
        for step in 0..max_new {
            // A finished beam goes on with padding at no cost and nothing else.
            let logp = self.log_probs().where_scalarother(&done.unsqueeze(1).logical_not(), f64::NEG_INFINITY);
            let _ = logp.select(1, tokens::PAD).masked_fill_(&done, 0.0);
            let total = (scores.unsqueeze(2) + logp.view([batch, width, vocab])).view([batch, width * vocab]);
            let (best, index) = total.topk(width, 1, true, true);
            let beam = index.divide_scalar_mode(vocab, "floor");
            let token = index.remainder(vocab).view([-1]);
            let from = (beam + Tensor::arange(batch, (Kind::Int64, device)).unsqueeze(1) * width).view([-1]);
            scores = best;
            out = Tensor::cat(&[out.index_select(0, &from), token.unsqueeze(1)], 1);
            done = done.index_select(0, &from).logical_or(&token.eq(tokens::EOS));
            if step + 1 == max_new || all_done(&done) {
                break;
            }
            self.reorder(&from);
            self.push(&token);
        }
        let best = scores.argmax(1, false) + Tensor::arange(batch, (Kind::Int64, device)) * width;
        let chosen = out.index_select(0, &best);
        let short = max_new - chosen.size()[1];
        Ok(if short > 0 { chosen.constant_pad_nd([0, short]) } else { chosen })
    }

    /// Keeps the rows `rows` of every per-row state, in that order.
    fn reorder(&mut self, rows: &Tensor) {
        self.ids = self.ids.index_select(0, rows);
        self.next = self.next.index_select(0, rows);
        if let Some(m) = &self.memory {
            self.memory = Some(m.select(rows));
        }
        if let Some(c) = &mut self.cache {
            c.select(rows);
        }
    }
}

/// The logits of each row's last position: [R, T, V] -> [R, V].
fn last(logits: &Tensor) -> Tensor {
    logits.select(1, -1)
}

/// One token per row from softmax(logp / temperature), restricted to the `top_k` likeliest.
fn sample(logp: &Tensor, temperature: f64, top_k: i64) -> Tensor {
    let mut scaled = logp / temperature;
    let vocab = logp.size()[1];
    if top_k > 0 && top_k < vocab {
        let (kth, _) = scaled.topk(top_k, 1, true, true);
        let floor = kth.select(1, top_k - 1).unsqueeze(1);
        scaled = scaled.where_scalarother(&scaled.ge_tensor(&floor), f64::NEG_INFINITY);
    }
    scaled.softmax(-1, Kind::Float).multinomial(1, false).squeeze_dim(1)
}

/// Whether every row has finished.
fn all_done(done: &Tensor) -> bool {
    done.all().int64_value(&[]) != 0
}
