//! The page's files, compiled into the binary so the dashboard works with no network: the page,
//! its script and style, and plotly.js as the `plotly` crate ships it (`plotly_embed_js`).

use axum::extract::Path;
use axum::response::{Html, IntoResponse, Response};
use http::{header, HeaderName, StatusCode};
use std::sync::LazyLock;

pub const LOGIN_HTML: &str = include_str!("assets/login.html");
const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// plotly.js alone: the first script of the offline sources the `plotly` crate embeds (the second
/// is MathJax, which the dashboard does not use). plotly.js holds no `</script>`, so the first
/// closing tag ends it.
static PLOTLY_JS: LazyLock<String> = LazyLock::new(|| {
    let sources = plotly::Plot::offline_js_sources();
    let open = "<script type=\"text/javascript\">";
    let start = sources.find(open).map_or(0, |i| i + open.len());
    let end = sources[start..].find("</script>").map_or(sources.len(), |i| start + i);
    sources[start..end].to_string()
});

/// What every page is sent with: scripts only from this server (none inline), no framing, no
/// sniffing, no referrer. plotly.js sets styles on elements, hence `style-src 'unsafe-inline'`.
pub fn headers() -> [(HeaderName, &'static str); 4] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
             connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ]
}

pub async fn index() -> Response {
    (headers(), [(header::CACHE_CONTROL, "no-cache")], Html(INDEX_HTML)).into_response()
}

pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind): (&str, &str) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "plotly.js" => (PLOTLY_JS.as_str(), "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    };
    // The files change only with the binary; a page revalidates them once per load.
    (headers(), [(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// `text` with the five characters that mean something in HTML escaped, for the few strings the
/// server puts into markup itself (the login page's message). The page's script writes every
/// other string as text, never as markup.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plotly_js_is_whole_and_alone() {
        assert!(PLOTLY_JS.trim_start().starts_with("/**\n* plotly.js v"), "{:.80}", *PLOTLY_JS);
        assert!(PLOTLY_JS.len() > 1_000_000, "plotly.js is several megabytes: {}", PLOTLY_JS.len());
        assert!(!PLOTLY_JS.contains("MathJax ="), "MathJax is left out");
    }

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
