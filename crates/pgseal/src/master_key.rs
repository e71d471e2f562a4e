//! Loading the master key (key-encryption key) from the environment.
//!
//! The master key never lives in code or in the database: it comes from `PGSEAL_MASTER_KEY` (the
//! standard base64 of 32 random bytes) or from the file named by `PGSEAL_MASTER_KEY_FILE` (for
//! mounted secrets). During a master-key rotation the keys in `PGSEAL_PREVIOUS_MASTER_KEYS`
//! (comma-separated) are accepted for unwrapping only. Environment access goes through a lookup
//! function so that tests can supply their own environment without touching the process's.

use std::path::{Path, PathBuf};

use pgseal_audit::{AuditEvent, AuditLog};
use pgseal_crypto::{KeyError, KeyFingerprint, MasterKey, MasterKeyring};
use zeroize::Zeroizing;

use crate::Error;

/// Name of the variable holding the base64 master key.
pub const MASTER_KEY_VAR: &str = "PGSEAL_MASTER_KEY";
/// Name of the variable holding the path of a file with the base64 master key.
pub const MASTER_KEY_FILE_VAR: &str = "PGSEAL_MASTER_KEY_FILE";
/// Name of the variable holding comma-separated previous master keys (unwrap only).
pub const PREVIOUS_MASTER_KEYS_VAR: &str = "PGSEAL_PREVIOUS_MASTER_KEYS";
/// Name of the variable holding the path of a file with previous master keys (base64, separated
/// by commas or line breaks), for processes that re-read their keys on SIGHUP.
pub const PREVIOUS_MASTER_KEYS_FILE_VAR: &str = "PGSEAL_PREVIOUS_MASTER_KEYS_FILE";

/// Where the current master key came from: shown in audit records and `pgseal` output, so an
/// operator can tell which deployment mechanism is in force. Never holds key material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MasterKeySource {
    /// `PGSEAL_MASTER_KEY`.
    Variable,
    /// `PGSEAL_MASTER_KEY_FILE`, with the path it named.
    File(PathBuf),
}

impl MasterKeySource {
    /// The variable an operator set, for messages and audit records.
    pub fn variable(&self) -> &'static str {
        match self {
            MasterKeySource::Variable => MASTER_KEY_VAR,
            MasterKeySource::File(_) => MASTER_KEY_FILE_VAR,
        }
    }
}

/// The master keys loaded from the environment, and where the current one came from.
pub struct LoadedMasterKeys {
    /// Current key first, then the previous keys.
    pub keyring: MasterKeyring,
    /// Where the current key came from.
    pub source: MasterKeySource,
}

impl LoadedMasterKeys {
    /// Fingerprint of the current master key.
    pub fn fingerprint(&self) -> KeyFingerprint {
        self.keyring.current().fingerprint()
    }

    /// Records in the audit log which master keys this process holds (by fingerprint and
    /// source), so an operator can tell which key each process used.
    pub fn record_loaded(&self, audit: &AuditLog) -> Result<(), Error> {
        let current = self.fingerprint();
        audit
            .record(AuditEvent::MasterKeyLoaded {
                source: self.source.variable().to_owned(),
                fingerprint: current.to_string(),
                previous: self
                    .keyring
                    .fingerprints()
                    .into_iter()
                    .filter(|fp| *fp != current)
                    .map(|fp| fp.to_string())
                    .collect(),
            })
            .map_err(|err| Error::Audit(err.to_string()))
    }
}

/// Loads the master keyring from the process environment.
pub fn load_master_keys_from_env() -> Result<LoadedMasterKeys, Error> {
    load_master_keys(|name| std::env::var(name).ok())
}

/// Loads the master keyring through `lookup` (a stand-in for `std::env::var`).
///
/// Refuses, naming the variable: neither variable set, both set, an unreadable file, text that is
/// not standard base64, a key of the wrong length, and an all-zero key.
pub fn load_master_keys(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<LoadedMasterKeys, Error> {
    let direct = lookup(MASTER_KEY_VAR).map(Zeroizing::new);
    let file = lookup(MASTER_KEY_FILE_VAR).filter(|path| !path.is_empty());
    let (current, source) = match (direct, file) {
        (Some(_), Some(_)) => {
            return Err(Error::Config(format!(
                "both {MASTER_KEY_VAR} and {MASTER_KEY_FILE_VAR} are set: set only one of them"
            )))
        }
        (Some(text), None) => (
            MasterKey::from_base64(MASTER_KEY_VAR, &text)?,
            MasterKeySource::Variable,
        ),
        (None, Some(path)) => {
            let path = PathBuf::from(path);
            let text = read_file(MASTER_KEY_FILE_VAR, &path)?;
            (
                MasterKey::from_base64(MASTER_KEY_FILE_VAR, &text)?,
                MasterKeySource::File(path),
            )
        }
        (None, None) => return Err(Error::MasterKeyMissing),
    };
    let mut previous = Vec::new();
    if let Some(list) = lookup(PREVIOUS_MASTER_KEYS_VAR).map(Zeroizing::new) {
        for (position, item) in list.split(',').enumerate() {
            if item.trim().is_empty() {
                continue;
            }
            let var = format!("{PREVIOUS_MASTER_KEYS_VAR} (entry {})", position + 1);
            previous.push(MasterKey::from_base64(&var, item)?);
        }
    }
    if let Some(path) = lookup(PREVIOUS_MASTER_KEYS_FILE_VAR).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        let text = read_file(PREVIOUS_MASTER_KEYS_FILE_VAR, &path)?;
        let items = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|item| !item.is_empty());
        for (position, item) in items.enumerate() {
            let var = format!("{PREVIOUS_MASTER_KEYS_FILE_VAR} (entry {})", position + 1);
            previous.push(MasterKey::from_base64(&var, item)?);
        }
    }
    Ok(LoadedMasterKeys {
        keyring: MasterKeyring::new(current, previous),
        source,
    })
}

