//! TLS for the appliance's HTTPS listener: the certificate and key in the data directory
//! (a self-signed pair made at first start, replaceable by the operator's), and an
//! acceptor that speaks TLS 1.2 and 1.3 only.

use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod, SslVersion};
use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName};
use openssl::x509::{X509NameBuilder, X509};

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
        if self.certificate.exists() && self.key.exists() {
            return Ok(false);
        }
        let (certificate, key) = self_signed(names)?;
        if let Some(dir) = self.key.parent() {
            std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        crate::private_file::write(&self.key, &key).map_err(|source| TlsError::Write {
            path: self.key.clone(),
            source,
        })?;
        std::fs::write(&self.certificate, certificate).map_err(|source| TlsError::Write {
            path: self.certificate.clone(),
            source,
        })?;
        Ok(true)
    }

    /// An acceptor for TLS 1.2 and 1.3 with Mozilla's intermediate cipher list.
    pub fn acceptor(&self) -> Result<SslAcceptor, TlsError> {
        let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
        builder.set_min_proto_version(Some(SslVersion::TLS1_2))?;
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
}
