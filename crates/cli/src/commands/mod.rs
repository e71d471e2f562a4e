//! One module per subcommand.

pub mod columns;
pub mod dev;
pub mod init;
pub mod keygen;
pub mod proxy;

/// A command's failure: the one line printed after `error: `.
pub type CommandResult = Result<(), String>;
