//! The one error type of the HTTP layer: every failure a handler can return, its status
//! code, and the body `{"error": {"code", "message"}}` (SPEC §4).
//!
//! Client errors carry a stable machine-readable [`ErrorCode`] and a message meant for
//! people (validation messages name the field). Store and unexpected errors are logged
//! with their cause chain and answered with an opaque message: internal error text
//! never reaches clients.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::command::CommandError;
use crate::store::StoreError;

macro_rules! codes {
    ($($variant:ident = $code:literal => $status:ident,)*) => {
        /// The machine-readable `code` of an error response, with its HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $(
                #[doc = concat!("`", $code, "` (", stringify!($status), ")")]
                $variant,
            )*
        }

        impl ErrorCode {
            /// Every code (the OpenAPI document lists them).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The HTTP status it is answered with.
            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }
        }
    };
}

codes! {
    MalformedJson = "malformed_json" => BAD_REQUEST,
    BadRequest = "bad_request" => BAD_REQUEST,
    Unauthorized = "unauthorized" => UNAUTHORIZED,
    Forbidden = "forbidden" => FORBIDDEN,
    NotFound = "not_found" => NOT_FOUND,
    MethodNotAllowed = "method_not_allowed" => METHOD_NOT_ALLOWED,
    IllegalTransition = "illegal_transition" => CONFLICT,
    Conflict = "conflict" => CONFLICT,
    NameConflict = "name_conflict" => CONFLICT,
    AlreadyExists = "already_exists" => CONFLICT,
    PayloadTooLarge = "payload_too_large" => PAYLOAD_TOO_LARGE,
    UriTooLong = "uri_too_long" => URI_TOO_LONG,
    UnsupportedMediaType = "unsupported_media_type" => UNSUPPORTED_MEDIA_TYPE,
    ValidationError = "validation_error" => UNPROCESSABLE_ENTITY,
    NoScalingGroup = "no_scaling_group" => UNPROCESSABLE_ENTITY,
    ScalingGroupNotFound = "scaling_group_not_found" => UNPROCESSABLE_ENTITY,
    SessionTypeNotAllowed = "session_type_not_allowed" => UNPROCESSABLE_ENTITY,
    IdempotencyKeyReused = "idempotency_key_reused" => UNPROCESSABLE_ENTITY,
    PendingLimitExceeded = "pending_limit_exceeded" => TOO_MANY_REQUESTS,
    TooManyStreams = "too_many_streams" => TOO_MANY_REQUESTS,
    RateLimited = "rate_limited" => TOO_MANY_REQUESTS,
    HeadersTooLarge = "headers_too_large" => REQUEST_HEADER_FIELDS_TOO_LARGE,
    VolumeNotFound = "volume_not_found" => UNPROCESSABLE_ENTITY,
    InvalidPath = "invalid_path" => UNPROCESSABLE_ENTITY,
    ReadOnly = "read_only" => FORBIDDEN,
    InsufficientSpace = "insufficient_space" => INSUFFICIENT_STORAGE,
    VolumeUnavailable = "volume_unavailable" => SERVICE_UNAVAILABLE,
    StoreFull = "store_full" => SERVICE_UNAVAILABLE,
    Internal = "internal" => INTERNAL_SERVER_ERROR,
    NotCaughtUp = "not_caught_up" => SERVICE_UNAVAILABLE,
    StoreUnavailable = "store_unavailable" => SERVICE_UNAVAILABLE,
    PoolExhausted = "pool_exhausted" => SERVICE_UNAVAILABLE,
    NotReady = "not_ready" => SERVICE_UNAVAILABLE,
    SecretKeyRequired = "secret_key_required" => SERVICE_UNAVAILABLE,
    Timeout = "timeout" => SERVICE_UNAVAILABLE,
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed request.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// What kind of failure (decides the status).
    pub code: ErrorCode,
    /// For people; validation messages start with the field.
    pub message: String,
    /// Seconds to send as `Retry-After`, when retrying later may help.
    pub retry_after: Option<u32>,
    /// The cause of a 5xx (logged, never sent).
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

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
    /// An error of `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: match code {
                ErrorCode::NotCaughtUp
                | ErrorCode::StoreUnavailable
                | ErrorCode::PoolExhausted
                | ErrorCode::NotReady
                | ErrorCode::Timeout
                | ErrorCode::TooManyStreams => Some(1),
                ErrorCode::StoreFull => Some(30),
                _ => None,
            },
            source: None,
        }
    }

    /// Sets `Retry-After`.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 422 `validation_error` for `field`.
    pub fn validation(field: &str, message: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::ValidationError, format!("{field}: {message}"))
    }

    /// 422 `validation_error` with a message that already names the field.
    pub fn validation_message(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationError, message)
    }

    /// 400 `malformed_json`.
    pub fn malformed_json(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::MalformedJson, message)
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "a valid API key is required (Authorization: Bearer <key>)",
        )
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// 404 for a resource kind and id.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("no {what} '{id}'"))
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// 413 over the body limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// 415: a body not declared as JSON.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            ErrorCode::UnsupportedMediaType,
            "expected a JSON body (Content-Type: application/json)",
        )
    }

    /// 503: the read models did not reach `position` within the wait.
    pub fn not_caught_up(position: i64) -> Self {
        Self::new(
            ErrorCode::NotCaughtUp,
            format!("the read models did not reach position {position} in time; retry"),
        )
    }

    /// 503 `store_unavailable` from a cause (logged).
    pub fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            source: Some(Box::new(e)),
            ..Self::new(ErrorCode::StoreUnavailable, "the store is not reachable")
        }
    }

    /// 503 `pool_exhausted`: the store answers, but every connection is busy.
    pub fn pool_exhausted(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            source: Some(Box::new(e)),
            ..Self::new(
                ErrorCode::PoolExhausted,
                "every database connection is busy; retry",
            )
        }
    }

    /// 500 from any error (logged when answered).
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            source: Some(Box::new(e)),
            ..Self::new(ErrorCode::Internal, "internal error")
        }
    }

    /// The HTTP status of this error.
    pub fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    /// The JSON body this error is answered with (stored by idempotency records).
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_string(),
                message: self.message.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(source) = &self.source {
            tracing::error!(error = %crate::telemetry::error_chain(source.as_ref()), code = %self.code, "request failed");
        }
        let mut response = (self.status_code(), axum::Json(self.body())).into_response();
        // For the metrics middleware (errors by code).
        response.extensions_mut().insert(self.code);
        if self.code == ErrorCode::Unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut => ApiError::pool_exhausted(e),
            e if store::is_unavailable(&e) => ApiError::unavailable(e),
            e if is_full(&e) => ApiError {
                source: Some(Box::new(e)),
                ..ApiError::new(
                    ErrorCode::StoreFull,
                    "the store is out of space: commands are refused until space is freed (reads still work)",
                )
            },
            other => ApiError::internal(other),
        }
    }
}

