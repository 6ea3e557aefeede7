//! TLS settings (rustls, with the `ring` provider): the server's
//! certificate and key, the CAs it trusts for client certificates, and the
//! client's roots, identity and server name. Everything here is read once,
//! up front, so a bad file is a clear error at start, never mid-connection.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls::{self, RootCertStore};

/// Why TLS settings could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing of the kind needed.
    #[error("{what} from {path}: {reason}")]
    Pem {
        /// What was being read ("certificates", "private key").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why not.
        reason: String,
    },
    /// rustls refused the combination (a key that does not match its
    /// certificate, an unusable CA…).
    #[error("TLS settings refused: {0}")]
    Rustls(String),
    /// The system's trusted roots could not be loaded.
    #[error("no trusted root certificates found on this system")]
    NoSystemRoots,
    /// The name to check the server's certificate against is not a valid
    /// DNS name or IP address.
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Pem {
        what: "certificates",
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE section".into()));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Pem {
        what: "private key",
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Rustls(format!("CA in {}: {e}", path.display())))?;
    }
    Ok(roots)
}

fn rustls_err(e: rustls::Error) -> TlsError {
    TlsError::Rustls(e.to_string())
}

/// A server's TLS: it then serves TLS only on its port. Cheap to clone;
/// clones share one configuration, so [`ServerTls::reload`] on any of them
/// changes what every new connection gets.
#[derive(Clone)]
pub struct ServerTls {
    /// The configuration new connections get; replaced whole on reload,
    /// so a handshake under way keeps the one it started with.
    config: Arc<std::sync::RwLock<Arc<rustls::ServerConfig>>>,
    /// The files it came from, to read again on reload.
    files: Arc<(PathBuf, PathBuf, Option<PathBuf>)>,
    pub(crate) requires_client_certificate: bool,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field(
                "requires_client_certificate",
                &self.requires_client_certificate,
            )
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// The server's certificate chain and private key, from PEM files; with
    /// `client_ca`, every client must present a certificate signed by one of
    /// those CAs (mutual TLS), and the handler sees it in `PeerInfo`.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
        client_ca: Option<&Path>,
    ) -> Result<ServerTls, TlsError> {
        let files = (
            cert_chain.as_ref().to_owned(),
            key.as_ref().to_owned(),
            client_ca.map(Path::to_owned),
        );
        let config = Self::read(&files)?;
        Ok(ServerTls {
            config: Arc::new(std::sync::RwLock::new(Arc::new(config))),
            files: Arc::new(files),
            requires_client_certificate: client_ca.is_some(),
        })
    }

    /// Reads the certificate chain, key and client CA again, so a renewed
    /// certificate is served without a restart: connections accepted from
    /// now on get it, open ones keep theirs. On an error nothing changes
    /// and the error says what was wrong.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Self::read(&self.files)?;
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        Ok(())
    }

    /// The configuration for a connection accepted now.
    pub(crate) fn current(&self) -> Arc<rustls::ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn read(
        (cert_chain, key, client_ca): &(PathBuf, PathBuf, Option<PathBuf>),
    ) -> Result<rustls::ServerConfig, TlsError> {
        let chain = certificates(cert_chain)?;
        let key = private_key(key)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(rustls_err)?;
        let builder = match client_ca.as_deref() {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots(ca)?),
                    provider(),
                )
                .build()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        builder.with_single_cert(chain, key).map_err(rustls_err)
    }
}

/// A client's TLS: whom it trusts, who it is, and which name it expects
/// the server's certificate to carry. Cheap to clone.
#[derive(Clone)]
pub struct ClientTls {
    pub(crate) config: Arc<rustls::ClientConfig>,
    roots: Arc<RootCertStore>,
    pub(crate) server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts the system's root certificates.
    pub fn system_roots() -> Result<ClientTls, TlsError> {
        let mut roots = RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
        if roots.is_empty() {
            return Err(TlsError::NoSystemRoots);
        }
        ClientTls::with_roots(roots)
    }

    /// Trusts the CA certificates in a PEM file (and nothing else).
    pub fn with_ca_file(ca: impl AsRef<Path>) -> Result<ClientTls, TlsError> {
        ClientTls::with_roots(roots(ca.as_ref())?)
    }

    fn with_roots(roots: RootCertStore) -> Result<ClientTls, TlsError> {
        let roots = Arc::new(roots);
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(rustls_err)?
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        Ok(ClientTls {
            config: Arc::new(config),
            roots,
            server_name: None,
        })
    }

    /// Presents this certificate chain and key to servers that ask (mutual
    /// TLS).
    pub fn with_client_certificate(
        self,
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<ClientTls, TlsError> {
        let chain = certificates(cert_chain.as_ref())?;
        let key = private_key(key.as_ref())?;
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(rustls_err)?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(chain, key)
            .map_err(rustls_err)?;
        Ok(ClientTls {
            config: Arc::new(config),
            ..self
        })
    }

    /// The name the server's certificate must carry (a DNS name, or an IP
    /// address checked as one); without it, the host of the address
    /// connected to.
    pub fn with_server_name(self, name: &str) -> Result<ClientTls, TlsError> {
        let name = ServerName::try_from(name.to_owned())
            .map_err(|_| TlsError::InvalidServerName(name.to_owned()))?;
        Ok(ClientTls {
            server_name: Some(name),
            ..self
        })
    }
}

/// The host part of `HOST:PORT` (brackets of an IPv6 literal removed), as
/// the name a server's certificate is checked against.
pub(crate) fn server_name_of(addr: &str) -> Result<ServerName<'static>, TlsError> {
    let host = match addr.rsplit_once(':') {
        Some((host, _port)) => host,
        None => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|_| TlsError::InvalidServerName(host.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_is_the_host_of_the_address() {
        assert_eq!(
            server_name_of("127.0.0.1:8080").unwrap(),
            ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into())
        );
        assert_eq!(
            server_name_of("example.com:443").unwrap(),
            ServerName::try_from("example.com").unwrap()
        );
        assert!(matches!(
            server_name_of("[::1]:8080").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(server_name_of("bad name:1").is_err());
    }

    #[test]
    fn a_missing_file_is_a_clear_error() {
        let err = ServerTls::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem", None)
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("certificates from /nonexistent/cert.pem"),
            "{err}"
        );
    }
}
