// Normalisation of user records: the TypeScript twin of src/records.rs, rule for rule.
//
// Upstream systems send a JSON array of `{id, name, email, createdAt}` objects and
// disagree on formats (string or integer ids; RFC 3339, plain dates, RFC 2822 or
// epoch-millisecond dates; stray whitespace; mixed-case emails). A record that cannot
// be normalised is dropped and counted rather than failing the batch.
//
// Where JavaScript's built-ins differ from the Rust rules they are not used for the
// decision: `Date.parse` rolls "2024-02-30" over to March, accepts hour 24 and ignores
// a wrong weekday, and `String.prototype.trim` strips U+FEFF but not U+0085. So dates
// are matched by shape (one regular expression per format the Rust side accepts) and
// computed from their fields, and trimming uses Rust's definition of whitespace.
//
// What stays different is JSON itself: `JSON.parse` makes every number a double, so an
// id written `1.0` or `1e3` is an integer here (serde_json reads a float and drops the
// record), and integer ids beyond 2^53 lose digits. Dates are unaffected (every valid
// epoch-ms value is far below 2^53).

export interface NormalRecord {
  /** Trimmed id; integer ids are rendered in decimal. */
  id: string;
  /** Trimmed name; empty when the input had none. */
  name: string;
  /** Trimmed, lower-cased, validated email. */
  email: string;
  /** ISO-8601 UTC with millisecond precision, e.g. `2024-03-01T10:00:00.000Z`. */
  createdAt: string;
}

export type DropReason = "NotAnObject" | "MissingId" | "InvalidEmail" | "UnreadableDate";

export interface Transformed {
  records: NormalRecord[];
  dropped: number;
}

/** RFC 5321 caps a forward path at 256 octets including the angle brackets. */
const MAX_EMAIL_BYTES = 254;

/** Rust's `char::is_whitespace` (Unicode White_Space), as a regex character class body. */
const WS = "\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

function isWhitespace(c: number): boolean {
  if (c <= 0x20) return c === 0x20 || (c >= 0x09 && c <= 0x0d);
  return (
    c >= 0x85 &&
    (c === 0x85 || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
      c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000)
  );
}

/** Rust's `str::trim`. */
export function trim(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && isWhitespace(s.charCodeAt(start))) start++;
  while (end > start && isWhitespace(s.charCodeAt(end - 1))) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

/** Length in UTF-8 bytes (what Rust's `str::len` counts). */
function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // 2 bytes below U+0800, 3 above; a surrogate pair is 4 bytes for 2 code units.
    if (c >= 0x80) n += c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 1 : 2;
  }
  return n;
}

/** Whitespace or a control character, as Rust's `is_whitespace() || is_control()`. */
const BAD_EMAIL_CHAR = /[\0-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

/**
 * The simple, sensible email check: at most 254 bytes, no whitespace or control
 * characters, exactly one `@` with a non-empty local part, and a domain containing
 * a dot with no empty labels.
 */
export function isValidEmail(email: string): boolean {
  // A UTF-16 code unit is at most 3 UTF-8 bytes: short strings need no byte count.
  if (email.length === 0 || email.length > MAX_EMAIL_BYTES) return false;
  if (email.length * 3 > MAX_EMAIL_BYTES && utf8Length(email) > MAX_EMAIL_BYTES) return false;
  if (BAD_EMAIL_CHAR.test(email)) return false;
  const at = email.indexOf("@");
  if (at <= 0 || email.indexOf("@", at + 1) !== -1) return false;
  const domain = at + 1;
  return (
    email.indexOf(".", domain) !== -1 &&
    email.charCodeAt(domain) !== 0x2e &&
    email.charCodeAt(email.length - 1) !== 0x2e &&
    email.indexOf("..", domain) === -1
  );
}

// ---- Dates ----

/** 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z: the output keeps a 4-digit year. */
const MIN_MS = -62_167_219_200_000;
const END_MS = 253_402_300_800_000;
const DAY_MS = 86_400_000;

const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
/** RFC 2822's zone names, in hours east of UTC. */
const ZONES: Record<string, number> = { gmt: 0, ut: 0, z: 0, edt: -4, est: -5, cdt: -5, cst: -6, mdt: -6, mst: -7, pdt: -7, pst: -8 };

/** A one- or two-digit field, taking two digits whenever there are two (as chrono does). */
const D2 = "(\\d\\d|\\d(?!\\d))";
/** chrono's `%Y`: up to four digits, or a sign and any number of them. */
const YEAR = "(?:([+-])(\\d+)|(\\d{1,4}))";

/** `%Y-%m-%d` (chrono lets whitespace precede every number). */
const PLAIN_DATE = new RegExp(`^${YEAR}-[${WS}]*${D2}-[${WS}]*${D2}$`);
/** RFC 3339: `T`, `t` or a space between date and time; `Z` or a `±HH:MM` offset. */
const RFC3339 = /^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:[Zz]|([+\-\u2212])(\d\d):([0-5]\d))$/;
/** `%Y-%m-%dT%H:%M:%S%.f` and `%Y-%m-%d %H:%M:%S%.f`, read as UTC. */
const NAIVE_DATE_TIME = new RegExp(
  `^${YEAR}-[${WS}]*${D2}-[${WS}]*${D2}T?[${WS}]*${D2}:[${WS}]*${D2}:[${WS}]*${D2}(?:\\.(\\d+))?$`,
);
/** RFC 2822 as chrono reads it: optional weekday, 2-or-more-digit year, optional seconds, zone, comments. */
const RFC2822 = new RegExp(
  `^(?:(mon|tue|wed|thu|fri|sat|sun),)?[${WS}]*(\\d\\d?)[${WS}]+(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)` +
    `[${WS}]+(\\d{2,})[${WS}]+(\\d\\d)[${WS}]*:[${WS}]*(\\d\\d)(?:[${WS}]*:(\\d\\d))?[${WS}]+` +
    `(?:([a-z]+)|([+-])(\\d\\d)([0-5]\\d))([^]*)$`,
  "i",
);
const DIGITS = /^\d+$/;