/// Whether the database refused a write for lack of space (SQLite `SQLITE_FULL`: the
/// disk, or `max_page_count`; PostgreSQL `disk_full`, SQLSTATE 53100). Nothing of the
/// statement was written (SQLite rolls the statement back, PostgreSQL the transaction).
fn is_full(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c == "13" || c == "53100"),
        _ => false,
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Database(db) => db.into(),
            StoreError::Conflict { .. } => {
                ApiError::conflict("the resource was changed concurrently; retry")
            }
            e if e.is_unavailable() => ApiError::unavailable(e),
            e if e.sqlx_cause().is_some_and(is_full) => ApiError {
                source: Some(Box::new(e)),
                ..ApiError::new(
                    ErrorCode::StoreFull,
                    "the store is out of space: commands are refused until space is freed (reads still work)",
                )
            },
            other => ApiError::internal(other),
        }
    }
}

impl From<projections::ProjectionError> for ApiError {
    fn from(e: projections::ProjectionError) -> Self {
        match e {
            projections::ProjectionError::Database(db) => db.into(),
            other => ApiError::internal(other),
        }
    }
}

impl From<crate::store::DecodeError> for ApiError {
    fn from(e: crate::store::DecodeError) -> Self {
        ApiError::internal(e)
    }
}

impl From<domain::policy::ResourcePolicyError> for ApiError {
    fn from(e: domain::policy::ResourcePolicyError) -> Self {
        match e {}
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
            E::IllegalTransition { .. } => {
                ApiError::new(ErrorCode::IllegalTransition, e.to_string())
            }
            E::NotFound => ApiError::new(ErrorCode::NotFound, "no such session"),
            E::AlreadyExists => ApiError::new(ErrorCode::AlreadyExists, e.to_string()),
            E::NotPending(_) | E::NotExpired { .. } => ApiError::conflict(e.to_string()),
            E::ResourceOverflow => ApiError::validation("resources", e.to_string()),
            E::Validation(v) => v.into(),
        }
    }
}

