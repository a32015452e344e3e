//! Extractors that answer in our error format: a strict JSON body extractor (415 unless
//! `Content-Type: application/json`, 413 over the limit, 400 for invalid JSON, duplicate
//! keys or a body that is not an object, 422 for unknown fields / wrong types naming
//! the field), a query-string extractor (422 naming the parameter), the authenticated
//! caller (401), and the `?min_position=` consistency wait.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::fmt;
use std::time::Duration;

use super::error::{ApiError, ErrorCode};
use super::AppState;
use crate::auth::{Principal, Role};

/// Request bodies above this many bytes are answered 413 (SPEC §4: 1 MiB).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A JSON request body, deserialised into `T`. Commands use
/// `#[serde(deny_unknown_fields)]`, so an unknown field is a 422 naming it.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

/// A JSON request body kept as a value (an object), for handlers that need the body
/// itself too (the idempotency hash) before they deserialise it with [`from_value`].
#[derive(Debug, Clone)]
pub struct JsonObject(pub Value);

/// Whether the request declares a JSON body: `application/json`, optionally with
/// `charset=utf-8`. Anything else (no header, `text/plain`, `application/*+json`, another
/// charset) is 415: a body is parsed only as what it says it is.
fn json_content_type(req: &Request) -> bool {
    let Some(ct) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(ct) = ct.to_str() else { return false };
    let mut parts = ct.split(';');
    let essence = parts.next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return false;
    }
    parts.all(|p| {
        let p = p.trim();
        p.is_empty()
            || p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("charset")
                    && v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            })
    })
}

async fn read_object<S: Send + Sync>(req: Request, state: &S) -> Result<Value, ApiError> {
    if !json_content_type(&req) {
        return Err(ApiError::unsupported_media_type());
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(BODY_LIMIT)
        } else {
            ApiError::bad_request(format!("cannot read the request body: {}", r.body_text()))
        }
    })?;
    parse_object(&bytes)
}

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let value = read_object(req, state).await?;
        from_value(value).map(Json)
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_object(req, state).await.map(JsonObject)
    }
}

/// Parses a body that must be one JSON object: syntax errors, duplicate keys (at any
/// depth) and any other top-level value are 400.
pub fn parse_object(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::malformed_json(
            "the request body is empty; expected a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue::deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v.0))
        .map_err(|e| {
            ApiError::malformed_json(format!("the request body is not valid JSON: {e}"))
        })?;
    if !value.is_object() {
        return Err(ApiError::malformed_json(
            "the request body must be a JSON object",
        ));
    }
    Ok(value)
}

/// A JSON value whose objects never repeat a key (serde_json keeps the last one, which
/// would let `{"cpu": 1, "cpu": 1000}` mean something the client did not see).
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<StrictValue, E> {
        serde_json::Number::from_f64(v)
            .map(|n| StrictValue(Value::Number(n)))
            .ok_or_else(|| E::custom("a number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }

    fn visit_none<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(StrictValue(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictValue, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key '{key}'")));
            }
            let StrictValue(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(StrictValue(Value::Object(out)))
    }
}

/// Deserialises an already parsed body; shape errors are 422 naming the field.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        ApiError::validation_message(if path == "." || path.is_empty() {
            inner
        } else {
            format!("{path}: {inner}")
        })
    })
}

/// Query-string parameters; a malformed parameter is a 422 naming it.
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                ApiError::validation_message(if path == "." || path.is_empty() {
                    format!("query: {inner}")
                } else {
                    format!("{path}: {inner}")
                })
            })
    }
}

/// The authenticated caller (`Authorization: Bearer <key>`); 401 otherwise.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(Caller(p.clone()));
        }
        if parts.headers.get_all(header::AUTHORIZATION).iter().count() > 1 {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "one Authorization header: a bearer key or a BackendAI signature, not both",
            ));
        }
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::unauthorized())?;
        if crate::compat::signature::is_signature(header) {
            let principal = crate::compat::auth::authenticate_signed(state, parts, header).await?;
            tracing::Span::current().record("key_id", principal.key_id.as_str());
            state.rate.check(&principal.key_id)?;
            parts.extensions.insert(principal.clone());
            return Ok(Caller(principal));
        }
        let (scheme, key) = header.split_once(' ').ok_or(ApiError::unauthorized())?;
        if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
            return Err(ApiError::unauthorized());
        }
        let principal = state
            .app
            .keys
            .authenticate(key.trim())
            .await
            .map_err(|e| match e {
                crate::auth::KeyError::Database(db) => ApiError::from(db),
                other => ApiError::internal(other),
            })?
            .ok_or(ApiError::unauthorized())?;
        // Once per request: the principal is cached in the extensions below.
        tracing::Span::current().record("key_id", principal.key_id.as_str());
        state.rate.check(&principal.key_id)?;
        parts.extensions.insert(principal.clone());
        Ok(Caller(principal))
    }
}

