//! Benchmarks a user runs on their own hardware. `gpu` times the training step against PyTorch on
//! one device and is what `sweep bench gpu` runs; the `sweep-bench` binary measures the
//! coordinator's throughput.

pub mod gpu;
