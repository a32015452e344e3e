//! `/v1/scaling-groups`: create, list, get, patch (SPEC §1.3, §4). Admins manage groups;
//! users see the active groups available to them (others are 404).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::scaling_group::{ScalingGroup, ScalingGroupCommand};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{Caller, Json, MinPosition};
use super::AppState;
use crate::auth::Role;

/// `router()` of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_group, list_groups))
        .routes(routes!(get_group, patch_group))
}

/// Body of `POST /v1/scaling-groups`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScalingGroup {
    /// 1-64 lower-case letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Inactive groups accept and schedule nothing (default true).
    #[serde(default = "yes")]
    pub is_active: bool,
    /// Available to every owner (default true); otherwise only to `owners`.
    #[serde(default = "yes")]
    pub public: bool,
    /// Owners who may use a non-public group.
    #[serde(default)]
    pub owners: BTreeSet<String>,
    /// `fifo` (default) | `lifo` | `drf`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub scheduler: Value,
    /// Strictly validated options (SPEC §1.3); missing keys get their defaults.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub scheduler_opts: Value,
}

fn yes() -> bool {
    true
}

/// Body of `PATCH /v1/scaling-groups/{name}`: the given fields replace the current
/// ones; the given keys of `scheduler_opts` replace those keys, then the whole is
/// validated.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchScalingGroup {
    /// New description.
    pub description: Option<String>,
    /// New active flag.
    pub is_active: Option<bool>,
    /// New public flag.
    pub public: Option<bool>,
    /// New owner set.
    pub owners: Option<BTreeSet<String>>,
    /// New scheduler.
    #[schema(value_type = Option<String>)]
    pub scheduler: Option<Value>,
    /// Keys of `scheduler_opts` to replace.
    #[schema(value_type = Option<Object>)]
    pub scheduler_opts: Option<Value>,
}

/// A scaling group as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScalingGroupView {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Active flag.
    pub is_active: bool,
    /// Public flag.
    pub public: bool,
    /// Owners of a non-public group.
    pub owners: BTreeSet<String>,
    /// `fifo | lifo | drf`.
    #[schema(value_type = String)]
    pub scheduler: Value,
    /// The validated options with every key.
    #[schema(value_type = Object)]
    pub scheduler_opts: Value,
}

impl From<&ScalingGroup> for ScalingGroupView {
    fn from(g: &ScalingGroup) -> Self {
        Self {
            name: g.name.clone(),
            description: g.description.clone(),
            is_active: g.is_active,
            public: g.public,
            owners: g.owners.clone(),
            scheduler: serde_json::to_value(g.scheduler).unwrap_or(Value::Null),
            scheduler_opts: g.scheduler_opts.to_json(),
        }
    }
}

/// A mutating response: the group and the consistency token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScalingGroupWritten {
    /// The group after the command.
    #[serde(flatten)]
    pub group: ScalingGroupView,
    /// Pass as `?min_position=` to read your write.
    pub position: i64,
}

/// A list of groups.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScalingGroupList {
    /// Groups by name.
    pub items: Vec<ScalingGroupView>,
}

/// Create a scaling group (admin).
#[utoipa::path(post, path = "/v1/scaling-groups", tag = "scaling-groups",
    request_body = CreateScalingGroup,
    responses(
        (status = 201, body = ScalingGroupWritten),
        (status = 409, description = "already exists", body = ErrorBody),
        (status = 422, description = "invalid field (named in the message)", body = ErrorBody)))]
async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateScalingGroup>,
) -> Result<(StatusCode, axum::Json<ScalingGroupWritten>), ApiError> {
    caller.require_admin()?;
    domain::scaling_group::validate_group_name(&body.name)?;
    let meta = state.metadata(&caller.0);
    let name = body.name.clone();
    let committed = state
        .execute::<ScalingGroup>(
            &name,
            ScalingGroupCommand::Create {
                name: body.name,
                description: body.description,
                is_active: body.is_active,
                public: body.public,
                owners: body.owners,
                scheduler: body.scheduler,
                scheduler_opts: body.scheduler_opts,
                now: state.app.clock.now(),
            },
            &meta,
        )
        .await?;
    let position = state.position_after(&committed, &name).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ScalingGroupWritten {
            group: (&committed.state).into(),
            position,
        }),
    ))
}

/// Change a scaling group (admin); `SchedulerOptsChanged` records old and new opts.
#[utoipa::path(patch, path = "/v1/scaling-groups/{name}", tag = "scaling-groups",
    params(("name" = String, Path, description = "Group name")),
    request_body = PatchScalingGroup,
    responses(
        (status = 200, body = ScalingGroupWritten),
        (status = 404, body = ErrorBody),
        (status = 422, description = "invalid field (named in the message)", body = ErrorBody)))]
async fn patch_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<PatchScalingGroup>,
) -> Result<axum::Json<ScalingGroupWritten>, ApiError> {
    caller.require_admin()?;
    let meta = state.metadata(&caller.0);
    let committed = state
        .execute::<ScalingGroup>(
            &name,
            ScalingGroupCommand::Update {
                description: body.description,
                is_active: body.is_active,
                public: body.public,
                owners: body.owners,
                scheduler: body.scheduler,
                scheduler_opts: body.scheduler_opts,
                now: state.app.clock.now(),
            },
            &meta,
        )
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => ApiError::not_found("scaling group", &name),
            other => other,
        })?;
    let position = state.position_after(&committed, &name).await?;
    Ok(axum::Json(ScalingGroupWritten {
        group: (&committed.state).into(),
        position,
    }))
}

fn visible(caller: &Caller, g: &ScalingGroup) -> bool {
    match &caller.0.role {
        Role::Admin => g.exists,
        Role::User { owner } => g.is_active && domain::scheduler::resolve::available_to(g, owner),
        Role::Agent { .. } => false,
    }
}

/// Scaling groups: every group for admins, the active groups available to the caller
/// for users.
#[utoipa::path(get, path = "/v1/scaling-groups", tag = "scaling-groups",
    params(("min_position" = Option<i64>, Query, description = "Wait until the read models include this position")),
    responses((status = 200, body = ScalingGroupList)))]
async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    min: MinPosition,
) -> Result<axum::Json<ScalingGroupList>, ApiError> {
    caller.require_user_or_admin()?;
    min.wait(&state).await?;
    let mut groups = projections::models::docs::scaling_groups()
        .all(state.app.db())
        .await?;
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(axum::Json(ScalingGroupList {
        items: groups
            .iter()
            .filter(|g| visible(&caller, g))
            .map(Into::into)
            .collect(),
    }))
}

/// One scaling group (404 for a user it is not available to).
#[utoipa::path(get, path = "/v1/scaling-groups/{name}", tag = "scaling-groups",
    params(("name" = String, Path, description = "Group name"),
           ("min_position" = Option<i64>, Query, description = "Wait until the read models include this position")),
    responses((status = 200, body = ScalingGroupView), (status = 404, body = ErrorBody)))]
async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    min: MinPosition,
) -> Result<axum::Json<ScalingGroupView>, ApiError> {
    caller.require_user_or_admin()?;
    min.wait(&state).await?;
    let group = projections::models::docs::scaling_groups()
        .get(state.app.db(), &name)
        .await?
        .filter(|g| visible(&caller, g))
        .ok_or_else(|| ApiError::not_found("scaling group", &name))?;
    Ok(axum::Json((&group).into()))
}
