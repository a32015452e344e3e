//! Issue #11: revoking a key ends the streams it opened within a second, on every
//! replica. Two real `sessiond serve` processes share one store; the key is created and
//! revoked by the real `sessionctl`, a third process, as an operator would.

use crate::servers::{sessionctl, Replica};
use futures::StreamExt;
use std::time::{Duration, Instant};
use testkit::db::{fresh_url, Backend};

/// Opens `GET /v1/events/sessions` on `addr` and returns a task that ends (with the
/// instant) when the server closes the stream.
async fn open_stream(
    http: &reqwest::Client,
    addr: &str,
    key: &str,
) -> tokio::task::JoinHandle<Instant> {
    let resp = http
        .get(format!("http://{addr}/v1/events/sessions"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{addr}");
    let mut body = resp.bytes_stream();
    tokio::spawn(async move {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
        Instant::now()
    })
}

// The measured delays are printed for the record (`--nocapture`).
#[allow(clippy::print_stdout)]
async fn revoked_key_loses_streams_on_every_replica(backend: Backend) {
    let url = fresh_url(backend).await;
    let a = Replica::start("replica-a", &url);
    let b = Replica::start("replica-b", &url);
    let key = sessionctl(
        &url,
        &["keys", "create", "--role", "user", "--owner", "alice"],
    );
    let list: serde_json::Value =
        serde_json::from_str(&sessionctl(&url, &["keys", "list", "--json"])).unwrap();
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["owner"] == "alice")
        .and_then(|k| k["id"].as_str())
        .unwrap_or_else(|| panic!("alice's key in {list}"))
        .to_string();
    let http = reqwest::Client::new();
    let on_a = open_stream(&http, &a.addr(), &key).await;
    let on_b = open_stream(&http, &b.addr(), &key).await;

    sessionctl(&url, &["keys", "revoke", &id]);
    let revoked = Instant::now();
    for (name, stream) in [("replica-a", on_a), ("replica-b", on_b)] {
        let ended = tokio::time::timeout(Duration::from_secs(1), stream)
            .await
            .unwrap_or_else(|_| {
                panic!("[{backend:?}] {name}: stream still open 1 s after revocation")
            })
            .unwrap();
        println!(
            "[{backend:?}] {name}: stream ended {:?} after the revocation",
            ended.saturating_duration_since(revoked)
        );
    }
    for replica in [&a, &b] {
        let r = http
            .get(format!("http://{}/v1/sessions", replica.addr()))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{}", replica.name);
    }
}

#[tokio::test]
async fn a_key_revoked_by_sessionctl_loses_its_streams_on_every_postgres_replica() {
    revoked_key_loses_streams_on_every_replica(Backend::Postgres).await;
}

#[tokio::test]
async fn a_key_revoked_by_sessionctl_loses_its_streams_on_every_sqlite_replica() {
    revoked_key_loses_streams_on_every_replica(Backend::Sqlite).await;
}
