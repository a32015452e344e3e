//! The Markdown printers: each scenario's figures as tables on stdout (progress and
//! logs go to stderr), the format docs/PERFORMANCE.md records.

use crate::append::{AppendPath, AppendRatios, AppendReport};
use crate::catchup::Figure;
use crate::clone::{CloneLatencyReport, CloneReport, Tool, WindowFigure, MIB};
use crate::scheduler::SchedulerFigure;
use crate::webhooks::{Distribution, WebhooksReport};

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

fn load_line(load: (Option<f64>, Option<f64>)) -> String {
    let show = |l: Option<f64>| l.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
    format!(
        "load average (1 min) at start / end: {} / {} on {} cores",
        show(load.0),
        show(load.1),
        std::thread::available_parallelism()
            .map(|n| n.get().to_string())
            .unwrap_or_else(|_| "?".into())
    )
}

fn verdict(reached: bool) -> &'static str {
    if reached {
        "reached"
    } else {
        "NOT reached"
    }
}

/// Prints the clone report as Markdown tables on stdout: every run, then best and
/// median per tool with the ratio, then the SPEC §10 verdict.
#[allow(clippy::print_stdout)]
pub fn print_clone_report(report: &CloneReport) {
    println!(
        "{}; tree: {}; sessiond clone_parallelism {}; {}",
        report.backend,
        report.tree.describe(),
        report.parallelism,
        load_line(report.load)
    );
    println!();
    println!(
        "| run | copy | bytes | seconds | MiB/s | task's own seconds | CPU s | + sync s | MiB/s incl. sync |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &report.runs {
        println!(
            "| {} | {} | {} | {:.3} | {:.1} | {} | {} | {:.3} | {:.1} |",
            r.run,
            r.tool.label(),
            r.bytes,
            r.seconds,
            r.rate() / MIB,
            r.task_seconds
                .map(|t| format!("{t:.3}"))
                .unwrap_or_else(|| "-".into()),
            r.cpu_seconds
                .map(|t| format!("{t:.2}"))
                .unwrap_or_else(|| "-".into()),
            r.sync_seconds,
            r.rate_with_sync() / MIB
        );
    }
    println!();
    println!("| throughput | cp -a MiB/s | sessiond MiB/s | sessiond / cp -a |");
    println!("|---|---:|---:|---:|");
    let mut ratios = None;
    for (with_sync, what) in [(false, "copy"), (true, "copy + sync")] {
        let (Some(cp), Some(ours)) = (
            report.summary(Tool::CpA, with_sync),
            report.summary(Tool::Sessiond, with_sync),
        ) else {
            continue;
        };
        if !with_sync {
            ratios = Some((
                ours.median / cp.median.max(1e-9),
                ours.best / cp.best.max(1e-9),
            ));
        }
        for (name, a, b) in [
            ("best", cp.best, ours.best),
            ("median", cp.median, ours.median),
        ] {
            println!(
                "| {what}, {name} | {:.1} | {:.1} | {:.2} |",
                a / MIB,
                b / MIB,
                b / a.max(1e-9)
            );
        }
    }
    if let Some((median, best)) = ratios {
        println!();
        println!("| SPEC §10 target | measured | verdict |");
        println!("|---|---:|---|");
        println!(
            "| clone throughput >= 0.8 x cp -a (median of the alternated runs, copy only) \
             | {median:.2} (best runs: {best:.2}) | {} |",
            verdict(median >= 0.8)
        );
    }
    for n in &report.notes {
        println!();
        println!("Note: {n}");
    }
}

fn show_ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
}

