//! TLS on both legs of the proxy (rustls on aws-lc-rs).
//!
//! * **Clients** ([`ClientTls`]): a certificate chain and key from PEM files. An `SSLRequest`
//!   is answered `'S'` and the handshake follows (TLS 1.2 or 1.3); PostgreSQL 17's direct TLS
//!   (the client starts with a TLS `ClientHello`, ALPN `postgresql`) is accepted too. The files
//!   are re-read by [`ClientTls::reload`] (the CLI calls it on `SIGHUP`): new handshakes use
//!   the new certificate, sessions already open keep theirs, and a file that cannot be loaded
//!   leaves the previous certificate in place.
//! * **The server** ([`UpstreamTls`]): libpq's `sslmode` and `sslrootcert` from the upstream
//!   URL. `disable` and `allow` never negotiate TLS; `prefer` (libpq's default) uses TLS when
//!   the server offers it, without checking the certificate; `require` insists on TLS and checks
//!   the certificate against `sslrootcert` when one is given (as libpq does); `verify-ca` checks
//!   the chain against `sslrootcert`; `verify-full` also checks that the certificate names the
//!   host of the URL. The same settings serve the proxy's sessions, its cancel requests and
//!   its control connections ([`PostgresTls`], a tokio-postgres connector) and the CLI's
//!   database connections. The `sslrootcert` file is re-read by [`UpstreamTls::reload_root_cert`]
//!   (the CLI calls it on `SIGHUP`); every [`UpstreamTls`] of the process that names the same
//!   file follows, so the control connections built from the same URL do too.
//!
//! The channel-binding data of the server's certificate (`tls-server-end-point`, RFC 5929) is
//! computed here so that the proxy can log in with `SCRAM-SHA-256-PLUS` when it terminates
//! authentication (see the crate documentation).

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::task::{Context, Poll};

use aws_lc_rs::digest;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::{aws_lc_rs as provider, CryptoProvider};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::ProxyError;

/// The ALPN protocol name PostgreSQL 17 uses, required for direct TLS.
pub(crate) const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// First byte of a TLS record carrying a handshake: how a direct-TLS client starts.
pub(crate) const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The protocol versions both legs accept.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(provider::default_provider())
}

// ---------------------------------------------------------------------------------------------
// Client leg

/// The certificate and key the proxy presents to clients, reloadable while it runs.
///
/// Cloning is cheap and every clone shares the loaded certificate: keep one to call
/// [`reload`](Self::reload) while the proxy serves with another.
#[derive(Clone)]
pub struct ClientTls {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Paths only: the key stays out of every log.
        f.debug_struct("ClientTls")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        self.cert_path == other.cert_path && self.key_path == other.key_path
    }
}

impl Eq for ClientTls {}

impl ClientTls {
    /// Loads a PEM certificate chain (server certificate first, then intermediates) and its
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    /// [`ProxyError::InvalidConfig`] (setting `tls_cert` or `tls_key`) saying which file cannot
    /// be read or used and why.
    pub fn load(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Self, ProxyError> {
        let cert_path = cert.into();
        let key_path = key.into();
        let config = server_config(&cert_path, &key_path)?;
        Ok(Self {
            cert_path,
            key_path,
            current: Arc::new(RwLock::new(Arc::new(config))),
        })
    }

    /// Re-reads both files; new handshakes use them, open sessions are not affected.
    ///
    /// # Errors
    /// Those of [`load`](Self::load); the certificate in use then stays in use.
    pub fn reload(&self) -> Result<(), ProxyError> {
        let config = server_config(&self.cert_path, &self.key_path)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
        Ok(())
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The private key file.
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        let config = Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner));
        TlsAcceptor::from(config)
    }
}

