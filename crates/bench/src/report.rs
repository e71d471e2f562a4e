//! The markdown section: results, ratios against the targets, memory, and how it was measured;
//! and its placement in `docs/performance.md` between two markers.

use std::fmt::Write as _;

use crate::stats::{LatencySummary, RunSummary};

/// Opens the benchmark's section in the performance document.
pub(crate) const START_MARKER: &str = "<!-- proxy-bench:start -->";
/// Closes it.
pub(crate) const END_MARKER: &str = "<!-- proxy-bench:end -->";

/// What pgbench connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// PostgreSQL itself.
    Direct,
    /// pgbouncer in session mode.
    Pgbouncer,
    /// The pgseal proxy on the standard pgbench tables.
    Proxy,
    /// Control: the pgseal proxy running (d)'s scripts on a plaintext copy.
    ProxyPlainCopy,
    /// The pgseal proxy on a copy of `pgbench_accounts` with an encrypted `filler`.
    ProxyEncrypted,
}

impl Target {
    pub(crate) const ALL: [Target; 5] = [
        Target::Direct,
        Target::Pgbouncer,
        Target::Proxy,
        Target::ProxyPlainCopy,
        Target::ProxyEncrypted,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Target::Direct => "(a) PostgreSQL",
            Target::Pgbouncer => "(b) pgbouncer",
            Target::Proxy => "(c) pgseal proxy",
            Target::ProxyPlainCopy => "(c2) pgseal proxy, (d)'s scripts, plaintext copy",
            Target::ProxyEncrypted => "(d) pgseal proxy, encrypted",
        }
    }
}

/// pgbench's `-M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One `Query` message per statement.
    Simple,
    /// `Parse` once per connection, then `Bind`/`Execute`.
    Prepared,
}

impl Mode {
    pub(crate) const ALL: [Mode; 2] = [Mode::Simple, Mode::Prepared];

    pub(crate) fn flag(self) -> &'static str {
        match self {
            Mode::Simple => "simple",
            Mode::Prepared => "prepared",
        }
    }
}

/// Which transactions pgbench runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// One primary-key `SELECT` per transaction.
    SelectOnly,
    /// pgbench's TPC-B-like transaction (three updates, a select, an insert).
    ReadWrite,
}

impl Workload {
    pub(crate) const ALL: [Workload; 2] = [Workload::SelectOnly, Workload::ReadWrite];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Workload::SelectOnly => "select-only",
            Workload::ReadWrite => "read-write",
        }
    }
}

/// A completed measurement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Measurement {
    pub(crate) summary: RunSummary,
    pub(crate) latency: LatencySummary,
}

/// What came of one target × mode × workload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Measured(Measurement),
    /// pgbench ran but failed; the reason, from its output.
    Failed(String),
    /// The target could not be run at all.
    Unavailable(String),
}

impl Outcome {
    fn tps(&self) -> Option<f64> {
        match self {
            Outcome::Measured(m) => Some(m.summary.tps),
            _ => None,
        }
    }
}

/// One row of the results table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunResult {
    pub(crate) target: Target,
    pub(crate) mode: Mode,
    pub(crate) workload: Workload,
    pub(crate) outcome: Outcome,
}

/// Resident memory of one proxy process, in KiB.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RssRow {
    /// Which process ("(c) pgseal proxy", "(b) pgbouncer", ...).
    pub(crate) process: String,
    /// When it was measured ("fresh", "after the pgbench runs").
    pub(crate) when: &'static str,
    /// With no client connected.
    pub(crate) idle_kib: Option<u64>,
    /// With 100 idle clients connected.
    pub(crate) with_clients_kib: Result<u64, String>,
}

/// Everything the section shows.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) command: String,
    pub(crate) date: String,
    pub(crate) cpu: String,
    pub(crate) load_average: String,
    pub(crate) load_average_after: String,
    pub(crate) postgres_version: String,
    pub(crate) pgbouncer_version: String,
    pub(crate) seconds: u32,
    pub(crate) scale: u32,
    pub(crate) clients: u32,
    pub(crate) threads: u32,
    pub(crate) idle_clients: usize,
    pub(crate) results: Vec<RunResult>,
    pub(crate) rss: Vec<RssRow>,
    /// The custom pgbench scripts, by name.
    pub(crate) scripts: Vec<(&'static str, String)>,
}

/// The TPS target of (c) against (b), and of (d) against (c).
const PROXY_VS_PGBOUNCER_TARGET: f64 = 1.0;
const ENCRYPTED_VS_PROXY_TARGET: f64 = 0.9;
/// The memory target with 100 idle clients.
const RSS_TARGET_KIB: u64 = 64 * 1024;

