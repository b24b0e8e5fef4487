//! Signing outgoing webhooks the Standard Webhooks way
//! (<https://www.standardwebhooks.com/>), so receivers can check them with any
//! Standard Webhooks library.
//!
//! Each delivery carries three headers: `webhook-id` (the message id, the same
//! on every retry so receivers can deduplicate), `webhook-timestamp` (Unix
//! seconds) and `webhook-signature` (`v1,` + base64 of
//! HMAC-SHA256(key, `"{id}.{timestamp}.{body}"`)). The secret is written
//! `whsec_` + base64 of the key bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

type HmacSha256 = Hmac<Sha256>;

/// The header carrying the message id.
pub const HEADER_ID: &str = "webhook-id";
/// The header carrying the send time, in Unix seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// The header carrying the signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

const SECRET_PREFIX: &str = "whsec_";
const SIGNATURE_VERSION: &str = "v1";

/// Why a webhook secret was refused. The messages never quote the secret (nor
/// the base64 decoder's detail, which names an offending byte of it), since
/// they may end up in logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookSecretError {
    /// It does not start with `whsec_`.
    #[error("webhook secret must start with \"whsec_\" followed by the base64 of the key")]
    MissingPrefix,
    /// What follows `whsec_` is not base64 (standard alphabet, padded).
    #[error("webhook secret is not valid base64 after the \"whsec_\" prefix (standard alphabet, padded)")]
    InvalidBase64,
    /// The key is empty.
    #[error("webhook secret has an empty key after the \"whsec_\" prefix")]
    EmptyKey,
    /// The key is shorter than [`MIN_KEY_BYTES`] or longer than [`MAX_KEY_BYTES`].
    #[error("webhook secret's key is {len} bytes; Standard Webhooks keys are {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes")]
    KeyLength {
        /// The key's length in bytes.
        len: usize,
    },
    /// No secret is configured.
    #[error("the secret WEBHOOK_SECRET is not configured (`wrangler secret put WEBHOOK_SECRET`)")]
    Missing,
}

/// The shortest key Standard Webhooks allows, in bytes: 24 (192 bits).
pub const MIN_KEY_BYTES: usize = 24;
/// The longest key Standard Webhooks allows, in bytes.
pub const MAX_KEY_BYTES: usize = 64;

/// The configured secret (`WEBHOOK_SECRET`, absent when `None`) as a key, or why it cannot
/// sign: checked when a callback is requested, so a bad secret is refused at create time
/// rather than failing the delivery when the instance ends.
pub fn configured_key(secret: Option<&str>) -> Result<WebhookKey, WebhookSecretError> {
    WebhookKey::from_secret(secret.ok_or(WebhookSecretError::Missing)?)
}

/// The HMAC key of a webhook endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookKey(Vec<u8>);

// Hand-written so the key bytes never show up in a `{:?}` log line.
impl std::fmt::Debug for WebhookKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookKey(<redacted>)")
    }
}

