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
