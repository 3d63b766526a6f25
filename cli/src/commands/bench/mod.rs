//! `sweep bench`: measurements a user runs on their own hardware. `sweep bench gpu` times the
//! training step of the double-descent network in every way sweep can run it, side by side with
//! PyTorch on the same device; the bench itself lives in crate `sweep-bench` (`bench/src/gpu/`).

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Training-step throughput of preact-ResNet-18 (3x32x32 inputs, 10 classes) for each width k
    /// on one device: PyTorch eager, tch eager, N packed processes (samples/s summed over them,
    /// under CUDA MPS where available), and fused groups of G networks trained as one (summed
    /// over the G members), each also as a CUDA graph, each with its ratio to PyTorch eager. Run
    /// it on the GPU node with LD_LIBRARY_PATH pointing at its torch `lib/` folder.
    Gpu(sweep_bench::gpu::GpuArgs),
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Gpu(args) => sweep_bench::gpu::run(args),
    }
}
