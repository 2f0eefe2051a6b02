//! The record protection of an established TLS 1.2 AES-GCM session, taken over from OpenSSL.
//!
//! OpenSSL keeps about 13 KiB per established connection (the `SSL` object, two cipher
//! contexts, the session, the peer's DH key), all of it idle on an idle connection. Once the
//! handshake is done, a TLS 1.2 AES-GCM session needs only its two keys, two 4-byte salts and
//! two sequence numbers (RFC 5246 §6, RFC 5288): [`GcmSession::take_over`] derives them from
//! the session's master secret and randoms (the `key expansion` of RFC 5246 §6.3) and the
//! engine frees OpenSSL's state ([`crate::tls::TlsConfig::compacting`]).
//!
//! The wire is the same TLS: records of the same type, version and sizes (the explicit nonce
//! is the record's sequence number, as RFC 5288 suggests, where OpenSSL counts from a random
//! start). Taken over only right after the handshake, when each direction has sent exactly
//! one protected record (its `Finished`), so both sequence numbers are 1. Suites other than
//! AES-GCM stay with OpenSSL. After the handshake a TLS 1.2 peer sends only application data
//! and alerts; a handshake record (renegotiation, which the service never starts) is an error.
//!
//! The master secret and the key block are zeroized after use; `ring`'s expanded keys are not
//! (as for the browser leg's rustls sessions).

use openssl::ssl::SslRef;
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use zeroize::Zeroizing;

use crate::tls::{append_owned, TlsError, TlsRole, MAX_PLAINTEXT_PER_RECORD};

const HEADER: usize = 5;
const EXPLICIT_NONCE: usize = 8;
const TAG: usize = 16;
/// RFC 5246 §6.2.3: a TLSCiphertext fragment is at most 2^14 + 2048 bytes.
const MAX_CIPHERTEXT: usize = 16384 + 2048;
const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
const TLS12: [u8; 2] = [3, 3];

/// One direction: its key, its implicit nonce part and its next sequence number.
struct Direction {
    key: LessSafeKey,
    salt: [u8; 4],
    seq: u64,
}

impl Direction {
    fn new(
        algorithm: &'static aead::Algorithm,
        key: &[u8],
        salt: &[u8],
    ) -> Result<Direction, TlsError> {
        let key = UnboundKey::new(algorithm, key)
            .map_err(|_| TlsError::Record("cannot build the aes-gcm key".into()))?;
        let salt = salt
            .try_into()
            .map_err(|_| TlsError::Record("bad aes-gcm salt length".into()))?;
        Ok(Direction {
            key: LessSafeKey::new(key),
            salt,
            seq: 1,
        })
    }

    fn nonce(&self, explicit: [u8; EXPLICIT_NONCE]) -> Nonce {
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&self.salt);
        nonce[4..].copy_from_slice(&explicit);
        Nonce::assume_unique_for_key(nonce)
    }

    /// The additional data of a record: sequence number, type, version, plaintext length.
    fn aad(&self, typ: u8, plaintext_len: usize) -> Aad<[u8; 13]> {
        let mut aad = [0u8; 13];
        aad[..8].copy_from_slice(&self.seq.to_be_bytes());
        aad[8] = typ;
        aad[9..11].copy_from_slice(&TLS12);
        // At most MAX_CIPHERTEXT: fits.
        aad[11..].copy_from_slice(&(plaintext_len as u16).to_be_bytes());
        Aad::from(aad)
    }

    fn advance(&mut self) -> Result<(), TlsError> {
        self.seq = self
            .seq
            .checked_add(1)
            .ok_or_else(|| TlsError::Record("tls sequence number exhausted".into()))?;
        Ok(())
    }
}

/// An established TLS 1.2 AES-GCM session's record layer.
pub(crate) struct GcmSession {
    read: Direction,
    write: Direction,
    /// Received bytes not yet a whole record (freed when empty).
    inb: Vec<u8>,
    /// Records to send (taken by the caller).
    out: Vec<u8>,
}

/// The AEAD and the PRF hash of a TLS 1.2 AES-GCM suite taken over, by IANA name (the key
/// exchanges the post-handshake check accepts).
fn suite(standard_name: &str) -> Option<(&'static aead::Algorithm, hmac::Algorithm)> {
    match standard_name {
        // What both cipher lists negotiate with any OpenSSL peer (`@STRENGTH` puts them first).
        "TLS_DH_anon_WITH_AES_256_GCM_SHA384" | "TLS_RSA_WITH_AES_256_GCM_SHA384" => {
            Some((&aead::AES_256_GCM, hmac::HMAC_SHA384))
        }
        _ => None,
    }
}