fn server_config(cert_path: &Path, key_path: &Path) -> Result<ServerConfig, ProxyError> {
    let certs = read_certificates(cert_path, "tls_cert")?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|err| ProxyError::InvalidConfig {
        setting: "tls_key",
        problem: format!(
            "cannot load a PEM private key from {}: {err}; give the unencrypted key \
             (PKCS#8, PKCS#1 or SEC1) of the certificate",
            key_path.display()
        ),
    })?;
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|err| ProxyError::InvalidConfig {
            setting: "tls_cert",
            problem: format!("TLS setup failed: {err}"),
        })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|err| ProxyError::InvalidConfig {
            setting: "tls_key",
            problem: format!(
                "does not fit the certificate in {}: {err}; give the key of that certificate",
                cert_path.display()
            ),
        })?;
    // Direct TLS clients (PostgreSQL 17) must offer it; SSLRequest clients may omit ALPN.
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(config)
}

fn read_certificates(
    path: &Path,
    setting: &'static str,
) -> Result<Vec<CertificateDer<'static>>, ProxyError> {
    let bad = |problem: String| ProxyError::InvalidConfig { setting, problem };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|err| {
            bad(format!(
                "cannot load PEM certificates from {}: {err}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(bad(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

// ---------------------------------------------------------------------------------------------
// Server leg

/// libpq's `sslmode`, as the proxy applies it to its connections to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// No TLS (`disable`; also `allow`, which libpq tries in plain text first).
    Disable,
    /// TLS if the server offers it, certificate not checked (libpq's default).
    Prefer,
    /// TLS or nothing; the certificate is checked against `sslrootcert` if one is given.
    Require,
    /// TLS, certificate chain checked against `sslrootcert`.
    VerifyCa,
    /// TLS, certificate chain checked against `sslrootcert` and naming the server's host.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, ProxyError> {
        Ok(match value {
            "disable" | "allow" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => {
                return Err(ProxyError::InvalidUpstreamUrl {
                    problem: "sslmode must be one of disable, allow, prefer, require, verify-ca, \
                              verify-full"
                        .to_owned(),
                })
            }
        })
    }

    /// The name libpq uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// How the proxy (and the CLI) secure connections to the PostgreSQL server.
///
/// Clones share the CA certificates read from `sslrootcert`, and so does every other
/// `UpstreamTls` of the process built for the same file (see
/// [`reload_root_cert`](Self::reload_root_cert)).
#[derive(Clone)]
pub struct UpstreamTls {
    mode: SslMode,
    root_cert: Option<PathBuf>,
    /// `None` exactly when `mode` is `Disable`.
    config: Option<Arc<ClientConfig>>,
    /// The CAs the certificate is checked against; `None` when no check is made.
    roots: Option<Arc<RootCerts>>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("mode", &self.mode)
            .field("root_cert", &self.root_cert)
            .finish_non_exhaustive()
    }
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.mode == other.mode && self.root_cert == other.root_cert
    }
}

impl Eq for UpstreamTls {}

impl Default for UpstreamTls {
    fn default() -> Self {
        Self::disabled()
    }
}

impl UpstreamTls {
    /// Plain TCP to the server.
    pub fn disabled() -> Self {
        Self {
            mode: SslMode::Disable,
            root_cert: None,
            config: None,
            roots: None,
        }
    }

    /// Settings for `mode`, with `root_cert` (a PEM file of CA certificates) as libpq's
    /// `sslrootcert`.
    ///
    /// The file is read now; if another `UpstreamTls` of the process already uses the same
    /// file, both share what was just read.
    ///
    /// # Errors
    /// [`ProxyError::InvalidUpstreamUrl`] when `verify-ca`/`verify-full` come without a root
    /// certificate file, or the file cannot be read.
    pub fn new(mode: SslMode, root_cert: Option<PathBuf>) -> Result<Self, ProxyError> {
        let (config, roots) = match mode {
            SslMode::Disable => (None, None),
            _ => {
                let (config, roots) = client_config(mode, root_cert.as_deref())?;
                (Some(Arc::new(config)), roots)
            }
        };
        Ok(Self {
            mode,
            root_cert,
            config,
            roots,
        })
    }

