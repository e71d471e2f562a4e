//! Statement analysis on long-lived threads with large stacks.
//!
//! libpg_query and the tree decoding on top of it recurse as deep as the statement nests, more
//! than a tokio worker's default 2 MiB stack may hold; so analysis runs on threads with 16 MiB
//! stacks. Spawning such a thread per statement costs more than the analysis itself (pgbench in
//! simple mode sends a new text for every statement), so a few threads live for the whole process
//! and sessions hand them work over a channel, waiting for the answer: analysis is CPU-bound and
//! short (10–50 µs), so blocking the session's worker for it is what running it inline would do.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};

use pgseal_sql::{Analysis, SqlError};

use super::catalog::{DbCatalog, SessionCatalog};

/// Stack of each analysis thread.
const ANALYZE_STACK: usize = 16 << 20;

struct Job {
    sql: String,
    catalog: Arc<DbCatalog>,
    search_path: Vec<String>,
    reply: SyncSender<Result<Analysis, SqlError>>,
}

fn pool() -> Option<&'static Mutex<Sender<Job>>> {
    static POOL: OnceLock<Option<Mutex<Sender<Job>>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(2, 8);
        let mut started = 0;
        for i in 0..threads {
            let receiver = Arc::clone(&receiver);
            let spawned = std::thread::Builder::new()
                .name(format!("pgseal-analyze-{i}"))
                .stack_size(ANALYZE_STACK)
                .spawn(move || work(&receiver));
            if spawned.is_ok() {
                started += 1;
            }
        }
        (started > 0).then(|| Mutex::new(sender))
    })
    .as_ref()
}

fn work(jobs: &Mutex<Receiver<Job>>) {
    loop {
        // Hold the lock only to take one job, so the other threads can take the next.
        let job = match jobs.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let session = SessionCatalog {
            catalog: &job.catalog,
            search_path: &job.search_path,
        };
        let result = pgseal_sql::analyze(&job.sql, &session);
        // The session may have gone away meanwhile; nothing to do then.
        let _ = job.reply.send(result);
    }
}

/// Analyses `sql` on an analysis thread; `None` if no thread could run it (the statement is
/// then refused by the caller: fail closed).
pub(crate) fn analyze_deep(
    sql: &str,
    catalog: &Arc<DbCatalog>,
    search_path: &[String],
) -> Option<Result<Analysis, SqlError>> {
    let (reply, answer) = mpsc::sync_channel(1);
    let job = Job {
        sql: sql.to_owned(),
        catalog: Arc::clone(catalog),
        search_path: search_path.to_vec(),
        reply,
    };
    pool()?.lock().ok()?.send(job).ok()?;
    answer.recv().ok()
}
