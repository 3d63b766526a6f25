//! `init` exports spans over OTLP/gRPC only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Each case
//! runs `init` in a child process (this test binary again, running only `child`), because it
//! installs a process-wide subscriber and reads the environment; an OTLP trace receiver in the
//! test records what arrives.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Set in the child's environment: run `child` for real. Its value is whether `init` should be
/// exporting ("1") or not ("0").
const CHILD_ENV: &str = "SWEEP_TELEMETRY_TEST_CHILD";
const SERVICE: &str = "sweep-telemetry-test";

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: Option<String>,
    name: String,
    attributes: Vec<KeyValue>,
}

/// A minimal OTLP trace receiver that keeps every span it is sent.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<ReceivedSpan>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans.resource.as_ref().and_then(|r| string_attr(&r.attributes, "service.name"));
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push(ReceivedSpan { service: service.clone(), name: span.name, attributes: span.attributes });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn string_attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    })
}

fn int_attr(attributes: &[KeyValue], key: &str) -> Option<i64> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
        any_value::Value::IntValue(i) => Some(*i),
        _ => None,
    })
}

/// Starts the receiver on 127.0.0.1:0 on `runtime` and returns its URL and what it has received.
fn start_receiver(runtime: &tokio::runtime::Runtime) -> (String, Receiver) {
    let receiver = Receiver::default();
    let incoming = runtime.block_on(async {
        tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).expect("bind the OTLP receiver")
    });
    let url = format!("http://{}", incoming.local_addr().expect("receiver address"));
    let service = TraceServiceServer::new(receiver.clone());
    runtime.spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming));
    (url, receiver)
}

/// Runs `child` in a fresh process with `env` (and no OTEL_* variables from this environment)
/// and checks that it passed, within a bound: telemetry must never hold a binary up for long.
fn run_child(expect_export: bool, env: &[(&str, &str)]) {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, if expect_export { "1" } else { "0" });
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("OTEL_")) {
        cmd.env_remove(key);
    }
    cmd.envs(env.iter().copied());
    let start = Instant::now();
    let out = cmd.output().expect("run the child test");
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(start.elapsed() < Duration::from_secs(20), "child took {:?}", start.elapsed());
}

/// Waits a few seconds for a span named `name` to arrive.
fn wait_for_span(receiver: &Receiver, name: &str) -> ReceivedSpan {
    let start = Instant::now();
    loop {
        if let Some(span) = receiver.0.lock().unwrap().iter().find(|s| s.name == name) {
            return span.clone();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no span {name:?}; got {:?}", receiver.0.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The child side: `init` inside a multi-threaded runtime, one span, then the guard is dropped
/// and the process ends, so the span arrives only if the guard flushes it.
#[test]
fn child() {
    let Ok(expect_export) = std::env::var(CHILD_ENV) else { return };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let guard = sweep_telemetry::init(SERVICE, "info");
        assert_eq!(guard.exporting(), expect_export == "1", "exporting with {CHILD_ENV}={expect_export}");
        tracing::info_span!("child_work", answer = 42).in_scope(|| tracing::info!("inside the span"));
        // A span below the filter is not exported.
        tracing::debug_span!("filtered_out").in_scope(|| {});
        drop(guard);
    });
}

#[test]
fn spans_reach_the_collector_as_the_binary_named_service() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, receiver) = start_receiver(&runtime);
    run_child(true, &[("OTEL_EXPORTER_OTLP_ENDPOINT", &url)]);
    let span = wait_for_span(&receiver, "child_work");
    assert_eq!(span.service.as_deref(), Some(SERVICE));
    assert_eq!(int_attr(&span.attributes, "answer"), Some(42));
    assert!(receiver.0.lock().unwrap().iter().all(|s| s.name != "filtered_out"), "SWEEP_LOG filters spans too");
}

#[test]
fn otel_service_name_overrides_the_binary_name() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (url, receiver) = start_receiver(&runtime);
    run_child(true, &[("OTEL_EXPORTER_OTLP_ENDPOINT", &url), ("OTEL_SERVICE_NAME", "renamed")]);
    assert_eq!(wait_for_span(&receiver, "child_work").service.as_deref(), Some("renamed"));
}

#[test]
fn no_endpoint_means_no_exporter() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_url, receiver) = start_receiver(&runtime);
    run_child(false, &[]);
    run_child(false, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "")]);
    assert!(receiver.0.lock().unwrap().is_empty());
}

#[test]
fn a_collector_that_is_down_does_not_fail_or_hang_the_binary() {
    // Bind and drop a port so nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    run_child(true, &[("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://127.0.0.1:{port}"))]);
}
