//! The one tracing setup of the sweep binaries: human-readable logs on stderr filtered by
//! `SWEEP_LOG`, plus spans exported over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//! Telemetry is best effort: an exporter that cannot be built is a warning, never a failed sweep.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::SpanExporter;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

/// Turns span export on; its value is the collector's gRPC address (`http://host:4317`).
pub const ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// Overrides the `service.name` a binary reports itself as.
pub const SERVICE_NAME_ENV: &str = "OTEL_SERVICE_NAME";
/// The log filter (`info`, `sweep_coordinator=debug,warn`, ...).
pub const LOG_ENV: &str = "SWEEP_LOG";

/// How long the guard waits for the last spans to reach the collector. A collector that is down
/// must not hold up a coordinator that was asked to stop.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Installs the global subscriber: logs to stderr with the filter from `SWEEP_LOG` (or
/// `default_filter`), and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans batched to that OTLP
/// collector as `service_name` (or `OTEL_SERVICE_NAME`). Call once per binary, inside a
/// multi-threaded tokio runtime when export may be on: the gRPC exporter runs its connection on
/// that runtime. Keep the guard alive until the binary ends; dropping it flushes the last spans.
pub fn init(service_name: &'static str, default_filter: &str) -> TelemetryGuard {
    let filter = EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new(default_filter));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(colour_logs());

    let endpoint = otlp_endpoint(std::env::var(ENDPOINT_ENV).ok());
    let (provider, export_error) = match &endpoint {
        None => (None, None),
        Some(endpoint) => match tracer_provider(service_name, endpoint) {
            Ok(provider) => (Some(provider), None),
            Err(e) => (None, Some(e)),
        },
    };
    let otel = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service_name)));

    if let Err(e) = tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init() {
        // Only a second `init` in one process gets here; the first subscriber keeps working.
        eprintln!("warning: tracing was already set up, keeping the first setup: {e}");
    }
    match (&endpoint, &export_error) {
        (Some(endpoint), Some(error)) => {
            tracing::warn!(%endpoint, %error, "not exporting spans: could not build the OTLP exporter")
        }
        (Some(endpoint), None) => tracing::debug!(%endpoint, "exporting spans over OTLP/gRPC"),
        (None, _) => {}
    }
    TelemetryGuard { provider }
}

/// Colours only for a person at a terminal: logs sent to a file or a pipe stay plain text, and
/// `NO_COLOR` (no-color.org) turns them off everywhere.
fn colour_logs() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Flushes the spans still batched and shuts the exporter down when dropped, so a short CLI
/// call or a SIGTERM'd coordinator does not lose its last spans. Without export it does nothing.
#[must_use = "dropping the guard at once shuts span export down"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are being exported (the endpoint was set and the exporter built).
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let Some(provider) = self.provider.take() else { return };
        let shutdown = move || provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
        // The export itself runs on the runtime's workers; when this thread is one of them, hand
        // its work to another thread while we wait, or the flush could wait on itself.
        let result = match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(shutdown)
            }
            _ => shutdown(),
        };
        if let Err(error) = result {
            tracing::warn!(%error, "could not flush the last spans to the OTLP collector");
        }
    }
}

/// The collector address from `OTEL_EXPORTER_OTLP_ENDPOINT`; unset or blank means no export.
fn otlp_endpoint(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// The `service.name` to report: `OTEL_SERVICE_NAME` when set, else the binary's own name.
fn service_name_for(binary: &'static str, from_env: Option<String>) -> String {
    from_env.map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).unwrap_or_else(|| binary.to_string())
}

/// A tracer provider that batches spans to the OTLP/gRPC collector. The exporter reads its address
/// and options from the standard `OTEL_EXPORTER_OTLP_*` variables (`endpoint` is only named in
/// errors). The batch processor exports from its own thread; the tonic channel it uses lives on
/// the current runtime.
fn tracer_provider(service_name: &'static str, endpoint: &str) -> Result<SdkTracerProvider, String> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err("no tokio runtime is running (init must be called inside one)".into());
    }
    let exporter =
        SpanExporter::builder().with_tonic().build().map_err(|e| format!("OTLP exporter for {endpoint}: {e}"))?;
    let resource = Resource::builder()
        .with_service_name(service_name_for(service_name, std::env::var(SERVICE_NAME_ENV).ok()))
        .build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_or_missing_endpoint_turns_export_off() {
        assert_eq!(otlp_endpoint(None), None);
        assert_eq!(otlp_endpoint(Some("  ".into())), None);
        assert_eq!(otlp_endpoint(Some(" http://127.0.0.1:4317 ".into())).as_deref(), Some("http://127.0.0.1:4317"));
    }

    #[test]
    fn otel_service_name_overrides_the_binary_name() {
        assert_eq!(service_name_for("sweep-agent", None), "sweep-agent");
        assert_eq!(service_name_for("sweep-agent", Some("".into())), "sweep-agent");
        assert_eq!(service_name_for("sweep-agent", Some("node-7".into())), "node-7");
    }

    #[test]
    fn exporter_needs_a_runtime_and_says_so() {
        let Err(error) = tracer_provider("sweep-test", "http://127.0.0.1:4317") else {
            panic!("built an exporter with no runtime to run it")
        };
        assert!(error.contains("no tokio runtime"), "{error}");
    }
}
