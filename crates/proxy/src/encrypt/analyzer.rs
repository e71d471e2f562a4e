//! Statement analysis with a guaranteed deep stack.
//!
//! libpg_query and the tree decoding on top of it recurse as deep as the statement nests, more
//! than a default 2 MiB thread stack may hold, so analysis must run with 16 MiB of stack
//! available. Handing each statement to another thread costs a context switch per statement,
//! which on a loaded machine (pgbench in simple mode sends a new text for every statement) cost
//! more than the analysis itself: `stacker` instead runs the analysis in place when the current
//! thread has that much stack left (the `pgseal` binary gives its runtime threads 32 MiB stacks),
//! and otherwise on a fresh 16 MiB stack segment, on the same thread.

use pgseal_sql::{Analysis, AnalyzeOptions, SqlError};

use super::catalog::{DbCatalog, SessionCatalog};

/// Stack the analysis may use.
const ANALYZE_STACK: usize = 16 << 20;

/// Stack a runtime thread should have for the analysis to run in place; smaller stacks work,
/// at the cost of mapping a fresh segment per statement.
pub const RECOMMENDED_THREAD_STACK: usize = 2 * ANALYZE_STACK;

/// Analyses `sql` with at least 16 MiB of stack available, for a session with this
/// `search_path` whose open transaction declared encrypted columns of `uncommitted`.
pub(crate) fn analyze_deep(
    sql: &str,
    catalog: &DbCatalog,
    search_path: &[String],
    uncommitted: &[String],
) -> Result<Analysis, SqlError> {
    let session = SessionCatalog {
        catalog,
        search_path,
        uncommitted,
    };
    stacker::maybe_grow(ANALYZE_STACK, ANALYZE_STACK, || {
        // The hook rewrites equality predicates on searchable columns to blind-index
        // comparisons (hook.rs), so it asks the analysis to plan them instead of refusing.
        pgseal_sql::analyze_with(
            sql,
            &session,
            AnalyzeOptions {
                equality_search: true,
            },
        )
    })
}
