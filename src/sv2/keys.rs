//! The Stratum V2 keys, each a secp256k1 key in a file of `data_dir`:
//!
//! - the authority key (`sv2_authority.key`), whose public half miners are
//!   given (in the `stratum2+tcp://host:port/<key>` URL) and which signs
//!   each connection's Noise certificate, so a man in the middle cannot
//!   pose as NDAS; a new one means every miner is given a new URL;
//! - the server static key (`sv2_static.key`), the key NDAS proves it holds
//!   in each handshake. Miners never see it outside the handshake: the
//!   certificate binds it to the authority key. Deleting the file and
//!   restarting rotates it; miners' URLs stay the same.
//!
//! Kept as ckpool keeps its own: comment lines, then the secret as 64 hex
//! characters; written once, `0600`, never replaced by NDAS, never logged.
//! The public key is written as ckpool and the Stratum Reference
//! Implementation write it: base58check of `[1, 0]` and the 32-byte x-only
//! key.

use std::io::Write;
use std::path::Path;

use bitcoin::secp256k1::{Keypair, Parity, Secp256k1, SecretKey};

/// The authority key's file in `data_dir`.
pub const FILE_NAME: &str = "sv2_authority.key";
/// The server static key's file in `data_dir`.
pub const STATIC_FILE_NAME: &str = "sv2_static.key";

/// Why a key cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} does not hold a secp256k1 secret key as 64 hex characters")]
    Malformed { path: String },
    #[error("{path} can be read by others (mode {mode:o}); chmod 600 it")]
    Exposed { path: String, mode: u32 },
    #[error("the operating system gave no random bytes: {0}")]
    Random(String),
}

/// The authority key pair.
pub struct AuthorityKey {
    secret: [u8; 32],
    public: [u8; 32],
}

impl std::fmt::Debug for AuthorityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log.
        write!(f, "AuthorityKey({})", self.public_text())
    }
}

/// The server static key: NDAS's Noise identity, signed by the authority
/// key in each connection's certificate.
pub struct StaticKey {
    secret: [u8; 32],
}

impl std::fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticKey(..)")
    }
}

impl StaticKey {
    /// The key in `data_dir`, created there when there is none.
    pub fn load_or_create(data_dir: &Path) -> Result<StaticKey, KeyError> {
        let header = |_: &AuthorityKey| {
            "# NDAS Stratum V2 server static key (Noise): keep it secret. Miners\n\
             # are not given it (the authority key signs it); delete this file\n\
             # and restart to rotate it.\n"
                .to_owned()
        };
        let key = load_or_create_at(data_dir, STATIC_FILE_NAME, header)?;
        Ok(StaticKey { secret: key.secret })
    }

    /// The 32-byte secret, for the Noise responder alone.
    pub(super) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The key of `secret` (negated to an even key if need be).
    #[cfg(test)]
    pub(super) fn from_bytes(secret: [u8; 32]) -> Option<StaticKey> {
        from_secret(secret).map(|key| StaticKey { secret: key.secret })
    }
}

/// The key in `data_dir/name`, created there when there is none with
/// `header`'s comment lines.
fn load_or_create_at(
    data_dir: &Path,
    name: &str,
    header: fn(&AuthorityKey) -> String,
) -> Result<AuthorityKey, KeyError> {
    let path = data_dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            refuse_exposed(&path)?;
            parse(&text).ok_or_else(|| KeyError::Malformed { path: shown(&path) })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            create(data_dir, name, header)
        }
        Err(source) => Err(KeyError::Read {
            path: shown(&path),
            source,
        }),
    }
}

impl AuthorityKey {
    /// The key in `data_dir`, created there when there is none.
    pub fn load_or_create(data_dir: &Path) -> Result<AuthorityKey, KeyError> {
        let header = |key: &AuthorityKey| {
            format!(
                "# NDAS Stratum V2 authority key: keep it secret; miners are given\n\
                 # its public key {}\n",
                key.public_text()
            )
        };
        load_or_create_at(data_dir, FILE_NAME, header)
    }

    /// The key of `secret` (negated to an even key if need be).
    #[cfg(test)]
    pub(super) fn from_bytes(secret: [u8; 32]) -> Option<AuthorityKey> {
        from_secret(secret)
    }

    /// The 32-byte x-only public key.
    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }

    /// The 32-byte secret, for the Noise responder alone.
    pub(super) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// The public key as miners are given it.
    pub fn public_text(&self) -> String {
        public_text(&self.public)
    }
}

/// base58check of `[1, 0]` (version 1, little-endian) and the x-only key.
pub fn public_text(public: &[u8; 32]) -> String {
    let mut bytes = vec![1, 0];
    bytes.extend_from_slice(public);
    bitcoin::base58::encode_check(&bytes)
}

/// The x-only key in [`public_text`]'s form, or at the end of a miner's
/// `stratum2+tcp://host:port/<key>` URL.
pub fn parse_public(text: &str) -> Result<[u8; 32], String> {
    let key = text.rsplit('/').next().unwrap_or(text);
    let bytes = bitcoin::base58::decode_check(key)
        .map_err(|e| format!("{key:?} is not a base58check key: {e}"))?;
    match bytes.split_first_chunk::<2>() {
        Some(([1, 0], public)) => public
            .try_into()
            .map_err(|_| format!("{key:?} holds {} bytes, not 2 + 32", bytes.len())),
        _ => Err(format!("{key:?} is not a version-1 authority key")),
    }
}

/// The URL a miner is given for `host:port`.
pub fn url(host: &str, port: u16, key: &AuthorityKey) -> String {
    format!("stratum2+tcp://{host}:{port}/{}", key.public_text())
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// A key file others can read is refused, as ssh refuses one.
fn refuse_exposed(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::metadata(path).map_err(|source| KeyError::Read {
        path: shown(path),
        source,
    })?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed {
            path: shown(path),
            mode,
        });
    }
    Ok(())
}

