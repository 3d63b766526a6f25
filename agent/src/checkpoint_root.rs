//! Where this agent keeps checkpoints: its own `--checkpoint-root`, else the cluster's root that
//! the coordinator hands out at registration, else a folder under its work dir. A private folder
//! means a retry on another node starts over, so the agent says so when other hosts serve the
//! same coordinator.

use crate::config::AgentConfig;
use std::path::PathBuf;
use sweep_proto::v1 as pb;

/// The root to use, logging why when it is not the obvious one.
pub fn choose(config: &AgentConfig, registered: &pb::RegisterResponse) -> PathBuf {
    let cluster = Some(PathBuf::from(&registered.checkpoint_root)).filter(|p| !p.as_os_str().is_empty());
    if let Some(own) = &config.checkpoint_root {
        if let Some(cluster) = cluster.filter(|c| c != own) {
            tracing::info!(own = %own.display(), coordinator = %cluster.display(), "checkpoints go to this agent's --checkpoint-root, not the coordinator's");
        }
        return own.clone();
    }
    if let Some(cluster) = cluster {
        match std::fs::create_dir_all(&cluster) {
            Ok(()) => {
                tracing::info!(root = %cluster.display(), "checkpoints go to the coordinator's --checkpoint-root");
                return cluster;
            }
            Err(e) => tracing::warn!(
                root = %cluster.display(), error = %e,
                "cannot use the coordinator's --checkpoint-root on this node (is the shared filesystem mounted?); keeping checkpoints private to this node"
            ),
        }
    }
    let private = config.checkpoint_root();
    if registered.other_hosts_alive > 0 {
        tracing::warn!(
            root = %private.display(), other_hosts = registered.other_hosts_alive,
            "checkpoints are private to this node while agents on other hosts serve this coordinator: a trial retried on another node starts over. Give every agent --checkpoint-root on a shared filesystem, or the coordinator --checkpoint-root"
        );
    }
    private
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        agent: AgentConfig,
    }

    fn config(args: &[&str]) -> AgentConfig {
        let mut argv = vec!["sweep-agent"];
        argv.extend_from_slice(args);
        Flags::parse_from(argv).agent
    }

    fn registered(root: &str, other_hosts_alive: u32) -> pb::RegisterResponse {
        pb::RegisterResponse { checkpoint_root: root.into(), other_hosts_alive, ..Default::default() }
    }

    #[test]
    fn the_agents_own_root_wins_then_the_coordinators_then_its_work_dir() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = dir.path().join("shared/checkpoints");
        let cluster_arg = cluster.to_str().unwrap();
        let work = dir.path().join("work");
        let work_arg = work.to_str().unwrap();
        let own = config(&["--work-dir", work_arg, "--checkpoint-root", "/own"]);
        assert_eq!(choose(&own, &registered(cluster_arg, 2)), PathBuf::from("/own"));
        let plain = config(&["--work-dir", work_arg]);
        assert_eq!(choose(&plain, &registered(cluster_arg, 2)), cluster);
        assert!(cluster.is_dir(), "created");
        assert_eq!(choose(&plain, &registered("", 2)), work.join("checkpoints"));
    }

    #[test]
    fn a_coordinator_root_this_node_cannot_create_falls_back_to_the_work_dir() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        std::fs::write(&file, "").unwrap();
        let plain = config(&["--work-dir", dir.path().to_str().unwrap()]);
        let unusable = file.join("checkpoints");
        assert_eq!(choose(&plain, &registered(unusable.to_str().unwrap(), 1)), dir.path().join("checkpoints"));
    }
}
