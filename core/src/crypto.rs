//! Crypto helpers: the master key and what is derived from it (secret pepper, at-rest
//! encryption, session key), random tokens, and argon2id passwords.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use aws_lc_rs::{aead, constant_time, hmac, rand};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::error::Error;

/// The 32-byte root secret. Everything secret the server keeps is derived from it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The configured key, else `{data_dir}/master.key`, created with mode 0600 when missing.
    ///
    /// # Errors
    /// When the file cannot be created or read, or does not hold 32 base64 bytes.
    pub fn load_or_create(configured: Option<[u8; 32]>, data_dir: &Path) -> Result<Self, Error> {
        if let Some(bytes) = configured {
            return Ok(Self(bytes));
        }
        let path = Self::file_path(data_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse_file(&path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create_file(&path),
            Err(e) => Err(Error::internal_from(
                format!("cannot read {}", path.display()),
                e,
            )),
        }
    }

    #[must_use]
    pub fn file_path(data_dir: &Path) -> PathBuf {
        data_dir.join("master.key")
    }

    fn parse_file(path: &Path, text: &str) -> Result<Self, Error> {
        let bytes = STANDARD.decode(text.trim()).ok();
        bytes
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .map(Self)
            .ok_or_else(|| {
                Error::internal(format!(
                    "{} must hold the base64 of 32 bytes; restore it from a backup (tokens, \
                     client secrets and signing keys depend on it)",
                    path.display()
                ))
            })
    }

    /// Writes a new key to a private temporary file beside `path`, syncs it, and links it into
    /// place: `master.key` appears whole or not at all, even when the process is killed while
    /// creating it. When another process linked its key first, that key is used.
    fn create_file(path: &Path) -> Result<Self, Error> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal_from(format!("cannot create {}", dir.display()), e))?;
        let key: [u8; 32] = random_bytes();
        let suffix: [u8; 8] = random_bytes();
        let temporary = dir.join(format!(
            ".master.key.{}.tmp",
            URL_SAFE_NO_PAD.encode(suffix)
        ));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .and_then(|mut file| {
                writeln!(file, "{}", STANDARD.encode(key))?;
                file.sync_all()
            })
            .and_then(|()| std::fs::hard_link(&temporary, path));
        // The temporary name is only a way in; whatever happened, it goes.
        let _ = std::fs::remove_file(&temporary);
        match written {
            Ok(()) => {
                // The new name is durable once the directory is.
                if let Ok(d) = std::fs::File::open(dir) {
                    let _ = d.sync_all();
                }
                tracing::info!(path = %path.display(), "created a new master key");
                Ok(Self(key))
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::internal_from(format!("cannot read {}", path.display()), e)
                })?;
                Self::parse_file(path, &text)
            }
            Err(e) => Err(Error::internal_from(
                format!("cannot create {}", path.display()),
                e,
            )),
        }
    }

    fn derive(&self, label: &str) -> hmac::Tag {
        hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &self.0),
            label.as_bytes(),
        )
    }
}

/// What a hashed secret is, so that a hash of one kind can never match another kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    ClientSecret,
    DeviceCode,
    UserCode,
    RefreshToken,
    ActionToken,
    RegistrationToken,
}

impl SecretKind {
    fn label(self) -> &'static [u8] {
        match self {
            Self::ClientSecret => b"client-secret",
            Self::DeviceCode => b"device-code",
            Self::UserCode => b"user-code",
            Self::RefreshToken => b"refresh-token",
            Self::ActionToken => b"action-token",
            Self::RegistrationToken => b"registration-token",
        }
    }
}

/// Keys derived from the master key, built once at start-up and shared.
pub struct Keyring {
    pepper: hmac::Key,
    sealing: aead::LessSafeKey,
    session: [u8; 64],
    console_session: [u8; 64],
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keyring(<redacted>)")
    }
}

