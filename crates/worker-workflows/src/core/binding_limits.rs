//! The platform's limits on what workflow code sends to its bindings (KV, R2, queues),
//! checked before anything is sent: a call over a limit fails its step at once with a
//! message that names the limit, rather than after a round trip, and the same way on the
//! test engine as in the Worker. Also how many entries one list call asks for.
//!
//! Numbers from Cloudflare's documentation (KV "Write key-value pairs" and "List keys",
//! R2 `list()`, Queues "Limits"; a queue KB is 1000 bytes).

/// The most keys (KV) or objects (R2) one list call returns, and what a call that sets no
/// limit asks for.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// The limit a list call asks for: `requested`, at least 1 and at most
/// [`MAX_LIST_LIMIT`]; the maximum when unset.
pub fn list_limit(requested: Option<u32>) -> u32 {
    requested.unwrap_or(MAX_LIST_LIMIT).clamp(1, MAX_LIST_LIMIT)
}

/// The longest KV key, in bytes.
pub const MAX_KV_KEY_BYTES: usize = 512;
/// The largest KV value, in bytes (25 MiB).
pub const MAX_KV_VALUE_BYTES: usize = 25 * 1024 * 1024;
/// The largest KV metadata, as JSON text, in bytes.
pub const MAX_KV_METADATA_BYTES: usize = 1024;
/// The shortest expiry KV takes, in seconds, as a TTL or as an absolute time from now.
pub const MIN_KV_EXPIRATION_TTL_SECONDS: u64 = 60;

/// A KV key the platform would refuse: empty, `.` or `..`, or over [`MAX_KV_KEY_BYTES`].
pub fn check_kv_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key == "." || key == ".." {
        return Err(format!("the key {key:?} is not allowed (a key cannot be empty, \".\" or \"..\")"));
    }
    if key.len() > MAX_KV_KEY_BYTES {
        let shown: String = key.chars().take(64).collect();
        return Err(format!("the key {shown:?}… is {} bytes; a key has at most {MAX_KV_KEY_BYTES}", key.len()));
    }
    Ok(())
}

/// A KV write the platform would refuse: the key (see [`check_kv_key`]), a value over
/// [`MAX_KV_VALUE_BYTES`], metadata (JSON text) over [`MAX_KV_METADATA_BYTES`], or a TTL
/// under [`MIN_KV_EXPIRATION_TTL_SECONDS`]. An absolute expiration is checked against the
/// clock where the write happens ([`kv_expiration`]).
pub fn check_kv_put(key: &str, value_bytes: usize, metadata_json: Option<&str>, expiration_ttl: Option<u64>) -> Result<(), String> {
    check_kv_key(key)?;
    if value_bytes > MAX_KV_VALUE_BYTES {
        return Err(format!("the value of {key:?} is {value_bytes} bytes; a value has at most {MAX_KV_VALUE_BYTES}"));
    }
    if let Some(metadata) = metadata_json.filter(|m| m.len() > MAX_KV_METADATA_BYTES) {
        return Err(format!("the metadata of {key:?} is {} bytes as JSON; metadata has at most {MAX_KV_METADATA_BYTES}", metadata.len()));
    }
    if let Some(ttl) = expiration_ttl.filter(|ttl| *ttl < MIN_KV_EXPIRATION_TTL_SECONDS) {
        return Err(format!("an expiration TTL of {ttl} s is too short; KV takes at least {MIN_KV_EXPIRATION_TTL_SECONDS} s"));
    }
    Ok(())
}

/// When a KV write expires, in Unix seconds, as the platform reads its options: the TTL
/// counts from `now_seconds` and wins over an absolute `expiration` when both are set; an
/// absolute expiration less than [`MIN_KV_EXPIRATION_TTL_SECONDS`] ahead is refused.
pub fn kv_expiration(now_seconds: u64, expiration_ttl: Option<u64>, expiration: Option<u64>) -> Result<Option<u64>, String> {
    match (expiration_ttl, expiration) {
        (Some(ttl), _) if ttl < MIN_KV_EXPIRATION_TTL_SECONDS => {
            Err(format!("an expiration TTL of {ttl} s is too short; KV takes at least {MIN_KV_EXPIRATION_TTL_SECONDS} s"))
        }
        (Some(ttl), _) => Ok(Some(now_seconds.saturating_add(ttl))),
        (None, Some(at)) if at < now_seconds.saturating_add(MIN_KV_EXPIRATION_TTL_SECONDS) => {
            Err(format!("an expiration at {at} (Unix seconds) is less than {MIN_KV_EXPIRATION_TTL_SECONDS} s after now ({now_seconds})"))
        }
        (None, at) => Ok(at),
    }
}

/// The largest queue message body, as JSON text, in bytes (128 KB).
pub const MAX_QUEUE_MESSAGE_BYTES: usize = 128_000;
/// The most messages one `sendBatch` carries.
pub const MAX_QUEUE_BATCH_MESSAGES: usize = 100;
/// The most bytes (the bodies' JSON text together) one `sendBatch` carries (256 KB).
pub const MAX_QUEUE_BATCH_BYTES: usize = 256_000;

