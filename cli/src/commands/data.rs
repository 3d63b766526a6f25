//! `sweep data synth`: synthetic data sets written in the real on-disk formats, so a study can be
//! tried (and the loaders tested) without downloading anything.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use sweep_workloads::data::{self, SynthOptions};

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Write a synthetic set in a real format (cifar10, cifar100, image_folder, imagenet_lt, mnist,
    /// npy): classes are colour patterns (grey for mnist) that a CNN can learn, or Gaussian clusters
    /// of feature rows
    /// (--generator gaussian_mixture, npy only), drawn from the seed; --imbalance-ratio writes the
    /// training split long-tailed. With `--format xc`, an extreme-classification pair
    /// `train.txt`/`test.txt` in the XC BoW format: topic documents with power-law labels
    /// (`--features`, `--labels`, `--topics`, `--noise`). With `--chess N` (and no --format), N
    /// training games and `--test` test games played by a small seeded engine (2-ply material
    /// search, random tie-breaks), as train.pgn and test.pgn for `seq2seq`'s pgn format. With
    /// `--cub` (and no --format), bird pictures with ten sentences each in the CUB-200-2011 layout,
    /// whose class is half in the picture and half in the text.
    Synth(SynthArgs),
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// cifar10 | cifar100 | image_folder | imagenet_lt (JPEG files and ImageNet_LT_{train,test}.txt
    /// split files) | mnist (the four raw IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte,
    /// t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; 28x28 grey) | npy | xc
    #[arg(long, required_unless_present_any = ["chess", "cub"])]
    format: Option<String>,
    /// Write N chess games in PGN instead (train.pgn; test.pgn gets `--test` games).
    #[arg(long, value_name = "N", conflicts_with = "format")]
    chess: Option<usize>,
    /// Write a synthetic CUB-200-2011 set instead, in the real layout with the text_c10 captions of
    /// Reed et al. 2016: classes.txt, images.txt, image_class_labels.txt, train_test_split.txt,
    /// JPEG files under images/<class>/ and ten sentences per image under text_c10/<class>/.
    /// Classes = --image-groups x --text-groups: the picture shows only the image group (the colour
    /// of a patch) and the sentences tell only the text group (an attribute word), so neither alone
    /// tells the class. --train and --test count images per class.
    #[arg(long, conflicts_with_all = ["format", "chess"])]
    cub: bool,
    /// --cub: groups the pictures tell apart [default: 4].
    #[arg(long, conflicts_with_all = ["format", "chess"])]
    image_groups: Option<usize>,
    /// --cub: groups the sentences tell apart [default: 3].
    #[arg(long, conflicts_with_all = ["format", "chess"])]
    text_groups: Option<usize>,
    /// --chess: the longest game, in plies (half-moves).
    #[arg(long, default_value_t = 80)]
    max_plies: usize,
    /// Folder to create; must not exist yet.
    #[arg(long)]
    out: PathBuf,
    /// Training images [default: 5000; 60 per class with --cub].
    #[arg(long)]
    train: Option<usize>,
    /// Test images (test games with --chess) [default: 1000; 20 per class with --cub].
    #[arg(long)]
    test: Option<usize>,
    /// Classes [default: 10, or 100 for cifar100].
    #[arg(long)]
    classes: Option<i64>,
    /// Side of the square images (the CIFAR formats need 32) [default: 28 for mnist, else 32];
    /// features per row of a mixture.
    #[arg(long)]
    image_size: Option<i64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Cut the training split to the exponential long-tail profile n_i = n_max * r^(-i/(C-1)),
    /// r = largest / smallest class (1: balanced).
    #[arg(long, default_value_t = 1.0)]
    imbalance_ratio: f64,
    /// patterns (images a CNN can learn) | gaussian_mixture (feature rows, npy only)
    #[arg(long, default_value = "patterns")]
    generator: String,
    #[command(flatten)]
    xc: XcArgs,
}

/// `--train` and `--test` where they count a whole split (--cub counts per class).
const DEFAULT_TRAIN: usize = 5000;
const DEFAULT_TEST: usize = 1000;

impl SynthArgs {
    fn train(&self) -> usize {
        self.train.unwrap_or(DEFAULT_TRAIN)
    }

    fn test(&self) -> usize {
        self.test.unwrap_or(DEFAULT_TEST)
    }
}

/// The shape of a synthetic XC set (`--format xc` only); defaults: the xmc-small study's set.
#[derive(Args, Debug)]
pub struct XcArgs {
    /// xc: vocabulary size.
    #[arg(long)]
    features: Option<usize>,
    /// xc: number of labels.
    #[arg(long)]
    labels: Option<usize>,
    /// xc: latent topics that group labels and words.
    #[arg(long)]
    topics: Option<usize>,
    /// xc: probability that a word is background noise (sets the difficulty).
    #[arg(long)]
    noise: Option<f64>,
    /// xc: mean labels per point.
    #[arg(long)]
    labels_per_point: Option<f64>,
    /// xc: mean words per point.
    #[arg(long)]
    words_per_point: Option<f64>,
}

