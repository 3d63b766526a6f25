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

/// A synthetic set in the CUB layout whose class needs both halves: class `c` (0-based) has image
/// group `c / text_groups`, which only the picture shows (the colour of a patch), and text group
/// `c % text_groups`, which only the sentences tell (an attribute word). A model of either half
/// alone can tell at best `image_groups` or `text_groups` classes apart; fused, all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CubSynth {
    pub image_groups: usize,
    pub text_groups: usize,
    /// Training images of each class.
    pub train_per_class: usize,
    /// Test images of each class.
    pub test_per_class: usize,
    /// Side of the square JPEG files (what `load` resizes them to is `[data] image_size`).
    pub image_size: usize,
    pub seed: u64,
}

impl Default for CubSynth {
    fn default() -> CubSynth {
        CubSynth { image_groups: 4, text_groups: 3, train_per_class: 60, test_per_class: 20, image_size: 32, seed: 0 }
    }
}

/// The sides the synthetic writer draws: a patch of a quarter of the side needs a few pixels.
pub const SYNTHETIC_SIDES: std::ops::RangeInclusive<usize> = 8..=512;

impl CubSynth {
    pub fn classes(&self) -> usize {
        self.image_groups.saturating_mul(self.text_groups)
    }

    /// The image group and the text group of class `class`.
    pub fn groups(&self, class: usize) -> (usize, usize) {
        (class / self.text_groups, class % self.text_groups)
    }

    /// The `synthetic` table of a sweep file's [data]: `{ image_groups, text_groups, train, test,
    /// image_size, seed }`, each optional; `train` and `test` count images per class.
    pub fn from_table(table: &Value) -> Result<CubSynth, String> {
        let Value::Object(table) = table else {
            return Err(format!(
                "data.synthetic: expected a table {{ image_groups, text_groups, train, test, image_size, seed }}, got {table}"
            ));
        };
        let mut s = CubSynth::default();
        for (key, value) in table {
            let n = value
                .as_u64()
                .ok_or_else(|| format!("data.synthetic.{key}: expected a non-negative integer, got {value}"))?;
            let size = usize::try_from(n).unwrap_or(usize::MAX);
            match key.as_str() {
                "image_groups" => s.image_groups = size,
                "text_groups" => s.text_groups = size,
                "train" => s.train_per_class = size,
                "test" => s.test_per_class = size,
                "image_size" => s.image_size = size,
                "seed" => s.seed = n,
                other => {
                    return Err(format!(
                        "data.synthetic.{other}: unknown key; expected image_groups, text_groups, train, test, \
                         image_size or seed"
                    ))
                }
            }
        }
        s.validate().map_err(|e| format!("data.synthetic: {e}"))?;
        Ok(s)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.image_groups < 1 || self.text_groups < 1 {
            return Err(format!(
                "image_groups and text_groups: expected at least 1 each, got {} and {}",
                self.image_groups, self.text_groups
            ));
        }
        if !(2..=MAX_CLASSES).contains(&self.classes()) {
            return Err(format!(
                "image_groups x text_groups: expected 2 to {MAX_CLASSES} classes, got {} x {}",
                self.image_groups, self.text_groups
            ));
        }
        if self.train_per_class < 1 || self.test_per_class < 1 {
            return Err(format!(
                "train and test: expected at least 1 image per class each, got {} and {}",
                self.train_per_class, self.test_per_class
            ));
        }
        let images = self.classes().saturating_mul(self.train_per_class.saturating_add(self.test_per_class));
        if images > MAX_IMAGES {
            return Err(format!("train and test: at most {MAX_IMAGES} images in all, got {images}"));
        }
        if !SYNTHETIC_SIDES.contains(&self.image_size) {
            return Err(format!(
                "image_size: expected {} to {}, got {}",
                SYNTHETIC_SIDES.start(),
                SYNTHETIC_SIDES.end(),
                self.image_size
            ));
        }
        Ok(())
    }
}

/// The `synthetic` table of the cub format's [data], once every key of [data] is one the format
/// reads.
pub fn synthetic_option(options: &Map<String, Value>) -> Result<Option<CubSynth>, String> {
    check_keys(options).map_err(|e| e.to_string())?;
    options.get("synthetic").map(CubSynth::from_table).transpose()
}

