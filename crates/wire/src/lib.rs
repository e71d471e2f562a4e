//! PostgreSQL frontend/backend protocol v3 messages. No I/O, no runtime.
