//! Bearer-token auth for the `/workflows` API: the token is a secret (`API_TOKEN`),
//! compared so that the time taken says nothing about it, not even its length; with no
//! token configured the API stays closed.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a 401 answers in `WWW-Authenticate` (RFC 6750).
pub const CHALLENGE: &str = "Bearer";

/// Whether two tokens are equal, in time that depends on neither: their SHA-256 digests
/// (32 bytes whatever the token's length) are compared in constant time, so neither the
/// position of the first difference nor the configured token's length shows.
pub fn tokens_match(presented: &str, configured: &str) -> bool {
    let digest = |token: &str| -> [u8; 32] { Sha256::digest(token.as_bytes()).into() };
    bool::from(digest(presented).ct_eq(&digest(configured)))
}

/// Why a request was refused: a 401, whatever the variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer <token>` header, or a malformed one.
    #[error("missing or malformed Authorization header: expected `Authorization: Bearer <API_TOKEN>`")]
    Missing,
    /// The token is not the configured one.
    #[error("the bearer token is not valid")]
    Invalid,
    #[error(
        "the API is closed: no API_TOKEN is configured (set it with `wrangler secret put API_TOKEN`; locally it comes from .dev.vars)"
    )]
    /// No `API_TOKEN` is configured: the API refuses every request.
    NotConfigured,
}

/// Checks an `Authorization` header against the configured token.
pub fn check_bearer(header: Option<&str>, configured: Option<&str>) -> Result<(), AuthError> {
    let configured = configured.map(str::trim).filter(|t| !t.is_empty()).ok_or(AuthError::NotConfigured)?;
    let presented = header
        .and_then(|h| h.trim().strip_prefix("Bearer ").or_else(|| h.trim().strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::Missing)?;
    if tokens_match(presented, configured) {
        Ok(())
    } else {
        Err(AuthError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert_eq!(check_bearer(Some("Bearer s3cret"), Some("s3cret")), Ok(()));
        assert_eq!(check_bearer(Some("bearer s3cret "), Some("s3cret")), Ok(()));
        assert_eq!(check_bearer(Some("Bearer nope"), Some("s3cret")), Err(AuthError::Invalid));
        assert_eq!(check_bearer(Some("Bearer s3cre"), Some("s3cret")), Err(AuthError::Invalid));
        assert_eq!(check_bearer(Some("Basic czM="), Some("s3cret")), Err(AuthError::Missing));
        assert_eq!(check_bearer(None, Some("s3cret")), Err(AuthError::Missing));
        assert_eq!(check_bearer(Some("Bearer s3cret"), None), Err(AuthError::NotConfigured));
        assert_eq!(check_bearer(Some("Bearer "), Some("")), Err(AuthError::NotConfigured));
    }
}

/// Property tests (host only: proptest's randomness does not build for wasm32).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties {
    use super::*;

    proptest::proptest! {
        #[test]
        fn tokens_match_exactly_when_equal(a in ".{0,64}", b in ".{0,64}") {
            proptest::prop_assert_eq!(tokens_match(&a, &b), a == b);
            proptest::prop_assert!(tokens_match(&a, &a));
        }

        #[test]
        fn any_header_is_answered(header in ".{0,100}") {
            let result = check_bearer(Some(&header), Some("s3cret"));
            let expected_ok = header.trim().strip_prefix("Bearer ").or_else(|| header.trim().strip_prefix("bearer ")).map(str::trim) == Some("s3cret");
            proptest::prop_assert_eq!(result.is_ok(), expected_ok);
        }
    }
}
