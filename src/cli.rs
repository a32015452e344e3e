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
