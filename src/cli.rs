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
    /// Run an agent: register with a server, run the sessions placed on it as local
    /// processes (or simulate them), report their progress (SPEC §9).
    Agent(AgentArgs),
    /// A demonstration in a temporary directory: a server on the embedded store, two
    /// scaling groups, three agents (two running real processes, one simulated) and a
    /// workload, with a live view; Ctrl-C ends it.
    Demo {
        /// Print the view as lines instead of redrawing the terminal.
        #[arg(long)]
        no_tui: bool,
        /// Stop after this many seconds (default: at Ctrl-C).
        #[arg(long)]
        duration: Option<u64>,
    },
}

/// Options of `sessiond agent`.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The server's base URL.
    #[arg(long, env = "SESSIOND_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// The agent's API key (`sessionctl keys create --role agent --agent-id ID`).
    #[arg(long, env = "SESSIOND_KEY", hide_env_values = true)]
    pub key: String,
    /// This agent's id.
    #[arg(long)]
    pub agent_id: String,
    /// The scaling group it serves (must exist).
    #[arg(long)]
    pub scaling_group: String,
    /// Its capacity, e.g. `cpu=4,mem=8g,cuda.device=1`.
    #[arg(long)]
    pub slots: String,
    /// Where each session's directory (`<work-dir>/<session_id>/`, with `stdout.log`
    /// and `stderr.log`) goes [default: `./sessiond-agent-AGENT_ID`].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub heartbeat_secs: u64,
    /// Seconds between SIGTERM and SIGKILL when a session is stopped.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub stop_grace_secs: u64,
    /// The address it registers with [default: the host name].
    #[arg(long)]
    pub addr: Option<String>,
    /// Run no process: report each step after `--step-delay-ms`, and end a batch
    /// session with exit code 0 after `--run-ms` (for demos and load tests).
    #[arg(long)]
    pub simulate: bool,
    /// With --simulate: milliseconds between two progress reports.
    #[arg(long, default_value_t = 200, requires = "simulate")]
    pub step_delay_ms: u64,
    /// With --simulate: milliseconds a batch session runs.
    #[arg(long, default_value_t = 1000, requires = "simulate")]
    pub run_ms: u64,
}

impl AgentArgs {
    /// The agent's configuration; a usage error as a message.
    pub fn config(self) -> Result<crate::agent::AgentConfig, String> {
        use std::time::Duration;
        let slots = crate::agent::parse_slots(&self.slots).map_err(|e| format!("--slots: {e}"))?;
        let addr = match self.addr {
            Some(a) => a,
            None => std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into()),
        };
        let work_dir = self
            .work_dir
            .unwrap_or_else(|| PathBuf::from(format!("sessiond-agent-{}", self.agent_id)));
        Ok(crate::agent::AgentConfig {
            server: self.server,
            key: secrecy::SecretString::from(self.key),
            agent_id: self.agent_id,
            scaling_group: self.scaling_group,
            slots,
            addr,
            work_dir,
            heartbeat: Duration::from_secs(self.heartbeat_secs),
            stop_grace: Duration::from_secs(self.stop_grace_secs),
            simulate: self.simulate.then(|| crate::agent::Simulation {
                step: Duration::from_millis(self.step_delay_ms),
                run: Duration::from_millis(self.run_ms),
            }),
        })
    }
}

/// A watch that turns true on SIGTERM or SIGINT (for the long-running subcommands).
pub fn shutdown_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = tx.send(true);
    });
    rx
}

/// Parses arguments and runs the chosen subcommand; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    match cli.command {
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
                    tracing::error!(error = %crate::telemetry::error_chain(&e), "sessiond failed");
                    eprintln!("sessiond: {}", crate::telemetry::error_chain(&e));
                    1
                }
            }
        }
        Command::Agent(args) => run_agent(args).await,
        Command::Demo { no_tui, duration } => {
            crate::telemetry::init_with_default(crate::config::LogFormat::Pretty, "warn");
            let options = crate::demo::DemoOptions {
                no_tui,
                duration: duration.map(std::time::Duration::from_secs),
            };
            match crate::demo::run(options, shutdown_signal()).await {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("sessiond demo: {}", crate::telemetry::error_chain(&e));
                    1
                }
            }
        }
    }
}

/// `sessiond agent`: runs until SIGTERM / SIGINT.
async fn run_agent(args: AgentArgs) -> i32 {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sessiond: {e}");
            return 2;
        }
    };
    crate::telemetry::init(crate::config::LogFormat::Pretty);
    match crate::agent::run(config, shutdown_signal()).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("sessiond agent: {}", crate::telemetry::error_chain(&e));
            1
        }
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
