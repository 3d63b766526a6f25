//! TLS and tokens across real processes: a `sweep-coordinator` serving mutual TLS with user and
//! agent token files, a `sweep-agent` and the `sweep` CLI over `https://` with certificates made
//! by rcgen. Plain HTTP, a missing client certificate and a missing token are all refused.

mod common;

use common::{bin, count, Proc};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const USER_TOKEN: &str = "user-token-2c81";
const AGENT_TOKEN: &str = "agent-token-9d4e";

/// Each trial checks that none of the agent's secrets reached it, in its environment or (unless
/// it runs as root, who may read any process) in the agent's through /proc, then reports a metric.
const TRIAL: &str = r#"#!/bin/sh
if env | grep -q -e 'agent-token-9d4e' -e '^SWEEP_TOKEN' -e '^SWEEP_TLS_KEY'; then
  echo "the agent's credentials reached the trial" >&2; exit 1
fi
if [ "$(id -u)" != 0 ] && tr '\0' '\n' < /proc/$PPID/environ 2>/dev/null | grep -q 'agent-token-9d4e'; then
  echo "the agent's environment is readable from the trial" >&2; exit 1
fi
echo '{"epoch": 1, "metrics": {"x": 1}}'
"#;

fn sweep_file(trial: &Path) -> String {
    format!(
        "name = \"secure\"\nworkload = \"command\"\ncommand = [\"/bin/sh\", {:?}]\n[grid]\nseed = [0, 1]\n",
        trial.display().to_string()
    )
}

/// PEM files of a test CA, a server certificate for 127.0.0.1/localhost and a client certificate,
/// both signed by the CA.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn make_pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "sweep test ca");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, cn: &str| {
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) =
        leaf(vec!["127.0.0.1".into(), "localhost".into()], ExtendedKeyUsagePurpose::ServerAuth, "sweep-coordinator");
    let (client_cert, client_key) = leaf(vec![], ExtendedKeyUsagePurpose::ClientAuth, "sweep test client");

    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", &ca_cert.pem()),
        server_cert: write("server.pem", &server_cert),
        server_key: write("server.key", &server_key),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client.key", &client_key),
    }
}

