//! In-process encryption for Rust applications, and the key loading shared by the CLI and proxy.
