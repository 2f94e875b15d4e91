//! TLS for the admin listener (rustls, aws-lc-rs): the server's certificate
//! chain and key from PEM files, swapped on SIGHUP without dropping a
//! connection, and, with `admin.client-ca`, client certificates required
//! and verified against it. Also the client side the CLI uses for its admin
//! calls.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

/// `[admin]` TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM, leaf first).
    pub certificate: PathBuf,
    /// Its private key (PEM: PKCS#8, SEC1 or PKCS#1). A secret.
    pub key: PathBuf,
    /// CA certificates (PEM) client certificates must chain to; when set, a
    /// client certificate is required.
    pub client_ca: Option<PathBuf>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Every certificate in a PEM file.
pub fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{}: no CERTIFICATE in it",
        path.display()
    );
    Ok(certs)
}

/// The private key in a PEM file.
pub fn private_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    // The error never shows the file's content.
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| anyhow::anyhow!("{}: no usable private key ({e})", path.display()))
}

/// The chain and key, checked to belong together.
fn certified_key(files: &TlsFiles) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain = certificates(&files.certificate)?;
    let key = private_key(&files.key)?;
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        anyhow::anyhow!(
            "{} and {} do not make a usable certificate and key: {e}",
            files.certificate.display(),
            files.key.display()
        )
    })?;
    Ok(Arc::new(certified))
}

/// The server certificate in use, swapped by [`AdminTls::reload`].
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.0.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

/// The admin listener's TLS: the acceptor and what reloads its certificate.
pub struct AdminTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    current: Arc<Current>,
    files: TlsFiles,
}

impl std::fmt::Debug for AdminTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl AdminTls {
    pub fn load(files: &TlsFiles) -> anyhow::Result<Self> {
        let current = Arc::new(Current(RwLock::new(certified_key(files)?)));
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match &files.client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in certificates(ca)? {
                    roots
                        .add(c)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config =
            builder.with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            current,
            files: files.clone(),
        })
    }

    /// SIGHUP: reads the certificate and key again; on an error the old
    /// ones stay (logged by the caller).
    pub fn reload(&self) -> anyhow::Result<()> {
        let new = certified_key(&self.files)?;
        *self.current.0.write().unwrap_or_else(|p| p.into_inner()) = new;
        Ok(())
    }
}

/// A client config for the CLI: trusts every certificate in `roots` (a CA
/// bundle, or the server's own certificate file: a self-signed certificate,
/// or a chain whose issuers then anchor it), with an optional client
/// certificate and key.
pub fn client_config(
    roots: &[PathBuf],
    identity: Option<(&Path, &Path)>,
) -> anyhow::Result<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for path in roots {
        for c in certificates(path)? {
            // A leaf that is not a CA still anchors itself when self-signed.
            let _ = store.add(c);
        }
    }
    anyhow::ensure!(
        !store.is_empty(),
        "no usable trust anchor in {}",
        roots
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store);
    let mut config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(certificates(cert)?, private_key(key)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