    /// Re-reads the `sslrootcert` file: handshakes that start afterwards check the server's
    /// certificate against the CAs it now holds, in every `UpstreamTls` (and [`PostgresTls`])
    /// of the process that names the same file, such as the encryption layer's control
    /// connections built from the same upstream URL. Connections already open are not
    /// affected. Returns the file, or `None` when these settings check no certificate (no
    /// `sslrootcert`, or `sslmode` `disable`/`prefer`), where there is nothing to reload.
    ///
    /// # Errors
    /// [`ProxyError::InvalidConfig`] (setting `sslrootcert`) when the file cannot be read or
    /// holds no usable CA certificate; the CAs in use then stay in use.
    pub fn reload_root_cert(&self) -> Result<Option<&Path>, ProxyError> {
        let Some(roots) = &self.roots else {
            return Ok(None);
        };
        let verifier = root_verifier(&roots.path, crypto_provider()).map_err(|problem| {
            ProxyError::InvalidConfig {
                setting: "sslrootcert",
                problem,
            }
        })?;
        *roots
            .verifier
            .write()
            .unwrap_or_else(PoisonError::into_inner) = verifier;
        Ok(Some(&roots.path))
    }

    /// The `sslrootcert` file, if one was given.
    pub fn root_cert(&self) -> Option<&Path> {
        self.root_cert.as_deref()
    }

    /// The settings named by `sslmode` and `sslrootcert` in a connection string (URL or
    /// `key=value` form); libpq's default `prefer` when it names none.
    ///
    /// # Errors
    /// See [`split_connection_string`].
    pub fn from_connection_string(conn: &str) -> Result<Self, ProxyError> {
        split_connection_string(conn).map(|(_, tls)| tls)
    }

    /// The `sslmode` in force.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// Negotiates TLS on a fresh connection to the server at `host` (SSLRequest, then the
    /// handshake), or returns the plain stream when the mode and the server say so.
    pub(crate) async fn connect(
        &self,
        mut tcp: TcpStream,
        host: &str,
    ) -> Result<Stream, ProxyError> {
        let Some(config) = &self.config else {
            return Ok(Stream::Plain(tcp));
        };
        let failed = |problem: String| ProxyError::UpstreamTls {
            host: host.to_owned(),
            problem,
        };
        // SSLRequest: length 8, code 1234.5679.
        let mut request = [0u8; 8];
        request[..4].copy_from_slice(&8i32.to_be_bytes());
        request[4..].copy_from_slice(&pgseal_wire::SSL_REQUEST_CODE.to_be_bytes());
        tcp.write_all(&request)
            .await
            .map_err(ProxyError::UpstreamIo)?;
        // Exactly one byte: anything the server sent after it must be part of the handshake
        // (rustls authenticates it) and is never read as plain protocol.
        let answer = tcp.read_u8().await.map_err(ProxyError::UpstreamIo)?;
        match answer {
            b'S' => {}
            b'N' if self.mode == SslMode::Prefer => return Ok(Stream::Plain(tcp)),
            b'N' => {
                return Err(failed(format!(
                    "the server does not accept TLS connections, and the upstream URL says \
                     sslmode={}; enable ssl on the server or lower sslmode",
                    self.mode.as_str()
                )))
            }
            _ => {
                return Err(failed(
                    "the server answered the TLS request with neither 'S' nor 'N'; is it a \
                     PostgreSQL server?"
                        .to_owned(),
                ))
            }
        }
        let name = self.server_name(host).map_err(failed)?;
        let tls = TlsConnector::from(Arc::clone(config))
            .connect(name, tcp)
            .await
            .map_err(|err| failed(handshake_problem(&err, self.mode)))?;
        Ok(Stream::ToServer(Box::new(tls)))
    }

    fn server_name(&self, host: &str) -> Result<ServerName<'static>, String> {
        match ServerName::try_from(host.to_owned()) {
            Ok(name) => Ok(name),
            // Only verify-full looks at the name; the others need some name for rustls, and an
            // IP address one sends no SNI.
            Err(_) if self.mode != SslMode::VerifyFull => Ok(ServerName::IpAddress(
                std::net::Ipv4Addr::UNSPECIFIED.into(),
            )),
            Err(_) => Err(format!(
                "sslmode=verify-full needs a DNS name or IP address as host, and {host:?} is \
                 neither"
            )),
        }
    }
}

