//! Big sweeps: trial output whose cost follows the change, reads beside writes, and results in
//! pages. A real coordinator on 127.0.0.1:0 with its SQLite store, Parquet read back.

mod common;

use common::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use sweep_coordinator::results;
use sweep_proto::v1 as pb;

fn widths(n: u32) -> Vec<u32> {
    (1..=n).collect()
}

/// Status of each trial in the rows, by trial id.
fn states(rows: &[results::TrialRow]) -> HashMap<String, String> {
    rows.iter().map(|r| (r.trial_id.clone(), r.status.clone())).collect()
}

/// The finished change parts, not a temporary being written.
fn change_parts(dir: &std::path::Path) -> Vec<String> {
    match std::fs::read_dir(dir.join(results::TRIAL_CHANGES_DIR)) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with("part-") && name.ends_with(".parquet"))
            .collect(),
        Err(_) => vec![],
    }
}

#[tokio::test]
async fn between_rewrites_only_the_trials_that_changed_are_written() {
    let env = Env::new(LONG_TTL);
    // Never due on time: the table is written whole only once the sweep is done, or on a flush.
    let config = sweep_coordinator::CoordinatorConfig { trials_rewrite_spacing: u32::MAX, ..env.config() };
    let c = Coordinator::connect(sweep_coordinator::start(&config).await.unwrap()).await;
    c.submit(sweep("big", &widths(6), "")).await.unwrap();
    let dir = env.sweep_dir("big");
    let table = dir.join(results::TRIALS_FILE);
    let first = eventually("the first trials.parquet", || async {
        table.exists().then(|| results::read_trials_table(&table).unwrap())
    })
    .await;
    assert_eq!(first.len(), 6);
    assert!(first.iter().all(|r| r.status == "pending"));

    let mut agent = c.agent("node", 2).await;
    let leases = agent.lease(2, 0).await;
    assert_eq!(leases.len(), 2);
    let leased: Vec<String> = leases.iter().map(|l| l.trial.as_ref().unwrap().trial_id.clone()).collect();
    let rows = eventually("a change part with the two leased trials", || async {
        let parts = change_parts(&dir);
        (!parts.is_empty()).then(|| {
            let mut rows = Vec::new();
            for p in parts {
                rows.extend(results::read_trials_table(&dir.join(results::TRIAL_CHANGES_DIR).join(p)).unwrap());
            }
            rows
        })
    })
    .await;
    let mut changed: Vec<String> = rows.iter().map(|r| r.trial_id.clone()).collect();
    changed.sort();
    let mut expected = leased.clone();
    expected.sort();
    assert_eq!(changed, expected, "only the leased trials are in the change parts");
    assert!(rows.iter().all(|r| r.status == "leased" && r.version > first[0].version));
    // The table is as it was; the current view has the change.
    assert!(results::read_trials_table(&table).unwrap().iter().all(|r| r.status == "pending"));
    let now = states(&results::read_current_trials(&dir).unwrap());
    assert_eq!(now.len(), 6);
    for id in &leased {
        assert_eq!(now[id], "leased");
    }

    // Once nothing is left to run, the table is whole again and the parts are gone.
    for l in &leases {
        agent.exit(l.lease_id, 0, "").await.unwrap();
    }
    loop {
        let more = agent.lease(2, 0).await;
        if more.is_empty() {
            break;
        }
        for l in more {
            agent.exit(l.lease_id, 0, "").await.unwrap();
        }
    }
    eventually("trials.parquet with every trial succeeded", || async {
        let rows = results::read_trials_table(&table).ok()?;
        (rows.len() == 6 && rows.iter().all(|r| r.status == "succeeded")).then_some(())
    })
    .await;
    eventually("no change parts left", || async { change_parts(&dir).is_empty().then_some(()) }).await;
    let store_version = c.running.shared().read(|s, _| Ok(s.cursors()?[0].trials_version)).await.unwrap();
    assert_eq!(results::trials_table_version(&dir).unwrap(), Some(store_version));
}

#[tokio::test]
async fn heartbeats_do_not_count_as_changes() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("beats", &[1], "")).await.unwrap();
    let mut agent = c.agent("node", 1).await;
    let lease = agent.lease_one().await;
    agent.heartbeat(lease.lease_id, true).await;
    let version = |c: &Coordinator| {
        let shared = c.running.shared().clone();
        async move { shared.read(|s, _| Ok(s.cursors()?[0].trials_version)).await.unwrap() }
    };
    let running = version(&c).await;
    for _ in 0..3 {
        agent.heartbeat(lease.lease_id, true).await;
    }
    assert_eq!(version(&c).await, running, "a heartbeat that changes nothing users see stamps nothing");
    agent.exit(lease.lease_id, 0, "").await.unwrap();
    assert!(version(&c).await > running);
}