impl From<domain::scaling_group::ScalingGroupError> for ApiError {
    fn from(e: domain::scaling_group::ScalingGroupError) -> Self {
        use domain::scaling_group::ScalingGroupError as E;
        match e {
            E::NotFound => ApiError::new(ErrorCode::NotFound, "no such scaling group"),
            E::AlreadyExists => ApiError::new(ErrorCode::AlreadyExists, e.to_string()),
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
            CommandError::Conflict { attempts } => ApiError::conflict(format!(
                "the resource kept changing concurrently ({attempts} attempts); retry"
            )),
            CommandError::Store(s) => s.into(),
        }
    }
}

impl From<crate::sessions::SessionCommandError> for ApiError {
    fn from(e: crate::sessions::SessionCommandError) -> Self {
        use crate::sessions::SessionCommandError as E;
        use domain::scheduler::ResolveError as R;
        match e {
            E::NotFound | E::NotPlacedOnAgent { .. } => {
                ApiError::new(ErrorCode::NotFound, "no such session")
            }
            E::Resolve(r) => {
                let code = match r {
                    R::NoScalingGroup { .. } => ErrorCode::NoScalingGroup,
                    R::ScalingGroupNotFound { .. } => ErrorCode::ScalingGroupNotFound,
                    R::SessionTypeNotAllowed { .. } => ErrorCode::SessionTypeNotAllowed,
                };
                ApiError::new(code, format!("scaling_group: {r}"))
            }
            E::PendingLimitExceeded(q) => {
                ApiError::new(ErrorCode::PendingLimitExceeded, q.to_string())
            }
            E::NameConflict { .. } => ApiError::new(ErrorCode::NameConflict, format!("name: {e}")),
            E::Invalid(v) => v.into(),
            E::Rejected(r) => r.into(),
            E::Conflict => ApiError::conflict(e.to_string()),
            E::Store(s) => s.into(),
            E::ReadModel(r) => r.into(),
        }
    }
}

impl From<crate::vfolders::VFolderCommandError> for ApiError {
    fn from(e: crate::vfolders::VFolderCommandError) -> Self {
        use crate::vfolders::VFolderCommandError as E;
        use domain::bgtask::BackgroundTaskError as T;
        use domain::vfolder::VFolderError as F;
        match e {
            E::NotFound(what) => ApiError::new(ErrorCode::NotFound, format!("no such {what}")),
            E::Folder(F::NotFound) => ApiError::new(ErrorCode::NotFound, "no such vfolder"),
            E::Task(T::NotFound) => ApiError::new(ErrorCode::NotFound, "no such background task"),
            E::NameConflict { .. } => ApiError::new(ErrorCode::NameConflict, format!("name: {e}")),
            E::UnknownVolume(_) => ApiError::new(ErrorCode::VolumeNotFound, e.to_string()),
            E::Folder(F::AlreadyExists) | E::Task(T::AlreadyExists) => {
                ApiError::new(ErrorCode::AlreadyExists, e.to_string())
            }
            E::Folder(_) | E::Task(_) | E::Conflict => ApiError::conflict(e.to_string()),
            E::Volume(_) => ApiError::new(ErrorCode::VolumeUnavailable, e.to_string()),
            E::Store(s) => s.into(),
        }
    }
}

impl From<crate::volumes::PathError> for ApiError {
    fn from(e: crate::volumes::PathError) -> Self {
        ApiError::new(ErrorCode::InvalidPath, format!("path: {e}"))
    }
}

impl From<crate::agents::AgentCommandError> for ApiError {
    fn from(e: crate::agents::AgentCommandError) -> Self {
        use crate::agents::AgentCommandError as E;
        use domain::agent::AgentError as A;
        match e {
            E::NotFound | E::Rejected(A::NotFound) => {
                ApiError::new(ErrorCode::NotFound, "no such agent (register it first)")
            }
            E::Invalid(v) | E::Rejected(A::Validation(v)) => v.into(),
            E::Rejected(r) => ApiError::conflict(r.to_string()),
            E::Conflict => ApiError::conflict(e.to_string()),
            E::Store(s) => s.into(),
            E::ReadModel(r) => r.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_distinct_wire_name_and_an_error_status() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code}");
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }

    #[test]
    fn pool_exhaustion_is_its_own_503() {
        let e = ApiError::from(sqlx::Error::PoolTimedOut);
        assert_eq!(e.code, ErrorCode::PoolExhausted);
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            ApiError::from(sqlx::Error::PoolClosed).code,
            ErrorCode::StoreUnavailable
        );
    }
}
