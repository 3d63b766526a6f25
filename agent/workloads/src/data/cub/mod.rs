//! The `cub` format: Caltech-UCSD Birds-200-2011 as it is distributed (`images.txt`,
//! `image_class_labels.txt`, `train_test_split.txt`, `classes.txt`, `images/<class>/<file>.jpg`)
//! with the ten sentences per image of Reed et al. 2016 (`text_c10/<class>/<file>.txt`), and a
//! writer of synthetic sets in that layout whose class is half in the picture and half in the text.

use super::image_folder::{self, Options};
use super::raw::RawSet;
use super::sequences::Vocab;
use super::DataError;
use crate::rng::{mix, Rng, Stream};
use image::{Rgb, RgbImage};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

pub const IMAGES_FILE: &str = "images.txt";
pub const LABELS_FILE: &str = "image_class_labels.txt";
pub const SPLIT_FILE: &str = "train_test_split.txt";
pub const CLASSES_FILE: &str = "classes.txt";
pub const IMAGES_DIR: &str = "images";
/// The sentences' folder under the root when `[data] text` names none.
pub const TEXT_DIR: &str = "text_c10";

/// The largest index file read (the real `images.txt` is under 1 MiB), so a wrong path cannot fill
/// the memory.
pub const MAX_INDEX_BYTES: u64 = 64 << 20;
/// Images of one set, both splits (the real set has 11,788).
pub const MAX_IMAGES: usize = 2_000_000;
pub const MAX_CLASSES: usize = 100_000;
/// The largest text file of one image (the real ones are under 1 KiB).
pub const MAX_TEXT_BYTES: u64 = 1 << 20;
/// Sentences of one image (the real files have ten).
pub const MAX_SENTENCES: usize = 100;
pub const MAX_SENTENCE_BYTES: usize = 64 << 10;

/// The [data] keys of the cub format besides `format` and `path`.
pub const KEYS: &[&str] = &["image_size", "resize", "text", "synthetic"];

/// One split: images u8 [N, 3, S, S] (labels are 0-based class indices, class id - 1), and each
/// image's sentences as token ids of [`Cub::vocab`], both in image id order. The images stay in
/// the crate's own byte currency, `RawSet`, for the workloads to make tensors of.
#[derive(Debug)]
pub struct CubSplit {
    pub(crate) images: RawSet,
    pub captions: Vec<Vec<Vec<u32>>>,
}

