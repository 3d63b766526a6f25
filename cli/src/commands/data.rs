//! `sweep data synth`: synthetic data sets written in the real on-disk formats, so a study can be
//! tried (and the loaders tested) without downloading anything.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use sweep_workloads::data::{self, SynthOptions};

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Write a synthetic image set in a real format (cifar10, cifar100, image_folder, npy): classes
    /// are colour patterns that a CNN can learn, drawn from the seed.
    Synth(SynthArgs),
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// cifar10 | cifar100 | image_folder | npy
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
}

pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    let DataCommand::Synth(a) = cmd;
    if !data::FORMATS.contains(&a.format.as_str()) {
        anyhow::bail!("--format: expected one of {}, got \"{}\"", data::FORMATS.join(", "), a.format);
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
