//! Bearer-token authentication for the two gRPC services. Users (the CLI) and agents hold tokens
//! from separate files, so a leaked agent token cannot submit or cancel sweeps and a user token
//! cannot lease trials. Health and reflection are never wrapped: probes need no token.

use std::path::Path;
use std::sync::Arc;
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Who a token belongs to; each service admits exactly one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Calls `sweep.v1.SweepService`: submit, status, cancel, results.
    User,
    /// Calls `sweep.v1.AgentService`: register, lease, heartbeat, report, complete.
    Agent,
}

impl Role {
    fn service(self) -> &'static str {
        match self {
            Role::User => "sweep.v1.SweepService",
            Role::Agent => "sweep.v1.AgentService",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Agent => "agent",
        }
    }
}

/// The accepted tokens of both roles, loaded once at start. `None` means authentication is off.
#[derive(Clone, Default)]
pub struct Tokens {
    sets: Option<Arc<TokenSets>>,
}

struct TokenSets {
    user: Vec<Vec<u8>>,
    agent: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Tokens {
    // Never print the tokens themselves.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.sets {
            None => f.write_str("Tokens(off)"),
            Some(s) => write!(f, "Tokens(user: {}, agent: {})", s.user.len(), s.agent.len()),
        }
    }
}

impl Tokens {
    /// Authentication off: every call is admitted.
    pub fn off() -> Tokens {
        Tokens { sets: None }
    }

    /// Reads both token files. Giving neither turns authentication off; giving only one is refused,
    /// since the other service would otherwise be open (or closed to everyone) by accident.
    pub fn load(user_tokens: Option<&Path>, agent_tokens: Option<&Path>) -> Result<Tokens, String> {
        match (user_tokens, agent_tokens) {
            (None, None) => Ok(Tokens::off()),
            (Some(user), Some(agent)) => Ok(Tokens {
                sets: Some(Arc::new(TokenSets { user: read_token_file(user)?, agent: read_token_file(agent)? })),
            }),
            (Some(_), None) => Err(
                "--user-tokens needs --agent-tokens too: with only one, agents could not be told apart from strangers"
                    .into(),
            ),
            (None, Some(_)) => Err(
                "--agent-tokens needs --user-tokens too: with only one, users could not be told apart from strangers"
                    .into(),
            ),
        }
    }

    pub fn enabled(&self) -> bool {
        self.sets.is_some()
    }

    /// The interceptor for the service that `role` may call.
    pub fn guard(&self, role: Role) -> Guard {
        Guard { tokens: self.clone(), role }
    }

    /// Admits a call to `role`'s service or says why not: UNAUTHENTICATED for a missing or unknown
    /// token, PERMISSION_DENIED for a valid token of the other role.
    pub fn check(&self, role: Role, metadata: &MetadataMap) -> Result<(), Status> {
        let Some(sets) = &self.sets else { return Ok(()) };
        let Some(value) = metadata.get("authorization") else {
            return Err(Status::unauthenticated(format!(
                "{} needs a token: send `authorization: Bearer <token>` (set SWEEP_TOKEN or --token-file)",
                role.service()
            )));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| Status::unauthenticated("the authorization header must be `Bearer <token>`"))?;
        // Every stored token is compared, in constant time, so timing says nothing about which
        // (or whether any) token matched how far.
        let is_user = matches_any(&sets.user, token.as_bytes());
        let is_agent = matches_any(&sets.agent, token.as_bytes());
        let (allowed, other) = match role {
            Role::User => (is_user, is_agent),
            Role::Agent => (is_agent, is_user),
        };
        if allowed {
            Ok(())
        } else if other {
            let other_role = if role == Role::User { Role::Agent } else { Role::User };
            Err(Status::permission_denied(format!(
                "an {} token cannot call {}: use a {} token",
                other_role.name(),
                role.service(),
                role.name()
            )))
        } else {
            Err(Status::unauthenticated("invalid token: it is in neither --user-tokens nor --agent-tokens"))
        }
    }
}

/// A tonic interceptor admitting one role to one service.
#[derive(Clone)]
pub struct Guard {
    tokens: Tokens,
    role: Role,
}

impl Interceptor for Guard {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.tokens.check(self.role, request.metadata())?;
        Ok(request)
    }
}

/// One token per line; blank lines and `#` comments are skipped. A file without tokens is an
/// error, as it would lock every caller of that role out.
fn read_token_file(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading token file {}: {e}", path.display()))?;
    let tokens: Vec<Vec<u8>> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.as_bytes().to_vec())
        .collect();
    if tokens.is_empty() {
        return Err(format!("token file {} holds no tokens (one per line; `#` starts a comment)", path.display()));
    }
    Ok(tokens)
}

fn matches_any(set: &[Vec<u8>], candidate: &[u8]) -> bool {
    set.iter().fold(false, |found, t| found | constant_time_eq(t, candidate))
}

/// Compares every byte up to the longer length without an early exit; only the lengths are
/// learned by timing, never the position of the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let len = a.len().max(b.len());
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..len {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_matches_equality() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn token_files_skip_blanks_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# users\n\n  alice-token  \n#bob\nbob-token\n").unwrap();
        assert_eq!(read_token_file(&path).unwrap(), vec![b"alice-token".to_vec(), b"bob-token".to_vec()]);
        std::fs::write(&path, "# only a comment\n\n").unwrap();
        assert!(read_token_file(&path).unwrap_err().contains(&path.display().to_string()));
    }

    #[test]
    fn only_one_token_file_is_refused() {
        let p = Path::new("/nonexistent");
        assert!(Tokens::load(Some(p), None).unwrap_err().contains("--agent-tokens"));
        assert!(Tokens::load(None, Some(p)).unwrap_err().contains("--user-tokens"));
        assert!(!Tokens::load(None, None).unwrap().enabled());
    }
}
