//! What an answer from an outside service means for the step that called it:
//! a 2xx is success; anything else fails the attempt so the engine retries,
//! except the answers a retry cannot change (a 4xx from a service that says so).

use crate::core::step_error::StepError;
use std::time::{Duration, SystemTime};

/// Whether a 4xx answer from this service is final (a declined payment) or may
/// pass on a retry (a rate limit, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientErrors {
    Retry,
    Final,
}

/// Maps a service's status to the step's outcome, keeping the start of the body
/// in the message so the instance's error says what the service said, and the wait the
/// service asked for (`Retry-After`) where a delay function can read it back
/// ([`StepError::retry_after`]).
pub fn check_status(
    service: &str,
    status: u16,
    body: &str,
    client_errors: ClientErrors,
    retry_after: Option<Duration>,
) -> Result<(), StepError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let excerpt: String = body.chars().take(200).collect();
    let message = match retry_after {
        Some(wait) => format!("{service} answered {status} ({RETRY_AFTER_MARK}{} ms): {excerpt}", crate::core::duration::as_millis(wait)),
        None => format!("{service} answered {status}: {excerpt}"),
    };
    if (400..500).contains(&status) && client_errors == ClientErrors::Final && status != 408 && status != 429 {
        Err(StepError::NonRetryable(message))
    } else {
        Err(StepError::Failed(message))
    }
}

/// How a failure's message carries the wait a service asked for: "(retry after 2000 ms)".
const RETRY_AFTER_MARK: &str = "retry after ";

/// The wait a service asked for in a failure's message, as [`check_status`] wrote it.
/// Only the part before the body counts, so a body that happens to contain the words
/// cannot set it.
pub fn retry_after_hint(message: &str) -> Option<Duration> {
    let (head, _) = message.split_once(": ")?;
    let (_, millis) = head.strip_suffix(" ms)")?.rsplit_once(&format!(" ({RETRY_AFTER_MARK}"))?;
    millis.parse::<u64>().ok().map(Duration::from_millis)
}

/// The longest `Retry-After` taken from a service: a day (a longer one is read as a day).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// A `Retry-After` header: delay-seconds ("120") or an HTTP date, relative to `now`;
/// at most [`MAX_RETRY_AFTER`]. Anything else is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.len() > 64 {
        return None;
    }
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(at.timestamp_millis()).ok()?);
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// What `encodeURIComponent` leaves as it is: letters, digits and `-_.!~*'()`.
const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// A value as one path segment, encoded as JavaScript's `encodeURIComponent` does.
pub fn encode_uri_component(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, URI_COMPONENT).to_string()
}

/// Joins a base URL from config and a path without doubling or dropping the slash.
pub fn join_url(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(check_status("payments", 201, "", ClientErrors::Final, None), Ok(()));
        assert!(
            matches!(check_status("payments", 503, "down", ClientErrors::Final, None), Err(StepError::Failed(m)) if m == "payments answered 503: down")
        );
        assert!(
            matches!(check_status("payments", 402, "declined", ClientErrors::Final, None), Err(StepError::NonRetryable(m)) if m.contains("declined"))
        );
        assert!(matches!(check_status("payments", 429, "", ClientErrors::Final, None), Err(StepError::Failed(_))));
        assert!(matches!(check_status("inventory", 404, "", ClientErrors::Retry, None), Err(StepError::Failed(_))));
    }

    #[test]
    fn a_retry_after_rides_in_the_message_and_reads_back() {
        let err = check_status("rates", 429, "slow down", ClientErrors::Final, Some(Duration::from_secs(3))).unwrap_err();
        assert_eq!(err, StepError::Failed("rates answered 429 (retry after 3000 ms): slow down".into()));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(retry_after_hint("rates answered 503: down"), None);
        // A body cannot forge it: only the part before the body counts.
        let forged = check_status("rates", 503, "x (retry after 1 ms): y", ClientErrors::Retry, None).unwrap_err();
        assert_eq!(forged.retry_after(), None);
        assert_eq!(StepError::Timeout("x".into()).retry_after(), None);
    }

    #[test]
    fn retry_after_headers() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("99999999999999999999999", now), Some(MAX_RETRY_AFTER));
        // 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT.
        assert_eq!(parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now), Some(Duration::from_secs(30)));
        assert_eq!(parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now), Some(Duration::ZERO));
        for bad in ["", "-1", "1.5", "soon", &"9".repeat(100)] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn path_segments_are_encoded_like_encode_uri_component() {
        assert_eq!(encode_uri_component("p-1_a.b"), "p-1_a.b");
        assert_eq!(encode_uri_component("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(encode_uri_component("!~*'()"), "!~*'()");
        assert_eq!(encode_uri_component("ü"), "%C3%BC");
        assert_eq!(encode_uri_component(".."), "..");
    }

    #[test]
    fn urls() {
        assert_eq!(join_url("http://a/b/", "/check/1"), "http://a/b/check/1");
        assert_eq!(join_url("http://a", "send"), "http://a/send");
    }
}
