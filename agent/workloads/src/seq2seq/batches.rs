//! Examples as the transformer reads them, laid out per form. Encoder-decoder rows hold the source,
//! and `<bos> target` for the decoder; a single sequence (no source of its own) is cut into source
//! and target at a point drawn from the seed, per epoch in training, once for evaluation.
//! Decoder-only rows are `<bos> source <sep> target <eos>` with the loss on the target and
//! `<eos>`; a single sequence is one language-model row, `<bos> sequence <eos>`, every token
//! predicted from those before it. Labels are the next tokens, padding where no loss is taken.

use crate::data::sequences::Sequence;
use crate::harness::{Batch, TrainData};
use crate::models::transformer::{tokens, Form};
use crate::rng::{mix, Rng, Stream};
use tch::Tensor;

/// Training examples evaluated for `train_loss`: enough for a stable mean, few enough to be quick.
const EVAL_TRAIN_EXAMPLES: usize = 1024;
const EVAL_BATCH: usize = 64;

pub struct SequenceData {
    pub form: Form,
    pub max_len: usize,
    pub train: Vec<Sequence>,
    pub test: Vec<Sequence>,
    pub batch_size: usize,
    pub seed: u64,
}

/// One example laid out for the model: what it reads and the next token at each position.
struct Row {
    /// Decoder-only: the row. Encoder-decoder: the source.
    input: Vec<i64>,
    /// Encoder-decoder: the decoder's input (`<bos> target`).
    decoder: Vec<i64>,
    labels: Vec<i64>,
}

impl SequenceData {
    /// Where `seq` (example `index`) is cut into source and target: its own split for a pair;
    /// otherwise drawn from the seed and `epoch` (none: the one cut evaluation always uses).
    pub fn split(&self, seq: &Sequence, index: usize, epoch: Option<u64>) -> usize {
        match seq.split {
            Some(s) => s as usize,
            None => {
                let key = mix(mix(self.seed, epoch.map_or(u64::MAX, |e| e)), index as u64);
                1 + Rng::new(key, Stream::SplitPoints).below(seq.tokens.len() as u64 - 1) as usize
            }
        }
    }

    /// The source as the model reads it: at most half the row for decoder-only (so the target has
    /// room), at most the whole row for the encoder, keeping its end.
    pub fn source<'s>(&self, source: &'s [u32]) -> &'s [u32] {
        let keep = match self.form {
            Form::DecoderOnly => (self.max_len - 3) / 2,
            Form::EncoderDecoder => self.max_len,
        };
        &source[source.len().saturating_sub(keep)..]
    }

    /// The moves so far as a decoder-only language model reads them after `<bos>`: the last ones,
    /// leaving room in the row for at least one more.
    pub fn history<'s>(&self, tokens: &'s [u32]) -> &'s [u32] {
        &tokens[tokens.len().saturating_sub(self.max_len - 2)..]
    }

    fn row(&self, seq: &Sequence, split: usize) -> Row {
        let source = ids(self.source(&seq.tokens[..split]));
        let target = ids(&seq.tokens[split..]);
        match self.form {
            Form::DecoderOnly if seq.split.is_none() => {
                let (input, labels) = self.shifted([&[tokens::BOS], &ids(&seq.tokens)[..], &[tokens::EOS]].concat());
                Row { input, decoder: Vec::new(), labels }
            }
            Form::DecoderOnly => {
                let (input, mut labels) =
                    self.shifted([&[tokens::BOS], &source[..], &[tokens::SEP], &target[..], &[tokens::EOS]].concat());
                // Positions up to the source's last token predict source tokens or the separator.
                labels.iter_mut().take(source.len() + 1).for_each(|l| *l = tokens::PAD);
                Row { input, decoder: Vec::new(), labels }
            }
            Form::EncoderDecoder => {
                let (decoder, labels) = self.shifted([&[tokens::BOS], &target[..], &[tokens::EOS]].concat());
                Row { input: source, decoder, labels }
            }
        }
    }

    /// `full` cut to `max_len + 1` tokens, as what the model reads (all but the last) and the next
    /// token at each of those positions (all but the first).
    fn shifted(&self, mut full: Vec<i64>) -> (Vec<i64>, Vec<i64>) {
        full.truncate(self.max_len + 1);
        let labels = full[1..].to_vec();
        full.pop();
        (full, labels)
    }

    /// The batch of `examples` (index, sequence), each cut as `epoch` says.
    fn batch<'s>(&self, examples: impl Iterator<Item = (usize, &'s Sequence)>, epoch: Option<u64>) -> Batch {
        let rows: Vec<Row> = examples.map(|(i, seq)| self.row(seq, self.split(seq, i, epoch))).collect();
        let width = rows.iter().map(|r| r.input.len().max(r.decoder.len())).max().unwrap_or(1);
        let matrix = |pick: &dyn Fn(&Row) -> &[i64]| padded(rows.iter().map(pick), width, Pad::Right);
        let inputs = match self.form {
            Form::DecoderOnly => matrix(&|r| &r.input),
            Form::EncoderDecoder => Tensor::stack(&[matrix(&|r| &r.input), matrix(&|r| &r.decoder)], 1),
        };
        Batch { inputs, labels: matrix(&|r| &r.labels) }
    }

    fn in_order<'s>(&'s self, set: &'s [Sequence]) -> Box<dyn Iterator<Item = Batch> + 's> {
        let chunks = set.chunks(EVAL_BATCH).enumerate();
        Box::new(
            chunks.map(move |(c, chunk)| {
                self.batch(chunk.iter().enumerate().map(|(i, s)| (c * EVAL_BATCH + i, s)), None)
            }),
        )
    }
}

