//! The server's key-encryption key: keypair secrets must be readable by the server (an
//! HMAC signature is checked with the secret itself), so they are stored sealed with
//! ChaCha20-Poly1305 (AEAD, a random 96-bit nonce per secret) under this key, never in
//! clear.
//!
//! Where the key comes from: the `secret_key` setting / `SESSIOND_SECRET_KEY` (base64
//! of 32 bytes); for the embedded default (SQLite) without it, a key file beside the
//! store (`<file>.secret-key`, mode 0600), created on first use. On PostgreSQL the
//! setting is required once keypairs exist (`sessiond serve` refuses to start without
//! it, in one line).

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why the key or a sealed secret cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KekError {
    /// The setting is not base64 of 32 bytes.
    #[error("secret_key: must be base64 of 32 random bytes (e.g. `openssl rand -base64 32`)")]
    Malformed,
    /// The key file cannot be read or created.
    #[error("cannot use the key file {path}: {source}")]
    File {
        /// Its path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A PostgreSQL store without the setting.
    #[error("secret_key (SESSIOND_SECRET_KEY) is required on PostgreSQL to {0}")]
    Required(&'static str),
    /// A sealed secret does not open with this key (another key, or tampered).
    #[error("a sealed secret does not open with this server's secret_key")]
    Open,
}

/// The key-encryption key.
#[derive(Clone)]
pub struct Kek(ChaCha20Poly1305);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(..)")
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl Kek {
    /// The key from its base64 text.
    pub fn from_base64(text: &str) -> Result<Self, KekError> {
        let bytes = B64.decode(text.trim()).map_err(|_| KekError::Malformed)?;
        if bytes.len() != 32 {
            return Err(KekError::Malformed);
        }
        Ok(Self(ChaCha20Poly1305::new(Key::from_slice(&bytes))))
    }

    /// A new random key and its base64 text.
    pub fn generate() -> (Self, String) {
        let key = ChaCha20Poly1305::generate_key(&mut OsRng);
        let text = B64.encode(key);
        (Self(ChaCha20Poly1305::new(&key)), text)
    }

    /// Seals `secret`: base64 of nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, secret: &str) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        // Encryption with a fresh nonce cannot fail for inputs below 256 GiB.
        out.extend(
            self.0
                .encrypt(&nonce, secret.as_bytes())
                .unwrap_or_default(),
        );
        B64.encode(out)
    }

    /// Opens what [`Kek::seal`] sealed.
    pub fn open(&self, sealed: &str) -> Result<String, KekError> {
        let bytes = B64.decode(sealed).map_err(|_| KekError::Open)?;
        if bytes.len() < 12 {
            return Err(KekError::Open);
        }
        let (nonce, ct) = bytes.split_at(12);
        let plain = self
            .0
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| KekError::Open)?;
        String::from_utf8(plain).map_err(|_| KekError::Open)
    }
}

/// The key file of an SQLite store URL (`sqlite://PATH` -> `PATH.secret-key`), or
/// `None` for another backend or an in-memory store.
pub fn key_file_of(database_url: &str) -> Option<PathBuf> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    let mut file = PathBuf::from(path).into_os_string();
    file.push(".secret-key");
    Some(PathBuf::from(file))
}

/// Reads the key file, or creates it (mode 0600) with a new key.
pub fn load_or_create(path: &Path) -> Result<Kek, KekError> {
    let fail = |source| KekError::File {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => Kek::from_base64(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (kek, text) = Kek::generate();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(fail)?;
            f.write_all(text.as_bytes()).map_err(fail)?;
            f.sync_all().map_err(fail)?;
            Ok(kek)
        }
        Err(e) => Err(fail(e)),
    }
}

/// The key for a store: the setting when given, else (SQLite) the key file beside the
/// store, else `None` (PostgreSQL without the setting: no keypair can be used).
pub fn resolve(setting: Option<&str>, database_url: &str) -> Result<Option<Kek>, KekError> {
    if let Some(text) = setting {
        return Kek::from_base64(text).map(Some);
    }
    match key_file_of(database_url) {
        Some(path) => load_or_create(&path).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_never_shows_in_clear() {
        let (kek, _) = Kek::generate();
        let sealed = kek.seal("wJalrXUtnFEMI/K7MDENG");
        assert!(!sealed.contains("wJalrXUtnFEMI"));
        assert_ne!(kek.seal("x"), kek.seal("x"), "a fresh nonce each time");
        assert_eq!(kek.open(&sealed).unwrap(), "wJalrXUtnFEMI/K7MDENG");
        let (other, _) = Kek::generate();
        assert!(matches!(other.open(&sealed), Err(KekError::Open)));
        assert!(matches!(kek.open("AAAA"), Err(KekError::Open)));
    }

    #[test]
    fn the_embedded_default_key_file_is_created_once_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("sessiond-kek-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/s.db?mode=rwc", dir.display());
        let file = key_file_of(&url).unwrap();
        assert_eq!(file, dir.join("s.db.secret-key"));
        let a = resolve(None, &url).unwrap().unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = resolve(None, &url).unwrap().unwrap();
        assert_eq!(
            b.open(&a.seal("s")).unwrap(),
            "s",
            "the same key on the next start"
        );
        assert!(resolve(None, "postgres://h/db").unwrap().is_none());
        assert!(matches!(
            resolve(Some("short"), &url),
            Err(KekError::Malformed)
        ));
    }
}
