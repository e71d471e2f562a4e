//! Test-only: temporary PostgreSQL clusters started from the system's binaries.