/// The secret from the file's text: `#` lines skipped, one hex line.
fn parse(text: &str) -> Option<AuthorityKey> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'));
    let line = lines.next()?;
    if lines.next().is_some() || line.len() != 64 {
        return None;
    }
    let mut secret = [0u8; 32];
    faster_hex::hex_decode(line.as_bytes(), &mut secret).ok()?;
    from_secret(secret)
}

/// The pair of `secret`, negated if need be so that its public key is
/// even, as the Stratum Reference Implementation's keys are.
fn from_secret(secret: [u8; 32]) -> Option<AuthorityKey> {
    let secp = Secp256k1::signing_only();
    let mut key = SecretKey::from_slice(&secret).ok()?;
    if Keypair::from_secret_key(&secp, &key).x_only_public_key().1 == Parity::Odd {
        key = key.negate();
    }
    let (public, _) = Keypair::from_secret_key(&secp, &key).x_only_public_key();
    Some(AuthorityKey {
        secret: key.secret_bytes(),
        public: public.serialize(),
    })
}

/// A new key, written where no file was (never over one another process
/// wrote meanwhile).
fn create(
    data_dir: &Path,
    name: &str,
    header: fn(&AuthorityKey) -> String,
) -> Result<AuthorityKey, KeyError> {
    let path = &data_dir.join(name);
    let key = loop {
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).map_err(|e| KeyError::Random(e.to_string()))?;
        if let Some(key) = from_secret(secret) {
            break key;
        }
    };
    let write = |source| KeyError::Write {
        path: shown(path),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(write)?;
    let opened = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
    };
    let mut file = match opened {
        Ok(file) => file,
        // Another start wrote it first: that one is the key.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            return load_or_create_at(data_dir, name, header);
        }
        Err(error) => return Err(write(error)),
    };
    let text = format!("{}{}\n", header(&key), faster_hex::hex_string(&key.secret));
    file.write_all(text.as_bytes()).map_err(write)?;
    file.sync_all().map_err(write)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_key_is_written_as_the_reference_implementation_writes_it() {
        // key-utils' own test vector (stratum-apps key_utils): this secret
        // gives this public key.
        let secret =
            bitcoin::base58::decode_check("zmBEmPhqo3A92FkiLVvyCz6htc3e53ph3ZbD4ASqGaLjwnFLi")
                .unwrap();
        let key = from_secret(secret.try_into().unwrap()).unwrap();
        assert_eq!(
            key.public_text(),
            "9bDuixKmZqAJnrmP746n8zU1wyAQRrus7th9dxnkPg6RzQvCnan"
        );
    }

    #[test]
    fn a_public_key_is_read_back_from_its_text_or_a_miner_s_url_and_nothing_else() {
        let secret =
            bitcoin::base58::decode_check("zmBEmPhqo3A92FkiLVvyCz6htc3e53ph3ZbD4ASqGaLjwnFLi")
                .unwrap();
        let key = from_secret(secret.try_into().unwrap()).unwrap();
        assert_eq!(parse_public(&key.public_text()).unwrap(), *key.public());
        assert_eq!(
            parse_public(&url("10.0.0.1", 3336, &key)).unwrap(),
            *key.public()
        );
        // A typo breaks the checksum; a secret's text is not a public key.
        let mut typo = key.public_text();
        typo.replace_range(5..6, if &typo[5..6] == "a" { "b" } else { "a" });
        assert!(parse_public(&typo).unwrap_err().contains("base58check"));
        let secret_text = "zmBEmPhqo3A92FkiLVvyCz6htc3e53ph3ZbD4ASqGaLjwnFLi";
        assert!(parse_public(secret_text).unwrap_err().contains("version-1"));
        let short = bitcoin::base58::encode_check(&[1, 0, 7]);
        assert!(parse_public(&short).unwrap_err().contains("not 2 + 32"));
    }

    #[test]
    fn a_key_is_created_once_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let first = AuthorityKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(FILE_NAME);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = AuthorityKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.public(), again.public());
        assert_eq!(first.secret(), again.secret());
        assert!(!format!("{first:?}").contains(&faster_hex::hex_string(first.secret())));
    }

    #[test]
    fn the_static_key_is_its_own_private_file_kept_across_starts() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let authority = AuthorityKey::load_or_create(dir.path()).unwrap();
        let first = StaticKey::load_or_create(dir.path()).unwrap();
        assert_ne!(first.secret(), authority.secret());
        let path = dir.path().join(STATIC_FILE_NAME);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            StaticKey::load_or_create(dir.path()).unwrap().secret(),
            first.secret()
        );
        assert!(!format!("{first:?}").contains(&faster_hex::hex_string(first.secret())));
        // Rotation: the file deleted, the next start makes another.
        std::fs::remove_file(&path).unwrap();
        assert_ne!(
            StaticKey::load_or_create(dir.path()).unwrap().secret(),
            first.secret()
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            StaticKey::load_or_create(dir.path()),
            Err(KeyError::Exposed { .. })
        ));
    }

    #[test]
    fn a_key_file_others_can_read_or_that_holds_no_key_stops_the_start() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        AuthorityKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = AuthorityKey::load_or_create(dir.path()).unwrap_err();
        assert!(
            matches!(error, KeyError::Exposed { mode: 0o644, .. }),
            "{error}"
        );
        std::fs::write(&path, "# a comment\nnot hex\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let error = AuthorityKey::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(error, KeyError::Malformed { .. }), "{error}");
    }
}
