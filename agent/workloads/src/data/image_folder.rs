//! ImageNet-style class folders (`train/<class>/*.png|jpg|jpeg`, and `val/` or `test/`), the layout
//! of the downsampled ImageNet 32/64 px sets. Images are decoded on several threads, converted to
//! RGB and brought to `image_size` squares (by default: shorter side, then the central square).

use super::options::{choice, opt_positive_int};
use super::raw::RawSet;
use super::DataError;
use image::imageops::{self, FilterType};
use image::RgbImage;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How an image becomes an `image_size` square.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resize {
    /// Shorter side to `image_size` (aspect ratio kept), then the central square: no distortion,
    /// the border of the long side is lost (torchvision's Resize + CenterCrop).
    CenterCrop,
    /// Both sides to `image_size`: the whole image, stretched (how downsampled ImageNet was made).
    Stretch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Options {
    pub image_size: u32,
    pub resize: Resize,
}

/// Side used when the [data] table names none: the CIFAR size the studies' models are built for.
const DEFAULT_IMAGE_SIZE: i64 = 32;
const MAX_IMAGE_SIZE: i64 = 4096;
const EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

impl Options {
    pub fn from_options(options: &Map<String, Value>) -> Result<Options, DataError> {
        let image_size = opt_positive_int(options, "image_size")?.unwrap_or(DEFAULT_IMAGE_SIZE);
        if image_size > MAX_IMAGE_SIZE {
            return Err(DataError::BadOption {
                key: "image_size".into(),
                expected: format!("an integer from 1 to {MAX_IMAGE_SIZE}"),
                got: image_size.to_string(),
            });
        }
        let resize = match choice(options, "resize", &["center_crop", "stretch"])? {
            "center_crop" => Resize::CenterCrop,
            _ => Resize::Stretch,
        };
        Ok(Options { image_size: image_size as u32, resize })
    }
}

/// Reads both splits; labels index the sorted class folder names of `train/`.
pub(crate) fn load(path: &Path, opts: &Options) -> Result<(RawSet, RawSet), DataError> {
    let train_dir = path.join("train");
    let eval_dir = ["val", "test"]
        .iter()
        .map(|s| path.join(s))
        .find(|p| p.is_dir())
        .ok_or_else(|| DataError::invalid(path, "expected a val/ or test/ folder of class folders"))?;
    let classes = subfolders(&train_dir)?;
    if classes.is_empty() {
        return Err(DataError::invalid(&train_dir, "expected one folder per class, found none"));
    }
    let index: BTreeMap<&str, i64> = classes.iter().enumerate().map(|(i, name)| (name.as_str(), i as i64)).collect();
    let train_files = list_images(&train_dir, &classes, &index)?;
    let eval_classes = subfolders(&eval_dir)?;
    if let Some(missing) = eval_classes.iter().find(|c| !index.contains_key(c.as_str())) {
        return Err(DataError::invalid(
            &eval_dir.join(missing),
            format!("class \"{missing}\" has no folder under {}", train_dir.display()),
        ));
    }
    let eval_files = list_images(&eval_dir, &eval_classes, &index)?;
    for (dir, files) in [(&train_dir, &train_files), (&eval_dir, &eval_files)] {
        if files.is_empty() {
            return Err(DataError::invalid(
                dir,
                format!("no images: expected files ending in .{} under the class folders", EXTENSIONS.join(", .")),
            ));
        }
    }
    let classes = classes.len() as i64;
    Ok((decode_all(&train_files, opts, classes)?, decode_all(&eval_files, opts, classes)?))
}

/// Writes `train/` and `val/` of PNG files, one folder per class named so that sorting the names
/// gives back the label order (`class_007` before `class_010`).
pub(crate) fn write(out: &Path, train: &RawSet, test: &RawSet) -> Result<(), DataError> {
    let digits = train.classes.max(1).saturating_sub(1).to_string().len().max(2);
    for (set, split) in [(train, "train"), (test, "val")] {
        if set.channels != 3 {
            return Err(DataError::invalid(
                out,
                format!("image_folder writes RGB images, got {} channels", set.channels),
            ));
        }
        for class in 0..train.classes {
            let dir = out.join(split).join(format!("class_{class:0digits$}"));
            std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, "create the folder", e))?;
        }
        let plane = set.height * set.width;
        for i in 0..set.len() {
            let chw = set.image(i);
            let hwc: Vec<u8> = (0..plane).flat_map(|p| (0..3).map(move |c| chw[c * plane + p])).collect();
            let image = RgbImage::from_raw(set.width as u32, set.height as u32, hwc)
                .expect("the buffer holds width x height RGB pixels");
            let file = out.join(split).join(format!("class_{:0digits$}", set.labels[i])).join(format!("{i:06}.png"));
            image
                .save_with_format(&file, image::ImageFormat::Png)
                .map_err(|e| DataError::invalid(&file, format!("cannot write the image: {e}")))?;
        }
    }
    Ok(())
}

