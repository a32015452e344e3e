//! `/v1/scaling-groups`: create, list, get, patch (SPEC §1.3, §4). Admins manage groups;
//! users see the active groups available to them (others are 404).
//!
//! Create and PATCH validate the same way: every field by its type's rule, and
//! `scheduler_opts` as a whole for the group's (possibly new) scheduler — PATCH merges
//! first, then the aggregate validates the merged whole exactly as create does.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::ids::GroupName;
use domain::scaling_group::{
    parse_description, parse_owners, GroupPatch, GroupSettings, ScalingGroup, ScalingGroupCommand,
    SchedulerKind, SchedulerOpts,
};
use projections::models::{documents, SCALING_GROUPS};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{Caller, Json, MinPosition};
use super::{schema, AppState};
use crate::auth::Role;

/// `router()` of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_group, list_groups))
        .routes(routes!(get_group, patch_group))
}

fn scheduler_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(SchedulerKind::ALL.iter().map(|k| k.as_str())))
}

fn scheduler_or_null() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    schema::nullable(scheduler_schema())
}

fn opts_or_null() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    schema::nullable(opts_schema())
}

/// `scheduler_opts` (SPEC §1.3): every key optional on create (defaults apply), the
/// given keys replaced on PATCH.
pub fn opts_schema() -> ObjectBuilder {
    use domain::scaling_group::AgentSelectionStrategy;
    use domain::session::SessionType;
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "allowed_session_types",
            ArrayBuilder::new()
                .items(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(SessionType::ALL.iter().map(|t| t.as_str()))),
                )
                .unique_items(true),
        )
        .property("pending_timeout", schema::pending_timeout())
        .property(
            "agent_selection_strategy",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(AgentSelectionStrategy::ALL.iter().map(|s| s.as_str()))),
        )
        .property(
            "config",
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property(
                    "num_retries_to_skip",
                    schema::integer(
                        0,
                        u64::from(domain::bounds::MAX_POLICY_COUNT),
                        "fifo/lifo only: pass over a head-of-line session after this many failed attempts (0: strict order)",
                    ),
                )
                .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)))
                .description(Some("scheduler settings; drf has none")),
        )
        .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)))
        .description(Some("strictly validated scheduler options (SPEC §1.3)"))
}

/// Body of `POST /v1/scaling-groups`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScalingGroup {
    /// The group's name.
    #[schema(schema_with = schema::group_name)]
    pub name: String,
    /// Free text.
    #[serde(default)]
    #[schema(schema_with = schema::description)]
    pub description: String,
    /// Inactive groups accept and schedule nothing (default true).
    #[serde(default = "yes")]
    pub is_active: bool,
    /// Available to every owner (default true); otherwise only to `owners`.
    #[serde(default = "yes")]
    pub public: bool,
    /// Owners who may use a non-public group.
    #[serde(default)]
    #[schema(schema_with = schema::owners)]
    pub owners: Vec<String>,
    /// `fifo` (default) | `lifo` | `drf`.
    #[serde(default)]
    #[schema(schema_with = scheduler_or_null)]
    pub scheduler: Option<SchedulerKind>,
    /// Strictly validated options (SPEC §1.3); missing keys get their defaults.
    #[serde(default)]
    #[schema(schema_with = opts_or_null)]
    pub scheduler_opts: Option<Map<String, Value>>,
}

fn yes() -> bool {
    true
}

/// Body of `PATCH /v1/scaling-groups/{name}`: the given fields replace the current
/// ones; the given keys of `scheduler_opts` replace those keys, then the whole is
/// validated as create validates it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchScalingGroup {
    /// New description.
    #[schema(schema_with = schema::description_or_null)]
    pub description: Option<String>,
    /// New active flag.
    pub is_active: Option<bool>,
    /// New public flag.
    pub public: Option<bool>,
    /// New owner set.
    #[schema(schema_with = schema::owners_or_null)]
    pub owners: Option<Vec<String>>,
    /// New scheduler.
    #[schema(schema_with = scheduler_or_null)]
    pub scheduler: Option<SchedulerKind>,
    /// Keys of `scheduler_opts` to replace.
    #[schema(schema_with = opts_or_null)]
    pub scheduler_opts: Option<Map<String, Value>>,
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
    #[schema(schema_with = scheduler_schema)]
    pub scheduler: String,
    /// The validated options with every key of this scheduler.
    #[schema(schema_with = opts_schema)]
    pub scheduler_opts: Value,
}

