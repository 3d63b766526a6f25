//! Warnings about metrics an agent could not record: kept once per trial and field, bounded in
//! count and size whatever an agent sends, and shown with the trial's status.

mod common;

use common::{assert_status, sweep, Env, LONG_TTL};
use sweep_proto::v1 as pb;
use tonic::Code;

fn warning(field: &str, message: &str) -> pb::MetricWarning {
    pb::MetricWarning { field: field.into(), message: message.into() }
}

#[tokio::test]
async fn warnings_are_kept_once_per_field_and_bounded() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("noisy", &[1], "")).await.unwrap();
    let mut agent = c.agent("a", 1).await;
    let lease = agent.lease_one().await;
    let send = |warnings: Vec<pb::MetricWarning>| pb::ReportMetricsRequest {
        lease_id: lease.lease_id,
        session_secret: agent.secret.clone(),
        warnings,
        ..common::report(lease.lease_id, &[(1, &[("loss", 0.5)])])
    };

    // The first warning of a field is kept; the same field again is not repeated.
    let first = send(vec![warning("note", "expected a number, got \"hi\""), warning("", "a line was ignored: x")]);
    agent.client.report_metrics(first).await.unwrap();
    let again = send(vec![warning("note", "expected a number, got \"again\"")]);
    agent.client.report_metrics(again).await.unwrap();
    let shown = &c.get("noisy").await.trials[0].warnings;
    assert_eq!(shown, &["a line was ignored: x", "metric `note` skipped: expected a number, got \"hi\""]);

    // Huge text is cut; at most 16 fields are kept per trial, whatever arrives.
    let huge = send(vec![warning(&"f".repeat(100_000), &"m".repeat(100_000))]);
    agent.client.report_metrics(huge).await.unwrap();
    for batch in 0..4 {
        let many = (0..16).map(|i| warning(&format!("field{batch}_{i}"), "expected a number")).collect();
        agent.client.report_metrics(send(many)).await.unwrap();
    }
    let shown = c.get("noisy").await.trials[0].warnings.clone();
    assert_eq!(shown.len(), 16, "{shown:?}");
    let long = shown.iter().find(|w| w.contains("fff")).expect("the huge warning is kept, cut");
    assert!(long.len() < 1024, "{}", long.len());

    // More than 16 in one call is refused before anything is stored.
    let flood = (0..17).map(|i| warning(&format!("x{i}"), "y")).collect();
    assert_status(agent.client.report_metrics(send(flood)).await, Code::InvalidArgument, "warnings");
    c.running.shutdown().await.unwrap();
}
