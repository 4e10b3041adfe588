//! Snapshot encryption: every file of a snapshot sealed with ChaCha20-Poly1305 (ring), so a
//! snapshot copied off the machine reveals nothing of the store or the shards without its key,
//! and a changed byte anywhere is found before anything is restored.
//!
//! The key is 32 random bytes, given base64-encoded (`head -c 32 /dev/urandom | base64`).
//! Each snapshot draws a random 32-byte salt; HKDF-SHA256 over the key and salt gives a key per
//! file (its info: the file's path inside the snapshot, so files cannot be swapped) and a
//! 16-byte key check kept in the clear (a wrong key is told from a damaged file). A sealed file
//! is `DKSEAL01` and then its content in pieces of 1 MiB, each with its 16-byte tag; a piece's
//! nonce is its number and whether it is the last, so pieces cannot be reordered, dropped or
//! cut off.

use std::io::{Read, Write};
use std::path::Path;

use base64::Engine as _;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, KeyType, Prk, Salt};

use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"DKSEAL01";
const PIECE: usize = 1 << 20;
const TAG: usize = 16;
/// The scheme `snapshot.json` names.
pub const SCHEME: &str = "chacha20poly1305-hkdf-sha256-1mib";

/// A snapshot key (32 bytes). Never printed: `Debug` shows nothing of it.
#[derive(Clone)]
pub struct SnapshotKey([u8; 32]);

impl std::fmt::Debug for SnapshotKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SnapshotKey(…)")
    }
}

impl SnapshotKey {
    /// The key in the environment variable `var` (base64 of 32 bytes); the error names the
    /// variable, never its value.
    pub fn from_env(var: &str) -> Result<SnapshotKey> {
        let value = std::env::var(var).map_err(|_| {
            Error::Input(format!(
                "{var}: the snapshot key's variable is not set (32 random bytes, base64)"
            ))
        })?;
        SnapshotKey::parse(value.trim()).map_err(|why| Error::Input(format!("{var}: {why}")))
    }

    /// A key from its base64 text.
    pub fn parse(text: &str) -> std::result::Result<SnapshotKey, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| "the snapshot key is not base64 (32 random bytes, base64)".to_string())?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "the snapshot key is {} bytes, not 32 (head -c 32 /dev/urandom | base64)",
                b.len()
            )
        })?;
        Ok(SnapshotKey(key))
    }
}

/// What a sealed snapshot records in the clear: the scheme, its salt and the key check.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Sealing {
    pub scheme: String,
    /// Base64 of the snapshot's 32-byte salt.
    pub salt: String,
    /// Base64 of 16 bytes derived from the key and salt: a wrong key is told apart.
    pub key_check: String,
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// A snapshot's keys: derived once from the key and its salt.
pub struct Sealer {
    prk: Prk,
}

impl Sealer {
    /// A new snapshot's sealer (a fresh salt) and what `snapshot.json` records.
    pub fn new(key: &SnapshotKey) -> Result<(Sealer, Sealing)> {
        let mut salt = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
            .map_err(|_| Error::Unreadable("no randomness for the snapshot's salt".into()))?;
        let sealer = Sealer::with_salt(key, &salt);
        let sealing = Sealing {
            scheme: SCHEME.into(),
            salt: base64::engine::general_purpose::STANDARD.encode(salt),
            key_check: base64::engine::general_purpose::STANDARD.encode(sealer.check()?),
        };
        Ok((sealer, sealing))
    }

    /// The sealer of an existing snapshot, once the key is shown to be its key.
    pub fn open(key: &SnapshotKey, sealing: &Sealing, snapshot: &str) -> Result<Sealer> {
        let b64 = base64::engine::general_purpose::STANDARD;
        if sealing.scheme != SCHEME {
            return Err(Error::Input(format!(
                "snapshot `{snapshot}`: encryption scheme `{}` is not supported (this release reads {SCHEME})",
                sealing.scheme
            )));
        }
        let salt = b64.decode(&sealing.salt).map_err(|_| damaged(snapshot))?;
        let sealer = Sealer::with_salt(key, &salt);
        let check = b64
            .decode(&sealing.key_check)
            .map_err(|_| damaged(snapshot))?;
        // Both sides are public (the check is kept in the clear): a plain comparison.
        if check != sealer.check()? {
            return Err(Error::Input(format!(
                "snapshot `{snapshot}`: the key given is not the key it was encrypted with; nothing was restored"
            )));
        }
        Ok(sealer)
    }

    fn with_salt(key: &SnapshotKey, salt: &[u8]) -> Sealer {
        Sealer {
            prk: Salt::new(HKDF_SHA256, salt).extract(&key.0),
        }
    }

