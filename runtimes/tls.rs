//! TLS settings for the client facades (feature `tls`, rustls with the ring
//! provider): which CAs to trust, and an optional client certificate. The driver runs
//! rustls's session between each socket and the client, so TLS works the same under
//! every runtime; the server name sent (SNI) and checked is the broker's host.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::client::ClientError;

#[derive(Clone)]
enum Roots {
    System,
    Pem(Vec<u8>),
}

/// TLS settings: trusted CAs and, optionally, a client certificate.
///
/// ```no_run
/// use kafka_sansio::runtime::{ClientBuilder, TlsConfig};
/// # fn demo() -> Result<(), kafka_sansio::client::ClientError> {
/// let tls = TlsConfig::ca_file("/etc/kafka/ca.pem")?
///     .client_auth_files("/etc/kafka/client.pem", "/etc/kafka/client.key")?;
/// let builder = ClientBuilder::new("kafka.example:9093").tls(tls);
/// # let _ = builder; Ok(()) }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    roots: Roots,
    client_auth: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("system_roots", &matches!(self.roots, Roots::System))
            .field("client_auth", &self.client_auth.is_some())
            .finish()
    }
}

impl TlsConfig {
    /// Trust the operating system's CA store.
    ///
    /// ```
    /// use kafka_sansio::runtime::{ClientBuilder, TlsConfig};
    /// let builder = ClientBuilder::new("kafka.example.com:9093").tls(TlsConfig::system_roots());
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn system_roots() -> Self {
        Self {
            roots: Roots::System,
            client_auth: None,
        }
    }

    /// Trust the CA certificates in this PEM text (only them).
    ///
    /// ```no_run
    /// use kafka_sansio::runtime::{ClientBuilder, TlsConfig};
    /// let pem = std::fs::read("/etc/kafka/ca.pem")?; // or a CA built into the binary
    /// let builder = ClientBuilder::new("kafka.example.com:9093").tls(TlsConfig::ca_pem(pem));
    /// # let _ = builder;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn ca_pem(pem: impl Into<Vec<u8>>) -> Self {
        Self {
            roots: Roots::Pem(pem.into()),
            client_auth: None,
        }
    }

    /// Trust the CA certificates in this PEM file (only them).
    ///
    /// # Errors
    /// The file cannot be read.
    ///
    /// ```
    /// use kafka_sansio::runtime::TlsConfig;
    /// assert!(TlsConfig::ca_file("/no/such/ca.pem").is_err()); // unreadable files fail here, not at connect
    /// ```
    pub fn ca_file(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        Ok(Self::ca_pem(read(path.as_ref())?))
    }

    /// Present this client certificate chain and private key (PEM), for brokers that
    /// require client authentication (mutual TLS).
    ///
    /// ```no_run
    /// use kafka_sansio::runtime::TlsConfig;
    /// let (cert, key) = (std::fs::read("client.pem")?, std::fs::read("client.key")?);
    /// let tls = TlsConfig::system_roots().client_auth_pem(cert, key);
    /// # let _ = tls;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn client_auth_pem(
        mut self,
        cert_chain: impl Into<Vec<u8>>,
        key: impl Into<Vec<u8>>,
    ) -> Self {
        self.client_auth = Some((cert_chain.into(), key.into()));
        self
    }

    /// As [`client_auth_pem`](Self::client_auth_pem), from files.
    ///
    /// # Errors
    /// A file cannot be read.
    ///
    /// ```no_run
    /// use kafka_sansio::runtime::TlsConfig;
    /// let tls = TlsConfig::ca_file("ca.pem")?.client_auth_files("client.pem", "client.key")?;
    /// # let _ = tls;
    /// # Ok::<(), kafka_sansio::client::ClientError>(())
    /// ```
    pub fn client_auth_files(
        self,
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, ClientError> {
        let (c, k) = (read(cert_chain.as_ref())?, read(key.as_ref())?);
        Ok(self.client_auth_pem(c, k))
    }

    /// The rustls configuration.
    pub(crate) fn into_rustls(self) -> Result<Arc<rustls::ClientConfig>, ClientError> {
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            ClientError::InvalidArgument(format!("TLS {what}: {e}"))
        };
        let mut roots = rustls::RootCertStore::empty();
        match &self.roots {
            Roots::System => {
                let found = rustls_native_certs::load_native_certs();
                for cert in found.certs {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(ClientError::InvalidArgument(
                        "TLS: no CA certificates found in the system store".into(),
                    ));
                }
            }
            Roots::Pem(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| bad("CA certificate", &e))?;
                    roots.add(cert).map_err(|e| bad("CA certificate", &e))?;
                }
                if roots.is_empty() {
                    return Err(ClientError::InvalidArgument(
                        "TLS: the CA PEM holds no certificate".into(),
                    ));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("protocol versions", &e))?
            .with_root_certificates(roots);
        let config = match &self.client_auth {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => {
                let chain = CertificateDer::pem_slice_iter(chain)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad("client certificate", &e))?;
                let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| bad("client key", &e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| bad("client certificate", &e))?
            }
        };
        Ok(Arc::new(config))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path)
        .map_err(|e| ClientError::InvalidArgument(format!("cannot read {}: {e}", path.display())))
}
