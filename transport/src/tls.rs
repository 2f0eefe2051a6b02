//! The TLS engine of an IOService connection: OpenSSL over an in-memory transport.
//!
//! The service starts TLS in-band after the plaintext handshake and mixes TLS records with
//! plaintext `0xFF` records on the same socket, so the engine never touches the socket: the
//! record layer hands it whole TLS records ([`TlsEngine::feed`]) and sends what it produces
//! ([`TlsEngine::take_outgoing`]) raw.
//!
//! Setup follows `libprlcommon:Libraries/IOService/src/IOCommunication/Socket/SslHelper.cpp`
//! (`InitSSLContext`, `postHandshakeCheck`):
//! - cipher list `ADH:!eNULL:@STRENGTH:@SECLEVEL=0` (anonymous Diffie-Hellman, no
//!   certificates), or `RSA:ADH:!eNULL:@STRENGTH:@SECLEVEL=0` when the side has credentials;
//! - TLS 1.2 at most (TLS 1.3 and ECDH key exchange fail the SDK's post-handshake check);
//! - the server uses the fixed RFC 7919 `ffdhe2048` group and the session id context
//!   `VirtuozzoServer`;
//! - no close_notify is ever sent (the service sets quiet shutdown): the engine never calls
//!   `SSL_shutdown`, it is simply dropped;
//! - after the handshake the key exchange must be `DH` or `RSA`; with `RSA` the peer certificate's
//!   common name must equal the local certificate's common name (a "trusted channel").
//!
//! **Anonymous DH authenticates nobody**: it protects against passive eavesdroppers only. Keep
//! a relay next to the service, or configure credentials on both sides.
//!
//! One deliberate difference from the service: a server with credentials *requests* the
//! client's certificate (accepting any chain; the common-name comparison is the check). The
//! service's code never requests it, so its own post-handshake check could not pass on the
//! server side with an RSA suite.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

use openssl::dh::Dh;
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    ErrorCode, Ssl, SslContext, SslContextBuilder, SslMethod, SslMode, SslStream, SslVerifyMode,
    SslVersion,
};
use openssl::x509::X509;

use crate::gcm::GcmSession;

pub use prl_protocol::record::TlsEngine;

/// Cipher list of a side without credentials (anonymous DH only).
pub const ANONYMOUS_CIPHERS: &str = "ADH:!eNULL:@STRENGTH:@SECLEVEL=0";
/// Cipher list of a side with credentials (RSA key exchange preferred, anonymous DH allowed).
pub const CERTIFICATE_CIPHERS: &str = "RSA:ADH:!eNULL:@STRENGTH:@SECLEVEL=0";
/// The server's session id context (`SSLHelper::s_serverSessionIdContext`).
pub const SERVER_SESSION_ID_CONTEXT: &[u8] = b"VirtuozzoServer";

/// RFC 7919 `ffdhe2048` (`openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048`).
/// Public, standard parameters; the cipher stays `Kx=DH` with them and the real SDK accepts them.
const FFDHE2048_PEM: &[u8] = b"-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
";

/// Plaintext per TLS record we send. The service's receiver (`sslHeaderCheck`) drops the
/// connection on a record longer than 16384 bytes *including* the cipher's overhead, so a full
/// 16 KiB plaintext record (16408 bytes with AES-GCM) would be refused. The SDK writes through a
/// 15 KiB BIO pair (`SSLHelper::SSLBuffSize`), so its records carry at most 15 KiB: do the same.
pub const MAX_PLAINTEXT_PER_RECORD: usize = 15 * 1024;

/// Plaintext read per `SSL_read` call (a stack buffer; `out` grows only by what arrived).
const READ_CHUNK: usize = 4096;

/// Errors of the TLS engine.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// OpenSSL refused the context or session setup.
    #[error("tls setup failed: {0}")]
    Setup(#[source] ErrorStack),
    /// The certificate or private key could not be used.
    #[error("invalid tls credentials: {0}")]
    Credentials(String),
    /// The TLS handshake failed (alert, no shared cipher, malformed record, ...).
    #[error("tls handshake failed: {0}")]
    Handshake(String),
    /// The negotiated suite fails the service's post-handshake check (key exchange other than
    /// `DH` or `RSA`).
    #[error("tls post-handshake check failed: key exchange {kx:?} of cipher {cipher:?} is neither DH nor RSA")]
    CipherRejected {
        /// The cipher's OpenSSL name.
        cipher: String,
        /// The `Kx=` field of its description.
        kx: String,
    },
    /// An RSA suite was negotiated but the peer's certificate does not identify the same
    /// principal as ours.
    #[error("tls post-handshake check failed: {0}")]
    PeerCertificate(String),
    /// Decrypting or encrypting application data failed.
    #[error("tls record processing failed: {0}")]
    Record(String),
    /// The peer sent a close_notify alert (the service never does).
    #[error("tls peer sent close_notify")]
    Closed,
    /// Application data was written or read before the handshake completed.
    #[error("tls application data before the handshake completed")]
    NotEstablished,
    /// A TLS record arrived (or was to be sent) after the session was released: the accepted
    /// routing table sends nothing through TLS (security level LOW).
    #[error("tls record on a connection whose routing table sends nothing through tls")]
    Released,
}

impl TlsError {
    /// A stable snake_case name of the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            TlsError::Setup(_) => "tls_setup",
            TlsError::Credentials(_) => "tls_credentials",
            TlsError::Handshake(_) => "tls_handshake",
            TlsError::CipherRejected { .. } => "tls_cipher_rejected",
            TlsError::PeerCertificate(_) => "tls_peer_certificate",
            TlsError::Record(_) => "tls_record",
            TlsError::Closed => "tls_closed",
            TlsError::NotEstablished => "tls_not_established",
            TlsError::Released => "tls_released",
        }
    }
}

