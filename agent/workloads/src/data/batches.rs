//! Batches of one pass over an image set, assembled on a background thread: gather, random crop and
//! flip, normalise, optionally pin. Order and augmentation are pure functions of (seed, epoch,
//! batch index), which is what lets a trial resume mid-epoch and see the batches it would have seen.

use super::ImageSet;
use crate::rng::{mix, Rng, Stream};
use std::sync::mpsc::{sync_channel, Receiver};
use std::thread::JoinHandle;
use tch::{Device, Kind, Tensor};

/// Batches assembled ahead of the consumer: enough to hide the assembly of one batch behind a
/// training step, few enough that memory stays a handful of batches.
const PREFETCH_DEPTH: usize = 3;

/// Training-time augmentation, as in the standard CIFAR recipe (pad 4, random 32x32 crop, flip).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Augment {
    /// Zero padding on each side before a random crop back to the original size; 0 = no crop.
    pub crop_padding: i64,
    /// Horizontal flip with probability 1/2.
    pub flip: bool,
}

impl Augment {
    pub const NONE: Augment = Augment { crop_padding: 0, flip: false };

    /// The draws of one image, in the order every batch builder makes them: crop offsets x then y
    /// in 0..=2 * padding (when cropping), then the flip coin. Returns (x offset, y offset, flip)
    /// into the zero-padded image.
    pub(crate) fn draw(self, rng: &mut Rng) -> (usize, usize, bool) {
        let pad = self.crop_padding as u64;
        let (mut ox, mut oy) = (pad, pad);
        if pad > 0 {
            ox = rng.below(2 * pad + 1);
            oy = rng.below(2 * pad + 1);
        }
        (ox as usize, oy as usize, self.flip && rng.below(2) == 1)
    }
}

/// Images f32 [B, C, H, W] normalised by the train mean/std; labels i64 [B]; both on the CPU.
#[derive(Debug)]
pub struct Batch {
    pub images: Tensor,
    pub labels: Tensor,
}

/// An iterator over the batches of one pass. Dropping it early stops the background thread.
pub struct Batches {
    rx: Option<Receiver<Batch>>,
    worker: Option<JoinHandle<()>>,
    len: usize,
    remaining: usize,
}

