//! Sweeps belong to the user token that submitted them, over real gRPC with token files: only
//! that user or an admin may cancel or resubmit one, ListSweeps shows the owner, and a
//! resubmission that changes the retry policy or the trials' definition needs `force`.

mod common;

use common::{assert_status, sweep, Env, LONG_TTL};
use std::os::unix::fs::PermissionsExt;
use sweep_coordinator::{CoordinatorConfig, RunningCoordinator};
use sweep_proto::v1::{self as pb, sweep_service_client::SweepServiceClient};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

const ALICE: &str = "alice-token-0c81";
const BOB: &str = "bob-token-77ae";
const ROOT: &str = "root-token-4d2f";
const BARE: &str = "bare-token-9e10";

/// Token files (mode 0600) naming alice, bob and an admin, plus one bare token.
fn secured(env: &Env) -> CoordinatorConfig {
    let users = env.dir.path().join("users.tokens");
    let agents = env.dir.path().join("agents.tokens");
    std::fs::write(&users, format!("alice:{ALICE}\nbob:{BOB}\n# operators\nadmin:{ROOT}\n{BARE}\n")).unwrap();
    std::fs::write(&agents, "agent-token-1\n").unwrap();
    for f in [&users, &agents] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut config = env.config();
    config.security.user_tokens = Some(users);
    config.security.agent_tokens = Some(agents);
    config
}

struct Users {
    running: RunningCoordinator,
    client: SweepServiceClient<Channel>,
}

impl Users {
    async fn start(config: &CoordinatorConfig) -> Users {
        let running = sweep_coordinator::start(config).await.expect("coordinator starts");
        let channel = Channel::from_shared(format!("http://{}", running.local_addr)).unwrap().connect().await.unwrap();
        Users { running, client: SweepServiceClient::new(channel) }
    }

    async fn submit(&self, token: &str, req: pb::SubmitSweepRequest) -> Result<pb::SubmitSweepResponse, Status> {
        self.client.clone().submit_sweep(as_user(req, token)).await.map(|r| r.into_inner())
    }

    async fn cancel(&self, token: &str, sweep: &str) -> Result<u32, Status> {
        let req = as_user(pb::CancelSweepRequest { sweep_id: sweep.into() }, token);
        self.client.clone().cancel_sweep(req).await.map(|r| r.into_inner().trials_cancelled)
    }

    async fn retry(&self, token: &str, sweep: &str) -> Result<u32, Status> {
        let req = as_user(pb::RetrySweepRequest { sweep_id: sweep.into(), failed: true, cancelled: true }, token);
        self.client.clone().retry_sweep(req).await.map(|r| r.into_inner().trials_retried)
    }

    async fn owners(&self, token: &str) -> Vec<(String, String)> {
        let listed = self.client.clone().list_sweeps(as_user(pb::ListSweepsRequest {}, token)).await.unwrap();
        listed.into_inner().sweeps.into_iter().map(|s| (s.sweep_id, s.owner)).collect()
    }
}

