//! One policy for every URL a caller controls: webhook `callbackUrl`s and the URLs in
//! workflow params that a workflow will fetch (data-pipeline's `sourceUrl`, step-tour's).
//!
//! Such a URL makes the Worker send requests wherever a caller says, so it is checked
//! before anything is created: https only, no credentials in the URL, at most
//! [`MAX_URL_LEN`] bytes, and a host that is plainly public (no loopback, private,
//! link-local, shared, reserved or intranet-only names or addresses, including IPv4
//! addresses carried inside IPv6 ones), so the Worker cannot be pointed at internal
//! services. This is a check of the URL text only: a public name that resolves to a
//! private address is not caught here.
//!
//! Development and tests, whose receivers are `http://127.0.0.1:…`, name the hosts they
//! may use in [`PrivateHosts`] (the var `ALLOW_PRIVATE_HOSTS`): those hosts, exactly, are
//! accepted over http too; every other private host stays refused.
//!
//! The URL is parsed by the runtime's own WHATWG `URL` (the parser `fetch` uses), handed
//! in as [`UrlParts`]: a second URL parser compiled into the Worker would cost about
//! 80 KiB of gzip upload, mostly IDNA tables. The host tests parse with the `url` crate,
//! which implements the same standard.
//!
//! Addresses are classified with std's stable `Ipv4Addr`/`Ipv6Addr` methods where they
//! exist (`is_private`, `is_loopback`, `is_link_local`, `is_unique_local`,
//! `is_unicast_link_local`, `to_ipv4_mapped`, …). std's `is_global` is still unstable,
//! and the crates that backport it are unmaintained, so the few IANA special-purpose
//! ranges std has no stable method for are listed here, each with its RFC.

use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A URL as a WHATWG URL parser splits it. Hosts are canonical: domains lower-cased
/// and punycoded, IPv4 addresses in dotted decimal, IPv6 addresses in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    /// The whole URL, serialised.
    pub href: String,
    /// The scheme without its colon: "https".
    pub scheme: String,
    /// The user name; empty when there is none.
    pub username: String,
    /// The password; empty when there is none.
    pub password: String,
    /// The host without the port; empty when there is none.
    pub hostname: String,
}

/// Longest URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// The most characters of a host an error names (a longer one is cut, marked `…`).
const MAX_SHOWN_HOST_CHARS: usize = 64;

/// The most characters of a parser's reason an error repeats.
const MAX_SHOWN_REASON_CHARS: usize = 100;

/// The var naming the private hosts allowed for development.
pub const ALLOW_PRIVATE_HOSTS_VAR: &str = "ALLOW_PRIVATE_HOSTS";

/// Why [`check`] refused a URL. Errors end up in answers and logs, so none repeats the
/// URL: at most its scheme and host (canonical, cut to 64 characters), never its user
/// name, password, path, query or fragment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// It does not parse as a URL.
    #[error("URL is not a valid URL{}", reason_suffix(reason))]
    NotAUrl {
        /// The parser's reason, when it is a plain description (`invalid domain
        /// character`); empty when the parser's words might repeat the input.
        reason: String,
    },
    /// The scheme is neither https nor (to an allowed private host) http.
    #[error("URL scheme {scheme:?} (host {host:?}) is not allowed; only https is allowed (and http to the hosts in ALLOW_PRIVATE_HOSTS)")]
    SchemeNotAllowed {
        /// Its scheme, without the colon (cut to 16 characters).
        scheme: String,
        /// Its host (cut to 64 characters; empty when it has none).
        host: String,
    },
    /// The host is not plainly public.
    #[error("URL points at host {host:?}, which is not a public host ({reason})")]
    HostNotPublic {
        /// Its host (cut to 64 characters).
        host: String,
        /// What kind of host it is ("localhost", "an internal name", …).
        reason: &'static str,
    },
    /// The URL holds a user name or password; neither is repeated.
    #[error("URL must not contain a user name or password (host {host:?})")]
    Credentials {
        /// Its host (cut to 64 characters).
        host: String,
    },
    /// Longer than [`MAX_URL_LEN`]; nothing of it is repeated.
    #[error("URL is {len} bytes long; at most {max} allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The most allowed: [`MAX_URL_LEN`].
        max: usize,
    },
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    }
}

/// The parser's reason for refusing `url`, kept only when it is a short plain phrase
/// that repeats no word of the URL (credentials included): WHATWG parsers
/// say `invalid domain character` or `Invalid URL string.`, but a parser that quoted
/// its input would otherwise leak it.
fn safe_reason(reason: &str, url: &str) -> String {
    let reason = reason.trim();
    let plain =
        reason.chars().count() <= MAX_SHOWN_REASON_CHARS && reason.chars().all(|c| c.is_ascii_alphanumeric() || " .,'’()-".contains(c));
    let repeats_input = url
        .split(|c: char| !c.is_alphanumeric())
        .any(|token| token.chars().count() >= 3 && reason.contains(token) && !is_parser_word(token));
    if plain && !repeats_input {
        reason.to_string()
    } else {
        String::new()
    }
}

/// Words a parser's reason uses that an input may share (`https`, `invalid`, …): their
/// presence in both says nothing of the input.
fn is_parser_word(token: &str) -> bool {
    const WORDS: &[&str] = &[
        "http",
        "https",
        "url",
        "invalid",
        "domain",
        "character",
        "host",
        "port",
        "number",
        "address",
        "string",
        "empty",
        "relative",
        "base",
    ];
    WORDS.iter().any(|w| w.eq_ignore_ascii_case(token))
}

