//! The CIFAR-10 and CIFAR-100 binary formats (https://www.cs.toronto.edu/~kriz/cifar.html): files
//! of fixed-size records, label byte(s) then 3072 pixel bytes (the 32x32 red plane, then green,
//! then blue, each row-major). Reader and writer of both, so synthetic sets are real CIFAR files.

use super::options::choice;
use super::raw::RawSet;
use super::DataError;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

const SIDE: usize = 32;
const CHANNELS: usize = 3;
const IMAGE_BYTES: usize = CHANNELS * SIDE * SIDE;

/// Which of the two CIFAR-100 labels a set uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LabelKind {
    Fine,
    Coarse,
}

impl LabelKind {
    pub fn from_options(options: &Map<String, Value>) -> Result<LabelKind, DataError> {
        Ok(match choice(options, "label", &["fine", "coarse"])? {
            "fine" => LabelKind::Fine,
            _ => LabelKind::Coarse,
        })
    }
}

/// The layout of one record: how many label bytes lead it, which of them is the label, and how many
/// classes each label byte may name (for range checks with a useful message).
struct Layout {
    label_bytes: usize,
    pick: usize,
    classes: Vec<i64>,
}

impl Layout {
    fn record_bytes(&self) -> usize {
        self.label_bytes + IMAGE_BYTES
    }
}

/// Reads `data_batch_*.bin` (any that are present, in numeric order) and `test_batch.bin`.
/// Whether `path` holds CIFAR-10 batches (rather than CIFAR-100's), as `load_cifar10` finds them.
pub(crate) fn holds_cifar10(path: &Path) -> bool {
    locate(path, "cifar-10-batches-bin", "test_batch.bin").join("test_batch.bin").is_file()
}

pub(crate) fn load_cifar10(path: &Path) -> Result<(RawSet, RawSet), DataError> {
    let dir = locate(path, "cifar-10-batches-bin", "test_batch.bin");
    let train_files = numbered_batches(&dir)?;
    if train_files.is_empty() {
        return Err(DataError::invalid(
            &dir,
            "no data_batch_*.bin files: expected the CIFAR-10 binary batches \
             (data_batch_1.bin ... data_batch_5.bin and test_batch.bin)",
        ));
    }
    let classes = class_count(&dir.join("batches.meta.txt"), 10)?;
    let layout = Layout { label_bytes: 1, pick: 0, classes: vec![classes] };
    let mut train = empty(classes);
    for file in &train_files {
        read_batch(file, &layout, &mut train)?;
    }
    let mut test = empty(classes);
    read_batch(&dir.join("test_batch.bin"), &layout, &mut test)?;
    Ok((train, test))
}

/// Reads `train.bin` and `test.bin`; records carry the coarse label, then the fine one.
pub(crate) fn load_cifar100(path: &Path, kind: LabelKind) -> Result<(RawSet, RawSet), DataError> {
    let dir = locate(path, "cifar-100-binary", "train.bin");
    let coarse = class_count(&dir.join("coarse_label_names.txt"), 20)?;
    let fine = class_count(&dir.join("fine_label_names.txt"), 100)?;
    let layout = Layout {
        label_bytes: 2,
        pick: match kind {
            LabelKind::Coarse => 0,
            LabelKind::Fine => 1,
        },
        classes: vec![coarse, fine],
    };
    let classes = layout.classes[layout.pick];
    let mut train = empty(classes);
    read_batch(&dir.join("train.bin"), &layout, &mut train)?;
    let mut test = empty(classes);
    read_batch(&dir.join("test.bin"), &layout, &mut test)?;
    Ok((train, test))
}