fn handshake_problem(err: &io::Error, mode: SslMode) -> String {
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(cert)) => {
            let hint = match cert {
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    "the certificate does not name the host of the upstream URL; connect with the \
                     name the certificate was issued for, or use sslmode=verify-ca"
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "the server's certificate has expired; renew it"
                }
                _ => "check that sslrootcert holds the CA that issued the server's certificate",
            };
            format!(
                "the server's certificate was rejected ({err}) under sslmode={}; {hint}",
                mode.as_str()
            )
        }
        Some(other) => format!("TLS handshake with the server failed: {other}"),
        None => format!("TLS handshake with the server failed: {err}"),
    }
}

fn client_config(
    mode: SslMode,
    root_cert: Option<&Path>,
) -> Result<(ClientConfig, Option<Arc<RootCerts>>), ProxyError> {
    let provider = crypto_provider();
    let bad = |problem: String| ProxyError::InvalidUpstreamUrl { problem };
    let mut shared = None;
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, root_cert) {
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(bad(format!(
                "sslmode={} needs sslrootcert=FILE, the PEM file of the CA that issued the \
                 server's certificate",
                mode.as_str()
            )))
        }
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => {
            Arc::new(NoCertificateCheck {
                provider: Arc::clone(&provider),
            })
        }
        (_, Some(path)) => {
            let webpki = root_verifier(path, Arc::clone(&provider))
                .map_err(|problem| bad(format!("sslrootcert: {problem}")))?;
            let roots = RootCerts::share(path, webpki);
            shared = Some(Arc::clone(&roots));
            Arc::new(ChainCheck {
                roots,
                check_name: mode == SslMode::VerifyFull,
            })
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(VERSIONS)
        .map_err(|err| bad(format!("TLS setup failed: {err}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // Required by PostgreSQL 17 for direct TLS; servers that do not look at ALPN ignore it.
    let mut config = config;
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    // A resumed session skips the certificate check, so after `sslrootcert` is reloaded it
    // could reconnect to a server the new CAs no longer vouch for. PostgreSQL issues no
    // session tickets anyway, so resumption would save nothing.
    config.resumption = rustls::client::Resumption::disabled();
    Ok((config, shared))
}

/// A webpki verifier trusting the CA certificates of `path`; the error says what is wrong
/// with the file.
fn root_verifier(
    path: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    let mut roots = RootCertStore::empty();
    let certs = read_certificates(path, "sslrootcert").map_err(|err| match err {
        ProxyError::InvalidConfig { problem, .. } => problem,
        other => other.to_string(),
    })?;
    for cert in certs {
        roots.add(cert).map_err(|err| {
            format!(
                "{} holds a certificate that cannot be used as a CA: {err}; give the PEM file \
                 of the CA that issued the server's certificate",
                path.display()
            )
        })?;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|err| format!("cannot use the CAs in {}: {err}", path.display()))
}

/// The CA certificates of one `sslrootcert` file, shared by every [`UpstreamTls`] of the
/// process that names that file (the path as written), so that one reload reaches the
/// sessions' settings and the control connections' settings alike, although they are parsed
/// separately from the same URL.
struct RootCerts {
    path: PathBuf,
    /// Replaced whole by a reload; each handshake uses the verifier in force when it checks
    /// the certificate.
    verifier: RwLock<Arc<WebPkiServerVerifier>>,
}

impl std::fmt::Debug for RootCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCerts")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Every live [`RootCerts`]; entries die with the last `UpstreamTls` using them.
static ROOT_FILES: Mutex<Vec<Weak<RootCerts>>> = Mutex::new(Vec::new());

impl RootCerts {
    /// The shared entry for `path`, now holding `verifier` (just read from the file, so the
    /// newest contents win for every user of the file).
    fn share(path: &Path, verifier: Arc<WebPkiServerVerifier>) -> Arc<Self> {
        let mut files = ROOT_FILES.lock().unwrap_or_else(PoisonError::into_inner);
        files.retain(|entry| entry.strong_count() > 0);
        if let Some(existing) = files
            .iter()
            .filter_map(Weak::upgrade)
            .find(|entry| entry.path == path)
        {
            *existing
                .verifier
                .write()
                .unwrap_or_else(PoisonError::into_inner) = verifier;
            return existing;
        }
        let entry = Arc::new(Self {
            path: path.to_owned(),
            verifier: RwLock::new(verifier),
        });
        files.push(Arc::downgrade(&entry));
        entry
    }

    fn current(&self) -> Arc<WebPkiServerVerifier> {
        Arc::clone(&self.verifier.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// `sslmode=prefer`/`require` without a root certificate: libpq encrypts without checking
/// who answers. The handshake signature is still verified, so the session is bound to the key
/// of the certificate presented.
#[derive(Debug)]
struct NoCertificateCheck {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `verify-ca` and `verify-full` (and `require` with a root certificate): the chain is
/// checked by webpki; only `verify-full` holds the certificate to the host name.
#[derive(Debug)]
struct ChainCheck {
    roots: Arc<RootCerts>,
    check_name: bool,
}

impl ServerCertVerifier for ChainCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.roots.current().verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // webpki checks the name last, after the chain: a name mismatch means the chain
            // itself is good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.roots
            .current()
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.roots
            .current()
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.roots.current().supported_verify_schemes()
    }
}

// ---------------------------------------------------------------------------------------------
// Connection strings

/// Separates the TLS settings of a PostgreSQL connection string (URL or `key=value` form) from
/// the rest: returns the string as tokio-postgres understands it (`sslmode` mapped to
/// `disable`, `prefer` or `require`, `sslrootcert` removed) and the [`UpstreamTls`] it names.
///
/// # Errors
/// [`ProxyError::InvalidUpstreamUrl`] for an unknown `sslmode`, `verify-ca`/`verify-full`
/// without `sslrootcert`, an unreadable `sslrootcert`, or client-certificate settings
/// (`sslcert`, `sslkey`), which pgseal does not support. The message never repeats the string,
/// which may hold a password.
pub fn split_connection_string(conn: &str) -> Result<(String, UpstreamTls), ProxyError> {
    let url = conn.starts_with("postgres://") || conn.starts_with("postgresql://");
    let (pairs, rebuild): (Vec<Param<'_>>, Rebuild<'_>) = if url {
        let (base, query) = conn.split_once('?').unwrap_or((conn, ""));
        (url_params(query)?, Rebuild::Url(base))
    } else {
        (keyword_params(conn)?, Rebuild::Keywords)
    };
    let mut mode = SslMode::Prefer;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for param in pairs {
        match param.key.as_str() {
            "sslmode" => mode = SslMode::parse(&param.value)?,
            "sslrootcert" => {
                if param.value == "system" {
                    return Err(ProxyError::InvalidUpstreamUrl {
                        problem: "sslrootcert=system is not supported; give the PEM file of the \
                                  server's CA"
                            .to_owned(),
                    });
                }
                root_cert = Some(PathBuf::from(param.value));
            }
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                return Err(ProxyError::InvalidUpstreamUrl {
                    problem: format!(
                        "{} is not supported: pgseal does not present client certificates or \
                         check revocation lists; remove it",
                        param.key
                    ),
                })
            }
            _ => kept.push(param.raw),
        }
    }
    let tls = UpstreamTls::new(mode, root_cert)?;
    let driver_mode = match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        _ => "require",
    };
    let rebuilt = match rebuild {
        Rebuild::Url(base) => {
            kept.push_str_param("sslmode=", driver_mode);
            format!("{base}?{}", kept.join("&"))
        }
        Rebuild::Keywords => {
            kept.push_str_param("sslmode=", driver_mode);
            kept.join(" ")
        }
    };
    Ok((rebuilt, tls))
}

enum Rebuild<'a> {
    Url(&'a str),
    Keywords,
}

struct Param<'a> {
    key: String,
    value: String,
    raw: std::borrow::Cow<'a, str>,
}

trait PushParam {
    fn push_str_param(&mut self, key: &str, value: &str);
}

impl PushParam for Vec<std::borrow::Cow<'_, str>> {
    fn push_str_param(&mut self, key: &str, value: &str) {
        self.push(format!("{key}{value}").into());
    }
}

fn url_params(query: &str) -> Result<Vec<Param<'_>>, ProxyError> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok(Param {
                key: percent_decode(key)?,
                value: percent_decode(value)?,
                raw: pair.into(),
            })
        })
        .collect()
}

