//! What the coordinator tells operators: Prometheus text metrics on its HTTP port (trials by state,
//! leases, agents alive, metric rows ingested, RPC latency histograms) and a health probe.

mod http;
mod rpc_timing;

pub use http::serve;
pub use rpc_timing::{RpcStats, RpcTimingLayer};
