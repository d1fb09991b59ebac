//! The update bundle: one uncompressed tar (`tar tvf` shows it) holding, in this order,
//! `manifest.json`, `manifest.sig` (Ed25519 over the manifest's exact bytes) and the
//! payload files the manifest names with their sizes and SHA-256 digests: the root
//! squashfs, the kernel and the initrd. Only the manifest is signed; the digests bind the
//! rest. A bundle is read twice: once to verify everything before anything is written
//! ([`verify`]), once to write (the installer hashes again as it copies).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use openssl::pkey::{Id, PKey, Private, Public};
use openssl::sha::Sha256;
use openssl::sign::{Signer, Verifier};
use serde::{Deserialize, Serialize};

use crate::data_format;

/// The bundle layout this code reads and writes.
pub const FORMAT: u32 = 1;
pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.sig";
pub const ROOT: &str = "root.squashfs";
pub const KERNEL: &str = "vmlinuz";
pub const INITRD: &str = "initrd.img";
/// The payload, in the order the bundle holds it.
pub const PAYLOAD: [&str; 3] = [ROOT, KERNEL, INITRD];
const PRODUCT: &str = "vigil";
/// A manifest is a few hundred bytes; anything near this is not one.
const MAX_MANIFEST: u64 = 64 * 1024;
const MAX_SIGNATURE: u64 = 1024;
const CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not an update bundle: {0}")]
    Malformed(String),
    #[error("update key {path}: {why}")]
    Key { path: PathBuf, why: String },
    #[error("the bundle's signature does not verify with the appliance's update key: it was not made by the holder of the release key, or the manifest was changed")]
    Signature,
    #[error("{name}: its SHA-256 is not the one the signed manifest gives: the bundle was changed or damaged after signing")]
    Digest { name: String },
    #[error("this bundle cannot be applied here: {0}")]
    Incompatible(String),
    #[error("signing: {0}")]
    Sign(String),
}

/// What a release says about itself; signed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub product: String,
    pub version: String,
    pub architecture: String,
    /// The data format the release's daemon writes (`data_format`).
    pub data_format: u32,
    /// The oldest and newest data formats it reads (a migration reads older ones).
    pub reads_data_formats: [u32; 2],
    /// Kernel command line, without `root=` (the installer names the slot).
    pub cmdline: String,
    pub source_date_epoch: i64,
    pub files: Vec<PayloadFile>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// A verified bundle: its manifest and where each payload file's bytes lie in it.
#[derive(Clone, Debug)]
pub struct Verified {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub payload: Vec<Located>,
}

#[derive(Clone, Debug)]
pub struct Located {
    pub file: PayloadFile,
    /// Offset of the file's first byte in the bundle.
    pub offset: u64,
}

impl Verified {
    pub fn get(&self, name: &str) -> Option<&Located> {
        self.payload.iter().find(|l| l.file.name == name)
    }
}

/// The appliance's update public key (PEM, Ed25519).
pub fn load_public_key(path: &Path) -> Result<PKey<Public>, BundleError> {
    let key_error = |why: String| BundleError::Key {
        path: path.to_path_buf(),
        why,
    };
    let pem = std::fs::read(path).map_err(|e| key_error(e.to_string()))?;
    let key = PKey::public_key_from_pem(&pem).map_err(|e| key_error(e.to_string()))?;
    if key.id() != Id::ED25519 {
        return Err(key_error("not an Ed25519 public key".into()));
    }
    Ok(key)
}

pub fn load_private_key(path: &Path) -> Result<PKey<Private>, BundleError> {
    let key_error = |why: String| BundleError::Key {
        path: path.to_path_buf(),
        why,
    };
    let pem = std::fs::read(path).map_err(|e| key_error(e.to_string()))?;
    let key = PKey::private_key_from_pem(&pem).map_err(|e| key_error(e.to_string()))?;
    if key.id() != Id::ED25519 {
        return Err(key_error("not an Ed25519 private key".into()));
    }
    Ok(key)
}

