//! How a client reaches a coordinator, shared by the agent and the CLI: the endpoint with TLS for
//! `https://` URLs, the bearer token sent with every call, and PEM files checked by name before any
//! handshake. The coordinator reads its own certificates with the same [`read_pem`].

use crate::secret_file::check_secret_file;
use std::path::{Path, PathBuf};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Where the coordinator is and the credentials to present. With the `clap` feature these are
/// the connection flags of `sweep` and `sweep-agent`, defined once: the same names, environment
/// variables and checks in both.
#[derive(Clone, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[cfg_attr(feature = "clap", command(next_help_heading = "Connection"))]
pub struct Credentials {
    /// Coordinator address; `https://` connects with TLS.
    #[cfg_attr(
        feature = "clap",
        arg(long = "coordinator", global = true, env = "SWEEP_COORDINATOR", default_value = "http://127.0.0.1:50051")
    )]
    pub url: String,
    /// Token sent as `authorization: Bearer <token>`: a user token for `sweep`, an agent token for
    /// `sweep-agent`. Prefer the environment variable or --token-file: a flag's value is visible
    /// to other users in `ps`.
    #[cfg_attr(feature = "clap", arg(long, global = true, env = "SWEEP_TOKEN", hide_env_values = true))]
    pub token: Option<String>,
    /// File holding the token (a trailing newline is trimmed).
    #[cfg_attr(feature = "clap", arg(long, global = true, env = "SWEEP_TOKEN_FILE"))]
    pub token_file: Option<PathBuf>,
    /// PEM CA certificate to trust for an `https://` coordinator [default: the system's roots].
    #[cfg_attr(feature = "clap", arg(long, global = true, env = "SWEEP_TLS_CA"))]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate, for a coordinator that requires mutual TLS.
    #[cfg_attr(feature = "clap", arg(long, global = true, env = "SWEEP_TLS_CERT", requires = "tls_key"))]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[cfg_attr(feature = "clap", arg(long, global = true, env = "SWEEP_TLS_KEY", requires = "tls_cert"))]
    pub tls_key: Option<PathBuf>,
    /// Refuse to start when --token-file or --tls-key can be read by group or others, instead of
    /// only warning (as ssh does with private keys).
    #[cfg_attr(feature = "clap", arg(long, global = true, env = "SWEEP_STRICT_PERMS"))]
    pub strict_perms: bool,
}

/// The environment variables that carry a client's secrets. An agent takes them out of the
/// environment of every trial it starts: a user's program must never hold the agent's token.
pub const SECRET_VARIABLES: [&str; 3] = ["SWEEP_TOKEN", "SWEEP_TOKEN_FILE", "SWEEP_TLS_KEY"];

/// Messages and logs name the coordinator by its URL.
impl std::fmt::Display for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl std::fmt::Debug for Credentials {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("token_file", &self.token_file)
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("strict_perms", &self.strict_perms)
            .finish()
    }
}

impl Credentials {
    /// A coordinator reached without token or TLS (the embedded one of `sweep local`, tests).
    pub fn plain(url: impl Into<String>) -> Credentials {
        Credentials { url: url.into(), ..Default::default() }
    }

    /// The endpoint (TLS configured for `https://`) and the interceptor that adds the token.
    /// Token and certificate files are read here, once, so a wrong path fails at start, and a
    /// token file or key that others can read is warned about (refused with --strict-perms).
    pub fn endpoint(&self) -> Result<(Endpoint, BearerToken), String> {
        for secret in [&self.token_file, &self.tls_key].into_iter().flatten() {
            check_secret_file(secret, self.strict_perms)?;
        }
        let token = BearerToken::new(read_token(self.token.as_deref(), self.token_file.as_deref())?)?;
        let url = &self.url;
        let mut endpoint =
            Endpoint::from_shared(url.to_string()).map_err(|e| format!("coordinator address `{url}`: {e}"))?;
        if let Some(tls) = self.tls_config()? {
            endpoint = endpoint.tls_config(tls).map_err(|e| format!("tls for {url}: {}", error_chain(&e)))?;
        }
        Ok((endpoint, token))
    }

