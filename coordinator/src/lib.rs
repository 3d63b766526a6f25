//! The sweep coordinator: stores sweeps, hands trials to agents under leases, and writes every
//! metric to Parquet. It never links libtorch, so it runs on a login node or a small pod.

pub mod auth;
pub mod config;
pub mod connections;
pub mod convert;
pub mod dashboard;
pub mod error;
pub mod fused_sizing;
pub mod lifecycle;
pub mod limits;
pub mod ownership;
pub mod scheduler;
pub mod server;
pub mod service;
pub mod session;
pub mod shared;
pub mod sink;
pub mod store;
pub mod telemetry;
pub mod tls;

/// The Parquet results the sink writes (crate `sweep-results`, which the CLI reads them with).
pub use sweep_results as results;

pub use config::{ConnectionConfig, CoordinatorConfig, SecurityConfig};
pub use error::{Error, Result};
pub use server::{start, start_with, RunningCoordinator};
