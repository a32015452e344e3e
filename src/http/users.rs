//! `/v1/users/{owner}/resource-policy`: an owner's limits (SPEC §1.5). Admins set them;
//! admins and the owner may read them. A missing policy (or limit) means unlimited.

use axum::extract::{Path, State};
use domain::bounds::PolicyCount;
use domain::ids::Owner;
use domain::policy::{ResourceLimits, ResourcePolicy, ResourcePolicyEvent, SetResourcePolicy};
use domain::resources::SlotUse;
use domain::ResourceSlots;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{integer, Caller, Json};
use super::{schema, AppState};

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
    #[schema(schema_with = schema::policy_count_or_null)]
    pub max_concurrent_sessions: Option<serde_json::Number>,
    /// Max PENDING sessions (more are 429 `pending_limit_exceeded`).
    #[schema(schema_with = pending_limit_or_null)]
    pub max_pending_sessions: Option<serde_json::Number>,
    /// Limit of summed allocated slots, e.g. `{"cpu": 8, "mem": "32g"}`.
    #[schema(schema_with = schema::capacity_slots_or_null)]
    pub total_resource_slots: Option<Value>,
}

fn pending_limit_or_null() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    schema::nullable(pending_limit_schema())
}

fn pending_limit_schema() -> utoipa::openapi::schema::ObjectBuilder {
    schema::integer(
        0,
        u64::from(MAX_PENDING_LIMIT),
        "max PENDING sessions (each enqueue of a limited owner records the count)",
    )
}

/// The highest `max_pending_sessions`: the limit is enforced at every enqueue through
/// the owner's quota stream, whose events list the sessions not yet in the read model.
pub const MAX_PENDING_LIMIT: u32 = 10_000;

fn count(
    field: &str,
    n: Option<&serde_json::Number>,
    max: u32,
) -> Result<Option<PolicyCount>, ApiError> {
    let Some(n) = n else { return Ok(None) };
    let n = integer(field, n)?;
    if n > i128::from(max) {
        return Err(ApiError::validation(
            field,
            format!("must be a whole number between 0 and {max}"),
        ));
    }
    Ok(Some(PolicyCount::parse(field, n)?))
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

fn view(owner: &Owner, limits: &ResourceLimits, position: i64) -> ResourcePolicyView {
    ResourcePolicyView {
        owner: owner.to_string(),
        max_concurrent_sessions: limits.max_concurrent_sessions.map(PolicyCount::get),
        max_pending_sessions: limits.max_pending_sessions.map(PolicyCount::get),
        total_resource_slots: limits.total_resource_slots.clone(),
        position,
    }
}

/// Set an owner's resource policy (admin).
#[utoipa::path(put, path = "/v1/users/{owner}/resource-policy", tag = "users",
    params(("owner" = String, Path, description = "Owner")),
    request_body = PutResourcePolicy,
    responses((status = 200, body = ResourcePolicyView),
               (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
               (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
               (status = 415, body = ErrorBody),
               (status = 422, description = "invalid field (named in the message)", body = ErrorBody),
               (status = 503, body = ErrorBody)))]
async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(owner): Path<String>,
    Json(body): Json<PutResourcePolicy>,
) -> Result<axum::Json<ResourcePolicyView>, ApiError> {
    caller.require_admin()?;
    let owner = Owner::parse("owner", &owner)?;
    let total_resource_slots = body
        .total_resource_slots
        .filter(|v| !v.is_null())
        .map(|v| ResourceSlots::parse(&v, "total_resource_slots", SlotUse::Capacity))
        .transpose()?;
    let limits = ResourceLimits {
        max_concurrent_sessions: count(
            "max_concurrent_sessions",
            body.max_concurrent_sessions.as_ref(),
            domain::bounds::MAX_POLICY_COUNT,
        )?,
        max_pending_sessions: count(
            "max_pending_sessions",
            body.max_pending_sessions.as_ref(),
            MAX_PENDING_LIMIT,
        )?,
        total_resource_slots,
    };
    let meta = state.metadata(&caller.0);
    let committed = state
        .execute::<ResourcePolicy>(
            owner.as_str(),
            SetResourcePolicy {
                owner: owner.clone(),
                limits,
                now: state.app.clock.now(),
            },
            &meta,
        )
        .await?;
    let position = state.position_after(&committed, owner.as_str()).await?;
    Ok(axum::Json(view(&owner, &committed.state.limits, position)))
}

/// An owner's resource policy (admin, or the owner).
#[utoipa::path(get, path = "/v1/users/{owner}/resource-policy", tag = "users",
    params(("owner" = String, Path, description = "Owner")),
    responses((status = 200, body = ResourcePolicyView),
               (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
               (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn get_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(owner): Path<String>,
) -> Result<axum::Json<ResourcePolicyView>, ApiError> {
    let owner = Owner::parse("owner", &owner)?;
    if !caller.0.can_access_owner(&owner) {
        return Err(ApiError::not_found("user", &owner));
    }
    // One read of the stream: the fold and the position of its last event.
    let events = state
        .app
        .store
        .read_stream(<ResourcePolicy as domain::Decider>::TYPE, owner.as_str())
        .await?;
    let mut policy = ResourcePolicy::default();
    for e in &events {
        policy.apply(&e.decode::<ResourcePolicyEvent>()?);
    }
    let position = events.last().map(|e| e.global_position).unwrap_or(0);
    Ok(axum::Json(view(&owner, &policy.limits, position)))
}
