//! The agent's connection to the coordinator (TLS and its bearer token included), and which
//! failures are worth retrying.

use crate::config::Remote;
use std::path::Path;
use std::time::Duration;
use sweep_proto::v1::agent_service_client::AgentServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;

pub type Client = AgentServiceClient<InterceptedService<Channel, BearerToken>>;

/// Largest response the agent decodes; lease and heartbeat answers are small.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A lazily connected client: the channel reconnects by itself after the coordinator restarts.
/// The token and certificates are read here, once, so a wrong path fails the start.
pub fn connect(remote: &Remote) -> anyhow::Result<Client> {
    let token = BearerToken::new(read_token(remote.token.as_deref(), remote.token_file.as_deref())?)?;
    let url = &remote.url;
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| anyhow::anyhow!("coordinator address `{url}`: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true);
    if let Some(tls) = tls_config(remote)? {
        endpoint = endpoint.tls_config(tls).map_err(|e| anyhow::anyhow!("tls for {url}: {e}"))?;
    }
    let channel = endpoint.connect_lazy();
    Ok(AgentServiceClient::with_interceptor(channel, token).max_decoding_message_size(MAX_RESPONSE_BYTES))
}

/// The token from `SWEEP_TOKEN`/`--token` or the contents of `--token-file` (trailing newline
/// trimmed); `None` when neither is set. Both at once is refused rather than guessed between.
pub fn read_token(token: Option<&str>, token_file: Option<&Path>) -> anyhow::Result<Option<String>> {
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

/// Reads a PEM file and checks it holds a `kind` block, so a wrong file is named at start rather
/// than failing the handshake later.
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

/// Adds `authorization: Bearer <token>` to every call; adds nothing without a token.
#[derive(Clone)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl BearerToken {
    pub fn new(token: Option<String>) -> anyhow::Result<BearerToken> {
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

/// Whether a failed call may succeed if sent again unchanged.
pub fn is_retryable(code: Code) -> bool {
    match code {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::ResourceExhausted
        | Code::Unknown
        | Code::Internal
        | Code::Cancelled => true,
        Code::Ok
        | Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::DataLoss
        | Code::Unauthenticated => false,
    }
}

/// Retries `call` with exponential backoff and full jitter while it fails in a retryable way.
pub async fn with_retry<T, F, Fut>(what: &str, mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let mut attempt = 0u32;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(status) if is_retryable(status.code()) => {
                let delay = sweep_spec::backoff::full_jitter(
                    attempt,
                    Duration::from_millis(100),
                    Duration::from_secs(10),
                    sweep_spec::backoff::jitter_unit(),
                );
                tracing::warn!(call = what, code = ?status.code(), error = status.message(), retry_in_ms = delay.as_millis() as u64, "coordinator call failed; retrying");
                tokio::time::sleep(delay).await;
                attempt = attempt.saturating_add(1);
            }
            Err(status) => return Err(status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes_retry_and_refusals_do_not() {
        assert!(is_retryable(Code::Unavailable));
        assert!(is_retryable(Code::DeadlineExceeded));
        assert!(!is_retryable(Code::FailedPrecondition), "a stale lease stays stale");
        assert!(!is_retryable(Code::InvalidArgument));
        assert!(!is_retryable(Code::Unauthenticated));
        assert!(!is_retryable(Code::PermissionDenied));
    }

    #[test]
    fn token_comes_from_the_variable_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(read_token(None, Some(&file)).unwrap().as_deref(), Some("s3cret"));
        assert_eq!(read_token(Some("abc"), None).unwrap().as_deref(), Some("abc"));
        assert_eq!(read_token(None, None).unwrap(), None);
        assert!(read_token(Some("abc"), Some(&file)).is_err());
        let missing = dir.path().join("missing");
        assert!(read_token(None, Some(&missing)).unwrap_err().to_string().contains("missing"));
    }

    #[test]
    fn tls_options_need_https() {
        let mut remote = Remote::plain("http://127.0.0.1:1");
        remote.tls_ca = Some("ca.pem".into());
        assert!(tls_config(&remote).unwrap_err().to_string().contains("https://"));
        assert!(tls_config(&Remote::plain("http://127.0.0.1:1")).unwrap().is_none());
    }
}