/// Mid grey, and the half-width of the uniform noise around it: strong enough that the patch is
/// found by its colour rather than by being the only thing in the picture.
const BACKGROUND: f64 = 128.0;
const BACKGROUND_NOISE: f64 = 48.0;
/// Per-image jitter of the patch colour, per channel, and per-pixel noise within the patch.
const COLOUR_JITTER: f64 = 16.0;
const PATCH_NOISE: f64 = 6.0;
/// Quality of the JPEG files: high, so compression does not blur the patch into the background.
const JPEG_QUALITY: u8 = 95;

/// Sentences per image, as in the real text_c10, and words per sentence.
const SENTENCES_PER_IMAGE: usize = 10;
const WORDS_PER_SENTENCE: std::ops::RangeInclusive<usize> = 6..=12;
/// Chance that a sentence names its text group: high, but below 1, so a single sentence is not
/// always enough.
const ATTRIBUTE_RATE: f64 = 0.9;
/// Words every class uses alike; none is an attribute word.
const FILLER: [&str; 40] = [
    "this", "bird", "has", "a", "small", "large", "beak", "bill", "wings", "tail", "belly", "breast", "crown",
    "throat", "feathers", "the", "with", "and", "its", "short", "long", "pointed", "curved", "thin", "thick", "head",
    "eyes", "legs", "feet", "body", "that", "is", "medium", "sized", "round", "sharp", "tiny", "wide", "narrow",
    "back",
];
/// Two synonyms per text group; groups beyond the list get made-up words (`hue16a`, `hue16b`).
const ATTRIBUTES: [[&str; 2]; 16] = [
    ["crimson", "scarlet"],
    ["azure", "cobalt"],
    ["golden", "amber"],
    ["emerald", "jade"],
    ["violet", "lilac"],
    ["ivory", "pearl"],
    ["ebony", "jet"],
    ["copper", "rust"],
    ["teal", "turquoise"],
    ["coral", "salmon"],
    ["olive", "khaki"],
    ["silver", "slate"],
    ["magenta", "fuchsia"],
    ["ochre", "mustard"],
    ["indigo", "navy"],
    ["ruby", "cherry"],
];

/// The two words that name text group `group`.
pub fn attribute_words(group: usize) -> [String; 2] {
    match ATTRIBUTES.get(group) {
        Some(pair) => pair.map(str::to_string),
        None => [format!("hue{group:02}a"), format!("hue{group:02}b")],
    }
}