#[derive(Debug)]
pub struct Cub {
    pub train: CubSplit,
    pub test: CubSplit,
    /// Built from the training sentences only; other words read as `<unk>`.
    pub vocab: Vocab,
    /// By label, as `classes.txt` names them (`001.Black_footed_Albatross`); without that file, the
    /// folder of the class's first image.
    pub class_names: Vec<String>,
    /// Per-channel mean and (population) standard deviation of the training images in [0, 1].
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// One image as the index files list it.
struct Entry {
    /// Under `images/` (and, with `.txt` for its extension, under the text folder).
    path: String,
    label: i64,
    train: bool,
}

/// Reads the set at `root`, its sentences from `[data] text` (default `root/text_c10`), with a
/// vocabulary of at most `max_vocab` entries (special tokens included) from the training split.
/// `options` is the [data] table minus format and path: `image_size` and `resize` as for
/// image_folder, `text` (a path taken as given: the sweep file resolves it as it does `path`), and
/// `synthetic` (read by [`synthetic_option`], not here).
pub fn load(root: &Path, options: &Map<String, Value>, max_vocab: usize) -> Result<Cub, DataError> {
    check_keys(options)?;
    let opts = Options::from_options(options)?;
    let text_root = match options.get("text") {
        None => root.join(TEXT_DIR),
        Some(Value::String(s)) => PathBuf::from(s),
        Some(other) => {
            return Err(DataError::BadOption {
                key: "text".into(),
                expected: "the path of the text_c10 folder".into(),
                got: other.to_string(),
            })
        }
    };
    let (entries, class_names) = read_index(root)?;
    let (train, test): (Vec<Entry>, Vec<Entry>) = entries.into_iter().partition(|e| e.train);
    for (split, entries) in [("training", &train), ("test", &test)] {
        if entries.is_empty() {
            return Err(DataError::invalid(
                &root.join(SPLIT_FILE),
                format!(
                    "no {split} images; the cub format needs both splits (1 marks a training image, 0 a test image)"
                ),
            ));
        }
    }
    // The text first: it is quick to read, and a missing folder is the likeliest mistake.
    let read_all = |entries: &[Entry]| -> Result<Vec<Vec<Vec<String>>>, DataError> {
        entries.iter().map(|e| read_sentences(&Path::new(&e.path).with_extension("txt"), &text_root)).collect()
    };
    let (train_words, test_words) = (read_all(&train)?, read_all(&test)?);
    let vocab = Vocab::build(train_words.iter().flatten().flatten().map(String::as_str), max_vocab);
    let ids = |words: Vec<Vec<Vec<String>>>| -> Vec<Vec<Vec<u32>>> {
        words
            .into_iter()
            .map(|image| image.into_iter().map(|s| s.iter().map(|w| vocab.id(w)).collect()).collect())
            .collect()
    };
    let (train_captions, test_captions) = (ids(train_words), ids(test_words));
    let classes = class_names.len() as i64;
    let decode = |entries: &[Entry]| {
        let files: Vec<(PathBuf, i64)> =
            entries.iter().map(|e| (root.join(IMAGES_DIR).join(&e.path), e.label)).collect();
        image_folder::decode_all(&files, &opts, classes)
    };
    let (train_images, test_images) = (decode(&train)?, decode(&test)?);
    let (mean, std) = train_images.channel_stats();
    Ok(Cub {
        train: CubSplit { images: train_images, captions: train_captions },
        test: CubSplit { images: test_images, captions: test_captions },
        vocab,
        class_names,
        mean,
        std,
    })
}

/// Refuses a [data] key the format does not read.
fn check_keys(options: &Map<String, Value>) -> Result<(), DataError> {
    match options.keys().find(|k| !KEYS.contains(&k.as_str())) {
        Some(key) => Err(DataError::UnknownKey { key: key.clone(), format: "cub", keys: KEYS }),
        None => Ok(()),
    }
}

/// A sentence as words: lower case, runs of letters and digits; everything else separates words
/// and is dropped. So no word can spell a special token such as `<unk>`.
pub fn tokenise(sentence: &str) -> Vec<String> {
    sentence
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The images of the index files by id, and the class names by label.
fn read_index(root: &Path) -> Result<(Vec<Entry>, Vec<String>), DataError> {
    let images_file = root.join(IMAGES_FILE);
    let mut images: BTreeMap<u64, (usize, String)> = BTreeMap::new();
    for (line, id, rest) in records(&images_file, &read_index_file(&images_file, MAX_INDEX_BYTES)?, MAX_IMAGES)? {
        let at = |m: String| DataError::invalid(&images_file, format!("line {line}: {m}"));
        check_relative(rest).map_err(at)?;
        if let Some((first, _)) = images.insert(id, (line, rest.to_string())) {
            return Err(at(format!("image id {id} is listed twice (also on line {first})")));
        }
    }
    if images.is_empty() {
        return Err(DataError::invalid(&images_file, "no images; expected lines `<image id> <path under images/>`"));
    }
    let classes_file = root.join(CLASSES_FILE);
    let listed_classes = match classes_file.exists() {
        true => Some(read_classes(&classes_file)?),
        false => None,
    };
    let max_class = listed_classes.as_ref().map_or(MAX_CLASSES, Vec::len);
    let labels_file = root.join(LABELS_FILE);
    let labels = per_image(&labels_file, &images, |v| match v.parse::<usize>() {
        Ok(c) if (1..=max_class).contains(&c) => Ok(c as i64 - 1),
        _ if listed_classes.is_some() => {
            Err(format!("expected a class id from 1 to {max_class} (the classes of {CLASSES_FILE}), got \"{v}\""))
        }
        _ => Err(format!("expected a class id from 1 to {max_class}, got \"{v}\"")),
    })?;
    let split = per_image(&root.join(SPLIT_FILE), &images, |v| match v {
        "1" => Ok(true),
        "0" => Ok(false),
        _ => Err(format!("expected 1 (a training image) or 0 (a test image), got \"{v}\"")),
    })?;
    let entries: Vec<Entry> =
        images.into_iter().map(|(id, (_, path))| Entry { path, label: labels[&id], train: split[&id] }).collect();
    let class_names = match listed_classes {
        Some(names) => names,
        // Without classes.txt there are as many classes as the largest id says, named by folder.
        None => {
            let classes = entries.iter().map(|e| e.label).max().unwrap_or(0) as usize + 1;
            let mut names: Vec<Option<String>> = vec![None; classes];
            for e in &entries {
                let folder = Path::new(&e.path).parent().map(|p| p.to_string_lossy().into_owned());
                names[e.label as usize] = names[e.label as usize].take().or(folder.filter(|f| !f.is_empty()));
            }
            names.into_iter().enumerate().map(|(i, n)| n.unwrap_or_else(|| format!("class {}", i + 1))).collect()
        }
    };
    Ok((entries, class_names))
}

/// `classes.txt`: the names of the class ids 1 to K, each listed once, in any order.
fn read_classes(path: &Path) -> Result<Vec<String>, DataError> {
    let mut names: BTreeMap<u64, (usize, String)> = BTreeMap::new();
    for (line, id, name) in records(path, &read_index_file(path, MAX_INDEX_BYTES)?, MAX_CLASSES)? {
        if let Some((first, _)) = names.insert(id, (line, name.to_string())) {
            return Err(DataError::invalid(
                path,
                format!("line {line}: class id {id} is listed twice (also on line {first})"),
            ));
        }
    }
    let count = names.len() as u64;
    if let Some((&id, (line, _))) = names.iter().find(|(&id, _)| id > count) {
        return Err(DataError::invalid(
            path,
            format!("line {line}: class id {id}, but the file lists {count} classes; expected the ids 1 to {count}, each once"),
        ));
    }
    if names.is_empty() {
        return Err(DataError::invalid(path, "no classes; expected lines `<class id> <class folder name>`"));
    }
    Ok(names.into_values().map(|(_, name)| name).collect())
}

/// A file with one value per image of `images.txt`: each id once, none unknown, none left out.
fn per_image<T>(
    path: &Path,
    images: &BTreeMap<u64, (usize, String)>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<BTreeMap<u64, T>, DataError> {
    let mut values: BTreeMap<u64, (usize, T)> = BTreeMap::new();
    for (line, id, rest) in records(path, &read_index_file(path, MAX_INDEX_BYTES)?, MAX_IMAGES)? {
        let at = |m: String| DataError::invalid(path, format!("line {line}: {m}"));
        if !images.contains_key(&id) {
            return Err(at(format!("image id {id} is not in {IMAGES_FILE}")));
        }
        let value = parse(rest).map_err(at)?;
        if let Some((first, _)) = values.insert(id, (line, value)) {
            return Err(at(format!("image id {id} is listed twice (also on line {first})")));
        }
    }
    if let Some((id, (line, _))) = images.iter().find(|(id, _)| !values.contains_key(id)) {
        return Err(DataError::invalid(
            path,
            format!("image id {id} ({IMAGES_FILE} line {line}) has no line here; every image needs one"),
        ));
    }
    Ok(values.into_iter().map(|(id, (_, v))| (id, v)).collect())
}

/// The non-blank lines of an index file as (line number, id, the rest), at most `max` of them.
fn records<'a>(path: &Path, text: &'a str, max: usize) -> Result<Vec<(usize, u64, &'a str)>, DataError> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let at = |m: String| DataError::invalid(path, format!("line {}: {m}", n + 1));
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if out.len() == max {
            return Err(at(format!("more than {max} lines; the cub format reads at most {max}")));
        }
        let (id, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let id = match id.parse::<u64>() {
            Ok(id) if id >= 1 => id,
            _ => return Err(at(format!("expected a positive integer id first, got \"{id}\""))),
        };
        let rest = rest.trim();
        if rest.is_empty() {
            return Err(at(format!("expected `<id> <value>`, got only the id {id}")));
        }
        out.push((n + 1, id, rest));
    }
    Ok(out)
}

/// An index file as text, or an error saying what the folder should hold.
fn read_index_file(path: &Path, max_bytes: u64) -> Result<String, DataError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataError::invalid(
                path,
                format!(
                    "no such file; the cub format reads the CUB-200-2011 layout ({IMAGES_FILE}, {LABELS_FILE}, \
                     {SPLIT_FILE}, {IMAGES_DIR}/, {TEXT_DIR}/), or write a synthetic one with \
                     `sweep data synth --cub --out <folder>`"
                ),
            ))
        }
        Err(e) => return Err(DataError::io(path, "read", e)),
    };
    if meta.len() > max_bytes {
        return Err(DataError::invalid(
            path,
            format!("{} bytes; an index file may have at most {max_bytes}", meta.len()),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| DataError::io(path, "read as UTF-8 text", e))
}

/// A path of `images.txt` stays under `images/`: relative, and without `..`.
fn check_relative(path: &str) -> Result<(), String> {
    for component in Path::new(path).components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!("\"{path}\" has a `..` component; paths stay under {IMAGES_DIR}/"))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("\"{path}\" is absolute; expected a path relative to {IMAGES_DIR}/"))
            }
        }
    }
    match Path::new(path).file_stem() {
        Some(_) => Ok(()),
        None => Err(format!("\"{path}\" names no file")),
    }
}

