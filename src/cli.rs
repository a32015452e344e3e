//! The `sessiond` command line.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use crate::config::{Overrides, Settings};

/// sessiond: event-sourced session lifecycle manager.
#[derive(Debug, Parser)]
#[command(name = "sessiond", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the store (applying migrations) and serve the API.
    Serve {
        /// `sqlite://PATH` or `postgres://...` [default: sqlite://sessiond.db; env: SESSIOND_DATABASE_URL]
        #[arg(long)]
        database_url: Option<String>,
        /// Listen address [default: 127.0.0.1:8080; env: SESSIOND_LISTEN]
        #[arg(long)]
        listen: Option<String>,
        /// Optional TOML config file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run a benchmark scenario against an empty database and print a Markdown table.
    #[command(subcommand)]
    Bench(BenchScenario),
}

/// Benchmark scenarios.
#[derive(Debug, Subcommand)]
pub enum BenchScenario {
    /// Projection catch-up and rebuild of the sessions read model vs. the raw log read.
    Catchup(crate::bench::BenchArgs),
    /// The command append path (raw INSERT, plain cqrs-es, sessiond) and the mutable
    /// status row under SERIALIZABLE, at 1/4/16 concurrent clients.
    Append(crate::bench::AppendArgs),
    /// One scheduling pass (10k pending onto 1k agents) and one pending-timeout sweep
    /// (100k pending, 1k expired).
    Scheduler(crate::bench::scheduler::SchedulerArgs),
}

/// Parses arguments and runs the chosen subcommand; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Bench(BenchScenario::Catchup(args)) => {
            crate::telemetry::init(crate::config::LogFormat::Pretty);
            match crate::bench::catchup(&args).await {
                Ok(figures) => {
                    print_figures(&figures);
                    0
                }
                Err(e) => {
                    eprintln!("sessiond bench: {}", error_chain(&e));
                    1
                }
            }
        }
        Command::Bench(BenchScenario::Scheduler(args)) => {
            crate::telemetry::init(crate::config::LogFormat::Pretty);
            match crate::bench::scheduler::scheduler(&args).await {
                Ok(figures) => {
                    print_scheduler_figures(&figures);
                    0
                }
                Err(e) => {
                    eprintln!("sessiond bench: {}", error_chain(&e));
                    1
                }
            }
        }
        Command::Bench(BenchScenario::Append(args)) => {
            crate::telemetry::init(crate::config::LogFormat::Pretty);
            match crate::bench::append(&args).await {
                Ok(report) => {
                    print_append_report(&report);
                    0
                }
                Err(e) => {
                    eprintln!("sessiond bench: {}", error_chain(&e));
                    1
                }
            }
        }
        Command::Serve {
            database_url,
            listen,
            config,
        } => {
            let settings = match Settings::load(
                config.as_deref(),
                |k| std::env::var(k).ok(),
                &Overrides {
                    database_url,
                    listen,
                },
            ) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("sessiond: {e}");
                    return 2;
                }
            };
            crate::telemetry::init(settings.log_format);
            match crate::server::serve(settings).await {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!(error = %error_chain(&e), "sessiond failed");
                    eprintln!("sessiond: {}", error_chain(&e));
                    1
                }
            }
        }
    }
}

/// `outer: inner: root` for an error and its sources.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Prints the scheduler figures with their SPEC §10 targets as a Markdown table.
#[allow(clippy::print_stdout)]
fn print_scheduler_figures(figures: &[crate::bench::scheduler::SchedulerFigure]) {
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

/// Prints bench figures as a Markdown table on stdout.
#[allow(clippy::print_stdout)]
fn print_figures(figures: &[crate::bench::Figure]) {
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
fn print_append_report(report: &crate::bench::AppendReport) {
    use crate::bench::{AppendPath, AppendRatios};
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

/// Parses the command line; a usage error is one line on stderr (`<name>: ...`) and exit
/// code 2, like every other failure. `--help` and `--version` print as usual.
pub fn parse_or_exit<T: Parser>(name: &str) -> T {
    match T::try_parse() {
        Ok(parsed) => parsed,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.trim_start_matches("error: ");
            eprintln!("{name}: {first} (see --help)");
            std::process::exit(2);
        }
    }
}
