//! The lab cluster of `deploy/docker/compose.yaml`, started for real from the images `make images`
//! builds: one coordinator container and N agent containers on a private Docker network. The
//! compose file is used as users use it; a small override written beside the run binds its two
//! volumes to folders of the run (so the Parquet can be read back here), points its secrets at
//! tokens made by `deploy/docker/tokens.sh`, and nothing else. Faults are Docker's own: a network
//! disconnect, a frozen cgroup, a killed or removed container.

use crate::cluster::{bin, free_port};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The tag `make images` gives both images, and compose.yaml's default: the workspace version.
const TAG: &str = env!("CARGO_PKG_VERSION");
const IMAGES: [&str; 2] = ["sweep-coordinator", "sweep-agent"];
/// The uid and gid the images run as (deploy/docker/*.Dockerfile).
const IMAGE_UID: u32 = 10001;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// Runs `docker ARGS` and returns its stdout; panics with its stderr when it fails.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().expect("run docker");
    assert!(out.status.success(), "docker {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Why the images of `make images` cannot be run here, if they cannot: no Docker daemon, or the
/// images not built.
pub fn images_unavailable() -> Option<String> {
    match Command::new("docker").args(["info", "--format", "{{.ServerVersion}}"]).output() {
        Ok(o) if o.status.success() => {}
        _ => return Some("no Docker daemon answers `docker info`".into()),
    }
    IMAGES.iter().map(|image| format!("{image}:{TAG}")).find_map(|image| {
        let built =
            Command::new("docker").args(["image", "inspect", &image]).output().is_ok_and(|o| o.status.success());
        (!built).then(|| format!("the image {image} is not built (`make images`)"))
    })
}

/// Why the compose cluster cannot start here, if it cannot: what [`images_unavailable`] says, no
/// Compose, or not root (the volumes' folders are given to the images' user).
pub fn unavailable() -> Option<String> {
    if let Some(why) = images_unavailable() {
        return Some(why);
    }
    if compose_tool().is_none() {
        return Some("neither `docker compose` nor `docker-compose` is installed".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root: the volume folders must be given to the images' user, uid 10001".into());
    }
    None
}

/// `docker compose` (v2) where it exists, else `docker-compose` (v1); both take the same arguments.
fn compose_tool() -> Option<Vec<&'static str>> {
    let works =
        |cmd: &[&str]| Command::new(cmd[0]).args(&cmd[1..]).arg("version").output().is_ok_and(|o| o.status.success());
    [vec!["docker", "compose"], vec!["docker-compose"]].into_iter().find(|c| works(c))
}

/// One compose project, taken down with its volumes when dropped.
pub struct ComposeCluster {
    pub root: PathBuf,
    project: String,
    tool: Vec<&'static str>,
    files: Vec<PathBuf>,
    env: Vec<(String, String)>,
    url: String,
    user_token: String,
    /// Containers the test paused; unpaused before the project goes down.
    paused: Vec<String>,
}

impl ComposeCluster {
    /// `docker compose up` of the coordinator and `agents` agents, with the lease TTL given, and
    /// waits until every agent has registered.
    pub fn start(root: &Path, agents: usize, lease_ttl: Duration) -> ComposeCluster {
        let tool = compose_tool().expect("a compose tool");
        let state = root.join("state");
        let shared = root.join("shared");
        let tokens = root.join("tokens");
        for dir in [&state, &shared] {
            std::fs::create_dir_all(dir).expect("volume folder");
            std::os::unix::fs::chown(dir, Some(IMAGE_UID), Some(IMAGE_UID)).expect("chown volume folder");
        }
        let made = Command::new(repo().join("deploy/docker/tokens.sh")).arg(&tokens).output().expect("tokens.sh");
        assert!(made.status.success(), "tokens.sh failed: {}", String::from_utf8_lossy(&made.stderr));
        let user_token = std::fs::read_to_string(tokens.join("user.token")).expect("user token").trim().to_string();

        let bind = |dir: &Path| {
            format!("    driver: local\n    driver_opts: {{ type: none, o: bind, device: \"{}\" }}\n", dir.display())
        };
        let secret = |name: &str| format!("  {name}:\n    file: \"{}\"\n", tokens.join(name).display());
        let overrides = format!(
            "# Written by the container tests: the run's own folders and tokens.\nversion: \"3.7\"\nvolumes:\n  state:\n{}  shared:\n{}secrets:\n{}{}{}",
            bind(&state),
            bind(&shared),
            secret("users.tokens"),
            secret("agents.tokens"),
            secret("agent.token"),
        );
        let override_file = root.join("compose.override.yaml");
        std::fs::write(&override_file, overrides).expect("write the compose override");

        let port = free_port();
        let project = format!("sweeptest{}", root.file_name().and_then(|n| n.to_str()).unwrap_or("x"))
            .to_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let ttl = format!("{}ms", lease_ttl.as_millis());
        let env = vec![
            ("SWEEP_PORT".to_string(), port.to_string()),
            ("SWEEP_AGENTS".to_string(), agents.to_string()),
            ("SWEEP_LEASE_TTL".to_string(), ttl),
            ("SWEEP_TAG".to_string(), TAG.to_string()),
        ];
        let cluster = ComposeCluster {
            root: root.to_path_buf(),
            project,
            tool,
            files: vec![repo().join("deploy/docker/compose.yaml"), override_file],
            env,
            url: format!("http://127.0.0.1:{port}"),
            user_token,
            paused: Vec::new(),
        };
        cluster.compose_ok(&["up", "-d", "--scale", &format!("agent={agents}")]);
        cluster.wait_for_agents(agents, Duration::from_secs(60));
        cluster
    }

    /// Runs the compose tool on this project.
    pub fn compose(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(self.tool[0]);
        cmd.args(&self.tool[1..]).arg("-p").arg(&self.project);
        for f in &self.files {
            cmd.arg("-f").arg(f);
        }
        cmd.args(args).envs(self.env.iter().map(|(k, v)| (k, v))).output().expect("run compose")
    }

    fn compose_ok(&self, args: &[&str]) {
        let out = self.compose(args);
        assert!(
            out.status.success(),
            "compose {} failed: {}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            self.logs(40)
        );
    }

    /// The ids of the service's containers, running or not, in a stable order.
    pub fn containers(&self, service: &str) -> Vec<String> {
        let project = format!("label=com.docker.compose.project={}", self.project);
        let service = format!("label=com.docker.compose.service={service}");
        let mut ids: Vec<String> = docker(&["ps", "-aq", "--no-trunc", "--filter", &project, "--filter", &service])
            .lines()
            .map(String::from)
            .collect();
        ids.sort();
        ids
    }

    pub fn coordinator(&self) -> String {
        self.containers("coordinator").into_iter().next().expect("the coordinator container")
    }

    /// The private network the project's containers share.
    pub fn network(&self) -> String {
        format!("{}_default", self.project)
    }

    /// The agent container holding a lease of a running trial of `sweep`, waiting up to `within`.
    pub fn agent_running(&self, sweep: &str, within: Duration) -> String {
        let until = Instant::now() + within;
        loop {
            if let Some(s) = self.status(sweep) {
                let running = s["trials"].as_array().into_iter().flatten().find(|t| t["state"] == "running");
                if let Some(name) = running.and_then(|t| t["agent"].as_str()) {
                    // An agent is named after its host, the container's short id.
                    if let Some(id) = self.containers("agent").into_iter().find(|id| id.starts_with(name)) {
                        return id;
                    }
                }
            }
            assert!(Instant::now() < until, "no trial of {sweep} started within {within:?}\n{}", self.logs(40));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Freezes a container (`docker pause`); [`ComposeCluster::unpause`] thaws it.
    pub fn pause(&mut self, id: &str) {
        docker(&["pause", id]);
        self.paused.push(id.to_string());
    }

    pub fn unpause(&mut self, id: &str) {
        docker(&["unpause", id]);
        self.paused.retain(|p| p != id);
    }

    /// Runs the host's `sweep` CLI against the coordinator's published port, as the user.
    pub fn sweep(&self, args: &[&str]) -> Output {
        Command::new(bin("sweep"))
            .args(args)
            .env("SWEEP_COORDINATOR", &self.url)
            .env("SWEEP_TOKEN", &self.user_token)
            .output()
            .expect("run sweep")
    }

    /// `sweep status SWEEP --json`, or `None` while the coordinator cannot answer.
    pub fn status(&self, sweep: &str) -> Option<Value> {
        let out = self.sweep(&["status", sweep, "--json"]);
        out.status.success().then(|| serde_json::from_slice(&out.stdout).ok()).flatten()
    }

    /// Waits until `sweep` is done; its last status.
    pub fn wait_done(&self, sweep: &str, within: Duration) -> Value {
        let until = Instant::now() + within;
        loop {
            if let Some(s) = self.status(sweep).filter(|s| s["done"] == true) {
                return s;
            }
            assert!(Instant::now() < until, "{sweep} not done within {within:?}\n{}", self.logs(40));
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn wait_for_agents(&self, agents: usize, within: Duration) {
        let until = Instant::now() + within;
        loop {
            let out = self.sweep(&["agents", "--json"]);
            let live =
                serde_json::from_slice::<Value>(&out.stdout).ok().and_then(|v| v.as_array().map(Vec::len)).unwrap_or(0);
            if live >= agents {
                return;
            }
            assert!(Instant::now() < until, "{agents} agents did not register within {within:?}\n{}", self.logs(40));
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The folder of the `shared` volume (results and checkpoints), as the host sees it.
    pub fn shared(&self) -> PathBuf {
        self.root.join("shared")
    }

    /// The coordinator's `--results`.
    pub fn results_dir(&self) -> PathBuf {
        self.shared().join("results")
    }

    /// The last `lines` lines each container logged.
    pub fn logs(&self, lines: usize) -> String {
        let out = self.compose(&["logs", "--no-color", "--tail", &lines.to_string()]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What one container logged.
    pub fn container_log(&self, id: &str) -> String {
        let out = Command::new("docker").args(["logs", id]).output().expect("docker logs");
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }
}

impl Drop for ComposeCluster {
    fn drop(&mut self) {
        for id in std::mem::take(&mut self.paused) {
            let _ = Command::new("docker").args(["unpause", &id]).output();
        }
        let _ = self.compose(&["down", "-v", "--remove-orphans", "--timeout", "5"]);
    }
}