/// Sorted names of the folders in `dir` (hidden ones skipped).
fn subfolders(dir: &Path) -> Result<Vec<String>, DataError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, "list the class folders", e))? {
        let entry = entry.map_err(|e| DataError::io(dir, "list the class folders", e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && !name.starts_with('.') {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The image files of each class folder, sorted by name within a class, with their labels.
fn list_images(dir: &Path, classes: &[String], index: &BTreeMap<&str, i64>) -> Result<Vec<(PathBuf, i64)>, DataError> {
    let mut files = Vec::new();
    for class in classes {
        let class_dir = dir.join(class);
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&class_dir).map_err(|e| DataError::io(&class_dir, "list the images", e))? {
            let path = entry.map_err(|e| DataError::io(&class_dir, "list the images", e))?.path();
            // ImageNet names its files `.JPEG`: extensions compare without case.
            let is_image = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
            if is_image && path.is_file() {
                found.push(path);
            }
        }
        found.sort();
        files.extend(found.into_iter().map(|p| (p, index[class.as_str()])));
    }
    Ok(files)
}

/// Decodes the files on up to one thread per core, each taking a contiguous chunk, so the result is
/// in file order whatever the thread count.
pub(crate) fn decode_all(files: &[(PathBuf, i64)], opts: &Options, classes: i64) -> Result<RawSet, DataError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(files.len()).max(1);
    let chunk = files.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<u8>, DataError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for (file, _) in part {
                        out.extend(decode(file, opts)?);
                    }
                    Ok(out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("an image decoding thread panicked")).collect()
    });
    let mut pixels = Vec::new();
    for part in parts {
        pixels.extend(part?);
    }
    let side = opts.image_size as usize;
    Ok(RawSet {
        pixels,
        labels: files.iter().map(|(_, l)| *l).collect(),
        channels: 3,
        height: side,
        width: side,
        classes,
    })
}

