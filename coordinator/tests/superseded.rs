//! Rows a retry re-reported are marked `superseded` in the Parquet parts already written, and a
//! restarted coordinator marks what it had no time to (a crash between the two writes, or parts
//! from before the column), so `WHERE NOT superseded` counts each epoch once.

mod common;

use common::{sweep, Env, LONG_TTL};
use sweep_coordinator::results::{self, MetricRow};

/// (attempt, epoch, superseded) of each `loss` row, in file order.
fn marks(rows: &[MetricRow]) -> Vec<(i32, i32, bool)> {
    rows.iter().filter(|r| r.metric == "loss").map(|r| (r.attempt, r.epoch, r.superseded)).collect()
}

#[tokio::test]
async fn a_retry_marks_the_rows_it_re_reported_even_across_a_restart() {
    let env = Env::new(LONG_TTL);
    let before = env.start().await;
    before.submit(sweep("flaky", &[1], "[retry]\nmax_attempts = 2\nbackoff = \"0s\"\n")).await.unwrap();
    let mut agent = before.agent("a", 1).await;
    let first = agent.lease_one().await;
    let two: &[(u32, &[(&str, f64)])] = &[(0, &[("loss", 1.0), ("acc", 0.1)]), (1, &[("loss", 0.8)])];
    agent.report(first.lease_id, two).await.unwrap();
    before.running.flush().await.unwrap();
    assert_eq!(agent.exit(first.lease_id, 1, "flaky node").await.unwrap(), "pending");

    // The retry re-reports epoch 1 only (it resumed from a checkpoint after epoch 0), then epoch 2.
    let second = agent.lease_one().await;
    assert_eq!(second.attempt, 2);
    let again: &[(u32, &[(&str, f64)])] = &[(1, &[("loss", 0.7)]), (2, &[("loss", 0.5)])];
    agent.report(second.lease_id, again).await.unwrap();
    before.running.flush().await.unwrap();
    let rows = env.parquet_metrics("flaky");
    assert_eq!(marks(&rows), [(1, 0, false), (1, 1, true), (2, 1, false), (2, 2, false)]);
    assert!(rows.iter().filter(|r| r.metric == "acc").all(|r| !r.superseded), "acc of epoch 0 was not re-reported");

    // A late row of attempt 1 (its agent was cut off) arrives after the retry's: marked as written.
    agent.report(first.lease_id, &[(2, &[("loss", 0.9)])]).await.unwrap();
    before.running.flush().await.unwrap();
    let rows = env.parquet_metrics("flaky");
    assert_eq!(marks(&rows).last(), Some(&(1, 2, true)));
    before.running.shutdown().await.unwrap();

    // Unmark every part, as a crash before the rewrite (or a release before the column) leaves them.
    let dir = env.sweep_dir("flaky");
    for part in results::metric_parts(&dir, false).unwrap() {
        let unmarked: Vec<_> = results::read_metrics(&dir)
            .unwrap()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| (part.first_seq..=part.last_seq).contains(&(*i as i64 + 1)))
            .map(|(_, r)| MetricRow { superseded: false, ..r })
            .collect();
        results::write_metrics_part(&dir, part.first_seq, part.last_seq, &unmarked).unwrap();
    }
    assert!(env.parquet_metrics("flaky").iter().all(|r| !r.superseded));

    let after = env.start().await;
    after.running.flush().await.unwrap();
    let rows = env.parquet_metrics("flaky");
    assert_eq!(marks(&rows), [(1, 0, false), (1, 1, true), (2, 1, false), (2, 2, false), (1, 2, true)]);
    let parts = results::metric_parts(&dir, true).unwrap();
    assert_eq!(parts.iter().map(|p| p.superseded_rows.unwrap()).sum::<usize>(), 2, "{parts:?}");
    after.running.shutdown().await.unwrap();
}