impl WebhookKey {
    /// Reads a `whsec_<base64>` secret; surrounding whitespace (a trailing
    /// newline from `wrangler secret put`, say) is ignored.
    pub fn from_secret(secret: &str) -> Result<Self, WebhookSecretError> {
        let encoded = secret.trim().strip_prefix(SECRET_PREFIX).ok_or(WebhookSecretError::MissingPrefix)?;
        let key = STANDARD.decode(encoded).map_err(|_| WebhookSecretError::InvalidBase64)?;
        if key.is_empty() {
            return Err(WebhookSecretError::EmptyKey);
        }
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(WebhookSecretError::KeyLength { len: key.len() });
        }
        Ok(Self(key))
    }

    fn mac(&self, msg_id: &str, timestamp: u64, body: &str) -> [u8; 32] {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The `webhook-signature` value for one message: `v1,<base64>`.
    pub fn signature(&self, msg_id: &str, timestamp: u64, body: &str) -> String {
        format!("{SIGNATURE_VERSION},{}", STANDARD.encode(self.mac(msg_id, timestamp, body)))
    }

    /// Whether `header` (a space-separated list of `version,signature`, as
    /// sent during key rotation) holds a valid `v1` signature of the message.
    /// Other versions are skipped. Every candidate is compared in constant
    /// time, and all of them are looked at, so timing says nothing about
    /// which (if any) matched. This does not check the timestamp's age; the
    /// caller decides on a tolerance.
    pub fn verify(&self, msg_id: &str, timestamp: u64, body: &str, header: &str) -> bool {
        let expected = self.mac(msg_id, timestamp, body);
        let mut matched = Choice::from(0);
        for candidate in header.split_ascii_whitespace() {
            let Some((version, encoded)) = candidate.split_once(',') else { continue };
            if version != SIGNATURE_VERSION {
                continue;
            }
            // Undecodable candidates simply do not match.
            if let Ok(bytes) = STANDARD.decode(encoded) {
                // Slices of different lengths compare unequal.
                matched |= bytes.as_slice().ct_eq(&expected[..]);
            }
        }
        matched.into()
    }

    /// The three headers for one delivery of `body`.
    pub fn sign(&self, msg_id: &str, timestamp: u64, body: &str) -> SignedHeaders {
        SignedHeaders { id: msg_id.to_string(), timestamp: timestamp.to_string(), signature: self.signature(msg_id, timestamp, body) }
    }
}

/// The Standard Webhooks header values of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `webhook-id`: the message id.
    pub id: String,
    /// `webhook-timestamp`: Unix seconds, in decimal.
    pub timestamp: String,
    /// `webhook-signature`: `v1,<base64>`.
    pub signature: String,
}

