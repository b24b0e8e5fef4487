//! Normalisation of user records: the CPU-heavy transform step of the data
//! pipeline workflow.
//!
//! Upstream systems send a JSON array of `{id, name, email, createdAt}`
//! objects and disagree on formats (string or integer ids, RFC 3339, RFC 2822
//! or epoch-millisecond dates, stray whitespace, mixed-case emails). This
//! module turns them into one uniform [`Record`] shape. A record that cannot
//! be normalised is dropped and counted rather than failing the batch: one bad
//! row must not sink a 50,000-row step.
//!
//! [`transform`] streams the array straight into normalised records, borrowing
//! strings from the input where it can, so a large batch is parsed once and no
//! intermediate `serde_json::Value` tree is built. [`normalize`] applies the
//! same rules to an already-parsed `Value`; both go through [`Fields`] so the
//! rules live in one place.

use std::borrow::Cow;
use std::fmt;
use worker_workflows::core::step_error::StepError;

use chrono::format::{self, Fixed, Item as FormatItem, Numeric, Pad, Parsed};
use chrono::{DateTime, Datelike, NaiveDateTime, SecondsFormat, Utc};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A normalised user record.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// Trimmed id; integer ids are rendered in decimal.
    pub id: String,
    /// Trimmed name; empty when the input had none.
    pub name: String,
    /// Trimmed, lower-cased, validated email.
    pub email: String,
    /// ISO-8601 UTC with millisecond precision, e.g. `2024-03-01T10:00:00.000Z`.
    pub created_at: String,
}

/// Why a record was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The array element is not a JSON object.
    NotAnObject,
    /// The id is missing, empty, or neither a string nor an integer.
    MissingId,
    /// The email is missing, not a string, or fails [`is_valid_email`].
    InvalidEmail,
    /// `createdAt` is missing or in no recognised format.
    UnreadableDate,
}

/// The outcome of [`transform`]: the records that survived, and how many did not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transformed {
    pub records: Vec<Record>,
    pub dropped: usize,
}

/// RFC 5321 caps a forward path at 256 octets including the angle brackets.
const MAX_EMAIL_LEN: usize = 254;

/// Normalise one already-parsed record.
pub fn normalize(value: &Value) -> Result<Record, DropReason> {
    let Value::Object(map) = value else {
        return Err(DropReason::NotAnObject);
    };
    let field = |key: &str| map.get(key).map(Scalar::from_value);
    Fields { id: field("id"), name: field("name"), email: field("email"), created_at: field("createdAt") }.normalize()
}

/// Parse `input` as a JSON array of records and normalise every element.
///
/// Input that is not a JSON array (or is not valid JSON) is an error; elements
/// that cannot be normalised are counted in [`Transformed::dropped`].
pub fn transform(input: &[u8]) -> Result<Transformed, serde_json::Error> {
    // UTF-8 is checked once for the whole input, so the parser need not check each string.
    let text = std::str::from_utf8(input).map_err(|e| {
        <serde_json::Error as serde::de::Error>::custom(format_args!("the input is not UTF-8 (at byte {})", e.valid_up_to()))
    })?;
    let mut de = serde_json::Deserializer::from_str(text);
    // `deserialize_seq` rejects anything but an array; the visitor normalises
    // each element as it is read, so no element tree is ever materialised.
    let out = (&mut de).deserialize_seq(BatchVisitor)?;
    de.end()?;
    Ok(out)
}

/// A JSON error in records, said without what was read: serde's own message can quote a
/// value (`invalid type: string "ada@example.com"`), and records are personal data; the
/// message goes to the instance's status, its history and the log. The kind of problem and
/// where it is are enough to find it. An error made outside the parser (no position: the
/// UTF-8 check above) is this module's own text and is kept.
pub fn json_error_without_values(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    if e.line() == 0 {
        return e.to_string();
    }
    let problem = match e.classify() {
        Category::Io => "unreadable input",
        Category::Syntax => "not valid JSON",
        Category::Data => "JSON of the wrong shape",
        Category::Eof => "JSON cut short",
    };
    format!("{problem} at line {} column {}", e.line(), e.column())
}

/// A failed call to a service that was sent personal data (an email address), without the
/// start of the answer `ServiceCall` quotes (`notifications answered 422: {"error":"no
/// mailbox for ada@…"}`): a service may echo what it was sent, and the message goes to the
/// instance's status, its history and the log. The status stays (with the wait a service
/// asked for), and so does the kind of error, so retries are as before.
pub fn without_answer_excerpt(error: StepError) -> StepError {
    let cut = |message: String| {
        let end = message.find(" answered ").and_then(|at| message[at..].find(": ").map(|colon| at + colon));
        match end {
            Some(end) => format!("{}: [the answer is not quoted: it may repeat personal data]", &message[..end]),
            None => message,
        }
    };
    match error {
        StepError::Failed(message) => StepError::Failed(cut(message)),
        StepError::NonRetryable(message) => StepError::NonRetryable(cut(message)),
        other => other,
    }
}

