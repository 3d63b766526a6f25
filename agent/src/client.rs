//! The agent's connection to the coordinator (TLS and its bearer token included), and which
//! failures are worth retrying.

use crate::config::Remote;
use std::time::Duration;
use sweep_proto::remote::BearerToken;
use sweep_proto::v1::agent_service_client::AgentServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Code;

pub type Client = AgentServiceClient<InterceptedService<Channel, BearerToken>>;

/// Largest response the agent decodes; lease and heartbeat answers are small.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A lazily connected client: the channel reconnects by itself after the coordinator restarts.
/// The token and certificates are read here, once, so a wrong path fails the start.
pub fn connect(remote: &Remote) -> anyhow::Result<Client> {
    let (endpoint, token) = remote.endpoint().map_err(anyhow::Error::msg)?;
    let channel = endpoint
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true)
        .connect_lazy();
    Ok(AgentServiceClient::with_interceptor(channel, token).max_decoding_message_size(MAX_RESPONSE_BYTES))
}

/// The longest wait between two tries. Short, because metrics wait in memory meanwhile and a
/// coordinator back from a restart should hear from its agents within a couple of seconds.
const RETRY_CAP: Duration = Duration::from_secs(2);

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
                    RETRY_CAP,
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
}
