//! Input validation at the coordinator's boundary: bad fields of every RPC are INVALID_ARGUMENT
//! naming the field, free text is truncated, unsafe sweep names never reach a folder, NaN and ±Inf
//! metrics survive to Parquet, and property tests feed arbitrary field values and arbitrary bytes
//! to the converters and checks, which must answer Ok or a Status and never panic.

mod common;

use common::{assert_status, eventually, report, sweep, Env, LONG_TTL};
use proptest::prelude::*;
use prost::Message;
use sweep_coordinator::convert;
use sweep_coordinator::limits::*;
use sweep_coordinator::results::{self, read_trials_table, TRIALS_FILE};
use sweep_proto::v1 as pb;
use tonic::{Code, Status};

#[tokio::test]
async fn nan_and_inf_reported_over_the_wire_come_back_out_of_parquet() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("naninf", &[1], "")).await.unwrap();
    let mut agent = c.agent("a", 1).await;
    let lease = agent.lease_one().await;
    let metrics: &[(&str, f64)] =
        &[("loss", f64::NAN), ("grad_norm", f64::INFINITY), ("log_p", f64::NEG_INFINITY), ("acc", 0.25)];
    let added = agent.report(lease.lease_id, &[(1, metrics)]).await.unwrap();
    assert_eq!(added.rows_added, 4);
    assert_eq!(agent.exit(lease.lease_id, 0, "").await.unwrap(), "succeeded");

    let rows = eventually("four metric rows in parquet", || async {
        let rows = results::read_metrics(&env.sweep_dir("naninf")).ok()?;
        (rows.len() == 4).then_some(rows)
    })
    .await;
    let value = |m: &str| rows.iter().find(|r| r.metric == m).unwrap_or_else(|| panic!("metric {m}")).value;
    assert!(value("loss").is_nan(), "NaN is stored as NULL and read back as NaN");
    assert_eq!(value("grad_norm"), f64::INFINITY);
    assert_eq!(value("log_p"), f64::NEG_INFINITY);
    assert_eq!(value("acc"), 0.25);

    let trials = eventually("the finished trial in trials.parquet", || async {
        let rows = read_trials_table(&env.sweep_dir("naninf").join(TRIALS_FILE)).ok()?;
        rows.into_iter().find(|r| r.status == "succeeded" && r.finals.len() == 4)
    })
    .await;
    assert!(trials.finals["loss"].is_nan());
    assert_eq!(trials.finals["grad_norm"], f64::INFINITY);
    assert_eq!(trials.finals["log_p"], f64::NEG_INFINITY);

    let results = c
        .sweeps
        .clone()
        .get_results(pb::GetResultsRequest { sweep_id: "naninf".into(), ..Default::default() })
        .await
        .unwrap();
    let finals = &results.into_inner().trials[0].finals;
    assert!(finals["loss"].is_nan());
    assert_eq!(finals["grad_norm"], f64::INFINITY);
}

#[tokio::test]
async fn unsafe_or_malformed_sweep_names_are_invalid_arguments_on_every_call() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    for bad in ["..", "../escape", "/tmp/abs", "a/b", ".hidden", "", &"x".repeat(MAX_SWEEP_NAME + 1)] {
        let mut req = sweep("placeholder", &[1], "");
        req.name = bad.to_string();
        assert_status(c.submit(req).await, Code::InvalidArgument, "name: expected 1 to 100 letters");
        let mut s = c.sweeps.clone();
        let id = || bad.to_string();
        assert_status(
            s.get_sweep(pb::GetSweepRequest { sweep_id: id(), ..Default::default() }).await,
            Code::InvalidArgument,
            "sweep_id",
        );
        assert_status(
            s.cancel_sweep(pb::CancelSweepRequest { sweep_id: id() }).await,
            Code::InvalidArgument,
            "sweep_id",
        );
        assert_status(
            s.get_results(pb::GetResultsRequest { sweep_id: id(), ..Default::default() }).await,
            Code::InvalidArgument,
            "sweep_id",
        );
        let watch = s.watch_sweep(pb::WatchSweepRequest { sweep_id: id() }).await.map(|_| ());
        assert_status(watch, Code::InvalidArgument, "sweep_id");
    }
    let entries: Vec<_> = std::fs::read_dir(env.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!entries.iter().any(|n| n == "escape" || n == "b"), "nothing was written next to the roots: {entries:?}");
    let mut s = c.sweeps.clone();
    assert_status(
        s.get_sweep(pb::GetSweepRequest { sweep_id: "nope".into(), ..Default::default() }).await,
        Code::NotFound,
        "nope",
    );
}