/// Starts the coordinator with mutual TLS and both token files; returns it and its `https://` URL.
fn start_secure_coordinator(root: &Path, pki: &Pki) -> (Proc, String) {
    let users = root.join("users.tokens");
    let agents = root.join("agents.tokens");
    std::fs::write(&users, format!("# users\n{USER_TOKEN}\n")).unwrap();
    std::fs::write(&agents, format!("# agents\n\n{AGENT_TOKEN}\n")).unwrap();
    let mut child = Command::new(bin("sweep-coordinator"))
        .args(["--listen", "127.0.0.1:0", "--lease-ttl", "5s", "--flush-interval", "300ms"])
        .arg("--state")
        .arg(root.join("state"))
        .arg("--results")
        .arg(root.join("results"))
        .arg("--tls-cert")
        .arg(&pki.server_cert)
        .arg("--tls-key")
        .arg(&pki.server_key)
        .arg("--tls-client-ca")
        .arg(&pki.ca)
        .arg("--user-tokens")
        .arg(&users)
        .arg("--agent-tokens")
        .arg(&agents)
        .env("SWEEP_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(root.join("coordinator.log")).unwrap())
        .spawn()
        .expect("start sweep-coordinator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(
        addr.starts_with("127.0.0.1:"),
        "unexpected first line: {line}\n{}",
        std::fs::read_to_string(root.join("coordinator.log")).unwrap_or_default()
    );
    (Proc(child), addr)
}

/// Runs `sweep` with exactly the given settings (no inherited SWEEP_* variables).
fn sweep_cli(args: &[&str], env: &[(&str, &Path)], token: Option<&str>) -> Output {
    let mut cmd = Command::new(bin("sweep"));
    cmd.args(args);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("SWEEP_")) {
        cmd.env_remove(key);
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    if let Some(token) = token {
        cmd.env("SWEEP_TOKEN", token);
    }
    cmd.output().expect("run sweep")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn a_sweep_runs_over_mutual_tls_with_tokens_and_insecure_clients_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pki = make_pki(root);
    let (_coordinator, addr) = start_secure_coordinator(root, &pki);
    let https = format!("https://{addr}");

    let _agent = Proc(
        Command::new(bin("sweep-agent"))
            .args(["--coordinator", &https, "--name", "secure-agent", "--slots", "2", "--poll-interval", "200ms"])
            .arg("--tls-ca")
            .arg(&pki.ca)
            .arg("--tls-cert")
            .arg(&pki.client_cert)
            .arg("--tls-key")
            .arg(&pki.client_key)
            .arg("--work-dir")
            .arg(root.join("agent"))
            // The agent reads its token from the environment; its trials must not see it.
            .env("SWEEP_TOKEN", AGENT_TOKEN)
            .env("SWEEP_GPUS", "")
            .env("SWEEP_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("agent.log")).unwrap())
            .spawn()
            .expect("start sweep-agent"),
    );

    // The CLI reads its token from a file and its TLS settings from the environment.
    let token_file = root.join("user.token");
    std::fs::write(&token_file, format!("{USER_TOKEN}\n")).unwrap();
    let url = PathBuf::from(&https);
    let secure_env: Vec<(&str, &Path)> = vec![
        ("SWEEP_COORDINATOR", url.as_path()),
        ("SWEEP_TLS_CA", pki.ca.as_path()),
        ("SWEEP_TLS_CERT", pki.client_cert.as_path()),
        ("SWEEP_TLS_KEY", pki.client_key.as_path()),
        ("SWEEP_TOKEN_FILE", token_file.as_path()),
    ];
    let file = root.join("secure.toml");
    let trial = root.join("trial.sh");
    std::fs::write(&trial, TRIAL).unwrap();
    std::fs::write(&file, sweep_file(&trial)).unwrap();
    let out = sweep_cli(&["submit", file.to_str().unwrap()], &secure_env, None);
    assert!(out.status.success(), "submit over https failed: {}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "secure");

    let start = Instant::now();
    let status: Value = loop {
        let out = sweep_cli(&["status", "secure", "--json"], &secure_env, None);
        assert!(out.status.success(), "status over https failed: {}", text(&out));
        let status: Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
        if status["done"] == true {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let logs: String = ["coordinator.log", "agent.log"]
                .iter()
                .map(|f| format!("--- {f}\n{}", std::fs::read_to_string(root.join(f)).unwrap_or_default()))
                .collect();
            panic!("timed out; last status: {status:#}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(count(&status, "succeeded"), 2, "{status:#}");

    // Plain HTTP to a TLS port gets no answer.
    let plain = PathBuf::from(format!("http://{addr}"));
    let out = sweep_cli(&["status", "secure", "--json"], &[("SWEEP_COORDINATOR", plain.as_path())], Some(USER_TOKEN));
    assert!(!out.status.success(), "plain http must be refused: {}", text(&out));

    // Under mutual TLS a client without a certificate is refused, even with a valid token.
    let no_cert: Vec<(&str, &Path)> = vec![("SWEEP_COORDINATOR", url.as_path()), ("SWEEP_TLS_CA", pki.ca.as_path())];
    let out = sweep_cli(&["status", "secure", "--json"], &no_cert, Some(USER_TOKEN));
    assert!(!out.status.success(), "a client without a certificate must be refused: {}", text(&out));

    // TLS alone is not enough: the token is still required, and an agent's token is not a user's.
    let cert_only: Vec<(&str, &Path)> = secure_env[..4].to_vec();
    let out = sweep_cli(&["status", "secure", "--json"], &cert_only, None);
    assert!(!out.status.success() && text(&out).contains("needs a token"), "{}", text(&out));
    let out = sweep_cli(&["cancel", "secure"], &cert_only, Some(AGENT_TOKEN));
    assert!(!out.status.success() && text(&out).contains("agent token"), "{}", text(&out));
}

#[test]
fn a_missing_certificate_file_fails_the_coordinator_start_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let missing = root.join("no-such-cert.pem");
    let out = Command::new(bin("sweep-coordinator"))
        .args(["--listen", "127.0.0.1:0"])
        .arg("--state")
        .arg(root.join("state"))
        .arg("--tls-cert")
        .arg(&missing)
        .arg("--tls-key")
        .arg(root.join("no-such-key.pem"))
        .output()
        .expect("run sweep-coordinator");
    assert!(!out.status.success());
    assert!(text(&out).contains(&missing.display().to_string()), "{}", text(&out));
}
