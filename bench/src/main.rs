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
//! - [`clone`]: the vfolder clone through the in-process HTTP server against `cp -a` of
//!   the same tree (`clone`), and API latency idle vs during a clone against the
//!   original design's copy inside one transaction (`clone-latency`); the baseline's
//!   own tables (`sql/*/clone/`).
//! - [`webhooks`]: webhook delivery through the in-process server to a loopback
//!   receiver: deliveries/s (a backlog drained, and changes produced while delivering,
//!   beside the rate they were produced at) and, at a steady 100 status changes/s, the
//!   latency from commit to receipt (`webhooks`).
//! - [`agents`]: simulated agents (the real `sessiond::agent` client, `--simulate` with
//!   zero delays) and batch sessions through their whole lifecycle over HTTP: sessions
//!   completed per second and the enqueue -> RUNNING latency (`agents`).
//! - [`snapshots`]: one command on an agent whose stream holds 1k, 10k and 100k
//!   events, without snapshots (every command folds the stream) and with them.
//! - [`http`]: a real `sessiond serve` child under a keep-alive load generator (POST,
//!   GET by id, a PENDING list) against the in-process append path of the same run,
//!   and POST again after 100k PENDING sessions (`http`).
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

mod agents;
mod append;
mod catchup;
mod clone;
mod error;
mod http;
mod progress;
mod report;
mod scheduler;
mod snapshots;
mod webhooks;

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
    /// A vfolder clone through the HTTP API vs `cp -a` of the same tree, alternately.
    Clone(clone::CloneArgs),
    /// API p99 idle vs during a clone; baseline: writers vs a copy inside one open
    /// transaction.
    CloneLatency(clone::CloneLatencyArgs),
    /// Webhook deliveries/s to a loopback receiver, and commit-to-receipt latency at a
    /// steady 100 status changes/s.
    Webhooks(webhooks::WebhooksArgs),
    /// One command on an agent stream of 1k/10k/100k events, without and with
    /// snapshots.
    Snapshots(snapshots::SnapshotsArgs),
    /// Simulated agents and batch sessions through their whole lifecycle over HTTP:
    /// sessions completed per second, enqueue -> RUNNING latency.
    Agents(agents::AgentsArgs),
    /// A real `sessiond serve` under a keep-alive load generator: POST, GET by id and a
    /// PENDING list at 1/4/16 clients against the in-process append path, and POST after
    /// 100k PENDING sessions (the slope).
    Http(http::HttpArgs),
}

impl Scenario {
    /// Whether it runs the HTTP server in-process (whose one log line per request
    /// would flood stderr).
    fn serves_http(&self) -> bool {
        matches!(
            self,
            Scenario::Clone(_)
                | Scenario::CloneLatency(_)
                | Scenario::Webhooks(_)
                | Scenario::Agents(_)
        )
    }
}

fn main() {
    let cli = sessiond::cli::parse_or_exit::<Cli>("sessiond-bench");
    if cli.scenario.serves_http() && std::env::var_os("RUST_LOG").is_none() {
        // Before any thread exists. The server logs one INFO line per request (the
        // clone scenarios send tens of thousands) and one per scheduler pass and sweep.
        std::env::set_var("RUST_LOG", "warn");
    }
    sessiond::telemetry::init(LogFormat::Pretty);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sessiond-bench: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(run(cli));
}

/// `run`, or an error once Ctrl-C (SIGINT) arrives: `run` is dropped then, and with it
/// whatever it holds (servers, pools, scratch directories).
async fn interruptible<T>(
    run: impl std::future::Future<Output = Result<T, error::BenchError>>,
) -> Result<T, error::BenchError> {
    tokio::select! {
        outcome = run => outcome,
        _ = tokio::signal::ctrl_c() => Err(error::BenchError::Other("interrupted".into())),
    }
}

async fn run(cli: Cli) {
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
        // Interrupted, these drop their run, which removes its trees (GiBs under the
        // temporary directory).
        Scenario::Clone(args) => interruptible(clone::clone(&args))
            .await
            .map(|report| report::print_clone_report(&report)),
        Scenario::CloneLatency(args) => interruptible(clone::clone_latency(&args))
            .await
            .map(|report| report::print_clone_latency_report(&report)),
        Scenario::Webhooks(args) => interruptible(webhooks::webhooks(&args))
            .await
            .map(|report| report::print_webhooks_report(&report)),
        Scenario::Snapshots(args) => snapshots::snapshots(&args)
            .await
            .map(|report| report::print_snapshots_report(&report)),
        Scenario::Agents(args) => interruptible(agents::agents(&args))
            .await
            .map(|report| report::print_agents_report(&report)),
        Scenario::Http(args) => interruptible(http::http(&args))
            .await
            .map(|report| report::print_http_report(&report)),
    };
    if let Err(e) = outcome {
        eprintln!("sessiond-bench: {}", error_chain(&e));
        std::process::exit(1);
    }
}