/// The sentences of one image, as words; lines without a word (blank, punctuation only) are
/// skipped. Bytes that are not UTF-8 read as separators rather than stop a study.
fn read_sentences(relative: &Path, text_root: &Path) -> Result<Vec<Vec<String>>, DataError> {
    let path = text_root.join(relative);
    let meta = match std::fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataError::invalid(
                &path,
                format!(
                    "no such file; each image's sentences are read from {}/<class folder>/<image name>.txt. \
                     They are the captions of Reed et al. 2016, shipped apart from the images as \
                     cvpr2016_cub/text_c10: put that folder at <root>/{TEXT_DIR}, or name it with \
                     `[data] text = \"<folder>\"`",
                    text_root.display()
                ),
            ))
        }
        Err(e) => return Err(DataError::io(&path, "read", e)),
    };
    if meta.len() > MAX_TEXT_BYTES {
        return Err(DataError::invalid(
            &path,
            format!("{} bytes; a text file may have at most {MAX_TEXT_BYTES}", meta.len()),
        ));
    }
    let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, "read", e))?;
    let mut sentences = Vec::new();
    for (n, line) in String::from_utf8_lossy(&bytes).lines().enumerate() {
        let at = |m: String| DataError::invalid(&path, format!("line {}: {m}", n + 1));
        if line.len() > MAX_SENTENCE_BYTES {
            return Err(at(format!("{} bytes; a sentence may have at most {MAX_SENTENCE_BYTES}", line.len())));
        }
        let words = tokenise(line);
        if words.is_empty() {
            continue;
        }
        if sentences.len() == MAX_SENTENCES {
            return Err(at(format!(
                "more than {MAX_SENTENCES} sentences; expected one caption per line, ten per image"
            )));
        }
        sentences.push(words);
    }
    if sentences.is_empty() {
        return Err(DataError::invalid(
            &path,
            "no sentence with a word in it; expected one caption per line, ten per image",
        ));
    }
    Ok(sentences)
}

mod synthetic;
#[cfg(test)]
mod tests;

pub use synthetic::{attribute_words, synthetic_option, write_synthetic, CubSynth, SYNTHETIC_SIDES};