/// Message bodies (JSON text) the queue would refuse as one batch: a body over
/// [`MAX_QUEUE_MESSAGE_BYTES`], more than [`MAX_QUEUE_BATCH_MESSAGES`] bodies, or more
/// than [`MAX_QUEUE_BATCH_BYTES`] together. A single `send` is a batch of one.
pub fn check_queue_batch(bodies: &[String]) -> Result<(), String> {
    const HINT: &str = "keep large data in R2 and send its key";
    if let Some((index, body)) = bodies.iter().enumerate().find(|(_, b)| b.len() > MAX_QUEUE_MESSAGE_BYTES) {
        let which = if bodies.len() == 1 { "the message".to_string() } else { format!("message {index}") };
        return Err(format!("{which} is {} bytes as JSON; a queue message holds at most {MAX_QUEUE_MESSAGE_BYTES} ({HINT})", body.len()));
    }
    if bodies.len() > MAX_QUEUE_BATCH_MESSAGES {
        return Err(format!("a batch of {} messages; a batch holds at most {MAX_QUEUE_BATCH_MESSAGES} (send it in parts)", bodies.len()));
    }
    let total: usize = bodies.iter().map(String::len).sum();
    if total > MAX_QUEUE_BATCH_BYTES {
        return Err(format!(
            "a batch of {total} bytes as JSON; a batch holds at most {MAX_QUEUE_BATCH_BYTES} (send it in parts, or {HINT})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_limits_are_clamped_to_the_platform_maximum() {
        assert_eq!(list_limit(None), 1000);
        assert_eq!(list_limit(Some(0)), 1);
        assert_eq!(list_limit(Some(10)), 10);
        assert_eq!(list_limit(Some(1000)), 1000);
        assert_eq!(list_limit(Some(u32::MAX)), 1000);
    }

    #[test]
    fn kv_keys_values_and_metadata_are_bounded() {
        assert_eq!(check_kv_key("a"), Ok(()));
        assert_eq!(check_kv_key(&"k".repeat(512)), Ok(()));
        for bad in ["", ".", ".."] {
            assert!(check_kv_key(bad).unwrap_err().contains("is not allowed"), "{bad:?}");
        }
        let long = check_kv_key(&"k".repeat(513)).unwrap_err();
        assert!(long.contains("513 bytes; a key has at most 512") && long.len() < 200, "{long}");
        assert_eq!(check_kv_put("k", MAX_KV_VALUE_BYTES, Some("{}"), Some(60)), Ok(()));
        assert!(check_kv_put("k", MAX_KV_VALUE_BYTES + 1, None, None).unwrap_err().contains("a value has at most"));
        let metadata = format!("\"{}\"", "m".repeat(1023));
        assert!(check_kv_put("k", 1, Some(&metadata), None).unwrap_err().contains("1025 bytes as JSON; metadata has at most 1024"));
        assert!(check_kv_put("k", 1, None, Some(59)).unwrap_err().contains("at least 60 s"));
    }

    #[test]
    fn a_kv_ttl_counts_from_now_and_wins_over_an_absolute_expiration() {
        assert_eq!(kv_expiration(1000, None, None), Ok(None));
        assert_eq!(kv_expiration(1000, Some(60), None), Ok(Some(1060)));
        assert_eq!(kv_expiration(1000, Some(120), Some(5000)), Ok(Some(1120)));
        assert_eq!(kv_expiration(1000, None, Some(1060)), Ok(Some(1060)));
        assert!(kv_expiration(1000, None, Some(1059)).unwrap_err().contains("less than 60 s after now"));
        assert!(kv_expiration(1000, Some(59), Some(5000)).is_err());
        assert_eq!(kv_expiration(u64::MAX - 1, Some(60), None), Ok(Some(u64::MAX)));
    }

    #[test]
    fn queue_messages_and_batches_are_bounded() {
        let body = |n: usize| "x".repeat(n);
        assert_eq!(check_queue_batch(&[]), Ok(()));
        assert_eq!(check_queue_batch(&[body(MAX_QUEUE_MESSAGE_BYTES)]), Ok(()));
        let one = check_queue_batch(&[body(MAX_QUEUE_MESSAGE_BYTES + 1)]).unwrap_err();
        assert!(one.starts_with("the message is 128001 bytes as JSON; a queue message holds at most 128000"), "{one}");
        let second = check_queue_batch(&[body(1), body(MAX_QUEUE_MESSAGE_BYTES + 1)]).unwrap_err();
        assert!(second.starts_with("message 1 is 128001 bytes"), "{second}");
        assert_eq!(check_queue_batch(&vec![body(10); 100]), Ok(()));
        assert!(check_queue_batch(&vec![body(10); 101]).unwrap_err().contains("a batch of 101 messages; a batch holds at most 100"));
        assert_eq!(check_queue_batch(&[body(128_000), body(128_000)]), Ok(()));
        assert!(check_queue_batch(&[body(128_000), body(128_000), body(1)]).unwrap_err().contains("256001 bytes"));
    }
}
