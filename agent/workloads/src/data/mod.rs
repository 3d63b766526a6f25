//! Data sets for the workloads: readers of the real on-disk image formats (CIFAR binary batches,
//! ImageNet-style class folders, MNIST IDX files, NumPy `.npy` arrays), writers of synthetic sets
//! in those same formats, label noise, and the prefetching batch iterator that feeds training;
//! the token sequences of `seq2seq` ([`sequences`]), and CUB-200-2011's bird photographs with ten
//! sentences each, read and written in their real layout ([`cub`]).
//!
//! Everything random here is a function of an explicit seed (`crate::rng`), so a trial that resumes
//! from a checkpoint sees exactly the data it would have seen without the interruption.

mod batches;
mod cifar;
pub mod cub;
mod image_folder;
mod imagenet_lt;
mod long_tail;
mod mnist;
mod noise;
mod npy;
mod options;
pub mod pgn;
mod raw;
mod resident;
mod sampler;
pub mod sequences;
mod synthetic;

pub use batches::{eval_batches, train_batches, train_batches_in_order, Augment, Batch, Batches};
pub use long_tail::exponential_counts;
pub use noise::with_label_noise;
pub use resident::ResidentImages;
pub use sampler::{Sampler, SamplerKind};
pub use synthetic::{default_image_size, write_synthetic, Generator, SynthOptions};

use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The formats `load` reads and `write_synthetic` writes.
pub const FORMATS: &[&str] = &["cifar10", "cifar100", "cifar_lt", "image_folder", "imagenet_lt", "mnist", "npy"];

/// `imbalance_ratio` of `cifar_lt` when the [data] table names none: the most reported setting.
pub const DEFAULT_IMBALANCE_RATIO: f64 = 100.0;

/// An in-memory image set: images u8 [N, C, H, W] on the CPU, labels i64 [N].
#[derive(Debug)]
pub struct ImageSet {
    pub images: tch::Tensor,
    pub labels: tch::Tensor,
    /// Labels lie in 0..classes.
    pub classes: i64,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }

    /// Another handle on the same images and labels (no copy).
    pub fn shallow_clone(&self) -> ImageSet {
        ImageSet { images: self.images.shallow_clone(), labels: self.labels.shallow_clone(), classes: self.classes }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The two splits of a data set and the statistics the model normalises its inputs with.
#[derive(Debug)]
pub struct Splits {
    pub train: ImageSet,
    pub test: ImageSet,
    /// Per-channel mean of the train images in [0, 1], for normalisation.
    pub mean: Vec<f64>,
    /// Per-channel (population) standard deviation of the train images in [0, 1].
    pub std: Vec<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("data.format: expected one of {}, got \"{got}\"", FORMATS.join(", "))]
    UnknownFormat { got: String },
    #[error("data.{key}: expected {expected}, got {got}")]
    BadOption { key: String, expected: String, got: String },
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The file or folder exists but does not hold what its format promises.
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("{}: cannot decode the image: {message}", path.display())]
    Decode { path: PathBuf, message: String },
    /// A [data] key the format does not read: most likely a typo, so it is refused, not ignored.
    #[error("data.{key}: the {format} format takes no such key ({})", keys.join(", "))]
    UnknownKey { key: String, format: &'static str, keys: &'static [&'static str] },
}

impl DataError {
    pub(crate) fn io(path: &Path, action: &'static str, source: std::io::Error) -> DataError {
        DataError::Io { path: path.to_path_buf(), action, source }
    }

    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> DataError {
        DataError::Invalid { path: path.to_path_buf(), message: message.into() }
    }
}

/// Writes a data set to `path` through `write`, which fills a temporary sibling folder that is then
/// renamed into place: trials that start together and find nothing there each write their own,
/// the first rename wins, and no trial ever reads a half-written set. `write`'s errors come back as
/// they are; the folder's own (creating the parent, the rename) as [`DataError`]s.
pub(crate) fn write_in_place<E: From<DataError>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, "create", e))?;
    }
    write(&tmp)?;
    if std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        if !path.exists() {
            return Err(DataError::invalid(path, "could not move the synthetic set into place").into());
        }
    }
    Ok(())
}

