//! What an answer from an outside service means for the step that called it:
//! a 2xx is success; anything else fails the attempt so the engine retries,
//! except the answers a retry cannot change (a 4xx from a service that says so, a
//! redirect, which is never followed, and a body over the call's cap).
//!
//! Also the rules every outbound call keeps: how much of an answer is read
//! ([`CappedBody`], the caps below) and the `Idempotency-Key` of a call with a side
//! effect ([`idempotency_key`]).

use crate::core::step_error::StepError;
use std::time::{Duration, SystemTime};

/// Whether a 4xx answer from this service is final (a declined payment) or may
/// pass on a retry (a rate limit, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientErrors {
    /// A 4xx fails the attempt, and the engine retries it.
    Retry,
    /// A 4xx (other than 408 and 429) fails the step at once.
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
    if (300..400).contains(&status) {
        return Err(redirect_refused(service, status, None));
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

/// A 3xx answer: redirects are never followed (a caller-given URL could otherwise lead
/// the Worker past the URL policy to an internal address). Final, not retried: the
/// same request gets the same answer, and a service configured at a URL that redirects
/// (moved, or http upgraded to https) is a mistake a retry cannot fix; failing at once
/// says so now rather than after the step's whole retry ladder.
pub fn redirect_refused(service: &str, status: u16, location: Option<&str>) -> StepError {
    match location {
        Some(to) => {
            let to: String = to.chars().take(200).collect();
            StepError::NonRetryable(format!("{service} answered {status} (redirects are not followed; it points to {to})"))
        }
        None => StepError::NonRetryable(format!("{service} answered {status} (redirects are not followed)")),
    }
}

/// A 2xx answer whose body is over the call's cap: final, since the same request gets
/// the same body, and retrying would only download it again. `limit_var` names the var
/// that sets the cap, if one does.
pub fn body_too_large(service: &str, status: u16, max_bytes: usize, limit_var: Option<&str>) -> StepError {
    let set_by = limit_var.map(|var| format!(" (set by {var})")).unwrap_or_default();
    StepError::NonRetryable(format!(
        "{service} answered {status} with a body over the {max_bytes}-byte limit{set_by}; it was not read further"
    ))
}

/// The most of a service's answer read by default: 1 MiB (a step's result is capped at
/// 1 MiB too, so a larger JSON answer could not be returned from the step anyway).
pub const MAX_SERVICE_ANSWER_BYTES: usize = 1024 * 1024;

/// The most of a webhook receiver's answer read: only its status matters.
pub const MAX_CALLBACK_ANSWER_BYTES: usize = 16 * 1024;

/// The var that sets the most bytes read from a data source (data-pipeline's
/// `sourceUrl`, step-tour's download and transform).
pub const MAX_SOURCE_BYTES_VAR: &str = "MAX_SOURCE_BYTES";
/// [`MAX_SOURCE_BYTES_VAR`] when unset: 10 MiB.
pub const DEFAULT_MAX_SOURCE_BYTES: usize = 10 * 1024 * 1024;
/// The smallest cap [`MAX_SOURCE_BYTES_VAR`] may set: 1 KiB.
pub const MIN_SOURCE_BYTES: usize = 1024;
/// The largest cap [`MAX_SOURCE_BYTES_VAR`] may set: 32 MiB. The body is held in the
/// isolate's 128 MB of memory, then copied to R2 and parsed, so a larger cap could let a
/// source exhaust it (an allocation failure aborts the whole isolate).
pub const MAX_SOURCE_BYTES: usize = 32 * 1024 * 1024;

/// Reads [`MAX_SOURCE_BYTES_VAR`]: a whole number of bytes in
/// [`MIN_SOURCE_BYTES`]..=[`MAX_SOURCE_BYTES`]; unset or blank is the default.
pub fn max_source_bytes(var: Option<&str>) -> Result<usize, String> {
    let Some(text) = var.map(str::trim).filter(|t| !t.is_empty()) else { return Ok(DEFAULT_MAX_SOURCE_BYTES) };
    let shown: String = text.chars().take(32).collect();
    text.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse::<usize>().ok())
        .flatten()
        .filter(|n| (MIN_SOURCE_BYTES..=MAX_SOURCE_BYTES).contains(n))
        .ok_or_else(|| {
            format!("{MAX_SOURCE_BYTES_VAR} must be a whole number of bytes from {MIN_SOURCE_BYTES} to {MAX_SOURCE_BYTES}, not {shown:?}")
        })
}

