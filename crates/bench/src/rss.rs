//! Resident memory of a process, alone and with many idle client connections.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use crate::pgbench::{DATABASE, USER};
use crate::BenchError;

/// Time for the server side of fresh connections to settle before measuring.
const SETTLE: Duration = Duration::from_millis(500);

/// `VmRSS` of process `pid`, in KiB.
pub(crate) fn vm_rss_kib(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).map_err(|e| BenchError::io(format!("read {path}"), e))?;
    parse_vm_rss_kib(&status)
        .ok_or_else(|| BenchError::Parse(format!("{path} has no `VmRSS: N kB` line")))
}

fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let rest = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?;
    let mut words = rest.split_whitespace();
    let value = words.next()?.parse().ok()?;
    (words.next()? == "kB").then_some(value)
}

/// Opens `count` connections to `127.0.0.1:port`, runs `SELECT 1` on each so every session is
/// fully established, lets them sit idle, and returns `VmRSS` of process `pid` meanwhile. The
/// connections close when this returns.
pub(crate) async fn rss_with_idle_clients(
    port: u16,
    pid: u32,
    count: usize,
) -> Result<u64, BenchError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user(USER)
        .dbname(DATABASE)
        .connect_timeout(Duration::from_secs(10));
    let mut clients: Vec<Client> = Vec::with_capacity(count);
    let mut connections = tokio::task::JoinSet::new();
    for n in 0..count {
        let (client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| BenchError::db(format!("opening idle connection {}", n + 1), &e))?;
        connections.spawn(connection);
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| BenchError::db(format!("querying on idle connection {}", n + 1), &e))?;
        clients.push(client);
    }
    tokio::time::sleep(SETTLE).await;
    let rss = vm_rss_kib(pid);
    drop(clients);
    // Each connection task ends once its client is gone; waiting keeps the next measurement
    // from seeing these sessions still open.
    while connections.join_next().await.is_some() {}
    rss
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_from_proc_status() {
        let status =
            "Name:\tpgseal-bench\nVmPeak:\t  123456 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss_kib(status), Some(12_345));
        assert_eq!(parse_vm_rss_kib("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss_kib("VmRSS:\t 12 MB\n"), None);
    }

    #[test]
    fn reads_our_own_rss() {
        let rss = vm_rss_kib(std::process::id()).expect("our own status is readable");
        assert!(rss > 0);
    }
}
