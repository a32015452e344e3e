//! `sessiond-bench`: the benchmark harness of sessiond. Every figure is measured against
//! a baseline in the same run, on the same database, and reported as a ratio (or against
//! its SPEC §10 target); results are Markdown tables on stdout, progress and logs go to
//! stderr. `scripts/bench` runs every scenario on both backends; docs/PERFORMANCE.md
//! records the results.
//!
//! Each scenario runs on a fresh, empty database (it refuses one that holds events) and
//! writes to it. The `sessiond` binary ships none of this.
//!
//! Exit codes: 0 when the scenario ran (a target not reached is reported, not a
//! failure), 1 when it failed, 2 on a usage error.
//!
//! # Layout
//! - [`catchup`]: projection catch-up and rebuild of the `sessions` read model vs. the
//!   raw global-log read.
//! - [`append`]: the command append path (raw INSERT, plain cqrs-es, sessiond) and the
//!   mutable status row under SERIALIZABLE, at 1/4/16 concurrent clients; the bench's
//!   own baseline table (`sql/*/schema.sql`).
//! - [`scheduler`]: one scheduling pass (10k pending onto 1k agents) and one
//!   pending-timeout sweep (100k pending, 1k expired).
//! - [`report`]: the Markdown printers.
//! - [`error`]: `BenchError`, why a scenario failed.
//! - [`progress`]: progress bars on stderr.
//!
//! Every SQL statement of the bench is a file under `sql/` (`common/`, `postgres/`,
//! `sqlite/`), loaded with `store::sql!`.

// The bench computes figures of its own runs (counts, rates, ratios, percentiles) from
// sizes it chose itself; no input reaches that arithmetic, so overflow checks would only
// obscure it.
#![allow(clippy::arithmetic_side_effects)]

mod append;
mod catchup;
mod error;
mod progress;
mod report;
mod scheduler;

use clap::{Parser, Subcommand};
use sessiond::config::LogFormat;
use sessiond::telemetry::error_chain;

/// sessiond-bench: run a benchmark scenario of sessiond against an empty database and
/// print a Markdown table.
#[derive(Debug, Parser)]
#[command(name = "sessiond-bench", version, about)]
struct Cli {
    /// The scenario.
    #[command(subcommand)]
    scenario: Scenario,
}

/// Benchmark scenarios.
#[derive(Debug, Subcommand)]
enum Scenario {
    /// Projection catch-up and rebuild of the sessions read model vs. the raw log read.
    Catchup(catchup::CatchupArgs),
    /// The command append path (raw INSERT, plain cqrs-es, sessiond) and the mutable
    /// status row under SERIALIZABLE, at 1/4/16 concurrent clients.
    Append(append::AppendArgs),
    /// One scheduling pass (10k pending onto 1k agents) and one pending-timeout sweep
    /// (100k pending, 1k expired).
    Scheduler(scheduler::SchedulerArgs),
}

#[tokio::main]
async fn main() {
    let cli = sessiond::cli::parse_or_exit::<Cli>("sessiond-bench");
    sessiond::telemetry::init(LogFormat::Pretty);
    let outcome = match cli.scenario {
        Scenario::Catchup(args) => catchup::catchup(&args)
            .await
            .map(|figures| report::print_catchup_figures(&figures)),
        Scenario::Append(args) => append::append(&args)
            .await
            .map(|report| report::print_append_report(&report)),
        Scenario::Scheduler(args) => scheduler::scheduler(&args)
            .await
            .map(|figures| report::print_scheduler_figures(&figures)),
    };
    if let Err(e) = outcome {
        eprintln!("sessiond-bench: {}", error_chain(&e));
        std::process::exit(1);
    }
}
