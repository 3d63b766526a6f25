//! The MNIST reader against files encoded here from the IDX spec (not by the writer), the writer
//! through the reader, forged and damaged headers, and the learnability of synthetic sets.

use super::*;
use crate::data::{load, synthetic, write_synthetic, ImageSet, SynthOptions};
use flate2::write::GzEncoder;
use serde_json::{json, Map, Value};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;

/// The system allocator, noting the largest single request of a thread while it is armed: proof
/// that a forged header is refused without allocating what it declares.
struct Tracking;

thread_local! {
    static LARGEST: Cell<Option<usize>> = const { Cell::new(None) };
}

fn note(size: usize) {
    // `try_with`: allocations also happen while a thread's locals are torn down.
    let _ = LARGEST.try_with(|l| {
        if let Some(m) = l.get() {
            l.set(Some(m.max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// `f()` and the largest single allocation this thread requested while running it.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(Some(0)));
    let out = f();
    (out, LARGEST.with(|l| l.replace(None)).unwrap_or(0))
}

/// An IDX file from the spec: magic, big-endian u32 sizes, data.
fn idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = magic.to_be_bytes().to_vec();
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn put(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// Pixel (y, x) of image i of a hand-made split: distinct across images, rows and columns.
fn pixel(i: usize, y: usize, x: usize) -> u8 {
    ((i * 61 + y * 7 + x * 3) % 256) as u8
}

const ROWS: usize = 5;
const COLS: usize = 4;

fn hand_images(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (0..ROWS).flat_map(move |y| (0..COLS).map(move |x| pixel(i, y, x)))).collect()
}

/// A set of 3 train and 2 test images of 5 rows and 4 columns; the train images gzipped.
fn hand_set(dir: &Path) {
    let train = idx(0x0803, &[3, ROWS as u32, COLS as u32], &hand_images(3));
    put(dir, "train-images-idx3-ubyte.gz", &gzip(&train));
    put(dir, "train-labels-idx1-ubyte", &idx(0x0801, &[3], &[3, 0, 7]));
    put(dir, "t10k-images-idx3-ubyte", &idx(0x0803, &[2, ROWS as u32, COLS as u32], &hand_images(2)));
    put(dir, "t10k-labels-idx1-ubyte", &idx(0x0801, &[2], &[7, 1]));
}

fn options(pairs: Value) -> Map<String, Value> {
    pairs.as_object().unwrap().clone()
}

fn error(dir: &Path) -> String {
    load("mnist", dir, &Map::new()).unwrap_err().to_string()
}

fn check_hand_split(set: &ImageSet, labels: &[i64]) {
    let n = labels.len();
    assert_eq!(set.images.size(), vec![n as i64, 1, ROWS as i64, COLS as i64]);
    assert_eq!(Vec::<i64>::try_from(&set.labels).unwrap(), labels);
    for i in 0..n {
        for y in 0..ROWS {
            for x in 0..COLS {
                let got = set.images.int64_value(&[i as i64, 0, y as i64, x as i64]);
                assert_eq!(got, pixel(i, y, x) as i64, "image {i} at ({y}, {x})");
            }
        }
    }
}

#[test]
fn reads_idx_files_encoded_from_the_spec_raw_and_gzipped() {
    let dir = tempfile::tempdir().unwrap();
    hand_set(dir.path());
    let s = load("mnist", dir.path(), &Map::new()).unwrap();
    check_hand_split(&s.train, &[3, 0, 7]);
    check_hand_split(&s.test, &[7, 1]);
    assert_eq!((s.train.classes, s.test.classes), (8, 8), "largest label + 1 over both splits");
    assert_eq!(s.mean.len(), 1, "one grey channel");
    // `classes` as for npy: more than the labels need is kept, fewer is refused naming the file.
    let s = load("mnist", dir.path(), &options(json!({ "classes": 10 }))).unwrap();
    assert_eq!(s.train.classes, 10);
    let err = load("mnist", dir.path(), &options(json!({ "classes": 5 }))).unwrap_err().to_string();
    assert!(err.contains("train-labels-idx1-ubyte") && err.contains("label 7 at index 2"), "{err}");
    // torchvision's download layout, MNIST/raw under the given folder, is found too.
    let root = tempfile::tempdir().unwrap();
    let raw = root.path().join("MNIST").join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    hand_set(&raw);
    check_hand_split(&load("mnist", root.path(), &Map::new()).unwrap().test, &[7, 1]);
}

#[test]
fn synthetic_sets_round_trip_through_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SynthOptions { train: 60, test: 20, classes: 10, image_size: 28, seed: 4, ..SynthOptions::default() };
    write_synthetic("mnist", dir.path(), &opts).unwrap();
    // Raw files of exactly header + data.
    let len = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().len();
    assert_eq!(len("train-images-idx3-ubyte"), 16 + 60 * 28 * 28);
    assert_eq!(len("train-labels-idx1-ubyte"), 8 + 60);
    assert_eq!(len("t10k-images-idx3-ubyte"), 16 + 20 * 28 * 28);
    assert_eq!(len("t10k-labels-idx1-ubyte"), 8 + 20);
    let s = load("mnist", dir.path(), &Map::new()).unwrap();
    assert_eq!(s.train.images.size(), vec![60, 1, 28, 28]);
    assert_eq!(s.test.images.size(), vec![20, 1, 28, 28]);
    assert_eq!(s.train.classes, 10);
    for set in [&s.train, &s.test] {
        let mut labels = Vec::<i64>::try_from(&set.labels).unwrap();
        labels.sort();
        labels.dedup();
        assert_eq!(labels, (0..10).collect::<Vec<_>>(), "every class in each split");
    }
    let (train, test) = synthetic::generate(&opts, 1);
    assert_eq!(Vec::<u8>::try_from(&s.train.images.flatten(0, -1)).unwrap(), train.pixels);
    assert_eq!(Vec::<u8>::try_from(&s.test.images.flatten(0, -1)).unwrap(), test.pixels);
    assert_eq!(Vec::<i64>::try_from(&s.test.labels).unwrap(), test.labels);
    // The writer emits the spec's bytes.
    let labels: Vec<u8> = train.labels.iter().map(|&l| l as u8).collect();
    assert_eq!(std::fs::read(dir.path().join("train-labels-idx1-ubyte")).unwrap(), idx(0x0801, &[60], &labels));
    // Grey only: a mixture is feature rows, written as npy.
    let mixture = SynthOptions { generator: crate::data::Generator::GaussianMixture, ..opts };
    let err = write_synthetic("mnist", &dir.path().join("m"), &mixture).unwrap_err().to_string();
    assert!(err.contains("npy"), "{err}");
}

#[test]
fn a_forged_header_is_refused_without_allocating_what_it_declares() {
    // The tracker sees a large allocation when there is one.
    let (_, control) = largest_allocation(|| std::hint::black_box(vec![1u8; 4 << 20]));
    assert!(control >= 4 << 20, "the tracker saw {control} bytes");
    let dir = tempfile::tempdir().unwrap();
    hand_set(dir.path());
    // 2^31 images of 28x28 in a 100-byte file: beyond the bound on any header.
    let mut forged = idx(0x0803, &[1 << 31, 28, 28], &[]);
    forged.resize(100, 0);
    put(dir.path(), "t10k-images-idx3-ubyte", &forged);
    let (err, largest) = largest_allocation(|| error(dir.path()));
    assert!(err.contains("t10k-images-idx3-ubyte") && err.contains("corrupt"), "{err}");
    assert!(largest < 1 << 20, "allocated {largest} bytes at once");
    // Within the bound (15 GB) but not in the file: refused by the file's length, raw or gzipped.
    let mut forged = idx(0x0803, &[20_000_000, 28, 28], &[]);
    forged.resize(100, 0);
    for (name, bytes) in [("t10k-images-idx3-ubyte", forged.clone()), ("t10k-images-idx3-ubyte.gz", gzip(&forged))] {
        let _ = std::fs::remove_file(dir.path().join("t10k-images-idx3-ubyte"));
        put(dir.path(), name, &bytes);
        let (err, largest) = largest_allocation(|| error(dir.path()));
        assert!(err.contains(name) && err.contains("truncated") && err.contains("has 84"), "{err}");
        assert!(largest < 1 << 20, "{name}: allocated {largest} bytes at once");
    }
    // A labels count no file this short can hold; sizes whose product overflows 64 bits.
    hand_set(dir.path());
    put(dir.path(), "train-labels-idx1-ubyte", &idx(0x0801, &[u32::MAX], &[]));
    let err = error(dir.path());
    assert!(err.contains("train-labels-idx1-ubyte") && err.contains("truncated"), "{err}");
    hand_set(dir.path());
    let mut overflow = idx(0x0803, &[u32::MAX, u32::MAX, u32::MAX], &[]);
    overflow.resize(100, 0);
    std::fs::remove_file(dir.path().join("t10k-images-idx3-ubyte")).unwrap();
    put(dir.path(), "t10k-images-idx3-ubyte.gz", &gzip(&overflow));
    let err = error(dir.path());
    assert!(err.contains("t10k-images-idx3-ubyte.gz") && err.contains("corrupt"), "{err}");
}

#[test]
fn wrong_magic_mismatched_counts_and_truncation_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let case = |name: &str, bytes: Vec<u8>, expect: &[&str]| {
        hand_set(dir.path());
        put(dir.path(), name, &bytes);
        let err = error(dir.path());
        assert!(err.contains(name), "names {name}: {err}");
        for e in expect {
            assert!(err.contains(e), "{name}: expected \"{e}\" in: {err}");
        }
    };
    // Not IDX at all (an npy file), a float IDX file, the labels file where images belong.
    case("train-labels-idx1-ubyte", b"\x93NUMPY\x01\x00".to_vec(), &["not an IDX file", "0x00000801"]);
    case("t10k-images-idx3-ubyte", idx(0x0d03, &[2, 5, 4], &[0; 160]), &["type code 0x0d (float)"]);
    case("t10k-images-idx3-ubyte", idx(0x0801, &[2], &[7, 1]), &["swapped"]);
    // Two test images, three labels.
    case("t10k-labels-idx1-ubyte", idx(0x0801, &[3], &[7, 1, 1]), &["3 labels", "2 images"]);
    // One pixel short, one byte too many, a header cut short.
    let mut short = idx(0x0803, &[2, 5, 4], &hand_images(2));
    short.pop();
    case("t10k-images-idx3-ubyte", short, &["truncated", "40 data bytes", "the file has 39"]);
    let mut long = idx(0x0803, &[2, 5, 4], &hand_images(2));
    long.push(0);
    case("t10k-images-idx3-ubyte", long, &["goes on after the 40 data bytes"]);
    case("t10k-labels-idx1-ubyte", vec![0, 0, 8, 1, 0], &["truncated IDX header"]);
    // Gzipped: the same checks on the decompressed bytes.
    let mut short = idx(0x0803, &[3, 5, 4], &hand_images(3));
    short.pop();
    case("train-images-idx3-ubyte.gz", gzip(&short), &["truncated", "60 data bytes", "decompressed file has 59"]);
    // A missing file names the folder and the four files.
    hand_set(dir.path());
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let err = error(dir.path());
    assert!(err.contains(&dir.path().display().to_string()) && err.contains("no t10k-labels-idx1-ubyte"), "{err}");
}

/// A one-hidden-layer MLP on the pixels of a synthetic MNIST set: shifts and distractor patterns
/// keep it from perfect, the class patterns put it far above the 10% of chance.
#[test]
fn a_small_mlp_learns_synthetic_mnist_but_not_perfectly() {
    use tch::nn::{self, Module, OptimizerConfig};
    use tch::{Device, Kind, Tensor};
    let dir = tempfile::tempdir().unwrap();
    let opts =
        SynthOptions { train: 3000, test: 1000, classes: 10, image_size: 28, seed: 0, ..SynthOptions::default() };
    write_synthetic("mnist", dir.path(), &opts).unwrap();
    let s = load("mnist", dir.path(), &Map::new()).unwrap();
    let inputs = |set: &ImageSet| (set.images.to_kind(Kind::Float).view([-1, 784]) / 255.0 - s.mean[0]) / s.std[0];
    let (x, y, x_test, y_test) = (inputs(&s.train), &s.train.labels, inputs(&s.test), &s.test.labels);

    let _guard = crate::torch_rng_lock();
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = nn::seq()
        .add(nn::linear(vs.root() / "hidden", 784, 128, Default::default()))
        .add_fn(|h| h.relu())
        .add(nn::linear(vs.root() / "out", 128, 10, Default::default()));
    let mut opt = nn::Adam::default().build(&vs, 1e-3).unwrap();
    for _ in 0..15 {
        let order = Tensor::randperm(3000, (Kind::Int64, Device::Cpu));
        for batch in order.split(100, 0) {
            let loss = net.forward(&x.index_select(0, &batch)).cross_entropy_for_logits(&y.index_select(0, &batch));
            opt.backward_step(&loss);
        }
    }
    let accuracy = |x: &Tensor, y: &Tensor| tch::no_grad(|| net.forward(x).accuracy_for_logits(y).double_value(&[]));
    let (train_acc, test_acc) = (accuracy(&x, y), accuracy(&x_test, y_test));
    eprintln!("MLP on synthetic MNIST: train accuracy {train_acc:.3}, test accuracy {test_acc:.3}");
    assert!((0.5..0.99).contains(&test_acc), "test accuracy {test_acc}");
}
