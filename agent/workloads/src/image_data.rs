//! The image data of a trial: the `[data]` section read through the real loaders (synthesised in
//! the same format first when the section asks for it and the files are absent), cut to `n_train`,
//! with the trial's label noise, and served to the training loop.

use crate::data::{self, Augment, ImageSet, ResidentImages, Sampler, SamplerKind, Splits, SynthOptions};
use crate::error::TrialError;
use crate::harness::{Batch, TrainData};
use crate::rng::mix;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use sweep_spec::DataRef;
use tch::{Device, Tensor};

/// Padding of the standard CIFAR random crop.
const CROP_PADDING: i64 = 4;
/// Evaluation needs no gradients, so it can use larger batches than training.
const EVAL_BATCH_SIZE: i64 = 1024;

/// Reads the trial's data. `[data] synthetic = { train, test, classes, image_size, seed,
/// imbalance_ratio, generator }` first writes a synthetic set of that shape at `path` (`root` for
/// imagenet_lt) if nothing is there; `image_size` defaults to the format's usual side (28 for
/// mnist, else 32).
pub fn load(data: &DataRef) -> Result<Splits, TrialError> {
    let location = if data.format == "imagenet_lt" { data.options.get("root").and_then(Value::as_str) } else { None };
    let path = PathBuf::from(location.or(data.path.as_deref()).ok_or_else(|| {
        let key = if data.format == "imagenet_lt" { "data.root" } else { "data.path" };
        TrialError::bad_config(format!("{key}: expected the folder of the data set (missing)"))
    })?);
    let mut options = data.options.clone();
    if let Some(synthetic) = options.remove("synthetic") {
        let opts = synth_options(&synthetic, &data.format)?;
        if !path.exists() {
            synthesize(synth_format(&data.format, opts.classes), &path, &opts)?;
        }
    }
    if !path.exists() {
        return Err(TrialError::bad_config(format!(
            "data: {} does not exist; write a synthetic set there with `sweep data synth --format {} --out {}`",
            path.display(),
            synth_format(&data.format, 10),
            path.display()
        )));
    }
    Ok(data::load(&data.format, &path, &options)?)
}

/// The format a synthetic set is written in: CIFAR-LT is cut from plain CIFAR batches at load time.
fn synth_format(format: &str, classes: i64) -> &str {
    match format {
        "cifar_lt" if classes > 10 => "cifar100",
        "cifar_lt" => "cifar10",
        other => other,
    }
}

const SYNTH_KEYS: [&str; 7] = ["train", "test", "classes", "image_size", "seed", "imbalance_ratio", "generator"];

fn synth_options(v: &Value, format: &str) -> Result<SynthOptions, TrialError> {
    let expected = || format!("expected a table with keys among {}", SYNTH_KEYS.join(", "));
    let t: &Map<String, Value> =
        v.as_object().ok_or_else(|| TrialError::bad_config(format!("data.synthetic: {}", expected())))?;
    let get = |k: &str, default: u64| -> Result<u64, TrialError> {
        match t.get(k) {
            None => Ok(default),
            Some(v) => v.as_u64().filter(|n| *n > 0 || k == "seed").ok_or_else(|| {
                TrialError::bad_config(format!("data.synthetic.{k}: expected a positive integer, got {v}"))
            }),
        }
    };
    if let Some(k) = t.keys().find(|k| !SYNTH_KEYS.contains(&k.as_str())) {
        return Err(TrialError::bad_config(format!("data.synthetic.{k}: {}", expected())));
    }
    let imbalance_ratio = match t.get("imbalance_ratio") {
        None => 1.0,
        Some(v) => v.as_f64().filter(|r| *r >= 1.0).ok_or_else(|| {
            TrialError::bad_config(format!("data.synthetic.imbalance_ratio: expected a number >= 1, got {v}"))
        })?,
    };
    let generator = match t.get("generator") {
        None => data::Generator::Patterns,
        Some(v) => data::Generator::parse(v.as_str().unwrap_or_default())
            .map_err(|e| TrialError::bad_config(format!("data.synthetic.generator: {e}")))?,
    };
    Ok(SynthOptions {
        train: get("train", 5000)? as usize,
        test: get("test", 1000)? as usize,
        classes: get("classes", 10)? as i64,
        image_size: get("image_size", data::default_image_size(format) as u64)? as i64,
        seed: get("seed", 0)?,
        imbalance_ratio,
        generator,
    })
}

