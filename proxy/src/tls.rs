//! wss: rustls server configuration with a certificate that can be swapped at run time.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::crypto::ring::{default_provider, sign::any_supported_type};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::TlsConfig;

/// Failure to build the TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate file unreadable or not PEM.
    #[error("cannot load certificate {path}: {reason}")]
    Certificate {
        /// File.
        path: String,
        /// Why.
        reason: String,
    },
    /// Key file unreadable, not PEM, or an unsupported key type.
    #[error("cannot load private key {path}: {reason}")]
    Key {
        /// File.
        path: String,
        /// Why (never the key material).
        reason: String,
    },
    /// Self-signed generation failed.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    /// rustls refused the configuration.
    #[error("tls configuration rejected: {0}")]
    Config(String),
}

impl TlsError {
    /// Stable snake_case name.
    pub fn kind(&self) -> &'static str {
        match self {
            TlsError::Certificate { .. } => "tls_certificate",
            TlsError::Key { .. } => "tls_key",
            TlsError::Generate(_) => "tls_generate",
            TlsError::Config(_) => "tls_config",
        }
    }
}

/// The current certificate; swapped by [`TlsState::reload`] without touching open sessions.
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertResolver")
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

/// The wss acceptor state.
#[derive(Clone)]
pub struct TlsState {
    resolver: Arc<CertResolver>,
    /// The acceptor built on the resolver.
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// PEM of the certificate in use when self-signed (for demos to trust it).
    pub self_signed_pem: Option<String>,
}

fn load_key(
    config: &TlsConfig,
    listen: IpAddr,
) -> Result<(Arc<CertifiedKey>, Option<String>), TlsError> {
    if config.self_signed {
        let mut names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        if !listen.is_unspecified() {
            names.push(listen.to_string());
        }
        names.dedup();
        let ck = rcgen::generate_simple_self_signed(names)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let pem = ck.cert.pem();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
        let signer = any_supported_type(&key).map_err(|e| TlsError::Generate(e.to_string()))?;
        return Ok((
            Arc::new(CertifiedKey::new(vec![ck.cert.der().clone()], signer)),
            Some(pem),
        ));
    }
    let (Some(cert_path), Some(key_path)) = (&config.cert_file, &config.key_file) else {
        return Err(TlsError::Config(
            "cert_file and key_file are required".into(),
        ));
    };
    let certs = load_certs(cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::Key {
        path: key_path.display().to_string(),
        reason: pem_reason(&e),
    })?;
    let signer = any_supported_type(&key).map_err(|_| TlsError::Key {
        path: key_path.display().to_string(),
        reason: "unsupported key type".into(),
    })?;
    let ck = CertifiedKey::new(certs, signer);
    ck.keys_match().map_err(|_| TlsError::Key {
        path: key_path.display().to_string(),
        reason: "key does not match the certificate".into(),
    })?;
    Ok((Arc::new(ck), None))
}

fn pem_reason(e: &rustls::pki_types::pem::Error) -> String {
    // Only the category: pem errors never carry key material, but keep them short.
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.kind().to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no pem item found".into(),
        _ => "invalid pem".into(),
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Certificate {
        path: path.display().to_string(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(pem_reason(&e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(pem_reason(&e)))?;
    if certs.is_empty() {
        return Err(err("no certificate found".into()));
    }
    Ok(certs)
}

impl fmt::Debug for TlsState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsState").finish_non_exhaustive()
    }
}

impl TlsState {
    /// Build from `[tls]`.
    pub fn new(config: &TlsConfig, listen: IpAddr) -> Result<TlsState, TlsError> {
        let (ck, self_signed_pem) = load_key(config, listen)?;
        let resolver = Arc::new(CertResolver {
            current: RwLock::new(ck),
        });
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsState {
            resolver,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            self_signed_pem,
        })
    }

    /// Load the certificate again (SIGHUP). New handshakes use it; open sessions are untouched.
    pub fn reload(&self, config: &TlsConfig, listen: IpAddr) -> Result<(), TlsError> {
        let ck = Self::prepare(config, listen)?;
        self.install(ck);
        Ok(())
    }

    /// Load and check a certificate without using it yet (a reload builds everything first).
    pub fn prepare(config: &TlsConfig, listen: IpAddr) -> Result<Arc<CertifiedKey>, TlsError> {
        Ok(load_key(config, listen)?.0)
    }

    /// Use a prepared certificate for new handshakes.
    pub fn install(&self, ck: Arc<CertifiedKey>) {
        *self
            .resolver
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner()) = ck;
    }

    /// DER of the leaf certificate in use.
    pub fn current_leaf(&self) -> Option<Vec<u8>> {
        let g = self
            .resolver
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner());
        g.cert.first().map(|c| c.as_ref().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_and_files() {
        let s = TlsState::new(
            &TlsConfig {
                self_signed: true,
                ..TlsConfig::default()
            },
            "127.0.0.1".parse().unwrap(),
        )
        .unwrap();
        let pem = s.self_signed_pem.clone().unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let first = s.current_leaf().unwrap();
        // Reload from files swaps the certificate.
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["example.test".to_string()]).unwrap();
        std::fs::write(dir.path().join("c.pem"), ck.cert.pem()).unwrap();
        std::fs::write(dir.path().join("k.pem"), ck.signing_key.serialize_pem()).unwrap();
        let files = TlsConfig {
            cert_file: Some(dir.path().join("c.pem")),
            key_file: Some(dir.path().join("k.pem")),
            self_signed: false,
        };
        s.reload(&files, "127.0.0.1".parse().unwrap()).unwrap();
        assert_ne!(s.current_leaf().unwrap(), first);
        assert_eq!(s.current_leaf().unwrap(), ck.cert.der().to_vec());
        // A key that does not match, and a missing file, are refused (and the old one stays).
        let other = rcgen::generate_simple_self_signed(vec!["x".to_string()]).unwrap();
        std::fs::write(dir.path().join("k.pem"), other.signing_key.serialize_pem()).unwrap();
        assert_eq!(
            s.reload(&files, "127.0.0.1".parse().unwrap())
                .unwrap_err()
                .kind(),
            "tls_key"
        );
        std::fs::remove_file(dir.path().join("c.pem")).unwrap();
        assert_eq!(
            s.reload(&files, "127.0.0.1".parse().unwrap())
                .unwrap_err()
                .kind(),
            "tls_certificate"
        );
        assert_eq!(s.current_leaf().unwrap(), ck.cert.der().to_vec());
    }
}
