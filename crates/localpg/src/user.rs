//! Who runs the server: ourselves, or the `postgres` system user when we are root.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::LocalPgError;

/// A uid/gid pair to run PostgreSQL's server programs (and pgbouncer) as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl RunAs {
    /// initdb and postgres refuse to run as root, so root hands them to the `postgres` user.
    ///
    /// `probe` is a directory we just created: its owner is our effective uid, which avoids an
    /// `unsafe` call to `geteuid`.
    pub(crate) fn for_current_process(probe: &Path) -> Result<Option<RunAs>, LocalPgError> {
        let euid = std::fs::metadata(probe)
            .map_err(|e| LocalPgError::io(format!("stat {}", probe.display()), e))?
            .uid();
        if euid != 0 {
            return Ok(None);
        }
        let passwd = std::fs::read_to_string("/etc/passwd")
            .map_err(|e| LocalPgError::io("read /etc/passwd", e))?;
        lookup_user(&passwd, "postgres")
            .map(Some)
            .ok_or(LocalPgError::NoPostgresUser)
    }

    /// The user server programs must run as in this process: `None` (ourselves) unless we are
    /// root, then the `postgres` system user, since initdb, postgres and pgbouncer refuse root.
    pub fn for_servers() -> Result<Option<RunAs>, LocalPgError> {
        // /proc/self belongs to the process's effective uid: no `unsafe` geteuid needed.
        Self::for_current_process(Path::new("/proc/self"))
    }

    /// Makes `cmd` run as this user.
    pub fn apply(self, cmd: &mut Command) {
        cmd.uid(self.uid).gid(self.gid);
    }

    /// Gives `path` to this user.
    pub fn chown(self, path: &Path) -> Result<(), LocalPgError> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid)).map_err(|e| {
            LocalPgError::io(format!("chown {} to the postgres user", path.display()), e)
        })
    }
}

/// Finds `name:pw:uid:gid:...` in passwd(5) text.
pub(crate) fn lookup_user(passwd: &str, name: &str) -> Option<RunAs> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some(RunAs { uid, gid })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_postgres_in_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      postgresql:x:7:7::/:/bin/false\n\
                      postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n";
        assert_eq!(
            lookup_user(passwd, "postgres"),
            Some(RunAs { uid: 101, gid: 104 })
        );
        assert_eq!(lookup_user(passwd, "nobody"), None);
        assert_eq!(lookup_user("postgres:x:notanumber:1::/:", "postgres"), None);
    }
}