/// Several trials may start at once on a fresh path: each writes into its own temporary folder
/// and renames it into place; the first rename wins and the others use its files.
fn synthesize(format: &str, path: &Path, opts: &SynthOptions) -> Result<(), TrialError> {
    eprintln!(
        "writing a synthetic {format} set to {} ({} train, {} test images)",
        path.display(),
        opts.train,
        opts.test
    );
    data::write_in_place(path, |tmp| {
        data::write_synthetic(format, tmp, opts).map_err(|e| TrialError::bad_config(e.to_string()))
    })
}

/// u8 [N, C, H, W] images as f64 in [0, 1], normalised per channel.
pub fn normalised(images: &Tensor, mean: &[f64], std: &[f64]) -> Tensor {
    let c = mean.len() as i64;
    let mean = Tensor::from_slice(mean).view([1, c, 1, 1]);
    let std = Tensor::from_slice(std).view([1, c, 1, 1]);
    (images.to_kind(tch::Kind::Double) / 255.0 - mean) / std
}

/// The first `n` images of a set (all of them for n = 0 or n beyond the set).
pub fn first(set: ImageSet, n: usize) -> ImageSet {
    if n == 0 || n >= set.len() {
        return set;
    }
    ImageSet {
        images: set.images.narrow(0, 0, n as i64),
        labels: set.labels.narrow(0, 0, n as i64),
        classes: set.classes,
    }
}

/// Sets of at most this many bytes (train and test together) live on a CUDA device during
/// training: CIFAR (180 MB), 32/64 px ImageNet, the synthetic sets.
const RESIDENT_MAX_BYTES: u64 = 4 << 30;

/// How a trial draws its batches: its training images (with its own labels), batch size, seed,
/// augmentation and sampler. A lone trial's (`ImageData::new`) or a fused member's
/// (`ImageData::for_group`).
pub struct Draws {
    /// The training images, with this trial's labels.
    pub train: ImageSet,
    pub batch_size: i64,
    pub seed: u64,
    pub augment: bool,
    pub sampler: SamplerKind,
}

/// The training loop's view of an image set.
pub struct ImageData {
    pub train: ImageSet,
    pub test: ImageSet,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    pub batch_size: i64,
    pub seed: u64,
    pub augment: bool,
    pub pin: bool,
    /// How an epoch visits the training images.
    pub sampler: Sampler,
    /// Both splits on the training device, when they fit: batches are then built there.
    resident: Option<(ResidentImages, ResidentImages)>,
}

impl ImageData {
    /// The loop's view of a trial's training draws and the test set and statistics of its split.
    pub fn new(draws: Draws, test: ImageSet, (mean, std): (Vec<f64>, Vec<f64>), device: Device) -> ImageData {
        let Draws { train, batch_size, seed, augment, sampler } = draws;
        let labels = Vec::<i64>::try_from(&train.labels).expect("labels are i64");
        let sampler = Sampler::new(sampler, &labels, train.classes as usize);
        let pin = device.is_cuda();
        let data = ImageData { train, test, mean, std, batch_size, seed, augment, pin, sampler, resident: None };
        let bytes = ResidentImages::bytes(&data.train) + ResidentImages::bytes(&data.test);
        match device.is_cuda() && bytes <= RESIDENT_MAX_BYTES {
            true => {
                eprintln!("data on {device:?} ({:.1} MB): batches are built there", bytes as f64 / 1e6);
                data.resident_on(device)
            }
            false => data,
        }
    }

    /// The data of each member of a fused group, in member order, all with the group's test
    /// split and statistics: the first member's is built as a lone trial's, and where it lives on
    /// the device the others share that upload (only their labels are their own), so a group of G
    /// holds the set there once, not G times.
    pub fn for_group(members: Vec<Draws>, test: &ImageSet, stats: (&[f64], &[f64]), device: Device) -> Vec<ImageData> {
        let mut data: Vec<ImageData> = Vec::with_capacity(members.len());
        for m in members {
            data.push(match data.first() {
                Some(first) => ImageData::member_of(first, m),
                None => ImageData::new(m, test.shallow_clone(), (stats.0.to_vec(), stats.1.to_vec()), device),
            });
        }
        data
    }