/// The patch colour of image group `group` of `groups`: hues evenly spaced around the colour wheel,
/// saturated and bright, so neighbouring groups stay apart even with 16 of them.
fn group_colour(group: usize, groups: usize) -> [f64; 3] {
    let (saturation, value) = (0.85, 0.9);
    let h = 6.0 * group as f64 / groups as f64;
    let c = value * saturation;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as usize {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = value - c;
    [r, g, b].map(|v| (v + m) * 255.0)
}

/// Noise around grey with one square patch, a quarter of the side, of `colour` (jittered) at a
/// random place.
fn synthetic_image(size: usize, colour: [f64; 3], rng: &mut Rng) -> RgbImage {
    let side = (size / 4).max(2);
    let x0 = rng.below((size - side + 1) as u64) as usize;
    let y0 = rng.below((size - side + 1) as u64) as usize;
    let tint = colour.map(|c| c + COLOUR_JITTER * (2.0 * rng.uniform() - 1.0));
    let mut noise = |centre: f64, half_width: f64| {
        (centre + half_width * (2.0 * rng.uniform() - 1.0)).round().clamp(0.0, 255.0) as u8
    };
    RgbImage::from_fn(size as u32, size as u32, |x, y| {
        let (x, y) = (x as usize, y as usize);
        match (x0..x0 + side).contains(&x) && (y0..y0 + side).contains(&y) {
            true => Rgb(tint.map(|c| noise(c, PATCH_NOISE))),
            false => Rgb([(); 3].map(|_| noise(BACKGROUND, BACKGROUND_NOISE))),
        }
    })
}

/// Ten sentences of filler bird words, most naming the text group by one of its two words, each
/// ending in " ." as the real captions do.
fn synthetic_text(words: &[String; 2], rng: &mut Rng) -> String {
    let mut text = String::new();
    for _ in 0..SENTENCES_PER_IMAGE {
        let span = (WORDS_PER_SENTENCE.end() - WORDS_PER_SENTENCE.start() + 1) as u64;
        let len = WORDS_PER_SENTENCE.start() + rng.below(span) as usize;
        let attribute = match rng.uniform() < ATTRIBUTE_RATE {
            true => Some(words[rng.below(2) as usize].as_str()),
            false => None,
        };
        let fillers = len - usize::from(attribute.is_some());
        let mut sentence: Vec<&str> = (0..fillers).map(|_| FILLER[rng.below(FILLER.len() as u64) as usize]).collect();
        if let Some(word) = attribute {
            sentence.insert(rng.below(len as u64) as usize, word);
        }
        text.push_str(&sentence.join(" "));
        text.push_str(" .\n");
    }
    text
}

/// Writes `synth` at `root` in the CUB-200-2011 layout: `classes.txt` (`001.Synthetic_Bird_00`,
/// ...), `images/<class>/Synthetic_Bird_00_0001_<id>.jpg`, `images.txt`,
/// `image_class_labels.txt`, `train_test_split.txt` (test images spread evenly through each class)
/// and `text_c10/<class>/<image name>.txt`. Image ids count from 1 in class order, as in the real
/// files; image `id` depends only on (seed, id).
pub fn write_synthetic(root: &Path, synth: &CubSynth) -> Result<(), DataError> {
    synth.validate().map_err(|m| DataError::invalid(root, m))?;
    let classes = synth.classes();
    let per_class = synth.train_per_class + synth.test_per_class;
    let digits = |n: usize| n.to_string().len();
    let (class_width, bird_width, file_width) =
        (digits(classes).max(3), digits(classes - 1).max(2), digits(per_class).max(4));
    let colours: Vec<[f64; 3]> = (0..synth.image_groups).map(|g| group_colour(g, synth.image_groups)).collect();
    let mut index = [CLASSES_FILE, IMAGES_FILE, LABELS_FILE, SPLIT_FILE].map(|name| (name, String::new()));
    for class in 0..classes {
        let bird = format!("Synthetic_Bird_{class:0bird_width$}");
        let folder = format!("{:0class_width$}.{bird}", class + 1);
        for dir in [root.join(IMAGES_DIR).join(&folder), root.join(TEXT_DIR).join(&folder)] {
            std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, "create", e))?;
        }
        index[0].1.push_str(&format!("{} {folder}\n", class + 1));
        let (image_group, text_group) = synth.groups(class);
        let words = attribute_words(text_group);
        for k in 0..per_class {
            let id = class * per_class + k + 1;
            let stem = format!("{bird}_{:0file_width$}_{id}", k + 1);
            let key = mix(synth.seed, id as u64);
            let image = synthetic_image(synth.image_size, colours[image_group], &mut Rng::new(key, Stream::CubImages));
            write_jpeg(&root.join(IMAGES_DIR).join(&folder).join(format!("{stem}.jpg")), &image)?;
            let text_file = root.join(TEXT_DIR).join(&folder).join(format!("{stem}.txt"));
            let text = synthetic_text(&words, &mut Rng::new(key, Stream::CubText));
            std::fs::write(&text_file, text).map_err(|e| DataError::io(&text_file, "write", e))?;
            // Test images spread evenly through the class: image k is one when k * test / n steps.
            let test = (k + 1) * synth.test_per_class / per_class > k * synth.test_per_class / per_class;
            index[1].1.push_str(&format!("{id} {folder}/{stem}.jpg\n"));
            index[2].1.push_str(&format!("{id} {}\n", class + 1));
            index[3].1.push_str(&format!("{id} {}\n", u8::from(!test)));
        }
    }
    for (name, text) in index {
        let path = root.join(name);
        std::fs::write(&path, text).map_err(|e| DataError::io(&path, "write", e))?;
    }
    Ok(())
}