#[tokio::test]
async fn bad_trials_are_refused_with_their_position_and_field() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let base = sweep("trials", &[1, 2], "");
    type Spoil = fn(&mut pb::Trial);
    let cases: Vec<(Spoil, &str)> = vec![
        (|t| t.trial_id = "../../etc/passwd".into(), "trials[1]: trial_id: expected 16 lowercase hex digits"),
        (|t| t.trial_id = t.trial_id.to_uppercase(), "trials[1]: trial_id"),
        (|t| t.params_json = format!("{{\"p\":\"{}\"}}", "x".repeat(MAX_TRIAL_FIELD_BYTES)), "trials[1]: params_json"),
        (|t| t.command = vec!["y".repeat(MAX_TRIAL_FIELD_BYTES / 2); 3], "trials[1]: command"),
        (|t| t.data_json = "z".repeat(MAX_TRIAL_FIELD_BYTES + 1), "trials[1]: data_json"),
        (|t| t.gpus = 5000, "trials[1]: gpus: expected at most 64"),
        (|t| t.workload = String::new(), "trials[1]: workload"),
        (|t| t.params_json = "[1]".into(), "trials[1]: trial"),
        (|t| t.params_json = r#"{"": 1}"#.into(), "trials[1]: params_json: expected a parameter name"),
        (|t| t.params_json = r#"{"-x": 1}"#.into(), "trials[1]: params_json: expected a parameter name"),
        (|t| t.params_json = format!(r#"{{"{}": 1}}"#, "p".repeat(MAX_PARAM_NAME + 1)), "trials[1]: params_json"),
        (|t| t.params_json = r#"{"a-b": 1, "a_b": 2}"#.into(), "both become SWEEP_PARAM_A_B"),
        // A built-in workload's values are checked against its catalogue, whoever submits.
        (
            |t| {
                t.workload = "xmc_tree".into();
                t.params_json = r#"{"loss": "hinge"}"#.into();
            },
            r#"trials[1]: params_json: params.loss: expected one of "squared_hinge", "logistic", got "hinge""#,
        ),
        (|t| t.workload = "mlp".into(), "trials[1]: params_json: params.depth: missing"),
    ];
    for (spoil, needle) in cases {
        let mut req = base.clone();
        spoil(&mut req.trials[1]);
        assert_status(c.submit(req).await, Code::InvalidArgument, needle);
    }
    let mut req = base.clone();
    req.max_attempts = 0;
    assert_status(c.submit(req).await, Code::InvalidArgument, "max_attempts");
    let mut req = base.clone();
    req.source = "#".repeat(MAX_SOURCE_BYTES + 1);
    assert_status(c.submit(req).await, Code::InvalidArgument, "source: expected at most");
    assert_eq!(c.submit(base).await.unwrap().trials_added, 2, "the unspoiled sweep is accepted");
}

#[test]
fn more_trials_than_a_sweep_file_may_expand_to_are_refused_before_any_is_converted() {
    let mut req = sweep("many", &[1], "");
    let one = req.trials[0].clone();
    req.trials = vec![one; MAX_TRIALS_PER_SUBMIT + 1];
    let status = convert::sweep_from_wire(req).map(|_| ()).unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("trials: expected at most 1000000 trials"), "{}", status.message());
}

#[tokio::test]
async fn agent_calls_with_bad_fields_are_invalid_arguments_naming_the_field() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    let mut agent = c.agent("a", 2).await;
    let mut cl = agent.client.clone();
    let reg = |f: fn(&mut pb::RegisterRequest)| {
        let mut r = pb::RegisterRequest { name: "n".into(), hostname: "h".into(), slots: 1, gpus: vec!["0".into()] };
        f(&mut r);
        r
    };
    for (req, needle) in [
        (reg(|r| r.name = String::new()), "name: expected 1 to 256 bytes"),
        (reg(|r| r.name = "n".repeat(MAX_AGENT_NAME + 1)), "name"),
        (reg(|r| r.name = "bad\nname".into()), "name: expected text without control or bidirectional"),
        (reg(|r| r.name = "gpu\u{202E}exe.sh".into()), "name: expected text without control or bidirectional"),
        (reg(|r| r.name = "clear\x1b[2J".into()), "name: expected text without control"),
        (reg(|r| r.hostname = "host\u{2066}x\u{2069}".into()), "hostname: expected text without control"),
        (reg(|r| r.gpus = vec!["0\x1b]0;title\x07".into()]), "gpus[0]: expected text without control"),
        (reg(|r| r.hostname = "h".repeat(MAX_HOSTNAME + 1)), "hostname"),
        (reg(|r| r.slots = MAX_SLOTS + 1), "slots: expected at most 4096"),
        (reg(|r| r.gpus = vec!["0,1".into()]), "gpus[0]: expected a GPU id without ','"),
        (reg(|r| r.gpus = vec!["0".into(); MAX_GPUS as usize + 1]), "gpus: expected at most 4096"),
    ] {
        assert_status(cl.register(req).await, Code::InvalidArgument, needle);
    }

    let lease = |free_slots, free_gpus, agent_id: &str| pb::LeaseRequest {
        agent_id: agent_id.into(),
        free_slots,
        free_gpus,
        ..agent.lease_request()
    };
    assert_status(cl.lease(lease(MAX_SLOTS + 1, 0, &agent.id)).await, Code::InvalidArgument, "free_slots");
    assert_status(cl.lease(lease(1, MAX_GPUS + 1, &agent.id)).await, Code::InvalidArgument, "free_gpus");
    assert_status(cl.lease(lease(1, 0, "")).await, Code::InvalidArgument, "agent_id");
    assert_status(cl.lease(lease(1, 0, "ghost-7")).await, Code::NotFound, "ghost-7");
    // A session secret longer than any the coordinator hands out is refused before it is hashed,
    // and the message does not echo it.
    let long_secret = pb::LeaseRequest { session_secret: "s".repeat(MAX_SESSION_SECRET + 1), ..lease(1, 0, &agent.id) };
    let status = cl.lease(long_secret).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("session_secret") && !status.message().contains("sss"), "{}", status.message());
    let no_secret = pb::LeaseRequest { session_secret: String::new(), ..lease(1, 0, &agent.id) };
    assert_status(cl.lease(no_secret).await, Code::PermissionDenied, "session_secret");

    let many = vec![pb::LeaseState { lease_id: 1, running: false }; MAX_LEASES_PER_HEARTBEAT + 1];
    let hb = agent.heartbeat_request(many);
    assert_status(cl.heartbeat(hb).await, Code::InvalidArgument, "leases: expected at most 4096");

    c.submit(sweep("agentcalls", &[1], "")).await.unwrap();
    let l = agent.lease_one().await;
    let long_name = "m".repeat(MAX_METRIC_NAME + 1);
    assert_status(
        agent.report(l.lease_id, &[(1, &[("", 1.0)])]).await,
        Code::InvalidArgument,
        "epochs[0].metrics[0].name",
    );
    assert_status(
        agent.report(l.lease_id, &[(1, &[("ok", 1.0)]), (2, &[("ok", 1.0), (&long_name, 1.0)])]).await,
        Code::InvalidArgument,
        "epochs[1].metrics[1].name",
    );
    let too_many = (0..=MAX_EPOCHS_PER_REPORT as u32).map(|e| (e, &[("m", 1.0)][..])).collect::<Vec<_>>();
    assert_status(agent.report(l.lease_id, &too_many).await, Code::InvalidArgument, "epochs: expected at most 10000");
    for hostile in ["acc\x1b[2J", "acc\x1b]0;title\x07", "acc\u{202E}", "a\nb"] {
        let status = agent.report(l.lease_id, &[(1, &[("ok", 1.0), (hostile, 1.0)])]).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{hostile:?}");
        assert!(status.message().starts_with("epochs[0].metrics[1].name: expected text without control"), "{status:?}");
        assert!(
            !status.message().contains(['\x1b', '\x07', '\u{202E}', '\n']),
            "the refusal quotes it escaped: {status:?}"
        );
    }
    assert_status(agent.report(987_654, &[(1, &[("m", 1.0)])]).await, Code::FailedPrecondition, "987654");

    let bad_signal = pb::CompleteRequest { lease_id: l.lease_id, signal: Some(-3), ..Default::default() };
    assert_status(agent.complete(bad_signal).await, Code::InvalidArgument, "signal");
}

#[tokio::test]
async fn long_stderr_tails_and_launch_errors_are_truncated_not_refused() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("tails", &[1, 2], "[retry]\nmax_attempts = 1")).await.unwrap();
    let mut agent = c.agent("a", 2).await;
    let leases = agent.lease(2, 0).await;
    // Multi-byte characters around the cut, and the end that says why the process died.
    let tail = format!("{}{}THE END", "é".repeat(MAX_STDERR_TAIL), "x".repeat(MAX_STDERR_TAIL));
    assert_eq!(agent.exit(leases[0].lease_id, 1, &tail).await.unwrap(), "failed");
    let launch = pb::CompleteRequest {
        lease_id: leases[1].lease_id,
        launch_error: format!("START {}", "ü".repeat(MAX_LAUNCH_ERROR)),
        ..Default::default()
    };
    assert_eq!(agent.complete(launch).await.unwrap(), "failed");
    let trials = c.get("tails").await.trials;
    let by_id = |id: &str| trials.iter().find(|t| t.trial_id == id).unwrap().last_error.clone();
    let failed = by_id(&leases[0].trial.as_ref().unwrap().trial_id);
    assert!(failed.ends_with("THE END"), "the end of the tail is kept");
    assert!(failed.len() < MAX_STDERR_TAIL + 200, "the tail is cut to about 16 KiB, got {} bytes", failed.len());
    let launch_failed = by_id(&leases[1].trial.as_ref().unwrap().trial_id);
    assert!(launch_failed.contains("START"), "the start of a launch error is kept: {}", &launch_failed[..40]);
    assert!(launch_failed.len() < MAX_LAUNCH_ERROR + 200, "got {} bytes", launch_failed.len());
}