impl Caller {
    /// 403 unless admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.0.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs an admin key"))
        }
    }

    /// 403 for agent keys (user endpoints).
    pub fn require_user_or_admin(&self) -> Result<(), ApiError> {
        match self.0.role {
            Role::Agent { .. } => Err(ApiError::forbidden(
                "agent keys may only use the agent endpoints",
            )),
            _ => Ok(()),
        }
    }

    /// 403 unless admin or the agent key bound to `agent_id`.
    pub fn require_agent(&self, agent_id: &str) -> Result<(), ApiError> {
        match &self.0.role {
            Role::Admin => Ok(()),
            Role::Agent { agent_id: mine } if mine == agent_id => Ok(()),
            Role::Agent { .. } => Err(ApiError::forbidden("this key is bound to another agent")),
            Role::User { .. } => Err(ApiError::forbidden("this needs an agent key")),
        }
    }
}

/// `?min_position=<token>` of any GET.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct MinPosition {
    /// A `position` returned by an earlier command.
    pub min_position: Option<i64>,
}

impl MinPosition {
    /// Waits (bounded) until the read models `models` include `min_position`
    /// (read-your-writes); only the models the endpoint reads. An unknown position is
    /// 422; not reaching it in time is 503 `not_caught_up`.
    pub async fn wait(self, state: &AppState, models: &[&str]) -> Result<(), ApiError> {
        let Some(position) = self.min_position else {
            return Ok(());
        };
        if position < 0 {
            return Err(ApiError::validation(
                "min_position",
                "must be a position >= 0",
            ));
        }
        if position == 0 {
            return Ok(());
        }
        if state.app.db().position_of(position).await?.is_none() {
            return Err(ApiError::validation(
                "min_position",
                format!("no event at position {position}"),
            ));
        }
        if state
            .app
            .wait_for_position(models, position, state.config.min_position_timeout)
            .await?
        {
            Ok(())
        } else {
            Err(ApiError::not_caught_up(position))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for MinPosition {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        #[derive(Deserialize)]
        struct Only {
            min_position: Option<i64>,
        }
        let Query(Only { min_position }) = Query::<Only>::from_request_parts(parts, state).await?;
        Ok(MinPosition { min_position })
    }
}

/// The bounded wait of `?min_position` (SPEC §4: default 5 s).
pub const DEFAULT_MIN_POSITION_TIMEOUT: Duration = Duration::from_secs(5);

/// A whole number from a JSON number: an integer, or a float with no fraction (JSON
/// Schema's `integer` includes `5.0`). The error names `field`.
pub fn integer(field: &str, n: &serde_json::Number) -> Result<i128, ApiError> {
    if let Some(i) = n.as_i64() {
        return Ok(i128::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Ok(i128::from(u));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e30 => {
            // In range of i128 and whole: the conversion is exact enough for a bound check.
            #[allow(clippy::cast_possible_truncation)]
            Ok(f as i128)
        }
        _ => Err(ApiError::validation(field, "must be a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_key_at_any_depth_is_malformed() {
        for body in [
            r#"{"name":"a","name":"b"}"#,
            r#"{"resources":{"cpu":1,"cpu":1000}}"#,
            r#"{"a":[{"x":1,"x":2}]}"#,
        ] {
            assert!(
                matches!(parse_object(body.as_bytes()), Err(e) if e.code == super::super::error::ErrorCode::MalformedJson),
                "{body}"
            );
        }
    }

    #[test]
    fn anything_but_one_object_is_malformed() {
        for body in ["[\"x\"]", "[5,5,null]", "3", "\"s\"", "null", "{} {}", ""] {
            assert!(
                matches!(parse_object(body.as_bytes()), Err(e) if e.code == super::super::error::ErrorCode::MalformedJson),
                "{body}"
            );
        }
        assert!(parse_object(br#"{"a": {"b": [1, 2.5, "x", null, true]}}"#).is_ok());
    }

    #[test]
    fn whole_floats_are_integers_and_fractions_are_not() {
        let n = |s: &str| serde_json::from_str::<serde_json::Number>(s).unwrap();
        assert_eq!(integer("f", &n("5")).ok(), Some(5));
        assert_eq!(integer("f", &n("5.0")).ok(), Some(5));
        assert!(integer("f", &n("5.5")).is_err());
        assert_eq!(
            integer("f", &n("18446744073709551615")).ok(),
            Some(i128::from(u64::MAX))
        );
    }
}
