//! `GET …/instances/{id}/history` serves two media types: a JSON list of steps, or a
//! Server-Sent Events stream of the instance's events; and with `?format=replay`, the
//! history a replay needs (JSON: `core::replay_history`). This is the pure part: choosing
//! between them from the query and `Accept`, reading `Last-Event-ID`, and framing events.

/// What a history request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryFormat {
    /// A JSON list of steps (`application/json`).
    Json,
    /// A Server-Sent Events stream of the instance's events.
    EventStream,
    /// The history a replay needs, with step outputs (`?format=replay`, `application/json`).
    Replay,
}

/// The `format` query value that asks for [`HistoryFormat::Replay`].
pub const REPLAY_FORMAT: &str = "replay";

/// The media type of a Server-Sent Events stream.
pub const EVENT_STREAM: &str = "text/event-stream";

/// Why a history request was refused: a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryRequestError {
    /// The `Accept` header allows neither format (the header given).
    #[error("this route serves application/json or text/event-stream, and Accept allows neither: {}", worker_workflows::core::validate::excerpt(.0))]
    Unacceptable(String),
    /// The `Last-Event-ID` header is not a whole number (the header given).
    #[error("Last-Event-ID must be an event id this API sent (a whole number), not {}", worker_workflows::core::validate::excerpt(.0))]
    LastEventId(String),
    /// The `format` query value is not one this route serves (the value given).
    #[error("format must be \"replay\" (the history a replay needs) or absent, not {}", worker_workflows::core::validate::excerpt(.0))]
    UnknownFormat(String),
}

/// Picks the format from the query's `format` and the `Accept` header: `format=replay`
/// is [`HistoryFormat::Replay`], JSON, so `Accept` must allow `application/json`; no
/// `format` is [`negotiate`]'s choice. Another `format` is an error.
pub fn choose(format: Option<&str>, accept: Option<&str>) -> Result<HistoryFormat, HistoryRequestError> {
    match format {
        None => negotiate(accept),
        Some(REPLAY_FORMAT) => {
            let allows_json = accept.map(str::trim).filter(|a| !a.is_empty()).is_none_or(|accept| {
                media_ranges(accept).any(|(media, q)| q > 0.0 && matches!(media.as_str(), "application/json" | "application/*" | "*/*"))
            });
            match (allows_json, accept) {
                (true, _) => Ok(HistoryFormat::Replay),
                (false, accept) => Err(HistoryRequestError::Unacceptable(accept.unwrap_or_default().chars().take(200).collect())),
            }
        }
        Some(other) => Err(HistoryRequestError::UnknownFormat(other.chars().take(64).collect())),
    }
}

/// The media ranges of an `Accept` header, lower-cased, with their quality (0 for one
/// that does not parse). Bounded: only the first 64 ranges are read.
fn media_ranges(accept: &str) -> impl Iterator<Item = (String, f32)> + '_ {
    accept.split(',').take(64).map(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
            .next()
            .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q)))
            .unwrap_or(0.0);
        (media, q)
    })
}

/// Picks the format from an `Accept` header: the acceptable one with the highest
/// quality, JSON on a tie and when there is no header. `*/*` and `application/*` allow
/// JSON, `text/*` the event stream; `q=0` refuses a type. None acceptable is an error.
pub fn negotiate(accept: Option<&str>) -> Result<HistoryFormat, HistoryRequestError> {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(HistoryFormat::Json);
    };
    let mut best: Option<(f32, HistoryFormat)> = None;
    let mut consider = |q: f32, format: HistoryFormat| {
        if q > 0.0 && best.is_none_or(|(bq, bf)| q > bq || (q == bq && format == HistoryFormat::Json && bf != HistoryFormat::Json)) {
            best = Some((q, format));
        }
    };
    // Bounded: a header is at most a few KiB, and only the first 64 ranges are read.
    for (media, q) in media_ranges(accept) {
        match media.as_str() {
            "application/json" | "application/*" => consider(q, HistoryFormat::Json),
            EVENT_STREAM | "text/*" => consider(q, HistoryFormat::EventStream),
            "*/*" => consider(q, HistoryFormat::Json),
            _ => {}
        }
    }
    best.map(|(_, format)| format).ok_or_else(|| HistoryRequestError::Unacceptable(accept.chars().take(200).collect()))
}

/// Reads `Last-Event-ID`: absent or blank is none; otherwise the id of the last event
/// the client received, passed to the engine as the (exclusive) cursor.
pub fn last_event_id(header: Option<&str>) -> Result<Option<u64>, HistoryRequestError> {
    match header.map(str::trim).filter(|h| !h.is_empty()) {
        None => Ok(None),
        Some(h) => h.parse::<u64>().map(Some).map_err(|_| HistoryRequestError::LastEventId(h.chars().take(64).collect())),
    }
}

