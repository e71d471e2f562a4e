//! The markdown section: results, ratios against the targets, memory, and how it was measured;
//! and its placement in `docs/performance.md` between two markers.

use std::fmt::Write as _;

use crate::stats::{lower_median_index, median, LatencySummary, RunSummary};

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
    /// The pgseal proxy (encryption layer included, as `pgseal proxy` runs it) on the standard
    /// pgbench tables.
    Proxy,
    /// Control: the same proxy running (d)'s scripts on a plaintext copy.
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

/// One pgbench run: a target × mode × workload in one round.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunResult {
    /// Counted from 0.
    pub(crate) round: u32,
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
    /// How many times every cell ran.
    pub(crate) rounds: u32,
    /// Every run of every round.
    pub(crate) results: Vec<RunResult>,
    pub(crate) rss: Vec<RssRow>,
    /// The custom pgbench scripts, by name.
    pub(crate) scripts: Vec<(&'static str, String)>,
}

/// The TPS target of (c) against (b), and of (d) against the proxy on the same workload without
/// encrypted columns.
const PROXY_VS_PGBOUNCER_TARGET: f64 = 1.0;
const ENCRYPTED_VS_PROXY_TARGET: f64 = 0.9;

/// One target × mode × workload over every round.
#[derive(Debug)]
enum Cell<'a> {
    /// Every round measured.
    Measured(MeasuredCell<'a>),
    /// Some round failed; the first such round (from 0) and why.
    Failed { round: u32, why: &'a str },
    /// The target could not be run; why.
    Unavailable(&'a str),
    /// Some round has no result at all.
    NotRun,
}

/// The rounds of a fully measured cell.
#[derive(Debug)]
struct MeasuredCell<'a> {
    /// TPS of each round, in round order, so ratios can be taken round by round.
    tps_by_round: Vec<f64>,
    median_tps: f64,
    min_tps: f64,
    max_tps: f64,
    /// The run whose TPS is the median (for an even count, the lower middle one): its latency
    /// and transaction count are shown beside the median rather than an average of runs.
    median_run: &'a Measurement,
    /// Failed transactions summed over the rounds.
    failed: u64,
}

/// Smallest and largest of `values`; `None` for none.
fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let mut iter = values.iter().copied();
    let first = iter.next()?;
    Some(iter.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
}

/// "yes" if `ratio` reaches `target`, "no" if not, "-" if there is no ratio.
fn met(ratio: Option<f64>, target: f64) -> &'static str {
    match ratio {
        Some(r) if r >= target => "yes",
        Some(_) => "no",
        None => "-",
    }
}

fn ratio_text(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"))
}

fn range_text(range: Option<(f64, f64)>) -> String {
    range.map_or_else(|| "-".to_owned(), |(lo, hi)| format!("{lo:.3}–{hi:.3}"))
}
/// The memory target with 100 idle clients.
const RSS_TARGET_KIB: u64 = 64 * 1024;

