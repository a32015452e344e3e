//! The `sessiond` binary: parses arguments and calls into the library.

use clap::Parser;

#[tokio::main]
async fn main() {
    let code = sessiond::cli::run(sessiond::cli::Cli::parse()).await;
    std::process::exit(code);
}
