//! Examples packed for the network ([`super::model::Layout`]): an image, one of its captions and
//! whether each is present. Which caption a training example shows, and which modality modality
//! dropout takes from it, are drawn from (seed, epoch, example), so a resumed epoch sees what the
//! uninterrupted one would have; evaluation shows every example a fixed caption drawn from the
//! seed alone.

use super::model::Layout;
use crate::harness::{Batch, TrainData};
use crate::models::transformer::tokens;
use crate::rng::{mix, Rng, Stream};
use tch::{Kind, Tensor};

/// Training examples evaluated for `train_loss` and `train_acc`: enough for a stable mean, few
/// enough to be quick.
const EVAL_TRAIN_EXAMPLES: usize = 2048;
const EVAL_BATCH: usize = 256;

/// One split: images u8 [N, C, S, S] on the CPU, labels, and each image's captions as token ids.
pub struct Examples {
    pub images: Tensor,
    pub labels: Vec<i64>,
    pub captions: Vec<Vec<Vec<u32>>>,
}

impl Examples {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// The first `n` examples.
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.images = self.images.narrow(0, 0, n as i64);
            self.labels.truncate(n);
            self.captions.truncate(n);
        }
    }
}

/// A modality an evaluation pass takes away from every example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modality {
    Image,
    Text,
}

pub struct MultimodalData {
    pub layout: Layout,
    pub train: Examples,
    pub test: Examples,
    pub batch_size: usize,
    pub seed: u64,
    /// The probability that a training example loses its image, and again that it loses its
    /// caption; never both (at most 0.5).
    pub modality_dropout: f64,
}

/// What one example shows: which caption, and which modalities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct View {
    caption: usize,
    image: bool,
    text: bool,
}

impl MultimodalData {
    /// What example `index` of `set` shows in `epoch` (none: in evaluation), with `removed` taken
    /// away.
    fn view(&self, captions: usize, index: usize, epoch: Option<u64>, removed: Option<Modality>) -> View {
        let mut rng = Rng::new(mix(mix(self.seed, epoch.unwrap_or(u64::MAX)), index as u64), Stream::Modalities);
        let caption = rng.below(captions as u64) as usize;
        let (mut image, mut text) = (true, true);
        if epoch.is_some() && self.modality_dropout > 0.0 {
            let u = rng.uniform();
            image = u >= self.modality_dropout;
            text = !(self.modality_dropout..2.0 * self.modality_dropout).contains(&u);
        }
        match removed {
            Some(Modality::Image) => image = false,
            Some(Modality::Text) => text = false,
            None => {}
        }
        View { caption, image, text }
    }

    /// The batch of examples `indices` of `set`.
    fn batch(&self, set: &Examples, indices: &[usize], epoch: Option<u64>, removed: Option<Modality>) -> Batch {
        let l = self.layout;
        let n = indices.len() as i64;
        let mut flags = Vec::with_capacity(2 * indices.len());
        let mut ids = Vec::with_capacity(indices.len() * l.text_len as usize);
        for &i in indices {
            let view = self.view(set.captions[i].len(), i, epoch, removed);
            flags.extend([view.image as i64, view.text as i64]);
            let caption = if view.text { &set.captions[i][view.caption][..] } else { &[] };
            let kept = &caption[..caption.len().min(l.text_len as usize)];
            ids.extend(kept.iter().map(|&t| t as i64));
            ids.extend(std::iter::repeat_n(tokens::PAD, l.text_len as usize - kept.len()));
        }
        let flags = Tensor::from_slice(&flags).view([n, 2]);
        let rows = Tensor::from_slice(&indices.iter().map(|&i| i as i64).collect::<Vec<_>>());
        // An absent image's bytes are zero: it carries nothing even to a network that ignored the flag.
        let pixels = set.images.index_select(0, &rows).view([n, -1]).to_kind(Kind::Int64) * flags.narrow(1, 0, 1);
        let inputs = Tensor::cat(&[flags, pixels, Tensor::from_slice(&ids).view([n, l.text_len])], 1);
        debug_assert_eq!(inputs.size()[1], l.width());
        let labels = Tensor::from_slice(&indices.iter().map(|&i| set.labels[i]).collect::<Vec<_>>());
        Batch { inputs, labels }
    }

    /// `set` in order, in evaluation batches, with `removed` taken from every example.
    pub fn in_order<'s>(
        &'s self,
        set: &'s Examples,
        removed: Option<Modality>,
    ) -> Box<dyn Iterator<Item = Batch> + 's> {
        let n = set.len();
        Box::new((0..n).step_by(EVAL_BATCH).map(move |first| {
            let indices: Vec<usize> = (first..(first + EVAL_BATCH).min(n)).collect();
            self.batch(set, &indices, None, removed)
        }))
    }

    /// The first training examples, as `train_loss` and `train_acc` see them.
    pub fn train_sample(&self) -> Box<dyn Iterator<Item = Batch> + '_> {
        let n = self.train.len().min(EVAL_TRAIN_EXAMPLES);
        Box::new((0..n).step_by(EVAL_BATCH).map(move |first| {
            let indices: Vec<usize> = (first..(first + EVAL_BATCH).min(n)).collect();
            self.batch(&self.train, &indices, None, None)
        }))
    }
}