/// Checks the bundle at `path` whole: layout, signature, manifest, every payload digest.
/// Nothing is written.
pub fn verify(path: &Path, key: &PKey<Public>) -> Result<Verified, BundleError> {
    let io = |source| BundleError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut archive = tar::Archive::new(file);
    let mut entries = archive.entries().map_err(io)?;
    let mut next = |expected: &str| -> Result<tar::Entry<'_, File>, BundleError> {
        let entry = entries
            .next()
            .ok_or_else(|| BundleError::Malformed(format!("it ends before {expected}")))?
            .map_err(|e| BundleError::Malformed(format!("unreadable tar header: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| BundleError::Malformed(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        if name != expected {
            return Err(BundleError::Malformed(format!(
                "found {name:?} where {expected} belongs"
            )));
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(BundleError::Malformed(format!(
                "{name} is not a plain file"
            )));
        }
        Ok(entry)
    };
    let manifest_bytes = read_small(next(MANIFEST)?, MANIFEST, MAX_MANIFEST)?;
    let signature = read_small(next(SIGNATURE)?, SIGNATURE, MAX_SIGNATURE)?;
    check_signature(key, &manifest_bytes, &signature)?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| BundleError::Malformed(format!("{MANIFEST}: {e}")))?;
    manifest.check_layout()?;

    let mut payload = Vec::new();
    for file in &manifest.files {
        let mut entry = next(&file.name)?;
        if entry.size() != file.size {
            return Err(BundleError::Malformed(format!(
                "{} holds {} bytes, the manifest says {}",
                file.name,
                entry.size(),
                file.size
            )));
        }
        let offset = entry.raw_file_position();
        let digest = hash_reader(&mut entry, file.size).map_err(io)?;
        if digest != file.sha256 {
            return Err(BundleError::Digest {
                name: file.name.clone(),
            });
        }
        payload.push(Located {
            file: file.clone(),
            offset,
        });
    }
    if let Some(extra) = entries.next() {
        let name = extra
            .ok()
            .and_then(|e| e.path().ok().map(|p| p.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "an unreadable entry".into());
        return Err(BundleError::Malformed(format!(
            "{name} follows the payload; the manifest names no such file"
        )));
    }
    Ok(Verified {
        path: path.to_path_buf(),
        manifest,
        payload,
    })
}

fn read_small(
    mut entry: tar::Entry<'_, File>,
    name: &str,
    max: u64,
) -> Result<Vec<u8>, BundleError> {
    if entry.size() > max {
        return Err(BundleError::Malformed(format!(
            "{name} is {} bytes, more than {max}",
            entry.size()
        )));
    }
    let mut bytes = Vec::new();
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| BundleError::Malformed(format!("{name}: {e}")))?;
    Ok(bytes)
}

fn check_signature(
    key: &PKey<Public>,
    manifest: &[u8],
    signature: &[u8],
) -> Result<(), BundleError> {
    let mut verifier = Verifier::new_without_digest(key).map_err(|_| BundleError::Signature)?;
    match verifier.verify_oneshot(signature, manifest) {
        Ok(true) => Ok(()),
        _ => Err(BundleError::Signature),
    }
}