/// Which end of the TLS handshake this side plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRole {
    /// `SSL_set_connect_state`: the IOService client.
    Client,
    /// `SSL_set_accept_state`: the IOService server (the dispatcher).
    Server,
}

/// The key exchange of the negotiated suite, as the service classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyExchange {
    /// `Kx=DH`: anonymous Diffie-Hellman ("self-signed connection" in the service's terms).
    Dh,
    /// `Kx=RSA`: certificate based ("trusted channel").
    Rsa,
}

/// A certificate, its private key and an optional chain, in PEM.
///
/// `Debug` never shows the key.
#[derive(Clone)]
pub struct Credentials {
    certificate: X509,
    private_key: PKey<Private>,
    chain: Vec<X509>,
}

impl Credentials {
    /// Parses a PEM certificate and a PEM private key (PKCS#8 or traditional RSA).
    pub fn from_pem(certificate_pem: &[u8], private_key_pem: &[u8]) -> Result<Self, TlsError> {
        let certificate = X509::from_pem(certificate_pem)
            .map_err(|e| TlsError::Credentials(format!("certificate is not valid pem: {e}")))?;
        let private_key = PKey::private_key_from_pem(private_key_pem)
            .map_err(|_| TlsError::Credentials("private key is not valid pem".into()))?;
        Ok(Credentials {
            certificate,
            private_key,
            chain: Vec::new(),
        })
    }

    /// Adds the intermediate certificates (PEM, one or more) sent after the certificate.
    pub fn with_chain_pem(mut self, chain_pem: &[u8]) -> Result<Self, TlsError> {
        let chain = X509::stack_from_pem(chain_pem).map_err(|e| {
            TlsError::Credentials(format!("certificate chain is not valid pem: {e}"))
        })?;
        self.chain.extend(chain);
        Ok(self)
    }

    /// The common name of the certificate's subject, if any.
    pub fn common_name(&self) -> Option<Vec<u8>> {
        subject_cn(&self.certificate)
    }

    /// A fresh self-signed RSA-2048 certificate for `common_name`, valid for one day: for tests
    /// and demos of the certificate mode, never a production credential.
    pub fn generate_self_signed(common_name: &str) -> Result<Self, TlsError> {
        use openssl::asn1::Asn1Time;
        use openssl::bn::BigNum;
        use openssl::hash::MessageDigest;
        use openssl::rsa::Rsa;
        use openssl::x509::{X509Builder, X509NameBuilder};
        let build = || -> Result<Self, ErrorStack> {
            let private_key = PKey::from_rsa(Rsa::generate(2048)?)?;
            let mut name = X509NameBuilder::new()?;
            name.append_entry_by_nid(Nid::COMMONNAME, common_name)?;
            let name = name.build();
            let mut b = X509Builder::new()?;
            b.set_version(2)?;
            let mut serial = BigNum::new()?;
            serial.rand(64, openssl::bn::MsbOption::MAYBE_ZERO, false)?;
            let serial = serial.to_asn1_integer()?;
            b.set_serial_number(&serial)?;
            b.set_subject_name(&name)?;
            b.set_issuer_name(&name)?;
            b.set_pubkey(&private_key)?;
            let (from, until) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(1)?);
            b.set_not_before(&from)?;
            b.set_not_after(&until)?;
            b.sign(&private_key, MessageDigest::sha256())?;
            Ok(Credentials {
                certificate: b.build(),
                private_key,
                chain: Vec::new(),
            })
        };
        build().map_err(|e| TlsError::Credentials(format!("cannot generate a certificate: {e}")))
    }

    /// The certificate and the private key (PKCS#8) as PEM, e.g. to hand them to a process.
    pub fn to_pem(&self) -> Result<(Vec<u8>, zeroize::Zeroizing<Vec<u8>>), TlsError> {
        let bad = |e: ErrorStack| TlsError::Credentials(format!("cannot write pem: {e}"));
        let certificate = self.certificate.to_pem().map_err(bad)?;
        let key = self.private_key.private_key_to_pem_pkcs8().map_err(bad)?;
        Ok((certificate, zeroize::Zeroizing::new(key)))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field(
                "common_name",
                &self
                    .common_name()
                    .map(|cn| String::from_utf8_lossy(&cn).into_owned()),
            )
            .field("chain_len", &self.chain.len())
            .field("private_key", &"<redacted>")
            .finish()
    }
}

fn subject_cn(cert: &X509) -> Option<Vec<u8>> {
    cert.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .next()
        .map(|entry| entry.data().as_slice().to_vec())
}

struct ConfigInner {
    ctx: SslContext,
    role: TlsRole,
    local_cn: Option<Vec<u8>>,
    has_credentials: bool,
}

/// The TLS parameters of one side; cheap to clone and shared by every connection of a
/// listener or client. Build engines with [`TlsConfig::engine`].
#[derive(Clone)]
pub struct TlsConfig {
    inner: Arc<ConfigInner>,
    /// Engines hand an AES-GCM session to [`crate::gcm`] once established.
    compact: bool,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("role", &self.inner.role)
            .field("credentials", &self.inner.has_credentials)
            .field("compact", &self.compact)
            .finish()
    }
}

impl TlsConfig {
    /// An anonymous-DH client, as the SDK without credentials.
    pub fn client() -> Result<Self, TlsError> {
        Self::build(TlsRole::Client, None)
    }

    /// An anonymous-DH server, as the dispatcher without credentials.
    pub fn server() -> Result<Self, TlsError> {
        Self::build(TlsRole::Server, None)
    }

    /// A client with a certificate (`RSA:ADH` cipher list).
    pub fn client_with_credentials(credentials: &Credentials) -> Result<Self, TlsError> {
        Self::build(TlsRole::Client, Some(credentials))
    }

