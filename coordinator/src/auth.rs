//! Bearer-token authentication for the two gRPC services. Users (the CLI) and agents hold tokens
//! from separate files, so a leaked agent token cannot submit or cancel sweeps and a user token
//! cannot lease trials. Each token has a name, which handlers see as the [`Caller`]: sweeps record
//! it as their owner. Health and reflection are never wrapped: probes need no token.

pub use crate::ownership::Caller;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use sweep_proto::secret_file::check_secret_file;
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

/// Who a token belongs to, for callers outside gRPC ([`Tokens::identify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bearer {
    /// A user token (or anyone, when authentication is off).
    User(Caller),
    /// An agent token: valid, but for leasing trials, not for users' pages.
    Agent,
    /// No token was presented.
    Missing,
    /// A token in neither file.
    Unknown,
}

/// The accepted tokens of both roles, loaded once at start. `None` means authentication is off.
#[derive(Clone, Default)]
pub struct Tokens {
    sets: Option<Arc<TokenSets>>,
}

struct TokenSets {
    user: Vec<NamedToken>,
    agent: Vec<NamedToken>,
}

/// One line of a token file: the token and the name it acts under.
#[derive(Clone, PartialEq, Eq)]
struct NamedToken {
    name: String,
    token: Vec<u8>,
}

