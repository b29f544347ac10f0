//! Trust roots and the rustls client configuration for `wss://`.
//!
//! Roots are the Mozilla set from `webpki-roots` (ARM root filesystems often
//! have no CA bundle at all) plus, for a private orchestrator, the
//! certificates of one PEM file named in the configuration
//! (`ORCHESTRATOR_CA_FILE`). The configuration is built once per connector and
//! shared by every connection it opens.
//!
//! Crypto comes from rustls' `ring` provider, passed explicitly: should a
//! second provider ever be compiled in, `ClientConfig::builder()` would panic
//! on the ambiguity, `builder_with_provider` cannot.

use std::path::Path;
use std::sync::Arc;

use cropscode_core::TransportError;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Builds the client configuration: webpki roots, plus the CA file if given.
pub(crate) fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TransportError> {
    let mut roots: RootCertStore = webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect();
    if let Some(path) = ca_file {
        add_ca_file(&mut roots, path)?;
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Tls(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The upgrade is HTTP/1.1; say so, so that a front end that speaks h2 does not pick it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Adds every certificate of a PEM file as a trust anchor. A file that cannot
/// be read, is not PEM, holds no certificate or holds an unusable one is an
/// error naming the path.
fn add_ca_file(roots: &mut RootCertStore, path: &Path) -> Result<(), TransportError> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TransportError::Tls(format!("cannot read CA file {shown}: {}", pem_error(&e))))?;
    let mut added = 0usize;
    for (index, cert) in certs.enumerate() {
        let cert =
            cert.map_err(|e| TransportError::Tls(format!("CA file {shown} is not valid PEM: {}", pem_error(&e))))?;
        roots.add(cert).map_err(|e| {
            TransportError::Tls(format!("CA file {shown}: certificate #{} is not a usable CA: {e}", index + 1))
        })?;
        added += 1;
    }
    if added == 0 {
        return Err(TransportError::Tls(format!(
            "CA file {shown} holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----` blocks)"
        )));
    }
    tracing::debug!(path = %shown, certificates = added, "loaded extra CA certificates");
    Ok(())
}

fn pem_error(error: &rustls_pki_types::pem::Error) -> String {
    match error {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cropscode-runtime-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn tls_message(result: Result<Arc<ClientConfig>, TransportError>) -> String {
        match result {
            Err(TransportError::Tls(message)) => message,
            Err(other) => panic!("expected a TLS error, got {other:?}"),
            Ok(_) => panic!("expected a TLS error, got a config"),
        }
    }

    #[test]
    fn webpki_roots_alone_build() {
        assert!(client_config(None).is_ok());
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let message = tls_message(client_config(Some(Path::new("/nonexistent/cropscode-ca.pem"))));
        assert!(message.contains("/nonexistent/cropscode-ca.pem"), "{message}");
    }

    #[test]
    fn a_file_without_certificates_names_the_path() {
        let path = temp_file("empty.pem", b"not a certificate\n");
        let message = tls_message(client_config(Some(&path)));
        assert!(message.contains(&path.display().to_string()) && message.contains("no certificate"), "{message}");
    }

    #[test]
    fn a_broken_pem_block_names_the_path() {
        let path = temp_file("broken.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n");
        let message = tls_message(client_config(Some(&path)));
        assert!(message.contains(&path.display().to_string()), "{message}");
    }

    #[test]
    fn garbage_inside_a_pem_block_is_refused() {
        let path = temp_file("garbage.pem", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let message = tls_message(client_config(Some(&path)));
        assert!(message.contains(&path.display().to_string()), "{message}");
    }
}
