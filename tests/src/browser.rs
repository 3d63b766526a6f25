//! Headless Chromium driven over WebDriver, for tests of the pages the coordinator serves: a real
//! `chromedriver` child on a free port of 127.0.0.1, one fantoccini session on it, and the few
//! helpers a page test needs (polling with a named condition, screenshots, the page's JS errors).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`make test` installs them as root, through
//! `scripts/setup.sh --browser`). Without them [`start`] returns `None` after saying why, so the
//! test is skipped, unless `SWEEP_REQUIRE_BROWSER=1` is set, as `make test` does as root: then it
//! panics.

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The page's viewport, in CSS pixels: pages are laid out for a desktop screen of this size, and
/// screenshots have it.
pub const WINDOW: (u32, u32) = (1400, 1000);
/// How long chromedriver may take to answer on its port once started.
const DRIVER_START: Duration = Duration::from_secs(20);
/// How often [`Browser::wait_for`] checks its condition.
const POLL: Duration = Duration::from_millis(50);
/// The most of the page's text a timed-out [`Browser::wait_for`] quotes.
const PAGE_TEXT_QUOTED: usize = 2000;

/// Whether the browser tests must run: `SWEEP_REQUIRE_BROWSER=1`, which `make test` sets as root
/// after installing Chromium. Then a missing browser fails the test instead of skipping it.
pub fn browser_required() -> bool {
    std::env::var("SWEEP_REQUIRE_BROWSER").is_ok_and(|v| v == "1")
}

