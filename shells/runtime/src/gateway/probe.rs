//! One probe of a gateway: resolve, connect, for `https://` the TLS
//! handshake, for `http(s)://` one GET and its status line; then the
//! reading. The caller bounds the time ([`super::run_loop`]); this module
//! bounds the bytes (a status line of at most [`MAX_STATUS_LINE`]).
//!
//! Every detail is built here from figures and error kinds, never from the
//! URL, so no host, path, query or userinfo can reach a heartbeat.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_net::TcpStream;
use cropscode_core::protocol::GatewayStatus;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use futures_rustls::TlsConnector;
use rustls::{CertificateError, ClientConfig};
use rustls_pki_types::ServerName;

use super::{GatewayReading, GatewayScheme, GatewayUrl};

/// The most read while looking for the end of the status line.
const MAX_STATUS_LINE: usize = 1024;

/// Probes `url` once; see the [module docs](self).
pub(super) async fn probe(
    url: &GatewayUrl,
    tls: &Arc<ClientConfig>,
    user_agent: &str,
    slow: Duration,
) -> GatewayReading {
    let started = Instant::now();
    match attempt(url, tls, user_agent).await {
        Ok(None) => connected(started.elapsed(), slow),
        Ok(Some(status)) => http_status(status, started.elapsed(), slow),
        Err(reading) => reading,
    }
}

/// `None` for a TCP connect, the HTTP status otherwise; `Err` is the failure's reading.
async fn attempt(url: &GatewayUrl, tls: &Arc<ClientConfig>, user_agent: &str) -> Result<Option<u16>, GatewayReading> {
    let tcp = connect(url.host(), url.port()).await?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.target,
        url.host_header()
    );
    match url.scheme() {
        GatewayScheme::Tcp => Ok(None),
        GatewayScheme::Http => exchange(tcp, &request).await.map(Some),
        GatewayScheme::Https => {
            let name = ServerName::try_from(url.host().to_owned()).map_err(|_| {
                GatewayReading::new(GatewayStatus::TlsFailed, "TLS: the host is not a valid server name")
            })?;
            let stream = TlsConnector::from(tls.clone()).connect(name, tcp).await.map_err(|e| tls_failure(&e))?;
            exchange(stream, &request).await.map(Some)
        }
    }
}

/// Resolves and connects to the first address that answers.
async fn connect(host: &str, port: u16) -> Result<TcpStream, GatewayReading> {
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => async_net::resolve((host, port)).await.map_err(|e| {
            let detail = e.to_string();
            let detail = detail.strip_prefix("failed to lookup address information: ").unwrap_or(&detail);
            GatewayReading::new(GatewayStatus::Unreachable, format!("DNS: {detail}"))
        })?,
    };
    let mut last = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(tcp) => return Ok(tcp),
            Err(error) => last = Some(connect_failure(&error)),
        }
    }
    Err(last.unwrap_or_else(|| GatewayReading::new(GatewayStatus::Unreachable, "DNS: no address for the host")))
}

/// Sends the request and reads the status code of the answer.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &str) -> Result<u16, GatewayReading> {
    stream.write_all(request.as_bytes()).await.map_err(|e| io_failure(&e))?;
    stream.flush().await.map_err(|e| io_failure(&e))?;
    let mut line = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    loop {
        if let Some(end) = line.iter().position(|&b| b == b'\n') {
            line.truncate(end);
            break;
        }
        if line.len() >= MAX_STATUS_LINE {
            return Err(not_http());
        }
        let n =
            stream.read(&mut buf).await.map_err(|e| match e.get_ref().is_some_and(|i| i.is::<rustls::Error>()) {
                true => tls_failure(&e),
                false => io_failure(&e),
            })?;
        if n == 0 {
            return match line.is_empty() {
                true => Err(GatewayReading::new(GatewayStatus::Unreachable, "closed before answering")),
                false => Err(not_http()),
            };
        }
        line.extend_from_slice(&buf[..n]);
    }
    status_code(&line).ok_or_else(not_http)
}

/// `HTTP/1.x NNN …` → `NNN`.
pub(super) fn status_code(line: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    let code = parts.next()?;
    if !version.starts_with("HTTP/") || code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok()
}

fn not_http() -> GatewayReading {
    GatewayReading::new(GatewayStatus::Degraded, "not an HTTP response")
}

/// The reading of an HTTP answer with `status` after `elapsed`.
pub(super) fn http_status(status: u16, elapsed: Duration, slow: Duration) -> GatewayReading {
    let ms = elapsed.as_millis();
    let gateway_status = match status {
        401 | 403 | 407 => GatewayStatus::AuthFailed,
        200..=399 if elapsed <= slow => GatewayStatus::Ok,
        _ => GatewayStatus::Degraded,
    };
    let slow_note = if (200..=399).contains(&status) && elapsed > slow { " (slow)" } else { "" };
    GatewayReading::new(gateway_status, format!("HTTP {status} in {ms} ms{slow_note}"))
}

/// The reading of a TCP connect after `elapsed`.
pub(super) fn connected(elapsed: Duration, slow: Duration) -> GatewayReading {
    let ms = elapsed.as_millis();
    match elapsed <= slow {
        true => GatewayReading::new(GatewayStatus::Ok, format!("connected in {ms} ms")),
        false => GatewayReading::new(GatewayStatus::Degraded, format!("connected in {ms} ms (slow)")),
    }
}

pub(super) fn connect_failure(error: &io::Error) -> GatewayReading {
    let detail = match error.kind() {
        io::ErrorKind::ConnectionRefused => "connect refused".to_owned(),
        io::ErrorKind::HostUnreachable => "host unreachable".to_owned(),
        io::ErrorKind::NetworkUnreachable => "network unreachable".to_owned(),
        io::ErrorKind::TimedOut => "connect timed out".to_owned(),
        kind => format!("connect failed: {kind}"),
    };
    GatewayReading::new(GatewayStatus::Unreachable, detail)
}

fn io_failure(error: &io::Error) -> GatewayReading {
    let detail = match error.kind() {
        io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof => "closed before answering".to_owned(),
        kind => format!("I/O error: {kind}"),
    };
    GatewayReading::new(GatewayStatus::Unreachable, detail)
}

/// futures-rustls reports TLS failures as `io::Error`s wrapping a `rustls::Error`.
pub(super) fn tls_failure(error: &io::Error) -> GatewayReading {
    let Some(tls) = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) else {
        // The peer went away during the handshake: nothing answered TLS.
        return match error.kind() {
            io::ErrorKind::UnexpectedEof => {
                GatewayReading::new(GatewayStatus::TlsFailed, "TLS: closed during handshake")
            }
            _ => io_failure(error),
        };
    };
    let detail = match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => "TLS: certificate not trusted".to_owned(),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "TLS: certificate expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "TLS: certificate not valid yet".to_owned()
            }
            // The Context variant names the host: never echoed.
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "TLS: certificate not valid for the host".to_owned()
            }
            CertificateError::Revoked => "TLS: certificate revoked".to_owned(),
            CertificateError::BadSignature | CertificateError::BadEncoding => "TLS: bad certificate".to_owned(),
            _ => "TLS: certificate refused".to_owned(),
        },
        rustls::Error::AlertReceived(alert) => format!("TLS: the gateway sent alert {alert:?}"),
        rustls::Error::InvalidMessage(_) => "TLS: not a TLS server".to_owned(),
        rustls::Error::PeerIncompatible(_) => "TLS: no protocol or cipher in common".to_owned(),
        _ => "TLS: handshake failed".to_owned(),
    };
    GatewayReading::new(GatewayStatus::TlsFailed, detail)
}
