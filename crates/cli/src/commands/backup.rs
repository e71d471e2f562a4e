//! `pgseal backup`: encrypted logical backups (`pg_dump`), base backups (`pg_basebackup`) and
//! their restores. The format and the cryptography live in `pgseal-backup`; this module runs the
//! PostgreSQL tools and plumbs their streams through it with constant memory.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::thread::JoinHandle;

use pgseal_backup::{
    load_backup_keys_from_env, read_header, rekey_file, BackupError, BackupKeyring, DecryptReader,
    EncryptWriter, Header, LocalDir, Metadata, ObjectKind, RekeyOutcome, Storage, StreamSummary,
};
use tokio_postgres::Config;

use super::CommandResult;
use crate::db::{connect, DatabaseArgs};

/// zstd level of logical and base backups: level 3 (zstd's default) compresses a dump about as
/// well as gzip -6 at several times its speed, so compression never holds up pg_dump.
const ZSTD_LEVEL: i32 = 3;

/// Decompressed bytes held back from pg_restore until the whole backup has authenticated: the
/// end of a custom-format archive is in them, so pg_restore cannot finish (and commit) a
/// restore from a stream whose final chunk was cut off or damaged.
const HOLD_BACK: usize = 64 << 10;

/// Flags of `pgseal backup`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(clap::Subcommand)]
enum BackupCommand {
    /// Back up a database: pg_dump (custom format), zstd, AES-256-GCM, to a file or stdout.
    ///
    /// Needs PGSEAL_BACKUP_KEY (or PGSEAL_BACKUP_KEY_FILE), which must not be the master key.
    Create(CreateArgs),
    /// Authenticate a whole backup without restoring it.
    Verify(FileArgs),
    /// Print a backup's header: kind, creation time, source, versions, key fingerprint, sizes.
    /// Needs no key; the header is authenticated only by `verify`.
    Inspect(InspectArgs),
    /// Restore a logical backup into an empty database, in one transaction.
    Restore(RestoreArgs),
    /// Rewrap a backup's data key under the current backup key (payload untouched).
    Rekey(RekeyFileArgs),
    /// Take an encrypted physical base backup (pg_basebackup tar stream with its WAL) for
    /// point-in-time recovery.
    Base(BaseArgs),
    /// Decrypt a base backup into an empty data directory.
    RestoreBase(RestoreBaseArgs),
}

#[derive(clap::Args)]
struct CreateArgs {
    /// Where to write the backup (`-` or absent: standard output, never a terminal).
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(clap::Args)]
struct FileArgs {
    /// The backup file (`-`: standard input).
    file: PathBuf,
}

#[derive(clap::Args)]
struct RekeyFileArgs {
    /// The backup file, rewritten atomically.
    file: PathBuf,
}

#[derive(clap::Args)]
struct InspectArgs {
    /// The backup file (`-`: standard input).
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct RestoreArgs {
    /// The backup file (`-`: standard input).
    file: PathBuf,
    /// Restore even if the target database already has tables.
    #[arg(long)]
    allow_non_empty: bool,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(clap::Args)]
struct BaseArgs {
    /// Backup repository directory; the backup is stored as `base/<time>-<id>.pgseal`.
    #[arg(long, env = "PGSEAL_BACKUP_REPO", conflicts_with = "output")]
    repo: Option<PathBuf>,
    /// Write to this file instead (`-`: standard output, never a terminal).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Ask the server for an immediate checkpoint instead of a spread one.
    #[arg(long)]
    fast_checkpoint: bool,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(clap::Args)]
struct RestoreBaseArgs {
    /// The base backup file (`-`: standard input); or use --repo.
    file: Option<PathBuf>,
    /// Backup repository to take the base backup from (the newest unless --name is given).
    #[arg(long, env = "PGSEAL_BACKUP_REPO")]
    repo: Option<PathBuf>,
    /// The base backup's name in the repository, e.g. `base/20260101T120000Z-1a2b3c4d.pgseal`.
    #[arg(long, requires = "repo")]
    name: Option<String>,
    /// The data directory to create (must be absent or empty).
    #[arg(short = 'D', long)]
    data_dir: PathBuf,
}

/// Runs `pgseal backup`.
pub async fn run(args: Args) -> CommandResult {
    match args.command {
        BackupCommand::Create(args) => create(args).await,
        BackupCommand::Verify(args) => blocking(move || verify(&args.file)).await,
        BackupCommand::Inspect(args) => blocking(move || inspect(&args)).await,
        BackupCommand::Restore(args) => restore(args).await,
        BackupCommand::Rekey(args) => blocking(move || rekey(&args.file)).await,
        BackupCommand::Base(args) => base(args).await,
        BackupCommand::RestoreBase(args) => blocking(move || restore_base(&args)).await,
    }
}

async fn blocking(work: impl FnOnce() -> CommandResult + Send + 'static) -> CommandResult {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("internal error: the backup worker stopped: {e}"))?
}

fn keys() -> Result<BackupKeyring, String> {
    load_backup_keys_from_env().map_err(|e| e.to_string())
}

fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == "-"
}

