//! TLS client configuration for databases and http upstreams: rustls with the workspace's one
//! crypto provider (ring), roots from a PEM file named in the datasets file, optional client
//! certificate for mTLS. No system or bundled roots: a department names the CA it trusts.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::datasets::TlsFiles;

/// Build a client configuration; the error names the file and says what to do.
pub(crate) fn client_config(files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = files.ca_file.display();
    let certs = CertificateDer::pem_file_iter(&files.ca_file).map_err(|e| {
        format!("cannot read ca_file {ca}: {e} (check the path; it must hold PEM certificates)")
    })?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("ca_file {ca} is not valid PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("ca_file {ca} holds a certificate rustls rejects: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "ca_file {ca} holds no certificates (put the CA's PEM certificate in it)"
        ));
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup failed: {e}"))?
    .with_root_certificates(roots);
    let config = match &files.client_identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    format!(
                        "cannot read client_cert {}: {e} (it must hold PEM certificates)",
                        cert.display()
                    )
                })?;
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                format!(
                    "cannot read client_key {}: {e} (it must hold a PEM private key)",
                    key.display()
                )
            })?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                format!("client_cert and client_key do not form a usable identity: {e}")
            })?
        }
    };
    Ok(Arc::new(config))
}