fn percent_decode(text: &str) -> Result<String, ProxyError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(decoded) = hex else {
                return Err(ProxyError::InvalidUpstreamUrl {
                    problem: "a '%' in the query is not followed by two hex digits".to_owned(),
                });
            };
            out.push(decoded);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ProxyError::InvalidUpstreamUrl {
        problem: "a query parameter is not valid UTF-8 once percent-decoded".to_owned(),
    })
}

/// `key = value` pairs separated by white space; values may be single-quoted with `\'` and
/// `\\` escapes, as libpq reads them.
fn keyword_params(conn: &str) -> Result<Vec<Param<'_>>, ProxyError> {
    let bad = |problem: &str| ProxyError::InvalidUpstreamUrl {
        problem: problem.to_owned(),
    };
    let mut params = Vec::new();
    let mut rest = conn.trim_start();
    while !rest.is_empty() {
        let start = rest;
        let eq = rest
            .find('=')
            .ok_or_else(|| bad("a key=value connection string has a key without '='"))?;
        let key = rest[..eq].trim().to_owned();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(bad("a key=value connection string has a malformed key"));
        }
        rest = rest[eq + 1..].trim_start();
        let mut value = String::new();
        if let Some(quoted) = rest.strip_prefix('\'') {
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, escaped)) => value.push(escaped),
                        None => break,
                    },
                    '\'' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end.ok_or_else(|| bad("a quoted value is not closed with '"))?;
            rest = &quoted[end..];
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            value.push_str(&rest[..end]);
            rest = &rest[end..];
        }
        let raw = &start[..start.len() - rest.len()];
        params.push(Param {
            key,
            value,
            raw: raw.trim().into(),
        });
        rest = rest.trim_start();
    }
    Ok(params)
}

