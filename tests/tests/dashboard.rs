//! The dashboard in a real headless Chromium, as a person uses it: sign in with a token, watch a
//! running sweep's curve gain a point when its trial reports an epoch (no reload), sort and filter
//! the trial table, open a trial, and check that markup in parameter values, metric names and log
//! lines shows as text and never runs. A second test runs a real sweep with `sweep local`, serves
//! it with `sweep ui` and takes the screenshot the README shows. Screenshots go to
//! `target/dashboard-screenshots/` (or `$SWEEP_SCREENSHOTS`); look at them.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use sweep_coordinator::CoordinatorConfig;
use sweep_e2e::browser::{self, Browser};
use sweep_proto::v1::{self as pb, agent_service_client::AgentServiceClient, sweep_service_client::SweepServiceClient};
use tonic::transport::Channel;

const USER: &str = "dana:dana-token-5f2e";
const USER_TOKEN: &str = "dana-token-5f2e";
const AGENT_TOKEN: &str = "agent-token-0c4b";
const PATIENCE: Duration = Duration::from_secs(20);

/// Markup in each string a user or a trial controls: if any of it ran, `window.__pwned` is set.
const PARAM_MARKUP: &str = "<script>window.__pwned='param'</script>";
const METRIC_MARKUP: &str = "<img src=x onerror=\"window.__pwned='metric'\">";
const LOG_MARKUP: &str = "<script>window.__pwned='log'</script><img src=x onerror=\"window.__pwned='log-img'\">";

fn screenshots() -> PathBuf {
    std::env::var_os("SWEEP_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard-screenshots"))
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