/// The simple, sensible email check: at most 254 bytes, no whitespace or
/// control characters, exactly one `@` with a non-empty local part, and a
/// domain containing a dot with no empty labels.
pub fn is_valid_email(email: &str) -> bool {
    if email.is_empty() || email.len() > MAX_EMAIL_LEN {
        return false;
    }
    if email.is_ascii() {
        return is_valid_ascii_email(email.as_bytes());
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty() && !domain.contains('@') && domain.contains('.') && domain.split('.').all(|label| !label.is_empty())
}

/// [`is_valid_email`]'s rules in one pass over the bytes, for ASCII (the common case:
/// it is the transform's hottest check).
fn is_valid_ascii_email(email: &[u8]) -> bool {
    let mut at = None;
    // The domain's last byte read, and whether it has a dot.
    let (mut previous, mut dotted) = (b'@', false);
    for (i, &b) in email.iter().enumerate() {
        if b.is_ascii_whitespace() || b.is_ascii_control() {
            return false;
        }
        match (at, b) {
            (None, b'@') if i == 0 => return false,
            (None, b'@') => at = Some(i),
            (None, _) => continue,
            (Some(_), b'@') => return false,
            // An empty label: a dot right after the `@` or after another dot.
            (Some(_), b'.') if previous == b'@' || previous == b'.' => return false,
            (Some(_), b'.') => dotted = true,
            (Some(_), _) => {}
        }
        previous = b;
    }
    at.is_some() && dotted && previous != b'.'
}

/// A field value reduced to what the rules care about. Strings borrow from the
/// input when they contain no escapes.
#[derive(Debug)]
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// null, bool, array or object: never a usable id, email or date.
    Other,
}

impl<'a> Scalar<'a> {
    fn from_value(value: &'a Value) -> Self {
        match value {
            Value::String(s) => Scalar::Str(Cow::Borrowed(s)),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Scalar::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Scalar::UInt(u)
                } else {
                    n.as_f64().map_or(Scalar::Other, Scalar::Float)
                }
            }
            _ => Scalar::Other,
        }
    }
}

/// The four fields of a record, however they were read.
#[derive(Debug, Default)]
struct Fields<'a> {
    id: Option<Scalar<'a>>,
    name: Option<Scalar<'a>>,
    email: Option<Scalar<'a>>,
    created_at: Option<Scalar<'a>>,
}

impl Fields<'_> {
    fn normalize(self) -> Result<Record, DropReason> {
        let id = match self.id {
            Some(Scalar::Str(s)) => match s.trim() {
                "" => return Err(DropReason::MissingId),
                t => t.to_owned(),
            },
            Some(Scalar::Int(i)) => i.to_string(),
            Some(Scalar::UInt(u)) => u.to_string(),
            _ => return Err(DropReason::MissingId),
        };
        let email = match self.email.as_ref().map(|email| match email {
            Scalar::Str(s) => s.trim(),
            _ => "",
        }) {
            Some(s) if is_valid_email(s) => s.to_lowercase(),
            _ => return Err(DropReason::InvalidEmail),
        };
        let created_at = iso_millis(&self.created_at.as_ref().and_then(parse_date).ok_or(DropReason::UnreadableDate)?);
        // A name is optional: anything but a string counts as absent.
        let name = match self.name {
            Some(Scalar::Str(s)) => s.trim().to_owned(),
            _ => String::new(),
        };
        Ok(Record { id, name, email, created_at })
    }
}

fn parse_date(value: &Scalar<'_>) -> Option<DateTime<Utc>> {
    let dt = match value {
        Scalar::Str(s) => parse_date_str(s.trim())?,
        Scalar::Int(ms) => DateTime::from_timestamp_millis(*ms)?,
        Scalar::UInt(ms) => DateTime::from_timestamp_millis(i64::try_from(*ms).ok()?)?,
        // Epoch ms written as `1.7e12` arrives as a float; a fractional
        // millisecond is not an epoch-ms value, so it is not guessed at.
        Scalar::Float(ms) if ms.is_finite() && ms.fract() == 0.0 && ms.abs() < 9.0e15 => DateTime::from_timestamp_millis(*ms as i64)?,
        _ => return None,
    };
    // Keep the output in the fixed-width `YYYY-MM-DDTHH:MM:SS.sssZ` form;
    // years outside 0..=9999 would need a sign and are certainly bad data.
    (0..=9999).contains(&dt.year()).then_some(dt)
}