// ---------------------------------------------------------------------------------------------
// Outputs and inputs

/// Where a new backup goes: a file that appears under its name only once complete, or stdout.
enum Output {
    File {
        file: File,
        temp: PartialFile,
        path: PathBuf,
    },
    Stdout(io::Stdout),
    Object {
        writer: Box<dyn pgseal_backup::ObjectWriter>,
        key: String,
        repo: String,
    },
}

impl Output {
    fn open(path: Option<&Path>) -> Result<Output, String> {
        match path {
            Some(path) if !is_stdio(path) => {
                if path.exists() {
                    return Err(format!(
                        "{} already exists; choose another name or remove it first",
                        path.display()
                    ));
                }
                let dir = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "backup".into());
                let temp = dir.join(format!(".{name}.partial-{}", std::process::id()));
                let file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&temp)
                    .map_err(|e| format!("cannot create {}: {e}", temp.display()))?;
                Ok(Output::File {
                    file,
                    temp: PartialFile(temp),
                    path: path.to_owned(),
                })
            }
            _ => {
                let stdout = io::stdout();
                if stdout.is_terminal() {
                    return Err("refusing to write an encrypted backup to a terminal: pass \
                                -o FILE or redirect standard output"
                        .into());
                }
                Ok(Output::Stdout(stdout))
            }
        }
    }

    fn object(repo: &Path, key: String) -> Result<Output, String> {
        let store = LocalDir::open(repo).map_err(|e| e.to_string())?;
        let writer = store.put(&key).map_err(|e| e.to_string())?;
        Ok(Output::Object {
            writer,
            key,
            repo: store.describe(),
        })
    }

    /// Makes the finished backup durable and visible; returns where it went.
    fn commit(self) -> Result<String, String> {
        match self {
            Output::File { file, temp, path } => {
                file.sync_all()
                    .map_err(|e| format!("cannot sync {}: {e}", temp.0.display()))?;
                drop(file);
                // link(2) rather than rename(2): never replace a file created meanwhile.
                std::fs::hard_link(&temp.0, &path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                drop(temp);
                Ok(path.display().to_string())
            }
            Output::Stdout(mut out) => {
                out.flush()
                    .map_err(|e| format!("cannot write to standard output: {e}"))?;
                Ok("standard output".into())
            }
            Output::Object { writer, key, repo } => {
                writer.commit().map_err(|e| e.to_string())?;
                Ok(format!("{key} in {repo}"))
            }
        }
    }

    fn abandon(self) {
        // A partial file and an uncommitted object remove themselves on drop; a stream on
        // stdout lacks its final chunk, which every reader reports as truncation.
        drop(self);
    }
}

/// The temporary name a backup file is written under; removed on drop (after a successful
/// commit it is only a second link to the finished file).
struct PartialFile(PathBuf);

impl Drop for PartialFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::File { file, .. } => file.write(buf),
            Output::Stdout(out) => out.write(buf),
            Output::Object { writer, .. } => writer.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::File { file, .. } => file.flush(),
            Output::Stdout(out) => out.flush(),
            Output::Object { writer, .. } => writer.flush(),
        }
    }
}