impl SignedHeaders {
    /// `(name, value)` for each header, ready to set on the outgoing request.
    pub fn header_pairs(&self) -> [(&'static str, &str); 3] {
        [(HEADER_ID, &self.id), (HEADER_TIMESTAMP, &self.timestamp), (HEADER_SIGNATURE, &self.signature)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector from the Standard Webhooks specification's libraries.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: u64 = 1614265330;
    const BODY: &str = r#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn key() -> WebhookKey {
        WebhookKey::from_secret(SECRET).expect("test secret is valid")
    }

    #[test]
    fn official_test_vector() {
        assert_eq!(key().signature(MSG_ID, TIMESTAMP, BODY), SIGNATURE);
    }

    #[test]
    fn sign_gives_the_three_headers() {
        let headers = key().sign(MSG_ID, TIMESTAMP, BODY);
        assert_eq!(headers, SignedHeaders { id: MSG_ID.into(), timestamp: "1614265330".into(), signature: SIGNATURE.into() });
        assert_eq!(headers.header_pairs(), [("webhook-id", MSG_ID), ("webhook-timestamp", "1614265330"), ("webhook-signature", SIGNATURE)]);
    }

    #[test]
    fn secret_whitespace_is_trimmed() {
        let padded = WebhookKey::from_secret(&format!("  {SECRET}\n")).expect("valid");
        assert_eq!(padded.signature(MSG_ID, TIMESTAMP, BODY), SIGNATURE);
    }

    #[test]
    fn verify_accepts_the_signature() {
        assert!(key().verify(MSG_ID, TIMESTAMP, BODY, SIGNATURE));
    }

    #[test]
    fn verify_accepts_it_among_several() {
        let other = WebhookKey::from_secret("whsec_c2VjcmV0LWtleS0yLW9mLWF0LWxlYXN0LTI0LWJ5dGVz")
            .expect("valid")
            .signature(MSG_ID, TIMESTAMP, BODY);
        for header in [
            format!("{other} {SIGNATURE}"),
            format!("{SIGNATURE} {other}"),
            format!("v1a,abcd {other}  {SIGNATURE} v2,xyz"),
            format!("garbage v1,not-base64!! {SIGNATURE}"),
        ] {
            assert!(key().verify(MSG_ID, TIMESTAMP, BODY, &header), "{header}");
        }
        assert!(!key().verify(MSG_ID, TIMESTAMP, BODY, &other));
    }

    #[test]
    fn verify_rejects_changes() {
        let key = key();
        assert!(!key.verify(MSG_ID, TIMESTAMP, r#"{"test": 2432232315}"#, SIGNATURE));
        assert!(!key.verify("msg_p5jXN8AQM9LWM0D4loKWxJeK", TIMESTAMP, BODY, SIGNATURE));
        assert!(!key.verify(MSG_ID, TIMESTAMP + 1, BODY, SIGNATURE));
    }

    #[test]
    fn verify_rejects_malformed_headers() {
        let key = key();
        let bare = SIGNATURE.trim_start_matches("v1,");
        let truncated = &SIGNATURE[..SIGNATURE.len() - 4];
        for header in ["", " ", bare, "v1,", "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", truncated] {
            assert!(!key.verify(MSG_ID, TIMESTAMP, BODY, header), "{header:?}");
        }
    }

    #[test]
    fn secret_errors() {
        assert_eq!(WebhookKey::from_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Err(WebhookSecretError::MissingPrefix));
        assert_eq!(WebhookKey::from_secret(""), Err(WebhookSecretError::MissingPrefix));
        assert_eq!(WebhookKey::from_secret("WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Err(WebhookSecretError::MissingPrefix));
        assert_eq!(WebhookKey::from_secret("whsec_not base64!"), Err(WebhookSecretError::InvalidBase64));
        assert_eq!(WebhookKey::from_secret("whsec_abc"), Err(WebhookSecretError::InvalidBase64));
        assert_eq!(WebhookKey::from_secret("whsec_"), Err(WebhookSecretError::EmptyKey));
        assert_eq!(WebhookKey::from_secret("  whsec_ \n"), Err(WebhookSecretError::EmptyKey));
        // "short": 5 bytes; 23 and 65 bytes are just outside what Standard Webhooks allows.
        assert_eq!(WebhookKey::from_secret("whsec_c2hvcnQ="), Err(WebhookSecretError::KeyLength { len: 5 }));
        assert_eq!(
            WebhookKey::from_secret(&format!("whsec_{}", STANDARD.encode([7u8; 23]))),
            Err(WebhookSecretError::KeyLength { len: 23 })
        );
        assert_eq!(
            WebhookKey::from_secret(&format!("whsec_{}", STANDARD.encode([7u8; 65]))),
            Err(WebhookSecretError::KeyLength { len: 65 })
        );
        assert!(WebhookKey::from_secret(&format!("whsec_{}", STANDARD.encode([7u8; 64]))).is_ok());
        assert_eq!(configured_key(None), Err(WebhookSecretError::Missing));
        assert!(configured_key(Some(SECRET)).is_ok());
        let shown = configured_key(Some("whsec_c2hvcnQ=")).unwrap_err().to_string();
        assert!(shown.contains("5 bytes") && !shown.contains("c2hvcnQ"), "{shown}");
    }

    #[test]
    fn secret_never_leaks() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!";
        let err = WebhookKey::from_secret(secret).expect_err("invalid");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("MfKQ9r8G"), "{shown}");
        assert!(!format!("{:?}", key()).contains("MfKQ"));
    }
}

/// Property tests (host only: proptest's randomness does not build for wasm32).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties {
    use super::*;

    proptest::proptest! {
        /// Any secret text is a key or a reason, never a panic, and the reason never quotes it.
        #[test]
        fn any_secret_is_a_key_or_a_reason(secret in ".{0,120}") {
            if let Err(e) = WebhookKey::from_secret(&secret) {
                let shown = e.to_string();
                let encoded = secret.trim().trim_start_matches("whsec_");
                proptest::prop_assert!(encoded.len() < 12 || !shown.contains(encoded), "{}", shown);
            }
        }
    }
}
