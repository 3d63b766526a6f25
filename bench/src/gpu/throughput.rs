//! Training-step throughput of a double-descent network (preact-ResNet-18, the 5-layer CNN or the
//! MLP) at CIFAR size, for `sweep bench gpu`: one network alone, or a fused group of G trained as
//! one (`models::fused`). Static random inputs sit on the
//! device, so only the step is timed: forward and loss under autocast, zero_grad, backward, and
//! the double-descent study's SGD update, between two device synchronisations. The step runs
//! eagerly, or captured once as a CUDA graph and replayed (`harness::cuda_graph`), as the training
//! loops do with `cuda_graphs` on.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;
use sweep_workloads::harness::{autocast, member_cross_entropy, GraphMode, Precision, StepGraph};
use sweep_workloads::models::{self, fused, Arch, ModelSpec};
use sweep_workloads::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use sweep_workloads::tch;
use sweep_workloads::tch::nn::{ModuleT, VarStore};
use sweep_workloads::tch::{Device, Kind, Reduction, Tensor};

pub use sweep_workloads::DeviceChoice;

/// CIFAR-sized inputs: 3x32x32 images, 10 classes.
pub const IN_CHANNELS: i64 = 3;
pub const IMAGE_SIZE: i64 = 32;
pub const CLASSES: i64 = 10;
/// The timed update: SGD with momentum 0.9 (not Nesterov), weight decay 5e-4, learning rate 0.1,
/// the settings of the double-descent study's preact-ResNet-18 runs (the same for every network,
/// so the cells differ only in the network).
pub const LR: f64 = 0.1;
pub const MOMENTUM: f64 = 0.9;
pub const WEIGHT_DECAY: f64 = 5e-4;

/// One cell of the benchmark: which network, how big a batch, how many steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepBench {
    pub arch: Arch,
    /// The paper's k: stages of k, 2k, 4k, 8k channels (the MLP: k hidden units).
    pub width: i64,
    /// 1: one network alone (`models::build`); G > 1: G networks fused (`models::fused`).
    pub members: i64,
    /// Examples per member per step.
    pub batch: i64,
    /// Steps run before the clock starts (cuDNN autotuning and allocator growth happen there).
    pub warmup: u32,
    /// Steps timed.
    pub steps: u32,
    pub device: Device,
    /// Time replays of the step captured as a CUDA graph instead of eager steps. The warmup steps
    /// still run eagerly (at least one: a capture needs one before it). A step that cannot be
    /// captured (not a CUDA device, a capture libtorch refuses) fails the cell: eager steps are
    /// never timed in its place.
    pub graphs: bool,
}

/// What one cell measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Examples trained per second over all members: members * batch * steps / seconds.
    pub samples_per_second: f64,
    /// Wall time of the timed steps.
    pub seconds: f64,
    /// Trainable parameters of the whole (fused) network.
    pub parameters: i64,
    pub precision: Precision,
}

/// The precision the benchmark trains in: bf16 autocast on CUDA (tensor cores), f32 on the CPU.
pub fn precision_for(device: Device) -> Precision {
    if device.is_cuda() {
        Precision::Bf16
    } else {
        Precision::Fp32
    }
}

/// The network of one cell.
pub fn model_spec(arch: Arch, width: i64) -> ModelSpec {
    ModelSpec { arch, width, in_channels: IN_CHANNELS, image_size: IMAGE_SIZE, classes: CLASSES, dropout: 0.0 }
}

fn sgd() -> OptimizerConfig {
    OptimizerConfig { momentum: MOMENTUM, weight_decay: WEIGHT_DECAY, ..OptimizerConfig::new(OptimizerKind::Sgd, LR) }
}

/// Builds the cell's network, trains `warmup` then `steps` steps on one static random batch, and
/// returns the throughput of the timed steps. Runs on the calling thread.
///
/// tch panics on libtorch errors, CUDA running out of memory among them (a wide network with many
/// members may not fit); that panic is returned as an error, so one cell that does not fit does
/// not end a whole table.
pub fn measure(bench: &StepBench) -> Result<Throughput, String> {
    measure_when(bench, || Ok(()))
}

