//! `Idempotency-Key` records (POST /v1/sessions).
//!
//! The first request with a key claims it by inserting a row (in flight). A retry with
//! the same key and the same body (compared by the SHA-256 of its canonical JSON) gets
//! the first response back and creates nothing; while the first request still runs,
//! the retry waits for it. The same key with another body is refused. The claim is a
//! primary-key insert, so of two concurrent requests exactly one runs the command,
//! on either backend.
//!
//! Keys are scoped per caller (`user:<owner>`, `admin`): two users may use the same key.
//!
//! The protocol for a handler is two calls: [`begin`] (claim, or replay, or wait for the
//! request holding the key, bounded) and [`finish`] (record the response, or give the
//! key up after a transient failure so a retry runs afresh).

use chrono::{Duration, SecondsFormat, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use store::db::Db;

/// The session id an idempotent enqueue creates: derived from the key's scope and the
/// key (SHA-256, shaped as a version-8 UUID), so every attempt of one request targets
/// the same session and a retry after a crash cannot create a second one.
pub fn session_id_for(scope: &str, key: &str) -> uuid::Uuid {
    let digest = Sha256::digest(format!("sessiond.enqueue\0{scope}\0{key}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Longest accepted `Idempotency-Key`.
pub const MAX_KEY_LEN: usize = 255;

/// Hex SHA-256 of the canonical form of a JSON body (object keys sorted at every level,
/// no insignificant whitespace), so a re-serialised identical body matches.
pub fn request_hash(body: &Value) -> String {
    let mut text = String::new();
    canonical(body, &mut text);
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Claims `key` in `scope` for a request whose body hashes to `hash` (`None`: taken and
/// then released meanwhile: try again). A record left in
/// flight for longer than `stale_after` (its holder died) is taken over.
async fn claim(
    db: &Db,
    scope: &str,
    key: &str,
    hash: &str,
    stale_after: Duration,
) -> Result<Option<Begin>, sqlx::Error> {
    let request_id = uuid::Uuid::new_v4().to_string();
    if store::idempotency::claim(db, scope, key, hash, &request_id, &now()).await? {
        return Ok(Some(Begin::Run { request_id }));
    }
    inspect(db, scope, key, hash, stale_after).await
}

/// What became of a key someone else holds, without trying to claim it (a read; only a
/// stale record is written, to take it over). `None`: there is no record.
async fn inspect(
    db: &Db,
    scope: &str,
    key: &str,
    hash: &str,
    stale_after: Duration,
) -> Result<Option<Begin>, sqlx::Error> {
    let row = store::idempotency::get(db, scope, key).await?;
    let Some((stored_hash, holder, status, response, created_at)) = row else {
        return Ok(None);
    };
    if stored_hash != hash {
        return Ok(Some(Begin::Mismatch));
    }
    if let (Some(status), Some(body)) = (status, response) {
        return Ok(Some(Begin::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body,
        }));
    }
    let stale = chrono::DateTime::parse_from_rfc3339(&created_at)
        .map(|t| Utc::now().signed_duration_since(t.with_timezone(&Utc)) > stale_after)
        .unwrap_or(false);
    if stale {
        let request_id = uuid::Uuid::new_v4().to_string();
        if store::idempotency::take_over(db, scope, key, &holder, &request_id, &now()).await? {
            tracing::warn!(scope, key, "took over an idempotency key left in flight");
            return Ok(Some(Begin::Run { request_id }));
        }
    }
    Ok(Some(Begin::StillRunning))
}

/// Stores the response of the request holding the key; retries get it from now on.
pub async fn complete(
    db: &Db,
    scope: &str,
    key: &str,
    request_id: &str,
    status: u16,
    body: &str,
) -> Result<(), sqlx::Error> {
    store::idempotency::complete(db, scope, key, request_id, i64::from(status), body, &now()).await
}

/// Gives the key up without a response (the command failed in a way a retry may not
/// repeat, e.g. the store was unavailable): the next request with it runs afresh.
pub async fn release(db: &Db, scope: &str, key: &str, request_id: &str) -> Result<(), sqlx::Error> {
    store::idempotency::release(db, scope, key, request_id).await
}

/// Purges the records older than `ttl` at `now` (the maintenance worker calls it with
/// the application's clock and `Settings::idempotency_ttl_secs`); returns how many went.
pub async fn purge_expired(
    db: &Db,
    now: chrono::DateTime<Utc>,
    ttl: std::time::Duration,
) -> Result<u64, sqlx::Error> {
    let ttl = Duration::from_std(ttl).unwrap_or(Duration::MAX);
    let Some(before) = now.checked_sub_signed(ttl) else {
        return Ok(0);
    };
    store::idempotency::purge(db, &before.to_rfc3339_opts(SecondsFormat::Millis, true)).await
}

/// Longest time a record may stay in flight before its holder is presumed dead and a
/// retry takes it over. Short on purpose: taking over from a holder that is merely slow
/// is safe, because both target the session id derived from the key (the second append
/// is `AlreadyExists` and answered with the session), while a holder that died (its
/// replica was killed) would otherwise make every retry wait and fail for this long.
pub const STALE_AFTER: Duration = Duration::seconds(5);

/// What [`begin`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// Run the command; then call [`finish`] with this request id.
    Run {
        /// The holder's id (use it as the correlation id of the events).
        request_id: String,
    },
    /// Answer this stored response.
    Replay {
        /// Its status code.
        status: u16,
        /// Its JSON body.
        body: String,
    },
    /// The key was used with another body.
    Mismatch,
    /// The first request with the key is still running after `wait`.
    StillRunning,
}

/// How a request holding a key ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Store this response; retries get it.
    Record {
        /// Status code.
        status: u16,
        /// JSON body.
        body: String,
    },
    /// A transient failure: give the key up, the next request runs afresh.
    Release,
}

/// Claims `key` in `scope` for a request whose body hashes to `hash`, or finds what
/// became of an earlier request with it, waiting (polling, bounded by `wait`) while that
/// one still runs.
pub async fn begin(
    db: &Db,
    scope: &str,
    key: &str,
    hash: &str,
    wait: std::time::Duration,
) -> Result<Begin, sqlx::Error> {
    let deadline = crate::clock::deadline_in(wait);
    let mut outcome = claim(db, scope, key, hash, STALE_AFTER).await?;
    loop {
        match outcome {
            // The holder is gone (it released the key): claim it again.
            None => outcome = claim(db, scope, key, hash, STALE_AFTER).await?,
            Some(Begin::StillRunning) => {
                if tokio::time::Instant::now() >= deadline {
                    return Ok(Begin::StillRunning);
                }
                // Poll interval of a bounded wait for the holder's response.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                outcome = inspect(db, scope, key, hash, STALE_AFTER).await?;
            }
            Some(decided) => return Ok(decided),
        }
    }
}

/// Ends the request holding `key`: records its response or releases the key.
pub async fn finish(
    db: &Db,
    scope: &str,
    key: &str,
    request_id: &str,
    how: Finish,
) -> Result<(), sqlx::Error> {
    match how {
        Finish::Record { status, body } => {
            complete(db, scope, key, request_id, status, &body).await
        }
        Finish::Release => release(db, scope, key, request_id).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_hash_ignores_key_order_and_whitespace_but_not_values() {
        let a = request_hash(&json!({"name": "a", "resources": {"cpu": 1, "mem": "1g"}}));
        let b: Value =
            serde_json::from_str(r#"{ "resources": {"mem":"1g","cpu":1}, "name":"a" }"#).unwrap();
        assert_eq!(a, request_hash(&b));
        assert_ne!(
            a,
            request_hash(&json!({"name": "b", "resources": {"cpu": 1, "mem": "1g"}}))
        );
    }
}
