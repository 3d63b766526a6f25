//! `sweep data synth`: synthetic data sets written in the real on-disk formats, so a study can be
//! tried (and the loaders tested) without downloading anything.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use sweep_workloads::data::{self, SynthOptions};

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Write a synthetic set in a real format (cifar10, cifar100, image_folder, imagenet_lt, npy):
    /// classes are colour patterns that a CNN can learn, or Gaussian clusters of feature rows
    /// (--generator gaussian_mixture, npy only), drawn from the seed; --imbalance-ratio writes the
    /// training split long-tailed.
    Synth(SynthArgs),
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// cifar10 | cifar100 | image_folder | imagenet_lt (JPEG files and ImageNet_LT_{train,test}.txt
    /// split files) | npy
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
    /// Side of the square images (the CIFAR formats need 32); features per row of a mixture.
    #[arg(long, default_value_t = 32)]
    image_size: i64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Cut the training split to the exponential long-tail profile n_i = n_max * r^(-i/(C-1)),
    /// r = largest / smallest class (1: balanced).
    #[arg(long, default_value_t = 1.0)]
    imbalance_ratio: f64,
    /// patterns (images a CNN can learn) | gaussian_mixture (feature rows, npy only)
    #[arg(long, default_value = "patterns")]
    generator: String,
}

pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    let DataCommand::Synth(a) = cmd;
    if a.format == "cifar_lt" {
        anyhow::bail!(
            "--format cifar_lt: CIFAR-LT is cut from CIFAR batches when they are read; write --format cifar10 \
             (or cifar100) here and set `imbalance_ratio` in the sweep file's [data]"
        );
    }
    if !data::FORMATS.contains(&a.format.as_str()) {
        anyhow::bail!("--format: expected one of {}, got \"{}\"", data::FORMATS.join(", "), a.format);
    }
    if a.out.exists() {
        anyhow::bail!("{}: already exists; choose a new folder for --out", a.out.display());
    }
    let classes = a.classes.unwrap_or(if a.format == "cifar100" { 100 } else { 10 });
    let generator = data::Generator::parse(&a.generator).map_err(|e| anyhow::anyhow!("--generator: {e}"))?;
    let opts = SynthOptions {
        train: a.train,
        test: a.test,
        classes,
        image_size: a.image_size,
        seed: a.seed,
        imbalance_ratio: a.imbalance_ratio,
        generator,
    };
    data::write_synthetic(&a.format, &a.out, &opts)?;
    println!("{}", a.out.display());
    let cut = match a.imbalance_ratio > 1.0 {
        true => format!(", training split cut long-tailed to ratio {}", a.imbalance_ratio),
        false => String::new(),
    };
    eprintln!(
        "wrote {} train and {} test images before any cut ({classes} classes, {} px{cut}) in {} format",
        a.train, a.test, a.image_size, a.format
    );
    Ok(())
}
