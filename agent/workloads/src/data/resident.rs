//! Image sets held on the training device, with batches gathered, cropped, flipped and normalised
//! there by tensor ops: on a GPU the host never touches a pixel after the upload, so the loader
//! cannot be the bottleneck. The random draws are the host path's (`batches`), made on the host
//! from the same (seed, epoch, batch) keys and shipped as a few integers per image, so a batch is
//! the same whichever path builds it.

use super::batches::{Augment, Batch};
use super::ImageSet;
use crate::rng::{mix, Rng, Stream};
use tch::{Device, Kind, Tensor};

/// An image set uploaded once: u8 images [N, C, H, W] and labels on `device`.
pub struct ResidentImages {
    images: Tensor,
    labels: Tensor,
    /// Per-channel mean and 1 / std as f32 [1, C, 1, 1] on the device.
    mean: Tensor,
    inv_std: Tensor,
    device: Device,
}

impl ResidentImages {
    /// Uploads `set`; `mean` and `std` normalise as the host path does (a zero std counts as 1).
    pub fn new(set: &ImageSet, mean: &[f64], std: &[f64], device: Device) -> ResidentImages {
        let c = mean.len() as i64;
        let per_channel = |v: Vec<f32>| Tensor::from_slice(&v).view([1, c, 1, 1]).to_device(device);
        ResidentImages {
            images: set.images.to_device(device),
            labels: set.labels.to_device(device),
            mean: per_channel(mean.iter().map(|&m| m as f32).collect()),
            inv_std: per_channel(std.iter().map(|&s| if s > 0.0 { 1.0 / s as f32 } else { 1.0 }).collect()),
            device,
        }
    }

    /// The same images (one upload, shared) with `labels` instead: a fused group's members train
    /// on one image set with labels of their own (label noise).
    pub fn with_labels(&self, labels: &Tensor) -> ResidentImages {
        ResidentImages {
            images: self.images.shallow_clone(),
            labels: labels.to_device(self.device),
            mean: self.mean.shallow_clone(),
            inv_std: self.inv_std.shallow_clone(),
            device: self.device,
        }
    }

    /// The same upload, shared.
    pub fn shallow_clone(&self) -> ResidentImages {
        self.with_labels(&self.labels)
    }

    /// Bytes the set occupies on the device.
    pub fn bytes(set: &ImageSet) -> u64 {
        set.images.numel() as u64 + 8 * set.labels.numel() as u64
    }

    /// Batch `b` of a pass over `order` in batches of `batch_size`, augmented with the draws keyed
    /// by (`augment_key`, b) when a key is given: the batch `batches::train_batches_in_order` yields.
    pub fn batch(
        &self,
        order: &[i64],
        batch_size: usize,
        b: usize,
        augment: Augment,
        augment_key: Option<u64>,
    ) -> Batch {
        let end = ((b + 1) * batch_size).min(order.len());
        let index = Tensor::from_slice(&order[b * batch_size..end]).to_device(self.device);
        let picked = self.images.index_select(0, &index);
        let labels = self.labels.index_select(0, &index);
        let images = match augment_key {
            Some(key) if augment != Augment::NONE => self.augment(&picked, augment, mix(key, b as u64)),
            _ => picked,
        };
        let images = (images.to_kind(Kind::Float) / 255.0 - &self.mean) * &self.inv_std;
        Batch { images, labels }
    }

    /// Crop with zero padding, then flip, per image, with the host path's draws (`Augment::draw`).
    fn augment(&self, images: &Tensor, augment: Augment, key: u64) -> Tensor {
        let size = images.size();
        let (n, c, h, w) = (size[0], size[1], size[2], size[3]);
        let pad = augment.crop_padding;
        let mut rng = Rng::new(key, Stream::Augment);
        let (mut rows, mut cols) = (Vec::with_capacity((n * h) as usize), Vec::with_capacity((n * w) as usize));
        for _ in 0..n {
            let (ox, oy, flip) = augment.draw(&mut rng);
            let (ox, oy) = (ox as i64, oy as i64);
            rows.extend((0..h).map(|y| y + oy));
            cols.extend((0..w).map(|x| if flip { w - 1 - x } else { x } + ox));
        }
        let padded = if pad > 0 { images.constant_pad_nd([pad, pad, pad, pad]) } else { images.shallow_clone() };
        let rows = Tensor::from_slice(&rows).view([n, 1, h, 1]).to_device(self.device);
        let cols = Tensor::from_slice(&cols).view([n, 1, 1, w]).to_device(self.device);
        padded.gather(2, &rows.expand([n, c, h, w + 2 * pad], false), false).gather(
            3,
            &cols.expand([n, c, h, w], false),
            false,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::batches::train_batches_in_order;
    use crate::data::raw::RawSet;

    fn random_set(n: usize) -> ImageSet {
        let mut rng = Rng::new(2, Stream::ImageTrain);
        RawSet {
            pixels: (0..n * 3 * 6 * 7).map(|_| rng.below(256) as u8).collect(),
            labels: (0..n as i64).map(|i| i % 4).collect(),
            channels: 3,
            height: 6,
            width: 7,
            classes: 4,
        }
        .into_image_set()
    }

    /// The device path builds bit-identical batches to the host path, with and without
    /// augmentation, for an order with repeats (as a class-balanced sampler draws).
    #[test]
    fn resident_batches_equal_the_host_batches() {
        let set = random_set(37);
        let (mean, std) = ([0.4, 0.5, 0.6], [0.2, 0.0, 0.3]);
        let order: Vec<i64> = Rng::new(5, Stream::EpochOrder).permutation(37).into_iter().chain([3, 3, 8]).collect();
        let resident = ResidentImages::new(&set, &mean, &std, Device::Cpu);
        for augment in [Augment::NONE, Augment { crop_padding: 2, flip: true }, Augment { crop_padding: 0, flip: true }]
        {
            let host: Vec<Batch> =
                train_batches_in_order(&set, &mean, &std, 8, order.clone(), 77, 0, augment, false).collect();
            assert_eq!(host.len(), 5);
            for (b, h) in host.iter().enumerate() {
                let d = resident.batch(&order, 8, b, augment, Some(77));
                assert!(d.labels.equal(&h.labels), "{augment:?} batch {b}: labels");
                assert!(d.images.equal(&h.images), "{augment:?} batch {b}: images differ");
            }
        }
    }
}
