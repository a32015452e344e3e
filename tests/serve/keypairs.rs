//! Keypairs on PostgreSQL need the key-encryption key (SPEC §13): `sessionctl keys
//! create --keypair` refuses without it, and `sessiond serve` on a store that holds
//! keypairs refuses to start without it, in one line; with it, both work.

use std::process::Command;
use testkit::db::{fresh_url, Backend};

use super::{start_with, temp_dir};

const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn sessionctl(url: &str, kek: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sessionctl"));
    c.arg("--database-url")
        .arg(url)
        .args(args)
        .env_remove("SESSIOND_SECRET_KEY");
    if let Some(k) = kek {
        c.env("SESSIOND_SECRET_KEY", k);
    }
    c.output().unwrap()
}

#[tokio::test]
async fn on_postgres_keypairs_need_the_secret_key_at_creation_and_at_start_up() {
    let url = fresh_url(Backend::Postgres).await;
    let create = [
        "keys",
        "create",
        "--role",
        "user",
        "--owner",
        "alice",
        "--keypair",
        "--json",
    ];
    let refused = sessionctl(&url, None, &create);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("SESSIOND_SECRET_KEY"), "{err}");
    let made = sessionctl(&url, Some(KEK), &create);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let pair: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    assert!(pair["access_key"].as_str().unwrap().starts_with("AKIA"));
    assert_eq!(pair["secret_key"].as_str().unwrap().len(), 40);

    let cwd = temp_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args(["serve", "--database-url", &url, "--listen", "127.0.0.1:0"])
        .current_dir(&cwd)
        .env_remove("SESSIOND_SECRET_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("sessiond: "))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("secret_key"), "{err}");

    let mut with_key = Command::new(env!("CARGO_BIN_EXE_sessiond"));
    with_key.env("SESSIOND_SECRET_KEY", KEK);
    let server = start_with(
        with_key,
        &["serve", "--database-url", &url, "--listen", "127.0.0.1:0"],
        &cwd,
    );
    drop(server);
}