    /// A server with a certificate (`RSA:ADH` cipher list; requests the client's certificate).
    pub fn server_with_credentials(credentials: &Credentials) -> Result<Self, TlsError> {
        Self::build(TlsRole::Server, Some(credentials))
    }

    /// Which end this configuration plays.
    pub fn role(&self) -> TlsRole {
        self.inner.role
    }

    /// True when this side presents a certificate.
    pub fn has_credentials(&self) -> bool {
        self.inner.has_credentials
    }

    /// The same configuration, its engines freeing OpenSSL's per-connection state (the `SSL`
    /// object, cipher contexts, session and DH key: about 13 KiB) as soon as an AES-GCM
    /// session is established, protecting its records themselves from then on
    /// ([`crate::gcm`]; the wire stays the same TLS 1.2). Other suites stay with OpenSSL.
    /// Accessors report what was negotiated as before; [`OpenSslEngine::is_compact`] tells.
    pub fn compacting(mut self) -> Self {
        self.compact = true;
        self
    }

    /// A fresh engine for one connection.
    pub fn engine(&self) -> Result<OpenSslEngine, TlsError> {
        OpenSslEngine::new(self.clone())
    }

    fn build(role: TlsRole, credentials: Option<&Credentials>) -> Result<Self, TlsError> {
        let method = match role {
            TlsRole::Client => SslMethod::tls_client(),
            TlsRole::Server => SslMethod::tls_server(),
        };
        let mut b = SslContext::builder(method).map_err(TlsError::Setup)?;
        let ciphers = if credentials.is_some() {
            CERTIFICATE_CIPHERS
        } else {
            ANONYMOUS_CIPHERS
        };
        b.set_cipher_list(ciphers).map_err(TlsError::Setup)?;
        // A certificate-holding OpenSSL 3 server negotiates TLS 1.3 unless capped, and the
        // SDK rejects TLS 1.3 (its post-handshake check wants Kx=DH or Kx=RSA).
        b.set_max_proto_version(Some(SslVersion::TLS1_2))
            .map_err(TlsError::Setup)?;
        // Idle connections keep no 16 KiB read/write buffers (about half the idle memory).
        b.set_mode(SslMode::RELEASE_BUFFERS);
        if role == TlsRole::Server {
            let dh = Dh::params_from_pem(FFDHE2048_PEM).map_err(TlsError::Setup)?;
            b.set_tmp_dh(&dh).map_err(TlsError::Setup)?;
            b.set_session_id_context(SERVER_SESSION_ID_CONTEXT)
                .map_err(TlsError::Setup)?;
        }
        let mut local_cn = None;
        match credentials {
            None => b.set_verify(SslVerifyMode::NONE),
            Some(creds) => {
                install_credentials(&mut b, creds)?;
                local_cn = creds.common_name();
                if role == TlsRole::Server {
                    // Ask for the client's certificate but accept any chain: the identity check
                    // is the common-name comparison after the handshake.
                    b.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
                } else {
                    b.set_verify(SslVerifyMode::NONE);
                }
            }
        }
        Ok(TlsConfig {
            inner: Arc::new(ConfigInner {
                ctx: b.build(),
                role,
                local_cn,
                has_credentials: credentials.is_some(),
            }),
            compact: false,
        })
    }
}

fn install_credentials(b: &mut SslContextBuilder, creds: &Credentials) -> Result<(), TlsError> {
    let bad = |what: &str, e: ErrorStack| TlsError::Credentials(format!("{what}: {e}"));
    b.set_certificate(&creds.certificate)
        .map_err(|e| bad("certificate rejected", e))?;
    b.set_private_key(&creds.private_key)
        .map_err(|e| bad("private key rejected", e))?;
    b.check_private_key()
        .map_err(|e| bad("private key does not match the certificate", e))?;
    for cert in &creds.chain {
        b.add_extra_chain_cert(cert.clone())
            .map_err(|e| bad("chain certificate rejected", e))?;
    }
    Ok(())
}

/// In-memory transport under OpenSSL: `inb` holds whole TLS records fed by the record layer,
/// `out` collects what OpenSSL writes.
#[derive(Debug, Default)]
struct MemIo {
    inb: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
}

impl Read for MemIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.inb.get(self.pos..).unwrap_or_default();
        if available.is_empty() {
            // Never Ok(0): OpenSSL would take it as EOF and kill the session.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.pos += n;
        if self.pos == self.inb.len() {
            // All taken: an idle connection keeps no input buffer.
            self.inb = Vec::new();
            self.pos = 0;
        }
        Ok(n)
    }
}

impl Write for MemIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl MemIo {
    fn push(&mut self, data: &[u8]) {
        if self.pos > 0 && self.pos >= self.inb.len() / 2 {
            self.inb.drain(..self.pos);
            self.pos = 0;
        }
        self.inb.extend_from_slice(data);
    }
}

/// One connection's OpenSSL session, driven entirely in memory.
pub struct OpenSslEngine {
    /// `None` once released ([`OpenSslEngine::release`]) or compacted.
    stream: Option<SslStream<MemIo>>,
    /// The established session's record layer once OpenSSL's state was freed
    /// ([`TlsConfig::compacting`]).
    gcm: Option<Box<GcmSession>>,
    config: TlsConfig,
    established: bool,
    /// What the handshake negotiated, kept when the session is released.
    facts: Facts,
}

/// The negotiated parameters of a released session.
#[derive(Debug, Clone, Default)]
struct Facts {
    cipher: Option<&'static str>,
    cipher_standard: Option<&'static str>,
    version: &'static str,
    key_exchange: Option<KeyExchange>,
    peer_cn: Option<String>,
}