    fn check(&self) -> Result<[u8; 16]> {
        let mut out = [0u8; 16];
        self.prk
            .expand(&[b"dartmouth snapshot key check"], Len(16))
            .and_then(|okm| okm.fill(&mut out))
            .map_err(|_| Error::Unreadable("key derivation failed".into()))?;
        Ok(out)
    }

    fn file_key(&self, rel: &str) -> Result<LessSafeKey> {
        let info = [b"dartmouth snapshot file ".as_slice(), rel.as_bytes()];
        let okm = self
            .prk
            .expand(&info, &CHACHA20_POLY1305)
            .map_err(|_| Error::Unreadable("key derivation failed".into()))?;
        Ok(LessSafeKey::new(UnboundKey::from(okm)))
    }

    /// Seals the file at `path` (`rel` inside the snapshot) in place.
    pub fn seal_file(&self, path: &Path, rel: &str) -> Result<()> {
        let key = self.file_key(rel)?;
        let tmp = path.with_extension("sealing");
        let mut input = std::fs::File::open(path).map_err(io(path))?;
        let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io(&tmp))?);
        out.write_all(MAGIC).map_err(io(&tmp))?;
        let mut piece = Vec::with_capacity(PIECE + TAG);
        let mut next = vec![0u8; PIECE];
        let mut have = fill(&mut input, &mut next).map_err(io(path))?;
        let mut n: u64 = 0;
        loop {
            piece.clear();
            piece.extend_from_slice(&next[..have]);
            have = fill(&mut input, &mut next).map_err(io(path))?;
            let last = have == 0;
            key.seal_in_place_append_tag(nonce(n, last), Aad::empty(), &mut piece)
                .map_err(|_| Error::Unreadable(format!("{rel}: sealing failed")))?;
            out.write_all(&piece).map_err(io(&tmp))?;
            if last {
                break;
            }
            n += 1;
        }
        let file = out.into_inner().map_err(|e| io(&tmp)(e.into_error()))?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))
    }

    /// Opens the sealed file at `from` (`rel` inside the snapshot) into `to`; a changed,
    /// reordered or cut-off piece is an error naming the file.
    pub fn open_file(&self, from: &Path, rel: &str, to: &Path) -> Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(to).map_err(io(to))?);
        self.open_into(from, rel, &mut out, to)?;
        let file = out.into_inner().map_err(|e| io(to)(e.into_error()))?;
        file.sync_all().map_err(io(to))
    }

    /// The opened bytes of a small sealed file, in memory (nothing is written).
    pub fn open_bytes(&self, from: &Path, rel: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open_into(from, rel, &mut out, from)?;
        Ok(out)
    }

    /// Opens `from` into `out` (`to` names it in errors).
    fn open_into(&self, from: &Path, rel: &str, out: &mut impl Write, to: &Path) -> Result<()> {
        let key = self.file_key(rel)?;
        let mut input = std::fs::File::open(from).map_err(io(from))?;
        let mut magic = [0u8; 8];
        input
            .read_exact(&mut magic)
            .map_err(|_| altered(rel))
            .and_then(|()| {
                if &magic == MAGIC {
                    Ok(())
                } else {
                    Err(altered(rel))
                }
            })?;
        let mut piece = vec![0u8; PIECE + TAG];
        let mut next = vec![0u8; PIECE + TAG];
        let mut have = fill(&mut input, &mut next).map_err(io(from))?;
        let mut n: u64 = 0;
        loop {
            if have < TAG {
                return Err(altered(rel));
            }
            piece[..have].copy_from_slice(&next[..have]);
            let len = have;
            have = fill(&mut input, &mut next).map_err(io(from))?;
            let last = have == 0;
            let plain = key
                .open_in_place(nonce(n, last), Aad::empty(), &mut piece[..len])
                .map_err(|_| altered(rel))?;
            out.write_all(plain).map_err(io(to))?;
            if last {
                break;
            }
            n += 1;
        }
        Ok(())
    }
}

/// A piece's nonce: its number, and 1 in the last byte for the last piece.
fn nonce(n: u64, last: bool) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    bytes[11] = u8::from(last);
    Nonce::assume_unique_for_key(bytes)
}

/// Reads until `buf` is full or the input ends: how many bytes.
fn fill(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn altered(rel: &str) -> Error {
    Error::Input(format!(
        "{rel}: the snapshot's file is damaged or was altered (its authentication failed); nothing was restored"
    ))
}

fn damaged(snapshot: &str) -> Error {
    Error::Input(format!(
        "snapshot `{snapshot}`: its encryption record is damaged; nothing was restored"
    ))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| {
        Error::Engine(dartmouth_engine::Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