/// One file as CHW RGB bytes of an `image_size` square.
fn decode(file: &Path, opts: &Options) -> Result<Vec<u8>, DataError> {
    let decode_err = |e: image::ImageError| DataError::Decode { path: file.to_path_buf(), message: e.to_string() };
    let image = image::ImageReader::open(file)
        .map_err(|e| DataError::io(file, "open the image", e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(file, "read the image", e))?
        .decode()
        .map_err(decode_err)?
        .to_rgb8();
    let square = to_square(image, opts);
    let plane = (opts.image_size * opts.image_size) as usize;
    let hwc = square.into_raw();
    let mut chw = vec![0u8; 3 * plane];
    for p in 0..plane {
        for c in 0..3 {
            chw[c * plane + p] = hwc[p * 3 + c];
        }
    }
    Ok(chw)
}

/// Resizes with a triangle (bilinear) filter, which the `image` crate widens when shrinking, so
/// downsampling averages rather than aliases. An image already of the target size is kept as is.
fn to_square(image: RgbImage, opts: &Options) -> RgbImage {
    let s = opts.image_size;
    let (w, h) = image.dimensions();
    if (w, h) == (s, s) {
        return image;
    }
    match opts.resize {
        Resize::Stretch => imageops::resize(&image, s, s, FilterType::Triangle),
        Resize::CenterCrop => {
            let scale = s as f64 / w.min(h) as f64;
            let (nw, nh) = (((w as f64 * scale).round() as u32).max(s), ((h as f64 * scale).round() as u32).max(s));
            let resized = imageops::resize(&image, nw, nh, FilterType::Triangle);
            imageops::crop_imm(&resized, (nw - s) / 2, (nh - s) / 2, s, s).to_image()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{load as load_set, write_synthetic, SynthOptions};
    use image::{GrayImage, Rgb};

    fn synth() -> SynthOptions {
        SynthOptions { train: 30, test: 12, classes: 11, image_size: 16, seed: 2, ..SynthOptions::default() }
    }

    fn size_option(size: i64) -> Map<String, Value> {
        let mut options = Map::new();
        options.insert("image_size".into(), size.into());
        options
    }

    /// Indices of a generated set in the order the loader lists them: by class, then by file name
    /// (the writer names files by index).
    fn loader_order(labels: &[i64]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..labels.len()).collect();
        order.sort_by_key(|&i| labels[i]);
        order
    }

    #[test]
    fn round_trip_through_class_folders() {
        let dir = tempfile::tempdir().unwrap();
        write_synthetic("image_folder", dir.path(), &synth()).unwrap();
        // Eleven classes: zero-padded names keep sorted order equal to label order.
        assert!(dir.path().join("train/class_10").is_dir());
        let (train, test) = crate::data::synthetic::generate(&synth(), 3);
        let s = load_set("image_folder", dir.path(), &size_option(16)).unwrap();
        assert_eq!(s.train.classes, 11);
        assert_eq!(s.train.images.size(), vec![30, 3, 16, 16]);
        for (set, raw) in [(&s.train, &train), (&s.test, &test)] {
            let labels = Vec::<i64>::try_from(&set.labels).unwrap();
            for (k, &i) in loader_order(&raw.labels).iter().enumerate() {
                assert_eq!(labels[k], raw.labels[i]);
                let loaded = Vec::<u8>::try_from(&set.images.get(k as i64).flatten(0, -1)).unwrap();
                assert_eq!(loaded, raw.image(i), "image {i}");
            }
        }
        // `test/` is accepted in place of `val/`.
        std::fs::rename(dir.path().join("val"), dir.path().join("test")).unwrap();
        let again = load_set("image_folder", dir.path(), &size_option(16)).unwrap();
        assert!(again.test.images.equal(&s.test.images));
    }

    #[test]
    fn errors_name_the_class_or_file() {
        let dir = tempfile::tempdir().unwrap();
        write_synthetic("image_folder", dir.path(), &synth()).unwrap();
        std::fs::create_dir(dir.path().join("val/zebra")).unwrap();
        let err = load_set("image_folder", dir.path(), &size_option(16)).unwrap_err().to_string();
        assert!(err.contains("zebra"), "{err}");
        std::fs::remove_dir(dir.path().join("val/zebra")).unwrap();
        let broken = dir.path().join("train/class_03/broken.png");
        std::fs::write(&broken, b"not a png").unwrap();
        let err = load_set("image_folder", dir.path(), &size_option(16)).unwrap_err().to_string();
        assert!(err.contains("broken.png"), "{err}");
        let err = load_set("image_folder", dir.path(), &size_option(0)).unwrap_err().to_string();
        assert!(err.starts_with("data.image_size: expected an integer >= 1"), "{err}");
    }

    /// A 40x20 image: blue in columns 0-9, green in 10-29, red in 30-39. Centre-cropping keeps only
    /// the green middle; stretching keeps all three bands. A grayscale file comes out as RGB.
    #[test]
    fn resize_policies_and_grayscale() {
        let dir = tempfile::tempdir().unwrap();
        let image = RgbImage::from_fn(40, 20, |x, _| match x {
            0..=9 => Rgb([0, 0, 255]),
            10..=29 => Rgb([0, 255, 0]),
            _ => Rgb([255, 0, 0]),
        });
        for split in ["train", "val"] {
            std::fs::create_dir_all(dir.path().join(split).join("a")).unwrap();
            std::fs::create_dir_all(dir.path().join(split).join("b")).unwrap();
            // Upper-case extensions, as ImageNet's `.JPEG`, are images too.
            image.save_with_format(dir.path().join(split).join("a/bands.PNG"), image::ImageFormat::Png).unwrap();
            GrayImage::from_pixel(8, 8, image::Luma([77])).save(dir.path().join(split).join("b/gray.png")).unwrap();
        }
        let s = load_set("image_folder", dir.path(), &size_option(16)).unwrap();
        let px = |t: &tch::Tensor, c: i64, y: i64, x: i64| t.int64_value(&[0, c, y, x]);
        // 40x20 -> 32x16, columns 8..24 kept: original columns 10..30, all green away from the edges.
        for x in 2..14 {
            assert_eq!((px(&s.train.images, 0, 8, x), px(&s.train.images, 1, 8, x)), (0, 255), "x = {x}");
        }
        let mut options = size_option(16);
        options.insert("resize".into(), "stretch".into());
        let s = load_set("image_folder", dir.path(), &options).unwrap();
        assert_eq!(px(&s.train.images, 2, 8, 1), 255, "blue band on the left");
        assert_eq!(px(&s.train.images, 0, 8, 14), 255, "red band on the right");
        assert_eq!(s.train.images.get(1).flatten(0, -1).min().int64_value(&[]), 77);
        assert_eq!(s.train.images.get(1).flatten(0, -1).max().int64_value(&[]), 77);
    }
}