fn open_input(path: &Path) -> Result<(Box<dyn Read + Send>, String), String> {
    if is_stdio(path) {
        return Ok((Box::new(io::stdin()), "standard input".into()));
    }
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    Ok((
        Box::new(io::BufReader::with_capacity(1 << 16, file)),
        path.display().to_string(),
    ))
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL client programs

/// A PostgreSQL client program found on this machine.
struct PgProgram {
    path: PathBuf,
    major: u32,
    version_line: String,
}

/// Finds `name` with a major version at least `server_major` (pg_dump refuses, or worse, a
/// server newer than itself): `$PGSEAL_PG_BINDIR`, the Debian directory of the server's own
/// version, `PATH`, then the newest `/usr/lib/postgresql/*/bin`.
fn find_program(name: &str, server_major: u32) -> Result<PgProgram, String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os(pgseal_localpg::BINDIR_ENV) {
        candidates.push(PathBuf::from(dir).join(name));
    }
    candidates.push(PathBuf::from(format!(
        "/usr/lib/postgresql/{server_major}/bin/{name}"
    )));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join(name)));
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin").join(name)))
        })
        .collect();
    versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
    candidates.extend(versioned.into_iter().map(|(_, p)| p));

    let mut too_old: Option<PgProgram> = None;
    for path in candidates {
        if !path.is_file() {
            continue;
        }
        let Some(program) = probe(&path) else {
            continue;
        };
        if program.major >= server_major {
            return Ok(program);
        }
        too_old.get_or_insert(program);
    }
    Err(match too_old {
        Some(old) => format!(
            "{} is {} (major version {}), older than the server (PostgreSQL {server_major}), and \
             no newer {name} was found: install the PostgreSQL {server_major} client programs \
             or set {} to their directory",
            old.path.display(),
            old.version_line,
            old.major,
            pgseal_localpg::BINDIR_ENV
        ),
        None => format!(
            "{name} was not found (searched ${}, /usr/lib/postgresql/*/bin and PATH): install \
             the PostgreSQL {server_major} client programs",
            pgseal_localpg::BINDIR_ENV
        ),
    })
}

fn probe(path: &Path) -> Option<PgProgram> {
    let out = Command::new(path).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    // "pg_dump (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)"
    let version = line.split(") ").nth(1)?;
    let major = version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some(PgProgram {
        path: path.to_owned(),
        major,
        version_line: line,
    })
}

/// Passes the connection to a libpq program through `PG*` variables, so that neither the URL
/// nor its password appears in the process arguments.
fn libpq_env(cmd: &mut Command, url: &str) -> Result<(), String> {
    use tokio_postgres::config::{Host, SslMode};
    let config: Config = url
        .parse()
        .map_err(|_| "the database URL is not a valid PostgreSQL connection string".to_owned())?;
    for var in [
        "PGSERVICE",
        "PGSERVICEFILE",
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
        "PGOPTIONS",
        "PGSSLMODE",
        "PGAPPNAME",
    ] {
        cmd.env_remove(var);
    }
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    if !hosts.is_empty() {
        cmd.env("PGHOST", hosts.join(","));
    }
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    if !ports.is_empty() {
        cmd.env("PGPORT", ports.join(","));
    }
    if let Some(user) = config.get_user() {
        cmd.env("PGUSER", user);
    }
    if let Some(password) = config.get_password() {
        cmd.env("PGPASSWORD", String::from_utf8_lossy(password).into_owned());
    }
    if let Some(db) = config.get_dbname() {
        cmd.env("PGDATABASE", db);
    }
    if let Some(options) = config.get_options() {
        cmd.env("PGOPTIONS", options);
    }
    cmd.env(
        "PGSSLMODE",
        match config.get_ssl_mode() {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            _ => "prefer",
        },
    );
    cmd.env("PGAPPNAME", "pgseal backup");
    Ok(())
}

/// Collects a child's stderr on a thread (so the child never blocks on a full pipe), keeping
/// the last few KiB for an error message.
fn drain_stderr(stderr: Option<ChildStderr>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let Some(mut stderr) = stderr else {
            return String::new();
        };
        let mut kept: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    kept.extend_from_slice(&buf[..n]);
                    if kept.len() > 8192 {
                        kept.drain(..kept.len() - 8192);
                    }
                }
            }
        }
        String::from_utf8_lossy(&kept).trim().to_owned()
    })
}

