//! Temporary local PostgreSQL clusters.
