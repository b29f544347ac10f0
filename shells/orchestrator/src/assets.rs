//! The console page and its assets, embedded from `console/dist/` when the
//! `console` cargo feature is on (the `cropscode` binary turns it on; the ARM
//! builds measure what it costs). Without it, `GET /` says the build has none.

/// Headers on every answer of the endpoint on `port` (`console/API.md` § 3): the page may
/// load only its own scripts and styles and talk only to this origin (its WebSocket named
/// too: older browsers do not count `ws://` as `'self'`); nothing is cached.
pub(crate) fn security_headers(port: u16) -> String {
    format!(
        "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self' ws://127.0.0.1:{port} ws://localhost:{port}; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'\r\nX-Content-Type-Options: nosniff\r\n\
         Referrer-Policy: no-referrer\r\nCache-Control: no-store\r\n"
    )
}

/// An embedded file: its content type and bytes.
pub(crate) struct Asset {
    pub(crate) content_type: &'static str,
    pub(crate) bytes: &'static [u8],
}

/// Whether this build carries the page.
pub(crate) const EMBEDDED: bool = cfg!(feature = "console");

/// The file for a `GET` of `path` (`/` or `/assets/NAME`), if this build has it.
pub(crate) fn find(path: &str) -> Option<Asset> {
    const JS: &str = "text/javascript; charset=utf-8";
    const CSS: &str = "text/css; charset=utf-8";
    const HTML: &str = "text/html; charset=utf-8";
    let (content_type, name) = match path {
        "/" => (HTML, "index.html"),
        "/assets/app.js" => (JS, "app.js"),
        "/assets/xterm.js" => (JS, "xterm.js"),
        "/assets/addon-fit.js" => (JS, "addon-fit.js"),
        "/assets/style.css" => (CSS, "style.css"),
        "/assets/xterm.css" => (CSS, "xterm.css"),
        _ => return None,
    };
    bytes(name).map(|bytes| Asset { content_type, bytes })
}

#[cfg(feature = "console")]
fn bytes(name: &str) -> Option<&'static [u8]> {
    Some(match name {
        "index.html" => include_bytes!("../console/dist/index.html"),
        "app.js" => include_bytes!("../console/dist/app.js"),
        "xterm.js" => include_bytes!("../console/dist/xterm.js"),
        "addon-fit.js" => include_bytes!("../console/dist/addon-fit.js"),
        "style.css" => include_bytes!("../console/dist/style.css"),
        "xterm.css" => include_bytes!("../console/dist/xterm.css"),
        _ => return None,
    })
}

#[cfg(not(feature = "console"))]
fn bytes(_name: &str) -> Option<&'static [u8]> {
    None
}