fn as_user<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn only_the_submitter_or_an_admin_cancels_or_resubmits_a_sweep() {
    let env = Env::new(LONG_TTL);
    let u = Users::start(&secured(&env)).await;
    u.submit(ALICE, sweep("alices", &[1, 2], "")).await.unwrap();
    u.submit(BARE, sweep("bares", &[1], "")).await.unwrap();
    let owners = u.owners(BOB).await;
    assert_eq!(owners[0], ("alices".to_string(), "alice".to_string()));
    assert!(owners[1].1.starts_with("token-"), "a bare token acts under a stable name: {owners:?}");

    assert_status(u.cancel(BOB, "alices").await, Code::PermissionDenied, "`alice`");
    assert_status(u.submit(BOB, sweep("alices", &[1, 2, 3], "")).await, Code::PermissionDenied, "`alice`");
    let forced = pb::SubmitSweepRequest { force: true, ..sweep("alices", &[1, 2, 3], "") };
    assert_status(u.submit(BOB, forced).await, Code::PermissionDenied, "`alice`");
    assert_status(u.cancel(BARE, "alices").await, Code::PermissionDenied, "`alice`");
    let counts = |resp: pb::SubmitSweepResponse| (resp.trials_added, resp.trials_total);
    assert_eq!(
        counts(u.submit(ALICE, sweep("alices", &[1, 2, 3], "")).await.unwrap()),
        (1, 3),
        "the owner adds trials"
    );
    assert_eq!(counts(u.submit(ROOT, sweep("alices", &[1, 2, 3, 4], "")).await.unwrap()), (1, 4), "so may an admin");
    assert_eq!(u.owners(ROOT).await[0].1, "alice", "an admin's resubmission leaves the owner");
    assert_eq!(u.cancel(ROOT, "alices").await.unwrap(), 4, "an admin cancels anyone's sweep");
    assert_eq!(u.cancel(BARE, "bares").await.unwrap(), 1, "a bare token cancels its own");

    // Retrying follows the same rule as cancelling.
    assert_status(u.retry(BOB, "alices").await, Code::PermissionDenied, "may retry it");
    assert_eq!(u.retry(ALICE, "alices").await.unwrap(), 4, "the owner queues her cancelled trials again");
    assert_eq!(u.cancel(ALICE, "alices").await.unwrap(), 4);
    assert_eq!(u.retry(ROOT, "alices").await.unwrap(), 4, "so may an admin");
    u.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_changed_policy_or_definition_is_refused_without_force_and_named() {
    let env = Env::new(LONG_TTL);
    let u = Users::start(&secured(&env)).await;
    u.submit(ALICE, sweep("policy", &[1, 2], "[retry]\nmax_attempts = 3")).await.unwrap();

    let changed = sweep("policy", &[1, 2], "[retry]\nmax_attempts = 5\nbackoff = \"2s\"\n[resources]\ngpus = 1");
    let status = u.submit(ALICE, changed.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    for needle in [
        "sweep `policy` exists with retry.max_attempts = 3; this submission has 5",
        "retry.backoff = 1000ms; this submission has 2000ms",
        "resources.gpus = 0; this submission has 1",
        "--force",
    ] {
        assert!(status.message().contains(needle), "`{needle}` in: {}", status.message());
    }
    // Adding grid values under the same terms only adds trials.
    let grown = u.submit(ALICE, sweep("policy", &[1, 2, 3], "[retry]\nmax_attempts = 3")).await.unwrap();
    assert_eq!((grown.trials_added, grown.trials_total), (1, 3));

    // --force replaces the terms and keeps the stored trials; the new terms are then the ones a
    // resubmission is compared with.
    let forced = u.submit(ALICE, pb::SubmitSweepRequest { force: true, ..changed.clone() }).await.unwrap();
    assert_eq!((forced.trials_added, forced.trials_total), (0, 3), "same trial ids: the stored trials stay");
    u.submit(ALICE, changed).await.expect("the same terms again");
    assert_status(
        u.submit(ALICE, sweep("policy", &[1, 2], "[retry]\nmax_attempts = 3")).await,
        Code::FailedPrecondition,
        "retry.max_attempts = 5; this submission has 3",
    );

    // A changed command is a changed definition; forced, its trials are new ones beside the old.
    let other = |force| {
        pb::SubmitSweepRequest {
        force,
        ..common::submission(
            "name = \"policy\"\nworkload = \"command\"\ncommand = [\"train2\"]\n[grid]\nwidth = [1]\n[retry]\nmax_attempts = 5\nbackoff = \"2s\"\n[resources]\ngpus = 1\n".into(),
        )
    }
    };
    assert_status(u.submit(ALICE, other(false)).await, Code::FailedPrecondition, "command = [\"train\"]");
    let forced = u.submit(ALICE, other(true)).await.unwrap();
    assert_eq!((forced.trials_added, forced.trials_total), (1, 4));
    u.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_token_files_every_user_may_do_everything_and_no_owner_is_recorded() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("open", &[1], "")).await.unwrap();
    let listed = c.sweeps.clone().list_sweeps(pb::ListSweepsRequest {}).await.unwrap().into_inner();
    assert_eq!(listed.sweeps[0].owner, "");
    c.sweeps.clone().cancel_sweep(pb::CancelSweepRequest { sweep_id: "open".into() }).await.unwrap();
    // Terms still need --force: that guards against mistakes, not strangers.
    let changed = sweep("open", &[1], "[retry]\nmax_attempts = 9");
    assert_status(c.submit(changed.clone()).await, Code::FailedPrecondition, "retry.max_attempts");
    c.submit(pb::SubmitSweepRequest { force: true, ..changed }).await.unwrap();
}

#[tokio::test]
async fn only_the_owner_or_an_admin_resumes_a_sweep_and_only_an_admin_lets_agents_out() {
    let env = Env::new(LONG_TTL);
    let users = Users::start(&secured(&env)).await;
    users.submit(ALICE, sweep("mine", &[1], "")).await.unwrap();
    let resume = |token: &str| {
        let mut client = users.client.clone();
        let req = as_user(pb::ResumeSweepRequest { sweep_id: "mine".into() }, token);
        async move { client.resume_sweep(req).await }
    };
    assert_status(resume(BOB).await, Code::PermissionDenied, "`alice`");
    // The owner and an admin get past the check; the sweep is not paused.
    assert_status(resume(ALICE).await, Code::FailedPrecondition, "not paused");
    assert_status(resume(ROOT).await, Code::FailedPrecondition, "not paused");

    let unquarantine = |token: &str| {
        let mut client = users.client.clone();
        let req = as_user(pb::UnquarantineAgentRequest { agent: "node-1".into() }, token);
        async move { client.unquarantine_agent(req).await }
    };
    assert_status(unquarantine(ALICE).await, Code::PermissionDenied, "`admin`");
    assert_status(unquarantine(ROOT).await, Code::NotFound, "node-1");
    users.running.shutdown().await.unwrap();
}