fn stderr_text(handle: JoinHandle<String>) -> String {
    handle.join().unwrap_or_default()
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Facts about the source server, for the header and for choosing client programs.
struct Server {
    database: String,
    version: String,
    major: u32,
    url: String,
}

async fn server(database: &DatabaseArgs) -> Result<Server, String> {
    let client = connect(database).await?;
    let row = client
        .query_one(
            "SELECT current_database(), current_setting('server_version'), \
             current_setting('server_version_num')::int",
            &[],
        )
        .await
        .map_err(|e| format!("cannot read the server version: {e}"))?;
    let num: i32 = row.get(2);
    Ok(Server {
        database: row.get(0),
        version: row.get(1),
        major: u32::try_from(num / 10_000).unwrap_or(0),
        url: database.database_url.clone().unwrap_or_default(),
    })
}

// ---------------------------------------------------------------------------------------------
// create / base

async fn create(args: CreateArgs) -> CommandResult {
    // Keys first: a bad key must be refused before anything runs.
    let keyring = keys()?;
    let output = Output::open(args.output.as_deref())?;
    let server = match server(&args.database).await {
        Ok(s) => s,
        Err(e) => {
            output.abandon();
            return Err(e);
        }
    };
    blocking(move || {
        let pg_dump = match find_program("pg_dump", server.major) {
            Ok(p) => p,
            Err(e) => {
                output.abandon();
                return Err(e);
            }
        };
        let mut cmd = Command::new(&pg_dump.path);
        // -Z0: pgseal compresses (zstd) before encrypting; compressing twice would only cost.
        cmd.args(["--format=custom", "--compress=0", "--no-password"]);
        let metadata = Metadata::now()
            .with_database(&server.database)
            .with_server_version(&server.version)
            .with_producer(&pg_dump.version_line);
        let done = seal_program_output(
            cmd,
            &server.url,
            "pg_dump",
            output,
            &keyring,
            ObjectKind::LogicalDump,
            metadata,
        )?;
        eprintln!(
            "backup of database {} written to {}: {} bytes, {} chunks, sealed with backup key {}",
            server.database,
            done.0,
            done.1.file_bytes,
            done.1.chunks,
            keyring.current().fingerprint()
        );
        Ok(())
    })
    .await
}

async fn base(args: BaseArgs) -> CommandResult {
    let keyring = keys()?;
    let server = server(&args.database).await?;
    let mut name = None;
    let output = match &args.repo {
        Some(repo) => {
            let key = pgseal_backup::new_base_backup_key();
            name = Some(key.clone());
            Output::object(repo, key)?
        }
        None if args.output.is_some() => Output::open(args.output.as_deref())?,
        None => {
            return Err(
                "say where the base backup goes: --repo DIR (or PGSEAL_BACKUP_REPO) or -o FILE"
                    .into(),
            )
        }
    };
    let fast = args.fast_checkpoint;
    blocking(move || {
        let program = match find_program("pg_basebackup", server.major) {
            Ok(p) => p,
            Err(e) => {
                output.abandon();
                return Err(e);
            }
        };
        let mut cmd = Command::new(&program.path);
        // Tar format to stdout with the WAL needed for consistency fetched at the end: the base
        // backup restores on its own, and archived WAL takes it further (PITR).
        cmd.args([
            "--format=tar",
            "--wal-method=fetch",
            "--pgdata=-",
            "--no-password",
        ]);
        cmd.arg(if fast {
            "--checkpoint=fast"
        } else {
            "--checkpoint=spread"
        });
        let metadata = Metadata::now()
            .with_database(&server.database)
            .with_server_version(&server.version)
            .with_producer(&program.version_line);
        let (place, summary) = seal_program_output(
            cmd,
            &server.url,
            "pg_basebackup",
            output,
            &keyring,
            ObjectKind::BaseBackup,
            metadata,
        )?;
        // The object's name on stdout, for scripts; the rest is for people.
        if let Some(name) = name {
            println!("{name}");
        }
        eprintln!(
            "base backup written to {place}: {} bytes, sealed with backup key {}",
            summary.file_bytes,
            keyring.current().fingerprint()
        );
        Ok(())
    })
    .await
}

/// Runs `cmd`, streams its stdout through zstd and the sealing writer into `output`, and
/// commits the output only if the program succeeded.
fn seal_program_output(
    mut cmd: Command,
    url: &str,
    name: &str,
    output: Output,
    keyring: &BackupKeyring,
    kind: ObjectKind,
    metadata: Metadata,
) -> Result<(String, StreamSummary), String> {
    if let Err(e) = libpq_env(&mut cmd, url) {
        output.abandon();
        return Err(e);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            output.abandon();
            return Err(format!("cannot start {name}: {e}"));
        }
    };
    let stderr = drain_stderr(child.stderr.take());
    let Some(mut stdout) = child.stdout.take() else {
        kill(&mut child);
        output.abandon();
        return Err(format!("cannot read the output of {name}"));
    };
    let sealed = match EncryptWriter::new(output, keyring.current(), kind, metadata) {
        Ok(w) => w,
        Err(e) => {
            kill(&mut child);
            return Err(e.to_string());
        }
    };
    let mut encoder = match zstd::Encoder::new(sealed, ZSTD_LEVEL) {
        Ok(e) => e,
        Err(e) => {
            kill(&mut child);
            return Err(format!("cannot start zstd compression: {e}"));
        }
    };
    let copied = copy_large(&mut stdout, &mut encoder);
    drop(stdout);
    if let Err(e) = copied {
        kill(&mut child);
        let _ = stderr_text(stderr);
        abandon_encoder(encoder);
        return Err(format!(
            "the backup failed while writing: {}",
            BackupError::from_io(e, "write the backup")
        ));
    }
    let status = child.wait();
    let messages = stderr_text(stderr);
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            abandon_encoder(encoder);
            return Err(format!(
                "{name} failed ({s}); nothing was kept: {}",
                if messages.is_empty() {
                    "no message"
                } else {
                    &messages
                }
            ));
        }
        Err(e) => {
            abandon_encoder(encoder);
            return Err(format!("cannot wait for {name}: {e}"));
        }
    }
    // Only now, with the program's success known, is the final chunk sealed.
    let sealed = encoder
        .finish()
        .map_err(|e| format!("cannot finish compression: {e}"))?;
    let (output, summary) = sealed.finish_with_summary().map_err(|e| e.to_string())?;
    let place = output.commit()?;
    Ok((place, summary))
}