/// At most `max` characters of `text`, marked `…` when cut.
fn shown(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// The private hosts a deployment allows anyway (the var `ALLOW_PRIVATE_HOSTS`:
/// development and tests). Each is matched exactly: `127.0.0.1` allows that address
/// (however the URL spells it), not the rest of 127.0.0.0/8.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrivateHosts {
    addresses: Vec<IpAddr>,
    names: Vec<String>,
}

/// At most this many hosts are read from the var.
const MAX_PRIVATE_HOSTS: usize = 32;

impl PrivateHosts {
    /// None: the production setting.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads the var: hosts separated by commas or spaces (`"127.0.0.1, ::1, localhost"`).
    /// An IPv6 address may be bracketed. Entries that are neither an address nor a host
    /// name are ignored (allowing less, never more).
    pub fn parse(var: &str) -> Self {
        let mut hosts = Self::none();
        for entry in var.split([',', ' ', '\t', '\n']).map(str::trim).filter(|e| !e.is_empty()).take(MAX_PRIVATE_HOSTS) {
            if let Some(ip) = parse_ip(entry) {
                hosts.addresses.push(ip);
            } else if let Some(name) = canonical_name(entry) {
                hosts.names.push(name);
            }
        }
        hosts
    }

    /// Whether a canonical WHATWG host (`127.0.0.1`, `[::1]`, `localhost`) is allowed.
    pub fn allows(&self, hostname: &str) -> bool {
        match parse_ip(hostname) {
            Some(ip) => self.addresses.contains(&ip),
            None => canonical_name(hostname).is_some_and(|name| self.names.contains(&name)),
        }
    }
}

/// An IP address, IPv6 bracketed or not.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    bare.parse().ok()
}

/// A host name lower-cased without its trailing dot, if it reads as one.
fn canonical_name(text: &str) -> Option<String> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    let valid = !name.is_empty() && name.len() <= 253 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then_some(name)
}

/// Parses (with `parse`, a WHATWG URL parser) and checks a URL a caller gave, returning
/// it serialised: https to a public host, or http/https to a host in `private_hosts`.
/// Credentials, other schemes and over-long URLs are never accepted.
pub fn check(url: &str, parse: impl FnOnce(&str) -> Result<UrlParts, String>, private_hosts: &PrivateHosts) -> Result<String, UrlError> {
    // Checked first so a huge input is never parsed.
    if url.len() > MAX_URL_LEN {
        return Err(UrlError::TooLong { len: url.len(), max: MAX_URL_LEN });
    }
    let parsed = parse(url).map_err(|reason| UrlError::NotAUrl { reason: safe_reason(&reason, url) })?;
    let allowed_private = private_hosts.allows(&parsed.hostname);
    let host = shown(&parsed.hostname, MAX_SHOWN_HOST_CHARS);

    let scheme_ok = match parsed.scheme.as_str() {
        "https" => true,
        "http" => allowed_private,
        _ => false,
    };
    if !scheme_ok {
        return Err(UrlError::SchemeNotAllowed { scheme: shown(&parsed.scheme, 16), host });
    }

    if !parsed.username.is_empty() || !parsed.password.is_empty() {
        return Err(UrlError::Credentials { host });
    }

    if !allowed_private {
        if let Some(reason) = host_not_public(&parsed.hostname) {
            return Err(UrlError::HostNotPublic { host, reason });
        }
    }

    Ok(parsed.href)
}

/// A URL field of params that does not pass [`check`]: where it is and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {error}")]
pub struct ParamsUrlError {
    /// Where in the params, written like serde_path_to_error writes it (`actions[2].call.url`).
    pub path: String,
    /// Why the URL was refused.
    pub error: UrlError,
}

/// Checks every URL in `params` at the given field paths. A path is dot-separated field
/// names, `*` standing for every element of an array (`actions.*.call.url`). Fields
/// that are absent or not strings are skipped: the typed params check reports those.
pub fn check_params_urls(
    params: &Value,
    paths: &[&str],
    parse: impl Fn(&str) -> Result<UrlParts, String>,
    private_hosts: &PrivateHosts,
) -> Result<(), ParamsUrlError> {
    for pattern in paths {
        let mut found = Vec::new();
        urls_at(params, &pattern.split('.').collect::<Vec<_>>(), String::new(), &mut found);
        for (path, url) in found {
            check(url, &parse, private_hosts).map_err(|error| ParamsUrlError { path, error })?;
        }
    }
    Ok(())
}

/// The strings at `segments` under `value`, with their paths.
fn urls_at<'a>(value: &'a Value, segments: &[&str], at: String, found: &mut Vec<(String, &'a str)>) {
    let Some((first, rest)) = segments.split_first() else {
        if let Value::String(s) = value {
            found.push((at, s));
        }
        return;
    };
    match (*first, value) {
        ("*", Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                urls_at(item, rest, format!("{at}[{i}]"), found);
            }
        }
        (field, Value::Object(map)) => {
            if let Some(inner) = map.get(field) {
                urls_at(inner, rest, if at.is_empty() { field.to_string() } else { format!("{at}.{field}") }, found);
            }
        }
        _ => {}
    }
}

