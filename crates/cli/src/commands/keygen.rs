//! `pgseal keygen`.

use pgseal::MasterKey;

use super::CommandResult;

/// Prints a new key on stdout (and only there) and its fingerprint on stderr.
pub fn run() -> CommandResult {
    let key = MasterKey::generate();
    println!("{}", &*key.expose_base64());
    eprintln!("fingerprint: {}", key.fingerprint());
    Ok(())
}
