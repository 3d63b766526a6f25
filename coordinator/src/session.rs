//! Agent sessions: every `Register` answers with a fresh secret, and every later call of that
//! agent carries it. The store keeps only the secret's SHA-256 with the agent row, so a lease is
//! bound to the registration that was granted it: knowing (or guessing) an agent id or a lease id
//! is not enough to act on it.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};

/// Random bytes in a secret: 256 bits, far beyond guessing.
pub const SECRET_BYTES: usize = 32;

/// What the store keeps of a secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionHash(pub [u8; 32]);

impl std::fmt::Debug for SessionHash {
    // A hash of a high-entropy secret reveals nothing, but logs have no use for it either.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionHash(..)")
    }
}

impl SessionHash {
    /// The hash of a secret as a caller presents it.
    pub fn of(secret: &str) -> SessionHash {
        SessionHash(Sha256::digest(secret.as_bytes()).into())
    }

    /// Compares without an early exit, so timing says nothing about how much of a hash matched.
    pub fn matches(&self, stored: &[u8]) -> bool {
        crate::auth::constant_time_eq(&self.0, stored)
    }
}

/// A new secret from the OS random number generator (hex) and its hash.
pub fn new_secret() -> Result<(String, SessionHash)> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| Error::Io(std::io::Error::other(format!("OS random numbers: {e}"))))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let hash = SessionHash::of(&secret);
    Ok((secret, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_fresh_hex_and_only_their_own_hash_matches() {
        let (a, hash_a) = new_secret().unwrap();
        let (b, hash_b) = new_secret().unwrap();
        assert_eq!(a.len(), 2 * SECRET_BYTES);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(SessionHash::of(&a).matches(&hash_a.0));
        assert!(!SessionHash::of(&b).matches(&hash_a.0));
        assert!(!hash_b.matches(&hash_a.0[..16]), "a truncated stored hash never matches");
        assert_eq!(format!("{hash_a:?}"), "SessionHash(..)");
    }
}
