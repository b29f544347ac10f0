//! The orchestrator URL and the rule that keeps the token off plain-text links.
//!
//! A URL string from the configuration goes through [`validate_url`] once, at
//! startup (the CLI calls it to refuse a bad URL before doing anything else)
//! and again when a [`WsConnector`](crate::WsConnector) is built. What comes
//! out is a [`WsUrl`]: scheme, host and port already taken apart, and known to
//! be either `wss://` or `ws://` to a loopback host. Nothing here touches the
//! network, so an insecure URL is refused before any byte is sent.

use std::fmt;
use std::net::IpAddr;

use async_tungstenite::tungstenite::http::Uri;
use cropscode_core::TransportError;

/// A validated orchestrator URL: `wss://` anywhere, `ws://` only to loopback.
///
/// `Display` prints the URL as given (it never holds credentials: URLs with a
/// `user:password@` part are refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    uri: Uri,
    secure: bool,
    host: String,
    port: u16,
}

impl WsUrl {
    /// `true` for `wss://`.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// The host, without the brackets of an IPv6 literal.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's default (80 for `ws`, 443 for `wss`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL as an `http::Uri`, for the upgrade request.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// `true` when the host is `localhost`, in 127.0.0.0/8, or `::1`.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }
}

impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.uri, f)
    }
}

/// Checks an orchestrator URL without touching the network.
///
/// Accepts `wss://host[:port][/path]`, and `ws://` only when the host is
/// `localhost`, an address in 127.0.0.0/8 or `[::1]`; anything else is
/// [`TransportError::InsecureUrl`]. URLs carrying credentials
/// (`user:pass@host`) are refused too: the token travels in the
/// `Authorization` header, never in the URL. Error messages name the host,
/// never the whole URL.
///
/// ```
/// use cropscode_runtime::validate_url;
///
/// assert!(validate_url("wss://orchestrator.example.com/worker").is_ok());
/// assert!(validate_url("ws://127.0.0.1:8080/worker").is_ok());
/// assert!(validate_url("ws://orchestrator.example.com/worker").is_err());
/// ```
pub fn validate_url(url: &str) -> Result<WsUrl, TransportError> {
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|e| TransportError::InsecureUrl(format!("not a valid URL ({e}); expected wss://host[:port]/path")))?;
    let secure = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("wss") => true,
        Some("ws") => false,
        Some(other) => {
            return Err(TransportError::InsecureUrl(format!(
                "unsupported scheme `{other}`; expected wss:// (or ws:// to a loopback host)"
            )));
        }
        None => {
            return Err(TransportError::InsecureUrl("missing scheme; expected wss://host[:port]/path".into()));
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| TransportError::InsecureUrl("missing host; expected wss://host[:port]/path".into()))?;
    if authority.as_str().contains('@') {
        return Err(TransportError::InsecureUrl(
            "credentials in the URL are not allowed; the worker token is sent in the Authorization header".into(),
        ));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
    if host.is_empty() {
        return Err(TransportError::InsecureUrl("missing host; expected wss://host[:port]/path".into()));
    }
    let port = authority.port_u16().unwrap_or(if secure { 443 } else { 80 });
    if !secure && !is_loopback_host(&host) {
        return Err(TransportError::InsecureUrl(format!(
            "ws:// (unencrypted) is allowed only to loopback hosts, not `{host}`; use wss://"
        )));
    }
    Ok(WsUrl { uri, secure, host, port })
}

/// `localhost`, 127.0.0.0/8 or `::1`. Other names are not trusted to stay
/// on the machine, whatever they resolve to today.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => v6.is_loopback(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insecure(url: &str) -> bool {
        matches!(validate_url(url), Err(TransportError::InsecureUrl(_)))
    }

    #[test]
    fn wss_is_accepted_anywhere() {
        let url = validate_url("wss://orchestrator.example.com/worker").unwrap();
        assert!(url.is_secure());
        assert_eq!((url.host(), url.port()), ("orchestrator.example.com", 443));
        let url = validate_url("WSS://10.1.2.3:8443/w").unwrap();
        assert_eq!((url.host(), url.port()), ("10.1.2.3", 8443));
    }

    #[test]
    fn ws_only_to_loopback() {
        for ok in [
            "ws://localhost/w",
            "ws://LOCALHOST:9000/w",
            "ws://localhost.:9000",
            "ws://127.0.0.1:8080/w",
            "ws://127.200.3.4/w",
            "ws://[::1]:8080/w",
        ] {
            let url = validate_url(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert!(!url.is_secure() && url.is_loopback(), "{ok}");
        }
        assert_eq!(validate_url("ws://[::1]:8080/w").unwrap().host(), "::1");
        assert_eq!(validate_url("ws://localhost/w").unwrap().port(), 80);
        for bad in [
            "ws://example.com/w",
            "ws://10.0.0.1/w",
            "ws://192.168.1.2:80/w",
            "ws://[::2]/w",
            "ws://[::ffff:10.0.0.1]/w",
            "ws://localhost.example.com/w",
            "ws://128.0.0.1/w",
            "ws://0.0.0.0/w",
        ] {
            assert!(insecure(bad), "{bad} must be refused");
        }
    }

    #[test]
    fn other_shapes_are_refused() {
        for bad in ["http://localhost/w", "https://x/w", "localhost:8080", "", "wss://", "ws:///path"] {
            assert!(insecure(bad), "{bad:?} must be refused");
        }
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_echoing_them() {
        let Err(TransportError::InsecureUrl(message)) = validate_url("wss://user:s3cret@example.com/w") else {
            panic!("credentials must be refused");
        };
        assert!(!message.contains("s3cret"), "{message}");
    }
}