/// Prints one table row per window.
#[allow(clippy::print_stdout)]
fn window_rows(windows: &[WindowFigure], kinds: [&str; 2], retried: bool) {
    let extra = if retried { " retried failures |" } else { "" };
    println!(
        "| window | seconds | ops | ops/s | failed ops |{extra} p50 ms | p99 ms | max ms | {} p99 ms | {} p99 ms |",
        kinds[0], kinds[1]
    );
    let rule = if retried { "---:|" } else { "" };
    println!("|---|---:|---:|---:|---:|{rule}---:|---:|---:|---:|---:|");
    for w in windows {
        let retries = if retried {
            format!(" {} |", w.retries)
        } else {
            String::new()
        };
        println!(
            "| {} | {:.2} | {} | {:.0} | {} |{retries} {:.2} | {:.2} | {:.2} | {} | {} |",
            w.name,
            w.seconds,
            w.ops,
            w.rate(),
            w.failures,
            w.p50_ms,
            w.p99_ms,
            w.max_ms,
            show_ms(w.p99_by_kind_ms[0]),
            show_ms(w.p99_by_kind_ms[1])
        );
    }
}

/// Prints the clone-latency report as Markdown tables on stdout: sessiond's windows,
/// the baseline's, and the SPEC §10 verdict.
#[allow(clippy::print_stdout)]
pub fn print_clone_latency_report(report: &CloneLatencyReport) {
    println!(
        "{}; {} clients; tree: {}; sessiond clone_parallelism {}; {}",
        report.backend,
        report.clients,
        report.tree.describe(),
        report.parallelism,
        load_line(report.load)
    );
    println!();
    println!(
        "sessiond over HTTP (the clone took {:.2} s):",
        report.clone_seconds
    );
    println!();
    window_rows(&report.sessiond, ["GET", "POST"], false);
    println!();
    println!(
        "baseline: the original design, the copy inside one transaction ({:.2} s open; {}):",
        report.long_transaction_seconds, report.long_transaction_outcome
    );
    println!();
    window_rows(&report.baseline, ["new session", "status change"], true);
    // During / idle of one figure of two windows.
    let ratio =
        |ws: &[WindowFigure], during: usize, idle: usize, f: fn(&WindowFigure) -> f64| match (
            ws.get(during),
            ws.get(idle),
        ) {
            (Some(d), Some(i)) if f(i) > 0.0 => Some(f(d) / f(i)),
            _ => None,
        };
    let show = |r: Option<f64>| r.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
    let p99: fn(&WindowFigure) -> f64 = |w| w.p99_ms;
    let rate: fn(&WindowFigure) -> f64 = WindowFigure::rate;
    let max: fn(&WindowFigure) -> f64 = |w| w.max_ms;
    println!();
    println!("| during / idle | p99 | ops/s | max |");
    println!("|---|---:|---:|---:|");
    let ours = ratio(&report.sessiond, 1, 3, p99);
    println!(
        "| sessiond (idle: before and after, pooled) | {} | {} | {} |",
        show(ours),
        show(ratio(&report.sessiond, 1, 3, rate)),
        show(ratio(&report.sessiond, 1, 3, max))
    );
    println!(
        "| baseline writers | {} | {} | {} |",
        show(ratio(&report.baseline, 1, 0, p99)),
        show(ratio(&report.baseline, 1, 0, rate)),
        show(ratio(&report.baseline, 1, 0, max))
    );
    if let Some(r) = ours {
        println!();
        println!("| SPEC §10 target | measured | verdict |");
        println!("|---|---:|---|");
        println!(
            "| API p99 during a clone <= 1.2 x idle p99 | {r:.2} | {} |",
            verdict(r <= 1.2)
        );
    }
    for n in &report.notes {
        println!();
        println!("Note: {n}");
    }
}