    /// Another member of `first`'s group: its training images are `first`'s, its device copy too.
    fn member_of(first: &ImageData, m: Draws) -> ImageData {
        let train = m.train;
        assert_eq!(train.images.data_ptr(), first.train.images.data_ptr(), "a member trains on the group's images");
        let labels = Vec::<i64>::try_from(&train.labels).expect("labels are i64");
        let sampler = Sampler::new(m.sampler, &labels, train.classes as usize);
        let resident = first.resident.as_ref().map(|(t, test)| (t.with_labels(&train.labels), test.shallow_clone()));
        ImageData {
            test: first.test.shallow_clone(),
            mean: first.mean.clone(),
            std: first.std.clone(),
            train,
            batch_size: m.batch_size,
            seed: m.seed,
            augment: m.augment,
            pin: first.pin,
            sampler,
            resident,
        }
    }

    /// Uploads both splits to `device`; batches are gathered, augmented and normalised there,
    /// identical to those the host path builds.
    pub fn resident_on(mut self, device: Device) -> ImageData {
        self.resident = Some((
            ResidentImages::new(&self.train, &self.mean, &self.std, device),
            ResidentImages::new(&self.test, &self.mean, &self.std, device),
        ));
        self
    }

    fn augmentation(&self) -> Augment {
        if self.augment {
            Augment { crop_padding: CROP_PADDING, flip: true }
        } else {
            Augment::NONE
        }
    }
}

/// Every batch of an in-order pass over a resident set, without augmentation.
fn resident_pass(set: &ResidentImages, len: usize) -> Box<dyn Iterator<Item = Batch> + '_> {
    let order: Vec<i64> = (0..len as i64).collect();
    let size = EVAL_BATCH_SIZE as usize;
    Box::new((0..len.div_ceil(size)).map(move |b| to_batch(set.batch(&order, size, b, Augment::NONE, None))))
}

fn to_batch(b: data::Batch) -> Batch {
    Batch { inputs: b.images, labels: b.labels }
}

