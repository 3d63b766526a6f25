//! How fast the dashboard answers for a big sweep: 100,000 trials and 5 million metric rows in the
//! store, a real coordinator serving the dashboard, and every call the sweep page makes timed over
//! loopback HTTP. `make bench-dashboard` runs it (release build); BENCHMARKS.md has the figures.
//!
//! The sweep is submitted through the gRPC API as users submit; its history (attempts, 10 epochs
//! of 5 metrics per trial, finals) is then written straight into the store's SQLite file in one
//! transaction, because running 100,000 trials through agents would take an hour and measure the
//! agents, not the page. The last 1,000 trials lost their agent and wait to run again, so the sweep
//! is still running, as the sweeps one watches are. The coordinator is then started again on that
//! store.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use sweep_coordinator::CoordinatorConfig;
use sweep_proto::v1::{self as pb, sweep_service_client::SweepServiceClient};

const SWEEP: &str = "big";
const EPOCHS: i64 = 10;
/// Trials still to run when the coordinator starts again.
const WAITING: i64 = 1_000;
const METRICS: [&str; 5] = ["test_acc", "test_loss", "train_acc", "train_loss", "epoch_seconds"];
/// Each call is timed this many times; the table shows the median and the slowest.
const REPEATS: usize = 21;
/// What the issue asks: every API call within 200 ms, the page usable within 1 s.
const CALL_BUDGET: Duration = Duration::from_millis(200);
const PAGE_BUDGET: Duration = Duration::from_secs(1);

fn sweep_file() -> String {
    // 10 x 10 x 2 x 500 = 100,000 trials.
    let seeds: Vec<u32> = (0..500).collect();
    format!(
        "name = \"{SWEEP}\"\nworkload = \"command\"\ncommand = [\"train\"]\n[grid]\n\
         width = [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]\n\
         lr = [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]\n\
         optimizer = [\"sgd\", \"adam\"]\nseed = {seeds:?}\n"
    )
}

struct Answer {
    status: u16,
    bytes: usize,
}

fn get(addr: SocketAddr, path: &str) -> Answer {
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    write!(conn, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("send");
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw[..raw.len().min(64)]).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Answer { status, bytes: raw.len() }
}

fn time(addr: SocketAddr, path: &str) -> (Duration, Answer) {
    let start = Instant::now();
    let answer = get(addr, path);
    assert_eq!(answer.status, 200, "{path}");
    (start.elapsed(), answer)
}

/// The resident memory of this process (coordinator and client), in MB.
fn rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// The trial's final test accuracy: width and learning rate matter, the optimizer a little, the
/// seed as noise; so curves, parallel coordinates and importances have something to show.
fn accuracy(width: f64, lr: f64, adam: bool, seed: f64) -> f64 {
    let w = (width.log2() - 3.0) / 9.0;
    let l = -((lr.log10() + 2.0).powi(2)) / 2.0;
    let noise = ((seed * 12.9898).sin() * 43758.5453).fract() * 0.02;
    (0.55 + 0.3 * w + 0.1 * l.exp() + if adam { 0.02 } else { 0.0 } + noise).clamp(0.01, 0.99)
}