impl fmt::Debug for OpenSslEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenSslEngine")
            .field("role", &self.config.role())
            .field("established", &self.established)
            .field("cipher", &self.cipher_name())
            .finish()
    }
}

impl OpenSslEngine {
    fn new(config: TlsConfig) -> Result<Self, TlsError> {
        let mut ssl = Ssl::new(&config.inner.ctx).map_err(TlsError::Setup)?;
        match config.role() {
            TlsRole::Client => ssl.set_connect_state(),
            TlsRole::Server => ssl.set_accept_state(),
        }
        let stream = SslStream::new(ssl, MemIo::default()).map_err(TlsError::Setup)?;
        Ok(OpenSslEngine {
            stream: Some(stream),
            gcm: None,
            config,
            established: false,
            facts: Facts::default(),
        })
    }

    /// Which end this engine plays.
    pub fn role(&self) -> TlsRole {
        self.config.role()
    }

    /// True once the handshake and the post-handshake check have passed.
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// Frees the OpenSSL session (its `SSL` object, cipher contexts, session and keys: about
    /// 12 KiB) while keeping what it negotiated: for a connection whose routing table sends
    /// nothing through TLS (security level LOW), where the session is never used again. A TLS
    /// record arriving afterwards is an error ([`TlsError::Released`]).
    pub fn release(&mut self) {
        self.gcm = None;
        if self.stream.is_none() {
            return;
        }
        self.keep_facts();
        self.stream = None;
    }

    /// Whether the session was released.
    pub fn is_released(&self) -> bool {
        self.stream.is_none() && self.gcm.is_none()
    }

    /// Whether the established session's records are protected without OpenSSL
    /// ([`TlsConfig::compacting`]).
    pub fn is_compact(&self) -> bool {
        self.gcm.is_some()
    }

    /// Remembers what the handshake negotiated, before OpenSSL's state is freed.
    fn keep_facts(&mut self) {
        self.facts = Facts {
            cipher: self.cipher_name(),
            cipher_standard: self.cipher_standard_name(),
            version: self.tls_version(),
            key_exchange: self.key_exchange(),
            peer_cn: self.peer_common_name(),
        };
    }

    /// Just established: take an AES-GCM session over and free OpenSSL's state, with what
    /// OpenSSL had received but not read and produced but not handed out.
    fn compact(&mut self) -> Result<(), TlsError> {
        let Some(stream) = &mut self.stream else {
            return Ok(());
        };
        let Some(gcm) = GcmSession::take_over(stream.ssl(), self.config.role()) else {
            return Ok(());
        };
        let mut gcm = gcm?;
        let io = stream.get_mut();
        gcm.feed(io.inb.get(io.pos..).unwrap_or_default());
        gcm.queue_outgoing(std::mem::take(&mut io.out));
        self.keep_facts();
        self.stream = None;
        self.gcm = Some(Box::new(gcm));
        Ok(())
    }

    fn ssl(&self) -> Option<&openssl::ssl::SslRef> {
        self.stream.as_ref().map(|s| s.ssl())
    }

    /// The OpenSSL name of the negotiated cipher, e.g. `ADH-AES256-GCM-SHA384`.
    pub fn cipher_name(&self) -> Option<&'static str> {
        match self.ssl() {
            Some(ssl) => ssl.current_cipher().map(|c| c.name()),
            None => self.facts.cipher,
        }
    }

    /// The IANA name of the negotiated cipher, e.g. `TLS_DH_anon_WITH_AES_256_GCM_SHA384`.
    pub fn cipher_standard_name(&self) -> Option<&'static str> {
        match self.ssl() {
            Some(ssl) => ssl.current_cipher().and_then(|c| c.standard_name()),
            None => self.facts.cipher_standard,
        }
    }

    /// The negotiated protocol version, e.g. `TLSv1.2`.
    pub fn tls_version(&self) -> &'static str {
        match self.ssl() {
            Some(ssl) => ssl.version_str(),
            None => self.facts.version,
        }
    }

    /// The key exchange of the negotiated suite, once established.
    pub fn key_exchange(&self) -> Option<KeyExchange> {
        if self.ssl().is_none() {
            return self.facts.key_exchange;
        }
        match self.kx_field()?.as_str() {
            "DH" => Some(KeyExchange::Dh),
            "RSA" => Some(KeyExchange::Rsa),
            _ => None,
        }
    }

    /// The `Kx=` field of `SSL_CIPHER_description`, split as `SSLHelper::GetConnectionChipher`
    /// does (whitespace simplified, third field, text after `=`).
    fn kx_field(&self) -> Option<String> {
        let description = self.ssl()?.current_cipher()?.description();
        let kx = description.split_whitespace().nth(2)?;
        if description.split_whitespace().count() < 5 {
            return None;
        }
        kx.split('=').nth(1).map(str::to_owned)
    }

    /// The common name of the peer certificate, if the peer presented one.
    pub fn peer_common_name(&self) -> Option<String> {
        match self.ssl() {
            Some(ssl) => {
                let cert = ssl.peer_certificate()?;
                subject_cn(&cert).map(|cn| String::from_utf8_lossy(&cn).into_owned())
            }
            None => self.facts.peer_cn.clone(),
        }
    }

    /// `SSLHelper::postHandshakeCheck`.
    fn post_handshake_check(&self) -> Result<(), TlsError> {
        let cipher = self.cipher_name().unwrap_or("").to_owned();
        let kx = self.kx_field().unwrap_or_default();
        match kx.as_str() {
            "DH" => Ok(()),
            "RSA" => {
                let local = self.config.inner.local_cn.as_deref().ok_or_else(|| {
                    TlsError::PeerCertificate("rsa suite without a local certificate".into())
                })?;
                let peer = self
                    .ssl()
                    .and_then(|ssl| ssl.peer_certificate())
                    .ok_or_else(|| {
                        TlsError::PeerCertificate("peer presented no certificate".into())
                    })?;
                let peer_cn = subject_cn(&peer).ok_or_else(|| {
                    TlsError::PeerCertificate("peer certificate has no common name".into())
                })?;
                if peer_cn == local {
                    Ok(())
                } else {
                    Err(TlsError::PeerCertificate(format!(
                        "peer certificate common name {:?} differs from ours {:?}",
                        String::from_utf8_lossy(&peer_cn),
                        String::from_utf8_lossy(local)
                    )))
                }
            }
            _ => Err(TlsError::CipherRejected { cipher, kx }),
        }
    }
}

