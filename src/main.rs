//! The `sessiond` binary: parses arguments and calls into the library.

#[tokio::main]
async fn main() {
    let code = sessiond::cli::run(sessiond::cli::parse_or_exit::<sessiond::cli::Cli>(
        "sessiond",
    ))
    .await;
    std::process::exit(code);
}
