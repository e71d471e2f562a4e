//! Typed values for encrypted columns: canonical encoding, PostgreSQL binary and text formats. No I/O.
