//! Reading pgbench's results: the summary it prints, and its per-transaction logs (`--log`),
//! from which the latency mean and percentiles are computed here (pgbench prints no percentiles).

use crate::BenchError;

/// What pgbench prints at the end of a run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunSummary {
    /// Transactions per second, excluding the time spent opening connections.
    pub(crate) tps: f64,
    /// Transactions completed.
    pub(crate) processed: u64,
    /// Transactions that failed (PostgreSQL 15 and later print this line; older ones never
    /// count failures, so 0).
    pub(crate) failed: u64,
}

/// Parses the summary pgbench prints on standard output.
///
/// # Errors
/// [`BenchError::Parse`] if the `tps` or `number of transactions actually processed` line is
/// missing or malformed.
pub(crate) fn parse_summary(stdout: &str) -> Result<RunSummary, BenchError> {
    let mut tps = None;
    let mut processed = None;
    let mut failed = 0;
    for line in stdout.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("tps = ") {
            // pgbench before 14 prints two tps lines; the one excluding connection set-up is
            // what later versions print alone, and what compares across targets.
            let excludes_connections =
                rest.contains("without initial connection") || rest.contains("excluding");
            if tps.is_none() || excludes_connections {
                tps = Some(first_number::<f64>(rest, line)?);
            }
        } else if let Some(rest) = line.strip_prefix("number of transactions actually processed:") {
            // "123456" or, with -t, "123456/200000".
            let count = rest.trim().split('/').next().unwrap_or_default();
            processed = Some(first_number::<u64>(count, line)?);
        } else if let Some(rest) = line.strip_prefix("number of failed transactions:") {
            failed = first_number::<u64>(rest, line)?;
        }
    }
    Ok(RunSummary {
        tps: tps.ok_or_else(|| BenchError::Parse("no `tps = ...` line".to_owned()))?,
        processed: processed.ok_or_else(|| {
            BenchError::Parse("no `number of transactions actually processed` line".to_owned())
        })?,
        failed,
    })
}

fn first_number<T: std::str::FromStr>(text: &str, line: &str) -> Result<T, BenchError> {
    text.split_whitespace()
        .next()
        .and_then(|word| word.parse().ok())
        .ok_or_else(|| BenchError::Parse(format!("expected a number in `{line}`")))
}

/// Transaction latencies collected from pgbench's per-transaction logs.
#[derive(Debug, Default)]
pub(crate) struct Latencies {
    micros: Vec<u64>,
    failed: u64,
}

/// Mean and tail latency of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LatencySummary {
    /// Transactions with a latency.
    pub(crate) count: u64,
    /// Log lines of failed or skipped transactions.
    pub(crate) failed: u64,
    /// Mean latency in milliseconds.
    pub(crate) mean_ms: f64,
    /// 99th percentile (nearest rank) in milliseconds.
    pub(crate) p99_ms: f64,
}

impl Latencies {
    /// Adds every line of one log file (`pgbench --log` writes one file per thread).
    ///
    /// A line is `client_id transaction_no time script_no time_epoch time_us [...]`, where
    /// `time` is the latency in microseconds, or `failed`, `serialization`, `deadlock` or
    /// `skipped` for a transaction that has none.
    ///
    /// # Errors
    /// [`BenchError::Parse`] naming the first line that is not in that format; aggregated logs
    /// (`--aggregate-interval`) are refused the same way.
    pub(crate) fn add_log(&mut self, text: &str) -> Result<(), BenchError> {
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let bad = || {
                BenchError::Parse(format!(
                    "log line {} is not a per-transaction record: `{line}`",
                    index + 1
                ))
            };
            if fields.len() < 6 {
                return Err(bad());
            }
            match fields[2] {
                "failed" | "serialization" | "deadlock" | "skipped" => self.failed += 1,
                time => self.micros.push(time.parse().map_err(|_| bad())?),
            }
        }
        Ok(())
    }

    /// Mean and 99th percentile, or `None` if no transaction completed.
    pub(crate) fn summary(mut self) -> Option<LatencySummary> {
        if self.micros.is_empty() {
            return None;
        }
        self.micros.sort_unstable();
        let count = self.micros.len() as u64;
        let total: u128 = self.micros.iter().map(|&us| u128::from(us)).sum();
        let mean_us = total as f64 / count as f64;
        let p99_us = percentile(&self.micros, 99.0)?;
        Some(LatencySummary {
            count,
            failed: self.failed,
            mean_ms: mean_us / 1000.0,
            p99_ms: p99_us as f64 / 1000.0,
        })
    }
}

