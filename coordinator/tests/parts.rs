//! Sweeps sent in parts (`SubmitSweepStream`) against a real coordinator on 127.0.0.1:0: a sweep
//! in many parts arrives whole and nothing of it is leased before its last part; agents are served
//! while parts arrive; a stream broken off leaves nothing, and sending again works.

mod common;

use common::{assert_status, sweep, Env, LONG_TTL, PATIENCE};
use std::time::{Duration, Instant};
use sweep_proto::submit::submit_in_parts;
use sweep_proto::v1 as pb;
use tokio::sync::mpsc;
use tonic::Code;

/// The parts of `req`, `per_part` trials each.
fn parts(req: pb::SubmitSweepRequest, per_part: usize) -> Vec<pb::SubmitSweepStreamRequest> {
    req.into_parts(per_part).collect()
}

/// A stream the test feeds part by part, and the call it makes, in flight.
fn open_stream(
    c: &common::Clients,
) -> (
    mpsc::Sender<pb::SubmitSweepStreamRequest>,
    tokio::task::JoinHandle<Result<pb::SubmitSweepStreamResponse, tonic::Status>>,
) {
    let (tx, rx) = mpsc::channel(4);
    let mut client = c.sweeps.clone();
    let call = tokio::spawn(async move {
        client.submit_sweep_stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await.map(|r| r.into_inner())
    });
    (tx, call)
}

/// Rows of the store's staging tables, read from its SQLite file.
fn staged_rows(env: &Env) -> (i64, i64) {
    let conn = rusqlite::Connection::open(env.config().state.join("state.db")).unwrap();
    let count = |table: &str| conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0)).unwrap();
    (count("uploads"), count("upload_trials"))
}

/// The request spells out its defaults: GetSweep takes paging fields beside the sweep's name.
#[allow(clippy::needless_update)]
async fn sweep_exists(c: &common::Clients, name: &str) -> bool {
    match c.sweeps.clone().get_sweep(pb::GetSweepRequest { sweep_id: name.into(), ..Default::default() }).await {
        Ok(_) => true,
        Err(s) if s.code() == Code::NotFound => false,
        Err(s) => panic!("get sweep {name}: {s:?}"),
    }
}

#[tokio::test]
async fn a_sweep_in_many_parts_arrives_whole_and_again_adds_nothing() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let widths: Vec<u32> = (1..=250).collect();
    let req = sweep("many", &widths, "");
    let first = submit_in_parts(&mut c.sweeps.clone(), req.clone(), 7).await.unwrap();
    assert_eq!((first.sweep_id.as_str(), first.trials_added, first.trials_total), ("many", 250, 250));
    let ids: Vec<String> = c.trial_states("many").await.into_iter().map(|(id, _, _)| id).collect();
    let sent: Vec<String> = req.trials.iter().map(|t| t.trial_id.clone()).collect();
    assert_eq!(ids, sent, "every trial once, queued in the file's order");
    assert_eq!(staged_rows(&env), (0, 0), "nothing stays staged");

    let again = submit_in_parts(&mut c.sweeps.clone(), req.clone(), 7).await.unwrap();
    assert_eq!((again.trials_added, again.trials_total), (0, 250), "the same file in parts adds nothing");
    let whole = c.submit(req).await.unwrap();
    assert_eq!((whole.trials_added, whole.trials_total), (0, 250), "nor in one message");

    // A wider grid adds only its new trials, queued after the stored ones.
    let wider: Vec<u32> = (1..=260).collect();
    let more = submit_in_parts(&mut c.sweeps.clone(), sweep("many", &wider, ""), 7).await.unwrap();
    assert_eq!((more.trials_added, more.trials_total), (10, 260));
    let widths_queued: Vec<String> = c.get("many").await.trials.into_iter().map(|t| t.params_json).skip(250).collect();
    assert!(
        widths_queued.iter().all(|p| p.contains("\"width\":25") || p.contains("\"width\":26")),
        "{widths_queued:?}"
    );

    let mut agent = c.agent("a", 300).await;
    assert_eq!(agent.lease(300, 0).await.len(), 260, "every trial is leasable once the sweep is in");
}

