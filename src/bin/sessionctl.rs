//! The `sessionctl` binary: parses arguments and calls into the library.

#[tokio::main]
async fn main() {
    let code = sessiond::ctl::run(sessiond::cli::parse_or_exit::<sessiond::ctl::Ctl>(
        "sessionctl",
    ))
    .await;
    std::process::exit(code);
}
