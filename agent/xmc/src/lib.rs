//! The label-tree study for extreme multi-label classification (workload `xmc_tree`): XC-format
//! data, PIFA label embeddings, recursive label partitioners (k-means, random, METIS), a linear
//! one-vs-rest classifier per tree node trained by dual coordinate descent, beam search, and the
//! metrics of the extreme-classification literature. Pure Rust apart from the vendored METIS.

pub mod beam;
pub mod bow;
pub mod data;
mod error;
pub mod metrics;
pub mod model;
pub mod params;
pub mod partition;
pub mod pifa;
mod run;
pub mod solver;
pub mod sparse;
pub mod synth;
pub mod tree;

pub use data::FORMAT;
pub use error::XmcError;
pub use run::{peak_rss_bytes, run, train_and_evaluate};
