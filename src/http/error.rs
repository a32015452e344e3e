//! The one error type of the HTTP layer: every failure a handler can return, its status
//! code, and the body `{"error": {"code", "message"}}` (SPEC §4).
//!
//! Client errors carry a stable machine-readable `code` and a message meant for people
//! (validation messages name the field). Store and unexpected errors are logged with
//! their cause chain and answered with an opaque message: internal error text never
//! reaches clients.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::borrow::Cow;

use crate::command::CommandError;
use crate::store::StoreError;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not valid JSON (or not JSON at all).
    #[error("{0}")]
    MalformedJson(String),
    /// 400: a request that is wrong in a way no field names (bad header, bad cursor).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no API key, an unknown one, or a revoked one.
    #[error("a valid API key is required (Authorization: Bearer <key>)")]
    Unauthorized,
    /// 403: authenticated, but this role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such resource, or one the caller may not see.
    #[error("{0}")]
    NotFound(String),
    /// 409: the command conflicts with the current state (`illegal_transition`,
    /// `conflict`, `name_conflict`, `already_exists`, ...).
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: Cow<'static, str>,
        /// For people.
        message: String,
    },
    /// 413: the body is over the limit.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 415: a body that is not declared as JSON.
    #[error("expected a JSON body (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// 422: well-formed but invalid; `message` names the field.
    #[error("{message}")]
    Unprocessable {
        /// Machine-readable code (`validation_error`, `no_scaling_group`, ...).
        code: Cow<'static, str>,
        /// For people; names the field.
        message: String,
    },
    /// 429: a limit of the caller's (e.g. `pending_limit_exceeded`).
    #[error("{message}")]
    TooManyRequests {
        /// Machine-readable code.
        code: Cow<'static, str>,
        /// For people.
        message: String,
    },
    /// 503: the read models did not reach `min_position` within the wait.
    #[error("the read models did not reach position {position} in time; retry")]
    NotCaughtUp {
        /// The requested position.
        position: i64,
    },
    /// 503: the store cannot be reached.
    #[error("the store is not reachable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// 500: anything else; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The `code` of an error response, attached to the response's extensions so the
/// metrics middleware can count errors by code.
#[derive(Debug, Clone)]
pub struct ErrorCode(pub String);

/// The JSON body of an error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// `code` and `message` of an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable.
    pub code: String,
    /// For people; for validation errors it names the field.
    pub message: String,
}

impl ApiError {
    /// 422 `validation_error` for `field`.
    pub fn validation(field: &str, message: impl std::fmt::Display) -> Self {
        ApiError::Unprocessable {
            code: "validation_error".into(),
            message: format!("{field}: {message}"),
        }
    }

    /// 404 for a resource kind and id.
    pub fn not_found(what: &str, id: &str) -> Self {
        ApiError::NotFound(format!("no {what} '{id}'"))
    }

