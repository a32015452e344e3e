//! Running one append cell: `clients` tasks doing a [`Workload`] back to back through a
//! warm-up and a measured window, the latencies of the ops inside the window, and the
//! CPU this process and the machine used meanwhile (Linux `/proc`).

use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::{Duration, Instant};

use super::workload::{OpStats, Workload};
use crate::error::BenchError;

/// Latencies (ns) of the ops that completed inside the measured window, and their
/// retried failures.
pub struct CellOutcome {
    /// Latency of each op that completed inside the window, ns (unsorted).
    pub latencies_ns: Vec<u64>,
    /// Their retried failures.
    pub stats: OpStats,
    /// CPU used during the window (`None` off Linux).
    pub cpu: Option<CpuUse>,
}

/// CPU used during the measured window, in cores (1.0 = one core busy throughout).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CpuUse {
    /// This process (the clients, the pool, sqlx, tokio).
    pub process: f64,
    /// The whole machine (this process, PostgreSQL, anything else), not idle or iowait.
    pub machine: f64,
}

/// Cumulative CPU ticks (USER_HZ) of this process and of the machine (busy, total).
#[derive(Debug, Clone, Copy)]
struct CpuTicks {
    process: u64,
    machine_busy: u64,
    machine_total: u64,
    cores: usize,
}

/// Reads /proc (Linux only; `None` elsewhere or if unreadable).
fn cpu_ticks() -> Option<CpuTicks> {
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: state is the first, utime the 12th.
    let after = own.get(own.rfind(')')? + 1..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut lines = stat.lines();
    let total_line = lines.next()?;
    let values: Vec<u64> = total_line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    let cores = lines
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    Some(CpuTicks {
        process: utime + stime,
        machine_busy: total.saturating_sub(idle),
        machine_total: total,
        cores,
    })
}

/// CPU use over a span the caller chooses (the webhooks scenario's windows).
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter(Option<CpuTicks>);

impl CpuMeter {
    /// Starts measuring now.
    pub fn start() -> Self {
        CpuMeter(cpu_ticks())
    }

    /// The CPU used since [`CpuMeter::start`] (`None` off Linux).
    pub fn stop(self) -> Option<CpuUse> {
        cpu_use(self.0?, cpu_ticks()?)
    }
}

fn cpu_use(a: CpuTicks, b: CpuTicks) -> Option<CpuUse> {
    let total = b.machine_total.checked_sub(a.machine_total)? as f64;
    if total <= 0.0 {
        return None;
    }
    // `total` is the ticks of every core together; scale to cores.
    let per_core = total / a.cores.max(1) as f64;
    Some(CpuUse {
        process: b.process.saturating_sub(a.process) as f64 / per_core,
        machine: b.machine_busy.saturating_sub(a.machine_busy) as f64 / per_core,
    })
}

/// Runs `clients` tasks doing `work` back to back for `warmup + measure`; an op counts
/// if it completed inside the measured window (after the warm-up). No new op starts
/// after the window ends.
pub async fn run_cell(
    work: &Workload,
    clients: usize,
    warmup: Duration,
    measure: Duration,
) -> Result<CellOutcome, BenchError> {
    let start = Instant::now();
    let from = start + warmup;
    let until = from + measure;
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(from.into()).await;
        let a = cpu_ticks();
        tokio::time::sleep_until(until.into()).await;
        let b = cpu_ticks();
        a.zip(b).and_then(|(a, b)| cpu_use(a, b))
    });
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let work = work.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::from_entropy();
            let mut latencies = Vec::new();
            let mut stats = OpStats::default();
            loop {
                let t0 = Instant::now();
                if t0 >= until {
                    break;
                }
                let op = work.once(&mut rng).await?;
                let t1 = Instant::now();
                if t1 >= from && t1 <= until {
                    latencies.push(u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX));
                    stats.add(op);
                }
            }
            Ok::<_, BenchError>((latencies, stats))
        }));
    }
    let mut out = CellOutcome {
        latencies_ns: Vec::new(),
        stats: OpStats::default(),
        cpu: None,
    };
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok((latencies, stats))) => {
                out.latencies_ns.extend(latencies);
                out.stats.add(stats);
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(BenchError::Other(format!("bench client task: {e}")));
            }
        }
    }
    out.cpu = sampler.await.ok().flatten();
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Nearest-rank percentile of sorted nanoseconds, in milliseconds.
pub fn percentile_ms(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted_ns.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted_ns.len()) - 1;
    sorted_ns[idx] as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_in_milliseconds() {
        let ns: Vec<u64> = (1..=100).map(|i| i * 1_000_000).collect();
        assert_eq!(percentile_ms(&ns, 0.50), 50.0);
        assert_eq!(percentile_ms(&ns, 0.99), 99.0);
        assert_eq!(percentile_ms(&ns[..1], 0.99), 1.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }
}
