//! Bearer-token authentication and message limits over real gRPC: a coordinator on 127.0.0.1:0
//! with user and agent token files in a temporary folder, called without, with wrong, and with
//! each role's token. Health stays open; without token files every call is admitted.

mod common;

use common::{sweep, Env, LONG_TTL};
use std::path::PathBuf;
use sweep_coordinator::{CoordinatorConfig, RunningCoordinator};
use sweep_proto::v1::{self as pb, agent_service_client::AgentServiceClient, sweep_service_client::SweepServiceClient};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

const USER_TOKEN: &str = "user-7f3a9c";
const AGENT_TOKEN: &str = "agent-51be02";

/// Writes both token files (with comments and blank lines, as users write them) and returns the
/// coordinator's settings with them set.
fn secured(env: &Env) -> CoordinatorConfig {
    let users = env.dir.path().join("users.tokens");
    let agents = env.dir.path().join("agents.tokens");
    std::fs::write(&users, format!("# people who may submit\n\n{USER_TOKEN}\nsecond-user-token\n")).unwrap();
    std::fs::write(&agents, format!("# cluster agents\n{AGENT_TOKEN}\n\n")).unwrap();
    let mut config = env.config();
    config.security.user_tokens = Some(users);
    config.security.agent_tokens = Some(agents);
    config
}

struct Clients {
    running: RunningCoordinator,
    sweeps: SweepServiceClient<Channel>,
    agents: AgentServiceClient<Channel>,
    channel: Channel,
}

async fn start(config: &CoordinatorConfig) -> Clients {
    let running = sweep_coordinator::start(config).await.expect("coordinator starts");
    let channel = Channel::from_shared(format!("http://{}", running.local_addr)).unwrap().connect().await.unwrap();
    Clients {
        running,
        sweeps: SweepServiceClient::new(channel.clone()),
        agents: AgentServiceClient::new(channel.clone()),
        channel,
    }
}

/// `message` with `authorization: Bearer <token>`.
fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn register() -> pb::RegisterRequest {
    pb::RegisterRequest { name: "a".into(), hostname: "test-host".into(), slots: 1, gpus: vec![] }
}

/// Registers an agent with the agent token; its request for one trial, with its session secret.
async fn registered_lease_request(agents: &mut AgentServiceClient<Channel>) -> pb::LeaseRequest {
    let reg = agents.register(with_token(register(), AGENT_TOKEN)).await.unwrap().into_inner();
    pb::LeaseRequest { agent_id: reg.agent_id, free_slots: 1, session_secret: reg.session_secret, ..Default::default() }
}

fn expect_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    let status = result.expect_err(&format!("expected {code:?}"));
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    status
}