impl Report {
    fn outcome(&self, target: Target, mode: Mode, workload: Workload) -> Option<&Outcome> {
        self.results
            .iter()
            .find(|r| r.target == target && r.mode == mode && r.workload == workload)
            .map(|r| &r.outcome)
    }

    /// The section, markers included.
    pub(crate) fn to_markdown(&self) -> String {
        let mut out = String::new();
        let w = &mut out;
        // Writing to a String cannot fail; `let _` keeps that visible without unwraps.
        let _ = writeln!(w, "{START_MARKER}");
        let _ = writeln!(w, "## Proxy overhead (pgbench)\n");
        let _ = writeln!(
            w,
            "pgbench against (a) PostgreSQL directly, (b) pgbouncer (session pooling), (c) the \
             pgseal proxy on the standard pgbench tables and (d) the pgseal proxy with an \
             encrypted column, all in one run on one machine. Each proxy runs in a process of \
             its own. Written by the benchmark itself; do not edit by hand.\n"
        );
        let _ = writeln!(w, "Command (from the repository root):\n");
        let _ = writeln!(w, "```\n{}\n```\n", self.command);
        let _ = writeln!(
            w,
            "* Date: {}; CPU: `{}`; load average (1, 5, 15 min) before the run: {}, after: \
             {}. The machine may be shared: pgbench, PostgreSQL and the proxy under test \
             compete for the same cores, and each cell is a single run, so differences of a \
             few percent are within noise.",
            self.date, self.cpu, self.load_average, self.load_average_after
        );
        let _ = writeln!(
            w,
            "* PostgreSQL {} (temporary cluster, `fsync=off`, `synchronous_commit=off`); \
             {}.",
            self.postgres_version, self.pgbouncer_version
        );
        let _ = writeln!(
            w,
            "* `pgbench -i -s {scale}`, then for each run `pgbench -n -c {c} -j {j} -T {t} -M \
             <mode>` with `--log` (mean and p99 latency are computed from the per-transaction \
             log, p99 by nearest rank). Before each run `pgbench_branches` and \
             `pgbench_tellers` are vacuumed, `pgbench_history` truncated and a checkpoint \
             taken (what pgbench's own vacuum step does).",
            scale = self.scale,
            c = self.clients,
            j = self.threads,
            t = self.seconds
        );
        let _ = writeln!(
            w,
            "* Workloads for (a)-(c): `-S` (select-only) and the builtin TPC-B-like script \
             (read-write). For (d): the same scripts on `pgbench_accounts_sealed`, a copy of \
             `pgbench_accounts` whose `filler` is `pgseal.text` (sealed per row with \
             `pgseal::Sealer`); the select also returns `filler` (decrypted by the proxy), the \
             read-write update also sets `filler` to a string literal (encrypted by the proxy). \
             Before (d) runs, the benchmark checks that the stored filler is pgseal ciphertext \
             and that the proxy returns its plaintext. (c2) is a control: (d)'s scripts through \
             the plain proxy on `pgbench_accounts_plain`, the same rows with a `text` filler, \
             so (d)/(c2) is the cost of encryption alone and (c2)/(c) the cost of the wider \
             rows and the extra column. The scripts are printed below.\n"
        );

        let _ = writeln!(w, "### Throughput and latency\n");
        let _ = writeln!(
            w,
            "| target | mode | workload | TPS | mean latency (ms) | p99 latency (ms) | \
             transactions | failed |"
        );
        let _ = writeln!(w, "|---|---|---|---:|---:|---:|---:|---:|");
        for workload in Workload::ALL {
            for mode in Mode::ALL {
                for target in Target::ALL {
                    let cells = match self.outcome(target, mode, workload) {
                        Some(Outcome::Measured(m)) => format!(
                            "{:.0} | {:.3} | {:.3} | {} | {}",
                            m.summary.tps,
                            m.latency.mean_ms,
                            m.latency.p99_ms,
                            m.summary.processed,
                            m.summary.failed.max(m.latency.failed)
                        ),
                        Some(Outcome::Failed(why)) => {
                            format!("failed: {} | | | |", table_text(why))
                        }
                        Some(Outcome::Unavailable(why)) => {
                            format!("not available: {} | | | |", table_text(why))
                        }
                        None => "not run | | | |".to_owned(),
                    };
                    let _ = writeln!(
                        w,
                        "| {} | {} | {} | {cells} |",
                        target.label(),
                        mode.flag(),
                        workload.label()
                    );
                }
            }
        }

        let _ = writeln!(w, "\n### Against the targets\n");
        let _ = writeln!(
            w,
            "Targets: (c) at least pgbouncer's TPS; (d) at least 90 % of (c)'s TPS. \
             (d)/(c2) has no target: it shows how much of the gap is encryption.\n"
        );
        let _ = writeln!(
            w,
            "| mode | workload | (c)/(b) TPS | met | (d)/(c) TPS | met | (d)/(c2) TPS |"
        );
        let _ = writeln!(w, "|---|---|---:|---|---:|---|---:|");
        for workload in Workload::ALL {
            for mode in Mode::ALL {
                let (cb, cb_met) = self.ratio(
                    Target::Proxy,
                    Target::Pgbouncer,
                    mode,
                    workload,
                    PROXY_VS_PGBOUNCER_TARGET,
                );
                let (dc, dc_met) = self.ratio(
                    Target::ProxyEncrypted,
                    Target::Proxy,
                    mode,
                    workload,
                    ENCRYPTED_VS_PROXY_TARGET,
                );
                let (dc2, _) = self.ratio(
                    Target::ProxyEncrypted,
                    Target::ProxyPlainCopy,
                    mode,
                    workload,
                    0.0,
                );
                let _ = writeln!(
                    w,
                    "| {} | {} | {cb} | {cb_met} | {dc} | {dc_met} | {dc2} |",
                    mode.flag(),
                    workload.label()
                );
            }
        }

        let _ = writeln!(w, "\n### Memory\n");
        let _ = writeln!(
            w,
            "Resident set size (`VmRSS` in `/proc/PID/status`) of each proxy process with no \
             client and with {} idle clients (tokio-postgres connections that ran `SELECT 1` \
             and then wait). Target: under 64 MiB with 100 idle clients.\n",
            self.idle_clients
        );
        let _ = writeln!(
            w,
            "| process | when | no client (MiB) | {} idle clients (MiB) | met |",
            self.idle_clients
        );
        let _ = writeln!(w, "|---|---|---:|---:|---|");
        for row in &self.rss {
            let idle = row.idle_kib.map_or_else(|| "-".to_owned(), mib);
            let (with_clients, met) = match &row.with_clients_kib {
                Ok(kib) => (mib(*kib), if *kib < RSS_TARGET_KIB { "yes" } else { "no" }),
                Err(why) => (format!("failed: {}", table_text(why)), "-"),
            };
            let _ = writeln!(
                w,
                "| {} | {} | {idle} | {with_clients} | {met} |",
                row.process, row.when
            );
        }
        let _ = writeln!(w, "\n### Scripts of (d)\n");
        let _ = writeln!(
            w,
            "(c2) runs the same scripts with `pgbench_accounts_plain` in place of \
             `pgbench_accounts_sealed`.\n"
        );
        for (name, script) in &self.scripts {
            let _ = writeln!(w, "{name}:\n\n```\n{}```\n", script);
        }
        let _ = writeln!(w, "{END_MARKER}");
        out
    }