impl std::fmt::Debug for NamedToken {
    // Never print the token itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NamedToken({})", self.name)
    }
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
    /// since the other service would otherwise be open (or closed to everyone) by accident. Files
    /// that others may read are warned about, or refused under `strict` ([`check_secret_file`]).
    pub fn load(user_tokens: Option<&Path>, agent_tokens: Option<&Path>, strict: bool) -> Result<Tokens, String> {
        match (user_tokens, agent_tokens) {
            (None, None) => Ok(Tokens::off()),
            (Some(user), Some(agent)) => {
                check_secret_file(user, strict)?;
                check_secret_file(agent, strict)?;
                Ok(Tokens {
                    sets: Some(Arc::new(TokenSets { user: read_token_file(user)?, agent: read_token_file(agent)? })),
                })
            }
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

    /// Only user tokens, for a server that no agent calls (`sweep ui`); None turns authentication
    /// off.
    pub fn load_users(user_tokens: Option<&Path>, strict: bool) -> Result<Tokens, String> {
        let Some(user) = user_tokens else { return Ok(Tokens::off()) };
        check_secret_file(user, strict)?;
        Ok(Tokens { sets: Some(Arc::new(TokenSets { user: read_token_file(user)?, agent: Vec::new() })) })
    }

    pub fn enabled(&self) -> bool {
        self.sets.is_some()
    }

    /// Who presents `token` (the dashboard's cookie or header): a user by name, an agent, or
    /// nobody known. Every stored token is compared in constant time, as in [`Tokens::check`].
    pub fn identify(&self, token: Option<&str>) -> Bearer {
        let Some(sets) = &self.sets else { return Bearer::User(Caller::open()) };
        let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else { return Bearer::Missing };
        let as_user = find(&sets.user, token.as_bytes());
        let as_agent = find(&sets.agent, token.as_bytes());
        match (as_user, as_agent) {
            (Some(name), _) => Bearer::User(Caller::named(name)),
            (None, Some(_)) => Bearer::Agent,
            (None, None) => Bearer::Unknown,
        }
    }

    /// The interceptor for the service that `role` may call.
    pub fn guard(&self, role: Role) -> Guard {
        Guard { tokens: self.clone(), role }
    }

    /// Admits a call to `role`'s service and says who makes it, or says why not: UNAUTHENTICATED
    /// for a missing or unknown token, PERMISSION_DENIED for a valid token of the other role.
    pub fn check(&self, role: Role, metadata: &MetadataMap) -> Result<Caller, Status> {
        let Some(sets) = &self.sets else { return Ok(Caller::open()) };
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
        let as_user = find(&sets.user, token.as_bytes());
        let as_agent = find(&sets.agent, token.as_bytes());
        let (allowed, other) = match role {
            Role::User => (as_user, as_agent.is_some()),
            Role::Agent => (as_agent, as_user.is_some()),
        };
        if let Some(name) = allowed {
            Ok(Caller::named(name))
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

/// A tonic interceptor admitting one role to one service. It puts the [`Caller`] into the
/// request's extensions, where handlers read it with [`caller`].
#[derive(Clone)]
pub struct Guard {
    tokens: Tokens,
    role: Role,
}

impl Interceptor for Guard {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = self.tokens.check(self.role, request.metadata())?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// Who made a call, as the [`Guard`] admitted it. A request that passed no guard (a server
/// assembled without one) is treated as authentication off.
pub fn caller<T>(request: &Request<T>) -> Caller {
    request.extensions().get::<Caller>().cloned().unwrap_or_else(Caller::open)
}

/// The longest name a token file may give a token.
pub const MAX_TOKEN_NAME: usize = 64;

/// One token per line, as `NAME:TOKEN` or a bare `TOKEN`; blank lines and `#` comments are
/// skipped. A line is named when the part before its first `:` is a valid name (1 to
/// [`MAX_TOKEN_NAME`] letters, digits, `-`, `_` or `.`); a bare token is named `token-` and the
/// first 8 hex digits of its SHA-256, a name that stays when lines are moved and tells nothing of
/// a random token. The same token under two names is refused, as is a file without tokens (it
/// would lock every caller of that role out).
fn read_token_file(path: &Path) -> Result<Vec<NamedToken>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading token file {}: {e}", path.display()))?;
    let mut tokens: Vec<NamedToken> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let t = parse_token_line(line);
        if let Some(earlier) = tokens.iter().find(|e| e.token == t.token && e.name != t.name) {
            return Err(format!(
                "token file {} line {}: this token is also named `{}`: give each token one name",
                path.display(),
                i + 1,
                earlier.name
            ));
        }
        tokens.push(t);
    }
    if tokens.is_empty() {
        return Err(format!(
            "token file {} holds no tokens (one per line, `NAME:TOKEN` or `TOKEN`; `#` starts a comment)",
            path.display()
        ));
    }
    Ok(tokens)
}

fn parse_token_line(line: &str) -> NamedToken {
    if let Some((name, token)) = line.split_once(':') {
        if is_token_name(name) && !token.trim().is_empty() {
            return NamedToken { name: name.to_string(), token: token.trim().as_bytes().to_vec() };
        }
    }
    let digest = Sha256::digest(line.as_bytes());
    let fingerprint: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    NamedToken { name: format!("token-{fingerprint}"), token: line.as_bytes().to_vec() }
}

fn is_token_name(name: &str) -> bool {
    (1..=MAX_TOKEN_NAME).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The name of the token in `set` equal to `candidate`. Every entry is compared in full.
fn find<'a>(set: &'a [NamedToken], candidate: &[u8]) -> Option<&'a str> {
    set.iter().fold(None, |found, t| if constant_time_eq(&t.token, candidate) { Some(t.name.as_str()) } else { found })
}

/// Compares every byte up to the longer length without an early exit; only the lengths are
/// learned by timing, never the position of the first difference.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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
    fn user_tokens_alone_admit_their_users_and_no_one_else() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users.tokens");
        std::fs::write(&file, "alice:tok-a1\n").unwrap();
        let tokens = Tokens::load_users(Some(&file), false).unwrap();
        assert!(tokens.enabled());
        assert_eq!(tokens.identify(Some("tok-a1")), Bearer::User(Caller::named("alice")));
        assert_eq!(tokens.identify(Some("tok-a2")), Bearer::Unknown);
        assert_eq!(tokens.identify(Some("  ")), Bearer::Missing);
        assert_eq!(tokens.identify(None), Bearer::Missing);
        assert_eq!(Tokens::load_users(None, false).unwrap().identify(None), Bearer::User(Caller::open()));
        assert!(Tokens::load_users(Some(&dir.path().join("absent")), false).unwrap_err().contains("absent"));
    }

    #[test]
    fn constant_time_eq_matches_equality() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    fn tokens(path: &Path) -> Vec<(String, String)> {
        read_token_file(path).unwrap().into_iter().map(|t| (t.name, String::from_utf8(t.token).unwrap())).collect()
    }

    #[test]
    fn token_files_skip_blanks_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# users\n\n  alice-token  \n#bob\nbob-token\n").unwrap();
        let read: Vec<String> = tokens(&path).into_iter().map(|(_, t)| t).collect();
        assert_eq!(read, vec!["alice-token", "bob-token"]);
        std::fs::write(&path, "# only a comment\n\n").unwrap();
        assert!(read_token_file(&path).unwrap_err().contains(&path.display().to_string()));
    }

    #[test]
    fn lines_name_their_tokens_and_bare_tokens_get_a_stable_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "alice:a-token\nadmin: root-token \nbare-token\nnot a name:x\n").unwrap();
        let read = tokens(&path);
        assert_eq!(read[0], ("alice".to_string(), "a-token".to_string()));
        assert_eq!(read[1], ("admin".to_string(), "root-token".to_string()));
        assert_eq!(read[2].1, "bare-token");
        assert!(read[2].0.starts_with("token-") && read[2].0.len() == "token-".len() + 8, "{}", read[2].0);
        assert_eq!(read[3].1, "not a name:x", "a prefix that is no name leaves the line a bare token");
        // Moving lines keeps a bare token's name.
        std::fs::write(&path, "# moved\nbare-token\nalice:a-token\n").unwrap();
        assert_eq!(tokens(&path)[0], read[2]);
        // A name longer than the bound is no name.
        let long = "n".repeat(MAX_TOKEN_NAME + 1);
        std::fs::write(&path, format!("{long}:tok\n")).unwrap();
        assert!(tokens(&path)[0].0.starts_with("token-"));
    }

    #[test]
    fn one_token_under_two_names_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "alice:same\nbob:same\n").unwrap();
        let err = read_token_file(&path).unwrap_err();
        assert!(err.contains("line 2") && err.contains("`alice`"), "{err}");
    }

    #[test]
    fn only_one_token_file_is_refused() {
        let p = Path::new("/nonexistent");
        assert!(Tokens::load(Some(p), None, false).unwrap_err().contains("--agent-tokens"));
        assert!(Tokens::load(None, Some(p), false).unwrap_err().contains("--user-tokens"));
        assert!(!Tokens::load(None, None, false).unwrap().enabled());
    }
}
