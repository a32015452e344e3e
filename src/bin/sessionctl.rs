//! The `sessionctl` binary: parses arguments and calls into the library.

use clap::Parser;

#[tokio::main]
async fn main() {
    let code = sessiond::ctl::run(sessiond::ctl::Ctl::parse()).await;
    std::process::exit(code);
}