impl Keyring {
    /// # Errors
    /// Never in practice: AES-256-GCM accepts any 32-byte key.
    pub fn new(master: &MasterKey) -> Result<Self, Error> {
        let pepper = hmac::Key::new(
            hmac::HMAC_SHA256,
            master.derive("vestibule/pepper/v1").as_ref(),
        );
        let unbound = aead::UnboundKey::new(
            &aead::AES_256_GCM,
            master.derive("vestibule/seal/v1").as_ref(),
        )
        .map_err(|e| Error::internal_from("cannot build the sealing key", e))?;
        let mut session = [0u8; 64];
        session[..32].copy_from_slice(master.derive("vestibule/session/v1/a").as_ref());
        session[32..].copy_from_slice(master.derive("vestibule/session/v1/b").as_ref());
        // Its own key, so a cookie of one surface can never be replayed as the other's.
        let mut console_session = [0u8; 64];
        console_session[..32]
            .copy_from_slice(master.derive("vestibule/console-session/v1/a").as_ref());
        console_session[32..]
            .copy_from_slice(master.derive("vestibule/console-session/v1/b").as_ref());
        Ok(Self {
            pepper,
            sealing: aead::LessSafeKey::new(unbound),
            session,
            console_session,
        })
    }

    /// HMAC-SHA-256 of a high-entropy secret with the pepper, base64url: what the database keeps.
    #[must_use]
    pub fn hash_secret(&self, kind: SecretKind, secret: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.pepper);
        ctx.update(kind.label());
        ctx.update(&[0]);
        ctx.update(secret.as_bytes());
        URL_SAFE_NO_PAD.encode(ctx.sign())
    }

    /// Constant-time check of a presented secret against a stored hash.
    #[must_use]
    pub fn verify_secret(&self, kind: SecretKind, secret: &str, stored_hash: &str) -> bool {
        same_secret(&self.hash_secret(kind, secret), stored_hash)
    }

    /// AES-256-GCM with a random nonce; `aad` binds the ciphertext to its context (e.g. a kid).
    ///
    /// # Errors
    /// When the cipher fails, which it does not for inputs of sane size.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
        let nonce_bytes: [u8; aead::NONCE_LEN] = random_bytes();
        let mut buffer = plaintext.to_vec();
        self.sealing
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce_bytes),
                aead::Aad::from(aad),
                &mut buffer,
            )
            .map_err(|e| Error::internal_from("encryption failed", e))?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buffer);
        Ok(out)
    }

    /// # Errors
    /// When the data was not sealed with this master key and `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
        let failed = || Error::internal("cannot decrypt: was the master key changed?");
        if sealed.len() < aead::NONCE_LEN {
            return Err(failed());
        }
        let (nonce, ciphertext) = sealed.split_at(aead::NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| failed())?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .sealing
            .open_in_place(nonce, aead::Aad::from(aad), &mut buffer)
            .map_err(|_| failed())?;
        Ok(plain.to_vec())
    }

    /// 64 bytes for signing and encrypting the `/activate` session cookies.
    #[must_use]
    pub fn session_key(&self) -> &[u8; 64] {
        &self.session
    }

    /// 64 bytes for signing and encrypting the console's session cookies: distinct from
    /// [`Keyring::session_key`].
    #[must_use]
    pub fn console_session_key(&self) -> &[u8; 64] {
        &self.console_session
    }
}

/// Whether two secrets (tokens, not passwords) are equal, in time that does not depend on
/// where they differ.
#[must_use]
pub fn same_secret(expected: &str, presented: &str) -> bool {
    constant_time::verify_slices_are_equal(expected.as_bytes(), presented.as_bytes()).is_ok()
}

/// Bytes from the operating system's CSPRNG.
#[must_use]
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The system RNG does not fail on Linux once booted; a failure here is unrecoverable.
    #[allow(clippy::expect_used)]
    rand::fill(&mut buf).expect("the system random number generator failed");
    buf
}

/// A 256-bit random token, base64url without padding (43 characters).
#[must_use]
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A uniformly random index below `bound` (rejection sampling, no modulo bias).
#[must_use]
pub fn random_below(bound: u32) -> u32 {
    assert!(bound > 0, "bound must be positive");
    let zone = u32::MAX - (u32::MAX % bound);
    loop {
        let n = u32::from_le_bytes(random_bytes::<4>());
        if n < zone {
            return n % bound;
        }
    }
}

/// argon2id password hashing (OWASP parameters: 19 MiB, t=2, p=1).
pub mod password {
    use super::{Error, LazyLock, random_bytes};
    use argon2::{Argon2, PasswordHasher as _, PasswordVerifier as _};

    /// Verified against when the account is unknown, so both cases take the same time.
    static DUMMY_HASH: LazyLock<Option<String>> =
        LazyLock::new(|| hash(&super::random_token()).ok());