impl TlsEngine for OpenSslEngine {
    type Error = TlsError;

    fn feed(&mut self, records: &[u8]) {
        if let Some(gcm) = &mut self.gcm {
            gcm.feed(records);
        }
        // Released: nothing is kept; `read_app` reports the record.
        if let Some(stream) = &mut self.stream {
            stream.get_mut().push(records);
        }
    }

    fn handshake(&mut self) -> Result<bool, TlsError> {
        if self.established {
            return Ok(true);
        }
        let Some(stream) = &mut self.stream else {
            return Err(TlsError::Released);
        };
        match stream.do_handshake() {
            Ok(()) => {
                self.post_handshake_check()?;
                self.established = true;
                if self.config.compact {
                    self.compact()?;
                }
                Ok(true)
            }
            Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => Ok(false),
            Err(e) => Err(TlsError::Handshake(describe(&e))),
        }
    }

    fn write_app(&mut self, data: &[u8]) -> Result<(), TlsError> {
        if !self.established {
            return Err(TlsError::NotEstablished);
        }
        if let Some(gcm) = &mut self.gcm {
            return gcm.write_app(data);
        }
        let Some(stream) = &mut self.stream else {
            return Err(TlsError::Released);
        };
        for chunk in data.chunks(MAX_PLAINTEXT_PER_RECORD) {
            let mut rest = chunk;
            while !rest.is_empty() {
                match stream.ssl_write(rest) {
                    Ok(n) => rest = rest.get(n..).unwrap_or_default(),
                    Err(e) => return Err(TlsError::Record(describe(&e))),
                }
            }
        }
        Ok(())
    }

    fn read_app(&mut self, out: &mut Vec<u8>) -> Result<(), TlsError> {
        if !self.established {
            return Err(TlsError::NotEstablished);
        }
        if let Some(gcm) = &mut self.gcm {
            return gcm.read_app(out);
        }
        let Some(stream) = &mut self.stream else {
            return Err(TlsError::Released);
        };
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            match stream.ssl_read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => out.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(e) if e.code() == ErrorCode::WANT_READ => return Ok(()),
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => return Err(TlsError::Closed),
                Err(e) => return Err(TlsError::Record(describe(&e))),
            }
        }
    }

    fn take_outgoing(&mut self, out: &mut Vec<u8>) {
        if let Some(gcm) = &mut self.gcm {
            gcm.take_outgoing(out);
        }
        let Some(stream) = &mut self.stream else {
            return;
        };
        // The engine keeps no output buffer between calls (an idle connection holds none).
        append_owned(out, std::mem::take(&mut stream.get_mut().out));
    }
}

/// Appends `bytes` to `out`, taking the allocation over when `out` is empty (no copy).
pub(crate) fn append_owned(out: &mut Vec<u8>, bytes: Vec<u8>) {
    if out.is_empty() {
        *out = bytes;
    } else {
        out.extend_from_slice(&bytes);
    }
}