/// An answer's body as it streams in, kept up to a hard cap: past the cap reading stops
/// (the rest is never allocated), and a `Content-Length` over the cap stops it before
/// the first byte.
#[derive(Debug)]
pub struct CappedBody {
    max: usize,
    bytes: Vec<u8>,
    over: bool,
}

impl CappedBody {
    /// An empty body capped at `max` bytes; over the cap at once when the declared
    /// `Content-Length` says so.
    pub fn new(max: usize, content_length: Option<&str>) -> Self {
        let declared = content_length.and_then(|v| v.trim().parse::<u64>().ok());
        CappedBody { max, bytes: Vec::new(), over: declared.is_some_and(|n| n > max as u64) }
    }

    /// Whether the body is over the cap: stop reading.
    pub fn is_over(&self) -> bool {
        self.over
    }

    /// Takes the next chunk; false when the body went over the cap with it (keeping
    /// only what fits), so reading must stop.
    pub fn push(&mut self, chunk: &[u8]) -> bool {
        if self.over {
            return false;
        }
        let room = self.max - self.bytes.len();
        if chunk.len() > room {
            self.bytes.extend_from_slice(&chunk[..room]);
            self.over = true;
            return false;
        }
        self.bytes.extend_from_slice(chunk);
        true
    }

    /// The bytes read (at most the cap), and whether the body was longer.
    pub fn finish(self) -> (Vec<u8>, bool) {
        (self.bytes, self.over)
    }
}

/// The `Idempotency-Key` of a call with a side effect made from the `count`-th step
/// named `step` of the instance life `instance` ([`InstanceIdentity::key`]): the same on
/// every attempt, replay and restart of that step (neither the attempt nor anything random
/// is in it), different for every other step, instance, and life of an instance id.
/// `{instanceId}@{createdAtMs}:{step}:{count}`, the step name percent-encoded (a header
/// value is ASCII; `:` cannot occur in it or in an instance id); a key over 255 characters
/// (the longest many services accept) carries the step name's SHA-256 instead.
pub fn idempotency_key(instance: &InstanceIdentity, step: &str, count: u32) -> String {
    let instance_id = instance.key();
    let key = format!("{instance_id}:{}:{count}", encode_uri_component(step));
    if key.len() <= MAX_IDEMPOTENCY_KEY_LEN {
        return key;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(step.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{instance_id}:sha256-{hex}:{count}")
}

/// One life of one instance: who a side effect is for. An instance id names an instance
/// only while it exists: after a delete, or once retention removed it, the id can be
/// created again, and that new instance must not present the old one's idempotency keys
/// (a payment service would answer it with the old charge). The engine's creation time
/// tells the lives apart: it is the instance's event timestamp, the same on every retry,
/// replay and restart of the instance, and later for a new instance of the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceIdentity<'a> {
    /// The instance's id.
    pub id: &'a str,
    /// When the engine created it, in Unix milliseconds.
    pub created_at_ms: u64,
}

impl InstanceIdentity<'_> {
    /// `{id}@{createdAtMs}`: unique per instance life, stable across its retries, replays
    /// and restarts. The base of every idempotency key a workflow derives.
    pub fn key(&self) -> String {
        format!("{}@{}", self.id, self.created_at_ms)
    }
}