    /// # Errors
    /// When argon2 rejects the input (it accepts any password we allow).
    pub fn hash(password: &str) -> Result<String, Error> {
        let salt: [u8; 16] = random_bytes();
        Argon2::default()
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::internal_from("password hashing failed", e))
    }

    #[must_use]
    pub fn verify(password: &str, stored: &str) -> bool {
        Argon2::default()
            .verify_password(password.as_bytes(), stored)
            .is_ok()
    }

    /// Spend the time of a verification when there is no account to check against.
    pub fn verify_dummy(password: &str) {
        if let Some(h) = DUMMY_HASH.as_deref() {
            let _ = verify(password, h);
        }
    }

    /// [`hash`] off the async executor.
    ///
    /// # Errors
    /// As [`hash`].
    pub async fn hash_blocking(password: String) -> Result<String, Error> {
        tokio::task::spawn_blocking(move || hash(&password))
            .await
            .map_err(|e| Error::internal_from("password task failed", e))?
    }

    /// [`verify`] (or [`verify_dummy`] when `stored` is `None`) off the async executor.
    pub async fn verify_blocking(password: String, stored: Option<String>) -> bool {
        tokio::task::spawn_blocking(move || match stored {
            Some(h) => verify(&password, &h),
            None => {
                verify_dummy(&password);
                false
            }
        })
        .await
        .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_first_starts_agree_on_one_whole_key_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
            let starts: Vec<_> = (0..8)
                .map(|_| s.spawn(|| MasterKey::load_or_create(None, &data).map(|k| k.0)))
                .collect();
            starts
                .into_iter()
                .map(|t| t.join().expect("no panic").expect("a key"))
                .collect()
        });
        assert!(
            keys.iter().all(|k| *k == keys[0]),
            "one key for every start"
        );
        let path = MasterKey::file_path(&data);
        let text = std::fs::read_to_string(&path).expect("key file");
        assert_eq!(STANDARD.decode(text.trim()).expect("base64"), keys[0]);
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(&data)
            .expect("data dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["master.key"], "no temporary file is left behind");
    }

    fn keyring() -> Keyring {
        Keyring::new(&MasterKey::from_bytes([7; 32])).unwrap()
    }

    #[test]
    fn secret_hashes_are_keyed_and_kind_separated() {
        let k = keyring();
        let h = k.hash_secret(SecretKind::DeviceCode, "abc");
        assert!(k.verify_secret(SecretKind::DeviceCode, "abc", &h));
        assert!(!k.verify_secret(SecretKind::UserCode, "abc", &h));
        assert!(!k.verify_secret(SecretKind::DeviceCode, "abd", &h));
        let other = Keyring::new(&MasterKey::from_bytes([8; 32])).unwrap();
        assert_ne!(other.hash_secret(SecretKind::DeviceCode, "abc"), h);
    }

    #[test]
    fn session_keys_differ_per_surface() {
        let k = keyring();
        assert_ne!(k.session_key(), k.console_session_key());
        assert_eq!(k.console_session_key(), keyring().console_session_key());
    }

    #[test]
    fn sealing_round_trips_and_binds_aad() {
        let k = keyring();
        let sealed = k.seal(b"private key", b"kid-1").unwrap();
        assert_eq!(k.open(&sealed, b"kid-1").unwrap(), b"private key");
        assert!(k.open(&sealed, b"kid-2").is_err());
        assert!(keyring().open(&sealed[..5], b"kid-1").is_err());
    }

    #[test]
    fn passwords_verify_only_with_the_right_password() {
        let h = password::hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(password::verify("correct horse", &h));
        assert!(!password::verify("wrong horse", &h));
    }

    #[test]
    fn master_key_file_is_created_private_and_reused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let a = MasterKey::load_or_create(None, &data).unwrap();
        let mode = std::fs::metadata(MasterKey::file_path(&data))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = MasterKey::load_or_create(None, &data).unwrap();
        assert_eq!(a.0, b.0);
        std::fs::write(MasterKey::file_path(&data), "garbage").unwrap();
        assert!(MasterKey::load_or_create(None, &data).is_err());
    }

    #[test]
    fn random_below_stays_in_range() {
        for bound in [1, 10, 20] {
            for _ in 0..200 {
                assert!(random_below(bound) < bound);
            }
        }
    }
}
