//! `wss://`: whom the client trusts, and what it does when a certificate does
//! not verify.

use std::sync::Arc;

use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_tungstenite::{Connector, tungstenite};

/// The certificates of a private CA, read from the PEM file that `--ca` names.
#[derive(Clone, Debug)]
pub struct Ca(Vec<CertificateDer<'static>>);

/// Reads `--ca PATH` (for clap): a PEM file with at least one certificate.
pub fn ca_file(path: &str) -> Result<Ca, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM: {e}"))?;
    if certs.is_empty() {
        Err("no certificate in it".into())
    } else {
        Ok(Ca(certs))
    }
}

// ANCHOR: connector
/// The TLS settings for `wss://` URLs: the system's roots, and `ca` besides.
///
/// The roots come from rustls-native-certs, which reads the system's store
/// (`/etc/ssl/certs` on Debian, the keychain on macOS, the Windows store): the
/// roots the machine's administrator keeps up to date, with any company CA they
/// added. webpki-roots would compile Mozilla's list into the binary instead:
/// the same everywhere, but frozen at build time and blind to local CAs.
pub fn connector(ca: Option<&Ca>) -> Connector {
    let mut roots = RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for e in &system.errors {
        tracing::warn!("reading the system's root certificates: {e}");
    }
    let (added, _) = roots.add_parsable_certificates(system.certs);
    tracing::debug!("{added} root certificates from the system");
    if let Some(Ca(certs)) = ca {
        let (added, ignored) = roots.add_parsable_certificates(certs.clone());
        tracing::debug!("{added} certificates from --ca ({ignored} ignored)");
    }
    if roots.is_empty() {
        tracing::warn!("no root certificate to check servers with: pass --ca");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Connector::Rustls(Arc::new(config))
}
// ANCHOR_END: connector

// ANCHOR: refusal
/// Why the handshake failed, when trying again cannot help: the server's
/// certificate does not verify (unknown issuer, wrong name, expired), or the
/// URL's host cannot be checked against one. Never a reason to fall back to
/// anything less safe.
pub fn refusal(error: &tungstenite::Error) -> Option<String> {
    use tungstenite::error::TlsError;
    let tls = match error {
        tungstenite::Error::Tls(TlsError::InvalidDnsName) => {
            return Some("not a host name a certificate can name".into());
        }
        tungstenite::Error::Io(io) => io.get_ref()?.downcast_ref()?,
        _ => return None,
    };
    match tls {
        rustls::Error::InvalidCertificate(why) => Some(format!(
            "its certificate does not verify: {why} \
             (a private CA is trusted with --ca PATH)"
        )),
        _ => None,
    }
}
// ANCHOR_END: refusal