fn write_jpeg(path: &Path, image: &RgbImage) -> Result<(), DataError> {
    let file = std::fs::File::create(path).map_err(|e| DataError::io(path, "create", e))?;
    let mut writer = std::io::BufWriter::new(file);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut writer, JPEG_QUALITY)
        .encode_image(image)
        .map_err(|e| DataError::invalid(path, format!("cannot write the image: {e}")))?;
    std::io::Write::flush(&mut writer).map_err(|e| DataError::io(path, "write", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::transformer::tokens;

    /// (id, class id, training?, relative path, width, height) of the hand-written set, listed in
    /// images.txt out of id order.
    const MINI: [(u64, u64, bool, &str, u32, u32); 6] = [
        (3, 2, false, "002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg", 40, 30),
        (1, 1, true, "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg", 30, 40),
        (5, 3, true, "003.Sooty_Albatross/Sooty_Albatross_0031_1066.jpg", 24, 24),
        (2, 1, false, "001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg", 50, 20),
        (4, 2, true, "002.Laysan_Albatross/Laysan_Albatross_0037_699.jpg", 20, 20),
        (6, 3, false, "003.Sooty_Albatross/Sooty_Albatross_0008_796.jpg", 33, 35),
    ];

    /// The red level of image `id`, so a loaded image can be traced back to its file.
    fn red(id: u64) -> u8 {
        40 * id as u8
    }

    /// A small set laid out as the real one: real-looking names, ids out of order, the splits
    /// mixed, and captions with capitals, punctuation and a blank line.
    fn mini() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join(CLASSES_FILE),
            "1 001.Black_footed_Albatross\n2 002.Laysan_Albatross\n3 003.Sooty_Albatross\n",
        )
        .unwrap();
        let mut images = String::new();
        let mut labels = String::new();
        let mut split = String::new();
        for &(id, class, train, path, w, h) in &MINI {
            images.push_str(&format!("{id} {path}\n"));
            labels.insert_str(0, &format!("{id} {class}\n"));
            split.push_str(&format!("{id} {}\r\n", u8::from(train)));
            let file = root.join(IMAGES_DIR).join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            RgbImage::from_pixel(w, h, Rgb([red(id), 128, 30])).save(&file).unwrap();
            let text = root.join(TEXT_DIR).join(Path::new(path).with_extension("txt"));
            std::fs::create_dir_all(text.parent().unwrap()).unwrap();
            let sentence = format!("This bird has a White belly, and BLACK wings; Tag{id}!\n");
            std::fs::write(&text, format!("{}\n...\n{}", sentence.repeat(9), sentence)).unwrap();
        }
        std::fs::write(root.join(IMAGES_FILE), images).unwrap();
        std::fs::write(root.join(LABELS_FILE), labels).unwrap();
        std::fs::write(root.join(SPLIT_FILE), split).unwrap();
        dir
    }

    fn options(pairs: &[(&str, Value)]) -> Map<String, Value> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn words(vocab: &Vocab, ids: &[u32]) -> Vec<String> {
        ids.iter().map(|&i| vocab.word(i as i64).to_string()).collect()
    }

    #[test]
    fn reads_the_real_layout_sorted_by_id() {
        let dir = mini();
        let cub = load(dir.path(), &options(&[("image_size", 16.into())]), 100).unwrap();
        assert_eq!(cub.class_names, ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]);
        // Training ids 1, 4, 5 and test ids 2, 3, 6, each split in id order.
        for (split, ids, labels) in [(&cub.train, [1, 4, 5], [0, 1, 2]), (&cub.test, [2, 3, 6], [0, 1, 2])] {
            assert_eq!(split.images.labels, labels.map(|l| l as i64));
            assert_eq!(split.images.chw(), (3, 16, 16));
            assert_eq!(split.images.classes, 3);
            for (k, id) in ids.into_iter().enumerate() {
                let centre = split.images.image(k)[8 * 16 + 8];
                assert!(centre.abs_diff(red(id)) <= 6, "image {k} should be id {id}: red {centre}");
                assert_eq!(split.captions[k].len(), 10, "blank and punctuation-only lines are no sentences");
            }
        }
        assert_eq!(
            words(&cub.vocab, &cub.train.captions[1][0]),
            ["this", "bird", "has", "a", "white", "belly", "and", "black", "wings", "tag4"]
        );
        // tag2 appears only in the test split, so it is not in the vocabulary.
        assert_eq!(cub.test.captions[0][0].last(), Some(&(tokens::UNK as u32)));
        assert_eq!(cub.vocab.len(), tokens::SPECIALS.len() + 12);
        let (mean, std) = cub.train.images.channel_stats();
        assert_eq!((cub.mean, cub.std), (mean, std));
        // Capped: the specials and the nine most frequent words.
        let small = load(dir.path(), &Map::new(), tokens::SPECIALS.len() + 9).unwrap();
        assert_eq!(small.train.images.chw(), (3, 32, 32), "image_size defaults to 32");
        assert_eq!(small.train.captions[0][0][9], tokens::UNK as u32);
    }

    #[test]
    fn text_can_live_in_another_folder_and_classes_txt_is_optional() {
        let dir = mini();
        let elsewhere = dir.path().join("cvpr2016_cub");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::rename(dir.path().join(TEXT_DIR), elsewhere.join(TEXT_DIR)).unwrap();
        let err = load(dir.path(), &Map::new(), 100).unwrap_err().to_string();
        assert!(err.contains("Black_Footed_Albatross_0046_18.txt: no such file"), "{err}");
        assert!(err.contains("Reed et al. 2016") && err.contains("cvpr2016_cub/text_c10"), "{err}");
        assert!(err.contains("[data] text"), "{err}");
        let text = elsewhere.join(TEXT_DIR).to_string_lossy().into_owned();
        std::fs::remove_file(dir.path().join(CLASSES_FILE)).unwrap();
        let cub = load(dir.path(), &options(&[("text", text.into()), ("resize", "stretch".into())]), 100).unwrap();
        assert_eq!(cub.train.captions.len(), 3);
        assert_eq!(cub.class_names, ["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"]);
    }

    #[test]
    fn no_word_spells_a_special_token() {
        assert_eq!(tokenise("A <unk> bird, it's 2-tone."), ["a", "unk", "bird", "it", "s", "2", "tone"]);
        for special in tokens::SPECIALS {
            assert!(!tokenise(special).iter().any(|w| tokens::SPECIALS.contains(&w.as_str())), "{special}");
        }
    }

    /// Edits the hand-written set with `edit`, loads it with `options` and returns the error.
    fn refusal(change: impl FnOnce(&Path), options: &Map<String, Value>) -> String {
        let dir = mini();
        change(dir.path());
        load(dir.path(), options, 100).unwrap_err().to_string()
    }

    type Edit = Box<dyn FnOnce(&Path)>;

    fn edit(f: impl FnOnce(&Path) + 'static) -> Edit {
        Box::new(f)
    }

    fn replace(path: &Path, from: &str, to: &str) {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains(from), "{from} in {text}");
        std::fs::write(path, text.replacen(from, to, 1)).unwrap();
    }

    #[test]
    fn forged_or_broken_files_are_refused_naming_file_and_line() {
        let none = Map::new();
        let images =
            |from: &'static str, to: &'static str| move |root: &Path| replace(&root.join(IMAGES_FILE), from, to);
        let album = "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg";
        for (change, want) in [
            (
                edit(images(album, "001.Black_footed_Albatross/../../../etc/passwd")),
                "images.txt: line 2: \"001.Black_footed_Albatross/../../../etc/passwd\" has a `..` component",
            ),
            (edit(images(album, "/etc/passwd")), "images.txt: line 2: \"/etc/passwd\" is absolute"),
            (edit(images("1 001", "0 001")), "images.txt: line 2: expected a positive integer id first, got \"0\""),
            (edit(images("5 003", "3 003")), "images.txt: line 3: image id 3 is listed twice (also on line 1)"),
            (
                edit(|root: &Path| replace(&root.join(SPLIT_FILE), "6 0\r\n", "")),
                "train_test_split.txt: image id 6 (images.txt line 6) has no line here",
            ),
            (
                edit(|root: &Path| replace(&root.join(SPLIT_FILE), "6 0", "7 0")),
                "train_test_split.txt: line 6: image id 7 is not in images.txt",
            ),
            (
                edit(|root: &Path| replace(&root.join(SPLIT_FILE), "6 0", "6 2")),
                "train_test_split.txt: line 6: expected 1 (a training image) or 0 (a test image), got \"2\"",
            ),
            (
                edit(|root: &Path| replace(&root.join(LABELS_FILE), "2 1", "2 4")),
                "image_class_labels.txt: line 3: expected a class id from 1 to 3 (the classes of classes.txt), got \"4\"",
            ),
            (
                edit(|root: &Path| replace(&root.join(LABELS_FILE), "2 1", "1 1")),
                "image_class_labels.txt: line 5: image id 1 is listed twice (also on line 3)",
            ),
            (
                edit(|root: &Path| replace(&root.join(CLASSES_FILE), "3 003", "4 003")),
                "classes.txt: line 3: class id 4, but the file lists 3 classes",
            ),
            (
                edit(|root: &Path| {
                    std::fs::remove_file(root.join(TEXT_DIR).join("003.Sooty_Albatross/Sooty_Albatross_0008_796.txt"))
                        .unwrap()
                }),
                "text_c10/003.Sooty_Albatross/Sooty_Albatross_0008_796.txt: no such file",
            ),
            (
                edit(|root: &Path| {
                    let file = root.join(TEXT_DIR).join("002.Laysan_Albatross/Laysan_Albatross_0037_699.txt");
                    std::fs::write(file, "a bird\n".repeat(MAX_SENTENCES + 1)).unwrap()
                }),
                "Laysan_Albatross_0037_699.txt: line 101: more than 100 sentences",
            ),
            (
                edit(|root: &Path| {
                    let file = root.join(TEXT_DIR).join("002.Laysan_Albatross/Laysan_Albatross_0037_699.txt");
                    std::fs::write(file, format!("a\n{}\n", "b".repeat(MAX_SENTENCE_BYTES + 1))).unwrap()
                }),
                "Laysan_Albatross_0037_699.txt: line 2: 65537 bytes; a sentence may have at most 65536",
            ),
            (
                edit(|root: &Path| {
                    let file = root.join(TEXT_DIR).join("002.Laysan_Albatross/Laysan_Albatross_0037_699.txt");
                    std::fs::write(file, "...\n\n").unwrap()
                }),
                "Laysan_Albatross_0037_699.txt: no sentence with a word in it",
            ),
            (
                // A sparse file: the size is checked before anything is read.
                edit(|root: &Path| {
                    std::fs::File::options().write(true).open(root.join(IMAGES_FILE)).unwrap().set_len(MAX_INDEX_BYTES + 1).unwrap()
                }),
                "images.txt: 67108865 bytes; an index file may have at most 67108864",
            ),
            (
                edit(|root: &Path| std::fs::write(root.join(SPLIT_FILE), "1 1\n2 1\n3 1\n4 1\n5 1\n6 1\n").unwrap()),
                "train_test_split.txt: no test images",
            ),
            (edit(|root: &Path| std::fs::remove_file(root.join(LABELS_FILE)).unwrap()), "image_class_labels.txt: no such file; the cub format reads the CUB-200-2011 layout"),
        ] {
            let err = refusal(change, &none);
            assert!(err.contains(want), "{err}\nshould contain\n{want}");
        }
        let err = refusal(|_| {}, &options(&[("image_sise", 16.into())]));
        assert_eq!(err, "data.image_sise: the cub format takes no such key (image_size, resize, text, synthetic)");
        let err = refusal(|_| {}, &options(&[("text", 3.into())]));
        assert!(err.starts_with("data.text: expected the path of the text_c10 folder"), "{err}");
    }

    fn small_synth(seed: u64) -> CubSynth {
        CubSynth { image_groups: 3, text_groups: 2, train_per_class: 5, test_per_class: 2, image_size: 32, seed }
    }

    #[test]
    fn synthetic_sets_read_back_with_the_class_split_between_picture_and_text() {
        let dir = tempfile::tempdir().unwrap();
        let synth = small_synth(5);
        write_synthetic(dir.path(), &synth).unwrap();
        let first = std::fs::read_to_string(dir.path().join(IMAGES_FILE)).unwrap();
        assert!(first.starts_with("1 001.Synthetic_Bird_00/Synthetic_Bird_00_0001_1.jpg\n"), "{first}");
        let cub = load(dir.path(), &Map::new(), 1000).unwrap();
        assert_eq!((synth.classes(), cub.class_names.len()), (6, 6));
        assert_eq!(cub.class_names[5], "006.Synthetic_Bird_05");
        assert_eq!((cub.train.images.len(), cub.test.images.len()), (30, 12));
        assert_eq!((cub.train.captions.len(), cub.test.captions.len()), (30, 12));
        assert_eq!(cub.train.images.chw(), (3, 32, 32));
        let colours: Vec<[f64; 3]> = (0..3).map(|g| group_colour(g, 3)).collect();
        let (mut named, mut sentences, mut recognised) = (0, 0, 0);
        for split in [&cub.train, &cub.test] {
            for (k, &label) in split.images.labels.iter().enumerate() {
                let (image_group, text_group) = synth.groups(label as usize);
                // The picture: its most colourful pixel is nearest its image group's colour.
                let image = split.images.image(k);
                let pixel = |p: usize| [0, 1, 2].map(|c| image[c * 1024 + p] as f64);
                let spread = |p: usize| {
                    let v = pixel(p);
                    v.iter().cloned().fold(f64::MIN, f64::max) - v.iter().cloned().fold(f64::MAX, f64::min)
                };
                let vivid = (0..1024).max_by(|&a, &b| spread(a).total_cmp(&spread(b))).unwrap();
                let distance = |c: &[f64; 3]| (0..3).map(|i| (c[i] - pixel(vivid)[i]).powi(2)).sum::<f64>();
                let nearest = (0..3).min_by(|&a, &b| distance(&colours[a]).total_cmp(&distance(&colours[b]))).unwrap();
                recognised += usize::from(nearest == image_group);
                // The text: its own group's words, never another group's.
                let own = attribute_words(text_group).map(|w| cub.vocab.id(&w));
                let other = attribute_words(1 - text_group).map(|w| cub.vocab.id(&w));
                for sentence in &split.captions[k] {
                    assert!((6..=12).contains(&sentence.len()), "{sentence:?}");
                    assert!(!sentence.iter().any(|t| other.contains(t)));
                    named += usize::from(sentence.iter().any(|t| own.contains(t)));
                    sentences += 1;
                }
            }
        }
        assert_eq!(recognised, 42, "every picture shows its image group");
        assert_eq!(sentences, 420);
        assert!(named > 420 * 8 / 10 && named < 420, "{named} of 420 sentences name the text group");
    }

    #[test]
    fn synthetic_sets_are_a_function_of_the_seed() {
        let files = |seed: u64| -> Vec<Vec<u8>> {
            let dir = tempfile::tempdir().unwrap();
            write_synthetic(dir.path(), &small_synth(seed)).unwrap();
            let mut paths: Vec<PathBuf> =
                [CLASSES_FILE, IMAGES_FILE, LABELS_FILE, SPLIT_FILE].map(|f| dir.path().join(f)).into();
            for line in std::fs::read_to_string(dir.path().join(IMAGES_FILE)).unwrap().lines() {
                let relative = line.split_once(' ').unwrap().1;
                paths.push(dir.path().join(IMAGES_DIR).join(relative));
                paths.push(dir.path().join(TEXT_DIR).join(Path::new(relative).with_extension("txt")));
            }
            paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
        };
        let (a, b, c) = (files(1), files(1), files(2));
        assert_eq!(a, b);
        assert_eq!(a[..4], c[..4], "the index files do not depend on the seed");
        assert!((4..a.len()).all(|i| a[i] != c[i]), "every picture and every text changes with the seed");
    }

    #[test]
    fn synthetic_tables_are_checked_by_key() {
        let table = serde_json::json!({ "image_groups": 5, "text_groups": 4, "train": 3, "test": 1, "seed": 9 });
        let s = CubSynth::from_table(&table).unwrap();
        assert_eq!((s.classes(), s.train_per_class, s.image_size, s.seed), (20, 3, 32, 9));
        assert_eq!(s.groups(7), (1, 3));
        for (table, want) in [
            (serde_json::json!({ "groups": 2 }), "data.synthetic.groups: unknown key"),
            (serde_json::json!({ "train": -1 }), "data.synthetic.train: expected a non-negative integer"),
            (serde_json::json!({ "image_groups": 1, "text_groups": 1 }), "image_groups x text_groups: expected 2"),
            (serde_json::json!({ "test": 0 }), "train and test: expected at least 1 image per class"),
            (serde_json::json!({ "image_size": 4 }), "data.synthetic: image_size: expected 8 to 512, got 4"),
            (serde_json::json!({ "image_groups": 1000, "train": 3000 }), "at most 2000000 images in all"),
            (serde_json::json!(3), "data.synthetic: expected a table"),
        ] {
            let err = CubSynth::from_table(&table).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
        let opts = options(&[("synthetic", serde_json::json!({ "text_groups": 16 })), ("image_size", 64.into())]);
        assert_eq!(synthetic_option(&opts).unwrap().map(|s| s.classes()), Some(64));
        assert_eq!(synthetic_option(&Map::new()).unwrap(), None);
        let err = synthetic_option(&options(&[("classes", 3.into())])).unwrap_err();
        assert!(err.starts_with("data.classes: the cub format takes no such key"), "{err}");
        // Beyond the list of words, text groups get made-up ones, still one token each.
        assert_eq!(tokenise(&attribute_words(16)[1]), ["hue16b"]);
        let all: Vec<String> = (0..20).flat_map(attribute_words).collect();
        let distinct: std::collections::BTreeSet<&String> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
        assert!(!all.iter().any(|w| FILLER.contains(&w.as_str())));
    }
}