fn abandon_encoder(encoder: zstd::Encoder<'static, EncryptWriter<Output>>) {
    // Dropped without finish(): no final chunk is sealed. The output's own drop removes a
    // partial file or object; a stream on stdout stays detectably truncated.
    drop(encoder);
}

// ---------------------------------------------------------------------------------------------
// verify / inspect / rekey

fn verify(path: &Path) -> CommandResult {
    let keyring = keys()?;
    let (input, what) = open_input(path)?;
    let reader = DecryptReader::named(input, &keyring, &what).map_err(|e| e.to_string())?;
    let kind = reader.header().kind();
    let fingerprint = reader.header().key_fingerprint();
    let mut decoder = zstd::Decoder::new(reader).map_err(|e| format!("cannot start zstd: {e}"))?;
    let uncompressed =
        io::copy(&mut decoder, &mut io::sink()).map_err(|e| describe_read_error(e, &what))?;
    let mut reader = decoder.finish();
    // zstd stops at the end of its frame; the stream must still be read to its final chunk.
    io::copy(&mut reader, &mut io::sink()).map_err(|e| describe_read_error(e, &what))?;
    let summary = reader.get_ref().summary();
    if !reader.get_ref().is_complete() {
        return Err(format!("{what} did not reach its final chunk"));
    }
    println!(
        "{what}: OK, {} authenticated with backup key {fingerprint}: {} chunks, {} bytes \
         compressed, {uncompressed} bytes uncompressed",
        kind.name(),
        summary.chunks,
        summary.plaintext_bytes
    );
    Ok(())
}

/// Turns a read error from the decrypting pipeline into the backup's own message.
fn describe_read_error(err: io::Error, what: &str) -> String {
    // Archive readers (tar) wrap the error they got from the stream in their own.
    if let Some(found) = backup_error_in(&err) {
        return found;
    }
    match BackupError::from_io(err, &format!("read {what}")) {
        BackupError::Io { source, .. } if source.kind() != io::ErrorKind::UnexpectedEof => {
            // Every chunk authenticated, so this is zstd refusing authentic bytes.
            BackupError::Decompress {
                what: what.to_owned(),
                detail: source.to_string(),
            }
            .to_string()
        }
        other => other.to_string(),
    }
}

