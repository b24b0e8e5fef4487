//! What daily-cleanup deletes: instance-index rows and dead letters older than the
//! retention (`RETENTION_DAYS`, 30 by default), in bounded batches so each batch is
//! one short step.

/// Days kept when `RETENTION_DAYS` is unset.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// Rows per delete: small enough for one quick D1 statement.
pub const BATCH_ROWS: u32 = 500;
/// At most this many batches per table and run (the rest waits for the next day).
pub const MAX_BATCHES: u32 = 200;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Deletes up to `?2` instance-index rows created before `?1` (Unix milliseconds).
pub const DELETE_OLD_INSTANCES: &str = "DELETE FROM instances WHERE rowid IN (SELECT rowid FROM instances WHERE created_at < ?1 LIMIT ?2)";
/// Deletes up to `?2` dead letters recorded before `?1` (Unix milliseconds).
pub const DELETE_OLD_DEAD_LETTERS: &str =
    "DELETE FROM dead_letters WHERE rowid IN (SELECT rowid FROM dead_letters WHERE recorded_at < ?1 LIMIT ?2)";

/// Reads `RETENTION_DAYS`: a whole number of days, at least 1.
pub fn parse_retention_days(value: Option<&str>) -> Result<u32, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(DEFAULT_RETENTION_DAYS),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|d| *d >= 1)
            .ok_or_else(|| format!("RETENTION_DAYS must be a whole number of days, at least 1, not {v:?}")),
    }
}

/// Rows created before this Unix millisecond are past retention at `now_ms`.
pub fn cutoff_ms(now_ms: i64, retention_days: u32) -> i64 {
    now_ms - i64::from(retention_days) * DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention() {
        assert_eq!(parse_retention_days(None), Ok(30));
        assert_eq!(parse_retention_days(Some("7")), Ok(7));
        assert!(parse_retention_days(Some("0")).is_err());
        assert!(parse_retention_days(Some("a week")).is_err());
        assert_eq!(cutoff_ms(31 * DAY_MS, 30), DAY_MS);
    }
}
