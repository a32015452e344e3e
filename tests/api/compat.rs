//! Backend.AI compatibility over the real application (SPEC §13, issue #14): the version
//! handshake, and signed requests refused (401, JSON, nothing changed) for a revoked
//! keypair and for a request that carries two credentials; bearer keys unchanged. The
//! real SDK's contract test is `scripts/compat`.

use reqwest::StatusCode;
use serde_json::Value;
use sessiond::compat::signature::Signed;

use crate::helpers::{both_backends, spawn_app_with_settings, Backend, TestApp};

const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

async fn app(backend: Backend) -> TestApp {
    spawn_app_with_settings(
        backend,
        |s| s.secret_key = Some(sessiond::config::SecretText::new(KEK)),
        |_| {},
    )
    .await
}

async fn signed_get(
    app: &TestApp,
    path: &str,
    ak: &str,
    sk: &str,
    extra_auth: Option<&str>,
) -> (StatusCode, Value) {
    let host = app.base.trim_start_matches("http://").to_string();
    let now = chrono::Utc::now();
    let date = now.to_rfc3339();
    let s = Signed {
        method: "GET",
        path_and_query: path,
        date_header: &date,
        host: &host,
        content_type: None,
        api_version: "v8.20240915",
    };
    let sig = s.signature(sk, now);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.append("date", date.parse().unwrap());
    headers.append("x-backendai-version", "v8.20240915".parse().unwrap());
    headers.append(
        "authorization",
        format!("BackendAI signMethod=HMAC-SHA256, credential={ak}:{sig}")
            .parse()
            .unwrap(),
    );
    if let Some(extra) = extra_auth {
        headers.append("authorization", extra.parse().unwrap());
    }
    let r = app
        .client
        .get(app.url(path))
        .headers(headers)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn signed_requests_map_to_roles_and_every_refusal_is_401_with_json(backend: Backend) {
    let app = app(backend).await;
    // The handshake: no key needed.
    let hello = app.get("/", None).await;
    assert_eq!(hello.status, StatusCode::OK);
    assert_eq!(hello.body["version"], "v8.20240915");
    assert!(hello.body["manager"]
        .as_str()
        .unwrap()
        .starts_with("sessiond "));

    let kek = app.app.kek.clone().expect("a key-encryption key");
    let pair = sessiond::auth::create_keypair(
        app.app.db(),
        &kek,
        sessiond::auth::Role::User {
            owner: "alice".into(),
        },
        "",
    )
    .await
    .unwrap();
    let (ak, sk) = (
        pair.access_key.clone(),
        pair.secret_key.expose().to_string(),
    );
    let (status, body) = signed_get(&app, "/v1/vfolders", &ak, &sk, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A keypair is never a bearer key: neither its access key nor its secret works so.
    for presented in [&ak, &sk] {
        assert_eq!(
            app.get("/v1/vfolders", Some(presented)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Two credentials in one request.
    let alice = app.user_key("alice").await;
    let (status, body) = signed_get(
        &app,
        "/v1/vfolders",
        &ak,
        &sk,
        Some(&format!("Bearer {alice}")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    // A bearer key keeps working unchanged.
    assert_eq!(
        app.get("/v1/vfolders", Some(&alice)).await.status,
        StatusCode::OK
    );
    // Revoked: 401 from now on.
    let events = app.event_count().await;
    sessiond::auth::revoke_key(app.app.db(), &pair.info.id)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, body) = signed_get(&app, "/v1/vfolders", &ak, &sk, None).await;
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(body["error"]["code"], "unauthorized");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still accepted after revocation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(app.event_count().await, events, "refusals change nothing");
    app.stop().await;
}

both_backends!(signed_requests_map_to_roles_and_every_refusal_is_401_with_json);