/// Token ids as the model takes them.
pub(super) fn ids(tokens: &[u32]) -> Vec<i64> {
    tokens.iter().map(|&t| t as i64).collect()
}

/// Which side of a row the padding goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pad {
    /// After the tokens: rows the model reads whole.
    Right,
    /// Before them: prompts whose last token lines up for decoding.
    Left,
}

/// Rows of at most `width` tokens as one [R, width] tensor, padded on the side `pad` says.
pub(super) fn padded<'r>(rows: impl ExactSizeIterator<Item = &'r [i64]>, width: usize, pad: Pad) -> Tensor {
    let count = rows.len() as i64;
    let mut flat = Vec::with_capacity(count as usize * width);
    for row in rows {
        let fill = std::iter::repeat_n(tokens::PAD, width - row.len());
        match pad {
            Pad::Right => flat.extend(row.iter().copied().chain(fill)),
            Pad::Left => flat.extend(fill.chain(row.iter().copied())),
        }
    }
    Tensor::from_slice(&flat).view([count, width as i64])
}

impl TrainData for SequenceData {
    fn train_batches(&self, epoch: u64, start: u64) -> Box<dyn Iterator<Item = Batch> + '_> {
        let order = Rng::new(mix(self.seed, epoch), Stream::EpochOrder).permutation(self.train.len());
        let size = self.batch_size;
        let batches = (start as usize * size..order.len()).step_by(size).map(move |first| {
            let picked =
                order[first..(first + size).min(order.len())].iter().map(|&i| (i as usize, &self.train[i as usize]));
            self.batch(picked, Some(epoch))
        });
        Box::new(batches)
    }

    fn batches_per_epoch(&self) -> u64 {
        self.train.len().div_ceil(self.batch_size) as u64
    }

    fn eval_train(&self) -> Box<dyn Iterator<Item = Batch> + '_> {
        self.in_order(&self.train[..self.train.len().min(EVAL_TRAIN_EXAMPLES)])
    }

    fn eval_test(&self) -> Box<dyn Iterator<Item = Batch> + '_> {
        self.in_order(&self.test)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(form: Form, max_len: usize) -> SequenceData {
        SequenceData {
            form,
            max_len,
            train: vec![Sequence { tokens: vec![10, 11, 12, 20, 21], split: Some(3) }],
            test: vec![Sequence { tokens: vec![5, 6, 7, 8, 9, 10, 11], split: None }],
            batch_size: 2,
            seed: 3,
        }
    }

    fn row(t: &Tensor) -> Vec<i64> {
        Vec::<i64>::try_from(t.view([-1])).unwrap()
    }

    #[test]
    fn decoder_only_rows_read_source_and_separator_and_learn_the_target() {
        let d = data(Form::DecoderOnly, 16);
        let b = d.batch(std::iter::once((0, &d.train[0])), Some(0));
        let (bos, sep, eos, pad) = (tokens::BOS, tokens::SEP, tokens::EOS, tokens::PAD);
        assert_eq!(row(&b.inputs), vec![bos, 10, 11, 12, sep, 20, 21]);
        assert_eq!(row(&b.labels), vec![pad, pad, pad, pad, 20, 21, eos]);
    }

    #[test]
    fn a_single_sequence_is_one_language_model_row_for_the_decoder_only_form() {
        let d = data(Form::DecoderOnly, 16);
        let b = d.batch(std::iter::once((0, &d.test[0])), None);
        assert_eq!(row(&b.inputs), vec![tokens::BOS, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(row(&b.labels), vec![5, 6, 7, 8, 9, 10, 11, tokens::EOS]);
        assert_eq!(
            d.history(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
            &[3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
        );
    }

    #[test]
    fn encoder_decoder_rows_hold_the_source_and_the_shifted_target() {
        let d = data(Form::EncoderDecoder, 16);
        let b = d.batch(std::iter::once((0, &d.train[0])), Some(0));
        assert_eq!(b.inputs.size(), [1, 2, 3]);
        assert_eq!(row(&b.inputs.select(1, 0)), vec![10, 11, 12]);
        assert_eq!(row(&b.inputs.select(1, 1)), vec![tokens::BOS, 20, 21]);
        assert_eq!(row(&b.labels), vec![20, 21, tokens::EOS]);
    }

    #[test]
    fn long_rows_lose_the_source_start_then_the_target_end() {
        let d = data(Form::DecoderOnly, 6);
        let long = Sequence { tokens: vec![10, 11, 12, 13, 14, 20, 21, 22, 23], split: Some(5) };
        let b = d.batch(std::iter::once((0, &long)), Some(0));
        // (6 - 3) / 2 = 1 source token kept: the last.
        assert_eq!(row(&b.inputs), vec![tokens::BOS, 14, tokens::SEP, 20, 21, 22]);
        assert_eq!(row(&b.labels), vec![tokens::PAD, tokens::PAD, 20, 21, 22, 23]);
    }

    #[test]
    fn single_sequences_are_cut_by_seed_and_epoch_and_evaluation_is_fixed() {
        let d = data(Form::EncoderDecoder, 16);
        let seq = &d.test[0];
        let cuts: Vec<usize> = (0..40).map(|e| d.split(seq, 0, Some(e))).collect();
        assert!(cuts.iter().all(|&c| (1..seq.tokens.len()).contains(&c)));
        assert!(cuts.iter().collect::<std::collections::BTreeSet<_>>().len() > 3, "{cuts:?}");
        assert_eq!(d.split(seq, 0, None), d.split(seq, 0, None));
        assert_eq!(d.split(seq, 0, Some(7)), d.split(seq, 0, Some(7)));
    }

    #[test]
    fn an_epoch_resumed_at_a_batch_yields_the_rest_of_the_full_pass() {
        let mut d = data(Form::DecoderOnly, 16);
        d.train = (0..7).map(|i| Sequence { tokens: vec![10 + i, 11, 12 + i], split: None }).collect();
        let full: Vec<Batch> = d.train_batches(4, 0).collect();
        assert_eq!(full.len() as u64, d.batches_per_epoch());
        let rest: Vec<Batch> = d.train_batches(4, 2).collect();
        assert_eq!(rest.len(), full.len() - 2);
        for (a, b) in full[2..].iter().zip(&rest) {
            assert!(a.inputs.equal(&b.inputs) && a.labels.equal(&b.labels));
        }
    }
}
