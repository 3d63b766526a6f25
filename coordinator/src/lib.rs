//! The sweep coordinator: stores sweeps, hands trials to agents under leases, and writes every
//! metric to Parquet. It never links libtorch, so it runs on a login node or a small pod.

pub mod config;
pub mod convert;
pub mod error;
pub mod lifecycle;
pub mod results;
pub mod scheduler;
pub mod server;
pub mod service;
pub mod shared;
pub mod sink;
pub mod store;

pub use config::CoordinatorConfig;
pub use error::{Error, Result};
pub use server::{start, RunningCoordinator};