impl From<&ScalingGroup> for ScalingGroupView {
    fn from(g: &ScalingGroup) -> Self {
        Self {
            name: g.name.clone(),
            description: g.description.clone(),
            is_active: g.is_active,
            public: g.public,
            owners: g.owners.iter().map(|o| o.to_string()).collect(),
            scheduler: g.scheduler.as_str().to_string(),
            scheduler_opts: g.scheduler_opts.to_json(g.scheduler),
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
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "already_exists", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, description = "invalid field (named in the message)", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateScalingGroup>,
) -> Result<(StatusCode, axum::Json<ScalingGroupWritten>), ApiError> {
    caller.require_admin()?;
    let name = GroupName::parse("name", &body.name)?;
    let scheduler = body.scheduler.unwrap_or_default();
    let settings = GroupSettings {
        description: parse_description("description", &body.description)?,
        is_active: body.is_active,
        public: body.public,
        owners: parse_owners("owners", &body.owners)?,
        scheduler,
        scheduler_opts: SchedulerOpts::parse(
            &Value::Object(body.scheduler_opts.unwrap_or_default()),
            scheduler,
        )?,
    };
    let meta = state.metadata(&caller.0);
    let id = name.to_string();
    let committed = state
        .execute::<ScalingGroup>(
            &id,
            ScalingGroupCommand::Create {
                name,
                settings,
                now: state.app.clock.now(),
            },
            &meta,
        )
        .await?;
    let position = state.position_after(&committed, &id).await?;
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
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, description = "invalid field (named in the message)", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn patch_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<PatchScalingGroup>,
) -> Result<axum::Json<ScalingGroupWritten>, ApiError> {
    caller.require_admin()?;
    let Ok(group) = GroupName::parse("name", &name) else {
        return Err(ApiError::not_found("scaling group", &name));
    };
    let patch = GroupPatch {
        description: body
            .description
            .as_deref()
            .map(|d| parse_description("description", d))
            .transpose()?,
        is_active: body.is_active,
        public: body.public,
        owners: body
            .owners
            .as_deref()
            .map(|o| parse_owners("owners", o))
            .transpose()?,
        scheduler: body.scheduler,
        scheduler_opts: body.scheduler_opts,
    };
    let meta = state.metadata(&caller.0);
    let committed = state
        .execute::<ScalingGroup>(
            group.as_str(),
            ScalingGroupCommand::Update {
                patch,
                now: state.app.clock.now(),
            },
            &meta,
        )
        .await
        .map_err(|e| match e.code {
            super::ErrorCode::NotFound => ApiError::not_found("scaling group", &name),
            _ => e,
        })?;
    let position = state.position_after(&committed, group.as_str()).await?;
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
    params(("min_position" = Option<i64>, Query, minimum = 0, description = "Wait until the read models include this position")),
    responses((status = 200, body = ScalingGroupList),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    min: MinPosition,
) -> Result<axum::Json<ScalingGroupList>, ApiError> {
    caller.require_user_or_admin()?;
    min.wait(&state, &[SCALING_GROUPS]).await?;
    let mut groups = documents::scaling_groups().all(state.app.db()).await?;
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(axum::Json(ScalingGroupList {
        items: groups
            .iter()
            .filter(|g| visible(&caller, g))
            .map(Into::into)
            .collect(),
    }))
}

/// One scaling group (404 for a user it is not available to). Reflects every
/// acknowledged change to it even without `?min_position`: the group's stream is folded
/// when the read model is behind it.
#[utoipa::path(get, path = "/v1/scaling-groups/{name}", tag = "scaling-groups",
    params(("name" = String, Path, description = "Group name"),
           ("min_position" = Option<i64>, Query, minimum = 0, description = "Wait until the read models include this position")),
    responses((status = 200, body = ScalingGroupView),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    min: MinPosition,
) -> Result<axum::Json<ScalingGroupView>, ApiError> {
    caller.require_user_or_admin()?;
    min.wait(&state, &[SCALING_GROUPS]).await?;
    let not_found = || ApiError::not_found("scaling group", &name);
    if GroupName::parse("name", &name).is_err() {
        return Err(not_found());
    }
    // The stream itself is small and exact: fold it (a group's read model row is only
    // a copy of this fold).
    let group: ScalingGroup = state.app.commands.load(&name).await?;
    if !visible(&caller, &group) {
        return Err(not_found());
    }
    Ok(axum::Json((&group).into()))
}
