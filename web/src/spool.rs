//! The upload spool: what an enrolment upload carries (its files, zips unpacked) waits on
//! disk until the job has read it, so a zip bomb or a 2 GiB folder of photos costs disk
//! within the upload's budgets, not memory.
//!
//! Face photos must not lie on disk in the clear, not even for the minutes an enrolment
//! takes, nor in the blocks a deleted file leaves: every file is sealed with AES-256-GCM
//! under a key that exists only in this process's memory, in chunks of 64 KiB (the file's
//! number and the chunk's index make the nonce; the last chunk is marked, so a cut file does
//! not read as whole). A crash leaves ciphertext nobody can open; the appliance empties the
//! spool folder at start. A file is removed when its last handle drops, its folder with the
//! spool.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};

/// Plaintext bytes per sealed chunk.
const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;

/// One upload's folder and key; clones share them.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<SpoolInner>,
}

struct SpoolInner {
    dir: PathBuf,
    key: [u8; 32],
    next_file: AtomicU32,
}

impl Drop for SpoolInner {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "upload spool not removed");
        }
    }
}

impl Spool {
    /// A new spool in a fresh folder under `parent` (made if missing, 0700).
    pub fn new(parent: &Path) -> io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
        let mut key = [0; 32];
        openssl::rand::rand_bytes(&mut key).map_err(io::Error::other)?;
        let mut name = [0; 8];
        openssl::rand::rand_bytes(&mut name).map_err(io::Error::other)?;
        let dir = parent.join(format!("upload-{}", hex(&name)));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(Self {
            inner: Arc::new(SpoolInner {
                dir,
                key,
                next_file: AtomicU32::new(0),
            }),
        })
    }

    /// A new file to write.
    pub fn writer(&self) -> io::Result<SpoolWriter> {
        let number = self.inner.next_file.fetch_add(1, Ordering::Relaxed);
        let path = self.inner.dir.join(format!("{number}"));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(SpoolWriter {
            spool: self.inner.clone(),
            number,
            file,
            path: Some(path),
            buffer: Vec::with_capacity(CHUNK),
            chunks: 0,
            len: 0,
        })
    }
}

/// Writes one spooled file; [`SpoolWriter::finish`] seals its last chunk. Dropped
/// unfinished, the file is removed.
pub struct SpoolWriter {
    spool: Arc<SpoolInner>,
    number: u32,
    file: File,
    path: Option<PathBuf>,
    buffer: Vec<u8>,
    chunks: u64,
    len: u64,
}

impl SpoolWriter {
    fn seal(&mut self, last: bool) -> io::Result<()> {
        let mut tag = [0; TAG];
        let sealed = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.spool.key,
            Some(&nonce(self.number, self.chunks)),
            &[u8::from(last)],
            &self.buffer,
            &mut tag,
        )
        .map_err(io::Error::other)?;
        self.file.write_all(&sealed)?;
        self.file.write_all(&tag)?;
        self.buffer.clear();
        self.chunks += 1;
        Ok(())
    }

    /// Seals what is left; the file can be read from now on.
    pub fn finish(mut self) -> io::Result<SpooledFile> {
        self.seal(true)?;
        let path = self.path.take().expect("finish runs once");
        Ok(SpooledFile(Arc::new(Sealed {
            spool: self.spool.clone(),
            number: self.number,
            path,
            len: self.len,
        })))
    }
}

impl Write for SpoolWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = bytes.len().min(CHUNK - self.buffer.len());
        self.buffer.extend_from_slice(&bytes[..n]);
        self.len += n as u64;
        if self.buffer.len() == CHUNK {
            self.seal(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SpoolWriter {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A spooled file: cheap to clone; removed when the last clone drops.
#[derive(Clone)]
pub struct SpooledFile(Arc<Sealed>);

struct Sealed {
    spool: Arc<SpoolInner>,
    number: u32,
    path: PathBuf,
    len: u64,
}

impl Drop for Sealed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl std::fmt::Debug for SpooledFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpooledFile")
            .field("len", &self.0.len)
            .finish()
    }
}

impl SpooledFile {
    /// Its length in bytes (of the plaintext).
    pub fn len(&self) -> u64 {
        self.0.len
    }

    pub fn is_empty(&self) -> bool {
        self.0.len == 0
    }

    /// Reads and opens it at any position (zip archives seek to their directory).
    pub fn reader(&self) -> io::Result<SpoolReader> {
        Ok(SpoolReader {
            sealed: self.0.clone(),
            file: File::open(&self.0.path)?,
            position: 0,
            chunk: None,
        })
    }

    /// The whole file, opened.
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(usize::try_from(self.0.len).unwrap_or(0));
        self.reader()?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }
}

