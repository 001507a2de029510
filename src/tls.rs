//! Stratum over TLS (`stratum+tls`, `stratum+ssl`): a port's certificate
//! and key (PEM files), read at start and again on each reload, and the
//! acceptor its connections go through before their first line. The only
//! module that names rustls.
//!
//! A reload that cannot read the new files keeps serving the old
//! certificate and says why: a typo in a renewal never takes a port down.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{crypto, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

pub use crate::config::TlsFiles;
use ndas_core::sync::LockAnyway;

/// A certificate and key that cannot be served, and why.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate {path}: {why}")]
    Certificate { path: String, why: String },
    #[error("cannot read the private key {path}: {why}")]
    Key { path: String, why: String },
    #[error("the key {key} does not fit the certificate {cert}: {why}")]
    Mismatch {
        cert: String,
        key: String,
        why: String,
    },
}

/// One TLS port's certificate, swapped in place by [`Tls::reload`].
pub struct Tls {
    files: TlsFiles,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
}

/// The certificate served now, to every handshake that starts from here on.
#[derive(Debug)]
struct Current(Mutex<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.lock_anyway().clone())
    }
}

impl Tls {
    /// Reads `files`; the port cannot start without them.
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let current = Arc::new(Current(Mutex::new(Arc::new(read(&files)?))));
        let provider = Arc::new(crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        Ok(Tls {
            files,
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Reads the files again; the handshakes that start after it get the
    /// new certificate. On an error the old one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = read(&self.files)?;
        *self.current.0.lock_anyway() = Arc::new(key);
        Ok(())
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The server side of a handshake on `stream`.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.acceptor.accept(stream).await
    }
}

/// The chain and the key, checked against each other.
fn read(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let shown = |path: &Path| path.display().to_string();
    let certificate = |why: String| TlsError::Certificate {
        path: shown(&files.cert),
        why,
    };
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| certificate(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(certificate("no CERTIFICATE block in it".into()));
    }
    // The key's own text never reaches an error or a log.
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Key {
        path: shown(&files.key),
        why: match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no PRIVATE KEY block in it".into(),
            rustls_pki_types::pem::Error::Io(io) => io.to_string(),
            _ => "not a PEM private key".into(),
        },
    })?;
    let provider = crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key {
            path: shown(&files.key),
            why: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| TlsError::Mismatch {
        cert: shown(&files.cert),
        key: shown(&files.key),
        why: e.to_string(),
    })?;
    Ok(certified)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A P-256 certificate and key made by OpenSSL in `dir`, named `name`.
    fn made(dir: &Path, name: &str) -> TlsFiles {
        let files = TlsFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        let status = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(&files.key)
            .arg("-out")
            .arg(&files.cert)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success());
        files
    }

    #[test]
    fn bad_files_are_named_and_a_key_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let good = made(dir.path(), "a");
        Tls::load(good.clone()).unwrap();

        let secret = dir.path().join("secret.key");
        std::fs::write(&secret, "hunter2-not-pem-at-all").unwrap();
        let error = Tls::load(TlsFiles {
            key: secret.clone(),
            ..good.clone()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(error.contains("secret.key"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");

        let other = made(dir.path(), "b");
        let error = Tls::load(TlsFiles {
            key: other.key,
            ..good.clone()
        })
        .err()
        .unwrap();
        assert!(matches!(error, TlsError::Mismatch { .. }), "{error}");

        let missing = TlsFiles {
            cert: dir.path().join("nowhere.crt"),
            ..good
        };
        let error = Tls::load(missing).err().unwrap().to_string();
        assert!(error.contains("nowhere.crt"), "{error}");
    }
}