async fn js(b: &Browser, script: &str) -> Value {
    b.client().execute(script, vec![]).await.unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// The number of points the curves chart draws for `trial` (the chart says so in `data-points`).
async fn points_of(b: &Browser, trial: &str) -> Option<u64> {
    let points = js(b, "const c = document.getElementById('curves'); return c ? (c.dataset.points || '') : ''").await;
    points.as_str()?.split(',').find_map(|p| p.strip_prefix(&format!("{trial}:"))?.parse().ok())
}

async fn no_markup_ran(b: &Browser) {
    let pwned = js(b, "return window.__pwned === undefined ? null : String(window.__pwned)").await;
    assert_eq!(pwned, Value::Null, "markup from a user-controlled string ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_sweeps_page_follows_its_trials_and_shows_markup_as_text() {
    let Some(b) = browser::start().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (users, agents) = (dir.path().join("users.tokens"), dir.path().join("agents.tokens"));
    std::fs::write(&users, format!("{USER}\n")).unwrap();
    std::fs::write(&agents, format!("{AGENT_TOKEN}\n")).unwrap();
    let mut config = CoordinatorConfig::loopback(dir.path().join("state"), dir.path().join("results"));
    config.http_listen = Some("127.0.0.1:0".into());
    config.lease_ttl = Duration::from_secs(60);
    config.security.user_tokens = Some(users);
    config.security.agent_tokens = Some(agents);
    let running = sweep_coordinator::start(&config).await.unwrap();
    let http = running.http_addr.unwrap();
    let channel = Channel::from_shared(format!("http://{}", running.local_addr)).unwrap().connect().await.unwrap();

    // A user submits; an agent (simulated over the real API) leases every trial and reports.
    let text = format!(
        "name = \"live-page\"\nworkload = \"command\"\ncommand = [\"train\"]\n[params]\nnote = {PARAM_MARKUP:?}\n\
         [grid]\nwidth = [1, 2, 3, 4, 5, 6, 7, 8]\n[retry]\nmax_attempts = 1\n"
    );
    let path = std::path::Path::new("live-page.toml");
    let file = sweep_spec::SweepFile::parse(&text, path, std::path::Path::new(".")).unwrap();
    let trials = sweep_spec::expand(&file).unwrap();
    let req = pb::SubmitSweepRequest::from_file(&file, &trials, text.clone(), path.display().to_string());
    SweepServiceClient::new(channel.clone()).submit_sweep(with_token(req, USER_TOKEN)).await.unwrap();
    let mut agent = AgentServiceClient::new(channel);
    let register = pb::RegisterRequest {
        name: "gpu-node-1".into(),
        hostname: "gpu-node-1".into(),
        slots: 8,
        gpus: vec!["0".into(), "1".into()],
    };
    let reg = agent.register(with_token(register, AGENT_TOKEN)).await.unwrap().into_inner();
    let lease = pb::LeaseRequest {
        agent_id: reg.agent_id.clone(),
        free_slots: 8,
        free_gpus: 1,
        gpu_free_shares: vec![0.5, 1.0],
        gpu_free_bytes: vec![40 << 30, 80 << 30],
        session_secret: reg.session_secret.clone(),
        ..Default::default()
    };
    let leases = agent.lease(with_token(lease, AGENT_TOKEN)).await.unwrap().into_inner().leases;
    assert_eq!(leases.len(), 8);
    let width = |l: &pb::Lease| -> i64 {
        let trial = l.trial.as_ref().unwrap();
        let params: Value = serde_json::from_str(&trial.params_json).unwrap();
        params["width"].as_i64().unwrap()
    };
    let id = |l: &pb::Lease| l.trial.as_ref().unwrap().trial_id.clone();
    let report = |lease_id: i64, epoch: u32, metrics: Vec<(&str, f64)>| pb::ReportMetricsRequest {
        lease_id,
        epochs: vec![pb::EpochMetrics {
            epoch,
            step: epoch as i64,
            metrics: metrics.into_iter().map(|(name, value)| pb::Metric { name: name.into(), value }).collect(),
        }],
        session_secret: reg.session_secret.clone(),
        warnings: vec![],
    };
    for l in &leases {
        let acc = 0.1 * width(l) as f64;
        agent
            .report_metrics(with_token(
                report(l.lease_id, 1, vec![("test_acc", acc), (METRIC_MARKUP, 1.0)]),
                AGENT_TOKEN,
            ))
            .await
            .unwrap();
    }
    let best = leases.iter().max_by_key(|l| width(l)).unwrap();
    let failing = leases.iter().find(|l| width(l) == 7).unwrap();
    let complete = pb::CompleteRequest {
        lease_id: failing.lease_id,
        exit_code: Some(1),
        stderr_tail: format!("Traceback (most recent call last):\n{LOG_MARKUP}\nValueError: loss is nan"),
        session_secret: reg.session_secret.clone(),
        ..Default::default()
    };
    agent.complete(with_token(complete, AGENT_TOKEN)).await.unwrap();

    // Without a token the page asks for one; the token is pasted once.
    let c = b.client();
    c.goto(&format!("http://{http}/ui/#/sweep/live-page")).await.unwrap();
    b.wait_for("the login form", PATIENCE, || async { b.text("form h1").await.is_some() }).await;
    c.find(fantoccini::Locator::Css("#token")).await.unwrap().send_keys(USER_TOKEN).await.unwrap();
    b.click("button[type=submit]", PATIENCE).await;
    b.wait_for("the sweeps page after signing in", PATIENCE, || async {
        b.text("#sweeps table").await.is_some_and(|t| t.contains("live-page"))
    })
    .await;
    let before: Vec<String> = b.console_errors().await;
    assert!(
        before.iter().all(|e| e.contains("401 (Unauthorized)")),
        "before signing in, only the refusals of the page and its assets: {before:#?}"
    );
    c.goto(&format!("http://{http}/ui/#/sweep/live-page")).await.unwrap();
    let best_id = id(best);
    b.wait_for("the best trial's curve with its first epoch", PATIENCE, || async {
        points_of(&b, &best_id).await == Some(1)
    })
    .await;

    // The trial reports another epoch: its curve gains a point on the page as it is.
    js(&b, "window.__samePage = 'yes'; return null").await;
    agent.report_metrics(with_token(report(best.lease_id, 2, vec![("test_acc", 0.95)]), AGENT_TOKEN)).await.unwrap();
    b.wait_for("the curve to gain a point without a reload", PATIENCE, || async {
        points_of(&b, &best_id).await == Some(2)
    })
    .await;
    assert_eq!(js(&b, "return window.__samePage || null").await, "yes", "the page was not reloaded");
    b.screenshot(&screenshots().join("sweep-live.png")).await;

    // Sort by the metric (best first), then filter.
    b.click("th[data-key='metric:test_acc']", PATIENCE).await;
    b.wait_for("the table sorted by test_acc, best first", PATIENCE, || async {
        js(&b, "const r = document.querySelector('#trial-table tbody tr'); return r ? r.dataset.trial : null").await
            == best_id.as_str()
    })
    .await;
    let filter = c.find(fantoccini::Locator::Css("#where")).await.unwrap();
    filter.send_keys("width >= 6").await.unwrap();
    b.click("#filter button", PATIENCE).await;
    b.wait_for("three trials to match width >= 6", PATIENCE, || async {
        b.text("#shown").await.is_some_and(|t| t.starts_with("1–3 of 3 matching"))
    })
    .await;
    let shown: Vec<Value> =
        js(&b, "return [...document.querySelectorAll('#trial-table tbody tr')].map(r => r.dataset.trial)")
            .await
            .as_array()
            .unwrap()
            .clone();
    assert_eq!(shown.len(), 3);
    assert_eq!(shown[0], best_id.as_str(), "still sorted by test_acc");
    let headers = b.text("#trial-table thead").await.unwrap();
    assert!(headers.contains(METRIC_MARKUP), "a metric named with markup is a column named with that text: {headers}");
    no_markup_ran(&b).await;

    // Open the failed trial from the table: its parameters and log show markup as text.
    let failing_id = id(failing);
    b.click(&format!("tr[data-trial='{failing_id}']"), PATIENCE).await;
    b.wait_for("the failed trial's page with its log", PATIENCE, || async {
        b.text("#log").await.is_some_and(|t| t.contains("ValueError: loss is nan"))
    })
    .await;
    assert!(b.text("#log").await.unwrap().contains(LOG_MARKUP), "the log shows its markup as text");
    assert!(b.text("#params").await.unwrap().contains(PARAM_MARKUP), "the parameter shows its markup as text");
    assert!(b.text("#attempts").await.unwrap().contains("failed"), "the attempt and how it ended");
    no_markup_ran(&b).await;
    b.screenshot(&screenshots().join("trial.png")).await;

    // Retry it from its page: behind the same authorisation as `sweep retry`.
    b.click("#retry", PATIENCE).await;
    b.wait_for("the retried trial to wait for an agent again", PATIENCE, || async {
        b.text("h1 .state").await.as_deref() == Some("pending")
    })
    .await;

    // The agents page lists the agent and its running trials.
    c.goto(&format!("http://{http}/ui/#/agents")).await.unwrap();
    b.wait_for("the agents table", PATIENCE, || async {
        b.text("#agents table")
            .await
            .is_some_and(|t| t.contains("gpu-node-1") && t.contains("0 (50% free, 40.0 GiB free)"))
    })
    .await;
    b.screenshot(&screenshots().join("agents.png")).await;
    // The images named `x` in the markup are never loaded: they are text.
    let errors: Vec<String> = b.console_errors().await;
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    drop(b);
    running.shutdown().await.unwrap();
}

/// The sweep file of the README's screenshot: a small MLP width sweep that trains for real.
const REAL_SWEEP: &str = r#"
name = "mlp-widths"
description = "a small MLP trained with Adam at four widths, with and without label noise"
workload = "mlp"
[params]
hidden_trainable = true
n = 400
n_test = 1000
dim = 8
classes = 4
epochs = 12
[grid]
width = [4, 16, 64, 256]
label_noise = [0.0, 0.2]
seed = [0, 1]
[resources]
gpus = 0
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_ui_shows_a_real_sweep_run_by_sweep_local() {
    let Some(b) = browser::start().await else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mlp-widths.toml"), REAL_SWEEP).unwrap();
    let sweep = sweep_e2e::cluster::bin("sweep");
    let local = Command::new(&sweep)
        .args(["local", "mlp-widths.toml"])
        .current_dir(dir.path())
        .output()
        .expect("sweep local runs");
    let stderr = String::from_utf8_lossy(&local.stderr);
    assert!(local.status.success(), "sweep local failed:\n{stderr}");
    assert!(stderr.contains("dashboard: http://127.0.0.1:"), "sweep local says where its dashboard is:\n{stderr}");
    assert!(stderr.contains("sweep ui --results results"), "and how to look again:\n{stderr}");

    let mut ui = Command::new(&sweep)
        .args(["ui", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sweep ui starts");
    let mut line = String::new();
    BufReader::new(ui.stderr.take().unwrap()).read_line(&mut line).unwrap();
    let url =
        line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("no address in: {line}"));
    let kill = KillOnDrop(ui);

    let c = b.client();
    c.goto(&format!("{url}#/sweep/mlp-widths?metric=test_error")).await.unwrap();
    b.wait_for("the curves of the top trials", PATIENCE, || async {
        js(&b, "const c = document.getElementById('curves'); return c && c.dataset.points ? c.dataset.points.split(',').length : 0")
            .await
            == 10
    })
    .await;
    b.wait_for("the table's 16 trials", PATIENCE, || async {
        b.text("#shown").await.is_some_and(|t| t.contains("of 16 matching"))
    })
    .await;
    b.wait_for("the study's figures", Duration::from_secs(60), || async {
        js(&b, "return [...document.querySelectorAll('#figures img')].filter(i => i.complete && i.naturalWidth > 0).length").await
            .as_u64()
            .unwrap_or(0)
            > 0
    })
    .await;
    b.wait_for("parallel coordinates of the 16 trials", PATIENCE, || async {
        js(&b, "return document.getElementById('parallel').dataset.lines || null").await == "16"
    })
    .await;
    b.wait_for("the parameter importances", PATIENCE, || async {
        js(&b, "return !!document.querySelector('#importance .main-svg')").await == true
    })
    .await;
    // Every twelve-epoch curve is whole: the file's 12 epochs of each top trial.
    let points = js(&b, "return document.getElementById('curves').dataset.points").await;
    assert!(points.as_str().unwrap().split(',').all(|p| p.ends_with(":12")), "{points}");
    b.screenshot(&screenshots().join("dashboard-sweep.png")).await;
    let errors: Vec<String> = b.console_errors().await;
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    drop(kill);
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
