//! Abuse limits: a token bucket per API key (429 `rate_limited` with `Retry-After`,
//! nothing changed, other keys untouched, counted in /metrics) and `Idempotency-Key`
//! records purged after their time to live (by the application's clock).

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

use crate::helpers::{both_backends, spawn_app_with_settings, Backend};

fn spec(name: &str) -> Value {
    json!({"name": name, "type": "batch", "image": "python:3.12",
           "resources": {"cpu": "0.5", "mem": "256m"}, "startup_command": "true"})
}

async fn a_key_over_its_rate_gets_429_with_retry_after_and_nothing_changes(backend: Backend) {
    // Given one request per second per key with a burst of 3
    let app = spawn_app_with_settings(
        backend,
        |s| {
            s.rate_limit_per_sec = 1;
            s.rate_limit_burst = 3;
        },
        |_| {},
    )
    .await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;
    let bob = app.user_key("bob").await;

    // When alice enqueues as fast as she can until she is refused (a slow machine may
    // earn a token back meanwhile: what is asserted holds either way)
    let started = std::time::Instant::now();
    let mut accepted: u64 = 0;
    let refused = loop {
        let r = app
            .post(
                "/v1/sessions",
                Some(&alice),
                &spec(&format!("job-{accepted}")),
            )
            .await;
        if r.status != StatusCode::CREATED {
            break r;
        }
        accepted += 1;
        assert!(accepted < 100, "never refused");
    };
    let earned = started.elapsed().as_secs() + 1;

    // Then she spent her burst (plus what the clock gave back), then got 429
    // rate_limited with Retry-After
    assert!(
        (3..=3 + earned).contains(&accepted),
        "{accepted} accepted in {earned} s"
    );
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        refused.body
    );
    assert_eq!(refused.code(), "rate_limited");
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    assert!(
        refused.message().contains("retry in"),
        "{}",
        refused.message()
    );
    // And the refused request enqueued nothing
    assert_eq!(
        app.count_of("SessionEnqueued").await,
        usize::try_from(accepted).unwrap(),
        "a refused request enqueues nothing"
    );

    // And another key still has its whole burst
    for _ in 0..3 {
        assert_eq!(
            app.get("/v1/sessions", Some(&bob)).await.status,
            StatusCode::OK
        );
    }
    // And an unauthenticated request is 401, not counted against anyone
    assert_eq!(
        app.get("/v1/sessions", Some("not-a-key")).await.status,
        StatusCode::UNAUTHORIZED
    );
    // And the refusal is counted
    let metrics = app.metrics_text().await;
    let refused_total: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sessiond_rate_limited_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sessiond_rate_limited_total in:\n{metrics}"));
    assert!(refused_total >= 1.0, "{refused_total}");
    app.stop().await;
}

async fn idempotency_records_are_purged_after_their_time_to_live_and_never_duplicate_a_session(
    backend: Backend,
) {
    // Given a controlled clock and a one-hour time to live
    let clock = sessiond::clock::ManualClock::new(chrono::Utc::now());
    let shared = clock.clone();
    let app = spawn_app_with_settings(
        backend,
        |s| s.idempotency_ttl_secs = 3600,
        |o| o.clock = Some(Arc::new(shared)),
    )
    .await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;
    let post = |name: &'static str| {
        app.client
            .post(app.url("/v1/sessions"))
            .bearer_auth(&alice)
            .header("Idempotency-Key", "nightly-1")
            .json(&spec(name))
            .send()
    };
    let first = post("first").await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    assert!(first["session_id"].is_string(), "{first}");
    let record = || store::idempotency::get(app.app.db(), "user:alice", "nightly-1");

    // When maintenance runs within the time to live, the record stays: a retry replays
    clock.advance(chrono::Duration::minutes(59));
    sessiond::maintenance::run_once(&app.app).await;
    assert!(record().await.unwrap().is_some(), "kept within its TTL");
    let replay = post("first").await.unwrap();
    assert_eq!(replay.status(), StatusCode::CREATED);
    assert_eq!(replay.json::<Value>().await.unwrap(), first);

    // When the time to live has passed and maintenance runs
    clock.advance(chrono::Duration::minutes(2));
    sessiond::maintenance::run_once(&app.app).await;

    // Then the record is gone
    assert!(record().await.unwrap().is_none(), "purged after its TTL");
    // And a late retry cannot create a second session: the session id is derived from
    // the key, so the retry finds the session the key created and answers with it
    let late = post("first").await.unwrap();
    assert_eq!(late.status(), StatusCode::CREATED);
    let late: Value = late.json().await.unwrap();
    assert_eq!(late["session_id"], first["session_id"], "{late}");
    let enqueued = app.count_of("SessionEnqueued").await;
    assert_eq!(enqueued, 1);
    app.stop().await;
}

both_backends!(
    a_key_over_its_rate_gets_429_with_retry_after_and_nothing_changes,
    idempotency_records_are_purged_after_their_time_to_live_and_never_duplicate_a_session,
);

/// Two replicas on one PostgreSQL store whose key watchers never poll (an hour): the
/// revocation must reach the next request by the per-request revision check.
#[allow(clippy::print_stdout)]
async fn a_key_revoked_through_one_replica_is_refused_by_the_next_request_at_every_replica() {
    let slow_poll = |o: &mut sessiond::server::ServeOptions| {
        o.key_poll = Some(std::time::Duration::from_secs(3600))
    };
    let a = spawn_app_with_settings(Backend::Postgres, |_| {}, slow_poll).await;
    let url = a.database_url.clone();
    let b = spawn_app_with_settings(
        Backend::Postgres,
        |s| s.database_url = sessiond::config::DatabaseUrl::new(url),
        slow_poll,
    )
    .await;
    for round in 0..10 {
        // Given a key both replicas have authenticated (and cached)
        let (info, secret) = sessiond::auth::create_key(
            a.app.db(),
            sessiond::auth::Role::User {
                owner: format!("alice{round}"),
            },
            "revocation",
        )
        .await
        .unwrap();
        let key = secret.expose().to_string();
        for replica in [&a, &b] {
            assert_eq!(
                replica.get("/v1/sessions", Some(&key)).await.status,
                StatusCode::OK
            );
        }
        // When it is revoked through replica a's store connection
        sessiond::auth::revoke_key(a.app.db(), &info.id)
            .await
            .unwrap();
        // Then the very next request is refused, at b and at a
        for (name, replica) in [("b", &b), ("a", &a)] {
            let r = replica.get("/v1/sessions", Some(&key)).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "round {round}: replica {name} accepted a revoked key"
            );
        }
    }
    // And concurrent requests share revision checks instead of making one each
    let key = a.user_key("carol").await;
    assert_eq!(
        a.get("/v1/sessions", Some(&key)).await.status,
        StatusCode::OK
    );
    let before = a.app.keys.revision_checks();
    let answers =
        futures::future::join_all((0..64).map(|_| a.get("/v1/sessions", Some(&key)))).await;
    assert!(answers.iter().all(|r| r.status == StatusCode::OK));
    let checks = a.app.keys.revision_checks() - before;
    assert!(
        (1..64).contains(&checks),
        "{checks} checks for 64 concurrent requests"
    );
    println!("64 concurrent requests made {checks} revision checks");
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_revoked_on_postgres_is_refused_by_the_next_request_at_every_replica() {
    a_key_revoked_through_one_replica_is_refused_by_the_next_request_at_every_replica().await
}