/// The nearest-rank percentile of sorted values: the smallest value with at least `pct` % of
/// the values at or below it. `None` for an empty slice or `pct` outside (0, 100].
pub(crate) fn percentile(sorted: &[u64], pct: f64) -> Option<u64> {
    if sorted.is_empty() || !(pct > 0.0 && pct <= 100.0) {
        return None;
    }
    let rank = (pct / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// The median of `values`: the middle value of an odd count, the mean of the two middle
/// values of an even one. `None` for no values.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let order = sorted_order(values);
    let count = order.len();
    let upper = values.get(*order.get(count / 2)?)?;
    if count % 2 == 1 {
        return Some(*upper);
    }
    let lower = values.get(*order.get(count / 2 - 1)?)?;
    Some((lower + upper) / 2.0)
}

/// Where in `values` the median lies: the middle value of an odd count, the lower of the two
/// middle values of an even one (an actual value, so that the run it came from can be shown
/// with it). `None` for no values.
pub(crate) fn lower_median_index(values: &[f64]) -> Option<usize> {
    let order = sorted_order(values);
    order.get(order.len().checked_sub(1)? / 2).copied()
}

/// The indices of `values` in ascending order of value (`total_cmp`, so a NaN cannot make the
/// order inconsistent; ties keep their input order).
fn sorted_order(values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A summary in the format of PostgreSQL 15's pgbench (`-M prepared -S -c 8 -j 2 -T 2`).
    const STDOUT_15: &str = include_str!("../fixtures/pgbench15_stdout.txt");
    /// A per-transaction log in pgbench 15's format (one thread's file), with chosen
    /// latencies and one failed transaction.
    const LOG_15: &str = include_str!("../fixtures/pgbench15_log.txt");

    #[test]
    fn parses_the_pgbench_15_summary() {
        let summary = parse_summary(STDOUT_15).expect("fixture parses");
        assert_eq!(summary.processed, 27_842);
        assert_eq!(summary.failed, 0);
        assert!((summary.tps - 13_937.482_133).abs() < 1e-6, "{summary:?}");
    }

    #[test]
    fn prefers_the_tps_without_connection_time_of_older_pgbench() {
        let old = "number of transactions actually processed: 100/100\n\
                   tps = 90.5 (including connections establishing)\n\
                   tps = 120.25 (excluding connections establishing)\n";
        let summary = parse_summary(old).expect("old format parses");
        assert_eq!(summary.tps, 120.25);
        assert_eq!(summary.processed, 100);
    }

    #[test]
    fn a_summary_without_tps_is_an_error() {
        let err = parse_summary("number of transactions actually processed: 5\n")
            .expect_err("tps is required");
        assert!(err.to_string().contains("tps"), "{err}");
        assert!(parse_summary("tps = fast\nnumber of transactions actually processed: 5").is_err());
    }

    #[test]
    fn computes_mean_and_p99_from_the_log() {
        let mut latencies = Latencies::default();
        latencies.add_log(LOG_15).expect("fixture parses");
        let summary = latencies.summary().expect("the fixture has transactions");
        // The fixture holds 200 transactions: 198 of 500 us, one of 7 000 us, one of 9 000 us,
        // and one failed transaction.
        assert_eq!(summary.count, 200);
        assert_eq!(summary.failed, 1);
        let mean_ms = (198.0 * 500.0 + 7_000.0 + 9_000.0) / 200.0 / 1000.0;
        assert!((summary.mean_ms - mean_ms).abs() < 1e-9, "{summary:?}");
        // Rank ceil(0.99 * 200) = 198: the last of the 500 us values.
        assert_eq!(summary.p99_ms, 0.5);
    }

    #[test]
    fn rejects_aggregated_and_garbled_logs() {
        let mut latencies = Latencies::default();
        let err = latencies
            .add_log("0 1 512 0 1700000000 12\n1 1 fast 0 1700000000 13\n")
            .expect_err("a word where the latency goes");
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(Latencies::default()
            .add_log("1700000000 5 2500 600\n")
            .is_err());
        assert_eq!(Latencies::default().summary(), None);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 99.0), Some(99));
        assert_eq!(percentile(&values, 100.0), Some(100));
        assert_eq!(percentile(&values, 50.0), Some(50));
        assert_eq!(percentile(&values, 0.1), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 99.0), None);
        assert_eq!(percentile(&values, 0.0), None);
        assert_eq!(percentile(&values, 101.0), None);
    }

    #[test]
    fn median_of_an_odd_count_is_the_middle_value() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[7.5]), Some(7.5));
        assert_eq!(median(&[5.0, 9.0, 1.0, 5.0, 4.0]), Some(5.0));
        assert_eq!(median(&[]), None);
        // The index of the middle value in the input, not in the sorted order.
        assert_eq!(lower_median_index(&[3.0, 1.0, 2.0]), Some(2));
        assert_eq!(lower_median_index(&[7.5]), Some(0));
        assert_eq!(lower_median_index(&[]), None);
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_two_middle_values() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 10.0]), Some(3.5));
        assert_eq!(median(&[2.0, 1.0]), Some(1.5));
        // The lower of the two middle values: 3.0, at index 2.
        assert_eq!(lower_median_index(&[4.0, 1.0, 3.0, 10.0]), Some(2));
        assert_eq!(lower_median_index(&[2.0, 1.0]), Some(1));
    }
}