/// Why a canonical WHATWG host is not public, if it is not.
pub fn host_not_public(hostname: &str) -> Option<&'static str> {
    if hostname.is_empty() {
        return Some("it has no host");
    }
    if let Some(v6) = hostname.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match v6.parse::<Ipv6Addr>() {
            Ok(ip) => ipv6_not_public(ip),
            Err(_) => Some("an address that does not read as IPv6"),
        };
    }
    // The parser has already turned every IPv4 spelling (2130706433, 0x7f.1) into
    // dotted decimal, so a host that does not read as one is a domain.
    match hostname.parse::<Ipv4Addr>() {
        Ok(ip) => ipv4_not_public(ip),
        Err(_) => domain_not_public(hostname),
    }
}

/// Why a host name is not public, if it is not. The parser has already lowercased
/// and punycoded it.
fn domain_not_public(domain: &str) -> Option<&'static str> {
    // "localhost." is the same name as "localhost".
    let name = domain.strip_suffix('.').unwrap_or(domain);
    if name == "localhost" || name.ends_with(".localhost") {
        Some("localhost")
    } else if name.ends_with(".local") {
        Some("a .local (mDNS) name")
    } else if name.ends_with(".internal") || name.ends_with(".home.arpa") || name.ends_with(".lan") {
        Some("an internal name")
    } else if !name.contains('.') {
        Some("a name without a dot, resolved only on a local network")
    } else {
        None
    }
}

fn ipv4_not_public(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let reason = if ip.is_unspecified() || a == 0 {
        "an unspecified address" // 0.0.0.0/8, RFC 791
    } else if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_private() {
        "a private address"
    } else if ip.is_link_local() {
        "a link-local address"
    } else if a == 100 && (64..128).contains(&b) {
        "a carrier-grade NAT address" // 100.64.0.0/10, RFC 6598 (std: unstable is_shared)
    } else if ip.is_documentation()
        || (a == 198 && (b == 18 || b == 19)) // 198.18.0.0/15 benchmarking, RFC 2544
        || (a == 192 && b == 0 && c == 0) // 192.0.0.0/24 IETF protocol assignments, RFC 6890
        || (a == 192 && b == 88 && c == 99)
    // 192.88.99.0/24 6to4 relay anycast, RFC 7526
    {
        "a reserved address"
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        "a multicast, broadcast or reserved address"
    } else {
        return None;
    };
    Some(reason)
}

fn ipv6_not_public(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d, RFC 6052) addresses reach
    // the IPv4 address they carry, so they are as public as it is.
    let embedded = ip.to_ipv4_mapped().or_else(|| (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| last_ipv4(ip)));
    if let Some(v4) = embedded {
        return ipv4_not_public(v4);
    }
    let reason = if ip.is_unspecified() {
        "an unspecified address"
    } else if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_unique_local() {
        "a unique-local address" // fc00::/7, RFC 4193
    } else if ip.is_unicast_link_local() {
        "a link-local address" // fe80::/10
    } else if ip.is_multicast() {
        "a multicast address"
    } else if s[0] == 0x2002 {
        // 2002::/16 6to4 (RFC 3056): reaches whatever IPv4 address bits 16..48 hold.
        "a 6to4 address, which reaches an IPv4 address through a relay"
    } else if s[0] == 0x2001 && s[1] == 0 {
        // 2001::/32 Teredo (RFC 4380): tunnels to an IPv4 server and client.
        "a Teredo address, which reaches an IPv4 address through a relay"
    } else if s[0] == 0x64 && s[1] == 0xff9b {
        "a local-use NAT64 address" // 64:ff9b:1::/48, RFC 8215
    } else if (s[0] == 0x2001 && s[1] == 0x0db8) || (s[0] == 0x3fff && s[1] < 0x1000) {
        "a documentation address" // 2001:db8::/32 (RFC 3849), 3fff::/20 (RFC 9637)
    } else if s[0] & 0xe000 != 0x2000 {
        // Everything public sits in 2000::/3 (global unicast, RFC 4291); the rest is
        // reserved, site-local (fec0::/10), IPv4-compatible (::a.b.c.d), discard (100::/64), …
        "a reserved address"
    } else if s[0] == 0x2001 && s[1] < 0x0200 {
        "an IETF protocol assignment" // 2001::/23 (benchmarking, ORCHID, …), RFC 2928
    } else {
        return None;
    };
    Some(reason)
}