/// `--format xc`: train.txt and test.txt in the Extreme Classification Repository's BoW format.
fn synth_xc(a: &SynthArgs) -> anyhow::Result<()> {
    let d = sweep_xmc::synth::SynthShape::default();
    let shape = sweep_xmc::synth::SynthShape {
        train: a.train(),
        test: a.test(),
        features: a.xc.features.unwrap_or(d.features),
        labels: a.xc.labels.unwrap_or(d.labels),
        topics: a.xc.topics.unwrap_or(d.topics),
        noise: a.xc.noise.unwrap_or(d.noise),
        labels_per_point: a.xc.labels_per_point.unwrap_or(d.labels_per_point),
        words_per_point: a.xc.words_per_point.unwrap_or(d.words_per_point),
        seed: a.seed,
        ..d
    };
    shape.validate().map_err(|e| anyhow::anyhow!("--{}", e.replace('_', "-")))?;
    std::fs::create_dir_all(&a.out).map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", a.out.display()))?;
    sweep_xmc::synth::write(&shape, &a.out)?;
    println!("{}", a.out.display());
    eprintln!(
        "wrote {} train and {} test points ({} features, {} labels, {} topics, noise {}) in xc format",
        shape.train, shape.test, shape.features, shape.labels, shape.topics, shape.noise
    );
    Ok(())
}

/// `--chess N`: train.pgn and test.pgn of games the seeded engine plays.
fn synth_chess(a: &SynthArgs, games: usize) -> anyhow::Result<()> {
    let synth = data::pgn::ChessSynth { train: games, test: a.test(), max_plies: a.max_plies, seed: a.seed };
    synth.validate().map_err(|e| anyhow::anyhow!("--chess: {e}"))?;
    data::pgn::write_synthetic(&a.out, &synth)?;
    println!("{}", a.out.display());
    eprintln!("wrote {games} training and {} test games of at most {} plies as PGN", synth.test, a.max_plies);
    Ok(())
}

/// `--cub`: the CUB-200-2011 layout with text_c10, each class an image group and a text group.
fn synth_cub(a: &SynthArgs) -> anyhow::Result<()> {
    let d = data::cub::CubSynth::default();
    let sides = data::cub::SYNTHETIC_SIDES;
    let image_size = match a.image_size {
        None => d.image_size,
        Some(s) => usize::try_from(s)
            .map_err(|_| anyhow::anyhow!("--image-size: expected {} to {}, got {s}", sides.start(), sides.end()))?,
    };
    let synth = data::cub::CubSynth {
        image_groups: a.image_groups.unwrap_or(d.image_groups),
        text_groups: a.text_groups.unwrap_or(d.text_groups),
        train_per_class: a.train.unwrap_or(d.train_per_class),
        test_per_class: a.test.unwrap_or(d.test_per_class),
        image_size,
        seed: a.seed,
    };
    synth.validate().map_err(|e| anyhow::anyhow!("--cub: {}", e.replace('_', "-")))?;
    data::cub::write_synthetic(&a.out, &synth)?;
    println!("{}", a.out.display());
    eprintln!(
        "wrote {} training and {} test images of {} classes ({} image groups x {} text groups, {} px), ten \
         sentences each, in the CUB-200-2011 layout with text_c10",
        synth.classes() * synth.train_per_class,
        synth.classes() * synth.test_per_class,
        synth.classes(),
        synth.image_groups,
        synth.text_groups,
        synth.image_size
    );
    Ok(())
}

/// A `--format` that `synth` can write, or an error saying what to ask for instead.
fn check_format(format: &str) -> anyhow::Result<()> {
    if format == "cifar_lt" {
        anyhow::bail!(
            "--format cifar_lt: CIFAR-LT is cut from CIFAR batches when they are read; write --format cifar10 \
             (or cifar100) here and set `imbalance_ratio` in the sweep file's [data]"
        );
    }
    if format != sweep_xmc::FORMAT && !data::FORMATS.contains(&format) {
        anyhow::bail!(
            "--format: expected one of {}, xc, got \"{format}\" (chess games: --chess N; CUB-200-2011 birds \
             with text: --cub)",
            data::FORMATS.join(", ")
        );
    }
    Ok(())
}

pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    let DataCommand::Synth(mut a) = cmd;
    let format = a.format.take();
    if let Some(format) = &format {
        check_format(format)?;
    }
    if a.out.exists() {
        anyhow::bail!("{}: already exists; choose a new folder for --out", a.out.display());
    }
    match (a.chess, format) {
        (Some(games), _) => synth_chess(&a, games),
        (None, _) if a.cub => synth_cub(&a),
        (None, Some(format)) if format == sweep_xmc::FORMAT => synth_xc(&a),
        (None, Some(format)) => synth_images(&a, &format),
        (None, None) => unreachable!("clap requires --format without --chess or --cub"),
    }
}

/// The image formats, and npy.
fn synth_images(a: &SynthArgs, format: &str) -> anyhow::Result<()> {
    let classes = a.classes.unwrap_or(if format == "cifar100" { 100 } else { 10 });
    let image_size = a.image_size.unwrap_or_else(|| data::default_image_size(format));
    let generator = data::Generator::parse(&a.generator).map_err(|e| anyhow::anyhow!("--generator: {e}"))?;
    let opts = SynthOptions {
        train: a.train(),
        test: a.test(),
        classes,
        image_size,
        seed: a.seed,
        imbalance_ratio: a.imbalance_ratio,
        generator,
    };
    data::write_synthetic(format, &a.out, &opts)?;
    println!("{}", a.out.display());
    let cut = match a.imbalance_ratio > 1.0 {
        true => format!(", training split cut long-tailed to ratio {}", a.imbalance_ratio),
        false => String::new(),
    };
    eprintln!(
        "wrote {} train and {} test images before any cut ({classes} classes, {} px{cut}) in {} format",
        opts.train, opts.test, image_size, format
    );
    Ok(())
}