impl TrainData for MultimodalData {
    fn train_batches(&self, epoch: u64, start: u64) -> Box<dyn Iterator<Item = Batch> + '_> {
        let order = Rng::new(mix(self.seed, epoch), Stream::EpochOrder).permutation(self.train.len());
        let size = self.batch_size;
        Box::new((start as usize * size..order.len()).step_by(size).map(move |first| {
            let indices: Vec<usize> =
                order[first..(first + size).min(order.len())].iter().map(|&i| i as usize).collect();
            self.batch(&self.train, &indices, Some(epoch), None)
        }))
    }

    fn batches_per_epoch(&self) -> u64 {
        self.train.len().div_ceil(self.batch_size) as u64
    }

    fn eval_train(&self) -> Box<dyn Iterator<Item = Batch> + '_> {
        self.train_sample()
    }

    fn eval_test(&self) -> Box<dyn Iterator<Item = Batch> + '_> {
        self.in_order(&self.test, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(modality_dropout: f64) -> MultimodalData {
        let examples = |n: usize| Examples {
            images: Tensor::arange(n as i64 * 12, (Kind::Int64, tch::Device::Cpu))
                .remainder(251)
                .to_kind(Kind::Uint8)
                .view([n as i64, 3, 2, 2]),
            labels: (0..n as i64).map(|i| i % 3).collect(),
            captions: (0..n as u32)
                .map(|i| vec![vec![10 + i, 11, 12], vec![20 + i], vec![30, 31, 32, 33, 34]])
                .collect(),
        };
        MultimodalData {
            layout: Layout { channels: 3, side: 2, text_len: 4 },
            train: examples(40),
            test: examples(9),
            batch_size: 8,
            seed: 5,
            modality_dropout,
        }
    }

    fn rows(t: &Tensor) -> Vec<Vec<i64>> {
        Vec::<Vec<i64>>::try_from(t).unwrap()
    }

    #[test]
    fn a_row_packs_flags_pixels_and_a_padded_caption() {
        let d = data(0.0);
        let b = d.batch(&d.test, &[2], None, None);
        let row = &rows(&b.inputs)[0];
        assert_eq!(row.len() as i64, d.layout.width());
        assert_eq!(&row[..2], &[1, 1]);
        let pixels: Vec<i64> = (24..36).collect();
        assert_eq!(&row[2..14], &pixels[..]);
        let caption = &row[14..];
        let choices: Vec<Vec<i64>> = vec![vec![12, 11, 12, 0], vec![22, 0, 0, 0], vec![30, 31, 32, 33]];
        assert!(choices.contains(&caption.to_vec()), "{caption:?}");
        assert_eq!(Vec::<i64>::try_from(&b.labels).unwrap(), vec![2]);
    }

    #[test]
    fn removing_a_modality_zeroes_it_and_clears_its_flag() {
        let d = data(0.0);
        let no_image = rows(&d.batch(&d.test, &[4, 5], None, Some(Modality::Image)).inputs);
        let no_text = rows(&d.batch(&d.test, &[4, 5], None, Some(Modality::Text)).inputs);
        for row in &no_image {
            assert_eq!(&row[..2], &[0, 1]);
            assert!(row[2..14].iter().all(|&p| p == 0));
            assert!(row[14..].iter().any(|&t| t != tokens::PAD));
        }
        for row in &no_text {
            assert_eq!(&row[..2], &[1, 0]);
            assert!(row[14..].iter().all(|&t| t == tokens::PAD));
        }
    }

    #[test]
    fn modality_dropout_takes_one_modality_at_most_and_only_in_training() {
        let d = data(0.5);
        let (mut images, mut texts) = (0, 0);
        for epoch in 0..10 {
            for b in d.train_batches(epoch, 0) {
                for row in rows(&b.inputs) {
                    assert!(row[0] == 1 || row[1] == 1, "both modalities dropped: {row:?}");
                    images += 1 - row[0];
                    texts += 1 - row[1];
                }
            }
        }
        // 400 examples, each losing its image or its caption with probability 0.5 each.
        assert!((150..250).contains(&images) && (150..250).contains(&texts), "{images} {texts}");
        assert!(d.in_order(&d.test, None).all(|b| rows(&b.inputs).iter().all(|r| r[0] == 1 && r[1] == 1)));
    }

    #[test]
    fn captions_vary_by_epoch_and_evaluation_is_fixed() {
        let d = data(0.0);
        let views: Vec<usize> = (0..30).map(|e| d.view(3, 7, Some(e), None).caption).collect();
        assert_eq!(views.iter().collect::<std::collections::BTreeSet<_>>().len(), 3, "{views:?}");
        assert_eq!(d.view(3, 7, None, None), d.view(3, 7, None, None));
    }

    #[test]
    fn an_epoch_resumed_at_a_batch_yields_the_rest_of_the_full_pass() {
        let d = data(0.3);
        let full: Vec<Batch> = d.train_batches(3, 0).collect();
        assert_eq!(full.len() as u64, d.batches_per_epoch());
        let rest: Vec<Batch> = d.train_batches(3, 2).collect();
        assert_eq!(rest.len(), full.len() - 2);
        for (a, b) in full[2..].iter().zip(&rest) {
            assert!(a.inputs.equal(&b.inputs) && a.labels.equal(&b.labels));
        }
    }
}