#[tokio::test]
async fn results_and_status_come_in_pages_that_cover_every_trial_once() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("paged", &widths(25), "")).await.unwrap();
    let mut ids = Vec::new();
    let mut offset = 0;
    let mut pages = 0;
    loop {
        let page = c
            .sweeps
            .clone()
            .get_results(pb::GetResultsRequest { sweep_id: "paged".into(), offset, limit: 10 })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.trials.len() <= 10);
        for (i, t) in page.trials.iter().enumerate() {
            assert_eq!(u64::from(t.index), offset + i as u64, "indexes are queue positions");
        }
        ids.extend(page.trials.into_iter().map(|t| t.trial_id));
        if page.next_offset == 0 {
            break;
        }
        offset = page.next_offset;
    }
    assert_eq!(pages, 3);
    let whole: Vec<String> = c.get("paged").await.trials.into_iter().map(|t| t.trial_id).collect();
    assert_eq!(ids, whole, "the pages are the queue, in order, each trial once");

    let status = c
        .sweeps
        .clone()
        .get_sweep(pb::GetSweepRequest { sweep_id: "paged".into(), trials_offset: 20, trials_limit: 10 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.trials.len(), 5);
    assert_eq!(status.trials_next_offset, 0);
    assert_eq!(status.summary.unwrap().total, 25, "the summary counts the whole sweep");
    let past_the_end = c
        .sweeps
        .clone()
        .get_results(pb::GetResultsRequest { sweep_id: "paged".into(), offset: u64::MAX, limit: u32::MAX })
        .await
        .unwrap()
        .into_inner();
    assert!(past_the_end.trials.is_empty() && past_the_end.next_offset == 0);
}

#[tokio::test]
async fn reads_are_answered_while_a_write_holds_the_store() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("busy", &widths(3), "")).await.unwrap();
    let writing = Arc::new(AtomicBool::new(true));
    let flag = writing.clone();
    let shared = c.running.shared().clone();
    let write = tokio::spawn(async move {
        shared
            .write(move |_, _| {
                std::thread::sleep(Duration::from_secs(4));
                flag.store(false, Ordering::SeqCst);
                Ok(())
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = c.get("busy").await;
    let results = c
        .sweeps
        .clone()
        .get_results(pb::GetResultsRequest { sweep_id: "busy".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(writing.load(Ordering::SeqCst), "status and results were answered before the write ended");
    assert_eq!((status.trials.len(), results.trials.len()), (3, 3));
    write.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_writes_the_table_whole_and_a_restart_removes_parts_it_covers() {
    let env = Env::new(LONG_TTL);
    let config = sweep_coordinator::CoordinatorConfig { trials_rewrite_spacing: u32::MAX, ..env.config() };
    let c = Coordinator::connect(sweep_coordinator::start(&config).await.unwrap()).await;
    c.submit(sweep("stop", &widths(4), "")).await.unwrap();
    let dir = env.sweep_dir("stop");
    eventually("the first trials.parquet", || async { dir.join(results::TRIALS_FILE).exists().then_some(()) }).await;
    let mut agent = c.agent("node", 1).await;
    agent.lease_one().await;
    let part = eventually("a change part", || async { change_parts(&dir).into_iter().next() }).await;
    let changes = dir.join(results::TRIAL_CHANGES_DIR);
    let leftover = std::fs::read(changes.join(&part)).unwrap();

    c.running.shutdown().await.unwrap();
    assert!(change_parts(&dir).is_empty(), "the last flush writes the table whole and removes the parts");
    let table = results::read_trials_table(&dir.join(results::TRIALS_FILE)).unwrap();
    assert_eq!(table.iter().filter(|r| r.status == "leased").count(), 1);

    // A part the table already covers, as a crash between the two writes leaves it.
    std::fs::write(changes.join(&part), leftover).unwrap();
    let again = Coordinator::connect(sweep_coordinator::start(&config).await.unwrap()).await;
    eventually("the covered part removed", || async { change_parts(&dir).is_empty().then_some(()) }).await;
    assert_eq!(results::read_current_trials(&dir).unwrap(), table);
    again.running.shutdown().await.unwrap();
}
