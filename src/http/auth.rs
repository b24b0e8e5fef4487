//! Bearer-token auth for the `/workflows` API: the token is a secret (`API_TOKEN`),
//! compared in constant time; with no token configured the API stays closed.

use subtle::ConstantTimeEq;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing or malformed Authorization header: expected `Authorization: Bearer <API_TOKEN>`")]
    Missing,
    #[error("the bearer token is not valid")]
    Invalid,
    #[error(
        "the API is closed: no API_TOKEN is configured (set it with `wrangler secret put API_TOKEN`; locally it comes from .dev.vars)"
    )]
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
    if bool::from(presented.as_bytes().ct_eq(configured.as_bytes())) {
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