/// The programs a browser test runs, found on PATH.
#[derive(Debug, Clone)]
pub struct Programs {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

/// The browser programs on PATH, or why the browser tests cannot run here (naming the Debian
/// package to install).
pub fn programs() -> Result<Programs, String> {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find_map(on_path)
        .ok_or("`chromium` is not on PATH (Debian package `chromium`)")?;
    let chromedriver =
        on_path("chromedriver").ok_or("`chromedriver` is not on PATH (Debian package `chromium-driver`)")?;
    Ok(Programs { chromium, chromedriver })
}

fn on_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Starts chromedriver and opens a headless Chromium session on it. `None` (after printing why)
/// when the programs are missing and [`browser_required`] is false; panics when they are missing
/// but required, or when they are there but do not start.
pub async fn start() -> Option<Browser> {
    match programs() {
        Ok(programs) => Some(Browser::start(&programs).await),
        Err(why) if browser_required() => panic!(
            "SWEEP_REQUIRE_BROWSER=1, but {why}: install Debian's `chromium` and `chromium-driver` \
             (`scripts/setup.sh --browser` does, as root)"
        ),
        Err(why) => {
            eprintln!("skipped: {why} (SWEEP_REQUIRE_BROWSER=1 makes this test required)");
            None
        }
    }
}

/// One headless Chromium session behind its own chromedriver. Dropping it closes the session and
/// kills chromedriver with everything it started, so a failed test leaves no browser behind.
pub struct Browser {
    client: Client,
    session: String,
    driver: Driver,
}

impl Browser {
    async fn start(programs: &Programs) -> Browser {
        let driver = Driver::start(&programs.chromedriver).await;
        let profile = driver.dir.path().join("profile");
        let (width, height) = WINDOW;
        let Value::Object(capabilities) = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": programs.chromium,
                "args": [
                    "--headless=new",
                    // Tests run as root in CI, where Chromium's sandbox refuses to start.
                    "--no-sandbox",
                    "--disable-gpu",
                    // WebGL on the CPU: the dashboard's parallel-coordinates chart draws with it.
                    "--enable-unsafe-swiftshader",
                    // /dev/shm is small in containers; Chromium crashes when it runs out.
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
            // The page's console, read back by `console_errors`.
            "goog:loggingPrefs": { "browser": "ALL" },
        }) else {
            unreachable!("the capabilities are a JSON object")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver did not open a session of {}: {e}\nchromedriver's log:\n{}",
                    programs.chromium.display(),
                    driver.log()
                )
            });
        let session = client.session_id().await.ok().flatten().expect("chromedriver names the session it opened");
        // The session is closed by `Drop` below, synchronously, before chromedriver is killed;
        // fantoccini's own close on drop would run later, against a driver already gone.
        client.persist().await.expect("mark the session as closed by the harness");
        let browser = Browser { client, session, driver };
        browser.fit_viewport().await;
        browser
    }

    /// Grows the window by what its frame takes, so that the page itself gets [`WINDOW`]:
    /// `--window-size` sizes the whole window, frame included.
    async fn fit_viewport(&self) {
        let frame = "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]";
        let frame = self.client.execute(frame, vec![]).await.expect("measure the window's frame");
        let extra = |i: usize| frame[i].as_u64().and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
        let (width, height) = WINDOW;
        self.client
            .set_window_size(width + extra(0), height + extra(1))
            .await
            .unwrap_or_else(|e| panic!("resize the window to show {width}x{height} of the page: {e}"));
    }

    /// The WebDriver client, for navigation, clicks, forms and scripts.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The visible text of the first element matching the CSS `selector`, or `None` when nothing
    /// matches yet.
    pub async fn text(&self, selector: &str) -> Option<String> {
        let element = self.client.find(Locator::Css(selector)).await.ok()?;
        element.text().await.ok()
    }

    /// Clicks the first element matching the CSS `selector`, finding it again when the page
    /// replaced it between finding and clicking (a live page redraws its tables as data arrives).
    /// Panics naming the selector when nothing can be clicked within `timeout`.
    pub async fn click(&self, selector: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            let outcome = match self.client.find(Locator::Css(selector)).await {
                Ok(element) => element.click().await.map(|_| ()),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => return,
                Err(_) if start.elapsed() < timeout => tokio::time::sleep(POLL).await,
                Err(e) => panic!("could not click `{selector}` within {timeout:?}: {e}"),
            }
        }
    }

    /// Writes a PNG of the viewport ([`WINDOW`]) to `path`, creating its folder.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.unwrap_or_else(|e| panic!("screenshot for {}: {e}", path.display()));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Polls `check` until it is true. After `timeout` (a check that hangs counts against it),
    /// panics naming `what` was awaited, with the page's address and the start of its text.
    ///
    /// ```ignore
    /// let b = &browser;
    /// b.wait_for("the table to list 3 trials", Duration::from_secs(5), move || async move {
    ///     b.text("#trials-count").await.as_deref() == Some("3")
    /// })
    /// .await;
    /// ```
    pub async fn wait_for<F, Fut>(&self, what: &str, timeout: Duration, check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        if let Err(waited) = poll_until(timeout, check).await {
            let url = match self.client.current_url().await {
                Ok(url) => url.to_string(),
                Err(e) => format!("(unknown: {e})"),
            };
            panic!(
                "timed out after {waited:.1?} waiting for {what}; the page at {url} reads:\n{}",
                self.page_text().await
            );
        }
    }

    /// The start of the page's visible text, for failure messages.
    async fn page_text(&self) -> String {
        match self.client.execute("return document.body ? document.body.innerText : ''", vec![]).await {
            Ok(Value::String(text)) => {
                let mut quoted: String = text.chars().take(PAGE_TEXT_QUOTED).collect();
                if quoted.len() < text.len() {
                    quoted.push_str(" [...]");
                }
                quoted
            }
            Ok(other) => format!("(not text: {other})"),
            Err(e) => format!("(unreadable: {e})"),
        }
    }

    /// The errors the page raised or logged (`console.error`, uncaught exceptions, failed
    /// loads) since the previous call: chromedriver hands each entry out once.
    pub async fn console_errors(&self) -> Vec<String> {
        let path = format!("/session/{}/se/log", self.session);
        let port = self.driver.port;
        let (status, body) =
            tokio::task::spawn_blocking(move || http(port, "POST", &path, Some(&json!({ "type": "browser" }))))
                .await
                .expect("the request to chromedriver ran")
                .unwrap_or_else(|e| panic!("read the browser's log from chromedriver: {e}"));
        assert_eq!(status, 200, "chromedriver refused to hand out the browser's log: {body}");
        let entries = body["value"].as_array().cloned().unwrap_or_default();
        entries
            .into_iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// chromedriver's process id, which is also its process group's: Chromium and its helpers
    /// run in that group, and leave with it.
    pub fn driver_pid(&self) -> u32 {
        self.driver.child.id()
    }

    /// chromedriver's log so far (it includes what Chromium printed), for failure messages.
    pub fn driver_log(&self) -> String {
        self.driver.log()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closing the session lets chromedriver quit Chromium cleanly; `Driver`'s drop, which
        // follows, kills whatever is left. Best effort: the driver may already be gone.
        let _ = http(self.driver.port, "DELETE", &format!("/session/{}", self.session), None);
    }
}

/// Polls `check` every [`POLL`] until it is true; `Err` with the time waited once `timeout` has
/// passed.
async fn poll_until<F, Fut>(timeout: Duration, mut check: F) -> Result<(), Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = tokio::time::Instant::now();
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if tokio::time::timeout(left, check()).await == Ok(true) {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(start.elapsed());
        }
        tokio::time::sleep(POLL.min(timeout.saturating_sub(start.elapsed()))).await;
    }
}

