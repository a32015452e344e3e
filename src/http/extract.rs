//! Extractors that answer in our error format: a JSON body extractor (400 malformed,
//! 413 over the limit, 415 not JSON, 422 unknown fields / wrong types naming the
//! field), a query-string extractor (422 naming the parameter), the authenticated
//! caller (401), and the `?min_position=` consistency wait.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::time::Duration;

use super::error::ApiError;
use super::AppState;
use crate::auth::{Principal, Role};

/// Request bodies above this many bytes are answered 413 (SPEC §4: 1 MiB).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A JSON request body. Commands use `#[serde(deny_unknown_fields)]`, so an unknown
/// field is a 422 naming it.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

/// Whether the request declares a JSON body (or declares nothing: `curl -d` without
/// `-H` is common enough, and the body is parsed strictly anyway).
fn json_content_type(req: &Request) -> bool {
    let Some(ct) = req.headers().get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(ct) = ct.to_str() else { return false };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
        || essence == "application/x-www-form-urlencoded" // curl's default for -d
}

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(&req) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit: BODY_LIMIT }
            } else {
                ApiError::BadRequest(format!("cannot read the request body: {}", r.body_text()))
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses a body: syntax errors are 400, shape errors 422 naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson(
            "the request body is empty; expected a JSON object".into(),
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::MalformedJson(format!("the request body is not valid JSON: {e}")))?;
    from_value(value)
}

/// Deserialises an already parsed body; shape errors are 422 naming the field.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        ApiError::Unprocessable {
            code: "validation_error".into(),
            message: if path == "." || path.is_empty() {
                inner
            } else {
                format!("{path}: {inner}")
            },
        }
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
                ApiError::Unprocessable {
                    code: "validation_error".into(),
                    message: if path == "." || path.is_empty() {
                        format!("query: {inner}")
                    } else {
                        format!("{path}: {inner}")
                    },
                }
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
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let (scheme, key) = header.split_once(' ').ok_or(ApiError::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
            return Err(ApiError::Unauthorized);
        }
        let principal = crate::auth::authenticate(state.app.db(), key.trim())
            .await
            .map_err(|e| match e {
                crate::auth::KeyError::Database(db) => ApiError::from(db),
                other => ApiError::internal(other),
            })?
            .ok_or(ApiError::Unauthorized)?;
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
            Err(ApiError::Forbidden("this needs an admin key".into()))
        }
    }

    /// 403 for agent keys (user endpoints).
    pub fn require_user_or_admin(&self) -> Result<(), ApiError> {
        match self.0.role {
            Role::Agent { .. } => Err(ApiError::Forbidden(
                "agent keys may only use the agent endpoints".into(),
            )),
            _ => Ok(()),
        }
    }

    /// 403 unless admin or the agent key bound to `agent_id`.
    pub fn require_agent(&self, agent_id: &str) -> Result<(), ApiError> {
        match &self.0.role {
            Role::Admin => Ok(()),
            Role::Agent { agent_id: mine } if mine == agent_id => Ok(()),
            Role::Agent { .. } => Err(ApiError::Forbidden(format!(
                "this key is bound to another agent, not '{agent_id}'"
            ))),
            Role::User { .. } => Err(ApiError::Forbidden("this needs an agent key".into())),
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
    /// Waits (bounded) until every read model includes `min_position` (read-your-writes).
    /// An unknown position is 422; not reaching it in time is 503 `not_caught_up`.
    pub async fn wait(self, state: &AppState) -> Result<(), ApiError> {
        let Some(position) = self.min_position else {
            return Ok(());
        };
        if position <= 0 {
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
            .wait_for_position(position, state.config.min_position_timeout)
            .await?
        {
            Ok(())
        } else {
            Err(ApiError::NotCaughtUp { position })
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
