//! One module per subcommand.

pub mod backup;
pub mod columns;
pub mod dev;
pub mod init;
pub mod keygen;
pub mod keys;
pub mod migrate;
pub mod proxy;
pub mod reencrypt;
pub mod wal;

/// A command's failure: the one line printed after `error: `.
pub type CommandResult = Result<(), String>;
