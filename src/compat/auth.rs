//! Authentication of requests signed the Backend.AI way (SPEC §13): accepted on every
//! route (`/v1` and the compatibility routes) and mapped to the same roles as bearer
//! keys. Every failure is 401 with a JSON body and changes nothing.

use axum::http::request::Parts;

use super::signature::{parse_authorization, parse_date, Signed, MAX_SKEW};
use crate::auth::Principal;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::AppState;

fn refused(why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        format!("signed request refused: {why}"),
    )
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The principal of a request signed with a keypair, or 401.
pub async fn authenticate_signed(
    state: &AppState,
    parts: &Parts,
    authorization: &str,
) -> Result<Principal, ApiError> {
    let credential = parse_authorization(authorization).ok_or_else(|| {
        refused("expected `BackendAI signMethod=HMAC-SHA256, credential=<access key>:<signature>`")
    })?;
    let date_header = header(parts, "date")
        .or_else(|| header(parts, "x-backendai-date"))
        .ok_or_else(|| refused("a Date or X-BackendAI-Date header is required"))?;
    let date = parse_date(date_header).ok_or_else(|| refused("the date is not readable"))?;
    let now = state.app.clock.now();
    let skew = now.signed_duration_since(date).abs();
    if skew > MAX_SKEW {
        return Err(refused(
            "the request's date is more than 15 minutes from the server's clock",
        ));
    }
    let Some(kek) = state.app.kek.as_deref() else {
        return Err(refused(
            "this server has no secret_key, so no keypair can be used",
        ));
    };
    let (principal, secret) =
        crate::auth::find_keypair(state.app.db(), kek, &credential.access_key)
            .await
            .map_err(|e| match e {
                crate::auth::KeyError::Database(db) => ApiError::from(db),
                other => ApiError::internal(other),
            })?
            .ok_or_else(|| refused("unknown or revoked access key"))?;
    if state.app.keys.is_revoked(&principal.key_id) {
        return Err(refused("unknown or revoked access key"));
    }
    let host = header(parts, "host").ok_or_else(|| refused("a Host header is required"))?;
    let signed = Signed {
        method: parts.method.as_str(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/"),
        date_header,
        host,
        content_type: header(parts, "content-type"),
        api_version: header(parts, "x-backendai-version").unwrap_or_default(),
    };
    if !signed.verify(secret.expose(), date, &credential.signature) {
        return Err(refused("the signature does not match"));
    }
    Ok(principal)
}
