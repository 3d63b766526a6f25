//! What a user sees of a trial's attempts (`sweep status SWEEP TRIAL`), and how the coordinator
//! hands its checkpoint root to agents so a retry on another node can resume.

mod common;

use common::*;
use sweep_proto::v1 as pb;
use sweep_proto::v1::agent_service_client::AgentServiceClient;
use tonic::Code;

#[tokio::test]
async fn each_attempt_shows_its_agent_outcome_epochs_and_whether_it_resumed() {
    let env = Env::new(LONG_TTL);
    let c = env.start().await;
    c.submit(sweep("resume", &[1], "[retry]\nmax_attempts = 3\nbackoff = \"0s\"")).await.unwrap();
    let trial = c.get("resume").await.trials[0].trial_id.clone();
    let mut a = c.agent("node-a", 1).await;
    let first = a.lease_one().await;
    a.report(first.lease_id, &[(1, &[("loss", 1.0)]), (2, &[("loss", 0.8)])]).await.unwrap();
    assert_eq!(a.exit(first.lease_id, 1, "RuntimeError: boom").await.unwrap(), "pending");
    // The second attempt trains epochs 3-4 only: it resumed from the checkpoint of epoch 2.
    let mut b = c.agent("node-b", 1).await;
    let second = b.lease_one().await;
    b.report(second.lease_id, &[(3, &[("loss", 0.6)]), (4, &[("loss", 0.5)])]).await.unwrap();
    assert_eq!(b.exit(second.lease_id, 0, "").await.unwrap(), "succeeded");

    let resp = c
        .sweeps
        .clone()
        .get_trial(pb::GetTrialRequest { sweep_id: "resume".into(), trial_id: trial.clone() })
        .await
        .unwrap()
        .into_inner();
    let t = resp.trial.unwrap();
    assert_eq!((t.trial_id.as_str(), t.state.as_str(), t.attempt), (trial.as_str(), "succeeded", 2));
    let [one, two] = &resp.attempts[..] else { panic!("two attempts: {:?}", resp.attempts) };
    assert_eq!(
        (one.attempt, one.agent.as_str(), one.outcome.as_str(), one.exit_code),
        (1, a.id.as_str(), "failed", Some(1))
    );
    assert!(one.error.contains("RuntimeError: boom"), "{one:?}");
    assert_eq!((one.first_epoch, one.last_epoch, one.resumed_after_epoch), (Some(1), Some(2), None));
    assert_eq!(
        (two.attempt, two.agent.as_str(), two.outcome.as_str(), two.exit_code),
        (2, b.id.as_str(), "succeeded", Some(0))
    );
    assert_eq!((two.first_epoch, two.last_epoch, two.resumed_after_epoch), (Some(3), Some(4), Some(2)));
    assert!(two.finished_at_ms >= two.leased_at_ms && two.leased_at_ms > 0);

    let get = |sweep: &str, trial: &str| {
        let mut s = c.sweeps.clone();
        let req = pb::GetTrialRequest { sweep_id: sweep.into(), trial_id: trial.into() };
        async move { s.get_trial(req).await }
    };
    assert_status(get("resume", "0123456789abcdef").await, Code::NotFound, "trial 0123456789abcdef in sweep resume");
    assert_status(get("nope", &trial).await, Code::NotFound, "nope");
    assert_status(get("resume", "../etc/passwd").await, Code::InvalidArgument, "trial_id");
    assert_status(get("../x", &trial).await, Code::InvalidArgument, "sweep_id");
}

#[tokio::test]
async fn agents_get_the_cluster_checkpoint_root_and_the_count_of_other_live_hosts() {
    let env = Env::new(LONG_TTL);
    let config =
        sweep_coordinator::CoordinatorConfig { checkpoint_root: Some("/shared/checkpoints".into()), ..env.config() };
    let c = Coordinator::connect(sweep_coordinator::start(&config).await.unwrap()).await;
    let register = |host: &str| {
        let mut client = AgentServiceClient::new(c.channel.clone());
        let req = pb::RegisterRequest { name: "agent".into(), hostname: host.into(), slots: 1, gpus: vec![] };
        async move { client.register(req).await.unwrap().into_inner() }
    };
    let first = register("node-a").await;
    assert_eq!((first.checkpoint_root.as_str(), first.other_hosts_alive), ("/shared/checkpoints", 0));
    assert_eq!(register("node-a").await.other_hosts_alive, 0, "a second agent on the same host shares its disk");
    assert_eq!(register("node-b").await.other_hosts_alive, 1);
    assert_eq!(register("node-c").await.other_hosts_alive, 2);

    let other = Env::new(LONG_TTL);
    let plain = other.start().await;
    let r = AgentServiceClient::new(plain.channel.clone())
        .register(pb::RegisterRequest { name: "x".into(), hostname: "h".into(), slots: 1, gpus: vec![] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.checkpoint_root, "", "no cluster root unless the coordinator is given one");
}