// ---------------------------------------------------------------------------------------------
// tokio-postgres connector

/// A tokio-postgres TLS connector with the settings of an [`UpstreamTls`], for the proxy's
/// control connections and the CLI: use it with the connection string returned by
/// [`split_connection_string`], which carries the matching `sslmode` for tokio-postgres.
///
/// It offers `tls-server-end-point` channel binding, so tokio-postgres logs in with
/// `SCRAM-SHA-256-PLUS` when the server offers it.
#[derive(Debug, Clone)]
pub struct PostgresTls {
    upstream: UpstreamTls,
}

impl PostgresTls {
    /// A connector with these settings.
    pub fn new(upstream: UpstreamTls) -> Self {
        Self { upstream }
    }
}

/// Builds a tokio-postgres connection config and its TLS connector from a connection string
/// (URL or `key=value`) that may use libpq's `sslmode=verify-ca|verify-full` and
/// `sslrootcert=FILE`, which tokio-postgres alone does not understand.
///
/// # Errors
/// Those of [`split_connection_string`], and [`ProxyError::InvalidUpstreamUrl`] when
/// tokio-postgres rejects the rest of the string (the message never repeats it).
pub fn postgres_config(conn: &str) -> Result<(tokio_postgres::Config, PostgresTls), ProxyError> {
    let (rest, tls) = split_connection_string(conn)?;
    let config =
        rest.parse::<tokio_postgres::Config>()
            .map_err(|err| ProxyError::InvalidUpstreamUrl {
                problem: err.to_string(),
            })?;
    Ok((config, PostgresTls::new(tls)))
}