function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

function daysInMonth(y: number, m: number): number {
  return m === 2 ? (isLeapYear(y) ? 29 : 28) : m === 4 || m === 6 || m === 9 || m === 11 ? 30 : 31;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (any year; `Date.UTC` maps 0–99 to 1900–1999). */
function daysFromCivil(y: number, m: number, d: number): number {
  if (m <= 2) y -= 1;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + d - 1;
  return era * 146_097 + yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy - 719_468;
}

function fromMillis(ms: number): string | null {
  return ms >= MIN_MS && ms < END_MS ? new Date(ms).toISOString() : null;
}

/** Milliseconds of a fraction's digits, truncated (`5` → 500, `123456` → 123). */
function fractionMillis(digits: string | undefined): number {
  if (digits === undefined) return 0;
  return digits.length >= 3 ? +digits.slice(0, 3) : digits.length === 2 ? +digits * 10 : +digits * 100;
}

/**
 * A calendar date and wall-clock time at `offsetSeconds` east of UTC, checked field by
 * field; second 60 is a leap second, kept in the output as chrono keeps it.
 */
function fromFields(
  year: number, month: number, day: number, hour: number, minute: number, second: number,
  millis: number, offsetSeconds: number, weekday = -1,
): string | null {
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 60) return null;
  const days = daysFromCivil(year, month, day);
  if (weekday >= 0 && (((days + 4) % 7) + 7) % 7 !== weekday) return null;
  const leap = second === 60;
  const ms = days * DAY_MS + ((hour * 60 + minute) * 60 + (leap ? 59 : second)) * 1000 + millis - offsetSeconds * 1000;
  const iso = fromMillis(ms);
  return iso !== null && leap ? `${iso.slice(0, 17)}60${iso.slice(19)}` : iso;
}

function signedYear(sign: string | undefined, signedDigits: string | undefined, digits: string | undefined): number {
  return sign === undefined ? Number(digits) : sign === "-" ? -Number(signedDigits) : Number(signedDigits);
}

function parsePlainDate(s: string): string | null {
  const m = PLAIN_DATE.exec(s);
  return m ? fromFields(signedYear(m[1], m[2], m[3]), +m[4], +m[5], 0, 0, 0, 0, 0) : null;
}

function parseRfc3339(s: string): string | null {
  const m = RFC3339.exec(s);
  if (!m) return null;
  let offset = 0;
  if (m[8] !== undefined) {
    const hours = +m[9];
    if (hours > 23) return null;
    offset = (m[8] === "+" ? 1 : -1) * (hours * 3600 + +m[10] * 60);
  }
  return fromFields(+m[1], +m[2], +m[3], +m[4], +m[5], +m[6], fractionMillis(m[7]), offset);
}

function parseNaiveDateTime(s: string): string | null {
  const m = NAIVE_DATE_TIME.exec(s);
  if (!m) return null;
  return fromFields(signedYear(m[1], m[2], m[3]), +m[4], +m[5], +m[6], +m[7], +m[8], fractionMillis(m[9]), 0);
}

/** RFC 2822 comments after the zone: `(…)` with nesting and `\` escapes, whitespace between. */
function onlyComments(s: string): boolean {
  let i = 0;
  while (i < s.length) {
    while (i < s.length && isWhitespace(s.charCodeAt(i))) i++;
    if (i === s.length || s.charCodeAt(i) !== 0x28) return false;
    let depth = 1;
    let escaped = false;
    for (i++; depth > 0; i++) {
      if (i === s.length) return false;
      const c = s.charCodeAt(i);
      if (escaped) escaped = false;
      else if (c === 0x5c) escaped = true;
      else if (c === 0x28) depth++;
      else if (c === 0x29) depth--;
    }
  }
  return true;
}