impl TrainData for ImageData {
    fn train_batches(&self, epoch: u64, start: u64) -> Box<dyn Iterator<Item = Batch> + '_> {
        let augment = self.augmentation();
        let order = self.sampler.order(self.seed, epoch);
        if let Some((train, _)) = &self.resident {
            let (size, key) = (self.batch_size as usize, mix(self.seed, epoch));
            let batches = order.len().div_ceil(size);
            return Box::new(
                (start as usize..batches).map(move |b| to_batch(train.batch(&order, size, b, augment, Some(key)))),
            );
        }
        Box::new(
            data::train_batches_in_order(
                &self.train,
                &self.mean,
                &self.std,
                self.batch_size,
                order,
                mix(self.seed, epoch),
                start,
                augment,
                self.pin,
            )
            .map(to_batch),
        )
    }

    fn batches_per_epoch(&self) -> u64 {
        (self.train.len() as u64).div_ceil(self.batch_size as u64)
    }

    fn eval_train(&self) -> Box<dyn Iterator<Item = Batch> + '_> {
        if let Some((train, _)) = &self.resident {
            return resident_pass(train, self.train.len());
        }
        Box::new(data::eval_batches(&self.train, &self.mean, &self.std, EVAL_BATCH_SIZE).map(to_batch))
    }

    fn eval_test(&self) -> Box<dyn Iterator<Item = Batch> + '_> {
        if let Some((_, test)) = &self.resident {
            return resident_pass(test, self.test.len());
        }
        Box::new(data::eval_batches(&self.test, &self.mean, &self.std, EVAL_BATCH_SIZE).map(to_batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(sampler: SamplerKind) -> ImageData {
        let dir = tempfile::tempdir().unwrap();
        let opts = SynthOptions { train: 90, test: 30, classes: 3, image_size: 8, seed: 1, ..SynthOptions::default() };
        data::write_synthetic("npy", dir.path(), &opts).unwrap();
        let splits = data::load("npy", dir.path(), &Map::new()).unwrap();
        let draws = Draws { train: splits.train, batch_size: 16, seed: 5, augment: true, sampler };
        ImageData::new(draws, splits.test, (splits.mean, splits.std), Device::Cpu)
    }

    /// A `[data]` section of format mnist with `synthetic`: written as MNIST IDX files (28x28 grey
    /// by default) where nothing is, then read back through the mnist reader.
    #[test]
    fn an_mnist_data_section_synthesizes_and_reads_idx_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnist");
        let mut options = Map::new();
        options.insert("synthetic".into(), serde_json::json!({ "train": 40, "test": 10, "classes": 4 }));
        let section = DataRef { format: "mnist".into(), path: Some(path.display().to_string()), options };
        let splits = load(&section).unwrap();
        assert!(path.join("train-images-idx3-ubyte").is_file() && path.join("t10k-labels-idx1-ubyte").is_file());
        assert_eq!(splits.train.images.size(), vec![40, 1, 28, 28]);
        assert_eq!(splits.test.images.size(), vec![10, 1, 28, 28]);
        assert_eq!((splits.train.classes, splits.mean.len()), (4, 1));
        // Present now: read as it is, also without `synthetic`.
        let plain = DataRef { options: Map::new(), ..section };
        assert!(load(&plain).unwrap().train.images.equal(&splits.train.images));
        // Absent without `synthetic`: the hint names the format.
        let missing = DataRef { path: Some(dir.path().join("none").display().to_string()), ..plain };
        let err = load(&missing).unwrap_err().to_string();
        assert!(err.contains("sweep data synth --format mnist"), "{err}");
    }

    fn same(a: Box<dyn Iterator<Item = Batch> + '_>, b: Box<dyn Iterator<Item = Batch> + '_>) {
        let (a, b): (Vec<Batch>, Vec<Batch>) = (a.collect(), b.collect());
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!(x.inputs.equal(&y.inputs) && x.labels.equal(&y.labels));
        }
    }

    /// Training on device-resident data sees exactly the batches of the host path: same order,
    /// same crops and flips, same normalisation, also when a pass starts mid-epoch.
    #[test]
    fn resident_data_yields_the_host_batches() {
        for sampler in [SamplerKind::Instance, SamplerKind::ClassBalanced] {
            let host = data(sampler);
            let resident = data(sampler).resident_on(Device::Cpu);
            for (epoch, start) in [(0, 0), (3, 0), (3, 2)] {
                same(host.train_batches(epoch, start), resident.train_batches(epoch, start));
            }
            same(host.eval_train(), resident.eval_train());
            same(host.eval_test(), resident.eval_test());
        }
    }

    /// A fused group's second member, built from the first's upload with labels and a seed of
    /// its own, sees the batches it would see with data of its own.
    #[test]
    fn a_member_shares_the_first_members_upload_and_sees_its_own_batches() {
        let first = data(SamplerKind::Instance).resident_on(Device::Cpu);
        let labels = (first.train.labels.shallow_clone() + 1).remainder(3);
        let relabelled =
            || ImageSet { images: first.train.images.shallow_clone(), labels: labels.shallow_clone(), classes: 3 };
        for sampler in [SamplerKind::Instance, SamplerKind::ClassBalanced] {
            let draws = Draws { train: relabelled(), batch_size: 8, seed: 9, augment: true, sampler };
            let member = ImageData::member_of(&first, draws);
            let own_draws = Draws { train: relabelled(), batch_size: 8, seed: 9, augment: true, sampler };
            let own = ImageData::new(
                own_draws,
                first.test.shallow_clone(),
                (first.mean.clone(), first.std.clone()),
                Device::Cpu,
            )
            .resident_on(Device::Cpu);
            same(member.train_batches(2, 0), own.train_batches(2, 0));
            same(member.eval_train(), own.eval_train());
            same(member.eval_test(), own.eval_test());
            // Built from the first member's device copy (`ResidentImages::with_labels`), not a
            // new upload: on a GPU a group of G holds the set once.
            assert!(member.resident.is_some(), "the member's batches are built on the device too");
        }
    }
}
