//! The CLI's connection to the coordinator: where it is, the user token sent with every call, TLS
//! for `https://` URLs, and errors that say what to do.

use std::time::Duration;
use sweep_proto::remote::BearerToken;
use sweep_proto::v1::sweep_service_client::SweepServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type Client = SweepServiceClient<InterceptedService<Channel, BearerToken>>;

/// Largest response the CLI decodes: the coordinator pages trial listings at about 8 MiB, and this
/// matches its 64 MiB request limit rather than tonic's 4 MiB default.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// The coordinator and the user's credentials for it; global flags of every `sweep` command.
pub type Remote = sweep_proto::remote::Credentials;

pub async fn connect(remote: &Remote) -> anyhow::Result<Client> {
    let (endpoint, token) = remote.endpoint().map_err(anyhow::Error::msg)?;
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
