//! The browser harness (`sweep_e2e::browser`) on a real page: a small server on 127.0.0.1 serves a
//! page whose script changes the DOM some time after a click, as a dashboard does when the
//! coordinator answers. Headless Chromium loads it, clicks, waits for the change, reads the
//! page's errors and writes a screenshot.
//!
//! Skipped (with a message) when `chromium` or `chromedriver` is not on PATH, unless
//! `SWEEP_REQUIRE_BROWSER=1` is set, as `make test` does as root after installing them.

use axum::response::Html;
use axum::routing::get;
use std::time::{Duration, Instant};
use sweep_e2e::browser::{self, WINDOW};

const PAGE: &str = r#"<!doctype html>
<html>
<head><meta charset="utf-8"><link rel="icon" href="data:,"><title>sweep browser harness</title></head>
<body>
  <h1>Trials</h1>
  <button id="add">Add a trial</button>
  <button id="break">Raise an error</button>
  <ul id="trials"></ul>
  <p id="count">0 trials</p>
  <script>
    let n = 0;
    document.getElementById("add").addEventListener("click", () => {
      // Later than the click, like a page waiting on its server: the test has to wait for it.
      setTimeout(() => {
        n += 1;
        const item = document.createElement("li");
        item.textContent = "trial " + n;
        document.getElementById("trials").appendChild(item);
        document.getElementById("count").textContent = n + (n === 1 ? " trial" : " trials");
      }, 300);
    });
    document.getElementById("break").addEventListener("click", () => {
      throw new Error("deliberate failure of the test page");
    });
  </script>
</body>
</html>
"#;

/// Serves [`PAGE`] at `/` on a free port of 127.0.0.1; returns its address.
async fn serve_page() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let app = axum::Router::new().route("/", get(|| async { Html(PAGE) }));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve the test page") });
    format!("http://{addr}/")
}

/// The width and height a PNG's header gives, or `None` if `png` is not a PNG.
fn png_size(png: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if png.len() < 24 || &png[..8] != SIGNATURE || &png[12..16] != b"IHDR" {
        return None;
    }
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().expect("4 bytes"));
    Some((be(16), be(20)))
}

#[tokio::test]
async fn headless_chromium_clicks_waits_and_takes_a_screenshot() {
    let started = Instant::now();
    let Some(browser) = browser::start().await else { return };
    let b = &browser;
    eprintln!("browser: session open after {:.2?}", started.elapsed());

    let url = serve_page().await;
    b.client().goto(&url).await.expect("load the test page");
    assert_eq!(b.client().title().await.expect("read the title"), "sweep browser harness");
    assert_eq!(b.text("#count").await.as_deref(), Some("0 trials"));
    assert_eq!(b.text("#no-such-element").await, None);

    for expected in ["1 trial", "2 trials"] {
        let click = Instant::now();
        b.client().find(fantoccini::Locator::Css("#add")).await.expect("find the button").click().await.expect("click");
        b.wait_for(&format!("the count to read {expected:?}"), Duration::from_secs(5), move || async move {
            b.text("#count").await.as_deref() == Some(expected)
        })
        .await;
        // The page changes 300 ms after the click: a wait that returned sooner did not wait.
        assert!(click.elapsed() >= Duration::from_millis(300), "the change came {:?} after the click", click.elapsed());
    }
    assert_eq!(b.text("#trials").await.as_deref(), Some("trial 1\ntrial 2"));

    assert_eq!(b.console_errors().await, Vec::<String>::new(), "the page ran without errors so far");
    b.client().find(fantoccini::Locator::Css("#break")).await.expect("find the button").click().await.expect("click");
    let errors = b.console_errors().await;
    assert!(
        errors.iter().any(|e| e.contains("deliberate failure of the test page")),
        "the uncaught exception is among the page's errors: {errors:?}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let shot = dir.path().join("screens/page.png");
    b.screenshot(&shot).await;
    let png = std::fs::read(&shot).expect("read the screenshot");
    assert_eq!(png_size(&png), Some(WINDOW), "{} is a PNG of the window ({} bytes)", shot.display(), png.len());
    eprintln!("browser: done after {:.2?} (screenshot {} bytes)", started.elapsed(), png.len());
}

/// The live processes whose process group is `group`, from /proc.
fn processes_in_group(group: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return vec![] };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // Fields after the command's closing parenthesis: state, ppid, pgrp, ...
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
            let fields: Vec<&str> = after.split_whitespace().collect();
            // A zombie has exited and holds nothing; reaping it is its new parent's business.
            fields.len() > 2 && fields[0] != "Z" && fields[2] == group.to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_failed_wait_names_what_it_awaited_and_leaves_no_browser_behind() {
    let Some(browser) = browser::start().await else { return };
    let url = serve_page().await;
    browser.client().goto(&url).await.expect("load the test page");
    let group = browser.driver_pid();
    let running = processes_in_group(group);
    assert!(running.len() > 1, "chromedriver and Chromium share the driver's process group: {running:?}");

    // The failing test: its panic drops the browser while unwinding.
    let failed = tokio::spawn(async move {
        let b = &browser;
        b.wait_for("a count no click produced", Duration::from_millis(300), move || async move {
            b.text("#count").await.as_deref() == Some("9 trials")
        })
        .await;
    })
    .await
    .expect_err("the wait times out");
    let message = failed.into_panic().downcast::<String>().map(|m| *m).unwrap_or_default();
    assert!(message.contains("waiting for a count no click produced"), "{message}");
    assert!(message.contains(&url) && message.contains("0 trials"), "names the page and quotes it: {message}");

    let left: Vec<String> = processes_in_group(group)
        .iter()
        .map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
        .collect();
    assert!(left.is_empty(), "chromedriver and Chromium are gone after the failure, but {left:?} run on");
}
