//! The instance listing's status filter (`GET /workflows/{name}/instances?status=`) and
//! the counts by status of `GET /workflows/{name}`. The index in D1 holds no statuses
//! (the engine keeps them), so both read a bounded number of index rows and ask the
//! engine for each one's state: a filtered page reads at most [`SCAN`] rows and may hold
//! fewer than `limit` instances while its `cursor` says there are more; the counts cover
//! the newest [`COUNTED`] instances, with the exact total beside them.

use serde_json::{Map, Value};
use worker_workflows::core::status::InstanceState;

/// The most index rows one filtered page reads.
pub const SCAN: u32 = 100;
/// How many of the newest instances the counts by status cover.
pub const COUNTED: u32 = 100;

/// Every state a filter may name.
pub const STATES: [InstanceState; 9] = [
    InstanceState::Queued,
    InstanceState::Running,
    InstanceState::Paused,
    InstanceState::Errored,
    InstanceState::Terminated,
    InstanceState::Complete,
    InstanceState::Waiting,
    InstanceState::WaitingForPause,
    InstanceState::RollingBack,
];

/// Reads `?status=`: one state or several, comma-separated (`running,waiting`); absent
/// or empty, no filter. An unknown state is an error naming the ones there are.
pub fn parse_status_filter(value: Option<&str>) -> Result<Option<Vec<InstanceState>>, String> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else { return Ok(None) };
    value
        .split(',')
        .map(|name| {
            let name = name.trim();
            STATES.into_iter().find(|s| s.as_str() == name).ok_or_else(|| {
                let known: Vec<&str> = STATES.iter().map(|s| s.as_str()).collect();
                format!("status {} is not one of {}", worker_workflows::core::validate::excerpt(name), known.join(", "))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Of rows read in order (their `states`), the positions of those in `wanted`, at most
/// `limit`, and the position of the row the page ended on when it filled up before the
/// last row read (`None`: every row was looked at).
pub fn take_matching(states: &[InstanceState], wanted: &[InstanceState], limit: usize) -> (Vec<usize>, Option<usize>) {
    let mut taken = Vec::new();
    for (i, state) in states.iter().enumerate() {
        if wanted.contains(state) {
            taken.push(i);
            if taken.len() == limit {
                return (taken, (i + 1 < states.len()).then_some(i));
            }
        }
    }
    (taken, None)
}

/// How many of `states` are in each state, by the engine's name (states with none left out).
pub fn counts(states: &[InstanceState]) -> Map<String, Value> {
    let mut counts = Map::new();
    for state in states {
        let n = counts.get(state.as_str()).and_then(Value::as_u64).unwrap_or(0);
        counts.insert(state.as_str().to_string(), Value::from(n + 1));
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceState::*;

    #[test]
    fn status_filters() {
        assert_eq!(parse_status_filter(None), Ok(None));
        assert_eq!(parse_status_filter(Some(" ")), Ok(None));
        assert_eq!(parse_status_filter(Some("running")), Ok(Some(vec![Running])));
        assert_eq!(parse_status_filter(Some("waitingForPause, complete")), Ok(Some(vec![WaitingForPause, Complete])));
        let e = parse_status_filter(Some("running,done")).unwrap_err();
        assert!(e.contains("\"done\"") && e.contains("queued, running"), "{e}");
        for state in STATES {
            assert_eq!(parse_status_filter(Some(state.as_str())), Ok(Some(vec![state])));
        }
    }

    #[test]
    fn a_filtered_page_stops_where_it_filled_up() {
        let states = [Running, Complete, Running, Errored, Running];
        assert_eq!(take_matching(&states, &[Running], 10), (vec![0, 2, 4], None));
        assert_eq!(take_matching(&states, &[Running], 2), (vec![0, 2], Some(2)));
        // Filled up on the last row read: nothing left in this read, the page's own cursor goes on.
        assert_eq!(take_matching(&states, &[Running], 3), (vec![0, 2, 4], None));
        assert_eq!(take_matching(&states, &[Paused], 3), (vec![], None));
        assert_eq!(take_matching(&states, &[Complete, Errored], 5), (vec![1, 3], None));
    }

    #[test]
    fn counts_by_state() {
        let counts = counts(&[Running, Complete, Running, Unknown]);
        assert_eq!(Value::Object(counts), serde_json::json!({"running": 2, "complete": 1, "unknown": 1}));
    }
}
