//! A cached, initdb'd template data directory, copied for every new cluster.
//!
//! initdb takes over a second; copying its result takes a tenth of that. The cache lives in
//! `$TMPDIR/pgseal-initdb-cache-<major>-uid<uid>` (one per server version and per owner, since a
//! data directory must belong to the user that runs the server). It is built in a sibling
//! temporary directory and renamed into place, so concurrent processes never see half of one:
//! whoever loses the rename race throws its copy away and uses the winner's.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::binaries::ServerBinaries;
use crate::user::RunAs;
use crate::LocalPgError;

/// Creates the data directory `dest` (which must not exist), from the cache when possible.
pub(crate) fn prepare_data_dir(
    bins: &ServerBinaries,
    run_as: Option<RunAs>,
    work_dir: &Path,
    dest: &Path,
) -> Result<(), LocalPgError> {
    let owner = match run_as {
        Some(user) => user.uid,
        None => std::fs::metadata(work_dir)
            .map_err(|e| LocalPgError::io(format!("stat {}", work_dir.display()), e))?
            .uid(),
    };
    let cache = std::env::temp_dir().join(format!("pgseal-initdb-cache-{}-uid{owner}", bins.major));
    match ensure_cache(bins, run_as, owner, &cache)? {
        Some(template) => copy_dir(&template, dest),
        // Someone else owns the cache path: never trust a data directory we did not create.
        None => initdb(bins, run_as, work_dir, dest),
    }
}

/// Returns the template data directory, building it first if needed; `None` when the cache path
/// is taken by something we will not use.
fn ensure_cache(
    bins: &ServerBinaries,
    run_as: Option<RunAs>,
    owner: u32,
    cache: &Path,
) -> Result<Option<PathBuf>, LocalPgError> {
    match cache_state(cache, owner, bins.major) {
        CacheState::Valid => return Ok(Some(cache.join("data"))),
        CacheState::Foreign => return Ok(None),
        CacheState::Missing => {}
        CacheState::Damaged => {
            // Ours but incomplete (a tmp cleaner removed part of it, say): rebuild. Failure to
            // remove it surfaces as a failed rename below.
            let _ = std::fs::remove_dir_all(cache);
        }
    }
    let parent = cache.parent().unwrap_or_else(|| Path::new("/"));
    let build = tempfile::Builder::new()
        .prefix(".pgseal-initdb-build-")
        .tempdir_in(parent)
        .map_err(|e| LocalPgError::io("create a directory to build the initdb template", e))?;
    if let Some(user) = run_as {
        user.chown(build.path())?;
    }
    initdb(bins, run_as, build.path(), &build.path().join("data"))?;
    match std::fs::rename(build.path(), cache) {
        Ok(()) => {
            // The directory now lives at `cache`; the TempDir must not delete it.
            let _ = build.keep();
        }
        Err(rename_error) => {
            if cache_state(cache, owner, bins.major) != CacheState::Valid {
                return Err(LocalPgError::io(
                    format!("move the initdb template to {}", cache.display()),
                    rename_error,
                ));
            }
            // Another process built it first; ours is dropped with `build`.
        }
    }
    Ok(Some(cache.join("data")))
}

#[derive(Debug, PartialEq, Eq)]
enum CacheState {
    Missing,
    Valid,
    Damaged,
    Foreign,
}

fn cache_state(cache: &Path, owner: u32, major: u32) -> CacheState {
    let Ok(meta) = std::fs::symlink_metadata(cache) else {
        return CacheState::Missing;
    };
    // A directory someone else could write to (or a symlink) could hold anything.
    if !meta.is_dir() || meta.uid() != owner || meta.permissions().mode() & 0o022 != 0 {
        return CacheState::Foreign;
    }
    let data = cache.join("data");
    let version_ok = std::fs::read_to_string(data.join("PG_VERSION"))
        .map(|v| v.trim() == major.to_string())
        .unwrap_or(false);
    if version_ok && data.join("global/pg_control").is_file() && data.join("base").is_dir() {
        CacheState::Valid
    } else {
        CacheState::Damaged
    }
}

fn initdb(
    bins: &ServerBinaries,
    run_as: Option<RunAs>,
    work_dir: &Path,
    data_dir: &Path,
) -> Result<(), LocalPgError> {
    let mut cmd = Command::new(bins.bin_dir.join("initdb"));
    cmd.arg("-D")
        .arg(data_dir)
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
        .arg("--locale=C")
        // initdb fails when it cannot read the current directory, which root's home would be.
        .current_dir(work_dir)
        .env_remove("PGDATA");
    if let Some(user) = run_as {
        user.apply(&mut cmd);
    }
    run(cmd, "initdb")
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), LocalPgError> {
    // `cp -a` keeps modes and owners (as root, the postgres user's ownership).
    let mut cmd = Command::new("cp");
    cmd.arg("-a").arg(from).arg(to);
    run(cmd, "cp -a <initdb template>")
}

pub(crate) fn run(mut cmd: Command, name: &str) -> Result<(), LocalPgError> {
    let out = cmd
        .output()
        .map_err(|e| LocalPgError::io(format!("run {name}"), e))?;
    if out.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    Err(LocalPgError::CommandFailed {
        program: name.to_owned(),
        status: out.status.to_string(),
        output: crate::cluster::last_lines(&text, 20),
    })
}
