//! RPC latency histograms, filled by a tower layer around the gRPC server so that every method is
//! measured the same way, without a line in any handler.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

/// Upper bounds of the latency buckets, in seconds: from a cached read to a slow fsync.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Latency of every gRPC method seen, by its path (`/sweep.v1.AgentService/Lease`).
#[derive(Default)]
pub struct RpcStats {
    by_method: Mutex<BTreeMap<String, Histogram>>,
}

impl RpcStats {
    pub fn observe(&self, method: &str, seconds: f64) {
        let mut map = self.by_method.lock().unwrap_or_else(|p| p.into_inner());
        let h = map.entry(method.to_string()).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// The histograms in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let map = self.by_method.lock().unwrap_or_else(|p| p.into_inner()).clone();
        out.push_str("# HELP sweep_rpc_duration_seconds Time to answer a gRPC call, by method.\n");
        out.push_str("# TYPE sweep_rpc_duration_seconds histogram\n");
        for (method, h) in &map {
            for (bound, count) in BUCKETS.iter().zip(h.counts) {
                let _ =
                    writeln!(out, "sweep_rpc_duration_seconds_bucket{{method=\"{method}\",le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(out, "sweep_rpc_duration_seconds_bucket{{method=\"{method}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "sweep_rpc_duration_seconds_sum{{method=\"{method}\"}} {}", h.sum);
            let _ = writeln!(out, "sweep_rpc_duration_seconds_count{{method=\"{method}\"}} {}", h.count);
        }
    }
}

/// Wraps the gRPC server's services and records each call's latency in [`RpcStats`].
#[derive(Clone)]
pub struct RpcTimingLayer(pub Arc<RpcStats>);

impl<S> tower::Layer<S> for RpcTimingLayer {
    type Service = Timed<S>;
    fn layer(&self, inner: S) -> Timed<S> {
        Timed { inner, stats: self.0.clone() }
    }
}

#[derive(Clone)]
pub struct Timed<S> {
    inner: S,
    stats: Arc<RpcStats>,
}

impl<S, B> tower::Service<http::Request<B>> for Timed<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_string();
        let stats = self.stats.clone();
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let result = answer.await;
            stats.observe(&method, started.elapsed().as_secs_f64());
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_rendered_per_method() {
        let stats = RpcStats::default();
        stats.observe("/sweep.v1.AgentService/Lease", 0.003);
        stats.observe("/sweep.v1.AgentService/Lease", 0.2);
        let mut text = String::new();
        stats.render(&mut text);
        assert!(
            text.contains("sweep_rpc_duration_seconds_bucket{method=\"/sweep.v1.AgentService/Lease\",le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("sweep_rpc_duration_seconds_bucket{method=\"/sweep.v1.AgentService/Lease\",le=\"0.25\"} 2"),
            "{text}"
        );
        assert!(text.contains("sweep_rpc_duration_seconds_count{method=\"/sweep.v1.AgentService/Lease\"} 2"), "{text}");
    }
}