/// `measure`, calling `ready` between the warmup and the timed steps: processes packed onto one
/// GPU warm up apart and wait there to time their steps together.
pub fn measure_when(bench: &StepBench, ready: impl FnOnce() -> Result<(), String>) -> Result<Throughput, String> {
    if bench.members < 1 || bench.batch < 1 || bench.steps < 1 {
        return Err(format!(
            "expected members, batch and steps >= 1, got {}, {} and {}",
            bench.members, bench.batch, bench.steps
        ));
    }
    model_spec(bench.arch, bench.width).validate()?;
    let measured = measure_in(bench, if bench.graphs { GraphMode::On } else { GraphMode::Off }, ready);
    // The cell's network is gone: the next cell, or processes packed beside this one, find the GPU
    // as free as this cell did.
    sweep_workloads::harness::gpu_memory::release_cached(bench.device);
    measured
}

/// `measure` with the graph mode chosen by the caller (tests rehearse the graph path on the CPU).
fn measure_in(
    bench: &StepBench,
    mode: GraphMode,
    ready: impl FnOnce() -> Result<(), String>,
) -> Result<Throughput, String> {
    if mode == GraphMode::On {
        // Known before anything is built: on the CPU, say so without training a network first.
        if let Some(why) = StepGraph::new(mode, bench.device).eager_because() {
            return Err(why.to_string());
        }
    }
    catch_unwind(AssertUnwindSafe(|| run(bench, mode, ready)))
        .unwrap_or_else(|panic| Err(sweep_workloads::panic_message(panic)))
}

fn run(bench: &StepBench, mode: GraphMode, ready: impl FnOnce() -> Result<(), String>) -> Result<Throughput, String> {
    let StepBench { arch, width, members, batch, warmup, steps, device, graphs: _ } = *bench;
    let graphs = mode != GraphMode::Off;
    let spec = model_spec(arch, width);
    let precision = precision_for(device);
    // The same layout choices as the study's CUDA runs: channels-last convolutions and cuDNN
    // picking the fastest algorithm per shape (the PyTorch reference sets the same).
    let channels_last = arch.channels_last_on(device);
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(true);
    }
    let mut vs = VarStore::new(device);
    let net: Box<dyn ModuleT + Send> =
        if members == 1 { models::build(&vs.root(), &spec)? } else { fused::build(&vs.root(), &spec, members)? };
    if channels_last {
        models::to_channels_last(&mut vs);
    }
    let parameters = models::parameter_count(&vs);
    let mut optimizer = Optimizer::new(sgd(), &vs);

    // Each member's batch, [B, C, H, W]; a fused group takes them side by side on the channel axis.
    let images = || Tensor::randn([batch, IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE], (Kind::Float, device));
    let x =
        if members == 1 { images() } else { fused::fuse_inputs(&(0..members).map(|_| images()).collect::<Vec<_>>()) };
    let x = if channels_last { models::to_channels_last_tensor(&x) } else { x };
    let labels_shape: Vec<i64> = if members == 1 { vec![batch] } else { vec![batch, members] };
    let y = Tensor::randint(CLASSES, labels_shape, (Kind::Int64, device));
    // One rate per member, one for a lone network.
    let (lrs, weight_decays) = (vec![LR; members as usize], vec![WEIGHT_DECAY; members as usize]);

    let loss_of = |x: &Tensor, y: &Tensor| {
        autocast(precision, device, || {
            let logits = net.forward_t(x, true);
            if members == 1 {
                logits.cross_entropy_loss::<Tensor>(y, None, Reduction::Mean, -100, 0.0)
            } else {
                // Each member's mean loss, summed: every member gets exactly its own gradient.
                member_cross_entropy(&logits, y).mean_dim(0, false, Kind::Float).sum(Kind::Float)
            }
        })
    };
    let eager_step = |optimizer: &mut Optimizer| -> Result<(), String> {
        let loss = loss_of(&x, &y);
        optimizer.zero_grad();
        loss.backward();
        if members == 1 {
            optimizer.step(LR);
            Ok(())
        } else {
            optimizer.step_members(&lrs, &weight_decays)
        }
    };
    // The captured step, as the training loops capture it: rates and step count on the device.
    let graph_step = |optimizer: &mut Optimizer, x: &Tensor, y: &Tensor| -> Result<(), String> {
        let loss = loss_of(x, y);
        optimizer.zero_grad();
        loss.backward();
        optimizer.graph_step()
    };

    // A capture needs an eager step before it.
    for _ in 0..if graphs { warmup.max(1) } else { warmup } {
        eager_step(&mut optimizer)?;
    }
    let mut graph = StepGraph::new(mode, device);
    if graphs {
        optimizer.set_graph_rates(&lrs, &weight_decays)?;
        graph.capture_after(&x, &y, |x, y| graph_step(&mut optimizer, x, y));
        if let Some(why) = graph.eager_because() {
            return Err(why.to_string());
        }
    }
    let mut step = |optimizer: &mut Optimizer| -> Result<(), String> {
        if !graphs {
            return eager_step(optimizer);
        }
        if !graph.replay(&x, &y, |x, y| graph_step(optimizer, x, y))? {
            return Err("the captured step was not replayed".into());
        }
        optimizer.count_step();
        Ok(())
    };
    if graphs {
        // Untimed: the first launch of a graph also uploads it to the device.
        step(&mut optimizer)?;
    }
    synchronize(device);
    ready()?;
    let started = Instant::now();
    for _ in 0..steps {
        step(&mut optimizer)?;
    }
    synchronize(device);
    let seconds = started.elapsed().as_secs_f64();
    let samples = (members * batch) as f64 * steps as f64;
    Ok(Throughput { samples_per_second: samples / seconds.max(1e-9), seconds, parameters, precision })
}