fn describe(e: &openssl::ssl::Error) -> String {
    match e.ssl_error() {
        Some(stack) => stack.to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway self-signed RSA certificate made for this test run.
    fn credentials(cn: &str) -> Credentials {
        Credentials::generate_self_signed(cn).unwrap()
    }

    /// Splits a byte stream into TLS records (5-byte header + payload).
    fn records(bytes: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
            let (rec, tail) = rest.split_at(5 + len);
            out.push(rec);
            rest = tail;
        }
        out
    }

    /// Runs the handshake between two engines in memory; returns the first error.
    fn handshake(
        client: &mut OpenSslEngine,
        server: &mut OpenSslEngine,
    ) -> Result<(), (TlsRole, TlsError)> {
        let (mut c_done, mut s_done) = (false, false);
        for _ in 0..20 {
            if !c_done {
                c_done = client.handshake().map_err(|e| (TlsRole::Client, e))?;
            }
            let mut out = Vec::new();
            client.take_outgoing(&mut out);
            server.feed(&out);
            if !s_done {
                s_done = server.handshake().map_err(|e| (TlsRole::Server, e))?;
            }
            let mut out = Vec::new();
            server.take_outgoing(&mut out);
            client.feed(&out);
            if c_done && s_done {
                return Ok(());
            }
        }
        panic!("handshake did not finish");
    }

    fn transfer(from: &mut OpenSslEngine, to: &mut OpenSslEngine, data: &[u8]) -> Vec<u8> {
        from.write_app(data).unwrap();
        let mut wire = Vec::new();
        from.take_outgoing(&mut wire);
        to.feed(&wire);
        let mut got = Vec::new();
        to.read_app(&mut got).unwrap();
        got
    }

    fn pair(client: &TlsConfig, server: &TlsConfig) -> (OpenSslEngine, OpenSslEngine) {
        (client.engine().unwrap(), server.engine().unwrap())
    }

    #[test]
    fn anonymous_dh_handshake_and_data_both_ways() {
        let (mut c, mut s) = pair(&TlsConfig::client().unwrap(), &TlsConfig::server().unwrap());
        assert!(!c.is_established());
        handshake(&mut c, &mut s).unwrap();
        for e in [&c, &s] {
            assert!(e.is_established());
            assert_eq!(e.cipher_name(), Some("ADH-AES256-GCM-SHA384"));
            assert_eq!(
                e.cipher_standard_name(),
                Some("TLS_DH_anon_WITH_AES_256_GCM_SHA384")
            );
            assert_eq!(e.tls_version(), "TLSv1.2");
            assert_eq!(e.key_exchange(), Some(KeyExchange::Dh));
            assert_eq!(e.peer_common_name(), None);
        }
        assert_eq!(c.ssl().unwrap().peer_tmp_key().unwrap().bits(), 2048);
        assert_eq!(transfer(&mut c, &mut s, b"hello service"), b"hello service");
        assert_eq!(transfer(&mut s, &mut c, b"hello client"), b"hello client");
    }

    #[test]
    fn application_records_are_tls12_and_at_most_16384_bytes() {
        let (mut c, mut s) = pair(&TlsConfig::client().unwrap(), &TlsConfig::server().unwrap());
        handshake(&mut c, &mut s).unwrap();
        let data: Vec<u8> = (0..20000u32).map(|i| (i % 251) as u8).collect();
        c.write_app(&data).unwrap();
        let mut wire = Vec::new();
        c.take_outgoing(&mut wire);
        // 2 records (15 KiB + the rest), 29 bytes of overhead each (header, explicit nonce,
        // GCM tag).
        assert_eq!(wire.len(), 20000 + 2 * 29);
        let recs = records(&wire);
        assert_eq!(recs.len(), 2);
        for r in &recs {
            // The service's sslHeaderCheck accepts only 03 03 (or 03 00) and length <= 16384.
            assert_eq!(&r[..3], &[0x17, 0x03, 0x03]);
            assert!(r.len() - 5 <= 16384);
        }
        // Fed one byte at a time, nothing is lost.
        let mut got = Vec::new();
        for b in &wire {
            s.feed(std::slice::from_ref(b));
            s.read_app(&mut got).unwrap();
        }
        assert_eq!(got, data);
    }

    #[test]
    fn handshake_survives_byte_by_byte_delivery() {
        let (mut c, mut s) = pair(&TlsConfig::client().unwrap(), &TlsConfig::server().unwrap());
        let (mut c_done, mut s_done) = (false, false);
        for _ in 0..20 {
            c_done = c_done || c.handshake().unwrap();
            let mut out = Vec::new();
            c.take_outgoing(&mut out);
            for b in &out {
                s.feed(std::slice::from_ref(b));
                s_done = s_done || s.handshake().unwrap();
            }
            s_done = s_done || s.handshake().unwrap();
            let mut out = Vec::new();
            s.take_outgoing(&mut out);
            for b in &out {
                c.feed(std::slice::from_ref(b));
                c_done = c_done || c.handshake().unwrap();
            }
            if c_done && s_done {
                break;
            }
        }
        assert!(c_done && s_done);
        assert_eq!(transfer(&mut s, &mut c, b"x"), b"x");
    }

    #[test]
    fn client_hello_offers_no_tls13() {
        let mut c = TlsConfig::client().unwrap().engine().unwrap();
        assert!(!c.handshake().unwrap());
        let mut out = Vec::new();
        c.take_outgoing(&mut out);
        // Handshake record carrying a ClientHello whose legacy_version is TLS 1.2.
        assert_eq!(out[0], 0x16);
        assert_eq!(out[5], 0x01);
        assert_eq!(&out[9..11], &[0x03, 0x03]);
        // No supported_versions extension (43 = 0x002b) listing TLS 1.3 (0x0304).
        assert!(!out.windows(2).any(|w| w == [0x03, 0x04]));
    }

    #[test]
    fn server_without_shared_cipher_fails_the_handshake() {
        // An ECDHE-only client: the service's peers never offer it, and our server must not
        // pick Kx=ECDH.
        let mut b = SslContext::builder(SslMethod::tls_client()).unwrap();
        b.set_cipher_list("ECDHE-RSA-AES256-GCM-SHA384").unwrap();
        b.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
        let bad = TlsConfig {
            inner: Arc::new(ConfigInner {
                ctx: b.build(),
                role: TlsRole::Client,
                local_cn: None,
                has_credentials: false,
            }),
            compact: false,
        };
        let (mut c, mut s) = pair(&bad, &TlsConfig::server().unwrap());
        let (side, err) = handshake(&mut c, &mut s).unwrap_err();
        assert_eq!(side, TlsRole::Server);
        assert_eq!(err.kind(), "tls_handshake");
        assert!(err.to_string().contains("no shared cipher"), "{err}");
    }

    #[test]
    fn garbage_is_a_handshake_error() {
        let mut s = TlsConfig::server().unwrap().engine().unwrap();
        s.feed(&[0x16, 0x03, 0x01, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(s.handshake().unwrap_err().kind(), "tls_handshake");
    }

    #[test]
    fn application_data_before_the_handshake_is_refused() {
        let mut c = TlsConfig::client().unwrap().engine().unwrap();
        assert_eq!(c.write_app(b"x").unwrap_err().kind(), "tls_not_established");
        assert_eq!(
            c.read_app(&mut Vec::new()).unwrap_err().kind(),
            "tls_not_established"
        );
    }

    #[test]
    fn a_released_session_keeps_its_facts_and_refuses_tls_records() {
        let (mut c, mut s) = pair(&TlsConfig::client().unwrap(), &TlsConfig::server().unwrap());
        handshake(&mut c, &mut s).unwrap();
        c.release();
        assert!(c.is_released());
        assert_eq!(c.cipher_name(), Some("ADH-AES256-GCM-SHA384"));
        assert_eq!(c.tls_version(), "TLSv1.2");
        assert_eq!(c.key_exchange(), Some(KeyExchange::Dh));
        assert_eq!(c.write_app(b"x").unwrap_err().kind(), "tls_released");
        let mut wire = Vec::new();
        c.take_outgoing(&mut wire);
        assert!(wire.is_empty());
        s.write_app(b"late").unwrap();
        s.take_outgoing(&mut wire);
        c.feed(&wire);
        assert_eq!(
            c.read_app(&mut Vec::new()).unwrap_err().kind(),
            "tls_released"
        );
    }

    #[test]
    fn close_notify_from_the_peer_is_reported() {
        let (mut c, mut s) = pair(&TlsConfig::client().unwrap(), &TlsConfig::server().unwrap());
        handshake(&mut c, &mut s).unwrap();
        // Our engines never send close_notify; a foreign peer might.
        let _ = c.stream.as_mut().unwrap().shutdown();
        let mut wire = Vec::new();
        c.take_outgoing(&mut wire);
        assert!(!wire.is_empty());
        s.feed(&wire);
        assert_eq!(
            s.read_app(&mut Vec::new()).unwrap_err().kind(),
            "tls_closed"
        );
    }

    /// A compacting client against an OpenSSL server (and the reverse roles).
    fn compact_pair(client: TlsConfig, server: TlsConfig) -> (OpenSslEngine, OpenSslEngine) {
        let (mut c, mut s) = pair(&client, &server);
        handshake(&mut c, &mut s).unwrap();
        (c, s)
    }

    #[test]
    fn a_compacted_session_talks_to_openssl_both_ways_with_the_same_records() {
        let (mut c, mut s) = compact_pair(
            TlsConfig::client().unwrap().compacting(),
            TlsConfig::server().unwrap(),
        );
        assert!(c.is_compact() && !c.is_released());
        assert!(!s.is_compact());
        assert!(c.ssl().is_none());
        assert_eq!(c.cipher_name(), Some("ADH-AES256-GCM-SHA384"));
        assert_eq!(
            c.cipher_standard_name(),
            Some("TLS_DH_anon_WITH_AES_256_GCM_SHA384")
        );
        assert_eq!(c.tls_version(), "TLSv1.2");
        assert_eq!(c.key_exchange(), Some(KeyExchange::Dh));
        for i in 0..5u8 {
            let up = vec![i; 100 + usize::from(i)];
            assert_eq!(transfer(&mut c, &mut s, &up), up);
            let down = vec![i ^ 0x55; 7 * usize::from(i)];
            assert_eq!(transfer(&mut s, &mut c, &down), down);
        }
        // Large writes: records of 15 KiB at most, 29 bytes of overhead each, as OpenSSL's.
        let data: Vec<u8> = (0..40000u32).map(|i| (i % 251) as u8).collect();
        c.write_app(&data).unwrap();
        let mut wire = Vec::new();
        c.take_outgoing(&mut wire);
        assert_eq!(wire.len(), 40000 + 3 * 29);
        let recs = records(&wire);
        assert_eq!(recs.len(), 3);
        for r in &recs {
            assert_eq!(&r[..3], &[0x17, 0x03, 0x03]);
            assert!(r.len() - 5 <= MAX_PLAINTEXT_PER_RECORD + 24);
        }
        s.feed(&wire);
        let mut got = Vec::new();
        s.read_app(&mut got).unwrap();
        assert_eq!(got, data);
        // OpenSSL's records, fed one byte at a time, lose nothing.
        s.write_app(&data).unwrap();
        let mut wire = Vec::new();
        s.take_outgoing(&mut wire);
        let mut got = Vec::new();
        for b in &wire {
            c.feed(std::slice::from_ref(b));
            c.read_app(&mut got).unwrap();
        }
        assert_eq!(got, data);
        // Nothing is kept between records.
        assert_eq!(c.gcm.as_ref().unwrap().input_capacity(), 0);
    }

    #[test]
    fn records_arriving_with_the_last_handshake_flight_are_not_lost() {
        let (mut c, mut s) = pair(
            &TlsConfig::client().unwrap().compacting(),
            &TlsConfig::server().unwrap(),
        );
        // ClientHello; the server's flight; the client's key exchange and Finished; the
        // server's Finished, here followed at once by application data.
        let mut wire = Vec::new();
        assert!(!c.handshake().unwrap());
        c.take_outgoing(&mut wire);
        s.feed(&std::mem::take(&mut wire));
        assert!(!s.handshake().unwrap());
        s.take_outgoing(&mut wire);
        c.feed(&std::mem::take(&mut wire));
        assert!(!c.handshake().unwrap());
        c.take_outgoing(&mut wire);
        s.feed(&std::mem::take(&mut wire));
        assert!(s.handshake().unwrap());
        s.write_app(b"first package").unwrap();
        s.take_outgoing(&mut wire);
        c.feed(&wire);
        assert!(c.handshake().unwrap());
        assert!(c.is_compact());
        let mut got = Vec::new();
        c.read_app(&mut got).unwrap();
        assert_eq!(got, b"first package");
        assert_eq!(transfer(&mut c, &mut s, b"answer"), b"answer");
    }

    #[test]
    fn a_compacted_server_and_both_sides_compacted_work_too() {
        let (mut c, mut s) = compact_pair(
            TlsConfig::client().unwrap(),
            TlsConfig::server().unwrap().compacting(),
        );
        assert!(s.is_compact() && !c.is_compact());
        assert_eq!(transfer(&mut c, &mut s, b"to the server"), b"to the server");
        assert_eq!(transfer(&mut s, &mut c, b"to the client"), b"to the client");
        let (mut c, mut s) = compact_pair(
            TlsConfig::client().unwrap().compacting(),
            TlsConfig::server().unwrap().compacting(),
        );
        assert!(s.is_compact() && c.is_compact());
        assert_eq!(transfer(&mut c, &mut s, b"up"), b"up");
        assert_eq!(transfer(&mut s, &mut c, b"down"), b"down");
    }

    #[test]
    fn a_compacted_session_keeps_the_certificate_facts() {
        let creds = credentials("prl-host");
        let (mut c, mut s) = compact_pair(
            TlsConfig::client_with_credentials(&creds)
                .unwrap()
                .compacting(),
            TlsConfig::server_with_credentials(&creds).unwrap(),
        );
        assert!(c.is_compact());
        assert_eq!(c.cipher_name(), Some("AES256-GCM-SHA384"));
        assert_eq!(c.key_exchange(), Some(KeyExchange::Rsa));
        assert_eq!(c.peer_common_name().as_deref(), Some("prl-host"));
        assert_eq!(transfer(&mut c, &mut s, b"secret"), b"secret");
        assert_eq!(transfer(&mut s, &mut c, b"reply"), b"reply");
    }

    #[test]
    fn a_compacted_session_reports_close_notify_tampering_and_release() {
        let (mut c, mut s) = compact_pair(
            TlsConfig::client().unwrap().compacting(),
            TlsConfig::server().unwrap(),
        );
        // A flipped bit fails authentication.
        s.write_app(b"payload").unwrap();
        let mut wire = Vec::new();
        s.take_outgoing(&mut wire);
        let last = wire.len() - 1;
        wire[last] ^= 1;
        c.feed(&wire);
        assert_eq!(
            c.read_app(&mut Vec::new()).unwrap_err().kind(),
            "tls_record"
        );
        // close_notify from a foreign peer.
        let (mut c, mut s) = compact_pair(
            TlsConfig::client().unwrap().compacting(),
            TlsConfig::server().unwrap(),
        );
        let _ = s.stream.as_mut().unwrap().shutdown();
        let mut wire = Vec::new();
        s.take_outgoing(&mut wire);
        c.feed(&wire);
        assert_eq!(
            c.read_app(&mut Vec::new()).unwrap_err().kind(),
            "tls_closed"
        );
        // Released afterwards (security level LOW), it refuses records.
        let (mut c, _s) = compact_pair(
            TlsConfig::client().unwrap().compacting(),
            TlsConfig::server().unwrap(),
        );
        c.release();
        assert!(c.is_released() && !c.is_compact());
        assert_eq!(c.cipher_name(), Some("ADH-AES256-GCM-SHA384"));
        assert_eq!(c.write_app(b"x").unwrap_err().kind(), "tls_released");
    }

    #[test]
    fn dropping_an_engine_sends_nothing() {
        let (mut c, mut s) = pair(&TlsConfig::client().unwrap(), &TlsConfig::server().unwrap());
        handshake(&mut c, &mut s).unwrap();
        let mut wire = Vec::new();
        c.take_outgoing(&mut wire);
        assert!(wire.is_empty());
        drop(c);
        // Nothing was produced that the server could read as an alert.
        assert!(s.read_app(&mut Vec::new()).is_ok());
    }

    #[test]
    fn certificate_mode_negotiates_rsa_between_same_principal() {
        let creds = credentials("prl-host");
        let (mut c, mut s) = pair(
            &TlsConfig::client_with_credentials(&creds).unwrap(),
            &TlsConfig::server_with_credentials(&creds).unwrap(),
        );
        handshake(&mut c, &mut s).unwrap();
        for e in [&c, &s] {
            assert_eq!(e.key_exchange(), Some(KeyExchange::Rsa));
            assert_eq!(e.tls_version(), "TLSv1.2");
            assert_eq!(e.peer_common_name().as_deref(), Some("prl-host"));
        }
        assert_eq!(c.cipher_name(), Some("AES256-GCM-SHA384"));
        assert_eq!(transfer(&mut c, &mut s, b"secret"), b"secret");
    }

    #[test]
    fn certificate_mode_rejects_a_different_principal() {
        let (mut c, mut s) = pair(
            &TlsConfig::client_with_credentials(&credentials("alice")).unwrap(),
            &TlsConfig::server_with_credentials(&credentials("bob")).unwrap(),
        );
        let (_, err) = handshake(&mut c, &mut s).unwrap_err();
        assert_eq!(err.kind(), "tls_peer_certificate");
        assert!(err.to_string().contains("differs from ours"), "{err}");
    }

    #[test]
    fn certificate_server_still_serves_anonymous_clients() {
        let (mut c, mut s) = pair(
            &TlsConfig::client().unwrap(),
            &TlsConfig::server_with_credentials(&credentials("prl-host")).unwrap(),
        );
        handshake(&mut c, &mut s).unwrap();
        assert_eq!(c.key_exchange(), Some(KeyExchange::Dh));
        assert_eq!(s.cipher_name(), Some("ADH-AES256-GCM-SHA384"));
    }

    #[test]
    fn credentials_are_validated_and_redacted() {
        let creds = credentials("prl-host");
        let dbg = format!("{creds:?}");
        assert!(dbg.contains("<redacted>") && dbg.contains("prl-host"));
        assert!(!dbg.contains("PRIVATE"));
        let err = Credentials::from_pem(b"not pem", b"not pem").unwrap_err();
        assert_eq!(err.kind(), "tls_credentials");
        // A key that does not match the certificate is refused at setup.
        let other = credentials("other");
        let mismatched = Credentials {
            certificate: creds.certificate.clone(),
            private_key: other.private_key.clone(),
            chain: Vec::new(),
        };
        assert_eq!(
            TlsConfig::server_with_credentials(&mismatched)
                .unwrap_err()
                .kind(),
            "tls_credentials"
        );
    }
}