impl tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket> for PostgresTls {
    type Stream = PostgresTlsStream;
    type TlsConnect = PostgresTlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<PostgresTlsConnect, io::Error> {
        // tokio-postgres asks for a connector before it knows whether TLS will be used (even
        // with sslmode=disable): problems are reported when a handshake is attempted.
        Ok(PostgresTlsConnect {
            config: self.upstream.config.clone(),
            name: self.upstream.server_name(domain),
            mode: self.upstream.mode,
        })
    }
}

/// One pending handshake of [`PostgresTls`].
#[derive(Debug)]
pub struct PostgresTlsConnect {
    config: Option<Arc<ClientConfig>>,
    name: Result<ServerName<'static>, String>,
    mode: SslMode,
}

impl tokio_postgres::tls::TlsConnect<tokio_postgres::Socket> for PostgresTlsConnect {
    type Stream = PostgresTlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<PostgresTlsStream, io::Error>> + Send>>;

    fn connect(self, stream: tokio_postgres::Socket) -> Self::Future {
        Box::pin(async move {
            let mode = self.mode;
            let config = self.config.ok_or_else(|| {
                io::Error::other("TLS was attempted with sslmode=disable; this is a bug in pgseal")
            })?;
            let name = self.name.map_err(io::Error::other)?;
            TlsConnector::from(config)
                .connect(name, stream)
                .await
                .map(|tls| PostgresTlsStream(Box::new(tls)))
                .map_err(|err| io::Error::other(handshake_problem(&err, mode)))
        })
    }
}

/// A TLS stream made by [`PostgresTls`].
pub struct PostgresTlsStream(Box<tokio_rustls::client::TlsStream<tokio_postgres::Socket>>);

impl std::fmt::Debug for PostgresTlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresTlsStream")
    }
}

impl tokio_postgres::tls::TlsStream for PostgresTlsStream {
    fn channel_binding(&self) -> tokio_postgres::tls::ChannelBinding {
        match server_end_point(self.0.get_ref().1) {
            Some(data) => tokio_postgres::tls::ChannelBinding::tls_server_end_point(data),
            None => tokio_postgres::tls::ChannelBinding::none(),
        }
    }
}

impl AsyncRead for PostgresTlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for PostgresTlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------------------------
// Channel binding

/// `tls-server-end-point` (RFC 5929 section 4.1) of the session's server certificate: its hash
/// with the hash function of its signature algorithm, SHA-256 for MD5 and SHA-1. `None` when
/// there is no certificate or its signature algorithm has no such hash (Ed25519, RSA-PSS),
/// where PostgreSQL cannot bind either.
pub(crate) fn server_end_point(conn: &rustls::ClientConnection) -> Option<Vec<u8>> {
    let cert = conn.peer_certificates()?.first()?;
    let algorithm = match signature_algorithm_oid(cert.as_ref())? {
        // md5WithRSA, sha1WithRSA, sha256WithRSA, sha224WithRSA, ecdsa-with-SHA1/224/256,
        // dsa-with-sha1/sha256
        [42, 134, 72, 134, 247, 13, 1, 1, 4 | 5 | 11 | 14]
        | [42, 134, 72, 206, 61, 4, 1]
        | [42, 134, 72, 206, 61, 4, 3, 1 | 2]
        | [42, 134, 72, 206, 56, 4, 3]
        | [96, 134, 72, 1, 101, 3, 4, 3, 2] => &digest::SHA256,
        // sha384WithRSA, ecdsa-with-SHA384
        [42, 134, 72, 134, 247, 13, 1, 1, 12] | [42, 134, 72, 206, 61, 4, 3, 3] => &digest::SHA384,
        // sha512WithRSA, ecdsa-with-SHA512
        [42, 134, 72, 134, 247, 13, 1, 1, 13] | [42, 134, 72, 206, 61, 4, 3, 4] => &digest::SHA512,
        _ => return None,
    };
    Some(digest::digest(algorithm, cert.as_ref()).as_ref().to_vec())
}

