//! How an [`Orchestrator`](crate::Orchestrator) is set up and how it treats
//! connections: plain data, read by the other modules, importing none of them.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

/// How to run an [`Orchestrator`](crate::Orchestrator).
#[derive(Clone)]
pub struct OrchestratorConfig {
    /// Where the WebSocket listener binds; must be a loopback address. Port 0 picks a free port.
    pub ws_addr: SocketAddr,
    /// Where the HTTP JSON endpoint binds, if at all; must be a loopback address.
    pub http_addr: Option<SocketAddr>,
    /// Serve `wss://` with this identity instead of `ws://`.
    pub tls: Option<TlsIdentity>,
    /// Bearer tokens accepted on the upgrade request. An empty list accepts nobody.
    pub tokens: Vec<String>,
    /// The gateway named in every `worker.registered` (`gateway.url`), if any.
    pub gateway_url: Option<String>,
    /// The secret of the HTTP endpoint and the console (`Authorization: Bearer`, the
    /// `key.` WebSocket subprotocol); `None` makes a fresh one (32 random bytes, hex)
    /// at start, which [`Orchestrator::http_secret`](crate::Orchestrator::http_secret) tells.
    pub http_secret: Option<String>,
    /// Serve the test hooks of the HTTP endpoint (`POST /test/drop-worker-connections`).
    /// `cropscode dev` and the tests turn them on; off by default.
    pub test_hooks: bool,
}

impl OrchestratorConfig {
    /// Plain `ws://` on `127.0.0.1` with a free port, no HTTP endpoint, accepting one token.
    pub fn with_token(token: impl Into<String>) -> Self {
        OrchestratorConfig { tokens: vec![token.into()], ..OrchestratorConfig::default() }
    }
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        OrchestratorConfig {
            ws_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            http_addr: None,
            tls: None,
            tokens: Vec::new(),
            gateway_url: None,
            http_secret: None,
            test_hooks: false,
        }
    }
}

impl fmt::Debug for OrchestratorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrchestratorConfig")
            .field("ws_addr", &self.ws_addr)
            .field("http_addr", &self.http_addr)
            .field("tls", &self.tls)
            .field("tokens", &format_args!("[{} × ***]", self.tokens.len()))
            .field("gateway_url", &self.gateway_url.as_ref().map(|_| "…"))
            .field("http_secret", &self.http_secret.as_ref().map(|_| "***"))
            .field("test_hooks", &self.test_hooks)
            .finish()
    }
}

/// A server certificate chain and its private key, both PEM.
#[derive(Clone)]
pub struct TlsIdentity {
    /// The certificate chain, leaf first (PEM, one or more `CERTIFICATE` blocks).
    pub cert_chain_pem: String,
    /// The leaf's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity").field("cert_chain_pem", &self.cert_chain_pem).field("key_pem", &"***").finish()
    }
}

/// How the server treats connections; switch at any time with
/// [`Orchestrator::set_behavior`](crate::Orchestrator::set_behavior).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Behavior {
    /// Speak the protocol.
    #[default]
    Normal,
    /// Complete each new upgrade (token permitting), then close the connection at once.
    AcceptAndDrop,
    /// Keep every socket open but stop reading and answering: no frames, no pongs, no
    /// acknowledgements. Frames sent meanwhile are silently dropped. Applies to live
    /// connections too; switching back to `Normal` resumes them.
    HalfOpen,
    /// Answer every upgrade with HTTP 401.
    RejectAll,
}

/// 32 random bytes from the OS, as 64 hex characters: the HTTP endpoint's per-run secret.
pub(crate) fn random_secret() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    os_random(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(unix)]
fn os_random(bytes: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(bytes)
}

/// Without `/dev/urandom` (Windows): std's hasher keys are seeded from the OS's random
/// source (`ProcessPrng`), one fresh `RandomState` per 8 bytes.
#[cfg(not(unix))]
fn os_random(bytes: &mut [u8]) -> std::io::Result<()> {
    use std::hash::{BuildHasher, Hasher};
    for chunk in bytes.chunks_mut(8) {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0);
        let word = hasher.finish().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    Ok(())
}

/// Refuses anything but a loopback address: this orchestrator has no business on a network.
pub(crate) fn require_loopback(addr: SocketAddr, what: &str) -> std::io::Result<()> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("the local orchestrator binds loopback addresses only; {what} {addr} is not one"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let mut config = OrchestratorConfig::with_token("hunter2");
        config.http_secret = Some("swordfish".into());
        config.tls = Some(TlsIdentity { cert_chain_pem: "CERT".into(), key_pem: "PRIVATE".into() });
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("PRIVATE") && !shown.contains("swordfish"), "{shown}");
    }

    #[test]
    fn secrets_are_long_and_fresh() {
        let (a, b) = (random_secret().unwrap(), random_secret().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn refuses_non_loopback() {
        assert!(require_loopback("127.0.0.1:1".parse().unwrap(), "ws_addr").is_ok());
        assert!(require_loopback("[::1]:1".parse().unwrap(), "ws_addr").is_ok());
        assert!(require_loopback("0.0.0.0:1".parse().unwrap(), "ws_addr").is_err());
        assert!(require_loopback("192.168.1.2:1".parse().unwrap(), "ws_addr").is_err());
    }
}
