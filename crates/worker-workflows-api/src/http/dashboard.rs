//! The dashboard: a page that calls this API from the browser with the bearer token the
//! operator types in. Its files are in this crate's `assets/` folder (`assets/dashboard/`:
//! `index.html`, `app.js`, `app.css`; `assets/_headers`: its security headers), served by
//! Workers Static Assets, not by the Worker's code: `scripts/build.sh` copies the folder
//! of the `worker-workflows-api` it builds with (found with `cargo metadata`, so a path,
//! git or registry dependency all work) into `build/assets/`, which `wrangler.jsonc`'s
//! `assets.directory` names; the page is then at `/dashboard/`. Only the paths of the
//! folder are assets: every other request still reaches the Worker (and `run_worker_first`
//! lists the API's own paths, so even an assets folder with a catch-all
//! `not_found_handling` never answers for them).
//!
//! The tests here hold the files to the rules that make the page safe: one strict
//! [`CONTENT_SECURITY_POLICY`] (no inline script or style, nothing from another origin)
//! sent as a header and repeated in the page, no inline script or handler in the HTML,
//! no way in `app.js` to turn a string into markup or code.

/// The page's Content-Security-Policy (`assets/_headers`; the page's `<meta>` repeats it
/// but `frame-ancestors`, which only a header can carry).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page's files, as `(path under the assets folder, content)`.
pub const FILES: [(&str, &str); 4] = [
    ("_headers", include_str!("../../assets/_headers")),
    ("dashboard/index.html", include_str!("../../assets/dashboard/index.html")),
    ("dashboard/app.js", include_str!("../../assets/dashboard/app.js")),
    ("dashboard/app.css", include_str!("../../assets/dashboard/app.css")),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> &'static str {
        FILES.iter().find(|(p, _)| *p == path).map(|(_, c)| *c).unwrap()
    }

    #[test]
    fn the_headers_carry_the_policy_for_the_dashboard() {
        let headers = file("_headers");
        let rules: Vec<&str> = headers.lines().filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty()).collect();
        assert_eq!(rules.first().copied(), Some("/dashboard/*"), "{headers}");
        assert!(rules.contains(&format!("  Content-Security-Policy: {CONTENT_SECURITY_POLICY}").as_str()), "{headers}");
        for header in ["X-Content-Type-Options: nosniff", "Referrer-Policy: no-referrer", "X-Frame-Options: DENY"] {
            assert!(rules.contains(&format!("  {header}").as_str()), "{header}");
        }
    }

    #[test]
    fn the_page_repeats_the_policy_and_has_no_inline_code() {
        let html = file("dashboard/index.html");
        let meta_policy = CONTENT_SECURITY_POLICY.replace("; frame-ancestors 'none'", "");
        assert!(html.contains(&format!(r#"<meta http-equiv="Content-Security-Policy" content="{meta_policy}">"#)), "{html}");
        let lower = html.to_ascii_lowercase();
        assert_eq!(lower.matches("<script").count(), 1, "one script: app.js");
        assert!(lower.contains(r#"<script type="module" src="app.js"></script>"#));
        assert!(!lower.contains(" style="), "no inline style");
        for attribute in [" onclick", " onload", " onerror", " onsubmit", " oninput", " onchange", "javascript:"] {
            assert!(!lower.contains(attribute), "{attribute}");
        }
    }

    #[test]
    fn nothing_comes_from_another_origin() {
        for (path, content) in FILES {
            for scheme in ["http://", "https://", "//cdn", "@import"] {
                assert!(!content.contains(scheme), "{path} names {scheme}");
            }
        }
    }

    #[test]
    fn the_script_never_parses_strings_as_markup_or_code() {
        let js = file("dashboard/app.js");
        for sink in
            ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute(\"on", "srcdoc"]
        {
            assert!(!js.contains(sink), "app.js uses {sink}");
        }
        // The token stays in sessionStorage and the Authorization header: never logged,
        // never in a URL or a cookie.
        for leak in ["console.", "localStorage", "document.cookie", "?token", "&token"] {
            assert!(!js.contains(leak), "app.js uses {leak}");
        }
    }
}
