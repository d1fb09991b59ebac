//! TLS for the appliance's HTTPS listener: the certificate and key in the data directory
//! (a self-signed pair made at first start, replaceable by the operator's), and an
//! acceptor that speaks TLS 1.2 and 1.3 only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::ssl::{SslAcceptor, SslAcceptorBuilder, SslFiletype, SslMethod, SslVersion};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName};
use openssl::x509::{X509NameBuilder, X509};
use parking_lot::RwLock;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate {path}: {message}")]
    Certificate { path: PathBuf, message: String },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS set-up: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

/// The acceptor a listener uses for its next connection; replaced when the operator
/// installs a certificate.
pub type SharedAcceptor = Arc<RwLock<Arc<SslAcceptor>>>;

pub fn shared(acceptor: SslAcceptor) -> SharedAcceptor {
    Arc::new(RwLock::new(Arc::new(acceptor)))
}

/// What an installed certificate is, for the operator and the audit log.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    pub not_after: String,
    pub sha256: String,
}

pub struct CertificateFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

impl CertificateFiles {
    pub fn in_data_dir(data_dir: &Path) -> Self {
        let dir = data_dir.join("tls");
        Self {
            certificate: dir.join("certificate.pem"),
            key: dir.join("key.pem"),
        }
    }

    /// Creates a self-signed certificate for `names` (DNS names or IP addresses) unless
    /// both files exist. Returns whether it made one.
    pub fn ensure(&self, names: &[String]) -> Result<bool, TlsError> {
        self.finish_pending()?;
        if self.certificate.exists() && self.key.exists() {
            return Ok(false);
        }
        let (certificate, key) = self_signed(names)?;
        self.write_pair(&certificate, &key)?;
        Ok(true)
    }

