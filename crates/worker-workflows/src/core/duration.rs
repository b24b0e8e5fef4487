//! Durations as Cloudflare writes them ("5 seconds", "1 hour", "7 days", plain
//! milliseconds) and as `std::time::Duration`, checked before anything reaches the engine.
//!
//! Everything is sent to the engine as whole milliseconds, so the engine never
//! parses a string of ours and a malformed one fails here with a clear message.

use std::time::Duration;

/// The longest a workflow may sleep or wait (Workflows limit: 365 days).
pub const MAX_SLEEP: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Why a duration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// It does not read as a duration.
    #[error("invalid duration {}: expected \"<number> <unit>\" with unit second, minute, hour, day, week, month or year (e.g. \"5 seconds\", \"30s\"), or a number of milliseconds", crate::core::validate::excerpt(input))]
    Malformed {
        /// The text given.
        input: String,
    },
    /// It is longer than [`MAX_SLEEP`].
    #[error("duration {} is longer than the 365 days Workflows allows", crate::core::validate::excerpt(input))]
    TooLong {
        /// The text given (or the duration, written out).
        input: String,
    },
    /// It is zero where a wait must be longer.
    #[error("duration {} must be longer than zero", crate::core::validate::excerpt(input))]
    Zero {
        /// The text given.
        input: String,
    },
}

const SECOND: f64 = 1_000.0;
const MINUTE: f64 = 60.0 * SECOND;
const HOUR: f64 = 60.0 * MINUTE;
const DAY: f64 = 24.0 * HOUR;

/// Milliseconds per unit, by every spelling we accept. Month and year are fixed
/// lengths (30 and 365 days), as a sleep needs one exact number.
fn unit_millis(unit: &str) -> Option<f64> {
    let unit = unit.to_ascii_lowercase();
    let singular = unit.strip_suffix('s').filter(|u| u.len() > 1).unwrap_or(&unit);
    Some(match singular {
        "ms" | "millisecond" | "milli" => 1.0,
        "s" | "sec" | "second" => SECOND,
        "m" | "min" | "minute" => MINUTE,
        "h" | "hr" | "hour" => HOUR,
        "d" | "day" => DAY,
        "w" | "week" => 7.0 * DAY,
        "month" => 30.0 * DAY,
        "y" | "year" => 365.0 * DAY,
        _ => return None,
    })
}

/// Parses "5 seconds", "1 hour", "7 days", "1.5 hours" (Cloudflare's `<number> <unit>`),
/// the short forms humantime reads ("30s", "2min", "1h 30m", "250ms"), or "1500"
/// (milliseconds). Anything else is [`DurationError::Malformed`].
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let malformed = || DurationError::Malformed { input: input.to_string() };
    let text = input.trim();
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    // Cloudflare's "<number> <unit>", decimals allowed; month and year are fixed lengths.
    let number_len = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = (&text[..number_len], text[number_len..].trim_start());
    if let (Ok(number), Some(unit_ms)) = (number.parse::<f64>(), unit_millis(unit)) {
        let ms = (number * unit_ms).round();
        return if ms.is_finite() && ms <= u64::MAX as f64 { Ok(Duration::from_millis(ms as u64)) } else { Err(malformed()) };
    }
    humantime::parse_duration(text).map_err(|_| malformed())
}

/// Something that names a duration: a Cloudflare-style string, a `Duration`,
/// or a number of milliseconds (as in the TypeScript API).
pub trait IntoDuration {
    /// The duration, or why the text does not read as one.
    fn into_duration(self) -> Result<Duration, DurationError>;
}

impl IntoDuration for Duration {
    fn into_duration(self) -> Result<Duration, DurationError> {
        Ok(self)
    }
}
impl IntoDuration for &str {
    fn into_duration(self) -> Result<Duration, DurationError> {
        parse(self)
    }
}
impl IntoDuration for &String {
    fn into_duration(self) -> Result<Duration, DurationError> {
        parse(self)
    }
}
impl IntoDuration for String {
    fn into_duration(self) -> Result<Duration, DurationError> {
        parse(&self)
    }
}
impl IntoDuration for u64 {
    fn into_duration(self) -> Result<Duration, DurationError> {
        Ok(Duration::from_millis(self))
    }
}

/// A duration the engine can sleep or wait for: at most 365 days.
pub fn within_sleep_limit(d: Duration) -> Result<Duration, DurationError> {
    if d > MAX_SLEEP {
        return Err(DurationError::TooLong { input: humantime::format_duration(d).to_string() });
    }
    Ok(d)
}

/// A point in time: a `SystemTime`, or a Unix time in milliseconds as in the TypeScript API.
pub trait IntoEpochMillis {
    /// Milliseconds since the Unix epoch; a `SystemTime` before the epoch is 0.
    fn into_epoch_millis(self) -> u64;
}

impl IntoEpochMillis for std::time::SystemTime {
    fn into_epoch_millis(self) -> u64 {
        self.duration_since(std::time::UNIX_EPOCH).map(as_millis).unwrap_or(0)
    }
}

