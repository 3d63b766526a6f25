//! gRPC handlers. Each one validates, calls the store through [`crate::shared::Shared`], and maps
//! the error; decisions live in the store, the lifecycle and the scheduler.

pub mod agents;
pub mod page;
pub mod sweeps;
pub mod upload;