fn read_file(var: &str, path: &Path) -> Result<Zeroizing<String>, Error> {
    let bytes = std::fs::read(path).map_err(|err| {
        Error::Config(format!(
            "{var} names {}, which cannot be read: {err}",
            path.display()
        ))
    })?;
    let bytes = Zeroizing::new(bytes);
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(_) => Err(Error::Key(KeyError::NotBase64 {
            var: var.to_owned(),
        })),
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

    fn message(result: Result<LoadedMasterKeys, Error>) -> String {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn loads_from_variable_with_previous_keys() {
        let current = MasterKey::generate();
        let old = MasterKey::generate();
        let loaded = load_master_keys(env(&[
            (MASTER_KEY_VAR, &current.expose_base64()),
            (
                PREVIOUS_MASTER_KEYS_VAR,
                &format!("{}, ", &*old.expose_base64()),
            ),
        ]))
        .expect("valid keys load");
        assert_eq!(loaded.fingerprint(), current.fingerprint());
        assert_eq!(loaded.source, MasterKeySource::Variable);
        assert_eq!(
            loaded.keyring.fingerprints(),
            vec![current.fingerprint(), old.fingerprint()]
        );
    }

    #[test]
    fn loads_from_file_with_trailing_newline() {
        let key = MasterKey::generate();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("master.key");
        std::fs::write(&path, format!("{}\n", &*key.expose_base64())).expect("write key");
        let loaded = load_master_keys(env(&[(MASTER_KEY_FILE_VAR, path.to_str().unwrap())]))
            .expect("file key loads");
        assert_eq!(loaded.fingerprint(), key.fingerprint());
        assert_eq!(loaded.source, MasterKeySource::File(path));
    }

    #[test]
    fn previous_keys_come_from_a_file_too() {
        let current = MasterKey::generate();
        let (a, b, c) = (
            MasterKey::generate(),
            MasterKey::generate(),
            MasterKey::generate(),
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("previous.keys");
        std::fs::write(
            &path,
            format!("{}\n{},\n", &*b.expose_base64(), &*c.expose_base64()),
        )
        .expect("write keys");
        let loaded = load_master_keys(env(&[
            (MASTER_KEY_VAR, &current.expose_base64()),
            (PREVIOUS_MASTER_KEYS_VAR, &a.expose_base64()),
            (PREVIOUS_MASTER_KEYS_FILE_VAR, path.to_str().unwrap()),
        ]))
        .expect("keys load");
        assert_eq!(
            loaded.keyring.fingerprints(),
            vec![
                current.fingerprint(),
                a.fingerprint(),
                b.fingerprint(),
                c.fingerprint()
            ]
        );
        std::fs::write(&path, "garbage").expect("write");
        let bad = message(load_master_keys(env(&[
            (MASTER_KEY_VAR, &current.expose_base64()),
            (PREVIOUS_MASTER_KEYS_FILE_VAR, path.to_str().unwrap()),
        ])));
        assert!(bad.contains(PREVIOUS_MASTER_KEYS_FILE_VAR), "{bad}");
        assert!(!bad.contains("garbage"), "{bad}");
    }

    #[test]
    fn every_bad_key_names_its_variable() {
        let missing = message(load_master_keys(env(&[])));
        assert!(missing.contains(MASTER_KEY_VAR), "{missing}");

        let not_base64 = message(load_master_keys(env(&[(MASTER_KEY_VAR, "not base64!")])));
        assert!(not_base64.contains(MASTER_KEY_VAR), "{not_base64}");

        let short = message(load_master_keys(env(&[(MASTER_KEY_VAR, "AAECAw==")])));
        assert!(short.contains(MASTER_KEY_VAR), "{short}");

        let zeros = "A".repeat(43) + "=";
        let all_zero = message(load_master_keys(env(&[(MASTER_KEY_VAR, &zeros)])));
        assert!(all_zero.contains(MASTER_KEY_VAR), "{all_zero}");

        let good = MasterKey::generate();
        let bad_previous = message(load_master_keys(env(&[
            (MASTER_KEY_VAR, &good.expose_base64()),
            (PREVIOUS_MASTER_KEYS_VAR, "nope"),
        ])));
        assert!(
            bad_previous.contains(PREVIOUS_MASTER_KEYS_VAR),
            "{bad_previous}"
        );

        let both = message(load_master_keys(env(&[
            (MASTER_KEY_VAR, &good.expose_base64()),
            (MASTER_KEY_FILE_VAR, "/nonexistent"),
        ])));
        assert!(both.contains("only one"), "{both}");

        let unreadable = message(load_master_keys(env(&[(
            MASTER_KEY_FILE_VAR,
            "/nonexistent/pgseal.key",
        )])));
        assert!(
            unreadable.contains("/nonexistent/pgseal.key"),
            "{unreadable}"
        );
    }

    #[test]
    fn errors_never_echo_the_key_text() {
        // A key of the wrong length is still secret material: the message must not repeat it.
        let almost = "c2VjcmV0LWtleS1tYXRlcmlhbC10aGF0LWlzLXNob3J0";
        let text = message(load_master_keys(env(&[(MASTER_KEY_VAR, almost)])));
        assert!(!text.contains(almost), "{text}");
    }
}
