//! Which webhook callback URLs the API accepts.
//!
//! A callback URL makes the Worker send requests wherever a caller says, so it
//! is checked before it is stored: https only, no credentials in the URL, and a
//! host that is plainly public (no loopback, private, link-local or
//! intranet-only names), so the Worker cannot be pointed at internal services.
//! This is a check of the URL text only: a public name that resolves to a
//! private address is not caught here. Local development and tests, where the
//! receiver is `http://127.0.0.1:…`, pass `allow_insecure = true`.
//!
//! The URL is parsed by the runtime's own WHATWG `URL` (the parser `fetch` uses), handed
//! in as [`UrlParts`]: a second URL parser compiled into the Worker would cost about
//! 80 KiB of gzip upload, mostly IDNA tables. The host tests parse with the `url` crate,
//! which implements the same standard.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A URL as a WHATWG URL parser splits it. Hosts are canonical: domains lower-cased
/// and punycoded, IPv4 addresses in dotted decimal, IPv6 addresses in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    /// The whole URL, serialised.
    pub href: String,
    /// The scheme without its colon: "https".
    pub scheme: String,
    pub username: String,
    pub password: String,
    /// The host without the port; empty when there is none.
    pub hostname: String,
}

/// Longest callback URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// How much of an over-long URL is quoted in the error message.
const QUOTED_PREFIX_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackUrlError {
    #[error("callback URL {url:?} is not a valid URL: {reason}")]
    NotAUrl { url: String, reason: String },
    #[error("callback URL {url:?} uses scheme {scheme:?}; only {allowed} allowed")]
    SchemeNotAllowed { url: String, scheme: String, allowed: &'static str },
    #[error("callback URL {url:?} points at {host:?}, which is not a public host ({reason})")]
    HostNotPublic { url: String, host: String, reason: &'static str },
    /// `url` is shown with the user name and password removed.
    #[error("callback URL {url:?} must not contain a user name or password")]
    Credentials { url: String },
    /// `url` is the start of the URL only.
    #[error("callback URL {url:?}… is {len} bytes long; at most {max} allowed")]
    TooLong { url: String, len: usize, max: usize },
}

/// Parses (with `parse`, a WHATWG URL parser) and checks a callback URL, returning it
/// serialised. With `allow_insecure`, `http` and non-public hosts are accepted too;
/// credentials, other schemes and over-long URLs never are.
pub fn check(url: &str, parse: impl FnOnce(&str) -> Result<UrlParts, String>, allow_insecure: bool) -> Result<String, CallbackUrlError> {
    // Checked first so a huge input is neither parsed nor copied whole into the error.
    if url.len() > MAX_URL_LEN {
        return Err(CallbackUrlError::TooLong { url: prefix(url, QUOTED_PREFIX_LEN).to_string(), len: url.len(), max: MAX_URL_LEN });
    }
    let parsed = parse(url).map_err(|reason| CallbackUrlError::NotAUrl { url: url.to_string(), reason })?;

    let scheme_ok = match parsed.scheme.as_str() {
        "https" => true,
        "http" => allow_insecure,
        _ => false,
    };
    if !scheme_ok {
        return Err(CallbackUrlError::SchemeNotAllowed {
            url: parsed.href,
            scheme: parsed.scheme,
            allowed: if allow_insecure { "http and https are" } else { "https is" },
        });
    }

    if !parsed.username.is_empty() || !parsed.password.is_empty() {
        // Never echo the password back (it would land in logs and responses).
        return Err(CallbackUrlError::Credentials { url: without_credentials(&parsed.href) });
    }

    if !allow_insecure {
        if let Some(reason) = host_not_public(&parsed.hostname) {
            return Err(CallbackUrlError::HostNotPublic { url: parsed.href, host: parsed.hostname, reason });
        }
    }

    Ok(parsed.href)
}

/// Why a canonical WHATWG host is not public, if it is not.
fn host_not_public(hostname: &str) -> Option<&'static str> {
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

/// A serialised special URL without its user name and password: they sit between
/// `://` and the last `@` of the authority (the serialiser percent-encodes any other
/// `@`, `/`, `?` and `#` in them).
fn without_credentials(href: &str) -> String {
    let Some(start) = href.find("://").map(|i| i + 3) else {
        return href.to_string();
    };
    let authority_end = href[start..].find(['/', '?', '#']).map_or(href.len(), |i| start + i);
    match href[start..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &href[..start], &href[start + at + 1..]),
        None => href.to_string(),
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
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
    } else if name.ends_with(".internal") {
        Some("an .internal name")
    } else if !name.contains('.') {
        Some("a name without a dot, resolved only on a local network")
    } else {
        None
    }
}

fn ipv4_not_public(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let reason = if ip.is_unspecified() || a == 0 {
        "an unspecified address"
    } else if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_private() {
        "a private address"
    } else if ip.is_link_local() {
        "a link-local address"
    } else if a == 100 && (64..128).contains(&b) {
        "a carrier-grade NAT address"
    } else if ip.is_documentation() || (a == 198 && (b == 18 || b == 19)) || (a == 192 && b == 0 && c == 0) {
        "a reserved address"
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        "a multicast, broadcast or reserved address"
    } else {
        return None;
    };
    Some(reason)
}

fn ipv6_not_public(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    // Addresses that carry an IPv4 address are as public as that address:
    // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d, deprecated)
    // and NAT64 (64:ff9b::a.b.c.d).
    let embedded = ip.to_ipv4_mapped().or_else(|| {
        let [s0, s1, s2, s3, s4, s5, _, _] = segments;
        let compatible = [s0, s1, s2, s3, s4, s5] == [0; 6] && !ip.is_unspecified() && !ip.is_loopback();
        let nat64 = [s0, s1, s2, s3, s4, s5] == [0x64, 0xff9b, 0, 0, 0, 0];
        (compatible || nat64).then(|| {
            let [.., a, b, c, d] = ip.octets();
            Ipv4Addr::new(a, b, c, d)
        })
    });
    if let Some(v4) = embedded {
        return ipv4_not_public(v4);
    }
    let reason = if ip.is_unspecified() {
        "an unspecified address"
    } else if ip.is_loopback() {
        "a loopback address"
    } else if segments[0] & 0xfe00 == 0xfc00 {
        "a unique-local address"
    } else if segments[0] & 0xffc0 == 0xfe80 {
        "a link-local address"
    } else if segments[0] & 0xffc0 == 0xfec0 {
        "a site-local address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if segments[0] == 0x2001 && segments[1] == 0x0db8 {
        "a documentation address"
    } else {
        return None;
    };
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn check(url: &str, allow_insecure: bool) -> Result<String, CallbackUrlError> {
        super::check(url, whatwg_parts, allow_insecure)
    }

    #[test]
    fn credentials_are_cut_from_the_serialised_url() {
        assert_eq!(without_credentials("https://u:p@x.example.com/a@b?c=@#@"), "https://x.example.com/a@b?c=@#@");
        assert_eq!(without_credentials("https://u%40v:p%3A@x.example.com:8443/"), "https://x.example.com:8443/");
        assert_eq!(without_credentials("https://x.example.com/"), "https://x.example.com/");
        assert_eq!(without_credentials("no scheme"), "no scheme");
    }

    fn refused_reason(url: &str) -> &'static str {
        match check(url, false) {
            Err(CallbackUrlError::HostNotPublic { reason, .. }) => reason,
            other => panic!("{url}: expected HostNotPublic, got {other:?}"),
        }
    }

    #[test]
    fn public_https_is_accepted_in_both_modes() {
        for url in [
            "https://hooks.example.com/x",
            "https://hooks.example.com:8443/a/b?c=d#e",
            "https://93.184.216.34/hook",
            "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
            "https://xn--bcher-kva.example/",
        ] {
            for insecure in [false, true] {
                assert!(check(url, insecure).is_ok(), "{url} insecure={insecure}: {:?}", check(url, insecure));
            }
        }
        assert_eq!(check("https://hooks.example.com/x", false), Ok("https://hooks.example.com/x".to_string()));
    }

    #[test]
    fn http_only_when_insecure() {
        assert_eq!(
            check("http://hooks.example.com", false),
            Err(CallbackUrlError::SchemeNotAllowed { url: "http://hooks.example.com/".into(), scheme: "http".into(), allowed: "https is" })
        );
        assert!(check("http://hooks.example.com", true).is_ok());
        assert!(check("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(matches!(check("http://127.0.0.1:9000/hook", false), Err(CallbackUrlError::SchemeNotAllowed { .. })));
    }

    #[test]
    fn other_schemes_always_refused() {
        for url in ["ftp://x.example.com", "file:///etc/passwd", "ws://x.example.com", "javascript:alert(1)", "data:text/plain,hi"] {
            for insecure in [false, true] {
                assert!(
                    matches!(check(url, insecure), Err(CallbackUrlError::SchemeNotAllowed { .. })),
                    "{url} insecure={insecure}: {:?}",
                    check(url, insecure)
                );
            }
        }
        let err = check("ftp://x.example.com", true).expect_err("refused");
        assert!(err.to_string().contains("only http and https are allowed"), "{err}");
    }

    #[test]
    fn non_public_hosts_refused_unless_insecure() {
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
            "https://224.0.0.1/",
            "https://255.255.255.255/",
            "https://2130706433/",
            "https://0x7f.0.0.1/",
            "https://[::1]/",
            "https://[::]/",
            "https://[fe80::1]/",
            "https://[fc00::1]/",
            "https://[fd12:3456::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[::ffff:169.254.169.254]/",
            "https://[64:ff9b::10.0.0.1]/",
            "https://localhost/",
            "https://LOCALHOST./",
            "https://api.localhost/",
            "https://intranet/",
            "https://intranet./",
            "https://printer.local/",
            "https://metadata.google.internal/",
        ] {
            refused_reason(url);
            assert!(check(url, true).is_ok(), "{url} insecure: {:?}", check(url, true));
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
        assert_eq!(refused_reason("https://localhost/"), "localhost");
        assert_eq!(refused_reason("https://printer.local/"), "a .local (mDNS) name");
        let err = check("https://intranet/hook", false).expect_err("refused");
        assert_eq!(
            err,
            CallbackUrlError::HostNotPublic {
                url: "https://intranet/hook".into(),
                host: "intranet".into(),
                reason: "a name without a dot, resolved only on a local network"
            }
        );
        assert!(err.to_string().contains("https://intranet/hook"), "{err}");
    }

    #[test]
    fn public_addresses_next_to_private_ranges_pass() {
        for url in [
            "https://172.15.0.1/",
            "https://172.32.0.1/",
            "https://100.128.0.1/",
            "https://[::ffff:8.8.8.8]/",
            "https://[2001:4860::8888]/",
        ] {
            assert!(check(url, false).is_ok(), "{url}: {:?}", check(url, false));
        }
    }

    #[test]
    fn credentials_refused_without_echoing_them() {
        for url in ["https://u:p@x.example.com", "https://u@x.example.com/", "https://:p@x.example.com/"] {
            for insecure in [false, true] {
                assert_eq!(
                    check(url, insecure),
                    Err(CallbackUrlError::Credentials { url: "https://x.example.com/".into() }),
                    "{url} insecure={insecure}"
                );
            }
        }
        let shown = check("https://alice:hunter2@x.example.com/", false).expect_err("refused").to_string();
        assert!(!shown.contains("hunter2") && !shown.contains("alice"), "{shown}");
    }

    #[test]
    fn too_long_refused() {
        let base = "https://hooks.example.com/";
        let at_limit = format!("{base}{}", "a".repeat(MAX_URL_LEN - base.len()));
        assert!(check(&at_limit, false).is_ok());
        let over = format!("{at_limit}a");
        for insecure in [false, true] {
            match check(&over, insecure) {
                Err(CallbackUrlError::TooLong { url, len, max }) => {
                    assert!(over.starts_with(&url) && url.len() <= QUOTED_PREFIX_LEN);
                    assert_eq!((len, max), (MAX_URL_LEN + 1, MAX_URL_LEN));
                }
                other => panic!("expected TooLong, got {other:?}"),
            }
        }
        // The quoted prefix never splits a character.
        let wide = format!("https://hooks.example.com/{}", "é".repeat(MAX_URL_LEN));
        assert!(matches!(check(&wide, false), Err(CallbackUrlError::TooLong { .. })));
    }

    #[test]
    fn not_a_url() {
        for url in ["", "hooks.example.com/x", "https://", "https://exa mple.com/", "https://[::1/"] {
            for insecure in [false, true] {
                assert!(
                    matches!(check(url, insecure), Err(CallbackUrlError::NotAUrl { .. })),
                    "{url:?} insecure={insecure}: {:?}",
                    check(url, insecure)
                );
            }
        }
        let err = check("hooks.example.com/x", false).expect_err("refused");
        assert!(err.to_string().contains("hooks.example.com/x"), "{err}");
    }
}