/// The TLS 1.2 PRF (RFC 5246 §5): `P_hash(secret, label + seed)` filling `out`.
fn prf(hash: hmac::Algorithm, secret: &[u8], label: &[u8], seed: &[u8], out: &mut [u8]) {
    let key = hmac::Key::new(hash, secret);
    let mut label_seed = Vec::with_capacity(label.len() + seed.len());
    label_seed.extend_from_slice(label);
    label_seed.extend_from_slice(seed);
    // A(1) = HMAC(secret, A(0)), A(0) = label + seed.
    let mut a = hmac::sign(&key, &label_seed);
    for chunk in out.chunks_mut(hash.digest_algorithm().output_len()) {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(a.as_ref());
        ctx.update(&label_seed);
        let block = ctx.sign();
        chunk.copy_from_slice(block.as_ref().get(..chunk.len()).unwrap_or_default());
        a = hmac::sign(&key, a.as_ref());
    }
}

impl GcmSession {
    /// The record layer of the session `ssl` has just established (its handshake complete, no
    /// application record sent or received yet); `None` for a suite other than AES-GCM or if
    /// OpenSSL does not hand out the secrets.
    pub(crate) fn take_over(ssl: &SslRef, role: TlsRole) -> Option<Result<GcmSession, TlsError>> {
        let (algorithm, hash) = suite(ssl.current_cipher()?.standard_name()?)?;
        let mut master = Zeroizing::new([0u8; 48]);
        if ssl.session()?.master_key(&mut master[..]) != master.len() {
            return None;
        }
        // The key block's seed is server_random + client_random.
        let mut seed = [0u8; 64];
        let (server_random, client_random) = seed.split_at_mut(32);
        if ssl.server_random(server_random) != 32 || ssl.client_random(client_random) != 32 {
            return None;
        }
        Some(GcmSession::from_master(
            algorithm, hash, &master, &seed, role,
        ))
    }

    /// The record layer of `role` for a session's master secret and `server_random +
    /// client_random` (`seed`).
    fn from_master(
        algorithm: &'static aead::Algorithm,
        hash: hmac::Algorithm,
        master: &[u8; 48],
        seed: &[u8; 64],
        role: TlsRole,
    ) -> Result<GcmSession, TlsError> {
        let key_len = algorithm.key_len();
        // client_write_key, server_write_key, client_write_IV, server_write_IV (no MAC keys).
        let mut block = Zeroizing::new(vec![0u8; 2 * key_len + 2 * 4]);
        prf(hash, master, b"key expansion", seed, &mut block);
        let (client_key, rest) = block.split_at(key_len);
        let (server_key, rest) = rest.split_at(key_len);
        let (client_salt, server_salt) = rest.split_at(4);
        let client = Direction::new(algorithm, client_key, client_salt)?;
        let server = Direction::new(algorithm, server_key, server_salt)?;
        let (read, write) = match role {
            TlsRole::Client => (server, client),
            TlsRole::Server => (client, server),
        };
        Ok(GcmSession {
            read,
            write,
            inb: Vec::new(),
            out: Vec::new(),
        })
    }

