//! SQL analysis for encrypted columns.
