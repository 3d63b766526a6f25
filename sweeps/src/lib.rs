//! What to run: the sweep file, its validation, and its expansion into trials.
//!
//! Everything here is pure: no I/O beyond reading the sweep file itself, no network, no libtorch.
//! The coordinator, the agent and the CLI all agree on trials through this crate.

pub mod backoff;
pub mod duration;
pub mod error;
pub mod expand;
pub mod file;
pub mod fusion;
pub mod packing;
pub mod param_names;
pub mod report;
pub mod sample;
pub mod schedule;
pub mod text;
pub mod tpe;
pub mod trial;
pub mod workloads;

pub use error::SpecError;
pub use expand::expand;
pub use file::{DataRef, Fuse, Resources, RetryPolicy, SweepFile};
pub use report::EpochRecord;
pub use trial::{CommandBool, CopyFrom, TrialId, TrialSpec};
