//! Test-only: real PostgreSQL drivers end to end through the pgseal proxy.
//!
//! This crate has no code of its own; its tests live in `tests/`:
//!
//! * `psql.rs`: `psql` with `-c` and with a script file, text output compared exactly;
//! * `tokio_postgres.rs` and `sqlx.rs`: the Rust drivers, binary formats, prepared statements;
//! * `python_drivers.rs`: `pytest` over `tests/drivers/python` (psycopg 3 in text and binary
//!   mode, asyncpg);
//! * `node_pg.rs`: `node --test tests/drivers/node` (node `pg`).
//!
//! Every test gets a fresh database, a master key, the table `vault` with a column of every
//! logical type, and a proxy in-process (`tests/common/mod.rs`).
//!
//! # The two modes
//!
//! The Cargo feature `encrypted` is the one switch. Without it the proxy is the transparent
//! connection layer (`Proxy::bind`) and `vault` is the *plaintext twin*: the same column names
//! with plain PostgreSQL types. With it the proxy encrypts (`pgseal_proxy::serve_encrypted`),
//! `vault` declares its columns with the `pgseal.*` domains, and every test also checks through
//! a direct connection that each stored value is a pgseal ciphertext (first byte `0xB5`) that
//! opens to the value written. The driver programs learn the mode from `PGSEAL_E2E_MODE`
//! (`encrypted` or `plaintext`).
//!
//! # External tools
//!
//! `psql`, `python3` (with `psycopg`, `asyncpg`, `pytest`) and `node` (with
//! `tests/drivers/node/node_modules`) are installed by `scripts/install-deps`. When one is
//! missing a test prints a notice and passes, unless `CI` is set to `true`, where a missing
//! tool fails the test.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