    /// 500 from any error (logged when answered).
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(e))
    }

    /// The HTTP status of this error.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotCaughtUp { .. } | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> &str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::TooManyRequests { code, .. } => code,
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::NotCaughtUp { .. } => "not_caught_up",
            ApiError::Unavailable(_) => "store_unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl ApiError {
    /// The JSON body this error is answered with (stored by idempotency records).
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message: self.to_string(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(e) | ApiError::Unavailable(e) => {
                tracing::error!(error = %crate::cli::error_chain(e.as_ref()), code = self.code(), "request failed");
            }
            _ => {}
        }
        let body = self.body();
        let mut response = (self.status_code(), axum::Json(body)).into_response();
        // For the metrics middleware (command conflicts, errors by code).
        response
            .extensions_mut()
            .insert(ErrorCode(self.code().to_string()));
        match self {
            ApiError::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::NotCaughtUp { .. } | ApiError::Unavailable(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

/// Whether a database error means "cannot reach the database" (503) rather than a bug.
fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
    )
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            ApiError::Unavailable(Box::new(e))
        } else {
            ApiError::Internal(Box::new(e))
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Database(db) if is_unavailable(&db) => ApiError::Unavailable(Box::new(db)),
            StoreError::Conflict { .. } => ApiError::Conflict {
                code: "conflict".into(),
                message: "the resource was changed concurrently; retry".into(),
            },
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

impl From<projections::ProjectionError> for ApiError {
    fn from(e: projections::ProjectionError) -> Self {
        match e {
            projections::ProjectionError::Database(db) => db.into(),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

impl From<domain::ValidationError> for ApiError {
    fn from(e: domain::ValidationError) -> Self {
        ApiError::validation(&e.field, &e.message)
    }
}

impl From<domain::session::SessionError> for ApiError {
    fn from(e: domain::session::SessionError) -> Self {
        use domain::session::SessionError as E;
        match e {
            E::IllegalTransition { .. } => ApiError::Conflict {
                code: "illegal_transition".into(),
                message: e.to_string(),
            },
            E::NotFound => ApiError::NotFound("no such session".into()),
            E::AlreadyExists => ApiError::Conflict {
                code: "already_exists".into(),
                message: e.to_string(),
            },
            E::NotPending(_) | E::NotExpired { .. } => ApiError::Conflict {
                code: "conflict".into(),
                message: e.to_string(),
            },
            E::Validation(v) => v.into(),
        }
    }
}

impl From<domain::scaling_group::ScalingGroupError> for ApiError {
    fn from(e: domain::scaling_group::ScalingGroupError) -> Self {
        use domain::scaling_group::ScalingGroupError as E;
        match e {
            E::NotFound => ApiError::NotFound("no such scaling group".into()),
            E::AlreadyExists => ApiError::Conflict {
                code: "already_exists".into(),
                message: e.to_string(),
            },
            E::Validation(v) => v.into(),
        }
    }
}

/// Domain rejections map through their own `From`; a conflict that outlived every
/// retry is 409 `conflict`; store failures are 503/500.
impl<E> From<CommandError<E>> for ApiError
where
    E: std::error::Error + Into<ApiError>,
{
    fn from(e: CommandError<E>) -> Self {
        match e {
            CommandError::Rejected(r) => r.into(),
            CommandError::Conflict { attempts } => ApiError::Conflict {
                code: "conflict".into(),
                message: format!(
                    "the resource kept changing concurrently ({attempts} attempts); retry"
                ),
            },
            CommandError::Store(s) => s.into(),
        }
    }
}

impl From<crate::sessions::SessionCommandError> for ApiError {
    fn from(e: crate::sessions::SessionCommandError) -> Self {
        use crate::sessions::SessionCommandError as E;
        use domain::scheduler::ResolveError as R;
        match e {
            E::NotFound => ApiError::NotFound("no such session".into()),
            E::Resolve(r) => {
                let code = match r {
                    R::NoScalingGroup { .. } => "no_scaling_group",
                    R::ScalingGroupNotFound { .. } => "scaling_group_not_found",
                    R::SessionTypeNotAllowed { .. } => "session_type_not_allowed",
                };
                ApiError::Unprocessable {
                    code: code.into(),
                    message: format!("scaling_group: {r}"),
                }
            }
            E::PendingLimitExceeded { .. } => ApiError::TooManyRequests {
                code: "pending_limit_exceeded".into(),
                message: e.to_string(),
            },
            E::NameConflict { .. } => ApiError::Conflict {
                code: "name_conflict".into(),
                message: format!("name: {e}"),
            },
            E::NotPlacedOnAgent { .. } => ApiError::Forbidden(e.to_string()),
            E::Rejected(r) => r.into(),
            E::Conflict => ApiError::Conflict {
                code: "conflict".into(),
                message: e.to_string(),
            },
            E::Store(s) => s.into(),
            E::ReadModel(r) => r.into(),
        }
    }
}

impl From<crate::agents::AgentCommandError> for ApiError {
    fn from(e: crate::agents::AgentCommandError) -> Self {
        use crate::agents::AgentCommandError as E;
        use domain::agent::AgentError as A;
        match e {
            E::NotFound | E::Rejected(A::NotFound) => {
                ApiError::NotFound("no such agent (register it first)".into())
            }
            E::Rejected(A::Validation(v)) => v.into(),
            E::Rejected(r) => ApiError::Conflict {
                code: "conflict".into(),
                message: r.to_string(),
            },
            E::Conflict => ApiError::Conflict {
                code: "conflict".into(),
                message: e.to_string(),
            },
            E::Store(s) => s.into(),
            E::ReadModel(r) => r.into(),
        }
    }
}