/// The IPv4 address in the last 32 bits of an IPv6 address.
fn last_ipv4(ip: Ipv6Addr) -> Ipv4Addr {
    let [.., a, b, c, d] = ip.octets();
    Ipv4Addr::new(a, b, c, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What the runtime's `URL` gives the Worker, from the `url` crate (the same standard).
    pub(crate) fn whatwg_parts(url: &str) -> Result<UrlParts, String> {
        let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
        Ok(UrlParts {
            href: parsed.as_str().to_string(),
            scheme: parsed.scheme().to_string(),
            username: parsed.username().to_string(),
            password: parsed.password().unwrap_or_default().to_string(),
            hostname: parsed.host_str().unwrap_or_default().to_string(),
        })
    }

    fn loopback_allowed() -> PrivateHosts {
        PrivateHosts::parse("127.0.0.1")
    }

    fn check(url: &str, hosts: &PrivateHosts) -> Result<String, UrlError> {
        super::check(url, whatwg_parts, hosts)
    }

    fn refused_reason(url: &str) -> &'static str {
        match check(url, &PrivateHosts::none()) {
            Err(UrlError::HostNotPublic { reason, .. }) => reason,
            other => panic!("{url}: expected HostNotPublic, got {other:?}"),
        }
    }

    #[test]
    fn public_https_is_accepted_with_or_without_private_hosts() {
        for url in [
            "https://hooks.example.com/x",
            "https://hooks.example.com:8443/a/b?c=d#e",
            "https://93.184.216.34/hook",
            "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
            "https://xn--bcher-kva.example/",
        ] {
            for hosts in [PrivateHosts::none(), loopback_allowed()] {
                assert!(check(url, &hosts).is_ok(), "{url} {hosts:?}: {:?}", check(url, &hosts));
            }
        }
        assert_eq!(check("https://hooks.example.com/x", &PrivateHosts::none()), Ok("https://hooks.example.com/x".to_string()));
    }

    #[test]
    fn http_only_to_an_allowed_private_host() {
        assert_eq!(
            check("http://hooks.example.com", &loopback_allowed()),
            Err(UrlError::SchemeNotAllowed { scheme: "http".into(), host: "hooks.example.com".into() })
        );
        assert!(check("http://127.0.0.1:9000/hook", &loopback_allowed()).is_ok());
        assert!(check("https://127.0.0.1:9000/hook", &loopback_allowed()).is_ok());
        // Other spellings of the same address are the same host.
        assert!(check("http://2130706433:9000/hook", &loopback_allowed()).is_ok());
        assert!(matches!(check("http://127.0.0.1:9000/hook", &PrivateHosts::none()), Err(UrlError::SchemeNotAllowed { .. })));
        assert!(matches!(check("https://127.0.0.1:9000/hook", &PrivateHosts::none()), Err(UrlError::HostNotPublic { .. })));
    }

    #[test]
    fn the_allowlist_allows_exactly_its_hosts() {
        let hosts = PrivateHosts::parse(" 127.0.0.1,[::1] localhost., 10.0.0.5 not/a/host");
        for allowed in ["127.0.0.1", "[::1]", "localhost", "LOCALHOST.", "10.0.0.5"] {
            assert!(hosts.allows(allowed), "{allowed}");
        }
        for refused in ["127.0.0.2", "[::2]", "api.localhost", "10.0.0.6", "not/a/host", ""] {
            assert!(!hosts.allows(refused), "{refused}");
        }
        for url in ["https://127.0.0.2/", "https://10.1.2.3/", "https://169.254.169.254/", "https://[::ffff:127.0.0.1]/"] {
            assert!(matches!(check(url, &loopback_allowed()), Err(UrlError::HostNotPublic { .. })), "{url}");
        }
        assert_eq!(PrivateHosts::parse(""), PrivateHosts::none());
        assert!(!PrivateHosts::none().allows("127.0.0.1"));
    }

    #[test]
    fn other_schemes_always_refused() {
        for url in ["ftp://x.example.com", "file:///etc/passwd", "ws://x.example.com", "javascript:alert(1)", "data:text/plain,hi"] {
            for hosts in [PrivateHosts::none(), loopback_allowed()] {
                assert!(matches!(check(url, &hosts), Err(UrlError::SchemeNotAllowed { .. })), "{url}: {:?}", check(url, &hosts));
            }
        }
        let err = check("ftp://x.example.com", &loopback_allowed()).expect_err("refused");
        assert!(err.to_string().contains("only https is allowed"), "{err}");
    }

    #[test]
    fn non_public_hosts_refused() {
        for url in [
            "https://127.0.0.1/",
            "https://127.1.2.3/",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://172.31.255.255/",
            "https://192.168.1.1/",
            "https://169.254.169.254/",
            "https://0.0.0.0/",
            "https://100.64.0.1/",
            "https://198.18.0.1/",
            "https://192.0.0.8/",
            "https://192.88.99.1/",
            "https://224.0.0.1/",
            "https://255.255.255.255/",
            "https://2130706433/",
            "https://0x7f.0.0.1/",
            "https://[::1]/",
            "https://[::]/",
            "https://[::127.0.0.1]/",
            "https://[fe80::1]/",
            "https://[fec0::1]/",
            "https://[fc00::1]/",
            "https://[fd12:3456::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[::ffff:169.254.169.254]/",
            "https://[64:ff9b::10.0.0.1]/",
            "https://[64:ff9b::127.0.0.1]/",
            "https://[64:ff9b:1::8.8.8.8]/",
            "https://[2002:7f00:1::]/",
            "https://[2002:a00:1::1]/",
            "https://[2002:808:808::1]/",
            "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
            "https://[2001:db8::1]/",
            "https://[3fff::1]/",
            "https://[3fff:fff:ffff::1]/",
            "https://[2001:2::1]/",
            "https://[100::1]/",
            "https://[ff02::1]/",
            "https://localhost/",
            "https://LOCALHOST./",
            "https://api.localhost/",
            "https://intranet/",
            "https://intranet./",
            "https://printer.local/",
            "https://metadata.google.internal/",
            "https://router.home.arpa/",
        ] {
            refused_reason(url);
            // The allowlist of 127.0.0.1 changes nothing for any of them but that one host.
            if !url.starts_with("https://127.0.0.1/") && url != "https://2130706433/" && url != "https://0x7f.0.0.1/" {
                assert!(check(url, &loopback_allowed()).is_err(), "{url} with 127.0.0.1 allowed");
            }
        }
    }

    #[test]
    fn reasons_and_message() {
        assert_eq!(refused_reason("https://127.0.0.1/"), "a loopback address");
        assert_eq!(refused_reason("https://10.1.2.3/"), "a private address");
        assert_eq!(refused_reason("https://169.254.169.254/"), "a link-local address");
        assert_eq!(refused_reason("https://[::1]/"), "a loopback address");
        assert_eq!(refused_reason("https://[fe80::1]/"), "a link-local address");
        assert_eq!(refused_reason("https://[fd00::1]/"), "a unique-local address");
        assert_eq!(refused_reason("https://[::ffff:192.168.0.1]/"), "a private address");
        assert_eq!(refused_reason("https://[64:ff9b::a00:1]/"), "a private address");
        assert!(refused_reason("https://[2002:7f00:1::]/").starts_with("a 6to4 address"));
        assert!(refused_reason("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/").starts_with("a Teredo address"));
        assert_eq!(refused_reason("https://localhost/"), "localhost");
        assert_eq!(refused_reason("https://printer.local/"), "a .local (mDNS) name");
        let err = check("https://intranet/hook?token=abc123", &PrivateHosts::none()).expect_err("refused");
        assert_eq!(
            err,
            UrlError::HostNotPublic { host: "intranet".into(), reason: "a name without a dot, resolved only on a local network" }
        );
        // The host is named; the rest of the URL (its path and query) is not repeated.
        assert_eq!(
            err.to_string(),
            "URL points at host \"intranet\", which is not a public host (a name without a dot, resolved only on a local network)"
        );
    }

    #[test]
    fn public_addresses_next_to_private_ranges_pass() {
        for url in [
            "https://172.15.0.1/",
            "https://172.32.0.1/",
            "https://100.128.0.1/",
            "https://[::ffff:8.8.8.8]/",
            "https://[64:ff9b::8.8.8.8]/",
            "https://[2001:4860::8888]/",
            "https://[2001:200::1]/",
            "https://[2a00:1450::1]/",
            // Just past 3fff::/20, the documentation block (RFC 9637).
            "https://[3fff:1000::1]/",
        ] {
            assert!(check(url, &PrivateHosts::none()).is_ok(), "{url}: {:?}", check(url, &PrivateHosts::none()));
        }
    }

    #[test]
    fn credentials_refused_without_echoing_them() {
        for url in ["https://u:p@x.example.com", "https://u@x.example.com/", "https://:p@x.example.com/"] {
            for hosts in [PrivateHosts::none(), loopback_allowed()] {
                assert_eq!(check(url, &hosts), Err(UrlError::Credentials { host: "x.example.com".into() }), "{url}");
            }
        }
        let shown = check("https://alice:hunter2@x.example.com/", &PrivateHosts::none()).expect_err("refused").to_string();
        assert!(!shown.contains("hunter2") && !shown.contains("alice"), "{shown}");
        let http = check("http://alice:hunter2@x.example.com/", &PrivateHosts::none()).expect_err("refused").to_string();
        assert!(!http.contains("hunter2"), "{http}");
        // Refused for another reason first (its scheme, its host, its form), the
        // credentials are still not repeated.
        for url in [
            "ftp://alice:hunter2@x.example.com/",
            "https://alice:hunter2@10.0.0.1/",
            "https://alice:hunter2@exa mple.com/",
            "https://u:hunter2@[::1/",
            "hunter2",
        ] {
            let shown = check(url, &PrivateHosts::none()).expect_err("refused").to_string();
            assert!(!shown.contains("hunter2") && !shown.contains("alice"), "{url}: {shown}");
        }
    }

    #[test]
    fn too_long_refused() {
        let base = "https://hooks.example.com/";
        let at_limit = format!("{base}{}", "a".repeat(MAX_URL_LEN - base.len()));
        assert!(check(&at_limit, &PrivateHosts::none()).is_ok());
        let over = format!("{at_limit}a");
        assert_eq!(check(&over, &PrivateHosts::none()), Err(UrlError::TooLong { len: MAX_URL_LEN + 1, max: MAX_URL_LEN }));
        let shown = check(&format!("https://u:hunter2@x.example.com/{}", "é".repeat(MAX_URL_LEN)), &PrivateHosts::none())
            .expect_err("refused")
            .to_string();
        assert!(!shown.contains("hunter2") && !shown.contains("x.example.com"), "{shown}");
    }

    #[test]
    fn long_hosts_are_cut_in_errors() {
        let long = format!("https://{}.internal/", "a".repeat(200));
        match check(&long, &PrivateHosts::none()) {
            Err(UrlError::HostNotPublic { host, .. }) => {
                assert_eq!(host.chars().count(), MAX_SHOWN_HOST_CHARS + 1);
                assert!(host.ends_with('…'), "{host}");
            }
            other => panic!("expected HostNotPublic, got {other:?}"),
        }
    }

    #[test]
    fn not_a_url() {
        for url in ["", "hooks.example.com/x", "https://", "https://exa mple.com/", "https://[::1/"] {
            assert!(
                matches!(check(url, &loopback_allowed()), Err(UrlError::NotAUrl { .. })),
                "{url:?}: {:?}",
                check(url, &loopback_allowed())
            );
        }
        // The parser's reason is given; the input is not.
        let err = check("hooks.example.com/x", &PrivateHosts::none()).expect_err("refused");
        assert_eq!(err.to_string(), "URL is not a valid URL (relative URL without a base)");
        let err = check("https://u:secret@exa mple.com", &PrivateHosts::none()).expect_err("refused");
        assert_eq!(err.to_string(), "URL is not a valid URL (invalid international domain name)");
        // A reason that repeats the input, or is not a plain phrase, is dropped.
        assert_eq!(safe_reason("Invalid URL: https://u:secret@exa mple.com", "https://u:secret@exa mple.com"), "");
        assert_eq!(safe_reason("bad secret", "https://u:secret@exa mple.com"), "");
        assert_eq!(safe_reason("Invalid URL string.", "https://u:secret@exa mple.com"), "Invalid URL string.");
        assert_eq!(safe_reason(&"x".repeat(101), "https://a"), "");
    }

    #[test]
    fn urls_in_params_are_found_by_path_and_checked() {
        let params = json!({"actions": [
            {"call": {"name": "a", "url": "https://api.example.com/a"}},
            {"sleep": {"name": "s", "duration": "1 second"}},
            {"download": {"name": "d", "url": "https://10.0.0.1/data"}},
        ]});
        let paths = ["actions.*.call.url", "actions.*.download.url"];
        let err = check_params_urls(&params, &paths, whatwg_parts, &PrivateHosts::none()).expect_err("refused");
        assert_eq!(err.path, "actions[2].download.url");
        assert_eq!(
            err.to_string(),
            "actions[2].download.url: URL points at host \"10.0.0.1\", which is not a public host (a private address)"
        );
        assert!(check_params_urls(&params, &["actions.*.call.url"], whatwg_parts, &PrivateHosts::none()).is_ok());
        let pipeline = json!({"sourceUrl": "http://169.254.169.254/latest/meta-data"});
        let err = check_params_urls(&pipeline, &["sourceUrl"], whatwg_parts, &loopback_allowed()).expect_err("refused");
        assert_eq!(err.path, "sourceUrl");
        // Absent fields and values of the wrong type are left to the typed params check.
        assert!(check_params_urls(&json!({"sourceUrl": 7}), &["sourceUrl"], whatwg_parts, &PrivateHosts::none()).is_ok());
        assert!(check_params_urls(&json!({"actions": "x"}), &paths, whatwg_parts, &PrivateHosts::none()).is_ok());
        assert!(check_params_urls(&Value::Null, &paths, whatwg_parts, &PrivateHosts::none()).is_ok());
    }
}