/// Writes CIFAR-10 batches: the train set split evenly over up to five `data_batch_N.bin` files
/// (as the real download is), `test_batch.bin`, and `batches.meta.txt` with one name per class.
pub(crate) fn write_cifar10(dir: &Path, train: &RawSet, test: &RawSet) -> Result<(), DataError> {
    check_writable(dir, train)?;
    check_writable(dir, test)?;
    create_dir(dir)?;
    let parts = train.len().clamp(1, 5);
    for part in 0..parts {
        let (start, end) = (part * train.len() / parts, (part + 1) * train.len() / parts);
        let mut bytes = Vec::with_capacity((end - start) * (1 + IMAGE_BYTES));
        for i in start..end {
            encode_record(&[train.labels[i] as u8], train.image(i), &mut bytes);
        }
        write(&dir.join(format!("data_batch_{}.bin", part + 1)), &bytes)?;
    }
    let mut bytes = Vec::new();
    for i in 0..test.len() {
        encode_record(&[test.labels[i] as u8], test.image(i), &mut bytes);
    }
    write(&dir.join("test_batch.bin"), &bytes)?;
    write(&dir.join("batches.meta.txt"), class_names(train.classes).as_bytes())
}

/// Writes CIFAR-100 `train.bin` and `test.bin` from sets labelled with fine classes;
/// `coarse_of[fine]` is the coarse class each fine class belongs to.
pub(crate) fn write_cifar100(dir: &Path, train: &RawSet, test: &RawSet, coarse_of: &[i64]) -> Result<(), DataError> {
    check_writable(dir, train)?;
    check_writable(dir, test)?;
    create_dir(dir)?;
    for (set, name) in [(train, "train.bin"), (test, "test.bin")] {
        let mut bytes = Vec::with_capacity(set.len() * (2 + IMAGE_BYTES));
        for i in 0..set.len() {
            let fine = set.labels[i];
            encode_record(&[coarse_of[fine as usize] as u8, fine as u8], set.image(i), &mut bytes);
        }
        write(&dir.join(name), &bytes)?;
    }
    let coarse = coarse_of.iter().max().map_or(0, |&c| c + 1);
    write(&dir.join("fine_label_names.txt"), class_names(train.classes).as_bytes())?;
    write(&dir.join("coarse_label_names.txt"), class_names(coarse).as_bytes())
}

/// One record: the label bytes, then the image's planes as they are (RawSet already keeps the
/// CIFAR order: all red, then all green, then all blue).
fn encode_record(labels: &[u8], image: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(labels);
    out.extend_from_slice(image);
}

fn read_batch(file: &Path, layout: &Layout, out: &mut RawSet) -> Result<(), DataError> {
    let bytes = std::fs::read(file).map_err(|e| DataError::io(file, "read the CIFAR batch", e))?;
    let record = layout.record_bytes();
    let whole = bytes.len() / record;
    if bytes.len() % record != 0 {
        return Err(DataError::invalid(
            file,
            format!(
                "truncated record at byte offset {}: expected records of {record} bytes \
                 ({} label byte(s) + {IMAGE_BYTES} pixel bytes), the file has {} bytes",
                whole * record,
                layout.label_bytes,
                bytes.len()
            ),
        ));
    }
    if whole == 0 {
        return Err(DataError::invalid(file, "no records: the file is empty"));
    }
    out.pixels.reserve(whole * IMAGE_BYTES);
    out.labels.reserve(whole);
    for (r, rec) in bytes.chunks_exact(record).enumerate() {
        for (j, &classes) in layout.classes.iter().enumerate() {
            if rec[j] as i64 >= classes {
                return Err(DataError::invalid(
                    file,
                    format!(
                        "record {r} (byte offset {}): label byte {j} is {}, expected < {classes}",
                        r * record,
                        rec[j]
                    ),
                ));
            }
        }
        out.labels.push(rec[layout.pick] as i64);
        out.pixels.extend_from_slice(&rec[layout.label_bytes..]);
    }
    Ok(())
}

fn empty(classes: i64) -> RawSet {
    RawSet { pixels: Vec::new(), labels: Vec::new(), channels: CHANNELS, height: SIDE, width: SIDE, classes }
}

