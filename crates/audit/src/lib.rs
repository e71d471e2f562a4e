//! Audit events for key and schema operations, written as JSON lines to a configurable sink.
//!
//! One record per line:
//!
//! ```text
//! {"ts":"2026-11-24T01:02:03.456Z","pid":123,"event":"data_key_created","database":"app",...}
//! ```
//!
//! # What is recorded
//!
//! Schema installs and upgrades, data key creation and state changes, master key loads and
//! failed unwraps ([`AuditEvent`]). Records carry names, ids and master key fingerprints only;
//! the event types have no field that could hold a value, a ciphertext or a key.
//!
//! # Audit policy
//!
//! [`AuditLog::record`] returns an error when the record could not be written, and callers must
//! treat that as a failure of the operation itself: a key operation (creating, activating,
//! retiring or rewrapping a data key) is not performed, or its transaction is not committed, if
//! its audit record cannot be written. An operation that cannot be undone is recorded before
//! it takes effect. The only configuration without records is an explicit
//! `PGSEAL_AUDIT_LOG=off`.
//!
//! # Configuration
//!
//! `PGSEAL_AUDIT_LOG` = `stderr` (the default) | `off` | a file path ([`AuditLog::from_env`]).
//! A file is opened for appending and created with mode 0600.
//!
//! # Extending
//!
//! Every record goes through one [`Sink`]. A tamper-evident log (an HMAC chain over records)
//! will be a `Sink` that wraps another one; [`AuditLog::with_sink`] installs any sink.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod event;
mod sink;
mod time;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

pub use event::{is_fingerprint, AuditEvent, SOURCE_ENV, SOURCE_FILE};
pub use sink::{FileSink, Sink, StderrSink};

/// The environment variable that selects the audit sink.
pub const AUDIT_LOG_ENV: &str = "PGSEAL_AUDIT_LOG";

/// Everything that can go wrong while auditing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The audit log file could not be opened.
    #[error(
        "cannot open the audit log {}: {source}; fix the path or its permissions, or set \
         PGSEAL_AUDIT_LOG=stderr",
        path.display()
    )]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A record could not be written; the audited operation must not go ahead.
    #[error(
        "cannot write to the audit log ({sink}): {source}; the operation was not audited, so it \
         must not proceed: free disk space or fix the log destination (PGSEAL_AUDIT_LOG)"
    )]
    Write {
        /// Which sink, e.g. `stderr` or a path.
        sink: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A record could not be encoded as JSON.
    #[error("cannot encode an audit record as JSON: {0}")]
    Encode(#[source] serde_json::Error),

    /// An event field did not have its fixed form; the record was not written. The content is
    /// deliberately not shown: a caller mixing up arguments could have passed a key.
    #[error(
        "audit event field `{field}` is invalid (expected {expected}); the record was not written"
    )]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// What it must look like.
        expected: &'static str,
    },
}

/// The audit log: cheap to clone (an `Arc` inside), shareable across threads.
#[derive(Clone)]
pub struct AuditLog {
    sink: Option<Arc<dyn Sink>>,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sink {
            Some(sink) => f.debug_tuple("AuditLog").field(sink).finish(),
            None => f.write_str("AuditLog(disabled)"),
        }
    }
}

#[derive(Serialize)]
struct Record<'a> {
    ts: String,
    pid: u32,
    #[serde(flatten)]
    event: &'a AuditEvent,
}

impl AuditLog {
    /// Records to standard error.
    pub fn stderr() -> Self {
        Self::with_sink(Arc::new(StderrSink))
    }

    /// Records appended to `path`, created with mode 0600 if missing.
    pub fn file(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        Ok(Self::with_sink(Arc::new(FileSink::open(path.as_ref())?)))
    }

    /// No records at all (`PGSEAL_AUDIT_LOG=off`).
    pub fn disabled() -> Self {
        Self { sink: None }
    }

    /// Records to any sink, e.g. one that chains records with an HMAC.
    pub fn with_sink(sink: Arc<dyn Sink>) -> Self {
        Self { sink: Some(sink) }
    }

    /// The log chosen by `PGSEAL_AUDIT_LOG`: `stderr` (also when unset or empty), `off`, or a
    /// file path.
    pub fn from_env() -> Result<Self, AuditError> {
        let setting = std::env::var_os(AUDIT_LOG_ENV);
        Self::from_setting(setting.as_deref().map(Path::new))
    }

