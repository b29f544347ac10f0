//! Server-side TLS for `wss://`: a PEM identity turned into a rustls acceptor
//! with the `ring` provider (never the process default, so the build cannot
//! trip over two providers being enabled).

use std::io;
use std::sync::Arc;

use futures_rustls::TlsAcceptor;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsIdentity;

pub(crate) fn acceptor(identity: &TlsIdentity) -> io::Result<TlsAcceptor> {
    let certs = CertificateDer::pem_slice_iter(identity.cert_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("cannot read the certificate chain PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid("the certificate chain PEM holds no certificate".into()));
    }
    // The key's own parse error is not shown: it could quote key material.
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
        .map_err(|_| invalid("cannot read the private key PEM (PKCS#8, PKCS#1 or SEC1 expected)".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid(format!("the certificate and key do not make a usable identity: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