/// The message of a [`BackupError`] anywhere in an I/O error's chain of causes.
fn backup_error_in(err: &io::Error) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = err
        .get_ref()
        .map(|e| e as &(dyn std::error::Error + 'static));
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<BackupError>() {
            return Some(found.to_string());
        }
        current = match e.downcast_ref::<io::Error>() {
            // io::Error's source() skips the error it carries; get_ref() returns it.
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

fn inspect(args: &InspectArgs) -> CommandResult {
    let (mut input, what) = open_input(&args.file)?;
    let (header, header_len) = read_header(&mut input, &what).map_err(|e| e.to_string())?;
    let file_len = if is_stdio(&args.file) {
        None
    } else {
        std::fs::metadata(&args.file).ok().map(|m| m.len())
    };
    let sizes = file_len.map(|len| sizes(&header, header_len, len));
    let meta = header.metadata();
    if args.json {
        let mut doc = serde_json::json!({
            "file": what,
            "format_version": pgseal_backup::FORMAT_VERSION,
            "kind": header.kind().name(),
            "created_at": meta.created_at,
            "pgseal_version": meta.pgseal_version,
            "database": meta.database,
            "server_version": meta.server_version,
            "producer": meta.producer,
            "object_name": meta.object_name,
            "backup_key_fingerprint": header.key_fingerprint().to_string(),
            "file_id": header.file_id_hex(),
            "compression": "zstd",
            "cipher": "AES-256-GCM STREAM",
            "chunk_size": header.chunk_size(),
            "header_bytes": header_len,
            "authenticated": false,
        });
        if let (Some((file_bytes, chunks, compressed)), Some(obj)) = (sizes, doc.as_object_mut()) {
            obj.insert("file_bytes".into(), file_bytes.into());
            obj.insert("chunks".into(), chunks.into());
            obj.insert("compressed_bytes".into(), compressed.into());
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("file:             {what}");
    println!("kind:             {}", header.kind().name());
    println!("created:          {}", meta.created_at);
    println!("source database:  {}", opt(&meta.database));
    println!("server version:   {}", opt(&meta.server_version));
    println!("produced by:      {}", opt(&meta.producer));
    println!("pgseal version:   {}", meta.pgseal_version);
    if let Some(name) = &meta.object_name {
        println!("object name:      {name}");
    }
    println!("backup key:       {}", header.key_fingerprint());
    println!("file id:          {}", header.file_id_hex());
    println!(
        "format:           version {}, zstd, AES-256-GCM STREAM",
        pgseal_backup::FORMAT_VERSION
    );
    println!("chunk size:       {} bytes", header.chunk_size());
    if let Some((file_bytes, chunks, compressed)) = sizes {
        println!("file size:        {file_bytes} bytes ({chunks} chunks, {compressed} bytes compressed payload)");
    }
    println!(
        "(header not authenticated; `pgseal backup verify` checks the whole file with the key)"
    );
    Ok(())
}

/// File size, chunk count and compressed payload size, from the file length.
fn sizes(header: &Header, header_len: usize, file_len: u64) -> (u64, u64, u64) {
    let sealed = file_len.saturating_sub(header_len as u64);
    let per_chunk = u64::from(header.chunk_size()) + 16;
    let chunks = sealed.div_ceil(per_chunk).max(1);
    (file_len, chunks, sealed.saturating_sub(16 * chunks))
}

fn rekey(path: &Path) -> CommandResult {
    let keyring = keys()?;
    match rekey_file(path, &keyring).map_err(|e| e.to_string())? {
        RekeyOutcome::Rekeyed { from, to } => println!(
            "{}: data key rewrapped from backup key {from} to {to}; the payload is unchanged",
            path.display()
        ),
        RekeyOutcome::AlreadyCurrent(fp) => println!(
            "{}: already wrapped under the current backup key {fp}; nothing to do",
            path.display()
        ),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// restore

async fn restore(args: RestoreArgs) -> CommandResult {
    let keyring = keys()?;
    let path = args.file.clone();
    // The header authenticates before the database is touched: a wrong key or foreign file is
    // refused without connecting.
    let (input, what) = open_input(&path)?;
    let (reader, what) = blocking_value(move || {
        DecryptReader::named(input, &keyring, &what)
            .map(|r| (r, what))
            .map_err(|e| e.to_string())
    })
    .await?;
    if reader.header().kind() != ObjectKind::LogicalDump {
        return Err(format!(
            "{what} is a {}, not a logical backup: use `pgseal backup restore-base`",
            reader.header().kind().name()
        ));
    }
    let server = server(&args.database).await?;
    if !args.allow_non_empty {
        let client = connect(&args.database).await?;
        let row = client
            .query_one(
                // Tables only, and not those an extension owns (pg_stat_statements and the
                // like are there in a fresh database and are recreated by the dump itself).
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p', 'f') \
                   AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' \
                   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                                   AND d.objid = c.oid AND d.deptype = 'e')",
                &[],
            )
            .await
            .map_err(|e| format!("cannot check that the target database is empty: {e}"))?;
        let count: i64 = row.get(0);
        if count > 0 {
            return Err(format!(
                "database {} is not empty ({count} tables); restore into a \
                 new database (createdb) or pass --allow-non-empty",
                server.database
            ));
        }
    }
    blocking(move || {
        let program = find_program("pg_restore", server.major)?;
        let mut cmd = Command::new(&program.path);
        libpq_env(&mut cmd, &server.url)?;
        cmd.args([
            "--single-transaction",
            "--exit-on-error",
            "--no-password",
            "--dbname",
        ])
        .arg(conninfo_dbname(&server.database))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start pg_restore: {e}"))?;
        let stderr = drain_stderr(child.stderr.take());
        let Some(stdin) = child.stdin.take() else {
            kill(&mut child);
            return Err("cannot write to pg_restore".into());
        };
        let mut held = HoldBack::new(stdin);
        let result = feed(reader, &mut held, &what);
        match result {
            Ok(()) => {
                if let Err(e) = held.release() {
                    kill(&mut child);
                    let msg = stderr_text(stderr);
                    return Err(format!("pg_restore stopped reading ({e}): {msg}"));
                }
                let status = child
                    .wait()
                    .map_err(|e| format!("cannot wait for pg_restore: {e}"))?;
                let msg = stderr_text(stderr);
                if status.success() {
                    eprintln!(
                        "restored {what} into database {} in one transaction",
                        server.database
                    );
                    Ok(())
                } else {
                    Err(format!(
                        "pg_restore failed ({status}); its transaction was rolled back: {msg}"
                    ))
                }
            }
            Err(err) => {
                // Kill pg_restore before its input closes: it never sees the end of the archive,
                // so its single transaction never commits.
                kill(&mut child);
                drop(held);
                let msg = stderr_text(stderr);
                if msg.is_empty() {
                    Err(format!("{err}; nothing was restored"))
                } else {
                    Err(format!("{err}; nothing was restored (pg_restore: {msg})"))
                }
            }
        }
    })
    .await
}

async fn blocking_value<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("internal error: the backup worker stopped: {e}"))?
}

/// A libpq connection string naming only the database (host, user and password travel in
/// `PG*` variables).
fn conninfo_dbname(name: &str) -> String {
    let escaped = name.replace('\\', "\\\\").replace('\'', "\\'");
    format!("dbname='{escaped}'")
}

/// Decrypts and decompresses the whole stream into `out`, requiring the final chunk.
fn feed<R: Read>(reader: DecryptReader<R>, out: &mut impl Write, what: &str) -> Result<(), String> {
    let mut decoder = zstd::Decoder::new(reader).map_err(|e| format!("cannot start zstd: {e}"))?;
    copy_large(&mut decoder, out).map_err(|e| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            "pg_restore stopped reading its input".to_owned()
        } else {
            describe_read_error(e, what)
        }
    })?;
    let mut rest = decoder.finish();
    let trailing =
        io::copy(&mut rest, &mut io::sink()).map_err(|e| describe_read_error(e, what))?;
    if trailing != 0 || !rest.get_ref().is_complete() {
        return Err(format!(
            "{what}: data follows the compressed payload; the backup was not written by pgseal"
        ));
    }
    Ok(())
}

/// `io::copy` with a 256 KiB buffer instead of 8 KiB: a quarter of the system calls and
/// compression calls per byte on the multi-gigabyte streams of a backup.
fn copy_large(reader: &mut impl Read, writer: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        writer.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Passes bytes on with the last [`HOLD_BACK`] held until [`HoldBack::release`].
struct HoldBack<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> HoldBack<W> {
    fn new(inner: W) -> Self {
        HoldBack {
            inner,
            buf: Vec::with_capacity(2 * HOLD_BACK),
        }
    }

    fn release(mut self) -> io::Result<()> {
        self.inner.write_all(&self.buf)?;
        self.inner.flush()
        // `inner` (pg_restore's stdin) closes here: end of input.
    }
}

impl<W: Write> Write for HoldBack<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() > 2 * HOLD_BACK {
            let pass = self.buf.len() - HOLD_BACK;
            self.inner.write_all(&self.buf[..pass])?;
            self.buf.drain(..pass);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Held bytes stay held; only what was passed on is flushed.
        self.inner.flush()
    }
}

// ---------------------------------------------------------------------------------------------
// restore-base

fn restore_base(args: &RestoreBaseArgs) -> CommandResult {
    let keyring = keys()?;
    let (input, what): (Box<dyn Read + Send>, String) = match (&args.file, &args.repo) {
        (Some(file), None) => open_input(file)?,
        (None, Some(repo)) => {
            let store = LocalDir::open(repo).map_err(|e| e.to_string())?;
            let name = match &args.name {
                Some(name) => name.clone(),
                None => store
                    .list("base/")
                    .map_err(|e| e.to_string())?
                    .pop()
                    .ok_or_else(|| format!("no base backup in {}", store.describe()))?,
            };
            let object = store
                .get(&name)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{name} is not in {}", store.describe()))?;
            (object, name)
        }
        (Some(_), Some(_)) => return Err("give either a FILE or --repo, not both".into()),
        (None, None) => return Err("say which base backup: a FILE or --repo DIR".into()),
    };
    let reader = DecryptReader::named(input, &keyring, &what).map_err(|e| e.to_string())?;
    if reader.header().kind() != ObjectKind::BaseBackup {
        return Err(format!(
            "{what} is a {}, not a base backup",
            reader.header().kind().name()
        ));
    }
    let dir = &args.data_dir;
    prepare_data_dir(dir)?;
    match extract(reader, dir, &what) {
        Ok(()) => {
            eprintln!(
                "base backup {what} restored into {}; add recovery settings (restore_command, \
                 recovery target, recovery.signal) before starting the server",
                dir.display()
            );
            Ok(())
        }
        Err(e) => {
            // Nothing half-restored: remove what was extracted.
            clear_dir(dir);
            Err(format!("{e}; {} was emptied", dir.display()))
        }
    }
}

fn prepare_data_dir(dir: &Path) -> Result<(), String> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(format!(
                    "{} is not empty; restore a base backup into a new or empty directory",
                    dir.display()
                ));
            }
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(|e| format!("cannot set the mode of {}: {e}", dir.display()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display())),
        Err(e) => Err(format!("cannot read {}: {e}", dir.display())),
    }
}

fn clear_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

fn extract<R: Read>(reader: DecryptReader<R>, dir: &Path, what: &str) -> Result<(), String> {
    let decoder = zstd::Decoder::new(reader).map_err(|e| format!("cannot start zstd: {e}"))?;
    let mut archive = tar::Archive::new(decoder);
    archive.set_preserve_permissions(true);
    archive.set_overwrite(false);
    // `unpack` refuses entries that would land outside `dir` (absolute paths, `..`).
    archive
        .unpack(dir)
        .map_err(|e| describe_read_error(e, what))?;
    // tar stops at its end-of-archive marker; the stream must still reach its final chunk.
    let mut decoder = archive.into_inner();
    io::copy(&mut decoder, &mut io::sink()).map_err(|e| describe_read_error(e, what))?;
    let rest = decoder.finish();
    if !rest.get_ref().is_complete() {
        return Err(format!("{what} did not reach its final chunk"));
    }
    Ok(())
}