/// An oracle for the policy's addresses that shares no code with it: the ranges below
/// are copied from the IANA special-purpose address registries (IPv4 and IPv6, with
/// their RFCs), plus the multicast blocks, written as CIDR text, and containment is
/// computed by the `ipnet` crate. An address is public when it is in no range here; an
/// IPv6 address is also public only inside 2000::/3, the global unicast block (RFC 4291:
/// everything else is reserved, multicast or local), and an IPv4-mapped or NAT64
/// address is exactly as public as the IPv4 address it carries. The policy is stricter
/// than "globally reachable" in a few documented places: all of 192.0.0.0/24 and
/// 2001::/23 (the registries mark a few anycast /32s and /128s inside them reachable),
/// the deprecated 6to4 relay 192.88.99.0/24, and the relay-reaching 6to4 and Teredo blocks.
#[cfg(all(test, not(target_arch = "wasm32")))]
pub(crate) mod oracle {
    use ipnet::{Ipv4Net, Ipv6Net};
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// IPv4 ranges no public URL may point into.
    pub const IPV4_NOT_PUBLIC: &[&str] = &[
        "0.0.0.0/8",       // "this network", RFC 791
        "10.0.0.0/8",      // private, RFC 1918
        "100.64.0.0/10",   // shared address space (carrier-grade NAT), RFC 6598
        "127.0.0.0/8",     // loopback, RFC 1122
        "169.254.0.0/16",  // link local, RFC 3927
        "172.16.0.0/12",   // private, RFC 1918
        "192.0.0.0/24",    // IETF protocol assignments, RFC 6890
        "192.0.2.0/24",    // documentation (TEST-NET-1), RFC 5737
        "192.88.99.0/24",  // 6to4 relay anycast (deprecated), RFC 7526
        "192.168.0.0/16",  // private, RFC 1918
        "198.18.0.0/15",   // benchmarking, RFC 2544
        "198.51.100.0/24", // documentation (TEST-NET-2), RFC 5737
        "203.0.113.0/24",  // documentation (TEST-NET-3), RFC 5737
        "224.0.0.0/4",     // multicast, RFC 5771
        "240.0.0.0/4",     // reserved, RFC 1112 (255.255.255.255/32, limited broadcast, RFC 919, inside)
    ];