    /// The private CA if given (else the system's roots) and the client identity for mutual TLS.
    /// TLS options with an `http://` URL are an error, since they would silently not be used.
    fn tls_config(&self) -> Result<Option<ClientTlsConfig>, String> {
        let https = self.url.starts_with("https://");
        let options = self.tls_ca.is_some() || self.tls_cert.is_some();
        if !https {
            return if options {
                Err(format!("--tls-ca/--tls-cert need an https:// coordinator URL, not {}", self.url))
            } else {
                Ok(None)
            };
        }
        let mut tls = ClientTlsConfig::new();
        tls = match &self.tls_ca {
            Some(ca) => tls.ca_certificate(Certificate::from_pem(read_pem(ca, Pem::Certificate)?)),
            None => tls.with_native_roots(),
        };
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                tls =
                    tls.identity(Identity::from_pem(read_pem(cert, Pem::Certificate)?, read_pem(key, Pem::PrivateKey)?))
            }
            (None, None) => {}
            _ => return Err("--tls-cert and --tls-key go together".into()),
        }
        Ok(Some(tls))
    }
}

/// The token from `SWEEP_TOKEN`/`--token` or the contents of `--token-file` (trailing newline
/// trimmed); `None` when neither is set. Both at once is refused rather than guessed between.
pub fn read_token(token: Option<&str>, token_file: Option<&Path>) -> Result<Option<String>, String> {
    match (token, token_file) {
        (Some(_), Some(file)) => {
            Err(format!("both SWEEP_TOKEN (--token) and --token-file {} are set: keep one", file.display()))
        }
        (Some(token), None) => Ok(Some(token.trim().to_string())),
        (None, Some(file)) => {
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("reading token file {}: {e}", file.display()))?;
            let token = text.trim();
            if token.is_empty() {
                return Err(format!("token file {} is empty", file.display()));
            }
            Ok(Some(token.to_string()))
        }
        (None, None) => Ok(None),
    }
}

/// What a PEM file is expected to hold.
#[derive(Clone, Copy)]
pub enum Pem {
    Certificate,
    PrivateKey,
}

/// Reads a PEM file and checks that it holds the expected kind of block, so that a swapped or
/// wrong file is reported by name instead of as a handshake failure later.
pub fn read_pem(path: &Path, kind: Pem) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let ok = match kind {
        Pem::Certificate => text.contains("-----BEGIN CERTIFICATE-----"),
        Pem::PrivateKey => text.lines().any(|l| l.starts_with("-----BEGIN") && l.contains("PRIVATE KEY-----")),
    };
    if !ok {
        let expected = match kind {
            Pem::Certificate => "a PEM certificate (-----BEGIN CERTIFICATE-----)",
            Pem::PrivateKey => "a PEM private key (-----BEGIN PRIVATE KEY----- or an RSA/EC key)",
        };
        return Err(format!("{}: expected {expected}", path.display()));
    }
    Ok(bytes)
}

/// The error and its sources on one line (tonic's transport errors hide the cause in `source`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
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
    pub fn new(token: Option<String>) -> Result<BearerToken, String> {
        let value = token
            .map(|t| {
                let mut v: MetadataValue<Ascii> = format!("Bearer {t}")
                    .parse()
                    .map_err(|_| "the token must be printable ASCII without spaces".to_string())?;
                v.set_sensitive(true);
                Ok::<_, String>(v)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comes_from_the_variable_or_the_file() {
        let dir = std::env::temp_dir().join(format!("sweep-remote-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(read_token(None, Some(&file)).unwrap().as_deref(), Some("s3cret"));
        assert_eq!(read_token(Some("abc"), None).unwrap().as_deref(), Some("abc"));
        assert_eq!(read_token(None, None).unwrap(), None);
        assert!(read_token(Some("abc"), Some(&file)).is_err());
        assert!(read_token(None, Some(&dir.join("missing"))).unwrap_err().contains("missing"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_token_file_others_can_read_is_refused_only_under_strict_perms() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let lax = Credentials { token_file: Some(file.clone()), ..Credentials::plain("http://127.0.0.1:1") };
        lax.endpoint().expect("a warning only");
        let strict = Credentials { strict_perms: true, ..lax.clone() };
        let err = strict.endpoint().err().expect("refused");
        assert!(err.contains(&file.display().to_string()) && err.contains("0644"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        strict.endpoint().expect("the owner alone may read it");
    }

    #[test]
    fn tls_options_need_https() {
        let plain = Credentials { url: "http://127.0.0.1:1".into(), ..Default::default() };
        assert!(plain.tls_config().unwrap().is_none());
        let with_ca = Credentials { tls_ca: Some("ca.pem".into()), ..plain };
        assert!(with_ca.tls_config().unwrap_err().contains("https://"));
    }

    #[test]
    fn tokens_must_be_header_safe() {
        assert!(BearerToken::new(Some("has space\n".into())).is_err());
        assert!(BearerToken::new(Some("ok-token".into())).is_ok());
    }
}
