//! `/v1/users/{owner}/resource-policy`: an owner's limits (SPEC §1.5). Admins set them;
//! admins and the owner may read them. A missing policy (or limit) means unlimited.

use axum::extract::{Path, State};
use domain::policy::{ResourceLimits, ResourcePolicy, SetResourcePolicy};
use domain::ResourceSlots;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{Caller, Json};
use super::AppState;

/// `router()` of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(put_policy, get_policy))
}

/// Body of `PUT /v1/users/{owner}/resource-policy`: the whole policy (omitted limits
/// are unlimited).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutResourcePolicy {
    /// Max sessions that are neither PENDING nor terminal.
    pub max_concurrent_sessions: Option<u32>,
    /// Max PENDING sessions (more are 429 `pending_limit_exceeded`).
    pub max_pending_sessions: Option<u32>,
    /// Limit of summed allocated slots, e.g. `{"cpu": 8, "mem": "32g"}`.
    #[schema(value_type = Option<Object>)]
    pub total_resource_slots: Option<Value>,
}

/// An owner's policy.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResourcePolicyView {
    /// Owner.
    pub owner: String,
    /// Max sessions that are neither PENDING nor terminal (`null` = unlimited).
    pub max_concurrent_sessions: Option<u32>,
    /// Max PENDING sessions (`null` = unlimited).
    pub max_pending_sessions: Option<u32>,
    /// Limit of summed allocated slots (`null` = unlimited).
    #[schema(value_type = Option<Object>)]
    pub total_resource_slots: Option<ResourceSlots>,
    /// Consistency token (position of the policy's last change; 0 if never set).
    pub position: i64,
}

fn view(owner: &str, limits: &ResourceLimits, position: i64) -> ResourcePolicyView {
    ResourcePolicyView {
        owner: owner.to_string(),
        max_concurrent_sessions: limits.max_concurrent_sessions,
        max_pending_sessions: limits.max_pending_sessions,
        total_resource_slots: limits.total_resource_slots.clone(),
        position,
    }
}

/// Set an owner's resource policy (admin).
#[utoipa::path(put, path = "/v1/users/{owner}/resource-policy", tag = "users",
    params(("owner" = String, Path, description = "Owner")),
    request_body = PutResourcePolicy,
    responses((status = 200, body = ResourcePolicyView),
               (status = 422, description = "invalid field (named in the message)", body = ErrorBody)))]
async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(owner): Path<String>,
    Json(body): Json<PutResourcePolicy>,
) -> Result<axum::Json<ResourcePolicyView>, ApiError> {
    caller.require_admin()?;
    let total_resource_slots = body
        .total_resource_slots
        .filter(|v| !v.is_null())
        .map(|v| ResourceSlots::from_json(&v, "total_resource_slots"))
        .transpose()?;
    let limits = ResourceLimits {
        max_concurrent_sessions: body.max_concurrent_sessions,
        max_pending_sessions: body.max_pending_sessions,
        total_resource_slots,
    };
    let meta = state.metadata(&caller.0);
    let committed = state
        .execute::<ResourcePolicy>(
            &owner,
            SetResourcePolicy {
                owner: owner.clone(),
                limits,
                now: state.app.clock.now(),
            },
            &meta,
        )
        .await?;
    let position = state.position_after(&committed, &owner).await?;
    Ok(axum::Json(view(&owner, &committed.state.limits, position)))
}

/// An owner's resource policy (admin, or the owner).
#[utoipa::path(get, path = "/v1/users/{owner}/resource-policy", tag = "users",
    params(("owner" = String, Path, description = "Owner")),
    responses((status = 200, body = ResourcePolicyView), (status = 404, body = ErrorBody)))]
async fn get_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(owner): Path<String>,
) -> Result<axum::Json<ResourcePolicyView>, ApiError> {
    if !caller.0.can_access_owner(&owner) {
        return Err(ApiError::not_found("user", &owner));
    }
    let events = state
        .app
        .store
        .read_stream("ResourcePolicy", &owner)
        .await?;
    let policy: ResourcePolicy = state.app.commands.load(&owner).await?;
    let position = events.last().map(|e| e.global_position).unwrap_or(0);
    Ok(axum::Json(view(&owner, &policy.limits, position)))
}
