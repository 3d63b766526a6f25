//! The CLI's connection to the coordinator, with errors that say what to do.

use std::time::Duration;
use sweep_proto::v1::sweep_service_client::SweepServiceClient;
use tonic::transport::{Channel, Endpoint};

pub type Client = SweepServiceClient<Channel>;

pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| anyhow::anyhow!("coordinator address `{url}`: {e}"))?
        .connect_timeout(Duration::from_secs(5));
    let channel = endpoint.connect().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the coordinator at {url} ({e}).\n  Start one with `sweep-coordinator`, point at it with --coordinator or SWEEP_COORDINATOR,\n  or run the sweep on this machine with `sweep local FILE`"
        )
    })?;
    Ok(SweepServiceClient::new(channel))
}

/// A gRPC failure as a message for the user.
pub fn explain(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", status.message())
}