#[tokio::test]
async fn nothing_is_leased_before_the_last_part_and_agents_are_served_meanwhile() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let mut agent = c.agent("a", 4).await;
    c.submit(sweep("other", &[1], "")).await.unwrap();
    let held = agent.lease_one().await;

    let widths: Vec<u32> = (1..=30).collect();
    let mut parts = parts(sweep("late", &widths, ""), 10).into_iter();
    let (tx, call) = open_stream(&c);
    tx.send(parts.next().unwrap()).await.unwrap();
    tx.send(parts.next().unwrap()).await.unwrap();
    // Two parts in, the third not sent: the coordinator waits for it without holding its store.
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        let started = Instant::now();
        let command = agent.heartbeat(held.lease_id, true).await;
        assert_eq!(command.action, pb::LeaseAction::Continue as i32);
        assert!(started.elapsed() < PATIENCE, "a heartbeat waited {:?} for a submission", started.elapsed());
        assert!(agent.lease(4, 0).await.is_empty(), "no trial of a sweep still arriving is leased");
        assert!(!sweep_exists(&c, "late").await, "a sweep still arriving is not listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!call.is_finished(), "the submission waits for its last part");
    tx.send(parts.next().unwrap()).await.unwrap();
    drop(tx);
    let done = call.await.unwrap().unwrap();
    assert_eq!((done.trials_added, done.trials_total), (30, 30));
    assert_eq!(agent.lease(4, 0).await.len(), 4, "its trials are leased once it is in");
}

