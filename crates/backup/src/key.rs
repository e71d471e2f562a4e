//! The backup key: the key-encryption key of backups, kept apart from the master key.
//!
//! It comes from `PGSEAL_BACKUP_KEY` (standard base64 of 32 random bytes) or from the file named
//! by `PGSEAL_BACKUP_KEY_FILE`; older keys in `PGSEAL_PREVIOUS_BACKUP_KEYS` (comma-separated)
//! open older backups. A backup records only the key's fingerprint (`bk_…`). The backup key must
//! never equal the master key: a backup would then be only as safe as the database it protects
//! against, and losing one key would lose both.

use std::fmt;
use std::path::Path;

use aws_lc_rs::hmac;
use base64::Engine;
use pgseal_crypto::MasterKey;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::BackupError;

/// Name of the variable holding the base64 backup key.
pub const BACKUP_KEY_VAR: &str = "PGSEAL_BACKUP_KEY";
/// Name of the variable holding the path of a file with the base64 backup key.
pub const BACKUP_KEY_FILE_VAR: &str = "PGSEAL_BACKUP_KEY_FILE";
/// Name of the variable holding comma-separated previous backup keys (opening only).
pub const PREVIOUS_BACKUP_KEYS_VAR: &str = "PGSEAL_PREVIOUS_BACKUP_KEYS";

const MASTER_KEY_VAR: &str = "PGSEAL_MASTER_KEY";
const MASTER_KEY_FILE_VAR: &str = "PGSEAL_MASTER_KEY_FILE";
const PREVIOUS_MASTER_KEYS_VAR: &str = "PGSEAL_PREVIOUS_MASTER_KEYS";

/// Key length in bytes.
pub(crate) const KEY_LEN: usize = 32;
/// Fingerprint length in bytes.
pub(crate) const FINGERPRINT_LEN: usize = 8;

/// Domain separation: differs from the master key's label, so one 32-byte string used as both
/// kinds of key would still get two unrelated fingerprints (and the prefix differs as well).
const FINGERPRINT_LABEL: &[u8] = b"pgseal backup key fingerprint v1";
const FINGERPRINT_PREFIX: &str = "bk_";

/// The public name of a backup key: the first 8 bytes of
/// `HMAC-SHA256(backup key, "pgseal backup key fingerprint v1")`, shown as `bk_` and 16
/// lower-case hex digits. Safe to print, log and store.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackupKeyFingerprint([u8; FINGERPRINT_LEN]);

impl BackupKeyFingerprint {
    /// Wraps 8 fingerprint bytes (as stored in a backup header).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; FINGERPRINT_LEN]) -> BackupKeyFingerprint {
        BackupKeyFingerprint(bytes)
    }

    /// The 8 fingerprint bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; FINGERPRINT_LEN] {
        &self.0
    }
}

impl fmt::Display for BackupKeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(FINGERPRINT_PREFIX)?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BackupKeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A 256-bit backup key. Wiped on drop; `Debug` shows only the fingerprint; no `Display`.
pub struct BackupKey {
    bytes: Box<[u8; KEY_LEN]>,
    fingerprint: BackupKeyFingerprint,
}

impl BackupKey {
    /// A fresh random key from the system CSPRNG (for tests and `pgseal keygen`-like tools).
    #[must_use]
    pub fn generate() -> BackupKey {
        let mut bytes = Box::new([0u8; KEY_LEN]);
        crate::format::fill_random(&mut bytes[..]);
        BackupKey::from_secret(bytes)
    }

    /// Parses standard base64 with padding (44 characters); surrounding whitespace is ignored.
    /// `var` names where the text came from, for messages; the text never appears in an error.
    ///
    /// # Errors
    /// [`BackupError::KeyConfig`] when the text is empty, not base64, not 32 bytes or all zero.
    pub fn from_base64(var: &str, text: &str) -> Result<BackupKey, BackupError> {
        let trimmed = text.trim_ascii();
        if trimmed.is_empty() {
            return Err(BackupError::KeyConfig(format!(
                "{var} is empty; set it to a 32-byte key in base64 (generate one with `pgseal keygen`)"
            )));
        }
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(trimmed)
                .map_err(|_| {
                    BackupError::KeyConfig(format!(
                        "{var} is not valid base64; expected 44 characters of standard base64 \
                         with `=` padding (as printed by `pgseal keygen`)"
                    ))
                })?,
        );
        if decoded.len() != KEY_LEN {
            return Err(BackupError::KeyConfig(format!(
                "{var} decodes to {} bytes, but a backup key is exactly 32 bytes; generate one \
                 with `pgseal keygen`",
                decoded.len()
            )));
        }
        let mut bytes = Box::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&decoded);
        if bool::from(bytes[..].ct_eq(&[0u8; KEY_LEN])) {
            bytes.zeroize();
            return Err(BackupError::KeyConfig(format!(
                "{var} is all zero bytes, which is a placeholder and not a key; generate one \
                 with `pgseal keygen`"
            )));
        }
        Ok(BackupKey::from_secret(bytes))
    }

    /// The key's public name.
    #[must_use]
    pub fn fingerprint(&self) -> BackupKeyFingerprint {
        self.fingerprint
    }

    /// The key as standard base64: the one explicit way to take the secret out (tests, tools).
    #[must_use]
    pub fn expose_base64(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(4 * KEY_LEN.div_ceil(3)));
        base64::engine::general_purpose::STANDARD.encode_string(&self.bytes[..], &mut out);
        out
    }

    pub(crate) fn secret(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    fn from_secret(bytes: Box<[u8; KEY_LEN]>) -> BackupKey {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &bytes[..]);
        let tag = hmac::sign(&key, FINGERPRINT_LABEL);
        let mut fp = [0u8; FINGERPRINT_LEN];
        fp.copy_from_slice(&tag.as_ref()[..FINGERPRINT_LEN]);
        BackupKey {
            bytes,
            fingerprint: BackupKeyFingerprint(fp),
        }
    }
}