/// One SSE event: `id:` (the engine's event id), `event:` (its type) and one `data:` line
/// of JSON (serde_json's compact form has no line breaks).
pub fn frame(id: u64, event: &str, data: &serde_json::Value) -> String {
    let event: String = event.chars().filter(|c| !c.is_control()).collect();
    format!("id: {id}\nevent: {event}\ndata: {data}\n\n")
}

/// A comment line, which clients ignore: keeps an idle connection open through proxies.
pub const KEEP_ALIVE: &str = ": keep-alive\n\n";

/// Sent when reading the engine fails mid-stream; the stream then closes.
pub fn error_frame(message: &str) -> String {
    frame_without_id("error", &serde_json::json!({"error": {"code": "internal", "message": message}}))
}

fn frame_without_id(event: &str, data: &serde_json::Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use HistoryFormat::*;

    #[test]
    fn accept_picks_json_or_the_event_stream() {
        assert_eq!(negotiate(None), Ok(Json));
        assert_eq!(negotiate(Some("")), Ok(Json));
        assert_eq!(negotiate(Some("application/json")), Ok(Json));
        assert_eq!(negotiate(Some("text/event-stream")), Ok(EventStream));
        assert_eq!(negotiate(Some("Text/Event-Stream; charset=utf-8")), Ok(EventStream));
        assert_eq!(negotiate(Some("*/*")), Ok(Json));
        assert_eq!(negotiate(Some("text/*")), Ok(EventStream));
        assert_eq!(negotiate(Some("text/event-stream, application/json")), Ok(Json), "a tie goes to JSON");
        assert_eq!(negotiate(Some("application/json;q=0.5, text/event-stream")), Ok(EventStream));
        assert_eq!(negotiate(Some("text/html, text/event-stream;q=0.1")), Ok(EventStream));
        assert_eq!(negotiate(Some("*/*;q=0.1, text/event-stream")), Ok(EventStream));
    }

    #[test]
    fn an_accept_we_cannot_serve_is_an_error() {
        for bad in [
            "text/html",
            "application/xml, image/png",
            "application/json;q=0",
            "text/event-stream;q=0, text/html",
            "text/event-stream;q=zero",
        ] {
            assert!(matches!(negotiate(Some(bad)), Err(HistoryRequestError::Unacceptable(_))), "{bad}");
        }
        let many = "text/html,".repeat(10_000) + "application/json";
        assert!(negotiate(Some(&many)).is_err(), "only the first ranges are read");
    }

    #[test]
    fn format_replay_is_json_with_outputs_and_other_formats_are_refused() {
        assert_eq!(choose(None, None), Ok(Json));
        assert_eq!(choose(None, Some("text/event-stream")), Ok(EventStream));
        for accept in [None, Some(""), Some("application/json"), Some("*/*"), Some("text/event-stream, application/json;q=0.1")] {
            assert_eq!(choose(Some("replay"), accept), Ok(Replay), "{accept:?}");
        }
        for accept in ["text/event-stream", "application/json;q=0", "text/html"] {
            assert!(matches!(choose(Some("replay"), Some(accept)), Err(HistoryRequestError::Unacceptable(_))), "{accept}");
        }
        for bad in ["", "Replay", "json", "events", &"r".repeat(500)] {
            let e = choose(Some(bad), None).unwrap_err();
            assert!(matches!(&e, HistoryRequestError::UnknownFormat(_)), "{bad}");
            assert!(e.to_string().len() < 200, "{e}");
        }
    }

    #[test]
    fn last_event_ids() {
        assert_eq!(last_event_id(None), Ok(None));
        assert_eq!(last_event_id(Some(" ")), Ok(None));
        assert_eq!(last_event_id(Some("42")), Ok(Some(42)));
        for bad in ["-1", "4.2", "abc", "99999999999999999999999"] {
            assert!(matches!(last_event_id(Some(bad)), Err(HistoryRequestError::LastEventId(_))), "{bad}");
        }
    }

    #[test]
    fn frames() {
        assert_eq!(frame(7, "step_started", &json!({"a": "x\ny"})), "id: 7\nevent: step_started\ndata: {\"a\":\"x\\ny\"}\n\n");
        assert_eq!(frame(1, "bad\ntype", &json!(1)), "id: 1\nevent: badtype\ndata: 1\n\n");
        assert!(error_frame("boom").starts_with("event: error\ndata: {"));
        assert!(KEEP_ALIVE.starts_with(':'));
    }
}
