//! One HTTP call to a running server, for the tests that drive a real process.

use reqwest::StatusCode;
use serde_json::Value;

/// Sends `method url` with the bearer `key` and an optional JSON `body`; answers the
/// status and the JSON body (`Null` when there is none).
///
/// # Panics
/// When the request cannot be sent (the server under test is gone).
#[allow(clippy::expect_used)]
pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = client.request(method, url).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("the request is sent");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}