impl Batches {
    /// Number of batches in the whole pass, counted from batch 0 even when the pass starts later
    /// (`size_hint` gives what is left to yield).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Iterator for Batches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let rx = self.rx.as_ref()?;
        match rx.recv() {
            Ok(batch) => {
                self.remaining -= 1;
                Some(batch)
            }
            Err(_) => {
                // The worker hung up: either the pass is complete or it panicked. A silently short
                // epoch would corrupt a run, so a panic is passed on to the consumer.
                self.rx = None;
                if let Some(worker) = self.worker.take() {
                    if let Err(panic) = worker.join() {
                        std::panic::resume_unwind(panic);
                    }
                }
                assert_eq!(self.remaining, 0, "the batch worker stopped before the end of the pass");
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        // Hanging up first makes a worker blocked on a full queue return.
        self.rx = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Training batches of one epoch, in an order fixed by (seed, epoch); augmentation fixed by
/// (seed, epoch, batch index). Starting at `start_batch` yields exactly the batches a full pass
/// yields from there on. The last partial batch is kept. Pinned memory when `pin` and CUDA is
/// available, so the copy to the GPU can be asynchronous.
#[allow(clippy::too_many_arguments)]
pub fn train_batches(
    set: &ImageSet,
    mean: &[f64],
    std: &[f64],
    batch_size: i64,
    seed: u64,
    epoch: u64,
    start_batch: u64,
    augment: Augment,
    pin: bool,
) -> Batches {
    let order = Rng::new(mix(seed, epoch), Stream::EpochOrder).permutation(set.len());
    train_batches_in_order(set, mean, std, batch_size, order, mix(seed, epoch), start_batch, augment, pin)
}

/// Training batches over the images `order` names (indices into `set`, repeats allowed: a
/// class-balanced sampler draws the same image more than once), augmented by draws keyed by
/// (`augment_key`, batch index). The caller makes `order` a function of (seed, epoch).
#[allow(clippy::too_many_arguments)]
pub fn train_batches_in_order(
    set: &ImageSet,
    mean: &[f64],
    std: &[f64],
    batch_size: i64,
    order: Vec<i64>,
    augment_key: u64,
    start_batch: u64,
    augment: Augment,
    pin: bool,
) -> Batches {
    assert!(augment.crop_padding >= 0, "crop padding must be >= 0, got {}", augment.crop_padding);
    spawn(
        set,
        Plan {
            order,
            batch_size: checked_batch_size(batch_size),
            start: start_batch.min(usize::MAX as u64) as usize,
            augment,
            augment_key: Some(augment_key),
            normalise: Normalise::new(set, mean, std),
            pin: pin && tch::Cuda::is_available(),
        },
    )
}

/// All images in stored order, without augmentation.
pub fn eval_batches(set: &ImageSet, mean: &[f64], std: &[f64], batch_size: i64) -> Batches {
    spawn(
        set,
        Plan {
            order: (0..set.len() as i64).collect(),
            batch_size: checked_batch_size(batch_size),
            start: 0,
            augment: Augment::NONE,
            augment_key: None,
            normalise: Normalise::new(set, mean, std),
            pin: false,
        },
    )
}

fn checked_batch_size(batch_size: i64) -> usize {
    assert!(batch_size >= 1, "batch size must be >= 1, got {batch_size}");
    batch_size as usize
}

/// Everything the worker needs, owned, so the thread borrows nothing from the caller.
struct Plan {
    order: Vec<i64>,
    batch_size: usize,
    start: usize,
    augment: Augment,
    /// Per-epoch key of the augmentation draws; None = no augmentation.
    augment_key: Option<u64>,
    normalise: Normalise,
    pin: bool,
}

/// (x / 255 - mean[c]) / std[c] for every byte value x, one table per channel (a lookup beats
/// arithmetic per pixel, and keeps the batch thread ahead of the GPU even in debug builds). A zero
/// std (a constant channel) counts as 1, so the channel becomes zeros rather than NaNs.
struct Normalise {
    lut: Vec<[f32; 256]>,
}

impl Normalise {
    fn new(set: &ImageSet, mean: &[f64], std: &[f64]) -> Normalise {
        assert_eq!(set.images.kind(), Kind::Uint8, "image sets hold u8 pixels");
        let channels = set.images.size()[1] as usize;
        assert!(
            mean.len() == channels && std.len() == channels,
            "mean and std need one value per channel ({channels}), got {} and {}",
            mean.len(),
            std.len()
        );
        let lut = mean
            .iter()
            .zip(std)
            .map(|(&m, &s)| {
                let inv_std = if s > 0.0 { 1.0 / s as f32 } else { 1.0 };
                std::array::from_fn(|v| (v as f32 / 255.0 - m as f32) * inv_std)
            })
            .collect();
        Normalise { lut }
    }
}

fn spawn(set: &ImageSet, plan: Plan) -> Batches {
    let len = plan.order.len().div_ceil(plan.batch_size);
    let remaining = len.saturating_sub(plan.start);
    let (tx, rx) = sync_channel(PREFETCH_DEPTH);
    // Tensors are Send but not Sync: the worker gets its own handles to the same storage.
    let images = set.images.shallow_clone();
    let labels = set.labels.shallow_clone();
    let worker = std::thread::Builder::new()
        .name("batches".into())
        .spawn(move || {
            for b in plan.start..len {
                let batch = assemble(&images, &labels, &plan, b);
                if tx.send(batch).is_err() {
                    return; // the consumer stopped early
                }
            }
        })
        .expect("cannot start the batch thread");
    Batches { rx: Some(rx), worker: Some(worker), len, remaining }
}

/// Batch `b` of the pass: gather its images, then crop, flip and normalise in one sweep over bytes.
fn assemble(images: &Tensor, labels: &Tensor, plan: &Plan, b: usize) -> Batch {
    let end = ((b + 1) * plan.batch_size).min(plan.order.len());
    let index = Tensor::from_slice(&plan.order[b * plan.batch_size..end]);
    let size = images.size();
    let (count, channels, height, width) = (index.size()[0], size[1] as usize, size[2] as usize, size[3] as usize);
    let bytes =
        Vec::<u8>::try_from(&images.index_select(0, &index).flatten(0, -1)).expect("u8 images convert to bytes");
    let image_bytes = channels * height * width;
    let pad = plan.augment.crop_padding as usize;
    // Draws happen per image in batch order.
    let mut rng = plan.augment_key.map(|key| Rng::new(mix(key, b as u64), Stream::Augment));
    let mut out = Vec::with_capacity(bytes.len());
    for src in bytes.chunks_exact(image_bytes) {
        let (ox, oy, flip) = match rng.as_mut() {
            Some(rng) => plan.augment.draw(rng),
            None => (pad, pad, false),
        };
        for (c, lut) in plan.normalise.lut.iter().enumerate() {
            let plane = &src[c * height * width..(c + 1) * height * width];
            // Padding is black before normalisation, as when torchvision pads a uint8 image.
            let black = lut[0];
            for y in 0..height {
                // Output (y, x) reads the zero-padded source at (y + oy, x' + ox), i.e. the source
                // at (y + oy - pad, x' + ox - pad); x' mirrors x when flipped (crop, then flip, as
                // torchvision's RandomCrop + RandomHorizontalFlip).
                let sy = (y + oy).wrapping_sub(pad);
                if sy >= height {
                    out.extend(std::iter::repeat_n(black, width));
                    continue;
                }
                let row = &plane[sy * width..(sy + 1) * width];
                out.extend((0..width).map(|x| {
                    let xm = if flip { width - 1 - x } else { x };
                    let sx = (xm + ox).wrapping_sub(pad);
                    if sx < width {
                        lut[row[sx] as usize]
                    } else {
                        black
                    }
                }));
            }
        }
    }
    let mut images = Tensor::from_slice(&out).view([count, channels as i64, height as i64, width as i64]);
    let mut labels = labels.index_select(0, &index);
    if plan.pin {
        images = images.pin_memory(Device::Cuda(0));
        labels = labels.pin_memory(Device::Cuda(0));
    }
    Batch { images, labels }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::raw::RawSet;

    /// n images of 2x4x5 whose pixels are random bytes; label i = index i, so batches say which
    /// images they hold.
    fn indexed_set(n: usize) -> (ImageSet, RawSet) {
        let mut rng = Rng::new(1, Stream::ImageTrain);
        let raw = RawSet {
            pixels: (0..n * 40).map(|_| rng.below(256) as u8).collect(),
            labels: (0..n as i64).collect(),
            channels: 2,
            height: 4,
            width: 5,
            classes: n as i64,
        };
        (raw.clone().into_image_set(), raw)
    }

    const MEAN: [f64; 2] = [0.4, 0.6];
    const STD: [f64; 2] = [0.2, 0.3];

    fn collect(batches: Batches) -> Vec<Batch> {
        batches.collect()
    }

    fn labels_of(batches: &[Batch]) -> Vec<i64> {
        batches.iter().flat_map(|b| Vec::<i64>::try_from(&b.labels).unwrap()).collect()
    }

    /// The source image `label` of the set, normalised, as f32 [C, H, W].
    fn normalised(set: &ImageSet, label: i64) -> Tensor {
        let mean = Tensor::from_slice(&MEAN).view([2, 1, 1]);
        let std = Tensor::from_slice(&STD).view([2, 1, 1]);
        ((set.images.get(label).to_kind(Kind::Double) / 255.0 - mean) / std).to_kind(Kind::Float)
    }

    fn same(a: &[Batch], b: &[Batch]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.images.equal(&y.images) && x.labels.equal(&y.labels))
    }

    const CROP_FLIP: Augment = Augment { crop_padding: 2, flip: true };

    #[test]
    fn same_seed_and_epoch_give_identical_batches_and_epochs_differ() {
        let (set, _) = indexed_set(50);
        let run = |seed, epoch| collect(train_batches(&set, &MEAN, &STD, 16, seed, epoch, 0, CROP_FLIP, false));
        let a = run(9, 3);
        assert!(same(&a, &run(9, 3)));
        assert_ne!(labels_of(&a), labels_of(&run(9, 4)), "another epoch, another order");
        assert_ne!(labels_of(&a), labels_of(&run(10, 3)), "another seed, another order");
    }

    #[test]
    fn every_image_once_per_epoch_and_last_partial_batch_kept() {
        let (set, _) = indexed_set(50);
        let batches = train_batches(&set, &MEAN, &STD, 16, 1, 0, 0, CROP_FLIP, false);
        assert_eq!(batches.len(), 4);
        let all = collect(batches);
        let sizes: Vec<i64> = all.iter().map(|b| b.labels.size()[0]).collect();
        assert_eq!(sizes, vec![16, 16, 16, 2]);
        let mut seen = labels_of(&all);
        assert_ne!(seen, (0..50).collect::<Vec<_>>(), "shuffled");
        seen.sort();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        for b in &all {
            assert_eq!(b.images.kind(), Kind::Float);
            assert_eq!(&b.images.size()[1..], &[2, 4, 5]);
        }
    }

    #[test]
    fn starting_at_batch_k_equals_skipping_k_batches() {
        let (set, _) = indexed_set(50);
        let full = collect(train_batches(&set, &MEAN, &STD, 7, 4, 2, 0, CROP_FLIP, false));
        assert_eq!(full.len(), 8);
        for k in [1u64, 3, 7, 8, 12] {
            let resumed = train_batches(&set, &MEAN, &STD, 7, 4, 2, k, CROP_FLIP, false);
            assert_eq!(resumed.len(), 8, "len counts the whole pass");
            assert_eq!(resumed.size_hint().0, 8usize.saturating_sub(k as usize));
            let resumed = collect(resumed);
            assert!(same(&resumed, &full[(k as usize).min(8)..]), "start at {k}");
        }
    }

    #[test]
    fn without_augmentation_images_are_the_normalised_sources() {
        let (set, _) = indexed_set(20);
        for batch in train_batches(&set, &MEAN, &STD, 8, 5, 0, 0, Augment::NONE, false) {
            for (j, &label) in Vec::<i64>::try_from(&batch.labels).unwrap().iter().enumerate() {
                assert!(batch.images.get(j as i64).allclose(&normalised(&set, label), 1e-5, 1e-5, false));
            }
        }
        let eval = collect(eval_batches(&set, &MEAN, &STD, 6));
        assert_eq!(labels_of(&eval), (0..20).collect::<Vec<_>>(), "eval keeps the stored order");
        let images = Tensor::cat(&eval.iter().map(|b| b.images.shallow_clone()).collect::<Vec<_>>(), 0);
        let expected = Tensor::stack(&(0..20).map(|i| normalised(&set, i)).collect::<Vec<_>>(), 0);
        assert!(images.allclose(&expected, 1e-5, 1e-5, false));
    }

    #[test]
    fn flip_only_mirrors_and_crop_only_shifts() {
        let (set, _) = indexed_set(64);
        let flip = Augment { crop_padding: 0, flip: true };
        let (mut flipped, mut kept) = (0, 0);
        for batch in train_batches(&set, &MEAN, &STD, 16, 2, 0, 0, flip, false) {
            for (j, &label) in Vec::<i64>::try_from(&batch.labels).unwrap().iter().enumerate() {
                let got = batch.images.get(j as i64);
                let source = normalised(&set, label);
                if got.allclose(&source, 1e-5, 1e-5, false) {
                    kept += 1;
                } else {
                    assert!(got.allclose(&source.flip([2]), 1e-5, 1e-5, false), "image {label}");
                    flipped += 1;
                }
            }
        }
        assert!(flipped > 15 && kept > 15, "flipped {flipped}, kept {kept}");

        let crop = Augment { crop_padding: 2, flip: false };
        let mut shifted = 0;
        for batch in train_batches(&set, &MEAN, &STD, 16, 2, 0, 0, crop, false) {
            assert_eq!(&batch.images.size()[1..], &[2, 4, 5]);
            for (j, &label) in Vec::<i64>::try_from(&batch.labels).unwrap().iter().enumerate() {
                let got = batch.images.get(j as i64);
                // The crop of the zero-padded source at some offset in [0, 4]^2, padding normalised.
                let padded = set.images.get(label).to_kind(Kind::Double).constant_pad_nd([2, 2, 2, 2]);
                let mean = Tensor::from_slice(&MEAN).view([2, 1, 1]);
                let std = Tensor::from_slice(&STD).view([2, 1, 1]);
                let padded = ((padded / 255.0 - mean) / std).to_kind(Kind::Float);
                let offset = (0..5)
                    .flat_map(|oy| (0..5).map(move |ox| (oy, ox)))
                    .find(|&(oy, ox)| got.allclose(&padded.narrow(1, oy, 4).narrow(2, ox, 5), 1e-5, 1e-5, false));
                let offset = offset.unwrap_or_else(|| panic!("image {label} is not a crop of its source"));
                if offset != (2, 2) {
                    shifted += 1;
                }
            }
        }
        assert!(shifted > 32, "only {shifted} of 64 crops moved");
    }

    #[test]
    fn normalised_train_set_has_zero_mean_and_unit_std() {
        let dir = tempfile::tempdir().unwrap();
        let opts = crate::data::SynthOptions {
            train: 200,
            test: 10,
            classes: 4,
            image_size: 12,
            seed: 8,
            ..crate::data::SynthOptions::default()
        };
        crate::data::write_synthetic("npy", dir.path(), &opts).unwrap();
        let s = crate::data::load("npy", dir.path(), &serde_json::Map::new()).unwrap();
        let all: Vec<Tensor> = eval_batches(&s.train, &s.mean, &s.std, 64).map(|b| b.images).collect();
        let all = Tensor::cat(&all, 0).to_kind(Kind::Double);
        for c in 0..3 {
            let channel = all.select(1, c);
            let (mean, std) = (channel.mean(Kind::Double).double_value(&[]), channel.std(false).double_value(&[]));
            assert!(mean.abs() < 1e-4 && (std - 1.0).abs() < 1e-4, "channel {c}: mean {mean}, std {std}");
        }
        // The stats are those of the bytes, not a constant.
        assert!(s.std.iter().all(|&v| v > 0.05 && v < 0.5), "{:?}", s.std);
    }

    #[test]
    fn dropping_early_stops_the_worker_and_pinning_follows_cuda() {
        let (set, _) = indexed_set(200);
        let mut batches = train_batches(&set, &MEAN, &STD, 4, 0, 0, 0, CROP_FLIP, true);
        let first = batches.next().unwrap();
        if tch::Cuda::is_available() {
            assert!(first.images.is_pinned(Device::Cuda(0)));
        }
        drop(batches); // would hang here if the worker stayed blocked on the full queue
        let empty_set = indexed_set(0).0;
        let mut none = train_batches(&empty_set, &MEAN, &STD, 4, 0, 0, 0, CROP_FLIP, false);
        assert_eq!(none.len(), 0);
        assert!(none.next().is_none());
    }
}
