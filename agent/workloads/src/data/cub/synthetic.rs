//! Synthetic sets in the CUB layout whose class is half in the picture and half in the text.

use super::*;

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
pub(super) const FILLER: [&str; 40] = [
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
pub(super) fn group_colour(group: usize, groups: usize) -> [f64; 3] {
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
