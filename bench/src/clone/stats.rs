//! Samples of the clone-latency clients and writers, the windows they fall into, and
//! the figures of a window (nearest-rank percentiles).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// The windows, in the order they come; clients read the current one before and
/// after each op ([`Phase::of_op`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    /// Warm-up: run, not counted.
    Warmup = 0,
    /// Idle, before the clone.
    IdleBefore = 1,
    /// While the clone (or the long transaction) runs.
    During = 2,
    /// Idle, after it.
    IdleAfter = 3,
    /// Stop: no new op starts.
    Stop = 4,
}

impl Phase {
    /// The window an op that started in `start` and ended in `end` belongs to: `During`
    /// if it overlapped it (an op stalled by the clone counts there, however early it
    /// started), else the one it started in.
    pub fn of_op(start: Phase, end: Phase) -> Phase {
        if start <= Phase::During && end >= Phase::During {
            Phase::During
        } else {
            start
        }
    }

    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Warmup,
            1 => Phase::IdleBefore,
            2 => Phase::During,
            3 => Phase::IdleAfter,
            _ => Phase::Stop,
        }
    }
}

/// The current phase, shared by the driver and every client.
#[derive(Debug, Clone, Default)]
pub struct PhaseCell(Arc<AtomicU8>);

impl PhaseCell {
    /// The phase now.
    pub fn get(&self) -> Phase {
        Phase::from_u8(self.0.load(Ordering::Relaxed))
    }

    /// Moves to `phase`.
    pub fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Relaxed);
    }
}

/// One op of a client or writer.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Its window ([`Phase::of_op`]).
    pub phase: Phase,
    /// Which kind of op (0 or 1: the two ops a client alternates).
    pub kind: u8,
    /// Its wall time, retries included, ns.
    pub ns: u64,
    /// Whether it failed (HTTP: a non-2xx answer or a transport error).
    pub failed: bool,
    /// Retried failures inside it (baseline: 40001 / 40P01 / SQLITE_BUSY).
    pub retries: u32,
}

/// The figures of one window.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WindowFigure {
    /// What the window is.
    pub name: String,
    /// Its length, seconds.
    pub seconds: f64,
    /// Ops started in it.
    pub ops: u64,
    /// Ops that failed.
    pub failures: u64,
    /// Retried failures inside the ops.
    pub retries: u64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest op, ms.
    pub max_ms: f64,
    /// 99th percentile of each kind of op, ms (`None`: no op of that kind).
    pub p99_by_kind_ms: [Option<f64>; 2],
}

impl WindowFigure {
    /// Ops per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.seconds.max(1e-9)
    }
}

/// The figures of the samples of `phases` (several: pooled), over `seconds`.
pub fn window(name: &str, seconds: f64, samples: &[Sample], phases: &[Phase]) -> WindowFigure {
    let chosen: Vec<&Sample> = samples
        .iter()
        .filter(|s| phases.contains(&s.phase))
        .collect();
    let mut all: Vec<u64> = chosen.iter().map(|s| s.ns).collect();
    all.sort_unstable();
    let by_kind = |k: u8| {
        let mut v: Vec<u64> = chosen
            .iter()
            .filter(|s| s.kind == k)
            .map(|s| s.ns)
            .collect();
        v.sort_unstable();
        (!v.is_empty()).then(|| percentile_ms(&v, 0.99))
    };
    WindowFigure {
        name: name.to_string(),
        seconds,
        ops: chosen.len() as u64,
        failures: chosen.iter().filter(|s| s.failed).count() as u64,
        retries: chosen.iter().map(|s| u64::from(s.retries)).sum(),
        p50_ms: percentile_ms(&all, 0.50),
        p99_ms: percentile_ms(&all, 0.99),
        max_ms: all.last().map(|&n| n as f64 / 1e6).unwrap_or(0.0),
        p99_by_kind_ms: [by_kind(0), by_kind(1)],
    }
}

/// Nearest-rank percentile of sorted nanoseconds, in milliseconds (0 when empty).
pub fn percentile_ms(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted_ns.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted_ns.len()) - 1;
    sorted_ns.get(idx).map(|&n| n as f64 / 1e6).unwrap_or(0.0)
}

/// Median of sorted values (the mean of the middle two for an even count; 0 when
/// empty).
pub fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    let hi = sorted.get(n / 2).copied().unwrap_or(0.0);
    if n % 2 == 1 {
        hi
    } else {
        (sorted.get(n / 2 - 1).copied().unwrap_or(hi) + hi) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_medians() {
        let ns: Vec<u64> = (1..=100).map(|i| i * 1_000_000).collect();
        assert_eq!(percentile_ms(&ns, 0.50), 50.0);
        assert_eq!(percentile_ms(&ns, 0.99), 99.0);
        assert_eq!(percentile_ms(&[], 0.99), 0.0);
        assert_eq!(median(&[1.0, 3.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn a_window_counts_only_its_phases() {
        let s = |phase, kind, ms: u64, failed| Sample {
            phase,
            kind,
            ns: ms * 1_000_000,
            failed,
            retries: u32::from(failed),
        };
        let samples = [
            s(Phase::Warmup, 0, 100, false),
            s(Phase::IdleBefore, 0, 1, false),
            s(Phase::IdleBefore, 1, 3, true),
            s(Phase::During, 0, 7, false),
            s(Phase::IdleAfter, 1, 2, false),
        ];
        let w = window(
            "idle",
            2.0,
            &samples,
            &[Phase::IdleBefore, Phase::IdleAfter],
        );
        assert_eq!(w.ops, 3);
        assert_eq!(w.failures, 1);
        assert_eq!(w.retries, 1);
        assert_eq!(w.max_ms, 3.0);
        assert_eq!(w.p99_by_kind_ms, [Some(1.0), Some(3.0)]);
        assert_eq!(w.rate(), 1.5);
        let during = window("during", 1.0, &samples, &[Phase::During]);
        assert_eq!(during.p99_by_kind_ms, [Some(7.0), None]);
    }

    #[test]
    fn an_op_overlapping_the_clone_belongs_to_it() {
        use Phase::*;
        assert_eq!(Phase::of_op(IdleBefore, IdleBefore), IdleBefore);
        assert_eq!(Phase::of_op(IdleBefore, During), During);
        assert_eq!(Phase::of_op(IdleBefore, Stop), During);
        assert_eq!(Phase::of_op(During, IdleAfter), During);
        assert_eq!(Phase::of_op(IdleAfter, Stop), IdleAfter);
        assert_eq!(Phase::of_op(Warmup, IdleBefore), Warmup);
    }
}
