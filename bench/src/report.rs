//! The Markdown printers: each scenario's figures as tables on stdout (progress and
//! logs go to stderr), the format docs/PERFORMANCE.md records.

use crate::append::{AppendPath, AppendRatios, AppendReport};
use crate::catchup::Figure;
use crate::scheduler::SchedulerFigure;

/// Prints the scheduler figures with their SPEC §10 targets as a Markdown table.
#[allow(clippy::print_stdout)]
pub fn print_scheduler_figures(figures: &[SchedulerFigure]) {
    println!("| measurement | sessions | seconds | target | measured / target | verdict |");
    println!("|---|---:|---:|---:|---:|---|");
    for f in figures {
        println!(
            "| {} | {} | {:.3} | <= {:.3} s | {:.2} | {} |",
            f.name,
            f.handled,
            f.seconds,
            f.target_seconds,
            f.seconds / f.target_seconds,
            if f.seconds <= f.target_seconds {
                "reached"
            } else {
                "NOT reached"
            }
        );
    }
}

/// Prints the catch-up figures as a Markdown table on stdout.
#[allow(clippy::print_stdout)]
pub fn print_catchup_figures(figures: &[Figure]) {
    println!("| measurement | events | seconds | events/s | ratio to baseline |");
    println!("|---|---:|---:|---:|---:|");
    for f in figures {
        println!(
            "| {} | {} | {:.3} | {:.0} | {} |",
            f.name,
            f.events,
            f.seconds,
            f.events_per_sec,
            f.ratio_to_baseline
                .map(|r| format!("{r:.2}"))
                .unwrap_or_else(|| "1.00 (baseline)".into())
        );
    }
}

/// Prints the append-path report as Markdown tables on stdout: one row per cell, then
/// the throughput ratios per client count, then the SPEC §10 verdicts.
#[allow(clippy::print_stdout)]
pub fn print_append_report(report: &AppendReport) {
    let connections = if report.backend == "SQLite" {
        "the store's single writer connection (SPEC §3) shared by every path".to_string()
    } else if report
        .figures
        .iter()
        .any(|f| f.path == AppendPath::RawNoNotifyNoPing)
    {
        format!(
            "the store's pool of {} connections shared by every path but \"{}\", which has \
             its own pool of that size",
            report.pool_size,
            AppendPath::RawNoNotifyNoPing.label()
        )
    } else {
        format!(
            "the store's pool of {} connections shared by every path",
            report.pool_size
        )
    };
    println!(
        "{}; {} s measured per cell after {} s warm-up; {connections}",
        report.backend, report.seconds, report.warmup
    );
    println!();
    println!(
        "| path | clients | ops | ops/s | p50 ms | p99 ms | 40001 failures (% of ops) \
         | CPU cores: bench / machine |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|---:|");
    for f in &report.figures {
        let failures = if matches!(f.path, AppendPath::Status | AppendPath::StatusReader) {
            let pct = 100.0 * f.serialization_failures as f64 / (f.ops.max(1) as f64);
            let mut s = format!("{} ({pct:.2}%)", f.serialization_failures);
            if f.deadlocks > 0 {
                s.push_str(&format!("; {} deadlocks", f.deadlocks));
            }
            if f.path == AppendPath::StatusReader {
                s.push_str(&format!(
                    "; reader: {} txns, {} failed",
                    f.reader_transactions, f.reader_failures
                ));
            }
            s
        } else {
            "-".into()
        };
        let cpu = match (f.process_cpu_cores, f.machine_cpu_cores) {
            (Some(p), Some(m)) => format!("{p:.2} / {m:.2}"),
            _ => "-".into(),
        };
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} |",
            f.path.label(),
            f.clients,
            f.ops,
            f.ops_per_sec,
            f.p50_ms,
            f.p99_ms,
            failures,
            cpu
        );
    }
    // Ratio columns; those no cell of this run fills are left out.
    type Column = (&'static str, fn(&AppendRatios) -> Option<f64>);
    let columns: [Column; 8] = [
        ("cqrs / raw", |r| r.cqrs_to_raw),
        ("sessiond / raw", |r| r.sessiond_to_raw),
        ("sessiond / cqrs", |r| r.sessiond_to_cqrs),
        ("raw: trigger on / off", |r| r.raw_notify_to_raw_no_notify),
        ("raw (trigger off): no ping / ping", |r| {
            r.raw_no_ping_to_raw_no_notify
        }),
        ("sessiond / raw (trigger off)", |r| {
            r.sessiond_to_raw_no_notify
        }),
        ("sessiond / cqrs (trigger off)", |r| {
            r.sessiond_to_cqrs_no_notify
        }),
        ("status: with reader / without", |r| {
            r.status_reader_to_status
        }),
    ];
    let used: Vec<&Column> = columns
        .iter()
        .filter(|(_, get)| report.ratios.iter().any(|r| get(r).is_some()))
        .collect();
    if !used.is_empty() {
        println!();
        let mut header = "| clients |".to_string();
        let mut rule = "|---:|".to_string();
        for (name, _) in &used {
            header.push_str(&format!(" {name} |"));
            rule.push_str("---:|");
        }
        println!("{header}");
        println!("{rule}");
        for r in &report.ratios {
            let mut line = format!("| {} |", r.clients);
            for (_, get) in &used {
                let cell = get(r)
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_else(|| "-".into());
                line.push_str(&format!(" {cell} |"));
            }
            println!("{line}");
        }
    }
    if !report.targets.is_empty() {
        println!();
        println!("| SPEC §10 target | measured | verdict |");
        println!("|---|---:|---|");
        for t in &report.targets {
            println!(
                "| {} | {:.2} | {} |",
                t.target,
                t.measured,
                if t.reached { "reached" } else { "NOT reached" }
            );
        }
    }
    for n in &report.notes {
        println!();
        println!("Note: {n}");
    }
}
