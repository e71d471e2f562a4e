//! Locating the PostgreSQL server binaries and their major version.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::LocalPgError;

/// Environment variable naming the directory that holds `initdb`, `postgres` and `pg_ctl`.
pub const BINDIR_ENV: &str = "PGSEAL_PG_BINDIR";

/// Where Debian and Ubuntu install one directory per server major version.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// The server binaries that were found, with their major version.
#[derive(Debug, Clone)]
pub(crate) struct ServerBinaries {
    pub(crate) bin_dir: PathBuf,
    pub(crate) major: u32,
}

fn has_initdb(dir: &Path) -> bool {
    dir.join("initdb").is_file()
}

/// `$PGSEAL_PG_BINDIR`, else `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`.
pub(crate) fn find() -> Result<ServerBinaries, LocalPgError> {
    let bin_dir = find_bin_dir()?;
    let major = server_major(&bin_dir)?;
    Ok(ServerBinaries { bin_dir, major })
}

fn find_bin_dir() -> Result<PathBuf, LocalPgError> {
    if let Some(dir) = std::env::var_os(BINDIR_ENV) {
        let dir = PathBuf::from(dir);
        // An explicit setting that is wrong must not silently fall back to another server.
        if has_initdb(&dir) {
            return Ok(dir);
        }
        return Err(LocalPgError::ServerNotInstalled {
            searched: format!("{BINDIR_ENV}={} has no initdb", dir.display()),
        });
    }
    let mut searched = Vec::new();
    match Command::new("pg_config").arg("--bindir").output() {
        Ok(out) if out.status.success() => {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if has_initdb(&dir) {
                return Ok(dir);
            }
            searched.push(format!(
                "`pg_config --bindir` = {} has no initdb",
                dir.display()
            ));
        }
        _ => searched.push("no working pg_config on PATH".to_owned()),
    }
    if let Some(dir) = newest_debian_bin_dir(Path::new(DEBIAN_ROOT)) {
        return Ok(dir);
    }
    searched.push(format!("no {DEBIAN_ROOT}/*/bin/initdb"));
    Err(LocalPgError::ServerNotInstalled {
        searched: searched.join("; "),
    })
}

/// The highest-versioned `<root>/<version>/bin` that contains `initdb`.
pub(crate) fn newest_debian_bin_dir(root: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(root).ok()?;
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let version = parse_version_key(name.to_str()?)?;
            let bin = entry.path().join("bin");
            has_initdb(&bin).then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// "15" → [15], "9.6" → [9, 6]; anything else is not a version directory.
fn parse_version_key(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

fn server_major(bin_dir: &Path) -> Result<u32, LocalPgError> {
    let postgres = bin_dir.join("postgres");
    let out = Command::new(&postgres)
        .arg("--version")
        .output()
        .map_err(|e| LocalPgError::io(format!("run `{} --version`", postgres.display()), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match parse_major(&text) {
        Some(major) if major >= 10 => Ok(major),
        _ => Err(LocalPgError::UnsupportedVersion {
            version: text.trim().to_owned(),
            bin_dir: bin_dir.to_owned(),
        }),
    }
}

/// Parses `postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)` to 15.
pub(crate) fn parse_major(version_output: &str) -> Option<u32> {
    let rest = version_output.split("(PostgreSQL)").nth(1)?.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_major_versions() {
        assert_eq!(
            parse_major("postgres (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)\n"),
            Some(15)
        );
        assert_eq!(parse_major("postgres (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_major("postgres (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major("something else"), None);
    }

    #[test]
    fn picks_newest_debian_directory_with_initdb() {
        let root = tempfile::tempdir().expect("temp dir");
        for (version, with_initdb) in [("9.6", true), ("13", true), ("16", false), ("15", true)] {
            let bin = root.path().join(version).join("bin");
            std::fs::create_dir_all(&bin).expect("mkdir");
            if with_initdb {
                std::fs::write(bin.join("initdb"), b"").expect("write");
            }
        }
        std::fs::create_dir_all(root.path().join("not-a-version/bin")).expect("mkdir");
        assert_eq!(
            newest_debian_bin_dir(root.path()),
            Some(root.path().join("15").join("bin"))
        );
    }
}