impl Drop for BackupKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackupKey({})", self.fingerprint)
    }
}

/// The current backup key (seals new backups) and previous ones (open older backups only).
pub struct BackupKeyring {
    current: BackupKey,
    previous: Vec<BackupKey>,
}

impl BackupKeyring {
    /// A keyring with `current` first.
    #[must_use]
    pub fn new(current: BackupKey, previous: Vec<BackupKey>) -> BackupKeyring {
        BackupKeyring { current, previous }
    }

    /// The key new backups are sealed with.
    #[must_use]
    pub fn current(&self) -> &BackupKey {
        &self.current
    }

    /// The key with this fingerprint, if loaded.
    #[must_use]
    pub fn find(&self, fingerprint: BackupKeyFingerprint) -> Option<&BackupKey> {
        std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| k.fingerprint == fingerprint)
    }

    /// Fingerprints of every loaded key, current first.
    #[must_use]
    pub fn fingerprints(&self) -> Vec<BackupKeyFingerprint> {
        std::iter::once(&self.current)
            .chain(self.previous.iter())
            .map(|k| k.fingerprint)
            .collect()
    }
}

impl fmt::Debug for BackupKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.fingerprints()).finish()
    }
}

/// Loads the backup keyring from the process environment.
///
/// # Errors
/// See [`load_backup_keys`].
pub fn load_backup_keys_from_env() -> Result<BackupKeyring, BackupError> {
    load_backup_keys(|name| std::env::var(name).ok())
}

