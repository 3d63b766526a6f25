//! One module per subcommand.

pub mod agents;
#[cfg(feature = "embedded-agent")]
pub mod bench;
pub mod cancel;
#[cfg(feature = "embedded-agent")]
pub mod data;
#[cfg(feature = "embedded-agent")]
pub mod local;
pub mod plot;
pub mod results;
pub mod resume;
pub mod retry;
pub mod slurm;
pub mod status;
pub mod submit;
pub mod trial;
#[cfg(feature = "embedded-agent")]
pub mod ui;
pub mod validate;
pub mod watch;
