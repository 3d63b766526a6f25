//! `sweep data synth`: synthetic data sets written in the real on-disk formats, so a study can be
//! tried (and the loaders tested) without downloading anything.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use sweep_workloads::data::{self, SynthOptions};

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Write a synthetic image set in a real format (cifar10, cifar100, image_folder, npy): classes
    /// are colour patterns that a CNN can learn, drawn from the seed. With `--format xc`, an
    /// extreme-classification pair `train.txt`/`test.txt` in the XC BoW format: topic documents with
    /// power-law labels (`--features`, `--labels`, `--topics`, `--noise`).
    Synth(SynthArgs),
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// cifar10 | cifar100 | image_folder | npy | xc
    #[arg(long)]
    format: String,
    /// Folder to create; must not exist yet.
    #[arg(long)]
    out: PathBuf,
    /// Training images.
    #[arg(long, default_value_t = 5000)]
    train: usize,
    /// Test images.
    #[arg(long, default_value_t = 1000)]
    test: usize,
    /// Classes [default: 10, or 100 for cifar100].
    #[arg(long)]
    classes: Option<i64>,
    /// Side of the square images (the CIFAR formats need 32).
    #[arg(long, default_value_t = 32)]
    image_size: i64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    xc: XcArgs,
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
        train: a.train,
        test: a.test,
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

pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    let DataCommand::Synth(a) = cmd;
    if a.format == sweep_xmc::FORMAT {
        if a.out.exists() {
            anyhow::bail!("{}: already exists; choose a new folder for --out", a.out.display());
        }
        return synth_xc(&a);
    }
    if !data::FORMATS.contains(&a.format.as_str()) {
        anyhow::bail!("--format: expected one of {}, xc, got \"{}\"", data::FORMATS.join(", "), a.format);
    }
    if a.out.exists() {
        anyhow::bail!("{}: already exists; choose a new folder for --out", a.out.display());
    }
    let classes = a.classes.unwrap_or(if a.format == "cifar100" { 100 } else { 10 });
    let opts = SynthOptions { train: a.train, test: a.test, classes, image_size: a.image_size, seed: a.seed };
    data::write_synthetic(&a.format, &a.out, &opts)?;
    println!("{}", a.out.display());
    eprintln!(
        "wrote {} train and {} test images ({classes} classes, {} px) in {} format",
        a.train, a.test, a.image_size, a.format
    );
    Ok(())
}