function parseRfc2822(s: string): string | null {
  const m = RFC2822.exec(s);
  if (!m) return null;
  if (m[12] !== "" && !onlyComments(m[12])) return null;
  let offset: number;
  if (m[8] !== undefined) {
    const zone = m[8].toLowerCase();
    const hours = ZONES[zone];
    if (hours !== undefined) offset = hours * 3600;
    // A single military letter but J: recommended by RFC 2822 to be read as -0000.
    else if (zone.length === 1 && zone !== "j") offset = 0;
    else return null;
  } else {
    const hours = +m[10];
    if (hours > 23) return null;
    offset = (m[9] === "+" ? 1 : -1) * (hours * 3600 + +m[11] * 60);
  }
  // Two-digit years: < 50 is 20xx, else 19xx; three-digit years are 1900 + n.
  let year = +m[4];
  if (m[4].length === 2) year += year < 50 ? 2000 : 1900;
  else if (m[4].length === 3) year += 1900;
  const weekday = m[1] === undefined ? -1 : WEEKDAYS.indexOf(m[1].toLowerCase());
  const month = MONTHS.indexOf(m[3].toLowerCase()) + 1;
  return fromFields(year, month, +m[2], +m[5], +m[6], m[7] === undefined ? 0 : +m[7], 0, offset, weekday);
}

/** Whether the UTF-8 byte at index 4 is `-` (ISO-8601 starts `YYYY-`, RFC 2822 never does). */
function dashAtByte4(s: string): boolean {
  let bytes = 0;
  for (let i = 0; i < s.length && bytes <= 4; i++) {
    const c = s.charCodeAt(i);
    if (bytes === 4) return c === 0x2d;
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff) (bytes += 4), i++;
    else bytes += 3;
  }
  return false;
}

function parseDateString(s: string): string | null {
  if (s === "") return null;
  // Epoch milliseconds as a digit string. Beyond 15 digits it is out of range anyway,
  // so the float conversion never decides anything.
  if (DIGITS.test(s)) return fromMillis(+s);
  if (!dashAtByte4(s)) return parseRfc2822(s);
  // `YYYY-MM-DD` is 10 bytes (at least as many bytes as UTF-16 units).
  if (s.length <= 10 && utf8Length(s) === 10) return parsePlainDate(s);
  return parseRfc3339(s) ?? parseNaiveDateTime(s);
}

/** `createdAt` as ISO-8601 UTC with milliseconds, or null when unreadable. */
export function parseDate(value: unknown): string | null {
  if (typeof value === "string") return parseDateString(trim(value));
  // Epoch milliseconds; a fractional millisecond is not an epoch-ms value.
  if (typeof value === "number") return Number.isInteger(value) ? fromMillis(value) : null;
  return null;
}

// ---- Records ----

/** An id: a non-empty trimmed string, or an integer (as JSON writes one). */
function normalizeId(value: unknown): string | null {
  if (typeof value === "string") {
    const id = trim(value);
    return id === "" ? null : id;
  }
  // serde_json reads `-0` as a float, and integers only up to u64::MAX.
  if (typeof value === "number" && Number.isInteger(value) && value >= -(2 ** 63) && value < 2 ** 64 && !Object.is(value, -0)) {
    return String(value);
  }
  return null;
}

/** One record, normalised, or why it was dropped. */
export function normalize(value: unknown): NormalRecord | DropReason {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "NotAnObject";
  const fields = value as Record<string, unknown>;
  const id = normalizeId(fields.id);
  if (id === null) return "MissingId";
  const rawEmail = fields.email;
  if (typeof rawEmail !== "string") return "InvalidEmail";
  const email = trim(rawEmail);
  if (!isValidEmail(email)) return "InvalidEmail";
  const createdAt = parseDate(fields.createdAt);
  if (createdAt === null) return "UnreadableDate";
  // A name is optional: anything but a string counts as absent.
  const name = typeof fields.name === "string" ? trim(fields.name) : "";
  return { id, name, email: email.toLowerCase(), createdAt };
}

/** Normalises every element of a parsed JSON array; throws when it is not an array. */
export function transform(items: unknown): Transformed {
  if (!Array.isArray(items)) throw new TypeError("expected a JSON array of records");
  const records: NormalRecord[] = [];
  let dropped = 0;
  for (const item of items) {
    const r = normalize(item);
    if (typeof r === "string") dropped++;
    else records.push(r);
  }
  return { records, dropped };
}