impl Report {
    /// Every round of one target × mode × workload, summarised.
    fn cell(&self, target: Target, mode: Mode, workload: Workload) -> Cell<'_> {
        let mut measurements = Vec::new();
        for round in 0..self.rounds {
            let outcome = self
                .results
                .iter()
                .find(|r| {
                    r.round == round
                        && r.target == target
                        && r.mode == mode
                        && r.workload == workload
                })
                .map(|r| &r.outcome);
            match outcome {
                Some(Outcome::Measured(m)) => measurements.push(m),
                Some(Outcome::Failed(why)) => return Cell::Failed { round, why },
                Some(Outcome::Unavailable(why)) => return Cell::Unavailable(why),
                None => return Cell::NotRun,
            }
        }
        let tps_by_round: Vec<f64> = measurements.iter().map(|m| m.summary.tps).collect();
        let summary = median(&tps_by_round)
            .zip(min_max(&tps_by_round))
            .zip(lower_median_index(&tps_by_round).and_then(|i| measurements.get(i).copied()));
        match summary {
            Some(((median_tps, (min_tps, max_tps)), median_run)) => Cell::Measured(MeasuredCell {
                median_tps,
                min_tps,
                max_tps,
                median_run,
                failed: measurements
                    .iter()
                    .map(|m| m.summary.failed.max(m.latency.failed))
                    .sum(),
                tps_by_round,
            }),
            // No rounds at all.
            None => Cell::NotRun,
        }
    }

    /// `numerator`'s median TPS over `denominator`'s, if both cells were measured in every
    /// round.
    fn median_ratio(
        &self,
        numerator: Target,
        denominator: Target,
        mode: Mode,
        workload: Workload,
    ) -> Option<f64> {
        match (
            self.cell(numerator, mode, workload),
            self.cell(denominator, mode, workload),
        ) {
            (Cell::Measured(n), Cell::Measured(d)) if d.median_tps > 0.0 => {
                Some(n.median_tps / d.median_tps)
            }
            _ => None,
        }
    }

    /// Smallest and largest of the ratios taken within each round (the two runs of a round are
    /// close in time, so they share its conditions), if both cells were measured in every
    /// round.
    fn per_round_ratio_range(
        &self,
        numerator: Target,
        denominator: Target,
        mode: Mode,
        workload: Workload,
    ) -> Option<(f64, f64)> {
        match (
            self.cell(numerator, mode, workload),
            self.cell(denominator, mode, workload),
        ) {
            (Cell::Measured(n), Cell::Measured(d)) => {
                let ratios: Option<Vec<f64>> = n
                    .tps_by_round
                    .iter()
                    .zip(&d.tps_by_round)
                    .map(|(n, d)| (*d > 0.0).then(|| n / d))
                    .collect();
                min_max(&ratios?)
            }
            _ => None,
        }
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
             encrypted column, all in one invocation on one machine. (c), (c2) and (d) are one \
             process: the encrypting proxy as `pgseal proxy` runs it, which analyses every \
             statement whether or not its tables have encrypted columns. pgbouncer and the proxy \
             each run in a process of their own. Written by the benchmark itself; do not edit \
             by hand.\n"
        );
        let _ = writeln!(w, "Command (from the repository root):\n");
        let _ = writeln!(w, "```\n{}\n```\n", self.command);
        let _ = writeln!(
            w,
            "* Date: {}; CPU: `{}`; load average (1, 5, 15 min) before the run: {}, after: \
             {}. The machine may be shared: pgbench, PostgreSQL and the proxy under test \
             compete for the same cores, so a single run varies by several percent.",
            self.date, self.cpu, self.load_average, self.load_average_after
        );
        let _ = writeln!(
            w,
            "* Rounds: {rounds}. Each round runs every target × mode × workload once. Within \
             each mode and workload the order of the targets rotates by one place per round \
             (round 1: (a) (b) (c) (c2) (d), round 2: (b) (c) (c2) (d) (a), ...), so drift \
             over the run (table bloat, checkpoints, other load on the machine) does not \
             always fall on the same target. Each cell shows the median TPS over the rounds \
             (for an even count, the mean of the two middle ones) and its range; latency and \
             transactions are those of the run whose TPS is the median (for an even count, \
             the lower middle one); failed transactions are summed over the rounds. A cell \
             with a failed round shows the failure instead of a median.",
            rounds = self.rounds
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
             the same proxy on `pgbench_accounts_plain`, the same rows with a `text` filler, \
             so (d)/(c2) is the cost of encryption alone and (c2)/(c) the cost of the wider \
             rows and the extra column. The scripts are printed below.\n"
        );

        let _ = writeln!(w, "### Throughput and latency\n");
        let _ = writeln!(
            w,
            "| target | mode | workload | TPS (median) | TPS range | mean latency (ms) | p99 \
             latency (ms) | transactions | failed |"
        );
        let _ = writeln!(w, "|---|---|---|---:|---:|---:|---:|---:|---:|");
        for workload in Workload::ALL {
            for mode in Mode::ALL {
                for target in Target::ALL {
                    let cells = match self.cell(target, mode, workload) {
                        Cell::Measured(m) => format!(
                            "{:.0} | {:.0}–{:.0} | {:.3} | {:.3} | {} | {}",
                            m.median_tps,
                            m.min_tps,
                            m.max_tps,
                            m.median_run.latency.mean_ms,
                            m.median_run.latency.p99_ms,
                            m.median_run.summary.processed,
                            m.failed
                        ),
                        Cell::Failed { round, why } => format!(
                            "failed in round {} of {}: {} | | | | |",
                            round + 1,
                            self.rounds,
                            table_text(why)
                        ),
                        Cell::Unavailable(why) => {
                            format!("not available: {} | | | | |", table_text(why))
                        }
                        Cell::NotRun => "not run | | | | |".to_owned(),
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
            "Targets: (c) at least pgbouncer's TPS; (d), the proxy on the same workload with \
             encrypted columns, at least 90 % of the proxy's TPS without them. Judged ratios are of \
             the median TPS of each cell.\n"
        );
        let _ = writeln!(
            w,
            "* (c)/(b) is judged against 1.0: both run pgbench's builtin scripts."
        );
        let _ = writeln!(
            w,
            "* (d)/(c2) is judged against 0.9 as the (d) target, (d) vs (c) on the same \
             workload: (c2) is the same proxy running (d)'s scripts on a plaintext copy of \
             the same rows, so the ratio is the cost of encryption alone."
        );
        let _ = writeln!(
            w,
            "* (d)/(c) is shown without a mark: (d) and (c) run different scripts: this mixes \
             encryption with a wider row and an extra write."
        );
        let _ = writeln!(
            w,
            "* The per-round columns give the smallest and largest ratio taken within one \
             round (numerator and denominator of a round ran minutes apart at most): if the \
             whole range is on one side of the target, the judgement does not depend on the \
             noise between rounds.\n"
        );
        let _ = writeln!(
            w,
            "| mode | workload | (c)/(b) TPS | per-round (c)/(b) | met | (d)/(c2) TPS | \
             per-round (d)/(c2) | met | (d)/(c) TPS |"
        );
        let _ = writeln!(w, "|---|---|---:|---:|---|---:|---:|---|---:|");
        for workload in Workload::ALL {
            for mode in Mode::ALL {
                let cb = self.median_ratio(Target::Proxy, Target::Pgbouncer, mode, workload);
                let cb_rounds =
                    self.per_round_ratio_range(Target::Proxy, Target::Pgbouncer, mode, workload);
                let dc2 = self.median_ratio(
                    Target::ProxyEncrypted,
                    Target::ProxyPlainCopy,
                    mode,
                    workload,
                );
                let dc2_rounds = self.per_round_ratio_range(
                    Target::ProxyEncrypted,
                    Target::ProxyPlainCopy,
                    mode,
                    workload,
                );
                let dc = self.median_ratio(Target::ProxyEncrypted, Target::Proxy, mode, workload);
                let _ = writeln!(
                    w,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    mode.flag(),
                    workload.label(),
                    ratio_text(cb),
                    range_text(cb_rounds),
                    met(cb, PROXY_VS_PGBOUNCER_TARGET),
                    ratio_text(dc2),
                    range_text(dc2_rounds),
                    met(dc2, ENCRYPTED_VS_PROXY_TARGET),
                    ratio_text(dc),
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
                        round: 0,
                        target,
                        mode,
                        workload,
                        outcome,
                    });
                }
            }
        }
        report_of(1, results)
    }

    fn report_of(rounds: u32, results: Vec<RunResult>) -> Report {
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
            rounds,
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
        assert!(
            text.contains(
                "| (a) PostgreSQL | simple | select-only | 10000 | 10000–10000 | 0.500 | 1.250 | \
                 1000 | 0 |"
            ),
            "{text}"
        );
        assert!(text.contains(
            "| (d) pgseal proxy, encrypted | prepared | read-write | not available: \
             encryption layer not built |"
        ));
        // (c)/(b) = 1.200, met; the ratios of (d) cannot be computed.
        assert!(
            text.contains("| simple | select-only | 1.200 | 1.200–1.200 | yes | - | - | - | - |\n"),
            "{text}"
        );
        assert!(text.contains("* Rounds: 1."), "{text}");
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

    /// A run of `round` with `tps`, whose latency, count and failures tell the rounds apart.
    fn measured_in_round(round: u32, tps: f64) -> Outcome {
        Outcome::Measured(Measurement {
            summary: RunSummary {
                tps,
                processed: (tps * 10.0) as u64,
                failed: u64::from(round),
            },
            latency: LatencySummary {
                count: (tps * 10.0) as u64,
                failed: 0,
                mean_ms: 0.5 + f64::from(round) / 10.0,
                p99_ms: 1.0 + f64::from(round),
            },
        })
    }

    /// Every cell over `tps_by_round.len()` rounds, with the TPS of each target per round.
    fn rounds_report(tps_by_target: &[(Target, &[f64])]) -> Report {
        let rounds = tps_by_target.first().map_or(0, |(_, tps)| tps.len());
        let mut results = Vec::new();
        for round in 0..rounds {
            for workload in Workload::ALL {
                for mode in Mode::ALL {
                    for (target, tps) in tps_by_target {
                        let round = round as u32;
                        results.push(RunResult {
                            round,
                            target: *target,
                            mode,
                            workload,
                            outcome: measured_in_round(round, tps[round as usize]),
                        });
                    }
                }
            }
        }
        report_of(rounds as u32, results)
    }

    #[test]
    fn three_rounds_show_medians_ranges_and_the_judged_ratios() {
        let mut report = rounds_report(&[
            (Target::Direct, &[10_000.0, 12_000.0, 11_000.0]),
            (Target::Pgbouncer, &[5_000.0, 5_200.0, 4_800.0]),
            (Target::Proxy, &[5_100.0, 5_000.0, 5_300.0]),
            (Target::ProxyPlainCopy, &[4_000.0, 4_200.0, 3_800.0]),
            (Target::ProxyEncrypted, &[3_700.0, 3_600.0, 3_900.0]),
        ]);
        // The second round of (d), prepared read-write, failed.
        for run in &mut report.results {
            if run.round == 1
                && run.target == Target::ProxyEncrypted
                && run.mode == Mode::Prepared
                && run.workload == Workload::ReadWrite
            {
                run.outcome = Outcome::Failed("pgbench exited with 2: connection lost".to_owned());
            }
        }
        let text = report.to_markdown();
        // Median 11 000 is round 3's: its latency and count; failures summed (0 + 1 + 2).
        assert!(
            text.contains(
                "| (a) PostgreSQL | simple | select-only | 11000 | 10000–12000 | 0.700 | 3.000 | \
                 110000 | 3 |"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "| (d) pgseal proxy, encrypted | prepared | read-write | failed in round 2 of 3: \
                 pgbench exited with 2: connection lost | | | | |"
            ),
            "{text}"
        );
        // (c)/(b) = 5100 / 5000; per round 1.020, 0.962, 1.104. (d)/(c2) = 3700 / 4000 = 0.925,
        // met; per round 0.925, 0.857, 1.026. (d)/(c) = 3700 / 5100, no mark.
        assert!(
            text.contains(
                "| simple | select-only | 1.020 | 0.962–1.104 | yes | 0.925 | 0.857–1.026 | yes \
                 | 0.725 |\n"
            ),
            "{text}"
        );
        // The failed round leaves (d)'s ratios out; (c)/(b) is still judged.
        assert!(
            text.contains(
                "| prepared | read-write | 1.020 | 0.962–1.104 | yes | - | - | - | - |\n"
            ),
            "{text}"
        );
        assert!(text.contains("* Rounds: 3."), "{text}");
        assert!(!text.contains("each cell is a single run"), "{text}");
    }

    #[test]
    fn an_even_count_of_rounds_shows_the_mean_of_the_middle_two() {
        let text = rounds_report(&[
            (Target::Pgbouncer, &[5_000.0, 4_000.0]),
            (Target::Proxy, &[4_400.0, 4_200.0]),
        ])
        .to_markdown();
        // Median (5000 + 4000) / 2; latency and count of the lower middle run, round 2's.
        assert!(
            text.contains(
                "| (b) pgbouncer | simple | select-only | 4500 | 4000–5000 | 0.600 | 2.000 | \
                 40000 | 1 |"
            ),
            "{text}"
        );
        // 4300 / 4500 misses the target of 1.0; per round 0.880 and 1.050.
        assert!(
            text.contains("| simple | select-only | 0.956 | 0.880–1.050 | no | - | - | - | - |\n"),
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