    /// IPv6 ranges inside 2000::/3 (or carrying IPv4, handled apart) that no public URL
    /// may point into.
    pub const IPV6_NOT_PUBLIC: &[&str] = &[
        "64:ff9b:1::/48", // local-use IPv4/IPv6 translation, RFC 8215
        "2001::/23",      // IETF protocol assignments, RFC 2928 (Teredo 2001::/32, RFC 4380, inside)
        "2001:db8::/32",  // documentation, RFC 3849
        "2002::/16",      // 6to4, RFC 3056
        "3fff::/20",      // documentation, RFC 9637
    ];

    /// The blocks outside 2000::/3 the registries name, for tests to draw addresses from:
    /// all refused (as outside 2000::/3) unless they carry an IPv4 address.
    pub const IPV6_OUTSIDE_GLOBAL_UNICAST: &[&str] = &[
        "::/128",         // unspecified, RFC 4291
        "::1/128",        // loopback, RFC 4291
        "::ffff:0:0/96",  // IPv4-mapped, RFC 4291
        "64:ff9b::/96",   // IPv4/IPv6 translation, RFC 6052
        "100::/64",       // discard-only, RFC 6666
        "100:0:0:1::/64", // dummy prefix, RFC 9780
        "5f00::/16",      // SRv6 SIDs, RFC 9602
        "fc00::/7",       // unique local, RFC 4193
        "fe80::/10",      // link-local unicast, RFC 4291
        "fec0::/10",      // site-local (deprecated), RFC 3879
        "ff00::/8",       // multicast, RFC 4291
    ];