/// Loads the backup keyring through `lookup` (a stand-in for `std::env::var`).
///
/// Refuses, naming the variable: neither variable set, both set, an unreadable file, text that is
/// not standard base64, a key of the wrong length, an all-zero key, and a backup key equal to a
/// master key found in the same environment (`PGSEAL_MASTER_KEY`, its file, or a previous one).
///
/// # Errors
/// [`BackupError::KeyMissing`], [`BackupError::KeyConfig`] or [`BackupError::SameAsMasterKey`].
pub fn load_backup_keys(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<BackupKeyring, BackupError> {
    let direct = lookup(BACKUP_KEY_VAR).map(Zeroizing::new);
    let file = lookup(BACKUP_KEY_FILE_VAR).filter(|path| !path.is_empty());
    let (current, current_text, current_var) = match (direct, file) {
        (Some(_), Some(_)) => {
            return Err(BackupError::KeyConfig(format!(
                "both {BACKUP_KEY_VAR} and {BACKUP_KEY_FILE_VAR} are set: set only one of them"
            )))
        }
        (Some(text), None) => (
            BackupKey::from_base64(BACKUP_KEY_VAR, &text)?,
            text,
            BACKUP_KEY_VAR,
        ),
        (None, Some(path)) => {
            let text = read_key_file(Path::new(&path), BACKUP_KEY_FILE_VAR)?;
            (
                BackupKey::from_base64(BACKUP_KEY_FILE_VAR, &text)?,
                text,
                BACKUP_KEY_FILE_VAR,
            )
        }
        (None, None) => return Err(BackupError::KeyMissing),
    };
    let mut previous = Vec::new();
    let mut previous_texts = Vec::new();
    if let Some(list) = lookup(PREVIOUS_BACKUP_KEYS_VAR).map(Zeroizing::new) {
        for (position, item) in list.split(',').enumerate() {
            if item.trim().is_empty() {
                continue;
            }
            let var = format!("{PREVIOUS_BACKUP_KEYS_VAR} (entry {})", position + 1);
            previous.push(BackupKey::from_base64(&var, item)?);
            previous_texts.push((var, Zeroizing::new(item.to_owned())));
        }
    }
    let masters = master_keys_in(&lookup);
    let mut candidates = vec![(current_var.to_owned(), current_text)];
    candidates.extend(previous_texts);
    for (var, text) in candidates {
        // Compared as master keys, which compare in constant time; a text that does not parse
        // as a master key cannot equal one.
        let Ok(as_master) = MasterKey::from_base64(&var, &text) else {
            continue;
        };
        if masters.contains(&as_master) {
            return Err(BackupError::SameAsMasterKey { var });
        }
    }
    Ok(BackupKeyring::new(current, previous))
}

/// Every master key the environment names and that parses; unparsable ones are the master-key
/// loader's business, not ours.
fn master_keys_in(lookup: &impl Fn(&str) -> Option<String>) -> Vec<MasterKey> {
    let mut texts: Vec<Zeroizing<String>> = Vec::new();
    if let Some(text) = lookup(MASTER_KEY_VAR) {
        texts.push(Zeroizing::new(text));
    }
    if let Some(path) = lookup(MASTER_KEY_FILE_VAR).filter(|p| !p.is_empty()) {
        if let Ok(text) = read_key_file(Path::new(&path), MASTER_KEY_FILE_VAR) {
            texts.push(text);
        }
    }
    if let Some(list) = lookup(PREVIOUS_MASTER_KEYS_VAR).map(Zeroizing::new) {
        texts.extend(list.split(',').map(|s| Zeroizing::new(s.to_owned())));
    }
    texts
        .iter()
        .filter_map(|t| MasterKey::from_base64(MASTER_KEY_VAR, t).ok())
        .collect()
}

fn read_key_file(path: &Path, var: &str) -> Result<Zeroizing<String>, BackupError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|err| {
        BackupError::KeyConfig(format!(
            "{var} names {}, which cannot be read: {err}",
            path.display()
        ))
    })?);
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(_) => Err(BackupError::KeyConfig(format!(
            "{var} names {}, which does not hold base64 text",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn message(result: Result<BackupKeyring, BackupError>) -> String {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn loads_current_and_previous_keys() {
        let current = BackupKey::generate();
        let old = BackupKey::generate();
        let ring = load_backup_keys(env(&[
            (BACKUP_KEY_VAR, &current.expose_base64()),
            (
                PREVIOUS_BACKUP_KEYS_VAR,
                &format!(" {}, ", &*old.expose_base64()),
            ),
        ]))
        .expect("keys load");
        assert_eq!(
            ring.fingerprints(),
            vec![current.fingerprint(), old.fingerprint()]
        );
        assert!(ring.find(old.fingerprint()).is_some());
    }

    #[test]
    fn loads_from_a_file() {
        let key = BackupKey::generate();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("backup.key");
        std::fs::write(&path, format!("{}\n", &*key.expose_base64())).expect("write");
        let ring = load_backup_keys(env(&[(BACKUP_KEY_FILE_VAR, path.to_str().expect("utf8"))]))
            .expect("file key loads");
        assert_eq!(ring.current().fingerprint(), key.fingerprint());
    }

    #[test]
    fn bad_keys_name_their_variable_and_never_echo_the_text() {
        assert!(message(load_backup_keys(env(&[]))).contains(BACKUP_KEY_VAR));
        let zeros = "A".repeat(43) + "=";
        for bad in ["not base64!", "AAECAw==", zeros.as_str(), "  "] {
            let text = message(load_backup_keys(env(&[(BACKUP_KEY_VAR, bad)])));
            assert!(text.contains(BACKUP_KEY_VAR), "{text}");
            if bad.trim().len() > 4 {
                assert!(!text.contains(bad), "{text}");
            }
        }
        let good = BackupKey::generate();
        let both = message(load_backup_keys(env(&[
            (BACKUP_KEY_VAR, &good.expose_base64()),
            (BACKUP_KEY_FILE_VAR, "/nonexistent"),
        ])));
        assert!(both.contains("only one"), "{both}");
        let previous = message(load_backup_keys(env(&[
            (BACKUP_KEY_VAR, &good.expose_base64()),
            (PREVIOUS_BACKUP_KEYS_VAR, "nope"),
        ])));
        assert!(previous.contains(PREVIOUS_BACKUP_KEYS_VAR), "{previous}");
    }

    #[test]
    fn refuses_the_master_key_as_backup_key() {
        let shared = BackupKey::generate();
        let text = shared.expose_base64();
        let err = message(load_backup_keys(env(&[
            (BACKUP_KEY_VAR, &text),
            (MASTER_KEY_VAR, &text),
        ])));
        assert!(err.contains("master key"), "{err}");
        let old = BackupKey::generate();
        let err = message(load_backup_keys(env(&[
            (BACKUP_KEY_VAR, &text),
            (PREVIOUS_BACKUP_KEYS_VAR, &old.expose_base64()),
            (PREVIOUS_MASTER_KEYS_VAR, &old.expose_base64()),
        ])));
        assert!(err.contains(PREVIOUS_BACKUP_KEYS_VAR), "{err}");
    }

    #[test]
    fn backup_and_master_fingerprints_differ_for_the_same_bytes() {
        let key = BackupKey::generate();
        let master = MasterKey::from_base64("test", &key.expose_base64()).expect("parses");
        let bk = key.fingerprint().to_string();
        let mk = master.fingerprint().to_string();
        assert!(bk.starts_with("bk_") && mk.starts_with("mk_"));
        assert_ne!(bk[3..], mk[3..]);
        assert_eq!(format!("{key:?}"), format!("BackupKey({bk})"));
    }
}
