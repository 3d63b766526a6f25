//! The CLI's connection to the coordinator: where it is, the user token sent with every call, TLS
//! for `https://` URLs, and errors that say what to do.

use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use sweep_proto::remote::BearerToken;
use sweep_proto::v1::sweep_service_client::SweepServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

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
    pub fn credentials(&self) -> sweep_proto::remote::Credentials {
        sweep_proto::remote::Credentials {
            url: self.url.clone(),
            token: self.token.clone(),
            token_file: self.token_file.clone(),
            tls_ca: self.tls_ca.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
        }
    }

    /// A coordinator reached without token or TLS (the embedded one of `sweep local`).
    #[cfg_attr(not(feature = "embedded-agent"), allow(dead_code))]
    pub fn plain(url: impl Into<String>) -> Remote {
        Remote { url: url.into(), token: None, token_file: None, tls_ca: None, tls_cert: None, tls_key: None }
    }
}

pub async fn connect(remote: &Remote) -> anyhow::Result<Client> {
    let (endpoint, token) = remote.credentials().endpoint().map_err(anyhow::Error::msg)?;
    let url = &remote.url;
    let channel = endpoint.connect_timeout(Duration::from_secs(5)).connect().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the coordinator at {url} ({}).\n  Start one with `sweep-coordinator`, point at it with --coordinator or SWEEP_COORDINATOR\n  (https:// when it serves TLS, with --tls-ca for a private CA),\n  or run the sweep on this machine with `sweep local FILE`",
            sweep_proto::remote::error_chain(&e)
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