/// Prints the webhooks report as Markdown tables on stdout: the throughput runs beside
/// the plain-POST baseline, the latencies of the paced run, and the issue #15 verdicts.
#[allow(clippy::print_stdout)]
pub fn print_webhooks_report(report: &WebhooksReport) {
    println!(
        "{}; dispatcher concurrency {}; {} producing HTTP clients; outbox {}; {}",
        report.backend,
        report.concurrency,
        report.clients,
        if report.analyzed {
            "ANALYZEd before the backlog drain (--analyze)"
        } else {
            "not analyzed by the bench (a fresh table: no planner statistics unless autovacuum ran)"
        },
        load_line(report.load)
    );
    println!();
    println!(
        "| throughput run | changes | produced in s | changes/s produced | deliveries | \
         delivered in s | deliveries/s | / baseline | duplicates | missing | mean attempt ms \
         | CPU cores: bench / machine |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let baseline = report
        .throughput
        .first()
        .map(|b| b.deliver_rate())
        .filter(|r| *r > 0.0);
    for (i, f) in report.throughput.iter().enumerate() {
        let (produced_s, produced_rate) = if f.produce_seconds > 0.0 {
            (
                format!("{:.2}", f.produce_seconds),
                format!("{:.0}", f.produce_rate()),
            )
        } else {
            ("-".into(), "-".into())
        };
        let ratio = match (i, baseline) {
            (0, _) => "1.00 (baseline)".to_string(),
            (_, Some(b)) => format!("{:.2}", f.deliver_rate() / b),
            _ => "-".into(),
        };
        let cpu = f
            .cpu
            .map(|c| format!("{:.2} / {:.2}", c.process, c.machine))
            .unwrap_or_else(|| "-".into());
        println!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.0} | {} | {} | {} | {} | {} |",
            f.name,
            f.changes,
            produced_s,
            produced_rate,
            f.deliveries,
            f.deliver_seconds,
            f.deliver_rate(),
            ratio,
            f.duplicates,
            f.missing,
            show_ms(f.mean_attempt_ms),
            cpu
        );
    }
    if let Some(tail) = report.throughput.iter().find_map(|f| f.tail_seconds) {
        println!();
        println!(
            "live run: the last delivery arrived {tail:.2} s after the last enqueue was answered"
        );
    }
    let l = &report.latency;
    println!();
    println!(
        "paced run: {} changes measured at {:.1} changes/s (target {:.0}/s; an enqueue sent \
         at most {:.1} ms late), {} without a delivery; mean dispatch lag (recorded to \
         attempt start, the dispatcher's own histogram) {} ms; CPU cores bench / machine {}",
        l.changes,
        l.achieved_rate,
        l.target_rate,
        l.max_send_lag_ms,
        l.missing,
        show_ms(l.mean_dispatch_lag_ms),
        l.cpu
            .map(|c| format!("{:.2} / {:.2}", c.process, c.machine))
            .unwrap_or_else(|| "-".into())
    );
    println!();
    println!("| latency | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|");
    let row = |name: &str, d: &Distribution| {
        println!("| {name} | {:.1} | {:.1} | {:.1} |", d.p50, d.p99, d.max);
    };
    row("commit (event recorded_at) -> receipt", &l.from_commit);
    row("API answered the enqueue -> receipt", &l.from_answer);
    row(
        "occurred_at (payload timestamp) -> receipt",
        &l.from_occurred,
    );
    row("the enqueue itself (POST /v1/sessions)", &l.enqueue);
    println!();
    println!("| issue #15 target | measured | verdict |");
    println!("|---|---:|---|");
    if let Some(drain) = report.throughput.get(1) {
        println!(
            "| >= 1,000 deliveries/s to a loopback receiver answering 200 at once (backlog \
             drain) | {:.0}/s | {} |",
            drain.deliver_rate(),
            verdict(drain.deliver_rate() >= 1000.0 && drain.missing == 0)
        );
    }
    println!(
        "| p99 commit -> receipt <= 250 ms at a steady {:.0} status changes/s | {:.1} ms | {} |",
        l.target_rate,
        l.from_commit.p99,
        verdict(l.from_commit.p99 <= 250.0 && l.missing == 0)
    );
    for n in &report.notes {
        println!();
        println!("Note: {n}");
    }
}