/// Reads `format` at `path`. `options` is the rest of the sweep file's [data] table; keys a format
/// does not use are left for other readers of the table and ignored here:
/// - cifar100: `label = "fine" | "coarse"` (default "fine");
/// - cifar_lt: CIFAR-10 or CIFAR-100 binary batches (whichever `path` holds), cut long-tailed with
///   `imbalance_ratio` (default 100);
/// - image_folder: `image_size` (default 32) and `resize = "center_crop" | "stretch"` (default
///   "center_crop": shorter side to `image_size`, then the central square);
/// - imagenet_lt: `path` is the ImageNet root; `train_list`, `test_list` (default
///   `ImageNet_LT_train.txt`, `ImageNet_LT_test.txt` under the root), `image_size`, `resize`;
/// - mnist: the IDX files `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
///   `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte` at `path` (or `path/MNIST/raw`), each raw
///   or gzipped (`.gz`); `classes` as for npy;
/// - npy: `classes` (default: the largest label of either split + 1).
///
/// Every format also takes `imbalance_ratio`, which cuts the training split to the exponential
/// long-tail profile (`long_tail`); test splits are never cut.
pub fn load(format: &str, path: &Path, options: &Map<String, Value>) -> Result<Splits, DataError> {
    let (train, test) = match format {
        "cifar10" => cifar::load_cifar10(path)?,
        "cifar100" => cifar::load_cifar100(path, cifar::LabelKind::from_options(options)?)?,
        "cifar_lt" if cifar::holds_cifar10(path) => cifar::load_cifar10(path)?,
        "cifar_lt" => cifar::load_cifar100(path, cifar::LabelKind::from_options(options)?)?,
        "image_folder" => image_folder::load(path, &image_folder::Options::from_options(options)?)?,
        "imagenet_lt" => {
            let list = |key: &str, default: &str| -> Result<PathBuf, DataError> {
                match options.get(key) {
                    None => Ok(path.join(default)),
                    Some(Value::String(s)) => Ok(PathBuf::from(s)),
                    Some(other) => {
                        Err(DataError::BadOption { key: key.into(), expected: "a path".into(), got: other.to_string() })
                    }
                }
            };
            let train_list = list("train_list", imagenet_lt::DEFAULT_TRAIN_LIST)?;
            let test_list = list("test_list", imagenet_lt::DEFAULT_TEST_LIST)?;
            imagenet_lt::load(path, &train_list, &test_list, &image_folder::Options::from_options(options)?)?
        }
        "mnist" => mnist::load(path, options::opt_positive_int(options, "classes")?)?,
        "npy" => npy::load(path, options::opt_positive_int(options, "classes")?)?,
        other => return Err(DataError::UnknownFormat { got: other.to_string() }),
    };
    let ratio = match (options.get("imbalance_ratio"), format) {
        (None, "cifar_lt") => Some(DEFAULT_IMBALANCE_RATIO),
        (None, _) => None,
        (Some(v), _) => match v.as_f64() {
            Some(r) if r >= 1.0 && r.is_finite() => Some(r),
            _ => {
                return Err(DataError::BadOption {
                    key: "imbalance_ratio".into(),
                    expected: "a number >= 1 (largest / smallest class)".into(),
                    got: v.to_string(),
                })
            }
        },
    };
    let train = match ratio {
        Some(r) if r > 1.0 => long_tail::take_long_tail(train, r),
        _ => train,
    };
    // One network sees both splits: their image shapes must agree.
    if train.chw() != test.chw() {
        return Err(DataError::invalid(
            path,
            format!(
                "train images are {:?} (channels, height, width) but test images are {:?}",
                train.chw(),
                test.chw()
            ),
        ));
    }
    let (mean, std) = train.channel_stats();
    Ok(Splits { train: train.into_image_set(), test: test.into_image_set(), mean, std })
}