fn parse_date_str(s: &str) -> Option<DateTime<Utc>> {
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return DateTime::from_timestamp_millis(s.parse().ok()?);
    }
    // Dispatch on shape so each string is parsed by at most a couple of
    // parsers: ISO-8601 starts `YYYY-`, RFC 2822 never does. The forms JavaScript's
    // `toISOString` and `toUTCString` write are read first, without chrono's general parsers.
    if s.as_bytes().get(4) != Some(&b'-') {
        return match fast::rfc2822(s.as_bytes()) {
            Some(dt) => Some(dt),
            None => DateTime::parse_from_rfc2822(s).ok().map(|dt| dt.to_utc()),
        };
    }
    if let Some(dt) = fast::iso_utc_millis(s.as_bytes()) {
        return Some(dt);
    }
    if s.len() == 10 {
        return parse_with(s, DATE).ok()?.to_naive_date().ok()?.and_hms_opt(0, 0, 0).map(|dt| dt.and_utc());
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.to_utc());
    }
    // ISO-8601 without an offset: read as UTC, which is also what a Worker's
    // `new Date(...)` does since Workers run in UTC.
    let naive = |items| parse_with(s, items).ok()?.to_naive_datetime_with_offset(0).ok();
    naive(DATE_T_TIME).or_else(|| naive(DATE_SPACE_TIME)).map(|dt: NaiveDateTime| dt.and_utc())
}

