use super::synthetic::{group_colour, FILLER};
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
    let images = |from: &'static str, to: &'static str| move |root: &Path| replace(&root.join(IMAGES_FILE), from, to);
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
                std::fs::File::options()
                    .write(true)
                    .open(root.join(IMAGES_FILE))
                    .unwrap()
                    .set_len(MAX_INDEX_BYTES + 1)
                    .unwrap()
            }),
            "images.txt: 67108865 bytes; an index file may have at most 67108864",
        ),
        (
            edit(|root: &Path| std::fs::write(root.join(SPLIT_FILE), "1 1\n2 1\n3 1\n4 1\n5 1\n6 1\n").unwrap()),
            "train_test_split.txt: no test images",
        ),
        (
            edit(|root: &Path| std::fs::remove_file(root.join(LABELS_FILE)).unwrap()),
            "image_class_labels.txt: no such file; the cub format reads the CUB-200-2011 layout",
        ),
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
