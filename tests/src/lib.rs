//! Machinery for the end-to-end tests in `tests/`: the chaos suite's pausable proxy, a cluster of
//! real binaries that can be SIGKILLed and restarted, seeded fault schedules, replayed reports,
//! the Parquet checks that every chaos run must pass, the compose cluster of `deploy/docker` with
//! Docker's own faults, and headless Chromium over WebDriver for the coordinator's pages.

pub mod browser;
pub mod check;
pub mod cluster;
pub mod compose;
pub mod faults;
pub mod proxy;
pub mod replay;
pub mod run;