// The formats as chrono items, built at compile time rather than parsed from a
// strftime string for every record: `%Y-%m-%d`, `%Y-%m-%dT%H:%M:%S%.f` and
// `%Y-%m-%d %H:%M:%S%.f` (where, as in strftime, the space matches any whitespace).
macro_rules! date_items {
    ($($time:expr)?) => {
        &[
            FormatItem::Numeric(Numeric::Year, Pad::Zero),
            FormatItem::Literal("-"),
            FormatItem::Numeric(Numeric::Month, Pad::Zero),
            FormatItem::Literal("-"),
            FormatItem::Numeric(Numeric::Day, Pad::Zero),
            $(
                $time,
                FormatItem::Numeric(Numeric::Hour, Pad::Zero),
                FormatItem::Literal(":"),
                FormatItem::Numeric(Numeric::Minute, Pad::Zero),
                FormatItem::Literal(":"),
                FormatItem::Numeric(Numeric::Second, Pad::Zero),
                FormatItem::Fixed(Fixed::Nanosecond),
            )?
        ]
    };
}
const DATE: &[FormatItem<'static>] = date_items!();
const DATE_T_TIME: &[FormatItem<'static>] = date_items!(FormatItem::Literal("T"));
const DATE_SPACE_TIME: &[FormatItem<'static>] = date_items!(FormatItem::Space(" "));

fn parse_with(s: &str, items: &[FormatItem<'static>]) -> Result<Parsed, format::ParseError> {
    let mut parsed = Parsed::new();
    format::parse(&mut parsed, s, items.iter())?;
    Ok(parsed)
}

/// `YYYY-MM-DDTHH:MM:SS.sssZ`, what chrono's `to_rfc3339_opts(SecondsFormat::Millis, true)`
/// writes for years 0 to 9999, without its formatting machinery.
fn iso_millis(dt: &DateTime<Utc>) -> String {
    use chrono::Timelike;
    let nanos = dt.nanosecond();
    if nanos >= 1_000_000_000 {
        // A leap second: chrono writes it as second 60.
        return dt.to_rfc3339_opts(SecondsFormat::Millis, true);
    }
    let mut out = [0_u8; 24];
    let mut put = |at: usize, value: u32, digits: usize| {
        let mut value = value;
        for i in (at..at + digits).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, dt.year().clamp(0, 9999) as u32, 4);
    put(5, dt.month(), 2);
    put(8, dt.day(), 2);
    put(11, dt.hour(), 2);
    put(14, dt.minute(), 2);
    put(17, dt.second(), 2);
    put(20, nanos / 1_000_000, 3);
    for (at, separator) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (23, b'Z')] {
        out[at] = separator;
    }
    out.iter().map(|&b| b as char).collect()
}

/// Readers for the two date forms JavaScript writes, exact to the byte; anything else is
/// `None` and goes to chrono's general parsers, which accept the same values (a property
/// test checks both ways).
mod fast {
    use chrono::{DateTime, Datelike, NaiveDate, Utc};

    fn number(bytes: &[u8]) -> Option<u32> {
        bytes.iter().try_fold(0_u32, |n, &b| b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0')))
    }

    fn time(bytes: &[u8], date: NaiveDate, millis: u32) -> Option<DateTime<Utc>> {
        if bytes[2] != b':' || bytes[5] != b':' {
            return None;
        }
        let (hour, minute, second) = (number(&bytes[0..2])?, number(&bytes[3..5])?, number(&bytes[6..8])?);
        // Second 60 (a leap second) is left to chrono.
        Some(date.and_hms_milli_opt(hour, minute, second, millis)?.and_utc())
    }

    /// `YYYY-MM-DDTHH:MM:SS.sssZ` (`Date.prototype.toISOString`, years 0 to 9999).
    pub(super) fn iso_utc_millis(s: &[u8]) -> Option<DateTime<Utc>> {
        if s.len() != 24 || s[4] != b'-' || s[7] != b'-' || s[10] != b'T' || s[19] != b'.' || s[23] != b'Z' {
            return None;
        }
        let date = NaiveDate::from_ymd_opt(number(&s[0..4])? as i32, number(&s[5..7])?, number(&s[8..10])?)?;
        time(&s[11..19], date, number(&s[20..23])?)
    }

    const WEEKDAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8]; 12] = [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];

    /// `Ddd, DD Mon YYYY HH:MM:SS +HHMM` (or `-HHMM`), the weekday matching the date:
    /// `Date.prototype.toUTCString` with `GMT` written as an offset.
    pub(super) fn rfc2822(s: &[u8]) -> Option<DateTime<Utc>> {
        if s.len() != 31 || &s[3..5] != b", " || s[7] != b' ' || s[11] != b' ' || s[16] != b' ' || s[25] != b' ' {
            return None;
        }
        let weekday = WEEKDAYS.iter().position(|&w| w == &s[0..3])?;
        let month = MONTHS.iter().position(|&m| m == &s[8..11])? as u32 + 1;
        let date = NaiveDate::from_ymd_opt(number(&s[12..16])? as i32, month, number(&s[5..7])?)?;
        if date.weekday().num_days_from_monday() as usize != weekday {
            return None;
        }
        let sign = match s[26] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let (offset_hours, offset_minutes) = (number(&s[27..29])?, number(&s[29..31])?);
        if offset_hours > 23 || offset_minutes > 59 {
            return None;
        }
        let local = time(&s[17..25], date, 0)?;
        let offset = chrono::TimeDelta::minutes(i64::from(offset_hours * 60 + offset_minutes));
        Some(if sign > 0 { local - offset } else { local + offset })
    }
}

// ---- Streaming deserialisation for `transform` ----

struct BatchVisitor;

impl<'de> Visitor<'de> for BatchVisitor {
    type Value = Transformed;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Transformed, A::Error> {
        let mut out = Transformed { records: Vec::with_capacity(seq.size_hint().unwrap_or(0)), dropped: 0 };
        while let Some(Item(fields)) = seq.next_element()? {
            match fields.ok_or(DropReason::NotAnObject).and_then(Fields::normalize) {
                Ok(record) => out.records.push(record),
                Err(_) => out.dropped += 1,
            }
        }
        Ok(out)
    }
}

/// One array element: `Some` for an object, `None` for anything else.
struct Item<'a>(Option<Fields<'a>>);

impl<'de> Deserialize<'de> for Item<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item<'de>, A::Error> {
        let mut fields = Fields::default();
        // Later duplicates overwrite earlier ones, as in `serde_json::Map`.
        while let Some(key) = map.next_key::<Key>()? {
            let slot = match key {
                Key::Id => &mut fields.id,
                Key::Name => &mut fields.name,
                Key::Email => &mut fields.email,
                Key::CreatedAt => &mut fields.created_at,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
        }
        Ok(Item(Some(fields)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item<'de>, A::Error> {
        drain_seq(seq)?;
        Ok(Item(None))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Item<'de>, E> {
        Ok(Item(None))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Item<'de>, E> {
        Ok(Item(None))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Item<'de>, E> {
        Ok(Item(None))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Item<'de>, E> {
        Ok(Item(None))
    }
    fn visit_str<E>(self, _: &str) -> Result<Item<'de>, E> {
        Ok(Item(None))
    }
    fn visit_unit<E>(self) -> Result<Item<'de>, E> {
        Ok(Item(None))
    }
    fn visit_none<E>(self) -> Result<Item<'de>, E> {
        Ok(Item(None))
    }
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// The object keys the rules read; everything else is skipped unparsed.
enum Key {
    Id,
    Name,
    Email,
    CreatedAt,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            "id" => Key::Id,
            "name" => Key::Name,
            "email" => Key::Email,
            "createdAt" => Key::CreatedAt,
            _ => Key::Other,
        })
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(s)))
    }
    // Only reached for strings with escapes, which cannot borrow.
    fn visit_str<E>(self, s: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E>(self, s: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(s)))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Scalar<'de>, E> {
        // Match `Scalar::from_value`: integers that fit i64 are `Int`.
        Ok(i64::try_from(u).map_or(Scalar::UInt(u), Scalar::Int))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Float(f))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Other)
    }
    fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Other)
    }
    fn visit_none<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar<'de>, A::Error> {
        drain_seq(seq)?;
        Ok(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fmt::Write as _;

    fn rec(created_at: Value) -> Value {
        json!({"id": "u1", "name": "Ada", "email": "ada@example.com", "createdAt": created_at})
    }

    fn date_of(created_at: Value) -> Result<String, DropReason> {
        normalize(&rec(created_at)).map(|r| r.created_at)
    }

    #[test]
    fn rfc3339_utc() {
        assert_eq!(date_of(json!("2024-03-01T12:00:00Z")).unwrap(), "2024-03-01T12:00:00.000Z");
        assert_eq!(date_of(json!("2024-03-01T12:00:00.5z")).unwrap(), "2024-03-01T12:00:00.500Z");
    }

    #[test]
    fn rfc3339_offsets_convert_to_utc() {
        assert_eq!(date_of(json!("2024-03-01T12:00:00+02:00")).unwrap(), "2024-03-01T10:00:00.000Z");
        assert_eq!(date_of(json!("2024-03-01T01:30:00-05:00")).unwrap(), "2024-03-01T06:30:00.000Z");
        // Crossing midnight backwards.
        assert_eq!(date_of(json!("2024-03-01T01:00:00+03:00")).unwrap(), "2024-02-29T22:00:00.000Z");
        // Sub-millisecond digits are truncated.
        assert_eq!(date_of(json!("2024-03-01T12:00:00.123456+00:00")).unwrap(), "2024-03-01T12:00:00.123Z");
    }

    #[test]
    fn plain_date_and_naive_datetime() {
        assert_eq!(date_of(json!("2024-03-01")).unwrap(), "2024-03-01T00:00:00.000Z");
        assert_eq!(date_of(json!(" 2024-03-01 ")).unwrap(), "2024-03-01T00:00:00.000Z");
        assert_eq!(date_of(json!("2024-03-01T12:00:00")).unwrap(), "2024-03-01T12:00:00.000Z");
        assert_eq!(date_of(json!("2024-03-01T12:00:00.25")).unwrap(), "2024-03-01T12:00:00.250Z");
        assert_eq!(date_of(json!("2024-03-01 12:00:00")).unwrap(), "2024-03-01T12:00:00.000Z");
        assert_eq!(date_of(json!("2024-03-01 12:00:07.5")).unwrap(), "2024-03-01T12:00:07.500Z");
        for bad in ["2024-03-01X12:00:00", "2024-13-01", "2024-02-30", "2024-03-01T25:00:00", "2024-03-01 12:00"] {
            assert_eq!(date_of(json!(bad)), Err(DropReason::UnreadableDate), "{bad}");
        }
    }

    #[test]
    fn rfc2822() {
        assert_eq!(date_of(json!("Fri, 01 Mar 2024 12:00:00 +0000")).unwrap(), "2024-03-01T12:00:00.000Z");
        assert_eq!(date_of(json!("Fri, 01 Mar 2024 12:00:00 +0200")).unwrap(), "2024-03-01T10:00:00.000Z");
        assert_eq!(date_of(json!("1 Mar 2024 12:00:00 GMT")).unwrap(), "2024-03-01T12:00:00.000Z");
    }

    #[test]
    fn epoch_millis_number_and_string() {
        // 2024-03-01T12:00:00.123Z
        let ms = 1_709_294_400_123_i64;
        assert_eq!(date_of(json!(ms)).unwrap(), "2024-03-01T12:00:00.123Z");
        assert_eq!(date_of(json!(ms.to_string())).unwrap(), "2024-03-01T12:00:00.123Z");
        assert_eq!(date_of(json!(1.7092944e12)).unwrap(), "2024-03-01T12:00:00.000Z");
        assert_eq!(date_of(json!(0)).unwrap(), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn trims_and_lowercases() {
        let r = normalize(&json!({
            "id": "  u42 ", "name": "  Ada Lovelace\t", "email": " Ada.Lovelace@Example.COM ",
            "createdAt": "2024-03-01T12:00:00Z", "extra": [1, 2, {"x": null}]
        }))
        .unwrap();
        assert_eq!(
            r,
            Record {
                id: "u42".into(),
                name: "Ada Lovelace".into(),
                email: "ada.lovelace@example.com".into(),
                created_at: "2024-03-01T12:00:00.000Z".into(),
            }
        );
    }

    #[test]
    fn integer_id_and_missing_name() {
        let r = normalize(&json!({"id": 7, "email": "a@b.co", "createdAt": "2024-03-01"})).unwrap();
        assert_eq!(r.id, "7");
        assert_eq!(r.name, "");
        let r = normalize(&json!({"id": -3, "name": null, "email": "a@b.co", "createdAt": "2024-03-01"})).unwrap();
        assert_eq!((r.id.as_str(), r.name.as_str()), ("-3", ""));
    }

    #[test]
    fn serializes_camel_case() {
        let r = normalize(&rec(json!("2024-03-01T12:00:00Z"))).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["createdAt"], "2024-03-01T12:00:00.000Z");
    }

    #[test]
    fn drop_not_an_object() {
        for v in [json!(null), json!(1), json!("x"), json!([1]), json!(true)] {
            assert_eq!(normalize(&v), Err(DropReason::NotAnObject), "{v}");
        }
    }

    #[test]
    fn drop_missing_id() {
        for id in [json!(null), json!(""), json!("   "), json!(1.5), json!(true), json!({"a": 1})] {
            let v = json!({"id": id, "email": "a@b.co", "createdAt": "2024-03-01"});
            assert_eq!(normalize(&v), Err(DropReason::MissingId), "{v}");
        }
        let v = json!({"email": "a@b.co", "createdAt": "2024-03-01"});
        assert_eq!(normalize(&v), Err(DropReason::MissingId));
    }

    #[test]
    fn drop_invalid_email() {
        let long = format!("{}@example.com", "a".repeat(250));
        for email in [
            json!(null),
            json!(5),
            json!(""),
            json!("plain"),
            json!("@example.com"),
            json!("a@@example.com"),
            json!("a@b@example.com"),
            json!("a@localhost"),
            json!("a@example..com"),
            json!("a@.example.com"),
            json!("a@example.com."),
            json!("a b@example.com"),
            json!(long),
        ] {
            let v = json!({"id": "x", "email": email, "createdAt": "2024-03-01"});
            assert_eq!(normalize(&v), Err(DropReason::InvalidEmail), "{v}");
        }
        let v = json!({"id": "x", "createdAt": "2024-03-01"});
        assert_eq!(normalize(&v), Err(DropReason::InvalidEmail));
        assert!(is_valid_email("first.last+tag@sub.example.co.uk"));
    }

    #[test]
    fn drop_unreadable_date() {
        for d in [
            json!(null),
            json!(""),
            json!("yesterday"),
            json!("2024-13-01"),
            json!("2024-02-30T00:00:00Z"),
            json!("2024-03-01T25:00:00Z"),
            json!("Fri, 01 Foo 2024 12:00:00 +0000"),
            json!("99999999999999999999"),
            json!(1.5),
            json!(true),
            json!([2024, 3, 1]),
        ] {
            assert_eq!(date_of(d.clone()), Err(DropReason::UnreadableDate), "{d}");
        }
        let v = json!({"id": "x", "email": "a@b.co"});
        assert_eq!(normalize(&v), Err(DropReason::UnreadableDate));
    }

    #[test]
    fn transform_matches_normalize() {
        let input = json!([
            {"id": "a", "name": " A ", "email": "A@X.IO", "createdAt": "2024-03-01T12:00:00+02:00"},
            {"id": 2, "email": "b@x.io", "createdAt": 1_709_294_400_000_i64},
            {"id": "c", "email": "c@x.io", "createdAt": "1709294400000", "id": "c2"},
            {"id": "esc\u{e9}\"q", "email": "d@x.io", "createdAt": "Fri, 01 Mar 2024 12:00:00 +0000"},
            {"id": "", "email": "e@x.io", "createdAt": "2024-03-01"},
            {"id": "f", "email": "bad", "createdAt": "2024-03-01"},
            {"id": "g", "email": "g@x.io", "createdAt": "never"},
            [1, 2, 3],
            null,
            "string",
            {"id": "h", "email": "h@x.io", "createdAt": "2024-03-01", "nested": {"deep": [{}]}}
        ]);
        let bytes = serde_json::to_vec(&input).unwrap();
        let out = transform(&bytes).unwrap();
        let expected: Vec<Record> = input.as_array().unwrap().iter().filter_map(|v| normalize(v).ok()).collect();
        assert_eq!(out.records, expected);
        assert_eq!(out.records.len(), 5);
        assert_eq!(out.dropped, 6);
        assert_eq!(out.records[2].id, "c2", "later duplicate key wins");
        assert_eq!(out.records[3].id, "esc\u{e9}\"q");
    }

    #[test]
    fn transform_rejects_non_array() {
        for input in [&b"{}"[..], b"null", b"1", b"\"x\"", b"", b"[1,", b"[] []", b"not json"] {
            assert!(transform(input).is_err(), "{}", String::from_utf8_lossy(input));
        }
        assert_eq!(transform(b" [ ] ").unwrap(), Transformed::default());
        let not_utf8 = transform(b"[{\"id\": \"a\xff\"}]").unwrap_err();
        assert!(not_utf8.to_string().contains("not UTF-8 (at byte 10)"), "{not_utf8}");
    }

    #[test]
    fn json_errors_are_described_without_the_values_read() {
        let cases: [(&[u8], &str); 5] = [
            (b"\"ada@example.com\"", "JSON of the wrong shape at line 1 column 17"),
            (b"[{\"email\": \"ada@example.com\"", "JSON cut short at line 1 column 28"),
            (b"[{\"email\": \"ada@example.com\" x", "not valid JSON at line 1 column 30"),
            (b"[] \"ada@example.com\"", "not valid JSON at line 1 column 4"),
            (b"[{\"id\": \"a\xff\"}]", "the input is not UTF-8 (at byte 10)"),
        ];
        for (input, described) in cases {
            let e = transform(input).unwrap_err();
            assert_eq!(json_error_without_values(&e), described, "{}", String::from_utf8_lossy(input));
            assert!(!json_error_without_values(&e).contains("ada"));
        }
    }

    #[test]
    fn a_service_answer_that_may_echo_personal_data_is_not_quoted() {
        let echoed = StepError::Failed(r#"notifications answered 422: {"error":"no mailbox for ada@example.com"}"#.into());
        let cut = without_answer_excerpt(echoed);
        assert_eq!(cut, StepError::Failed("notifications answered 422: [the answer is not quoted: it may repeat personal data]".into()));
        let waited = StepError::Failed("notifications answered 503 (retry after 2000 ms): ada@example.com".into());
        let cut = without_answer_excerpt(waited);
        assert!(!cut.to_string().contains("ada"), "{cut}");
        assert_eq!(cut.retry_after(), Some(std::time::Duration::from_secs(2)), "the wait the service asked for stays");
        let final_one = without_answer_excerpt(StepError::NonRetryable("notifications answered 400: ada@example.com".into()));
        assert!(matches!(&final_one, StepError::NonRetryable(m) if !m.contains("ada")), "{final_one:?}");
        let other = StepError::Failed("notifications unreachable: connection refused".into());
        assert_eq!(without_answer_excerpt(other.clone()), other);
    }

    #[test]
    fn emails_with_unicode_whitespace_or_controls_are_invalid() {
        assert!(is_valid_email("jos\u{e9}@example.com"));
        for bad in ["a\u{a0}b@example.com", "a@exa\u{2028}mple.com", "a\u{7f}@example.com", "a\tb@example.com", "a\u{85}@example.com"] {
            assert!(!is_valid_email(bad), "{bad:?}");
        }
    }

    #[test]
    fn transform_50k_records() {
        const N: usize = 50_000;
        let mut input = String::with_capacity(N * 128);
        input.push('[');
        let (mut valid, mut invalid) = (0, 0);
        for i in 0..N {
            if i > 0 {
                input.push(',');
            }
            // Every 20th record (5%) is invalid, cycling through the drop reasons.
            if i % 20 == 0 {
                invalid += 1;
                let _ = match (i / 20) % 4 {
                    0 => write!(input, "[{i}]"),
                    1 => write!(input, r#"{{"id":"","email":"u{i}@example.com","createdAt":"2024-03-01"}}"#),
                    2 => write!(input, r#"{{"id":"{i}","email":"user{i}","createdAt":"2024-03-01"}}"#),
                    _ => write!(input, r#"{{"id":"{i}","email":"u{i}@example.com","createdAt":"soon"}}"#),
                };
                continue;
            }
            valid += 1;
            let ms = 1_700_000_000_000_i64 + i as i64 * 1_000;
            let created_at = match i % 6 {
                0 => format!("\"2024-03-01T12:{:02}:{:02}Z\"", i % 60, (i / 60) % 60),
                1 => format!("\"2024-03-01T12:00:00.{:03}+02:00\"", i % 1000),
                2 => "\"2024-03-01\"".to_owned(),
                3 => "\"Fri, 01 Mar 2024 12:00:00 +0000\"".to_owned(),
                4 => ms.to_string(),
                _ => format!("\"{ms}\""),
            };
            let id = if i % 2 == 0 { i.to_string() } else { format!("\" user-{i} \"") };
            let _ = write!(
                input,
                r#"{{"id":{id},"name":" User {i} ","email":" User{i}@Example.com ","createdAt":{created_at},"plan":"free"}}"#
            );
        }
        input.push(']');

        let out = transform(input.as_bytes()).unwrap();
        assert_eq!((valid, invalid), (47_500, 2_500));
        assert_eq!(out.records.len(), valid);
        assert_eq!(out.dropped, invalid);
        let r = &out.records[0];
        assert_eq!((r.id.as_str(), r.name.as_str(), r.email.as_str()), ("user-1", "User 1", "user1@example.com"));
        assert!(out.records.iter().all(|r| r.created_at.len() == 24 && r.created_at.ends_with('Z')));
    }
}

/// Property tests (host only: proptest's randomness does not build for wasm32).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties {
    use super::*;
    use proptest::prelude::*;

    use serde_json::json;

    proptest! {
        /// Any bytes are records or an error, never a panic.
        #[test]
        fn any_bytes_are_answered(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = transform(&bytes);
        }

        /// Every element of an array is either kept or counted as dropped, and what is kept
        /// is normalised.
        #[test]
        fn every_record_is_kept_or_dropped(records in proptest::collection::vec(
            (any::<Option<u32>>(), ".{0,12}", "[a-zA-Z0-9. @]{0,20}", prop_oneof![
                any::<i64>().prop_map(|n| json!(n)),
                ".{0,30}".prop_map(|s| json!(s)),
                Just(json!("2024-03-01T10:00:00Z")),
                Just(json!("Fri, 01 Mar 2024 10:00:00 +0000")),
            ]), 0..20)) {
            let input: Vec<serde_json::Value> = records.iter().map(|(id, name, email, at)| json!({"id": id, "name": name, "email": email, "createdAt": at})).collect();
            let out = transform(serde_json::to_string(&input).unwrap().as_bytes()).expect("an array is read");
            prop_assert_eq!(out.records.len() + out.dropped, input.len());
            for record in &out.records {
                prop_assert!(is_valid_email(&record.email));
                prop_assert_eq!(record.email.clone(), record.email.to_lowercase());
                prop_assert!(record.created_at.ends_with('Z'));
            }
        }

        /// The one-pass ASCII email check says what the general rules say.
        #[test]
        fn the_ascii_email_check_matches_the_general_rules(email in "[ab@. \t\x01]{0,10}") {
            let general = !email.is_empty()
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
                && email.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty() && !domain.contains('@') && domain.contains('.') && domain.split('.').all(|label| !label.is_empty())
                });
            prop_assert_eq!(is_valid_email(&email), general);
        }

        /// The output date is what chrono writes, for every instant of years 0 to 9999, and
        /// the ISO reader reads it back.
        #[test]
        fn iso_dates_are_written_and_read_as_chrono_does(ms in -62_167_219_200_000_i64..253_402_300_800_000) {
            let dt = DateTime::from_timestamp_millis(ms).expect("in range");
            let written = iso_millis(&dt);
            prop_assert_eq!(&written, &dt.to_rfc3339_opts(SecondsFormat::Millis, true));
            prop_assert_eq!(fast::iso_utc_millis(written.as_bytes()), Some(dt));
        }

        /// On strings of the ISO shape, valid or not, the fast reader agrees with chrono's,
        /// but for second 60 (a leap second), which it leaves to chrono.
        #[test]
        fn the_iso_reader_agrees_with_chrono(s in "[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9]\\.[0-9]{3}Z") {
            let chrono = DateTime::parse_from_rfc3339(&s).ok().map(|dt| dt.to_utc());
            let fast = fast::iso_utc_millis(s.as_bytes());
            if &s[17..19] == "60" {
                prop_assert_eq!(fast, None);
            } else {
                prop_assert_eq!(fast, chrono);
            }
        }

        /// On `toUTCString`-shaped strings, valid or not (a wrong weekday, an offset, a
        /// day past the month's end, any offset), the fast reader agrees with chrono's.
        #[test]
        fn the_rfc2822_reader_agrees_with_chrono(
            ms in -62_167_219_200_000_i64..253_402_300_800_000,
            offset_minutes in -1439_i32..1440,
            weekday in proptest::option::of(0_usize..7),
            day in proptest::option::of("[0-3][0-9]"),
            zone in proptest::option::of("[+-][0-9]{4}"),
        ) {
            let dt = DateTime::from_timestamp_millis(ms - ms.rem_euclid(1000)).expect("in range");
            let offset = chrono::FixedOffset::east_opt(offset_minutes * 60).expect("under a day");
            let mut s = dt.with_timezone(&offset).format("%a, %d %b %Y %H:%M:%S %z").to_string();
            if let Some(w) = weekday {
                s.replace_range(0..3, ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][w]);
            }
            if let Some(d) = &day {
                s.replace_range(5..7, d);
            }
            if let Some(z) = &zone {
                s.replace_range(26..31, z);
            }
            let chrono = DateTime::parse_from_rfc2822(&s).ok().map(|dt| dt.to_utc());
            prop_assert_eq!(fast::rfc2822(s.as_bytes()), chrono, "{}", s);
        }

        #[test]
        fn emails_are_answered(email in ".{0,300}") {
            if is_valid_email(&email) {
                prop_assert!(email.len() <= MAX_EMAIL_LEN && email.contains('@'));
            }
        }
    }
}