#[tokio::test]
async fn a_call_without_a_token_is_unauthenticated_and_says_a_token_is_needed() {
    let env = Env::new(LONG_TTL);
    let mut c = start(&secured(&env)).await;
    let status = expect_code(c.sweeps.submit_sweep(sweep("s", &[1], "")).await, Code::Unauthenticated);
    assert!(status.message().contains("needs a token"), "{}", status.message());
    let status = expect_code(c.agents.register(register()).await, Code::Unauthenticated);
    assert!(status.message().contains("needs a token"), "{}", status.message());
    expect_code(c.sweeps.list_sweeps(pb::ListSweepsRequest::default()).await, Code::Unauthenticated);
    c.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_wrong_token_is_unauthenticated() {
    let env = Env::new(LONG_TTL);
    let mut c = start(&secured(&env)).await;
    let status = expect_code(
        c.sweeps.submit_sweep(with_token(sweep("s", &[1], ""), "not-a-token")).await,
        Code::Unauthenticated,
    );
    assert!(status.message().contains("invalid token"), "{}", status.message());
    // A prefix of a valid token is not valid.
    expect_code(c.agents.register(with_token(register(), &AGENT_TOKEN[..5])).await, Code::Unauthenticated);
    // Something other than a bearer token.
    let mut basic = Request::new(register());
    basic.metadata_mut().insert("authorization", "Basic dXNlcjpwdw==".parse().unwrap());
    expect_code(c.agents.register(basic).await, Code::Unauthenticated);
    c.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_agent_token_cannot_submit_or_cancel_and_a_user_token_cannot_lease() {
    let env = Env::new(LONG_TTL);
    let mut c = start(&secured(&env)).await;
    let status =
        expect_code(c.sweeps.submit_sweep(with_token(sweep("s", &[1], ""), AGENT_TOKEN)).await, Code::PermissionDenied);
    assert!(status.message().contains("agent token"), "{}", status.message());
    let cancel = pb::CancelSweepRequest { sweep_id: "s".into() };
    expect_code(c.sweeps.cancel_sweep(with_token(cancel, AGENT_TOKEN)).await, Code::PermissionDenied);

    let lease = registered_lease_request(&mut c.agents).await;
    let status = expect_code(c.agents.lease(with_token(lease, USER_TOKEN)).await, Code::PermissionDenied);
    assert!(status.message().contains("user token"), "{}", status.message());
    expect_code(c.agents.register(with_token(register(), USER_TOKEN)).await, Code::PermissionDenied);
    c.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_right_tokens_work_for_both_roles() {
    let env = Env::new(LONG_TTL);
    let mut c = start(&secured(&env)).await;
    let submitted = c.sweeps.submit_sweep(with_token(sweep("s", &[1, 2], ""), USER_TOKEN)).await.unwrap().into_inner();
    assert_eq!(submitted.trials_added, 2);
    // Any token of the file works, not only the first.
    let listed = c.sweeps.list_sweeps(with_token(pb::ListSweepsRequest::default(), "second-user-token")).await.unwrap();
    assert_eq!(listed.into_inner().sweeps.len(), 1);

    let lease = registered_lease_request(&mut c.agents).await;
    let leases = c.agents.lease(with_token(lease, AGENT_TOKEN)).await.unwrap().into_inner().leases;
    assert_eq!(leases.len(), 1, "an agent with a valid token leases a trial");

    let cancel = pb::CancelSweepRequest { sweep_id: "s".into() };
    c.sweeps.cancel_sweep(with_token(cancel, USER_TOKEN)).await.unwrap();
    c.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn health_needs_no_token() {
    let env = Env::new(LONG_TTL);
    let c = start(&secured(&env)).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(c.channel.clone());
    for service in ["", "sweep.v1.SweepService", "sweep.v1.AgentService"] {
        let answer = health
            .check(tonic_health::pb::HealthCheckRequest { service: service.into() })
            .await
            .unwrap_or_else(|e| panic!("health of `{service}` without a token: {e:?}"))
            .into_inner();
        assert_eq!(answer.status(), tonic_health::pb::health_check_response::ServingStatus::Serving);
    }
    c.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_token_files_auth_is_off_and_a_warning_says_so() {
    let env = Env::new(LONG_TTL);
    let config = env.config();
    let warnings = sweep_coordinator::server::security_warnings(&config);
    assert!(warnings.iter().any(|w| w.contains("authentication is off")), "{warnings:?}");
    let mut c = start(&config).await;
    c.sweeps.submit_sweep(sweep("open", &[1], "")).await.expect("no token needed when auth is off");
    c.agents.register(register()).await.expect("agents need no token either");
    c.running.shutdown().await.unwrap();

    // With tokens but no TLS the warning is about clear text instead.
    let warnings = sweep_coordinator::server::security_warnings(&secured(&env));
    assert!(!warnings.iter().any(|w| w.contains("authentication is off")), "{warnings:?}");
    assert!(warnings.iter().any(|w| w.contains("clear text")), "{warnings:?}");
}

#[tokio::test]
async fn a_missing_or_empty_token_file_fails_the_start_and_names_it() {
    let env = Env::new(LONG_TTL);
    let mut config = secured(&env);
    let missing: PathBuf = env.dir.path().join("no-such-agents.tokens");
    config.security.agent_tokens = Some(missing.clone());
    let err = sweep_coordinator::start(&config).await.err().expect("start fails");
    assert!(format!("{err:#}").contains(&missing.display().to_string()), "{err:#}");

    let empty = env.dir.path().join("empty.tokens");
    std::fs::write(&empty, "# nobody yet\n\n").unwrap();
    config.security.agent_tokens = Some(empty.clone());
    let err = sweep_coordinator::start(&config).await.err().expect("start fails");
    assert!(format!("{err:#}").contains(&empty.display().to_string()), "{err:#}");

    config.security.agent_tokens = None;
    let err = sweep_coordinator::start(&config).await.err().expect("one file alone is refused");
    assert!(format!("{err:#}").contains("--agent-tokens"), "{err:#}");
}

#[tokio::test]
async fn a_bad_tls_file_fails_the_start_and_names_it() {
    let env = Env::new(LONG_TTL);
    let mut config = env.config();
    let cert = env.dir.path().join("server.pem");
    std::fs::write(&cert, "this is not a certificate").unwrap();
    config.security.tls_cert = Some(cert.clone());
    config.security.tls_key = Some(env.dir.path().join("server.key"));
    let err = sweep_coordinator::start(&config).await.err().expect("start fails");
    assert!(format!("{err:#}").contains(&cert.display().to_string()), "{err:#}");
}

#[tokio::test]
async fn submissions_above_tonics_default_are_decoded_and_oversized_messages_are_refused() {
    let env = Env::new(LONG_TTL);
    let mut c = start(&env.config()).await;
    // 8 MiB: twice tonic's 4 MiB default, well under the 64 MiB sweep limit. The handler may still
    // refuse a source that long, but only after decoding it: what matters here is that the
    // transport let it through.
    let mut big = sweep("big", &[1], "");
    big.source = "#".repeat(8 << 20);
    if let Err(status) = c.sweeps.submit_sweep(big).await {
        assert_ne!(status.code(), Code::ResourceExhausted, "an 8 MiB submission is decoded: {status:?}");
    }

    // tonic 0.14 refuses a message over the limit with OUT_OF_RANGE ("decoded message length too
    // large"), not RESOURCE_EXHAUSTED; agents do not retry it, which is right for a message that
    // will never fit.
    let mut huge = sweep("huge", &[1], "");
    huge.source = "#".repeat(sweep_coordinator::server::MAX_SWEEP_MESSAGE_BYTES + 1);
    let status = expect_code(c.sweeps.submit_sweep(huge).await, Code::OutOfRange);
    assert!(status.message().contains("too large"), "{}", status.message());

    let complete = pb::CompleteRequest {
        lease_id: 1,
        stderr_tail: "x".repeat(sweep_coordinator::server::MAX_AGENT_MESSAGE_BYTES + 1),
        ..Default::default()
    };
    expect_code(c.agents.complete(complete).await, Code::OutOfRange);
    c.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn token_files_others_can_read_are_warned_about_or_refused_under_strict_perms() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new(LONG_TTL);
    let mut config = secured(&env);
    let users = config.security.user_tokens.clone().unwrap();
    for file in [&users, config.security.agent_tokens.as_ref().unwrap()] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Without the flag: a warning in the log, and the coordinator serves.
    let c = start(&config).await;
    c.running.shutdown().await.unwrap();
    // With it, the start fails and names the file and its mode.
    config.security.strict_perms = true;
    let err = sweep_coordinator::start(&config).await.err().expect("refused under --strict-perms");
    let text = format!("{err:#}");
    assert!(text.contains(&users.display().to_string()) && text.contains("0644"), "{text}");
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = start(&config).await;
    c.running.shutdown().await.unwrap();
}