    fn v4_nets(list: &[&str]) -> Vec<Ipv4Net> {
        list.iter().map(|n| n.parse().expect("a CIDR of the table")).collect()
    }

    fn v6_nets(list: &[&str]) -> Vec<Ipv6Net> {
        list.iter().map(|n| n.parse().expect("a CIDR of the table")).collect()
    }

    /// Whether the oracle calls this IPv4 address public.
    pub fn ipv4_public(ip: Ipv4Addr) -> bool {
        !v4_nets(IPV4_NOT_PUBLIC).iter().any(|net| net.contains(&ip))
    }

    /// Whether the oracle calls this IPv6 address public.
    pub fn ipv6_public(ip: Ipv6Addr) -> bool {
        let mapped: Ipv6Net = "::ffff:0:0/96".parse().expect("a CIDR");
        let nat64: Ipv6Net = "64:ff9b::/96".parse().expect("a CIDR");
        if mapped.contains(&ip) || nat64.contains(&ip) {
            let [.., a, b, c, d] = ip.octets();
            return ipv4_public(Ipv4Addr::new(a, b, c, d));
        }
        let global_unicast: Ipv6Net = "2000::/3".parse().expect("a CIDR");
        global_unicast.contains(&ip) && !v6_nets(IPV6_NOT_PUBLIC).iter().any(|net| net.contains(&ip))
    }

    /// Every range of the tables, for drawing addresses at and around their edges.
    pub fn v4_ranges() -> Vec<Ipv4Net> {
        v4_nets(IPV4_NOT_PUBLIC)
    }

    /// Every IPv6 range of the tables, 2000::/3 itself included.
    pub fn v6_ranges() -> Vec<Ipv6Net> {
        let mut all = v6_nets(IPV6_NOT_PUBLIC);
        all.extend(v6_nets(IPV6_OUTSIDE_GLOBAL_UNICAST));
        all.push("2000::/3".parse().expect("a CIDR"));
        all
    }
}