    /// The log for a `PGSEAL_AUDIT_LOG` value (`None` when unset).
    pub fn from_setting(setting: Option<&Path>) -> Result<Self, AuditError> {
        let Some(value) = setting else {
            return Ok(Self::stderr());
        };
        match value.to_str() {
            Some("" | "stderr") => Ok(Self::stderr()),
            Some("off") => Ok(Self::disabled()),
            // Anything else, including a path that is not UTF-8, names a file.
            _ => Self::file(value),
        }
    }

    /// Whether records are written anywhere.
    pub fn is_enabled(&self) -> bool {
        self.sink.is_some()
    }

    /// Writes one record. An error means the record is not in the log: see the audit policy in
    /// the crate documentation.
    pub fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        // Validated even when disabled, so a misuse shows up in every configuration.
        event.validate()?;
        let Some(sink) = &self.sink else {
            return Ok(());
        };
        let line = render(&event, SystemTime::now(), std::process::id())?;
        sink.write_record(&line)
    }
}

/// One JSON line, newline included.
fn render(event: &AuditEvent, now: SystemTime, pid: u32) -> Result<Vec<u8>, AuditError> {
    let record = Record {
        ts: time::rfc3339_millis(now),
        pid,
        event,
    };
    let mut line = serde_json::to_vec(&record).map_err(AuditError::Encode)?;
    line.push(b'\n');
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn fp(text: &str) -> String {
        assert!(is_fingerprint(text), "{text}");
        text.to_owned()
    }

    fn json(event: AuditEvent) -> String {
        let now = UNIX_EPOCH + Duration::from_millis(1_795_482_123_456);
        String::from_utf8(render(&event, now, 123).expect("render")).expect("utf-8")
    }

    const HEAD: &str = r#"{"ts":"2026-11-24T01:02:03.456Z","pid":123,"#;

    #[test]
    fn every_event_has_its_documented_shape() {
        let cases = [
            (
                AuditEvent::SchemaInstalled {
                    database: "app".into(),
                    version: 1,
                },
                r#""event":"schema_installed","database":"app","version":1}"#,
            ),
            (
                AuditEvent::SchemaUpgraded {
                    database: "app".into(),
                    from: 1,
                    to: 2,
                },
                r#""event":"schema_upgraded","database":"app","from":1,"to":2}"#,
            ),
            (
                AuditEvent::DataKeyCreated {
                    database: "app".into(),
                    column: "public.users.email".into(),
                    column_id: 7,
                    purpose: "index",
                    version: 3,
                    master_key: fp("mk_3f2a9c0d1e7b5a44"),
                },
                r#""event":"data_key_created","database":"app","column":"public.users.email","column_id":7,"purpose":"index","version":3,"master_key":"mk_3f2a9c0d1e7b5a44"}"#,
            ),
            (
                AuditEvent::DataKeyUnwrapFailed {
                    database: "app".into(),
                    column_id: 7,
                    purpose: "value",
                    version: 1,
                    master_key: fp("mk_0000000000000001"),
                    reason: "authentication failed",
                },
                r#""event":"data_key_unwrap_failed","database":"app","column_id":7,"purpose":"value","version":1,"master_key":"mk_0000000000000001","reason":"authentication failed"}"#,
            ),
            (
                AuditEvent::MasterKeyLoaded {
                    source: SOURCE_FILE.into(),
                    fingerprint: fp("mk_3f2a9c0d1e7b5a44"),
                    previous: vec![fp("mk_0000000000000001")],
                },
                r#""event":"master_key_loaded","source":"PGSEAL_MASTER_KEY_FILE","fingerprint":"mk_3f2a9c0d1e7b5a44","previous":["mk_0000000000000001"]}"#,
            ),
            (
                AuditEvent::KeyStateChanged {
                    database: "app".into(),
                    column: "public.users.email".into(),
                    purpose: "value",
                    version: 2,
                    from: "decrypt_only",
                    to: "active",
                },
                r#""event":"key_state_changed","database":"app","column":"public.users.email","purpose":"value","version":2,"from":"decrypt_only","to":"active"}"#,
            ),
        ];
        for (event, body) in cases {
            let name = event.name();
            let line = json(event);
            assert_eq!(line, format!("{HEAD}{body}\n"));
            assert!(body.contains(&format!(r#""event":"{name}""#)));
        }
        let env = json(AuditEvent::MasterKeyLoaded {
            source: SOURCE_ENV.into(),
            fingerprint: fp("mk_3f2a9c0d1e7b5a44"),
            previous: vec![],
        });
        assert!(env.contains(r#""source":"PGSEAL_MASTER_KEY","#), "{env}");
        assert!(env.contains(r#""previous":[]"#), "{env}");
    }

    #[test]
    fn names_with_quotes_are_escaped() {
        let line = json(AuditEvent::SchemaInstalled {
            database: "we\"ird\ndb".into(),
            version: 1,
        });
        assert_eq!(line.lines().count(), 1);
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(parsed["database"], "we\"ird\ndb");
    }

    #[test]
    fn malformed_fields_are_refused_without_echoing_them() {
        assert!(is_fingerprint("mk_3f2a9c0d1e7b5a44"));
        let secret = "c2VjcmV0LWtleS1tYXRlcmlhbC0zMi1ieXRlcyE=";
        for bad in [
            "",
            "mk_",
            "mk_3F2A9C0D1E7B5A44",
            "mk_3f2a9c0d1e7b5a4",
            "mk_3f2a9c0d1e7b5a445",
            "3f2a9c0d1e7b5a44abc",
            secret,
        ] {
            assert!(!is_fingerprint(bad), "{bad}");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("audit.log");
        let log = AuditLog::file(&path).expect("open");
        let created = |purpose: &'static str, master_key: &str| AuditEvent::DataKeyCreated {
            database: "app".into(),
            column: "public.users.email".into(),
            column_id: 1,
            purpose,
            version: 1,
            master_key: master_key.into(),
        };
        let cases = [
            created("value", secret),
            created("values", "mk_3f2a9c0d1e7b5a44"),
            AuditEvent::MasterKeyLoaded {
                source: secret.into(),
                fingerprint: fp("mk_3f2a9c0d1e7b5a44"),
                previous: vec![],
            },
            AuditEvent::MasterKeyLoaded {
                source: SOURCE_ENV.into(),
                fingerprint: fp("mk_3f2a9c0d1e7b5a44"),
                previous: vec![secret.into()],
            },
            AuditEvent::KeyStateChanged {
                database: "app".into(),
                column: "public.users.email".into(),
                purpose: "value",
                version: 1,
                from: "active",
                to: "paused",
            },
            AuditEvent::DataKeyUnwrapFailed {
                database: "app".into(),
                column_id: 1,
                purpose: "index",
                version: 1,
                master_key: secret.into(),
                reason: "authentication failed",
            },
        ];
        for event in cases {
            let err = log.record(event.clone()).expect_err("invalid field");
            assert!(matches!(err, AuditError::InvalidField { .. }), "{err:?}");
            assert!(!err.to_string().contains(secret));
            assert!(
                AuditLog::disabled().record(event).is_err(),
                "checked even when disabled"
            );
        }
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "",
            "nothing written"
        );
    }

    #[test]
    fn settings_select_the_sink() {
        assert!(AuditLog::from_setting(None).expect("default").is_enabled());
        assert!(AuditLog::from_setting(Some(Path::new("stderr")))
            .expect("stderr")
            .is_enabled());
        assert!(!AuditLog::from_setting(Some(Path::new("off")))
            .expect("off")
            .is_enabled());
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("audit.log");
        let log = AuditLog::from_setting(Some(&path)).expect("file");
        log.record(AuditEvent::SchemaInstalled {
            database: "app".into(),
            version: 1,
        })
        .expect("record");
        assert!(std::fs::read_to_string(&path)
            .expect("read")
            .contains("schema_installed"));
        let err = AuditLog::from_setting(Some(&dir.path().join("missing/audit.log")))
            .expect_err("missing directory");
        assert!(matches!(err, AuditError::Open { .. }), "{err:?}");
    }

    #[test]
    fn disabled_log_accepts_records_silently() {
        let log = AuditLog::disabled();
        assert!(!log.is_enabled());
        log.record(AuditEvent::SchemaInstalled {
            database: "app".into(),
            version: 1,
        })
        .expect("no-op");
        assert_eq!(format!("{log:?}"), "AuditLog(disabled)");
    }
}