/// A chromedriver child in a process group of its own, and the folder holding its log and
/// Chromium's profile. Dropping it kills the group: chromedriver, Chromium and Chromium's helpers.
struct Driver {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Driver {
    async fn start(chromedriver: &Path) -> Driver {
        let dir = tempfile::Builder::new().prefix("sweep-browser-").tempdir().expect("create the browser's folder");
        let log = dir.path().join("chromedriver.log");
        // The port is free when chosen but could be taken before chromedriver binds it; another
        // one is tried then.
        for attempt in 1.. {
            let port = crate::cluster::free_port();
            let out = std::fs::File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
            let err = out.try_clone().expect("clone the log's handle");
            let mut child = Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", chromedriver.display()));
            match wait_until_ready(&mut child, port).await {
                Ok(()) => return Driver { child, port, dir },
                Err(why) => {
                    kill_group(&mut child);
                    let output = std::fs::read_to_string(&log).unwrap_or_default();
                    if attempt < 3 && output.contains("bind") {
                        continue;
                    }
                    panic!("{} --port={port}: {why}; its log:\n{output}", chromedriver.display());
                }
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// Kills the process group `child` leads (started with `process_group(0)`) and reaps `child`.
fn kill_group(child: &mut Child) {
    let group = child.id() as libc::pid_t;
    // SAFETY: kill has no memory-safety preconditions; the negative pid names the group of our
    // own child, whose id cannot be reused before the `wait` below reaps it.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let _ = child.wait();
    // A killed Chromium takes a moment to tear down its address space; the browser is gone only
    // once no live process of the group is left (zombies hold nothing). Bounded, so a process
    // that cannot die does not hang the test run.
    let deadline = Instant::now() + GROUP_EXIT;
    while group_alive(group) && Instant::now() < deadline {
        std::thread::sleep(POLL);
    }
}

/// How long a killed process group may take to be gone.
const GROUP_EXIT: Duration = Duration::from_secs(5);

/// Whether a process of `group` is still alive (not a zombie), read from /proc.
fn group_alive(group: libc::pid_t) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).any(|pid| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis: state, ppid, pgrp, ...
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default().split_whitespace().collect();
        fields.len() > 2 && fields[0] != "Z" && fields[2] == group.to_string()
    })
}

/// Waits until chromedriver answers `/status` with `ready: true`.
async fn wait_until_ready(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + DRIVER_START;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("wait for chromedriver: {e}"))? {
            return Err(format!("chromedriver exited ({status}) before answering"));
        }
        let answer = tokio::task::spawn_blocking(move || http(port, "GET", "/status", None)).await;
        if let Ok(Ok((200, body))) = answer {
            if body["value"]["ready"] == true {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("no answer on /status within {DRIVER_START:?}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One JSON request to chromedriver on 127.0.0.1:`port`, outside fantoccini: readiness, the
/// browser's log and the closing of the session, which must also work from `Drop`.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<(u16, Value)> {
    let timeout = Duration::from_secs(10);
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    // chromedriver speaks HTTP/1.1 only, and keeps the connection open even when asked to close
    // it: the answer ends where its Content-Length says.
    write!(
        &stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| invalid("no status line"))?;
    let mut length = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(invalid("the headers did not end"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().map_err(|_| invalid("a bad Content-Length"))?;
            }
        }
    }
    let mut answer = vec![0; length];
    reader.read_exact(&mut answer)?;
    let json = if answer.is_empty() { Value::Null } else { serde_json::from_slice(&answer)? };
    Ok((status, json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    // Real time, in fractions of a second: the bounds are loose for a busy machine.

    #[tokio::test]
    async fn polling_stops_at_the_first_true() {
        let calls = AtomicU32::new(0);
        let found = poll_until(Duration::from_secs(30), || async { calls.fetch_add(1, Ordering::SeqCst) == 3 }).await;
        assert_eq!(found, Ok(()));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn polling_gives_up_after_the_timeout_even_if_a_check_hangs() {
        let timeout = Duration::from_millis(200);
        let waited = poll_until(timeout, std::future::pending::<bool>).await.unwrap_err();
        assert!(waited >= timeout && waited < timeout * 10, "{waited:?}");
        let waited = poll_until(timeout, || async { false }).await.unwrap_err();
        assert!(waited >= timeout && waited < timeout * 10, "{waited:?}");
    }
}