    fn ratio(
        &self,
        numerator: Target,
        denominator: Target,
        mode: Mode,
        workload: Workload,
        target: f64,
    ) -> (String, &'static str) {
        let tps = |t| self.outcome(t, mode, workload).and_then(Outcome::tps);
        match (tps(numerator), tps(denominator)) {
            (Some(n), Some(d)) if d > 0.0 => {
                let ratio = n / d;
                (
                    format!("{ratio:.3}"),
                    if ratio >= target { "yes" } else { "no" },
                )
            }
            _ => ("-".to_owned(), "-"),
        }
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Keeps a message on one table line: no newlines, no column separators, bounded length.
fn table_text(text: &str) -> String {
    const MAX: usize = 160;
    let one_line: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "/");
    match one_line.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}

/// Puts `section` (markers included) in place of the text between the markers in `doc`, or
/// appends it if the document has no markers. Nothing outside the markers changes.
///
/// # Errors
/// A description of the problem if only one marker is present, a marker appears twice, or the
/// end marker comes first: the document is then left for a person to fix.
pub(crate) fn replace_section(doc: &str, section: &str) -> Result<String, String> {
    let starts = doc.matches(START_MARKER).count();
    let ends = doc.matches(END_MARKER).count();
    match (doc.find(START_MARKER), doc.find(END_MARKER)) {
        (None, None) => {
            let mut out = doc.to_owned();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(section);
            if !section.ends_with('\n') {
                out.push('\n');
            }
            Ok(out)
        }
        (Some(start), Some(end)) if starts == 1 && ends == 1 && start < end => {
            let after = end + END_MARKER.len();
            // The section ends with a newline after its end marker; the document keeps its own.
            let section = section.strip_suffix('\n').unwrap_or(section);
            Ok(format!("{}{section}{}", &doc[..start], &doc[after..]))
        }
        _ => Err(format!(
            "the markers `{START_MARKER}` and `{END_MARKER}` must appear once each, in that \
             order (found {starts} and {ends}); fix them by hand and re-run"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(tps: f64) -> Outcome {
        Outcome::Measured(Measurement {
            summary: RunSummary {
                tps,
                processed: 1000,
                failed: 0,
            },
            latency: LatencySummary {
                count: 1000,
                failed: 0,
                mean_ms: 0.5,
                p99_ms: 1.25,
            },
        })
    }

    fn report() -> Report {
        let mut results = Vec::new();
        for workload in Workload::ALL {
            for mode in Mode::ALL {
                for (target, outcome) in [
                    (Target::Direct, measured(10_000.0)),
                    (Target::Pgbouncer, measured(5_000.0)),
                    (Target::Proxy, measured(6_000.0)),
                    (
                        Target::ProxyEncrypted,
                        Outcome::Unavailable("encryption layer not built".to_owned()),
                    ),
                ] {
                    results.push(RunResult {
                        target,
                        mode,
                        workload,
                        outcome,
                    });
                }
            }
        }
        Report {
            command: "cargo run --release -p pgseal-bench -- proxy".to_owned(),
            date: "2026-01-01T00:00:00Z".to_owned(),
            cpu: "Test CPU".to_owned(),
            load_average: "0.00".to_owned(),
            load_average_after: "1.00".to_owned(),
            postgres_version: "15.0".to_owned(),
            pgbouncer_version: "PgBouncer 1.18.0".to_owned(),
            seconds: 15,
            scale: 10,
            clients: 8,
            threads: 2,
            idle_clients: 100,
            results,
            rss: vec![RssRow {
                process: "(c) pgseal proxy".to_owned(),
                when: "fresh",
                idle_kib: Some(8 * 1024),
                with_clients_kib: Ok(70 * 1024),
            }],
            scripts: vec![("(d) select-only", "SELECT 1;\n".to_owned())],
        }
    }

    #[test]
    fn renders_results_ratios_and_memory() {
        let text = report().to_markdown();
        assert!(text.starts_with(START_MARKER) && text.trim_end().ends_with(END_MARKER));
        assert!(text.contains("| (a) PostgreSQL | simple | select-only | 10000 | 0.500 | 1.250 |"));
        assert!(text.contains(
            "| (d) pgseal proxy, encrypted | prepared | read-write | not available: \
             encryption layer not built |"
        ));
        // (c)/(b) = 1.200, met; (d)/(c) cannot be computed.
        assert!(
            text.contains("| simple | select-only | 1.200 | yes | - | - | - |\n"),
            "{text}"
        );
        // 70 MiB misses the 64 MiB target.
        assert!(
            text.contains("| (c) pgseal proxy | fresh | 8.0 | 70.0 | no |"),
            "{text}"
        );
        assert!(text.contains("PgBouncer 1.18.0") && text.contains("Test CPU"));
        assert!(
            text.contains("(d) select-only:\n\n```\nSELECT 1;\n```\n"),
            "{text}"
        );
    }

    #[test]
    fn replaces_only_the_marked_section() {
        let section = format!("{START_MARKER}\nnew\n{END_MARKER}\n");
        let doc = format!("# Title\n\nbefore\n\n{START_MARKER}\nold\n{END_MARKER}\n\nafter\n");
        let out = replace_section(&doc, &section).expect("well-formed markers");
        assert_eq!(
            out,
            format!("# Title\n\nbefore\n\n{START_MARKER}\nnew\n{END_MARKER}\n\nafter\n")
        );
        // Re-running is stable.
        assert_eq!(replace_section(&out, &section).expect("again"), out);
    }

    #[test]
    fn appends_when_the_markers_are_absent() {
        let section = format!("{START_MARKER}\nnew\n{END_MARKER}\n");
        let out = replace_section("# Title\ntext", &section).expect("no markers");
        assert_eq!(out, format!("# Title\ntext\n\n{section}"));
        assert_eq!(replace_section("", &section).expect("empty"), section);
    }

    #[test]
    fn refuses_broken_markers() {
        let section = format!("{START_MARKER}\nnew\n{END_MARKER}\n");
        for doc in [
            format!("a\n{START_MARKER}\nb\n"),
            format!("a\n{END_MARKER}\nb\n{START_MARKER}\n"),
            format!("{START_MARKER}\n{START_MARKER}\n{END_MARKER}\n"),
        ] {
            let err = replace_section(&doc, &section).expect_err("broken markers");
            assert!(err.contains("once each"), "{err}");
        }
    }

    #[test]
    fn table_text_stays_on_one_cell() {
        assert_eq!(table_text("a |b\n  c"), "a /b c");
        let long = "x".repeat(500);
        assert_eq!(table_text(&long).len(), 163);
    }
}