/// The OID (content bytes) of `Certificate.signatureAlgorithm`:
/// `SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE { OID, ... }, ... }`.
fn signature_algorithm_oid(der: &[u8]) -> Option<&[u8]> {
    let (tag, certificate, _) = der_element(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, _, rest) = der_element(certificate)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, algorithm, _) = der_element(rest)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, oid, _) = der_element(algorithm)?;
    (tag == 0x06).then_some(oid)
}

/// One DER element: (tag, contents, what follows). Definite lengths only, as DER requires.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, after) = rest.split_at_checked(count)?;
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    let (contents, after) = rest.split_at_checked(len)?;
    Some((tag, contents, after))
}

// ---------------------------------------------------------------------------------------------
// Streams

/// A connection of the proxy: plain TCP, TLS accepted from a client, or TLS to the server.
pub(crate) enum Stream {
    Plain(TcpStream),
    FromClient(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    ToServer(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Left behind while a plain stream is being upgraded; a failed upgrade leaves it for good.
    Detached,
}

impl Stream {
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Self::FromClient(_) | Self::ToServer(_))
    }

    /// The `tls-server-end-point` data of a TLS connection to the server.
    pub(crate) fn server_end_point(&self) -> Option<Vec<u8>> {
        match self {
            Self::ToServer(tls) => server_end_point(tls.get_ref().1),
            _ => None,
        }
    }
}

fn detached() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the connection was closed")
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::FromClient(s) => Pin::new(&mut **s).poll_read(cx, buf),
            Self::ToServer(s) => Pin::new(&mut **s).poll_read(cx, buf),
            Self::Detached => Poll::Ready(Err(detached())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::FromClient(s) => Pin::new(&mut **s).poll_write(cx, buf),
            Self::ToServer(s) => Pin::new(&mut **s).poll_write(cx, buf),
            Self::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::FromClient(s) => Pin::new(&mut **s).poll_flush(cx),
            Self::ToServer(s) => Pin::new(&mut **s).poll_flush(cx),
            Self::Detached => Poll::Ready(Err(detached())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::FromClient(s) => Pin::new(&mut **s).poll_shutdown(cx),
            Self::ToServer(s) => Pin::new(&mut **s).poll_shutdown(cx),
            Self::Detached => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(conn: &str) -> (String, SslMode) {
        let (rest, tls) = split_connection_string(conn).expect(conn);
        (rest, tls.mode())
    }

    #[test]
    fn urls_keep_their_other_parameters() {
        assert_eq!(
            split("postgres://u:p@h:5/db"),
            (
                "postgres://u:p@h:5/db?sslmode=prefer".to_owned(),
                SslMode::Prefer
            )
        );
        assert_eq!(
            split("postgres://h/db?application_name=x&sslmode=disable"),
            (
                "postgres://h/db?application_name=x&sslmode=disable".to_owned(),
                SslMode::Disable
            )
        );
        assert_eq!(
            split("postgresql://h/db?sslmode=require&connect_timeout=3").1,
            SslMode::Require
        );
    }

    #[test]
    fn keyword_strings() {
        let (rest, mode) = split("host=h user='a b\\'c' sslmode=require dbname = x");
        assert_eq!(mode, SslMode::Require);
        assert_eq!(rest, "host=h user='a b\\'c' dbname = x sslmode=require");
        assert!(rest.parse::<tokio_postgres::Config>().is_ok());
    }

    #[test]
    fn verifying_modes_need_a_root_certificate_and_refuse_client_certificates() {
        for conn in [
            "postgres://h/db?sslmode=verify-full",
            "host=h sslmode=verify-ca",
            "postgres://h/db?sslmode=bogus",
            "postgres://u:secretpw@h/db?sslcert=/x",
            "postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
            "postgres://h/db?sslmode=%zz",
        ] {
            let err = split_connection_string(conn).expect_err(conn);
            assert!(
                matches!(err, ProxyError::InvalidUpstreamUrl { .. }),
                "{conn}"
            );
            assert!(!err.to_string().contains("secretpw"));
        }
    }

    #[test]
    fn der_walker_survives_garbage() {
        for input in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x02, 0x30],
        ] {
            assert_eq!(signature_algorithm_oid(input), None);
        }
    }
}
