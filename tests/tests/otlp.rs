//! OpenTelemetry export from the real `sweep-coordinator`: with `OTEL_EXPORTER_OTLP_ENDPOINT`
//! pointing at an OTLP trace receiver in this test, the span of a `sweep submit` arrives as
//! service `sweep-coordinator`, flushed by the SIGTERM drain at the latest.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SWEEP: &str = r#"
name = "otlp"
workload = "mlp"
[params]
n = 60
n_test = 60
dim = 5
[grid]
width = [8, 16]
"#;

/// A minimal OTLP trace receiver: keeps (service.name, span name) of every span it is sent.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<(String, String)>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push((service.clone(), span.name));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[test]
fn the_coordinator_exports_its_rpc_spans_over_otlp() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = Receiver::default();
    let incoming = runtime.block_on(async {
        tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).expect("bind the OTLP receiver")
    });
    let endpoint = format!("http://{}", incoming.local_addr().unwrap());
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(incoming),
    );

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut child = Command::new(bin("sweep-coordinator"))
        .args(["--listen", "127.0.0.1:0"])
        .arg("--state")
        .arg(root.join("state"))
        .arg("--results")
        .arg(root.join("results"))
        .env("SWEEP_LOG", "info")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_SERVICE_NAME")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(root.join("coordinator.log")).unwrap())
        .spawn()
        .expect("start sweep-coordinator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("address line");
    let url = format!("http://{}", line.trim().rsplit(' ').next().expect("address"));
    let mut coordinator = Proc(child);

    let file = root.join("otlp.toml");
    std::fs::write(&file, SWEEP).unwrap();
    assert_eq!(stdout_of(&sweep(&url, &["submit", file.to_str().unwrap()])).trim(), "otlp");

    // SIGTERM: the drain ends `main`, whose telemetry guard flushes the batch still queued.
    unsafe { libc::kill(coordinator.0.id() as i32, libc::SIGTERM) };
    let status = coordinator.0.wait().unwrap();
    let log = || std::fs::read_to_string(root.join("coordinator.log")).unwrap_or_default();
    assert!(status.success(), "coordinator exited with {status}\n{}", log());

    let start = Instant::now();
    loop {
        let spans = receiver.0.lock().unwrap().clone();
        let submit = spans.iter().find(|(_, name)| name.to_lowercase().contains("submit"));
        if let Some((service, _)) = submit {
            assert_eq!(service, "sweep-coordinator", "{spans:?}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "no submit span arrived; got {spans:?}\n{}", log());
        std::thread::sleep(Duration::from_millis(50));
    }
}