/// `agents`: one table row of what a run measured.
#[allow(clippy::print_stdout)]
pub fn print_agents_report(r: &crate::agents::AgentsReport) {
    use crate::agents::percentile;
    let secs = r.elapsed.as_secs_f64();
    println!(
        "| backend | agents | sessions | seconds | completed/s | enqueue -> RUNNING p50 / p99 (ms) | enqueue -> ended p50 / p99 (ms) | load |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {:.2} | {:.0} | {:.0} / {:.0} | {:.0} / {:.0} | {} |",
        r.backend,
        r.agents,
        r.sessions,
        secs,
        r.sessions as f64 / secs.max(1e-9),
        percentile(&r.to_running_ms, 50.0),
        percentile(&r.to_running_ms, 99.0),
        percentile(&r.to_end_ms, 50.0),
        percentile(&r.to_end_ms, 99.0),
        r.load
            .map(|l| format!("{l:.2}"))
            .unwrap_or_else(|| "?".into()),
    );
}

/// Prints the snapshot figures as a Markdown table on stdout: one command's latency on
/// an agent stream of each length, without snapshots (the baseline) and with them.
#[allow(clippy::print_stdout)]
pub fn print_snapshots_report(report: &crate::snapshots::SnapshotsReport) {
    println!(
        "| events in the stream | commands | without: p50 / p99 ms | with (every {}): p50 / p99 ms | without / with (p50) | first load with ms |",
        report.every
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for f in &report.figures {
        println!(
            "| {} | {} | {:.2} / {:.2} | {:.2} / {:.2} | {:.1} | {:.1} |",
            f.events,
            f.commands,
            f.without_ms.0,
            f.without_ms.1,
            f.with_ms.0,
            f.with_ms.1,
            f.without_ms.0 / f.with_ms.0.max(f64::MIN_POSITIVE),
            f.first_load_ms
        );
    }
    if let (Some(first), Some(last)) = (report.figures.first(), report.figures.last()) {
        println!();
        println!(
            "With snapshots, p50 at {} events / p50 at {} events: {:.2} (target: flat in stream length, ~1.0).",
            last.events,
            first.events,
            last.with_ms.0 / first.with_ms.0.max(f64::MIN_POSITIVE)
        );
    }
}

/// Prints the HTTP figures as Markdown on stdout: one row per cell, each HTTP cell's
/// rate beside the in-process append path at the same client count, then the targets.
#[allow(clippy::print_stdout)]
pub fn print_http_report(report: &crate::http::HttpReport) {
    use crate::http::HttpKind;
    println!(
        "HTTP end to end ({}, {:.0} s per cell):",
        report.backend, report.seconds
    );
    println!();
    println!("| request | clients | PENDING before | req/s | p50 ms | p99 ms | p999 ms | / in-process append | bench CPU | machine CPU |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let cores = |c: Option<f64>| c.map(|c| format!("{c:.2}")).unwrap_or_else(|| "?".into());
    for f in &report.figures {
        let baseline = report
            .figures
            .iter()
            .find(|b| b.kind == HttpKind::InProcess && b.clients == f.clients)
            .map(|b| b.per_sec)
            .filter(|b| *b > 0.0);
        let ratio = match (f.kind, baseline) {
            (HttpKind::InProcess, _) | (_, None) => "".to_string(),
            (_, Some(b)) => format!("{:.2}", f.per_sec / b),
        };
        println!(
            "| {}{} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
            f.kind.label(),
            if f.after_fill {
                " (after the fill)"
            } else {
                ""
            },
            f.clients,
            f.pending_before.map(|p| p.to_string()).unwrap_or_default(),
            f.per_sec,
            f.p50_ms,
            f.p99_ms,
            f.p999_ms,
            ratio,
            cores(f.bench_cpu_cores),
            cores(f.machine_cpu_cores),
        );
    }
    println!();
    println!("| target | measured | required | reached |");
    println!("|---|---:|---:|---|");
    for t in &report.targets {
        println!(
            "| {} | {:.2} | {} | {} |",
            t.target,
            t.measured,
            t.threshold,
            if t.reached { "yes" } else { "**no**" }
        );
    }
    for n in &report.notes {
        println!();
        println!("Note: {n}");
    }
}