impl IntoEpochMillis for u64 {
    fn into_epoch_millis(self) -> u64 {
        self
    }
}

/// Whole milliseconds, the unit the engine accepts for every duration.
pub fn as_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A duration given in params or a request: a Cloudflare-style string or a number of
/// milliseconds, checked when it is read (at most 365 days), so bad input is refused
/// with the field's name before any instance is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationParam(pub Duration);

impl<'de> serde::Deserialize<'de> for DurationParam {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Millis(u64),
            Text(String),
        }
        let parsed = match Raw::deserialize(deserializer)? {
            Raw::Millis(ms) => Ok(Duration::from_millis(ms)),
            Raw::Text(text) => parse(&text),
        };
        parsed.and_then(within_sleep_limit).map(DurationParam).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for DurationParam {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(as_millis(self.0))
    }
}

impl IntoDuration for DurationParam {
    fn into_duration(self) -> Result<Duration, DurationError> {
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudflare_spellings() {
        assert_eq!(parse("5 seconds"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("1 second"), Ok(Duration::from_secs(1)));
        assert_eq!(parse("1 hour"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("7 days"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse("2 weeks"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse("1 month"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse("1 year"), Ok(Duration::from_secs(365 * 86_400)));
        assert_eq!(parse("10 minutes"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("48 hours"), Ok(Duration::from_secs(48 * 3600)));
    }

    #[test]
    fn short_forms_and_milliseconds() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1500"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("1.5 seconds"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse(" 2 Minutes "), Ok(Duration::from_secs(120)));
    }

    #[test]
    fn malformed_is_an_error_naming_the_input() {
        for bad in ["", "soon", "5", "5 fortnights", "seconds", "5 seconds ago", "-5 seconds", "1..5s", "5 s s"] {
            if bad == "5" {
                continue; // plain milliseconds
            }
            let err = parse(bad).unwrap_err();
            assert!(matches!(err, DurationError::Malformed { .. }), "{bad:?} gave {err:?}");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn into_duration_accepts_every_form() {
        assert_eq!("5 seconds".into_duration(), Ok(Duration::from_secs(5)));
        assert_eq!(String::from("1 hour").into_duration(), Ok(Duration::from_secs(3600)));
        assert_eq!(Duration::from_millis(7).into_duration(), Ok(Duration::from_millis(7)));
        assert_eq!(2_000_u64.into_duration(), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn sleep_limit() {
        assert!(within_sleep_limit(MAX_SLEEP).is_ok());
        let err = within_sleep_limit(MAX_SLEEP + Duration::from_secs(86_400)).unwrap_err();
        assert!(matches!(err, DurationError::TooLong { .. }));
        assert!(err.to_string().contains("365 days"), "{err}");
        let at = std::time::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(at.into_epoch_millis(), 1_700_000_000_123);
        assert_eq!(5_u64.into_epoch_millis(), 5);
        assert_eq!(as_millis(Duration::from_secs(2)), 2000);
    }

    #[test]
    fn duration_params_from_strings_and_numbers() {
        let d: DurationParam = serde_json::from_str("\"2 seconds\"").unwrap();
        assert_eq!(d.0, Duration::from_secs(2));
        let d: DurationParam = serde_json::from_str("1500").unwrap();
        assert_eq!(d.0, Duration::from_millis(1500));
        let err = serde_json::from_str::<DurationParam>("\"whenever\"").unwrap_err();
        assert!(err.to_string().contains("whenever"), "{err}");
        assert!(serde_json::from_str::<DurationParam>("\"400 days\"").is_err());
        assert_eq!(serde_json::to_string(&DurationParam(Duration::from_secs(1))).unwrap(), "1000");
    }
}

/// Property tests (host only: proptest's randomness does not build for wasm32).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any text is a duration or a clear error, never a panic; an accepted one is what
        /// its whole-millisecond form says.
        #[test]
        fn any_text_is_a_duration_or_an_error(text in ".{0,40}") {
            if let Ok(d) = parse(&text) {
                prop_assert_eq!(Duration::from_millis(as_millis(d)), Duration::from_millis(d.as_millis() as u64));
            }
        }

        #[test]
        fn numbers_with_units_parse_to_their_value(n in 0u64..100_000, unit in prop::sample::select(vec![
            ("second", 1_000u64), ("seconds", 1_000), ("minute", 60_000), ("minutes", 60_000), ("hour", 3_600_000),
            ("hours", 3_600_000), ("day", 86_400_000), ("days", 86_400_000), ("s", 1_000), ("ms", 1),
        ])) {
            prop_assert_eq!(parse(&format!("{n} {}", unit.0)), Ok(Duration::from_millis(n * unit.1)));
            prop_assert_eq!(parse(&n.to_string()), Ok(Duration::from_millis(n)));
        }

        #[test]
        fn the_sleep_limit_holds_for_any_length(ms in any::<u64>()) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(within_sleep_limit(d).is_ok(), d <= MAX_SLEEP);
        }
    }
}