/// Reads a spooled file, opening one chunk at a time.
pub struct SpoolReader {
    sealed: Arc<Sealed>,
    file: File,
    position: u64,
    /// The chunk opened last: its index and plaintext.
    chunk: Option<(u64, Vec<u8>)>,
}

impl SpoolReader {
    fn open_chunk(&mut self, index: u64) -> io::Result<()> {
        if self.chunk.as_ref().is_some_and(|(i, _)| *i == index) {
            return Ok(());
        }
        let chunks = self.sealed.len / CHUNK as u64 + 1;
        let plain = if index + 1 == chunks {
            (self.sealed.len % CHUNK as u64) as usize
        } else {
            CHUNK
        };
        let mut record = vec![0; plain + TAG];
        self.file
            .seek(SeekFrom::Start(index * (CHUNK + TAG) as u64))?;
        self.file.read_exact(&mut record)?;
        let (sealed, tag) = record.split_at(plain);
        let opened = decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.sealed.spool.key,
            Some(&nonce(self.sealed.number, index)),
            &[u8::from(index + 1 == chunks)],
            sealed,
            tag,
        )
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "spooled upload damaged"))?;
        self.chunk = Some((index, opened));
        Ok(())
    }
}

impl Read for SpoolReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.position >= self.sealed.len || out.is_empty() {
            return Ok(0);
        }
        let index = self.position / CHUNK as u64;
        self.open_chunk(index)?;
        let (_, plain) = self.chunk.as_ref().expect("opened above");
        let start = (self.position % CHUNK as u64) as usize;
        let n = out.len().min(plain.len() - start);
        out[..n].copy_from_slice(&plain[start..start + n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for SpoolReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.sealed.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.position.checked_add_signed(d),
        };
        self.position = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.position)
    }
}

fn nonce(file: u32, chunk: u64) -> [u8; 12] {
    let mut nonce = [0; 12];
    nonce[..4].copy_from_slice(&file.to_be_bytes());
    nonce[4..].copy_from_slice(&chunk.to_be_bytes());
    nonce
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        let mut name = [0; 8];
        openssl::rand::rand_bytes(&mut name).unwrap();
        std::env::temp_dir().join(format!("vigil-spool-test-{}", hex(&name)))
    }

    #[test]
    fn files_read_back_whole_and_from_any_position_and_are_sealed_on_disk() {
        let parent = temp();
        let spool = Spool::new(&parent).unwrap();
        let plain: Vec<u8> = (0..(3 * CHUNK + 123)).map(|i| (i % 251) as u8).collect();
        let mut writer = spool.writer().unwrap();
        for piece in plain.chunks(10_000) {
            writer.write_all(piece).unwrap();
        }
        let file = writer.finish().unwrap();
        assert_eq!(file.len(), plain.len() as u64);
        assert_eq!(file.read_all().unwrap(), plain);
        let mut tail = Vec::new();
        let mut reader = file.reader().unwrap();
        reader.seek(SeekFrom::End(-200)).unwrap();
        reader.read_to_end(&mut tail).unwrap();
        drop(reader);
        assert_eq!(tail, plain[plain.len() - 200..]);
        // On disk: no run of the plaintext.
        let dir = std::fs::read_dir(&parent)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let on_disk = std::fs::read(dir.join("0")).unwrap();
        assert!(!on_disk.windows(64).any(|w| w == &plain[1000..1064]));
        // A flipped byte is an error, not other bytes.
        let mut damaged = on_disk.clone();
        damaged[CHUNK + TAG + 5] ^= 1;
        std::fs::write(dir.join("0"), damaged).unwrap();
        let mut reader = file.reader().unwrap();
        reader.seek(SeekFrom::Start(CHUNK as u64 + 1)).unwrap();
        assert_eq!(
            reader.read(&mut [0; 10]).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // Files go with their last handle, the folder with the spool.
        drop(reader);
        drop(file);
        assert!(!dir.join("0").exists());
        let empty = spool.writer().unwrap().finish().unwrap();
        assert_eq!(empty.read_all().unwrap(), Vec::<u8>::new());
        drop(spool);
        assert!(dir.exists(), "a live file keeps its spool");
        drop(empty);
        assert!(!dir.exists());
        std::fs::remove_dir_all(parent).unwrap();
    }
}