/// The longest key [`idempotency_key`] writes with the step name in clear.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

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
    fn redirects_are_final_and_say_they_were_not_followed() {
        let err = check_status("service", 302, "moved", ClientErrors::Retry, None).unwrap_err();
        assert_eq!(err, StepError::NonRetryable("service answered 302 (redirects are not followed)".into()));
        assert_eq!(
            redirect_refused("callback receiver", 307, Some("http://127.0.0.1/x")),
            StepError::NonRetryable("callback receiver answered 307 (redirects are not followed; it points to http://127.0.0.1/x)".into())
        );
        let long = "h".repeat(1000);
        let StepError::NonRetryable(message) = redirect_refused("s", 301, Some(&long)) else { panic!() };
        assert!(message.len() < 300, "{message}");
    }

    #[test]
    fn a_body_is_kept_up_to_its_cap_and_no_further() {
        let mut body = CappedBody::new(10, None);
        assert!(body.push(b"12345"));
        assert!(body.push(b"67890"));
        assert!(!body.is_over());
        assert!(!body.push(b"x"));
        assert!(!body.push(b"more"));
        assert_eq!(body.finish(), (b"1234567890".to_vec(), true));

        let mut exact = CappedBody::new(4, Some("4"));
        assert!(exact.push(b"abcd"));
        assert_eq!(exact.finish(), (b"abcd".to_vec(), false));

        // A declared length over the cap stops it before the first byte.
        let declared = CappedBody::new(4, Some(" 5 "));
        assert!(declared.is_over());
        assert_eq!(declared.finish(), (Vec::new(), true));
        // An unreadable length is ignored: the stream is capped anyway.
        assert!(!CappedBody::new(4, Some("lots")).is_over());
    }

    #[test]
    fn over_the_cap_is_final_and_names_the_var() {
        assert_eq!(
            body_too_large("source", 200, 1024, Some(MAX_SOURCE_BYTES_VAR)),
            StepError::NonRetryable(
                "source answered 200 with a body over the 1024-byte limit (set by MAX_SOURCE_BYTES); it was not read further".into()
            )
        );
    }

    #[test]
    fn the_source_cap_is_read_from_its_var_within_bounds() {
        assert_eq!(max_source_bytes(None), Ok(DEFAULT_MAX_SOURCE_BYTES));
        assert_eq!(max_source_bytes(Some(" ")), Ok(DEFAULT_MAX_SOURCE_BYTES));
        assert_eq!(max_source_bytes(Some("2048")), Ok(2048));
        assert_eq!(max_source_bytes(Some("33554432")), Ok(MAX_SOURCE_BYTES));
        for bad in ["1023", "33554433", "-1", "1e6", "10 MiB", "99999999999999999999999999", "0x400"] {
            let err = max_source_bytes(Some(bad)).unwrap_err();
            assert!(err.starts_with("MAX_SOURCE_BYTES must be a whole number of bytes from 1024 to 33554432"), "{bad}: {err}");
        }
    }

    #[test]
    fn idempotency_keys_name_the_instance_life_the_step_and_its_count() {
        let i = InstanceIdentity { id: "i", created_at_ms: 7 };
        let order = InstanceIdentity { id: "order-1", created_at_ms: 1_795_400_000_120 };
        assert_eq!(idempotency_key(&order, "create-shipment", 1), "order-1@1795400000120:create-shipment:1");
        assert_eq!(idempotency_key(&i, "send email", 2), "i@7:send%20email:2");
        assert_ne!(idempotency_key(&i, "a", 1), idempotency_key(&i, "a", 2));
        assert_ne!(idempotency_key(&i, "a:1", 1), idempotency_key(&InstanceIdentity { id: "i:a", created_at_ms: 7 }, "1", 1));
        // The same id created again (after a delete, or past retention) is another life.
        let again = InstanceIdentity { id: "order-1", created_at_ms: 1_795_400_999_000 };
        assert_ne!(idempotency_key(&order, "create-shipment", 1), idempotency_key(&again, "create-shipment", 1));
        let long = idempotency_key(&i, &"ü".repeat(256), 1);
        assert!(long.len() <= MAX_IDEMPOTENCY_KEY_LEN && long.starts_with("i@7:sha256-") && long.ends_with(":1"), "{long}");
        assert_ne!(long, idempotency_key(&i, &"ü".repeat(255), 1));
        assert!(long.bytes().all(|b| b.is_ascii_graphic()));
    }

    #[test]
    fn urls() {
        assert_eq!(join_url("http://a/b/", "/check/1"), "http://a/b/check/1");
        assert_eq!(join_url("http://a", "send"), "http://a/send");
    }
}