/// The folder holding the batches: `path` itself, or the folder the official tarball unpacks to
/// (`cifar-10-batches-bin`, `cifar-100-binary`) when `path` is its parent.
fn locate(path: &Path, unpacked: &str, marker: &str) -> PathBuf {
    let inner = path.join(unpacked);
    if !path.join(marker).exists() && inner.join(marker).exists() {
        inner
    } else {
        path.to_path_buf()
    }
}

/// `data_batch_<N>.bin` files of `dir`, ordered by N.
fn numbered_batches(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, "list the folder", e))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, "list the folder", e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let number = name
            .strip_prefix("data_batch_")
            .and_then(|rest| rest.strip_suffix(".bin"))
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(n) = number {
            found.push((n, entry.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// Number of classes: one per non-empty line of the names file when there is one (so a set with
/// fewer classes than the full data set says so), else the format's count.
fn class_count(names_file: &Path, default: i64) -> Result<i64, DataError> {
    match std::fs::read_to_string(names_file) {
        Ok(text) => {
            let count = text.lines().filter(|l| !l.trim().is_empty()).count() as i64;
            if !(1..=256).contains(&count) {
                return Err(DataError::invalid(
                    names_file,
                    format!("expected 1 to 256 class names, one per line, found {count}"),
                ));
            }
            Ok(count)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(default),
        Err(e) => Err(DataError::io(names_file, "read the class names", e)),
    }
}

fn class_names(classes: i64) -> String {
    (0..classes).map(|c| format!("class_{c}\n")).collect()
}

fn check_writable(dir: &Path, set: &RawSet) -> Result<(), DataError> {
    if set.chw() != (CHANNELS, SIDE, SIDE) {
        return Err(DataError::invalid(dir, format!("CIFAR records hold 3x32x32 images, got {:?}", set.chw())));
    }
    if set.classes > 256 || set.labels.iter().any(|&l| !(0..set.classes).contains(&l)) {
        return Err(DataError::invalid(dir, "CIFAR labels are single bytes below the class count"));
    }
    Ok(())
}

pub(super) fn create_dir(dir: &Path) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, "create the folder", e))
}

pub(super) fn write(file: &Path, bytes: &[u8]) -> Result<(), DataError> {
    std::fs::write(file, bytes).map_err(|e| DataError::io(file, "write", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{load, write_synthetic, SynthOptions};
    use tch::Tensor;

    /// A record built by hand: label 7, then the red plane (value = row + col), the green plane
    /// (100 + row), the blue plane (200 + col).
    fn hand_record() -> Vec<u8> {
        let mut rec = vec![7u8];
        for plane in 0..3 {
            for y in 0..32u8 {
                for x in 0..32u8 {
                    rec.push(match plane {
                        0 => y + x,
                        1 => 100 + y,
                        _ => 200 + x,
                    });
                }
            }
        }
        rec
    }

    #[test]
    fn record_layout_is_label_then_red_green_blue_planes() {
        let dir = tempfile::tempdir().unwrap();
        let rec = hand_record();
        assert_eq!(rec.len(), 3073);
        write(&dir.path().join("data_batch_1.bin"), &rec).unwrap();
        write(&dir.path().join("test_batch.bin"), &rec).unwrap();
        let splits = load("cifar10", dir.path(), &Map::new()).unwrap();
        assert_eq!(splits.train.images.size(), vec![1, 3, 32, 32]);
        assert_eq!(splits.train.labels.int64_value(&[0]), 7);
        assert_eq!(splits.train.classes, 10);
        let px = |c: i64, y: i64, x: i64| splits.train.images.int64_value(&[0, c, y, x]);
        for y in 0..32 {
            for x in 0..32 {
                assert_eq!(px(0, y, x), y + x, "red at ({y}, {x})");
                assert_eq!(px(1, y, x), 100 + y, "green at ({y}, {x})");
                assert_eq!(px(2, y, x), 200 + x, "blue at ({y}, {x})");
            }
        }
        // The writer produces the same bytes from the loaded set.
        let raw = RawSet {
            pixels: Vec::<u8>::try_from(&splits.train.images.flatten(0, -1)).unwrap(),
            labels: vec![7],
            channels: 3,
            height: 32,
            width: 32,
            classes: 10,
        };
        let out = tempfile::tempdir().unwrap();
        write_cifar10(out.path(), &raw, &raw).unwrap();
        assert_eq!(std::fs::read(out.path().join("data_batch_1.bin")).unwrap(), rec);
    }

    #[test]
    fn truncated_file_names_the_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = hand_record();
        bytes.extend_from_slice(&hand_record()[..1000]);
        write(&dir.path().join("data_batch_1.bin"), &bytes).unwrap();
        write(&dir.path().join("test_batch.bin"), &hand_record()).unwrap();
        let err = load("cifar10", dir.path(), &Map::new()).unwrap_err().to_string();
        assert!(err.contains("data_batch_1.bin"), "{err}");
        assert!(err.contains("byte offset 3073"), "{err}");
    }

    #[test]
    fn missing_batches_name_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("test_batch.bin"), &hand_record()).unwrap();
        let err = load("cifar10", dir.path(), &Map::new()).unwrap_err().to_string();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
        assert!(err.contains("data_batch_"), "{err}");
        // A label beyond the class count is caught with its record.
        let mut bad = hand_record();
        bad[0] = 12;
        write(&dir.path().join("data_batch_3.bin"), &bad).unwrap();
        let err = load("cifar10", dir.path(), &Map::new()).unwrap_err().to_string();
        assert!(err.contains("data_batch_3.bin") && err.contains("record 0"), "{err}");
    }

    fn synth(classes: i64) -> SynthOptions {
        SynthOptions { train: 23, test: 7, classes, image_size: 32, seed: 5, ..SynthOptions::default() }
    }

    fn bytes(t: &Tensor) -> Vec<u8> {
        Vec::<u8>::try_from(&t.flatten(0, -1)).unwrap()
    }

    #[test]
    fn cifar10_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let opts = synth(10);
        write_synthetic("cifar10", dir.path(), &opts).unwrap();
        // 23 training images over five batch files, as the real download splits 50,000.
        assert!(dir.path().join("data_batch_5.bin").exists());
        let (train, test) = crate::data::synthetic::generate(&opts, 3);
        let s = load("cifar10", dir.path(), &Map::new()).unwrap();
        assert_eq!(s.train.classes, 10);
        assert_eq!(bytes(&s.train.images), train.pixels);
        assert_eq!(Vec::<i64>::try_from(&s.train.labels).unwrap(), train.labels);
        assert_eq!(bytes(&s.test.images), test.pixels);
        assert_eq!(Vec::<i64>::try_from(&s.test.labels).unwrap(), test.labels);
    }

    #[test]
    fn cifar100_round_trip_with_fine_and_coarse_labels() {
        let dir = tempfile::tempdir().unwrap();
        let opts = synth(40);
        write_synthetic("cifar100", dir.path(), &opts).unwrap();
        let (train, test) = crate::data::synthetic::generate(&opts, 3);
        let fine = load("cifar100", dir.path(), &Map::new()).unwrap();
        assert_eq!(fine.train.classes, 40);
        assert_eq!(bytes(&fine.train.images), train.pixels);
        assert_eq!(bytes(&fine.test.images), test.pixels);
        assert_eq!(Vec::<i64>::try_from(&fine.train.labels).unwrap(), train.labels);
        let mut options = Map::new();
        options.insert("label".into(), "coarse".into());
        let coarse = load("cifar100", dir.path(), &options).unwrap();
        assert_eq!(coarse.train.classes, 20);
        let coarse_labels = Vec::<i64>::try_from(&coarse.test.labels).unwrap();
        let expected: Vec<i64> = test.labels.iter().map(|&f| f * 20 / 40).collect();
        assert_eq!(coarse_labels, expected);
        options.insert("label".into(), "both".into());
        let err = load("cifar100", dir.path(), &options).unwrap_err().to_string();
        assert!(err.starts_with("data.label: expected one of \"fine\", \"coarse\""), "{err}");
    }
}