/// Property tests (host only: proptest's randomness does not build for wasm32).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties {
    use super::oracle;
    use super::tests::whatwg_parts;
    use super::*;
    use proptest::prelude::*;

    fn any_ipv4() -> impl Strategy<Value = Ipv4Addr> {
        any::<u32>().prop_map(Ipv4Addr::from)
    }

    /// Addresses anywhere, and addresses inside, at the edges of and just outside the
    /// oracle's ranges (where a wrong bound would show).
    fn interesting_ipv4() -> impl Strategy<Value = Ipv4Addr> {
        let ranges = oracle::v4_ranges();
        let n = ranges.len();
        prop_oneof![
            any::<u32>().prop_map(Ipv4Addr::from),
            (0..n, any::<u32>(), 0u8..5).prop_map(move |(i, r, edge)| {
                let net = ranges[i];
                let (first, last) = (u32::from(net.network()), u32::from(net.broadcast()));
                Ipv4Addr::from(match edge {
                    0 => first,
                    1 => last,
                    2 => first.wrapping_sub(1),
                    3 => last.wrapping_add(1),
                    _ => first + r % (last - first).saturating_add(1).max(1),
                })
            }),
        ]
    }

    fn interesting_ipv6() -> impl Strategy<Value = Ipv6Addr> {
        let ranges = oracle::v6_ranges();
        let n = ranges.len();
        prop_oneof![
            any::<u128>().prop_map(Ipv6Addr::from),
            // Global unicast, where public addresses are.
            any::<u128>().prop_map(|r| Ipv6Addr::from((0x2000u128 << 112) | (r >> 3))),
            (0..n, any::<u128>(), 0u8..5).prop_map(move |(i, r, edge)| {
                let net = ranges[i];
                let (first, last) = (u128::from(net.network()), u128::from(net.broadcast()));
                Ipv6Addr::from(match edge {
                    0 => first,
                    1 => last,
                    2 => first.wrapping_sub(1),
                    3 => last.wrapping_add(1),
                    _ => first + r % (last - first).saturating_add(1).max(1),
                })
            }),
            // IPv4 carried in IPv6, around the IPv4 ranges too.
            (interesting_ipv4(), any::<bool>()).prop_map(|(v4, nat64)| {
                if nat64 {
                    let [a, b, c, d] = v4.octets();
                    Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]))
                } else {
                    v4.to_ipv6_mapped()
                }
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// The policy agrees with the IANA-registry oracle on every IPv4 address, as a
        /// URL host (the policy's own entry point, through the URL parser).
        #[test]
        fn ipv4_hosts_agree_with_the_registry_oracle(ip in interesting_ipv4()) {
            prop_assert_eq!(host_not_public(&ip.to_string()).is_none(), oracle::ipv4_public(ip), "{}", ip);
            let url = format!("https://{ip}/x");
            prop_assert_eq!(super::check(&url, whatwg_parts, &PrivateHosts::none()).is_ok(), oracle::ipv4_public(ip), "{}", url);
        }

        /// The same for IPv6 hosts.
        #[test]
        fn ipv6_hosts_agree_with_the_registry_oracle(ip in interesting_ipv6()) {
            prop_assert_eq!(host_not_public(&format!("[{ip}]")).is_none(), oracle::ipv6_public(ip), "{}", ip);
            let url = format!("https://[{ip}]/x");
            prop_assert_eq!(super::check(&url, whatwg_parts, &PrivateHosts::none()).is_ok(), oracle::ipv6_public(ip), "{}", url);
        }

        /// No refusal repeats the user name or password of the URL it refused, whatever
        /// the reason (scheme, credentials, host, form, length).
        #[test]
        fn refusals_never_repeat_credentials(
            user in "[a-zA-Z0-9]{0,10}",
            password in "[a-zA-Z0-9%!$&'()*+,;=-]{0,16}",
            scheme in prop_oneof![Just("https"), Just("http"), Just("ftp"), Just("javascript"), Just("")],
            host in prop_oneof![
                Just("x.example.com".to_string()),
                Just("10.0.0.1".to_string()),
                Just("[::1]".to_string()),
                Just("intranet".to_string()),
                Just("exa mple.com".to_string()),
                Just("[::1".to_string()),
                "[a-z0-9. :\\[\\]-]{0,20}",
            ],
            rest in "[a-zA-Z0-9/?#=&%.-]{0,30}",
            pad in 0usize..2,
        ) {
            // Marked so that a repeat is a repeat, not a word the message has anyway.
            let (user, password) = (format!("usr{user}Q"), format!("pw{password}Z"));
            let mut url = format!("{scheme}://{user}:{password}@{host}/{rest}");
            if pad == 1 {
                url.push_str(&"a".repeat(MAX_URL_LEN));
            }
            for hosts in [PrivateHosts::none(), PrivateHosts::parse("127.0.0.1, localhost")] {
                if let Err(e) = super::check(&url, whatwg_parts, &hosts) {
                    let shown = e.to_string();
                    prop_assert!(!shown.contains(&user) && !shown.contains(&password), "{:?} -> {}", url, shown);
                    let in_params = check_params_urls(&serde_json::json!({"u": url}), &["u"], whatwg_parts, &hosts)
                        .expect_err("refused in params too")
                        .to_string();
                    prop_assert!(!in_params.contains(&user) && !in_params.contains(&password), "{}", in_params);
                    prop_assert!(shown.chars().count() <= 300, "a short message: {}", shown);
                }
            }
        }
    }

    proptest! {
        /// Whatever the text, the check answers (no panic) and never accepts a URL whose
        /// host is not public, unless that host was allowed.
        #[test]
        fn any_text_is_answered_and_only_public_hosts_pass(url in ".{0,80}", host in "[a-z0-9.:\\[\\]-]{0,30}") {
            for candidate in [url.clone(), format!("https://{host}/"), format!("http://{host}:1/{url}")] {
                if let Ok(href) = super::check(&candidate, whatwg_parts, &PrivateHosts::none()) {
                    let parts = whatwg_parts(&href).expect("an accepted URL parses");
                    prop_assert_eq!(parts.scheme.as_str(), "https");
                    prop_assert!(host_not_public(&parts.hostname).is_none(), "{} passed", href);
                    prop_assert!(parts.username.is_empty() && parts.password.is_empty());
                }
            }
        }

        /// An IPv4 address refused on its own is refused in every IPv6 form that reaches it.
        #[test]
        fn ipv4_in_ipv6_is_as_public_as_the_ipv4(v4 in any_ipv4()) {
            let mapped = v4.to_ipv6_mapped();
            let [a, b, c, d] = v4.octets();
            let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
            let six_to_four = Ipv6Addr::new(0x2002, u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]), 0, 0, 0, 0, 1);
            let v4_public = ipv4_not_public(v4).is_none();
            prop_assert_eq!(ipv6_not_public(mapped).is_none(), v4_public);
            prop_assert_eq!(ipv6_not_public(nat64).is_none(), v4_public);
            prop_assert!(ipv6_not_public(six_to_four).is_some());
        }

        /// Private ranges std classifies are always refused, whatever address in them.
        #[test]
        fn std_private_ranges_are_refused(v4 in any_ipv4(), v6 in any::<u128>().prop_map(Ipv6Addr::from)) {
            if v4.is_private() || v4.is_loopback() || v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast() {
                prop_assert!(ipv4_not_public(v4).is_some(), "{}", v4);
            }
            if v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local() || v6.is_unspecified() || v6.is_multicast() {
                prop_assert!(ipv6_not_public(v6).is_some(), "{}", v6);
            }
        }

        #[test]
        fn the_allowlist_never_panics_and_allows_only_what_it_lists(var in ".{0,100}", host in ".{0,40}") {
            let hosts = PrivateHosts::parse(&var);
            if hosts.allows(&host) {
                let listed = var.split([',', ' ', '\t', '\n']).any(|e| {
                    parse_ip(e.trim()).is_some_and(|ip| Some(ip) == parse_ip(&host))
                        || canonical_name(e.trim()).is_some_and(|n| Some(n) == canonical_name(&host))
                });
                prop_assert!(listed, "{:?} allowed by {:?}", host, var);
            }
        }
    }
}