/// SHA-256 (lower-case hex) of exactly `len` bytes of `reader`.
pub fn hash_reader(reader: &mut impl Read, len: u64) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0; CHUNK];
    let mut left = len;
    while left > 0 {
        let want = left.min(CHUNK as u64) as usize;
        reader.read_exact(&mut buf[..want])?;
        hasher.update(&buf[..want]);
        left -= want as u64;
    }
    Ok(hex(&hasher.finish()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Manifest {
    /// What every bundle of this format must hold, whatever the appliance.
    fn check_layout(&self) -> Result<(), BundleError> {
        let bad = |why: String| Err(BundleError::Malformed(why));
        if self.format != FORMAT {
            return bad(format!(
                "bundle format {} (this appliance reads format {FORMAT})",
                self.format
            ));
        }
        let names: Vec<&str> = self.files.iter().map(|f| f.name.as_str()).collect();
        if names != PAYLOAD {
            return bad(format!("the manifest names {names:?}, not {PAYLOAD:?}"));
        }
        if let Some(f) = self
            .files
            .iter()
            .find(|f| f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return bad(format!("{}: not a SHA-256 digest", f.name));
        }
        if self.version.is_empty()
            || self.version.len() > 128
            || self.version.chars().any(|c| c.is_control())
        {
            return bad("no usable version".into());
        }
        if self.cmdline.contains("root=") || self.cmdline.chars().any(|c| c.is_control()) {
            return bad("the kernel command line names a root or holds control characters".into());
        }
        Ok(())
    }

    /// Whether this release can replace the running one on this box, and the running one
    /// can still read the data after a rollback.
    pub fn check_compatible(&self, on_disk_format: Option<u32>) -> Result<(), BundleError> {
        let refuse = |why: String| Err(BundleError::Incompatible(why));
        if self.product != PRODUCT {
            return refuse(format!("it is for {:?}, not {PRODUCT}", self.product));
        }
        if self.architecture != std::env::consts::ARCH {
            return refuse(format!(
                "it is built for {}, this appliance is {}",
                self.architecture,
                std::env::consts::ARCH
            ));
        }
        let [oldest, newest] = self.reads_data_formats;
        let current = on_disk_format.unwrap_or(data_format::WRITES);
        if !(oldest..=newest).contains(&current) {
            return refuse(format!(
                "version {} reads data formats {oldest} to {newest}, this appliance's data is \
                 format {current}: update through a release that reads both first",
                self.version
            ));
        }
        if !data_format::READS.contains(&self.data_format) {
            return refuse(format!(
                "version {} writes data format {}, which the running version cannot read: a \
                 rollback would find its data unreadable. Copy the data partition away, then \
                 install the release from its image",
                self.version, self.data_format
            ));
        }
        Ok(())
    }
}

/// What `pack` puts in a bundle besides the files.
pub struct Release {
    pub version: String,
    pub cmdline: String,
    pub source_date_epoch: i64,
}

/// Writes a signed bundle of `files` (the payload names, in order, with their paths) to
/// `out`. The same inputs and key give the same bytes (Ed25519 signatures are
/// deterministic; every tar header is fixed).
pub fn pack(
    out: &Path,
    key: &PKey<Private>,
    release: &Release,
    files: &[(&str, &Path)],
) -> Result<Manifest, BundleError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BundleError::Io { path, source }
    };
    let mut described = Vec::new();
    for (name, path) in files {
        let mut file = File::open(path).map_err(io(path))?;
        let size = file.seek(SeekFrom::End(0)).map_err(io(path))?;
        file.rewind().map_err(io(path))?;
        let sha256 = hash_reader(&mut file, size).map_err(io(path))?;
        described.push(PayloadFile {
            name: name.to_string(),
            size,
            sha256,
        });
    }
    let manifest = Manifest {
        format: FORMAT,
        product: PRODUCT.into(),
        version: release.version.clone(),
        architecture: std::env::consts::ARCH.into(),
        data_format: data_format::WRITES,
        reads_data_formats: [*data_format::READS.start(), *data_format::READS.end()],
        cmdline: release.cmdline.clone(),
        source_date_epoch: release.source_date_epoch,
        files: described,
    };
    manifest.check_layout()?;
    let mut manifest_bytes = serde_json::to_vec_pretty(&manifest).expect("manifests serialise");
    manifest_bytes.push(b'\n');
    let signature = Signer::new_without_digest(key)
        .and_then(|mut s| s.sign_oneshot_to_vec(&manifest_bytes))
        .map_err(|e| BundleError::Sign(e.to_string()))?;

    let partial = out.with_extension("partial");
    let file = File::create(&partial).map_err(io(&partial))?;
    let mut builder = tar::Builder::new(file);
    let header = |size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(release.source_date_epoch.max(0) as u64);
        h.set_entry_type(tar::EntryType::Regular);
        h
    };
    let append = |builder: &mut tar::Builder<File>, name: &str, size: u64, data: &mut dyn Read| {
        let mut h = header(size);
        builder.append_data(&mut h, name, data)
    };
    append(
        &mut builder,
        MANIFEST,
        manifest_bytes.len() as u64,
        &mut manifest_bytes.as_slice(),
    )
    .map_err(io(&partial))?;
    append(
        &mut builder,
        SIGNATURE,
        signature.len() as u64,
        &mut signature.as_slice(),
    )
    .map_err(io(&partial))?;
    for ((name, path), described) in files.iter().zip(&manifest.files) {
        let mut file = File::open(path).map_err(io(path))?;
        append(&mut builder, name, described.size, &mut file).map_err(io(path))?;
    }
    let mut file = builder.into_inner().map_err(io(&partial))?;
    file.flush().map_err(io(&partial))?;
    file.sync_all().map_err(io(&partial))?;
    std::fs::rename(&partial, out).map_err(io(out))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
        private: PKey<Private>,
        public: PKey<Public>,
    }

    fn fixture() -> Fixture {
        let private = PKey::generate_ed25519().unwrap();
        let public =
            PKey::public_key_from_raw_bytes(&private.raw_public_key().unwrap(), Id::ED25519)
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        for (name, len) in [(ROOT, 3 << 20), (KERNEL, 1000), (INITRD, 5000)] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        Fixture {
            dir,
            private,
            public,
        }
    }

    fn release() -> Release {
        Release {
            version: "0.2.0+gabc".into(),
            cmdline: "rootfstype=squashfs ro".into(),
            source_date_epoch: 1_700_000_000,
        }
    }

    fn pack_to(f: &Fixture, out: &Path) -> Manifest {
        let paths: Vec<PathBuf> = PAYLOAD.iter().map(|n| f.dir.path().join(n)).collect();
        let files: Vec<(&str, &Path)> = PAYLOAD
            .iter()
            .copied()
            .zip(paths.iter().map(PathBuf::as_path))
            .collect();
        pack(out, &f.private, &release(), &files).unwrap()
    }

    #[test]
    fn a_packed_bundle_verifies_and_locates_its_files() {
        let f = fixture();
        let out = f.dir.path().join("b.bundle");
        let manifest = pack_to(&f, &out);
        let verified = verify(&out, &f.public).unwrap();
        assert_eq!(verified.manifest, manifest);
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(bytes.len() % 512, 0, "a whole number of tar blocks");
        for located in &verified.payload {
            let start = located.offset as usize;
            let content = &bytes[start..start + located.file.size as usize];
            let original = std::fs::read(f.dir.path().join(&located.file.name)).unwrap();
            assert_eq!(content, original.as_slice(), "{}", located.file.name);
        }
        let again = f.dir.path().join("again.bundle");
        pack_to(&f, &again);
        assert_eq!(
            std::fs::read(&again).unwrap(),
            bytes,
            "packing is reproducible"
        );
    }

    #[test]
    fn a_flipped_byte_anywhere_is_refused() {
        let f = fixture();
        let out = f.dir.path().join("b.bundle");
        pack_to(&f, &out);
        let good = std::fs::read(&out).unwrap();
        let verified = verify(&out, &f.public).unwrap();
        // In the manifest, in the signature (after the manifest's blocks and its own
        // header), and in each payload file.
        let manifest_len = serde_json::to_vec_pretty(&verified.manifest).unwrap().len() + 1;
        let signature_at = 512 + manifest_len.div_ceil(512) * 512 + 512;
        let mut spots = vec![512 + 20, signature_at + 3];
        spots.extend(
            verified
                .payload
                .iter()
                .map(|l| (l.offset + l.file.size / 2) as usize),
        );
        for spot in spots {
            let mut bad = good.clone();
            bad[spot] ^= 0x01;
            std::fs::write(&out, &bad).unwrap();
            let err = verify(&out, &f.public).unwrap_err();
            assert!(
                matches!(err, BundleError::Signature | BundleError::Digest { .. }),
                "byte {spot}: {err}"
            );
        }
    }

    #[test]
    fn another_key_and_a_cut_bundle_are_refused() {
        let f = fixture();
        let out = f.dir.path().join("b.bundle");
        pack_to(&f, &out);
        let stranger = PKey::generate_ed25519().unwrap();
        let stranger =
            PKey::public_key_from_raw_bytes(&stranger.raw_public_key().unwrap(), Id::ED25519)
                .unwrap();
        assert!(matches!(
            verify(&out, &stranger),
            Err(BundleError::Signature)
        ));
        let bytes = std::fs::read(&out).unwrap();
        std::fs::write(&out, &bytes[..bytes.len() / 2]).unwrap();
        assert!(verify(&out, &f.public).is_err());
        std::fs::write(&out, b"not a tar at all").unwrap();
        assert!(verify(&out, &f.public).is_err());
    }

    #[test]
    fn data_formats_the_running_version_cannot_read_back_are_refused() {
        let mut m = Manifest {
            format: FORMAT,
            product: PRODUCT.into(),
            version: "9".into(),
            architecture: std::env::consts::ARCH.into(),
            data_format: data_format::WRITES,
            reads_data_formats: [data_format::WRITES, data_format::WRITES],
            cmdline: String::new(),
            source_date_epoch: 0,
            files: vec![],
        };
        m.check_compatible(None).unwrap();
        m.data_format = data_format::READS.end() + 1;
        m.reads_data_formats = [data_format::WRITES, data_format::WRITES + 1];
        let err = m.check_compatible(Some(data_format::WRITES)).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
        m.data_format = data_format::WRITES;
        m.reads_data_formats = [data_format::WRITES + 1, data_format::WRITES + 1];
        let err = m.check_compatible(Some(data_format::WRITES)).unwrap_err();
        assert!(err.to_string().contains("reads data formats"), "{err}");
        m.reads_data_formats = [data_format::WRITES, data_format::WRITES];
        m.architecture = "sparc".into();
        assert!(m.check_compatible(None).is_err());
    }
}