/// Waits for the device's queued work; CPU ops have finished when they return.
fn synchronize(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libtorch's generator is process-global: the tests that seed it and draw take turns.
    fn torch_rng_lock() -> std::sync::MutexGuard<'static, ()> {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        LOCK.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cell(members: i64) -> StepBench {
        let arch = Arch::PreactResnet18;
        StepBench { arch, width: 1, members, batch: 2, warmup: 1, steps: 1, device: Device::Cpu, graphs: false }
    }

    #[test]
    fn lone_and_fused_cells_report_a_positive_rate_and_the_parameters_of_the_whole_network() {
        // Building and the random batch draw from the global generator that seeded tests share.
        let _rng = torch_rng_lock();
        for arch in Arch::ALL {
            let lone = measure(&StepBench { arch, ..cell(1) }).unwrap();
            assert!(lone.samples_per_second.is_finite() && lone.samples_per_second > 0.0, "{arch}: {lone:?}");
            assert_eq!(lone.precision, Precision::Fp32);
            let pair = measure(&StepBench { arch, ..cell(2) }).unwrap();
            assert!(pair.samples_per_second.is_finite() && pair.samples_per_second > 0.0, "{arch}: {pair:?}");
            assert_eq!(pair.parameters, 2 * lone.parameters, "{arch}: a fused pair holds two networks");
        }
    }

    #[test]
    fn bad_cells_are_refused_before_anything_is_built() {
        assert!(measure(&StepBench { width: 0, ..cell(1) }).unwrap_err().contains("width"));
        assert!(measure(&StepBench { steps: 0, ..cell(1) }).unwrap_err().contains("steps"));
    }

    #[test]
    fn graph_cells_on_the_cpu_fail_with_the_reason_instead_of_timing_eager_steps() {
        for members in [1, 2] {
            let graph = StepBench { graphs: true, ..cell(members) };
            assert_eq!(measure(&graph), Err("not a CUDA device".to_string()), "members {members}");
        }
    }

    #[test]
    fn the_graph_path_runs_end_to_end_in_rehearsal() {
        // Rehearsal replays the captured body eagerly on the static inputs: everything the graph
        // cell does but the capture itself, including a warmup of 0 raised to the one eager step
        // a capture needs.
        let _rng = torch_rng_lock();
        for members in [1, 2] {
            let bench = StepBench { graphs: true, warmup: 0, steps: 2, ..cell(members) };
            let t = measure_in(&bench, GraphMode::Rehearse, || Ok(())).unwrap();
            assert!(t.samples_per_second.is_finite() && t.samples_per_second > 0.0, "{t:?}");
        }
    }
}