    /// The folder of the files; a pair being installed waits in it as `pending/`.
    fn dir(&self) -> PathBuf {
        self.key
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    /// Replaces the pair so that a crash at any point leaves the old pair or the new one,
    /// never a certificate with the other's key: both are written and synced into
    /// `pending.tmp/`, whose rename to `pending/` commits them; then they are moved over the
    /// live files ([`Self::finish_pending`], redone at the next start if cut short).
    fn write_pair(&self, certificate: &[u8], key: &[u8]) -> Result<(), TlsError> {
        let dir = self.dir();
        let staging = dir.join("pending.tmp");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(write_error(&staging))?;
        crate::private_file::write(&staging.join("key.pem"), key).map_err(write_error(&staging))?;
        crate::private_file::write(&staging.join("certificate.pem"), certificate)
            .map_err(write_error(&staging))?;
        let pending = dir.join("pending");
        std::fs::rename(&staging, &pending).map_err(write_error(&pending))?;
        crate::private_file::sync_dir(&dir).map_err(write_error(&dir))?;
        self.finish_pending()
    }

    /// Completes an install that a crash cut short after its commit point; drops one cut
    /// short before it.
    fn finish_pending(&self) -> Result<(), TlsError> {
        let dir = self.dir();
        let _ = std::fs::remove_dir_all(dir.join("pending.tmp"));
        let pending = dir.join("pending");
        if !pending.is_dir() {
            return Ok(());
        }
        for (name, target) in [
            ("key.pem", &self.key),
            ("certificate.pem", &self.certificate),
        ] {
            let from = pending.join(name);
            if from.exists() {
                std::fs::rename(&from, target).map_err(write_error(target))?;
            }
        }
        std::fs::remove_dir(&pending).map_err(write_error(&pending))?;
        crate::private_file::sync_dir(&dir).map_err(write_error(&dir))
    }

    /// Checks an uploaded certificate chain and key (PEM) and, if they belong together and
    /// the certificate is valid now, writes them in place of the current pair. Returns an
    /// acceptor for them (the caller swaps it in) and what the certificate is.
    pub fn install(
        &self,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<(SslAcceptor, CertificateInfo), TlsError> {
        let bad = |message: String| TlsError::Certificate {
            path: self.certificate.clone(),
            message,
        };
        let chain = X509::stack_from_pem(chain_pem.as_bytes())
            .map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
        let leaf = chain
            .first()
            .ok_or_else(|| bad("no certificate in the upload".into()))?;
        let key = PKey::private_key_from_pem(key_pem.as_bytes())
            .map_err(|e| bad(format!("not a PEM private key: {e}")))?;
        if !leaf.public_key()?.public_eq(&key) {
            return Err(bad("the key does not belong to the certificate".into()));
        }
        let now = Asn1Time::days_from_now(0)?;
        if leaf.not_after() < now || leaf.not_before() > now {
            return Err(bad(format!(
                "not valid now (valid {} to {})",
                leaf.not_before(),
                leaf.not_after()
            )));
        }
        let mut builder = mozilla_intermediate()?;
        builder.set_certificate(leaf)?;
        for extra in chain.iter().skip(1) {
            builder.add_extra_chain_cert(extra.clone())?;
        }
        builder.set_private_key(&key)?;
        builder.check_private_key()?;
        let info = CertificateInfo {
            subject: names_of(leaf.subject_name()),
            issuer: names_of(leaf.issuer_name()),
            not_after: leaf.not_after().to_string(),
            sha256: leaf
                .digest(MessageDigest::sha256())?
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        };
        let mut pem = Vec::new();
        for certificate in &chain {
            pem.extend(certificate.to_pem()?);
        }
        self.write_pair(&pem, &key.private_key_to_pem_pkcs8()?)?;
        Ok((builder.build(), info))
    }

    /// An acceptor for TLS 1.2 and 1.3 with Mozilla's intermediate cipher list.
    pub fn acceptor(&self) -> Result<SslAcceptor, TlsError> {
        self.finish_pending()?;
        let mut builder = mozilla_intermediate()?;
        let failed = |path: &Path, e: openssl::error::ErrorStack| TlsError::Certificate {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        builder
            .set_certificate_chain_file(&self.certificate)
            .map_err(|e| failed(&self.certificate, e))?;
        builder
            .set_private_key_file(&self.key, SslFiletype::PEM)
            .map_err(|e| failed(&self.key, e))?;
        builder
            .check_private_key()
            .map_err(|e| failed(&self.key, e))?;
        Ok(builder.build())
    }
}

fn mozilla_intermediate() -> Result<SslAcceptorBuilder, TlsError> {
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    builder.set_min_proto_version(Some(SslVersion::TLS1_2))?;
    Ok(builder)
}

fn names_of(name: &openssl::x509::X509NameRef) -> String {
    name.entries()
        .filter_map(|e| {
            let key = e.object().nid().short_name().ok()?;
            let value = e.data().to_string().ok()?;
            Some(format!("{key}={value}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A P-256 key and a ten-year self-signed certificate naming `names`.
fn self_signed(names: &[String]) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, "Vigil appliance")?;
    let name = name.build();
    let mut builder = X509::builder()?;
    builder.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(&key)?;
    let (not_before, not_after) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(3650)?);
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    builder.append_extension(BasicConstraints::new().critical().build()?)?;
    builder.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    let mut alternative = SubjectAlternativeName::new();
    for entry in names {
        if entry.parse::<std::net::IpAddr>().is_ok() {
            alternative.ip(entry);
        } else {
            alternative.dns(entry);
        }
    }
    let alternative = alternative.build(&builder.x509v3_context(None, None))?;
    builder.append_extension(alternative)?;
    builder.sign(&key, MessageDigest::sha256())?;
    Ok((builder.build().to_pem()?, key.private_key_to_pem_pkcs8()?))
}

/// The acceptor for a listener on `address`: the data directory's certificate, made
/// self-signed (for the host name, `localhost` and the address) when there is none.
/// Maps a failed write of `path` to the error that names it.
fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError {
    let path = path.to_path_buf();
    move |source| TlsError::Write { path, source }
}

pub fn acceptor_for(
    data_dir: &Path,
    address: Option<std::net::SocketAddr>,
) -> Result<SslAcceptor, TlsError> {
    let files = CertificateFiles::in_data_dir(data_dir);
    let mut names = vec![onvif::system::hostname(), "localhost".to_string()];
    names.extend(address.map(|a| a.ip().to_string()));
    if files.ensure(&names)? {
        tracing::info!(certificate = %files.certificate.display(), "made a self-signed TLS certificate");
    }
    files.acceptor()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_usable_pair_once_with_a_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = CertificateFiles::in_data_dir(dir.path());
        assert!(files
            .ensure(&["127.0.0.1".into(), "vigil.local".into()])
            .unwrap());
        let first = std::fs::read(&files.certificate).unwrap();
        assert!(!files.ensure(&["127.0.0.1".into()]).unwrap());
        assert_eq!(std::fs::read(&files.certificate).unwrap(), first);
        let mode = std::fs::metadata(&files.key).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        files.acceptor().unwrap();
    }

    #[test]
    fn an_uploaded_pair_is_checked_before_it_replaces_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let files = CertificateFiles::in_data_dir(dir.path());
        files.ensure(&["127.0.0.1".into()]).unwrap();
        let current = std::fs::read(&files.certificate).unwrap();
        let (certificate, key) = self_signed(&["vigil.example".into()]).unwrap();
        let (_, other_key) = self_signed(&["x".into()]).unwrap();
        let (certificate, key, other_key) = (
            String::from_utf8(certificate).unwrap(),
            String::from_utf8(key).unwrap(),
            String::from_utf8(other_key).unwrap(),
        );
        let Err(error) = files.install(&certificate, &other_key) else {
            panic!("a key of another certificate was accepted");
        };
        assert!(error.to_string().contains("does not belong"), "{error}");
        assert!(files.install("garbage", &key).is_err());
        assert_eq!(std::fs::read(&files.certificate).unwrap(), current);
        let (_, info) = files.install(&certificate, &key).unwrap();
        assert!(info.subject.contains("Vigil appliance"), "{info:?}");
        assert_eq!(
            std::fs::read_to_string(&files.certificate).unwrap(),
            certificate
        );
        files.acceptor().unwrap();
    }

    #[test]
    fn an_install_cut_short_leaves_a_matching_pair() {
        let dir = tempfile::tempdir().unwrap();
        let files = CertificateFiles::in_data_dir(dir.path());
        files.ensure(&["127.0.0.1".into()]).unwrap();
        let old = std::fs::read(&files.certificate).unwrap();
        let (certificate, key) = self_signed(&["vigil.example".into()]).unwrap();
        let tls = dir.path().join("tls");
        // Cut before the commit point: the half-written staging is dropped, the old pair stays.
        std::fs::create_dir(tls.join("pending.tmp")).unwrap();
        std::fs::write(tls.join("pending.tmp/key.pem"), &key).unwrap();
        files.acceptor().unwrap();
        assert_eq!(std::fs::read(&files.certificate).unwrap(), old);
        assert!(!tls.join("pending.tmp").exists());
        // Cut after it, with the key already moved and the certificate not: completed at the
        // next start.
        std::fs::create_dir(tls.join("pending")).unwrap();
        std::fs::write(tls.join("pending/certificate.pem"), &certificate).unwrap();
        std::fs::write(&files.key, &key).unwrap();
        files.acceptor().expect("the pair matches again");
        assert_eq!(std::fs::read(&files.certificate).unwrap(), certificate);
        assert!(!tls.join("pending").exists());
    }
}
