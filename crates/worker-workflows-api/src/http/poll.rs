//! The synchronous-poll pattern: how long a request may wait for its instance
//! (`?wait=30s`, at most 5 minutes) and when to look: first after 250 ms, then
//! doubling, never more than 2 s apart.

use std::time::Duration;
use worker_workflows::core::duration::{self, DurationError};

/// The longest `?wait=`.
pub const MAX_WAIT: Duration = Duration::from_secs(5 * 60);
/// The delay before the first poll.
pub const FIRST_POLL: Duration = Duration::from_millis(250);
/// The longest delay between two polls.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Why a `?wait=` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// It does not read as a duration.
    #[error("wait: {0}")]
    Malformed(DurationError),
    /// It is longer than [`MAX_WAIT`] (the text given).
    #[error("wait {} is longer than the 5 minutes a request may wait; poll the statusUrl instead", worker_workflows::core::validate::excerpt(.0))]
    TooLong(String),
}

/// Reads `?wait=`: "30s", "2 minutes", "1500" (ms); zero means do not wait.
pub fn parse_wait(value: &str) -> Result<Duration, WaitError> {
    let wait = duration::parse(value).map_err(WaitError::Malformed)?;
    if wait > MAX_WAIT {
        return Err(WaitError::TooLong(value.to_string()));
    }
    Ok(wait)
}

/// The delays between polls within `wait`: 250 ms, 500 ms, 1 s, 2 s, 2 s, … with the
/// last one cut so the polls end at the deadline.
pub fn poll_delays(wait: Duration) -> impl Iterator<Item = Duration> {
    let mut elapsed = Duration::ZERO;
    let mut next = FIRST_POLL;
    std::iter::from_fn(move || {
        if elapsed >= wait {
            return None;
        }
        let delay = next.min(wait - elapsed);
        elapsed += delay;
        next = (next * 2).min(MAX_POLL_INTERVAL);
        Some(delay)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits() {
        assert_eq!(parse_wait("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_wait("2 minutes"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_wait("5 minutes"), Ok(MAX_WAIT));
        assert!(matches!(parse_wait("6 minutes"), Err(WaitError::TooLong(_))));
        assert!(matches!(parse_wait("a bit"), Err(WaitError::Malformed(_))));
    }

    #[test]
    fn backoff_starts_at_250ms_doubles_and_caps_at_2s() {
        let delays: Vec<u128> = poll_delays(Duration::from_secs(10)).map(|d| d.as_millis()).collect();
        assert_eq!(delays, [250, 500, 1000, 2000, 2000, 2000, 2000, 250]);
        assert_eq!(delays.iter().sum::<u128>(), 10_000);
        assert!(delays.iter().all(|&d| d <= 2000));
        assert_eq!(poll_delays(Duration::ZERO).count(), 0);
        let short: Vec<u128> = poll_delays(Duration::from_millis(600)).map(|d| d.as_millis()).collect();
        assert_eq!(short, [250, 350]);
    }
}
