//! The CLI's connection to the coordinator: where it is, the user token sent with every call, TLS
//! for `https://` URLs, and errors that say what to do.

use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Duration;
use sweep_proto::v1::sweep_service_client::SweepServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

pub type Client = SweepServiceClient<InterceptedService<Channel, BearerToken>>;

/// Largest response the CLI decodes: `sweep status` of a big sweep lists every trial, so this
/// matches the coordinator's 64 MiB request limit rather than tonic's 4 MiB default.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// The coordinator and the user's credentials for it; global flags of every `sweep` command.
#[derive(Args, Clone)]
pub struct Remote {
    /// Coordinator address; `https://` connects with TLS.
    #[arg(long = "coordinator", global = true, env = "SWEEP_COORDINATOR", default_value = "http://127.0.0.1:50051")]
    pub url: String,
    /// User token, sent as `authorization: Bearer <token>`. Prefer the environment variable or
    /// --token-file: a flag's value is visible to other users in `ps`.
    #[arg(long, global = true, env = "SWEEP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the user token (a trailing newline is trimmed).
    #[arg(long, global = true, env = "SWEEP_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM CA certificate to trust for an `https://` coordinator [default: the system's roots].
    #[arg(long, global = true, env = "SWEEP_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate, for a coordinator that requires mutual TLS.
    #[arg(long, global = true, env = "SWEEP_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, global = true, env = "SWEEP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl Remote {
    /// A coordinator reached without token or TLS (the embedded one of `sweep local`).
    #[cfg_attr(not(feature = "embedded-agent"), allow(dead_code))]
    pub fn plain(url: impl Into<String>) -> Remote {
        Remote { url: url.into(), token: None, token_file: None, tls_ca: None, tls_cert: None, tls_key: None }
    }
}

pub async fn connect(remote: &Remote) -> anyhow::Result<Client> {
    let token = BearerToken::new(read_token(remote.token.as_deref(), remote.token_file.as_deref())?)?;
    let url = &remote.url;
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| anyhow::anyhow!("coordinator address `{url}`: {e}"))?
        .connect_timeout(Duration::from_secs(5));
    if let Some(tls) = tls_config(remote)? {
        endpoint = endpoint.tls_config(tls).map_err(|e| anyhow::anyhow!("tls for {url}: {e}"))?;
    }
    let channel = endpoint.connect().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the coordinator at {url} ({}).\n  Start one with `sweep-coordinator`, point at it with --coordinator or SWEEP_COORDINATOR\n  (https:// when it serves TLS, with --tls-ca for a private CA),\n  or run the sweep on this machine with `sweep local FILE`",
            error_chain(&e)
        )
    })?;
    Ok(SweepServiceClient::with_interceptor(channel, token).max_decoding_message_size(MAX_RESPONSE_BYTES))
}

/// A gRPC failure as a message for the user.
pub fn explain(status: tonic::Status) -> anyhow::Error {
    match status.code() {
        tonic::Code::Unauthenticated => anyhow::anyhow!(
            "{}\n  pass a user token with SWEEP_TOKEN or --token-file (it must be in the coordinator's --user-tokens)",
            status.message()
        ),
        _ => anyhow::anyhow!("{}", status.message()),
    }
}

/// The token from `SWEEP_TOKEN`/`--token` or the contents of `--token-file` (trailing newline
/// trimmed); `None` when neither is set. Both at once is refused rather than guessed between.
fn read_token(token: Option<&str>, token_file: Option<&Path>) -> anyhow::Result<Option<String>> {
    match (token, token_file) {
        (Some(_), Some(file)) => {
            anyhow::bail!("both SWEEP_TOKEN (--token) and --token-file {} are set: keep one", file.display())
        }
        (Some(token), None) => Ok(Some(token.trim().to_string())),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("reading token file {}: {e}", file.display()))?;
            let token = text.trim();
            anyhow::ensure!(!token.is_empty(), "token file {} is empty", file.display());
            Ok(Some(token.to_string()))
        }
        (None, None) => Ok(None),
    }
}

/// TLS settings for an `https://` URL: the private CA if given (else the system's roots) and the
/// client identity for mutual TLS. TLS options with an `http://` URL are an error, since they
/// would silently not be used.
fn tls_config(remote: &Remote) -> anyhow::Result<Option<ClientTlsConfig>> {
    let https = remote.url.starts_with("https://");
    let options = remote.tls_ca.is_some() || remote.tls_cert.is_some();
    if !https {
        anyhow::ensure!(!options, "--tls-ca/--tls-cert need an https:// coordinator URL, not {}", remote.url);
        return Ok(None);
    }
    let mut tls = ClientTlsConfig::new();
    tls = match &remote.tls_ca {
        Some(ca) => tls.ca_certificate(Certificate::from_pem(read_pem(ca, "CERTIFICATE")?)),
        None => tls.with_native_roots(),
    };
    if let (Some(cert), Some(key)) = (&remote.tls_cert, &remote.tls_key) {
        tls = tls.identity(Identity::from_pem(read_pem(cert, "CERTIFICATE")?, read_pem(key, "PRIVATE KEY")?));
    }
    Ok(Some(tls))
}

/// Reads a PEM file and checks it holds a `kind` block, so a wrong file is named before any
/// handshake.
fn read_pem(path: &Path, kind: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    anyhow::ensure!(
        text.lines().any(|l| l.starts_with("-----BEGIN") && l.ends_with(&format!("{kind}-----"))),
        "{}: expected a PEM {} block",
        path.display(),
        kind.to_lowercase()
    );
    Ok(bytes)
}

/// The error and its sources on one line (tonic's transport errors hide the cause in `source`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Adds `authorization: Bearer <token>` to every call; adds nothing without a token.
#[derive(Clone)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl BearerToken {
    fn new(token: Option<String>) -> anyhow::Result<BearerToken> {
        let value = token
            .map(|t| {
                let mut v: MetadataValue<Ascii> = format!("Bearer {t}")
                    .parse()
                    .map_err(|_| anyhow::anyhow!("the token must be printable ASCII without spaces"))?;
                v.set_sensitive(true);
                anyhow::Ok(v)
            })
            .transpose()?;
        Ok(BearerToken(value))
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}