    /// Bytes from the peer (whole records or parts of them), and what OpenSSL had not read.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        self.inb.extend_from_slice(bytes);
    }

    /// Records OpenSSL had produced but not handed out yet.
    pub(crate) fn queue_outgoing(&mut self, bytes: Vec<u8>) {
        append_owned(&mut self.out, bytes);
    }

    /// Encrypts `data` into application-data records of at most
    /// [`MAX_PLAINTEXT_PER_RECORD`] bytes each.
    pub(crate) fn write_app(&mut self, data: &[u8]) -> Result<(), TlsError> {
        for chunk in data.chunks(MAX_PLAINTEXT_PER_RECORD) {
            self.seal(APPLICATION_DATA, chunk)?;
        }
        Ok(())
    }

    /// Appends one record of type `typ` protecting `chunk` (at most
    /// [`MAX_PLAINTEXT_PER_RECORD`] bytes) to the records to send.
    fn seal(&mut self, typ: u8, chunk: &[u8]) -> Result<(), TlsError> {
        let w = &mut self.write;
        let explicit = w.seq.to_be_bytes();
        let len = EXPLICIT_NONCE + chunk.len() + TAG;
        self.out.reserve(HEADER + len);
        self.out.extend_from_slice(&[typ, TLS12[0], TLS12[1]]);
        // At most 15 KiB + 24: fits.
        self.out.extend_from_slice(&(len as u16).to_be_bytes());
        self.out.extend_from_slice(&explicit);
        let start = self.out.len();
        self.out.extend_from_slice(chunk);
        let sealed = self.out.get_mut(start..).unwrap_or_default();
        let tag = w
            .key
            .seal_in_place_separate_tag(w.nonce(explicit), w.aad(typ, chunk.len()), sealed)
            .map_err(|_| TlsError::Record("aes-gcm encryption failed".into()))?;
        self.out.extend_from_slice(tag.as_ref());
        w.advance()
    }

    /// Decrypts every whole record received, appending application data to `out`.
    pub(crate) fn read_app(&mut self, out: &mut Vec<u8>) -> Result<(), TlsError> {
        let mut pos = 0;
        let result = self.open_records(&mut pos, out);
        if pos >= self.inb.len() {
            // An idle connection keeps no input buffer.
            self.inb = Vec::new();
        } else if pos > 0 {
            self.inb.drain(..pos);
        }
        result
    }

    fn open_records(&mut self, pos: &mut usize, out: &mut Vec<u8>) -> Result<(), TlsError> {
        let GcmSession { read, inb, .. } = self;
        loop {
            let rest = inb.get_mut(*pos..).unwrap_or_default();
            let Some(header) = rest.get(..HEADER) else {
                return Ok(());
            };
            let typ = header[0];
            let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
            if header[1..3] != TLS12 {
                return Err(TlsError::Record(format!(
                    "tls record version {:02x}{:02x} is not tls 1.2",
                    header[1], header[2]
                )));
            }
            if len > MAX_CIPHERTEXT {
                return Err(TlsError::Record(format!(
                    "tls record of {len} bytes exceeds {MAX_CIPHERTEXT}"
                )));
            }
            if len < EXPLICIT_NONCE + TAG {
                return Err(TlsError::Record(format!(
                    "tls record of {len} bytes is too short for aes-gcm"
                )));
            }
            let Some(record) = rest.get_mut(HEADER..HEADER + len) else {
                return Ok(());
            };
            let (explicit, sealed) = record.split_at_mut(EXPLICIT_NONCE);
            let mut nonce = [0u8; EXPLICIT_NONCE];
            nonce.copy_from_slice(explicit);
            let plaintext = read
                .key
                .open_in_place(
                    read.nonce(nonce),
                    read.aad(typ, len - EXPLICIT_NONCE - TAG),
                    sealed,
                )
                .map_err(|_| TlsError::Record("tls record authentication failed".into()))?;
            read.advance()?;
            *pos += HEADER + len;
            match typ {
                APPLICATION_DATA => out.extend_from_slice(plaintext),
                ALERT => match plaintext {
                    // close_notify
                    [_, 0] => return Err(TlsError::Closed),
                    // Warnings are ignored, as OpenSSL does.
                    [1, _] => {}
                    [_, description] => {
                        return Err(TlsError::Record(format!(
                            "tls alert {description} received"
                        )))
                    }
                    _ => return Err(TlsError::Record("malformed tls alert".into())),
                },
                HANDSHAKE | CHANGE_CIPHER_SPEC => {
                    return Err(TlsError::Record(
                        "tls handshake record after the handshake (renegotiation is not supported)"
                            .into(),
                    ))
                }
                other => {
                    return Err(TlsError::Record(format!(
                        "unexpected tls record type {other}"
                    )))
                }
            }
        }
    }

    /// The input buffer's capacity (kept at none between records).
    #[cfg(test)]
    pub(crate) fn input_capacity(&self) -> usize {
        self.inb.capacity()
    }

    /// Drains the records to send.
    pub(crate) fn take_outgoing(&mut self, out: &mut Vec<u8>) {
        append_owned(out, std::mem::take(&mut self.out));
    }
}

/// A fuzzing hook (feature `fuzzing`): the two ends of one AES-256-GCM record layer with fixed
/// keys, so a fuzzer can send the client end any records, sealed or forged.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use super::{aead, hmac, GcmSession, TlsError, TlsRole, MAX_PLAINTEXT_PER_RECORD};

    /// The service's end seals, the client's end opens.
    pub struct GcmPair {
        client: GcmSession,
        server: GcmSession,
    }

    impl GcmPair {
        /// Both ends of a session with a fixed master secret and randoms.
        pub fn new() -> GcmPair {
            let end = |role| {
                GcmSession::from_master(
                    &aead::AES_256_GCM,
                    hmac::HMAC_SHA384,
                    &[7; 48],
                    &[9; 64],
                    role,
                )
                .expect("fixed keys are valid")
            };
            GcmPair {
                client: end(TlsRole::Client),
                server: end(TlsRole::Server),
            }
        }

        /// One record of type `typ` sealed by the service's end (`plaintext` cut to a record's
        /// maximum), as bytes on the wire.
        pub fn seal(&mut self, typ: u8, plaintext: &[u8]) -> Vec<u8> {
            let cut = plaintext
                .get(..MAX_PLAINTEXT_PER_RECORD)
                .unwrap_or(plaintext);
            self.server.seal(typ, cut).expect("sealing cannot fail");
            let mut out = Vec::new();
            self.server.take_outgoing(&mut out);
            out
        }

        /// Bytes received by the client's end; the application data of every whole record
        /// appended to `out`.
        pub fn receive(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), TlsError> {
            self.client.feed(bytes);
            self.client.read_app(out)
        }
    }

    impl std::fmt::Debug for GcmPair {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("GcmPair")
        }
    }

    impl Default for GcmPair {
        fn default() -> Self {
            GcmPair::new()
        }
    }
}