fn fabricate_history(state: &Path) -> anyhow::Result<usize> {
    let mut conn = rusqlite::Connection::open(state.join("state.db"))?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    let t0: i64 = 1_790_000_000_000;
    let trials: Vec<(String, i64, String)> = {
        let mut q = tx.prepare("SELECT trial_id, idx, spec FROM trials WHERE sweep = ?1 ORDER BY idx")?;
        let rows = q.query_map([SWEEP], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    tx.execute(
        "UPDATE trials SET state = 'succeeded', attempt = 1, agent = 'bench-agent',
                started_at_ms = ?2 + idx * 1000, finished_at_ms = ?2 + idx * 1000 + 600000 WHERE sweep = ?1",
        rusqlite::params![SWEEP, t0],
    )?;
    tx.execute(
        "INSERT INTO attempts (sweep, trial_id, attempt, agent, leased_at_ms, started_at_ms, finished_at_ms, outcome, exit_code)
         SELECT sweep, trial_id, 1, 'bench-agent', started_at_ms, started_at_ms, finished_at_ms, 'succeeded', 0
         FROM trials WHERE sweep = ?1",
        [SWEEP],
    )?;
    let waiting = trials.len() as i64 - WAITING;
    tx.execute(
        "UPDATE attempts SET outcome = 'lost', exit_code = NULL WHERE sweep = ?1
           AND trial_id IN (SELECT trial_id FROM trials WHERE sweep = ?1 AND idx >= ?2)",
        rusqlite::params![SWEEP, waiting],
    )?;
    tx.execute(
        "UPDATE trials SET state = 'pending', agent = NULL, lost = 1, finished_at_ms = NULL WHERE sweep = ?1 AND idx >= ?2",
        rusqlite::params![SWEEP, waiting],
    )?;
    let mut rows = 0usize;
    {
        let mut metric = tx.prepare(
            "INSERT INTO metrics (sweep, trial_id, attempt, epoch, step, metric, value, recorded_at_us)
             VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut fin = tx.prepare(
            "INSERT INTO finals (sweep, trial_id, metric, epoch, attempt, value) VALUES (?1, ?2, ?3, ?4, 1, ?5)",
        )?;
        for (trial_id, idx, spec) in &trials {
            let spec: serde_json::Value = serde_json::from_str(spec)?;
            let p = &spec["params"];
            let acc = accuracy(
                p["width"].as_f64().unwrap_or(8.0),
                p["lr"].as_f64().unwrap_or(0.01),
                p["optimizer"] == "adam",
                p["seed"].as_f64().unwrap_or(0.0),
            );
            for epoch in 1..=EPOCHS {
                let progress = 1.0 - (-(epoch as f64) / 3.0).exp();
                let test_acc = 0.1 + (acc - 0.1) * progress;
                let values = [test_acc, -test_acc.ln(), (test_acc + 0.05).min(1.0), -test_acc.ln() * 0.8, 60.0];
                for (name, value) in METRICS.iter().zip(values) {
                    let at = (t0 + idx * 1000) * 1000 + epoch * 60_000_000;
                    metric.execute(rusqlite::params![SWEEP, trial_id, epoch, epoch * 100, name, value, at])?;
                    rows += 1;
                    if epoch == EPOCHS {
                        fin.execute(rusqlite::params![SWEEP, trial_id, name, epoch, value])?;
                    }
                }
            }
        }
    }
    for name in METRICS {
        tx.execute("INSERT OR IGNORE INTO metric_names (sweep, metric) VALUES (?1, ?2)", [SWEEP, name])?;
    }
    tx.execute(
        "UPDATE sweeps SET last_metric_seq = (SELECT MAX(seq) FROM metrics WHERE sweep = ?1) WHERE name = ?1",
        [SWEEP],
    )?;
    tx.commit()?;
    Ok(rows)
}

fn config(dir: &Path) -> CoordinatorConfig {
    CoordinatorConfig {
        http_listen: Some("127.0.0.1:0".into()),
        // The Parquet sink leaves this sweep alone: the page is measured, not the writer.
        results_only_for: Some("nothing-to-write".into()),
        ..CoordinatorConfig::loopback(dir.join("state"), dir.join("results"))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("dashboard bench: {cpus} CPU(s), store in {}", dir.path().display());

    let started = Instant::now();
    let first = sweep_coordinator::start(&config(dir.path())).await?;
    let text = sweep_file();
    let path = Path::new("big.toml");
    let file = sweep_spec::SweepFile::parse(&text, path, Path::new("."))?;
    let trials = sweep_spec::expand(&file)?;
    let n = trials.len();
    let mut client = SweepServiceClient::connect(format!("http://{}", first.local_addr)).await?;
    let req = pb::SubmitSweepRequest::from_file(&file, &trials, text.clone(), path.display().to_string());
    let stream = tokio_stream::iter(req.into_parts(10_000).collect::<Vec<_>>());
    client.submit_sweep_stream(stream).await?;
    first.shutdown().await?;
    let submitted = started.elapsed();
    let rows = tokio::task::spawn_blocking({
        let state = dir.path().join("state");
        move || fabricate_history(&state)
    })
    .await??;
    println!(
        "store: {n} trials submitted in {:.1} s, {rows} metric rows written in {:.1} s\n",
        submitted.as_secs_f64(),
        (started.elapsed() - submitted).as_secs_f64()
    );

    let running = sweep_coordinator::start(&config(dir.path())).await?;
    let addr = running.http_addr.expect("http");
    let measured = tokio::task::spawn_blocking(move || measure(addr)).await?;
    running.shutdown().await?;
    measured?;
    archive(dir.path()).await
}

/// `sweep ui`'s side: the sweep written to Parquet by a coordinator's
/// sink, then read back whole as `sweep ui` reads a results folder.
async fn archive(dir: &Path) -> anyhow::Result<()> {
    let mut writes = config(dir);
    writes.results_only_for = None;
    writes.http_listen = None;
    let started = Instant::now();
    let sink = sweep_coordinator::start(&writes).await?;
    sink.flush().await?;
    sink.shutdown().await?;
    println!("\nParquet: the sweep's results written in {:.1} s", started.elapsed().as_secs_f64());
    let before = rss_mb();
    let started = Instant::now();
    let results = dir.join("results");
    let archive = tokio::task::spawn_blocking(move || sweep_coordinator::dashboard::Archive::read(&results))
        .await?
        .map_err(anyhow::Error::msg)?;
    println!(
        "sweep ui: {} sweep(s) read in {:.1} s; resident memory {} MB before, {} MB after",
        archive.sweeps.len(),
        started.elapsed().as_secs_f64(),
        before,
        rss_mb()
    );
    Ok(())
}

fn measure(addr: SocketAddr) -> anyhow::Result<()> {
    // The dashboard reads a running sweep's trials as soon as it starts; a page opened at once
    // waits for that.
    let (cold, _) = time(addr, "/api/sweeps/big");
    std::thread::sleep(Duration::from_secs(2));
    let trial = {
        let mut conn = std::net::TcpStream::connect(addr)?;
        write!(conn, "GET /api/sweeps/big/trials?limit=1&sort=metric:test_acc&desc=true HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        conn.read_to_string(&mut text)?;
        let at = text.find("\"trial_id\":\"").expect("a trial") + 12;
        text[at..at + 16].to_string()
    };
    // What the sweep page asks for when it opens, in the order it asks.
    let page: Vec<(&str, String)> = vec![
        ("page", "/ui/".into()),
        ("app.js", "/ui/assets/app.js".into()),
        ("app.css", "/ui/assets/app.css".into()),
        ("plotly.js (4.6 MB)", "/ui/assets/plotly.js".into()),
        ("session", "/api/session".into()),
        ("sweep summary", "/api/sweeps/big".into()),
        ("trials, first page", "/api/sweeps/big/trials?offset=0&limit=50&metric=test_acc".into()),
        ("curves, top 10", "/api/sweeps/big/curves?metric=test_acc&top=10".into()),
        ("parallel coordinates (2,000 best)", "/api/sweeps/big/parallel?metric=test_acc".into()),
        ("importance (random forest)", "/api/sweeps/big/importance?metric=test_acc".into()),
        ("decisions", "/api/sweeps/big/decisions".into()),
    ];
    let more: Vec<(&str, String)> = vec![
        ("sweeps list", "/api/sweeps".into()),
        ("trials sorted by test_acc", "/api/sweeps/big/trials?limit=50&sort=metric:test_acc&desc=true".into()),
        (
            "trials sorted by lr, filtered",
            "/api/sweeps/big/trials?limit=50&sort=lr&where=optimizer%3Dadam,test_acc%3E0.8".into(),
        ),
        ("trials, page 1,000", "/api/sweeps/big/trials?offset=50000&limit=50".into()),
        ("trials, id prefix", format!("/api/sweeps/big/trials?find={}", &trial[..6])),
        ("curves, top 50 + highlighted", format!("/api/sweeps/big/curves?metric=test_loss&top=50&highlight={trial}")),
        ("one trial", format!("/api/sweeps/big/trials/{trial}")),
        ("agents", "/api/agents".into()),
    ];
    println!(
        "first call right after the coordinator started (waits for the 100,000 trials to be read): {} ms; RSS then {} MB\n",
        ms(cold),
        rss_mb()
    );
    println!("| call | median ms | slowest ms | of the 200 ms budget | bytes |\n|---|---:|---:|---:|---:|");
    let mut page_total = Duration::ZERO;
    let mut worst_api: (Duration, &str) = (Duration::ZERO, "");
    for (i, (name, path)) in page.iter().chain(more.iter()).enumerate() {
        let mut times = Vec::with_capacity(REPEATS);
        let mut bytes = 0;
        for _ in 0..REPEATS {
            let (d, a) = time(addr, path);
            times.push(d);
            bytes = a.bytes;
        }
        times.sort();
        let (median, slowest) = (times[REPEATS / 2], times[REPEATS - 1]);
        if i < page.len() {
            page_total += median;
        }
        if path.starts_with("/api/") && median > worst_api.0 {
            worst_api = (median, name);
        }
        println!(
            "| {name} | {} | {} | {:.2} | {bytes} |",
            ms(median),
            ms(slowest),
            median.as_secs_f64() / CALL_BUDGET.as_secs_f64()
        );
    }
    println!(
        "\nthe sweep page's calls one after another (a browser makes them side by side): {} ms, {:.2} of the 1 s budget",
        ms(page_total),
        page_total.as_secs_f64() / PAGE_BUDGET.as_secs_f64()
    );
    println!(
        "slowest API call: {} at {} ms median, {:.2} of the 200 ms budget",
        worst_api.1,
        ms(worst_api.0),
        worst_api.0.as_secs_f64() / CALL_BUDGET.as_secs_f64()
    );
    Ok(())
}
