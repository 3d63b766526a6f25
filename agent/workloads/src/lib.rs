//! Built-in libtorch workloads.
pub use tch;