#[tokio::test]
async fn heartbeats_are_answered_while_a_large_sweep_is_stored() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let mut agent = c.agent("a", 1).await;
    c.submit(sweep("other", &[1], "")).await.unwrap();
    let held = agent.lease_one().await;

    let widths: Vec<u32> = (1..=20_000).collect();
    let req = sweep("large", &widths, "");
    let mut client = c.sweeps.clone();
    let submission = tokio::spawn(async move { submit_in_parts(&mut client, req, 2_000).await });
    let mut answered_during = 0;
    let mut slowest = Duration::ZERO;
    while !submission.is_finished() {
        let started = Instant::now();
        agent.heartbeat(held.lease_id, true).await;
        slowest = slowest.max(started.elapsed());
        if !submission.is_finished() {
            answered_during += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let done = submission.await.unwrap().unwrap();
    assert_eq!((done.trials_added, done.trials_total), (20_000, 20_000));
    eprintln!("{answered_during} heartbeats answered while 20,000 trials were stored; the slowest took {slowest:?}");
    assert!(answered_during >= 3, "only {answered_during} heartbeats were answered while the sweep was stored");
    assert!(slowest < PATIENCE, "a heartbeat waited {slowest:?}");
}

#[tokio::test]
async fn a_stream_broken_off_leaves_nothing_and_sending_again_works() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let mut agent = c.agent("a", 40).await;
    let widths: Vec<u32> = (1..=30).collect();
    let req = sweep("cut", &widths, "");

    // The client goes away after two of three parts.
    let mut sent = parts(req.clone(), 10).into_iter();
    let (tx, call) = open_stream(&c);
    tx.send(sent.next().unwrap()).await.unwrap();
    tx.send(sent.next().unwrap()).await.unwrap();
    let until = Instant::now() + PATIENCE;
    while staged_rows(&env).1 < 20 {
        assert!(Instant::now() < until, "the two parts were never staged: {:?}", staged_rows(&env));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    call.abort();
    drop(tx);
    let until = Instant::now() + PATIENCE;
    while staged_rows(&env) != (0, 0) {
        assert!(Instant::now() < until, "a broken-off upload stays staged: {:?}", staged_rows(&env));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!sweep_exists(&c, "cut").await);
    assert!(agent.lease(40, 0).await.is_empty(), "nothing of it is leased");

    // A stream that ends before every announced trial arrived is refused, and stores nothing.
    let mut short = parts(req.clone(), 10);
    short.pop();
    assert_status(
        c.sweeps.clone().submit_sweep_stream(tokio_stream::iter(short)).await,
        Code::InvalidArgument,
        "announced 30 trials, the parts carried 20",
    );
    assert!(!sweep_exists(&c, "cut").await);
    // Its staged trials are dropped once the refusal is sent.
    let until = Instant::now() + PATIENCE;
    while staged_rows(&env) != (0, 0) {
        assert!(Instant::now() < until, "a refused upload stays staged: {:?}", staged_rows(&env));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let again = submit_in_parts(&mut c.sweeps.clone(), req, 10).await.unwrap();
    assert_eq!((again.trials_added, again.trials_total), (30, 30), "sending again stores the whole sweep");
    assert_eq!(agent.lease(40, 0).await.len(), 30);
}

#[tokio::test]
async fn a_changed_definition_in_a_later_part_is_refused_unless_forced() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let widths: Vec<u32> = (1..=30).collect();
    submit_in_parts(&mut c.sweeps.clone(), sweep("terms", &widths, ""), 10).await.unwrap();

    // Only the last part's trials run another command.
    let mut changed = sweep("terms", &widths, "");
    let other = sweep("terms", &widths, "").trials.into_iter().map(|mut t| {
        t.command = vec!["train2".into()];
        let params = serde_json::from_str::<serde_json::Value>(&t.params_json).unwrap();
        let id = sweep_spec::TrialSpec::content_id(
            &t.workload,
            Some(t.command.as_slice()),
            params.as_object().unwrap(),
            None,
        );
        t.trial_id = id.0;
        t
    });
    changed.trials.splice(20.., other.skip(20));
    assert_status(
        submit_in_parts(&mut c.sweeps.clone(), changed.clone(), 10).await,
        Code::FailedPrecondition,
        "trial definitions",
    );
    assert_eq!(c.counts("terms").await.pending, 30, "a refused resubmission adds nothing");
    assert_eq!(staged_rows(&env), (0, 0));
    let forced =
        submit_in_parts(&mut c.sweeps.clone(), pb::SubmitSweepRequest { force: true, ..changed }, 10).await.unwrap();
    assert_eq!((forced.trials_added, forced.trials_total), (10, 40));
}

#[tokio::test]
async fn parts_over_their_bounds_are_refused() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let head = pb::SubmitSweepRequest { trials: Vec::new(), ..sweep("b", &[1], "") };
    let send = |parts: Vec<pb::SubmitSweepStreamRequest>| {
        let mut client = c.sweeps.clone();
        async move { client.submit_sweep_stream(tokio_stream::iter(parts)).await.map(|r| r.into_inner()) }
    };
    let limit = sweep_proto::submit::TRIALS_PER_PART;
    let too_many = vec![pb::Trial::default(); limit + 1];
    assert_status(
        send(vec![pb::SubmitSweepStreamRequest {
            sweep: Some(head.clone()),
            trials: too_many,
            trials_in_all: limit as u32 + 1,
        }])
        .await,
        Code::InvalidArgument,
        &format!("at most {limit} trials in one part, got {}", limit + 1),
    );
    let max = sweep_spec::expand::MAX_TRIALS;
    assert_status(
        send(vec![pb::SubmitSweepStreamRequest {
            sweep: Some(head.clone()),
            trials: vec![],
            trials_in_all: max as u32 + 1,
        }])
        .await,
        Code::InvalidArgument,
        "trials_in_all",
    );
    let one = sweep("b", &[1, 2], "").trials;
    assert_status(
        send(vec![pb::SubmitSweepStreamRequest { sweep: Some(head.clone()), trials: one.clone(), trials_in_all: 1 }])
            .await,
        Code::InvalidArgument,
        "announced 1 trials, the parts carry more",
    );
    assert_status(
        send(vec![
            pb::SubmitSweepStreamRequest { sweep: Some(head.clone()), trials: one[..1].to_vec(), trials_in_all: 2 },
            pb::SubmitSweepStreamRequest { sweep: Some(head.clone()), trials: one[1..].to_vec(), trials_in_all: 0 },
        ])
        .await,
        Code::InvalidArgument,
        "in the first part only",
    );
    assert_status(send(vec![]).await, Code::InvalidArgument, "expected the sweep in the first part");
    assert_status(
        send(vec![pb::SubmitSweepStreamRequest { sweep: None, trials: one.clone(), trials_in_all: 2 }]).await,
        Code::InvalidArgument,
        "expected the sweep in the first part",
    );

    // Uploads in flight are bounded: one more waits its turn.
    let in_flight = sweep_coordinator::limits::MAX_UPLOADS_IN_FLIGHT;
    let mut open = Vec::new();
    for i in 0..in_flight {
        let mut p = parts(sweep(&format!("open-{i}"), &[1, 2, 3], ""), 1).into_iter();
        let (tx, call) = open_stream(&c);
        tx.send(p.next().unwrap()).await.unwrap();
        tx.send(p.next().unwrap()).await.unwrap();
        open.push((tx, call, p));
    }
    let until = Instant::now() + PATIENCE;
    while staged_rows(&env).0 < in_flight as i64 {
        assert!(Instant::now() < until, "uploads never began: {:?}", staged_rows(&env));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_status(
        submit_in_parts(&mut c.sweeps.clone(), sweep("one-more", &[1, 2, 3], ""), 1).await,
        Code::ResourceExhausted,
        "send this one again",
    );
    for (tx, call, rest) in open {
        for part in rest {
            tx.send(part).await.unwrap();
        }
        drop(tx);
        assert_eq!(call.await.unwrap().unwrap().trials_added, 3);
    }
    let later = submit_in_parts(&mut c.sweeps.clone(), sweep("one-more", &[1, 2, 3], ""), 1).await.unwrap();
    assert_eq!(later.trials_added, 3);
}
