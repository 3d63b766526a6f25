//! The web dashboard's server over real HTTP on 127.0.0.1:0, beside a real coordinator and store:
//! who may look (user tokens by header or by the login cookie, never agent tokens), what the API
//! answers as agents report, its bounds, and the actions behind the CLI's authorisation. The page
//! itself is driven in a real browser by `tests/tests/dashboard.rs`.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::SocketAddr;
use sweep_proto::v1::sweep_service_client::SweepServiceClient;

const ALICE: &str = "alice-token-4c1d";
const BOB: &str = "bob-token-9e27";
const AGENT: &str = "agent-token-77aa";

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request on a connection of its own.
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    conn.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    // Bodies of unknown length arrive chunked; the tests read JSON and HTML, so join the chunks.
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { unchunk(body) } else { body.to_string() };
    Answer { status, head: head.to_string(), body }
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let (path, headers): (String, Vec<(String, String)>) =
        (path.into(), headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    tokio::task::spawn_blocking(move || {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        http(addr, "GET", &path, &h, "")
    })
    .await
    .unwrap()
}

async fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let (path, body, headers): (String, String, Vec<(String, String)>) =
        (path.into(), body.into(), headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    tokio::task::spawn_blocking(move || {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        http(addr, "POST", &path, &h, &body)
    })
    .await
    .unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A coordinator without tokens, serving the dashboard, and the dashboard's address.
async fn open(env: &Env) -> (Coordinator, SocketAddr) {
    let mut config = env.config();
    config.http_listen = Some("127.0.0.1:0".into());
    let running = sweep_coordinator::start(&config).await.unwrap();
    let addr = running.http_addr.unwrap();
    (Coordinator::connect(running).await, addr)
}

/// A coordinator with user tokens for alice and bob and one agent token, serving the dashboard.
async fn secured(env: &Env) -> (sweep_coordinator::RunningCoordinator, SocketAddr) {
    let users = env.dir.path().join("users.tokens");
    let agents = env.dir.path().join("agents.tokens");
    std::fs::write(&users, format!("alice:{ALICE}\nbob:{BOB}\n")).unwrap();
    std::fs::write(&agents, format!("{AGENT}\n")).unwrap();
    let mut config = env.config();
    config.security.user_tokens = Some(users);
    config.security.agent_tokens = Some(agents);
    config.http_listen = Some("127.0.0.1:0".into());
    let running = sweep_coordinator::start(&config).await.unwrap();
    let http = running.http_addr.unwrap();
    (running, http)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_user_token_opens_the_pages_and_the_api() {
    let env = Env::new(LONG_TTL);
    let (_running, addr) = secured(&env).await;

    for path in ["/ui/", "/api/sweeps", "/ui/assets/app.js", "/ui/assets/plotly.js", "/api/events", "/api/agents"] {
        let none = get(addr, path, &[]).await;
        assert_eq!(none.status, 401, "{path} without a token");
        let agent = get(addr, path, &[("Authorization", &bearer(AGENT))]).await;
        assert_eq!(agent.status, 403, "{path} with an agent token");
        let wrong = get(addr, path, &[("Authorization", "Bearer not-a-token")]).await;
        assert_eq!(wrong.status, 401, "{path} with an unknown token");
        assert!(
            !none.body.contains("plotly") && !none.body.contains("\"sweeps\""),
            "{path} leaked: {:.200}",
            none.body
        );
    }
    let page = get(addr, "/ui/", &[]).await;
    assert!(page.body.contains("<form method=\"post\" action=\"/ui/login\">"), "the login page answers instead");
    assert_eq!(get(addr, "/ui/login", &[]).await.status, 200);
    assert_eq!(get(addr, "/metrics", &[]).await.status, 200, "Prometheus scrapes stay open, as before");
    assert_eq!(get(addr, "/api/sweeps", &[("Authorization", &bearer(ALICE))]).await.status, 200);

    // Paste once: the cookie carries the token from then on, and scripts cannot read it.
    let login =
        post(addr, "/ui/login", &[("Content-Type", "application/x-www-form-urlencoded")], &format!("token={ALICE}"))
            .await;
    assert_eq!(login.status, 303, "{}", login.head);
    let cookie_line =
        login.head.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).expect("a cookie is set");
    assert!(cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"), "{cookie_line}");
    let cookie = cookie_line.split_once(':').unwrap().1.trim().split(';').next().unwrap().to_string();
    let me = get(addr, "/api/session", &[("Cookie", &cookie)]).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["user"], "alice");
    let page = get(addr, "/ui/", &[("Cookie", &cookie)]).await;
    assert!(page.head.contains("content-security-policy: default-src 'self'; script-src 'self'"), "{}", page.head);

    // Forged cookies and tokens are no one.
    for forged in ["sweep_token=zz", "sweep_token=616263", &format!("sweep_token={}", "61".repeat(5000))] {
        assert_eq!(get(addr, "/api/sweeps", &[("Cookie", forged)]).await.status, 401, "{forged:.40}");
    }
    let agent_login =
        post(addr, "/ui/login", &[("Content-Type", "application/x-www-form-urlencoded")], &format!("token={AGENT}"))
            .await;
    assert_eq!(agent_login.status, 403);
    assert!(!agent_login.head.to_ascii_lowercase().contains("set-cookie"));
    let huge = format!("token={}", "x".repeat(3000));
    let refused = post(addr, "/ui/login", &[("Content-Type", "application/x-www-form-urlencoded")], &huge).await;
    assert_eq!(refused.status, 401, "a token longer than any token file holds");
    let oversized = format!("token={}", "x".repeat(100_000));
    let refused = post(addr, "/ui/login", &[("Content-Type", "application/x-www-form-urlencoded")], &oversized).await;
    assert_eq!(refused.status, 413, "a form body beyond the bound is not read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_need_the_page_and_the_owner_as_the_cli_does() {
    let env = Env::new(LONG_TTL);
    let (running, addr) = secured(&env).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", running.local_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut sweeps = SweepServiceClient::new(channel);
    let mut req = tonic::Request::new(sweep("alices", &[1, 2, 3], ""));
    req.metadata_mut().insert("authorization", bearer(ALICE).parse().unwrap());
    sweeps.submit_sweep(req).await.unwrap();

    let page = [("Authorization", bearer(BOB)), ("x-sweep-action", "1".to_string())];
    let h: Vec<(&str, &str)> = page.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bobs = post(addr, "/api/sweeps/alices/cancel", &h, "").await;
    assert_eq!(bobs.status, 403, "{}", bobs.body);
    assert!(bobs.json()["error"].as_str().unwrap().contains("submitted by `alice`"));
    let no_header = post(addr, "/api/sweeps/alices/cancel", &[("Authorization", &bearer(ALICE))], "").await;
    assert_eq!(no_header.status, 403, "a cross-site form cannot send the page's header");
    let alices =
        post(addr, "/api/sweeps/alices/cancel", &[("Authorization", &bearer(ALICE)), ("x-sweep-action", "1")], "")
            .await;
    assert_eq!(alices.status, 200, "{}", alices.body);
    assert_eq!(alices.json()["cancelled"], 3);
    let summary = get(addr, "/api/sweeps/alices", &[("Authorization", &bearer(BOB))]).await.json();
    assert_eq!(summary["counts"]["cancelled"], 3, "bob may look, not change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_follows_what_agents_report() {
    let env = Env::new(LONG_TTL);
    let (c, addr) = open(&env).await;
    c.submit(sweep(
        "live",
        &[1, 2, 3, 4, 5, 6],
        "[params]\nnote = \"<script>alert(1)</script>\"\n[retry]\nmax_attempts = 1",
    ))
    .await
    .unwrap();
    let mut agent = c.agent("a", 6).await;
    let leases = agent.lease(6, 0).await;
    assert_eq!(leases.len(), 6);
    for (i, l) in leases.iter().enumerate() {
        agent.report(l.lease_id, &[(1, &[("test_acc", 0.1 * i as f64), ("<b>bold</b>", 1.0)])]).await.unwrap();
    }

    let trials = get(addr, "/api/sweeps/live/trials?sort=metric:test_acc&desc=true&limit=4", &[]).await.json();
    assert_eq!(trials["matched"], 6);
    let accs: Vec<f64> =
        trials["rows"].as_array().unwrap().iter().map(|r| r["metrics"]["test_acc"].as_f64().unwrap()).collect();
    assert_eq!(accs, [0.5, 0.4, 0.30000000000000004, 0.2], "the best first, four to a page");
    let best = trials["rows"][0]["trial_id"].as_str().unwrap().to_string();
    let filtered = get(addr, "/api/sweeps/live/trials?where=test_acc%3E%3D0.4,width%3C6", &[]).await.json();
    assert_eq!(filtered["matched"], 1, "{filtered}");

    // A trial's curve gains a point when it reports an epoch.
    let curve = |j: &serde_json::Value| {
        j["trials"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["trial_id"] == best.as_str())
            .map(|t| t["points"].as_array().unwrap().len())
    };
    let before = get(addr, "/api/sweeps/live/curves?metric=test_acc&top=3", &[]).await.json();
    assert_eq!(curve(&before), Some(1));
    let best_lease = leases.iter().find(|l| l.trial.as_ref().unwrap().trial_id == best).unwrap().lease_id;
    agent.report(best_lease, &[(2, &[("test_acc", 0.9)])]).await.unwrap();
    let after = get(addr, "/api/sweeps/live/curves?metric=test_acc&top=3", &[]).await.json();
    assert_eq!(curve(&after), Some(2), "{after}");
    let trials = get(addr, "/api/sweeps/live/trials?sort=metric:test_acc&desc=true&limit=1", &[]).await.json();
    assert_eq!(trials["rows"][0]["metrics"]["test_acc"], 0.9, "the table follows the finals");

    // A failed trial's page has its log, and retrying it queues it again.
    let failed = &leases[0];
    agent.exit(failed.lease_id, 1, "Traceback\n<script>alert('log')</script>\nValueError: boom").await.unwrap();
    let page =
        get(addr, &format!("/api/sweeps/live/trials/{}", failed.trial.as_ref().unwrap().trial_id), &[]).await.json();
    assert_eq!(page["state"], "failed");
    assert!(page["log"].as_str().unwrap().contains("<script>alert('log')</script>"), "{page}");
    assert_eq!(
        page["params"]["note"], "<script>alert(1)</script>",
        "strings arrive as data; the page writes them as text"
    );
    assert_eq!(page["attempts"][0]["agent"].as_str().map(|a| !a.is_empty()), Some(true));
    assert!(page["metrics"]["<b>bold</b>"].is_array());
    let retried = post(
        addr,
        &format!("/api/sweeps/live/trials/{}/retry", failed.trial.as_ref().unwrap().trial_id),
        &[("x-sweep-action", "1")],
        "",
    )
    .await;
    assert_eq!(retried.json()["retried"], 1);
    let again = post(addr, &format!("/api/sweeps/live/trials/{}/retry", best), &[("x-sweep-action", "1")], "").await;
    assert_eq!(again.status, 400, "a running trial is not retried: {}", again.body);

    // Importance, parallel coordinates and the live feed answer.
    let parallel = get(addr, "/api/sweeps/live/parallel?metric=test_acc", &[]).await.json();
    assert_eq!(parallel["dimensions"][0]["label"], "width");
    assert_eq!(get(addr, "/api/sweeps/live/importance?metric=test_acc", &[]).await.status, 200);

    // Bounds: every outsider's input is refused or cut with a reason.
    let long_where = format!("/api/sweeps/live/trials?where={}", "width%3E1,".repeat(200));
    assert_eq!(get(addr, &long_where, &[]).await.status, 400);
    let page = get(addr, "/api/sweeps/live/trials?limit=1000000", &[]).await.json();
    assert_eq!(page["limit"], 500);
    assert_eq!(get(addr, "/api/sweeps/%3Cscript%3E/trials", &[]).await.status, 400, "not a sweep name");
    assert_eq!(get(addr, "/api/sweeps/nope", &[]).await.status, 404);
    assert_eq!(get(addr, &format!("/api/sweeps/live/trials/{}", "x".repeat(300)), &[]).await.status, 400);
    assert_eq!(
        get(addr, "/api/sweeps/live/curves?top=100000", &[]).await.json()["trials"].as_array().unwrap().len(),
        6
    );
    assert_eq!(get(addr, "/api/sweeps/live/trials?states=running,%3Cscript%3E", &[]).await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_page_shows_what_each_gpu_has_left() {
    let env = Env::new(LONG_TTL);
    let (c, addr) = open(&env).await;
    let mut agent = c.agent("gpu-node", 2).await;
    let mut req = agent.lease_request();
    req.free_slots = 2;
    req.gpu_free_shares = vec![0.25, 1.0];
    req.gpu_free_bytes = vec![3 << 30, 80 << 30];
    agent.client.lease(req).await.unwrap();
    let agents = get(addr, "/api/agents", &[]).await.json();
    let room = &agents["agents"][0]["gpu_room"];
    assert_eq!(room[0]["share"], 0.25, "{agents}");
    assert_eq!(room[1]["free_bytes"], 80u64 << 30);
    assert!(agents["agents"][0]["gpu_room_at_ms"].as_i64().is_some());
}
