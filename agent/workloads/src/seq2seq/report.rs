//! What `seq2seq` optimises and reports: cross-entropy on the target tokens; after each evaluated
//! epoch the loss, perplexity and token accuracy on the test split (`val_*`), the training loss,
//! the accuracy per voice when the target interleaves voices, and for chess how often the model's
//! moves are legal.

use super::chess::HeldOut;
use crate::harness::{for_each_batch, EvalOn, Objective, TrainData};
use crate::models::transformer::{tokens, Transformer};
use std::collections::BTreeMap;
use tch::nn::ModuleT;
use tch::{Kind, Reduction, Tensor};

pub struct Report<'a> {
    pub model: &'a Transformer,
    pub parameters: i64,
    pub voices: usize,
    pub chess: Option<&'a HeldOut>,
}

/// Summed loss, right tokens and tokens of one pass, and per voice.
struct Tally {
    loss: f64,
    right: f64,
    tokens: f64,
    voices: Vec<(f64, f64)>,
}

/// Mean cross-entropy over the positions whose label is not padding.
pub fn token_loss(logits: &Tensor, labels: &Tensor, reduction: Reduction) -> Tensor {
    let vocab = *logits.size().last().expect("logits have a vocabulary axis");
    logits.view([-1, vocab]).cross_entropy_loss::<Tensor>(&labels.view([-1]), None, reduction, tokens::PAD, 0.0)
}

impl Report<'_> {
    fn tally(
        &self,
        net: &dyn ModuleT,
        batches: Box<dyn Iterator<Item = crate::harness::Batch> + '_>,
        on: EvalOn,
    ) -> Result<Tally, String> {
        let device = on.device;
        let zero = || Tensor::zeros([], (Kind::Double, device));
        let (mut loss, mut right, mut count) = (zero(), zero(), zero());
        let mut voices: Vec<(Tensor, Tensor)> = (0..self.voices).map(|_| (zero(), zero())).collect();
        for_each_batch(net, batches, on, |logits, labels| {
            let live = labels.ne(tokens::PAD);
            let hit = logits.argmax(-1, false).eq_tensor(labels).logical_and(&live);
            let _ = loss.f_add_(&token_loss(logits, labels, Reduction::Sum).to_kind(Kind::Double));
            let _ = right.f_add_(&hit.sum(Kind::Double));
            let _ = count.f_add_(&live.sum(Kind::Double));
            if !voices.is_empty() {
                // A target's k-th token (from 0, `<eos>` aside) belongs to voice k mod voices.
                let index = live.to_kind(Kind::Int64).cumsum(1, Kind::Int64) - 1;
                let note = live.logical_and(&labels.ne(tokens::EOS));
                let voice = index.remainder(voices.len() as i64);
                for (v, (r, n)) in voices.iter_mut().enumerate() {
                    let mine = note.logical_and(&voice.eq(v as i64));
                    let _ = r.f_add_(&hit.logical_and(&mine).sum(Kind::Double));
                    let _ = n.f_add_(&mine.sum(Kind::Double));
                }
            }
        })?;
        Ok(Tally {
            loss: loss.double_value(&[]),
            right: right.double_value(&[]),
            tokens: count.double_value(&[]),
            voices: voices.iter().map(|(r, n)| (r.double_value(&[]), n.double_value(&[]))).collect(),
        })
    }
}

impl Objective for Report<'_> {
    fn loss(&self, logits: &Tensor, labels: &Tensor, _epoch: u32) -> Tensor {
        token_loss(logits, labels, Reduction::Mean)
    }

    fn evaluate(&self, net: &dyn ModuleT, data: &dyn TrainData, on: EvalOn) -> Result<BTreeMap<String, f64>, String> {
        let test = self.tally(net, data.eval_test(), on)?;
        let train = self.tally(net, data.eval_train(), on)?;
        let mean = |sum: f64, n: f64| sum / n.max(1.0);
        let val_loss = mean(test.loss, test.tokens);
        let mut m = BTreeMap::new();
        m.insert("train_loss".to_string(), mean(train.loss, train.tokens));
        m.insert("val_loss".into(), val_loss);
        m.insert("val_perplexity".into(), val_loss.exp());
        m.insert("val_token_acc".into(), mean(test.right, test.tokens));
        for (v, (right, n)) in test.voices.iter().enumerate() {
            m.insert(format!("voice_acc/{v}"), mean(*right, *n));
        }
        m.insert("parameters".into(), self.parameters as f64);
        if let Some(held_out) = self.chess {
            m.extend(held_out.metrics(self.model, on)?);
        }
        Ok(m)
    }
}
