//! The platform's own limits, read from its error messages: the Workflows engine and the
//! queue refuse work with plain `Error`s, and what the API answers depends on why.
//!
//! Messages, as the local runtime writes them (miniflare and workerd of wrangler 4.164):
//! - the queue producer (workerd `WorkerQueue`): `Queue send failed: <status text>` and
//!   `Queue sendBatch failed: <status text>`, where the broker answers 413
//!   `Payload Too Large` for a message over 128 KB or a batch over its byte or count
//!   limit (miniflare `queues/broker.worker.js`, `PayloadTooLargeError`), and 429/503 for
//!   throttling and outages;
//! - the Workflows engine: the local one has no rate limits; Cloudflare's answers a
//!   creation rate over its limit (100 per second per workflow) with a rate-limit error,
//!   read here by the words every such message carries (`rate limit`, `too many
//!   requests`), and a lost connection to the engine with workerd's
//!   `Network connection lost.`, which a retry usually passes.

/// A platform limit an error message reports, and how the API answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformLimit {
    /// Too many requests: 429, retry after [`RATE_LIMIT_RETRY_AFTER_SECONDS`].
    RateLimited,
    /// Briefly unavailable: 503, retry after [`UNAVAILABLE_RETRY_AFTER_SECONDS`].
    Unavailable,
    /// A message over the queue's size limits: 413.
    TooLarge,
}

/// The `Retry-After` of a rate-limited request, in seconds.
pub const RATE_LIMIT_RETRY_AFTER_SECONDS: u32 = 1;
/// The `Retry-After` of a request refused while the platform is unavailable, in seconds.
pub const UNAVAILABLE_RETRY_AFTER_SECONDS: u32 = 5;

/// Which limit a platform error message reports, if any.
pub fn classify(message: &str) -> Option<PlatformLimit> {
    let m = message.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
    if any(&["payload too large", "exceeds single message size limit", "exceeds limit of", "message too large", "too large"]) {
        Some(PlatformLimit::TooLarge)
    } else if any(&["too many requests", "rate limit", "rate_limit", "ratelimit", "rate-limited"]) {
        Some(PlatformLimit::RateLimited)
    } else if any(&[
        "service unavailable",
        "temporarily unavailable",
        "overloaded",
        "network connection lost",
        "bad gateway",
        "gateway timeout",
    ]) {
        Some(PlatformLimit::Unavailable)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_and_engine_messages() {
        use PlatformLimit::*;
        // workerd's producer errors, with the broker's status texts.
        assert_eq!(classify("Queue sendBatch failed: Payload Too Large"), Some(TooLarge));
        assert_eq!(classify("Error: Queue send failed: Payload Too Large"), Some(TooLarge));
        assert_eq!(classify("Queue sendBatch failed: Too Many Requests"), Some(RateLimited));
        assert_eq!(classify("Queue sendBatch failed: Service Unavailable"), Some(Unavailable));
        // The broker's own texts, should they ever be passed through.
        assert_eq!(classify("message length of 200000 bytes exceeds limit of 128000"), Some(TooLarge));
        assert_eq!(classify("batch size of 300000 bytes exceeds limit of 288000"), Some(TooLarge));
        // The engine.
        assert_eq!(classify("WorkflowError: (instance.rate_limited) Rate limit exceeded"), Some(RateLimited));
        assert_eq!(classify("Network connection lost."), Some(Unavailable));
        // Everything else stays an internal error.
        assert_eq!(classify("WorkflowError: (instance.not_found) Instance does not exist"), None);
        assert_eq!(classify("TypeError: cannot read properties of undefined"), None);
        assert_eq!(classify(""), None);
    }
}

/// Property tests (host only: proptest's randomness does not build for wasm32).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties {
    use super::*;

    proptest::proptest! {
        #[test]
        fn any_message_is_classified_without_panicking(message in ".{0,200}") {
            let _ = classify(&message);
        }
    }
}
