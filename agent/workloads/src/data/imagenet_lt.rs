//! ImageNet-LT (Liu et al. 2019): split files `ImageNet_LT_{train,val,test}.txt`, one
//! `relative/path.JPEG label` per line, over an ImageNet folder. Images are decoded like class
//! folders (`image_folder::Options`: `image_size`, `resize`) and held in memory at that size.

use super::image_folder::{self, Options};
use super::raw::RawSet;
use super::DataError;
use image::RgbImage;
use std::path::{Path, PathBuf};

/// File names of the published split files, used when `train_list` / `test_list` are not given.
pub const DEFAULT_TRAIN_LIST: &str = "ImageNet_LT_train.txt";
pub const DEFAULT_TEST_LIST: &str = "ImageNet_LT_test.txt";

/// Reads both splits. Labels are those of the lists; classes = the largest label + 1.
pub(crate) fn load(
    root: &Path,
    train_list: &Path,
    test_list: &Path,
    opts: &Options,
) -> Result<(RawSet, RawSet), DataError> {
    let train = read_list(root, train_list)?;
    let test = read_list(root, test_list)?;
    let classes = train.iter().chain(&test).map(|(_, l)| l + 1).max().unwrap_or(1);
    Ok((image_folder::decode_all(&train, opts, classes)?, image_folder::decode_all(&test, opts, classes)?))
}

/// The (file, label) pairs of a split file; blank lines are skipped, anything else that is not
/// `path label` is an error naming the list and the line.
fn read_list(root: &Path, list: &Path) -> Result<Vec<(PathBuf, i64)>, DataError> {
    let text = std::fs::read_to_string(list).map_err(|e| DataError::io(list, "read the split file", e))?;
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |what: &str| DataError::invalid(list, format!("line {}: {what}, got \"{line}\"", n + 1));
        let (path, label) = line.rsplit_once(char::is_whitespace).ok_or_else(|| bad("expected `path label`"))?;
        let label: i64 = label.parse().ok().filter(|l| *l >= 0).ok_or_else(|| bad("expected a label >= 0"))?;
        entries.push((root.join(path.trim_end()), label));
    }
    if entries.is_empty() {
        return Err(DataError::invalid(list, "the split file lists no images"));
    }
    Ok(entries)
}

/// Writes the images of `train` and `test` as JPEG files under `root/train/<wnid>/` and
/// `root/val/<wnid>/`, with the two split files naming them, as the published set is laid out.
pub(crate) fn write(root: &Path, train: &RawSet, test: &RawSet) -> Result<(), DataError> {
    for (set, split, list) in [(train, "train", DEFAULT_TRAIN_LIST), (test, "val", DEFAULT_TEST_LIST)] {
        if set.channels != 3 {
            return Err(DataError::invalid(
                root,
                format!("imagenet_lt writes RGB images, got {} channels", set.channels),
            ));
        }
        let mut lines = String::new();
        let plane = set.height * set.width;
        for i in 0..set.len() {
            let label = set.labels[i];
            // ImageNet's folder names are WordNet ids: n + 8 digits.
            let relative = format!("{split}/n{label:08}/{split}_{i:07}.JPEG");
            let file = root.join(&relative);
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, "create the folder", e))?;
            }
            let chw = set.image(i);
            let hwc: Vec<u8> = (0..plane).flat_map(|p| (0..3).map(move |c| chw[c * plane + p])).collect();
            RgbImage::from_raw(set.width as u32, set.height as u32, hwc)
                .expect("the buffer holds width x height RGB pixels")
                .save_with_format(&file, image::ImageFormat::Jpeg)
                .map_err(|e| DataError::invalid(&file, format!("cannot write the image: {e}")))?;
            lines.push_str(&format!("{relative} {label}\n"));
        }
        let list_file = root.join(list);
        std::fs::write(&list_file, lines).map_err(|e| DataError::io(&list_file, "write the split file", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{load as load_set, write_synthetic, SynthOptions};
    use serde_json::{json, Map, Value};

    fn options(root: &Path) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("image_size".into(), json!(16));
        m.insert("train_list".into(), json!(root.join(DEFAULT_TRAIN_LIST).to_str().unwrap()));
        m
    }

    #[test]
    fn synthetic_split_files_read_back_long_tailed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("imagenet");
        let opts = SynthOptions {
            train: 400,
            test: 100,
            classes: 4,
            image_size: 16,
            imbalance_ratio: 10.0,
            ..SynthOptions::default()
        };
        write_synthetic("imagenet_lt", &root, &opts).unwrap();
        let first = std::fs::read_to_string(root.join(DEFAULT_TRAIN_LIST)).unwrap();
        let first = first.lines().next().unwrap();
        assert!(first.starts_with("train/n0000000") && first.contains(".JPEG "), "{first}");
        let splits = load_set("imagenet_lt", &root, &options(&root)).unwrap();
        let labels = Vec::<i64>::try_from(&splits.train.labels).unwrap();
        let count = |c| labels.iter().filter(|&&l| l == c).count();
        // 100 per class before the cut; 100 * 10^(-i/3) after.
        assert_eq!((count(0), count(1), count(2), count(3)), (100, 46, 21, 10));
        assert_eq!(splits.test.len(), 100);
        assert_eq!(splits.train.images.size(), [177, 3, 16, 16]);
    }

    #[test]
    fn bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list.txt");
        std::fs::write(&list, "train/a.JPEG 0\n\ntrain/b.JPEG cat\n").unwrap();
        let err = read_list(dir.path(), &list).unwrap_err().to_string();
        assert!(err.contains("list.txt") && err.contains("line 3") && err.contains("label"), "{err}");
        std::fs::write(&list, "justonefield\n").unwrap();
        assert!(read_list(dir.path(), &list).unwrap_err().to_string().contains("line 1"));
        let err = load_set("imagenet_lt", dir.path(), &Map::new()).unwrap_err().to_string();
        assert!(err.contains(DEFAULT_TRAIN_LIST), "{err}");
    }
}