#[test]
fn truncation_keeps_the_right_end_at_a_character_boundary() {
    for n in 0..40 {
        let text: String = "aé€😀".chars().cycle().take(n).collect();
        for max in [0, 2, 4, 5, 6, 7, 10, 16] {
            let (mut tail, mut head) = (text.clone(), text.clone());
            convert::keep_tail(&mut tail, max);
            convert::keep_head(&mut head, max);
            if text.len() <= max {
                assert_eq!((&tail, &head), (&text, &text), "text within the limit is kept whole");
                continue;
            }
            assert!(tail.len() <= max && head.len() <= max, "{tail:?} {head:?} over {max}");
            assert!(text.ends_with(tail.trim_start_matches('…')), "{tail:?} is the end of {text:?}");
            assert!(text.starts_with(head.trim_end_matches('…')), "{head:?} is the start of {text:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Property tests: 256 cases each by default; PROPTEST_CASES raises it.
// ---------------------------------------------------------------------------------------------

/// Strings biased towards the boundaries the checks care about: empty, hex ids, path tricks,
/// control characters, multi-byte text and lengths around the limits.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9a-fA-F]{14,18}",
        prop::sample::select(vec!["", ".", "..", "/", "../x", "/etc/passwd", "a/b", "\0", "é", "{}", "null", "[]"])
            .prop_map(str::to_string),
        (0usize..4, prop::sample::select(vec![16usize, 100, 101, 256, 257, 4096, 16385, 65_537]))
            .prop_map(|(c, n)| ["a", "é", ",", "\n"][c].repeat(n)),
        r#"\{("[a-z]{1,3}": ?(-?[0-9]{1,3}|"[a-z]{0,3}"|null|true|\[\]),?){0,3}\}"#,
    ]
}

fn wire_trial() -> impl Strategy<Value = pb::Trial> {
    let fuse =
        prop_oneof![text(), prop::sample::select(vec!["", "auto", "0", "1", "2", "64", "65"]).prop_map(str::to_string)];
    (
        (text(), any::<u32>(), text(), prop::collection::vec(text(), 0..3)),
        (text(), text(), any::<u32>(), any::<u32>(), fuse, f64_any(), any::<bool>(), any::<bool>()),
        // A copy PBT made is the coordinator's alone: a client that names one is refused.
        prop_oneof![Just(String::new()), text()],
        any::<u32>(),
    )
        .prop_map(
            |(
                (trial_id, index, workload, command),
                (
                    params_json,
                    data_json,
                    gpus,
                    checkpoint_every_epochs,
                    fuse,
                    gpu_share,
                    cuda_graphs_off,
                    command_bool_flag,
                ),
                copy_from_trial_id,
                copy_from_epoch,
            )| {
                pb::Trial {
                    trial_id,
                    index,
                    workload,
                    command,
                    params_json,
                    data_json,
                    gpus,
                    checkpoint_every_epochs,
                    fuse,
                    gpu_share,
                    cuda_graphs_off,
                    command_bool_flag,
                    copy_from_trial_id,
                    copy_from_epoch,
                }
            },
        )
}

fn f64_any() -> impl Strategy<Value = f64> {
    prop_oneof![any::<f64>(), Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(-0.0)]
}

fn report_request() -> impl Strategy<Value = pb::ReportMetricsRequest> {
    let metric = (text(), f64_any()).prop_map(|(name, value)| pb::Metric { name, value });
    let epoch = (any::<u32>(), any::<i64>(), prop::collection::vec(metric, 0..4))
        .prop_map(|(epoch, step, metrics)| pb::EpochMetrics { epoch, step, metrics });
    (any::<i64>(), prop::collection::vec(epoch, 0..4)).prop_map(|(lease_id, epochs)| pb::ReportMetricsRequest {
        lease_id,
        epochs,
        ..Default::default()
    })
}

fn complete_request() -> impl Strategy<Value = pb::CompleteRequest> {
    (any::<i64>(), any::<Option<i32>>(), any::<Option<i32>>(), text(), text(), any::<bool>()).prop_map(
        |(lease_id, exit_code, signal, stderr_tail, launch_error, stopped_by_request)| pb::CompleteRequest {
            lease_id,
            exit_code,
            signal,
            stderr_tail,
            launch_error,
            stopped_by_request,
            ..Default::default()
        },
    )
}

/// Every check a handler runs on a request, in the handler's order; the result is Ok or a Status.
fn validate_submit(r: pb::SubmitSweepRequest) -> Result<(), Status> {
    convert::sweep_from_wire(r).map(|_| ())
}

fn validate_report(r: pb::ReportMetricsRequest) -> Result<(), Status> {
    convert::check_report(&r)?;
    for e in r.epochs {
        let record = convert::epoch_from_wire(e);
        let _ = record.step_or_epoch();
    }
    Ok(())
}

fn validate_complete(mut r: pb::CompleteRequest) -> Result<(), Status> {
    convert::check_complete(&mut r)?;
    assert!(r.stderr_tail.len() <= MAX_STDERR_TAIL && r.launch_error.len() <= MAX_LAUNCH_ERROR);
    Ok(())
}

/// A refusal is INVALID_ARGUMENT with a message that names the field (`field: what is wrong`).
fn assert_refusal(result: Result<(), Status>) {
    if let Err(s) = result {
        assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
        assert!(s.message().contains(": "), "{s:?}");
        assert!(
            s.message().len() < 1024,
            "the message quotes a bounded part of the input: {} bytes",
            s.message().len()
        );
    }
}

proptest! {
    #[test]
    fn arbitrary_trials_convert_or_are_refused(sweep_name in text(), t in wire_trial()) {
        assert_refusal(convert::trial_from_wire(&sweep_name, t).map(|_| ()));
    }

    #[test]
    fn a_real_trial_with_one_field_replaced_converts_or_is_refused(field in 0usize..6, value in text(), n in any::<u32>()) {
        let mut req = sweep("prop", &[1, 2], "");
        let t = &mut req.trials[1];
        match field {
            0 => t.trial_id = value,
            1 => t.workload = value,
            2 => t.params_json = value,
            3 => t.data_json = value,
            4 => t.command.push(value),
            _ => t.gpus = n,
        }
        assert_refusal(validate_submit(req));
    }

    #[test]
    fn arbitrary_submissions_are_converted_or_refused(
        name in text(), source in text(), source_path in text(),
        max_attempts in any::<u32>(), max_lost in any::<u32>(),
        trials in prop::collection::vec(wire_trial(), 0..3),
    ) {
        let req = pb::SubmitSweepRequest { name, source, source_path, max_attempts, max_lost, trials, ..Default::default() };
        assert_refusal(validate_submit(req));
    }

    #[test]
    fn arbitrary_reports_are_checked_without_panicking(r in report_request()) {
        assert_refusal(validate_report(r));
    }

    #[test]
    fn arbitrary_completions_are_checked_and_cut_without_panicking(r in complete_request()) {
        assert_refusal(validate_complete(r));
    }

    #[test]
    fn arbitrary_agent_requests_are_checked_without_panicking(
        name in text(), hostname in text(), agent_id in text(), slots in any::<u32>(), gpus in prop::collection::vec(text(), 0..3),
        free_gpus in any::<u32>(), leases in prop::collection::vec((any::<i64>(), any::<bool>()), 0..4),
    ) {
        assert_refusal(convert::check_register(&pb::RegisterRequest { name, hostname, slots, gpus }));
        assert_refusal(convert::check_lease(&pb::LeaseRequest { agent_id: agent_id.clone(), free_slots: slots, free_gpus, ..Default::default() }));
        let leases = leases.into_iter().map(|(lease_id, running)| pb::LeaseState { lease_id, running }).collect();
        assert_refusal(convert::check_heartbeat(&pb::HeartbeatRequest { agent_id, leases, ..Default::default() }));
    }

    /// Arbitrary bytes decoded as each request message, then validated as its handler would.
    #[test]
    fn arbitrary_bytes_decode_and_validate_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(r) = pb::SubmitSweepRequest::decode(&bytes[..]) { assert_refusal(validate_submit(r)); }
        if let Ok(t) = pb::Trial::decode(&bytes[..]) { assert_refusal(convert::trial_from_wire("s", t).map(|_| ())); }
        if let Ok(r) = pb::ReportMetricsRequest::decode(&bytes[..]) { assert_refusal(validate_report(r)); }
        if let Ok(r) = pb::CompleteRequest::decode(&bytes[..]) { assert_refusal(validate_complete(r)); }
        if let Ok(r) = pb::RegisterRequest::decode(&bytes[..]) { assert_refusal(convert::check_register(&r)); }
        if let Ok(r) = pb::LeaseRequest::decode(&bytes[..]) { assert_refusal(convert::check_lease(&r)); }
        if let Ok(r) = pb::HeartbeatRequest::decode(&bytes[..]) { assert_refusal(convert::check_heartbeat(&r)); }
        for sweep_id in [
            pb::GetSweepRequest::decode(&bytes[..]).map(|r| r.sweep_id),
            pb::CancelSweepRequest::decode(&bytes[..]).map(|r| r.sweep_id),
            pb::WatchSweepRequest::decode(&bytes[..]).map(|r| r.sweep_id),
            pb::GetResultsRequest::decode(&bytes[..]).map(|r| r.sweep_id),
        ].into_iter().flatten() {
            assert_refusal(convert::check_sweep_name("sweep_id", &sweep_id));
        }
    }

    /// Valid messages, encoded, cut or corrupted at one byte, then decoded and validated.
    #[test]
    fn corrupted_valid_submissions_decode_and_validate_without_panicking(cut in any::<prop::sample::Index>(), flip in any::<u8>(), at in any::<prop::sample::Index>()) {
        let mut bytes = sweep("corrupt", &[1, 2, 3], "").encode_to_vec();
        let i = at.index(bytes.len());
        bytes[i] ^= flip;
        bytes.truncate(cut.index(bytes.len() + 1));
        if let Ok(r) = pb::SubmitSweepRequest::decode(&bytes[..]) { assert_refusal(validate_submit(r)); }
    }
}

#[test]
fn a_valid_report_with_nan_and_inf_passes_the_checks() {
    let r = report(1, &[(1, &[("loss", f64::NAN), ("g", f64::INFINITY), ("h", f64::NEG_INFINITY)])]);
    convert::check_report(&r).unwrap();
    let e = convert::epoch_from_wire(r.epochs[0].clone());
    assert!(e.metrics["loss"].is_nan() && e.metrics["g"] == f64::INFINITY && e.metrics["h"] == f64::NEG_INFINITY);
}
