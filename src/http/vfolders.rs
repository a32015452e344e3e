//! `/v1/vfolders`: create, list, get, delete, clone (SPEC §7.1, §7.3). A user sees and
//! changes their own folders; another owner's folder is 404, except that a `cloneable`
//! one may be read and cloned by naming its owner (`?owner=`). Admins name the owner
//! (`?owner=`, or `owner` in the body of a create).
//!
//! A clone and a deletion answer **202** with the background task's id before any file
//! is touched; the task runner (`crate::tasks`) does the work.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::ids::{Owner, VFolderName, VolumeName};
use domain::vfolder::{Permission, UsageMode, VFolder, VFolderSpec};
use projections::models::{documents, VFOLDERS};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ErrorBody, ErrorCode};
use super::extract::{Caller, Json, MinPosition, Query};
use super::schema;
use super::AppState;
use crate::auth::Role;
use crate::vfolders::Located;

/// `router()` of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_vfolder, list_vfolders))
        .routes(routes!(get_vfolder, delete_vfolder))
        .routes(routes!(clone_vfolder))
}

/// `?owner=` of a read: whose folder a name means, and the consistency wait.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OwnerQuery {
    /// The folder's owner (admins: required, else 404; users: another owner's
    /// cloneable folder).
    #[param(schema_with = schema::owner)]
    pub owner: Option<String>,
    /// Wait until the read models include this position.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

/// `?owner=` of a command: whose folder a name means.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OwnerOnly {
    /// The folder's owner (admins: required, else 404; users: another owner's
    /// cloneable folder, for a clone).
    #[param(schema_with = schema::owner)]
    pub owner: Option<String>,
}

/// Body of `POST /v1/vfolders`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVFolder {
    /// 1-64 letters, digits, `.`, `_`, `-`, starting with a letter or digit; not a reserved name.
    pub name: String,
    /// The volume (default: the configured default volume).
    #[schema(schema_with = schema::volume_or_null)]
    pub host: Option<String>,
    /// `general` (default) | `model` | `data`.
    #[schema(schema_with = schema::usage_mode_or_null)]
    pub usage_mode: Option<String>,
    /// `rw` (default) | `ro` | `wd`.
    #[schema(schema_with = schema::permission_or_null)]
    pub permission: Option<String>,
    /// Whether other users may clone it (default false).
    #[serde(default)]
    pub cloneable: bool,
    /// The owner (admins: required; users create their own).
    #[schema(schema_with = schema::owner_or_null)]
    pub owner: Option<String>,
}

/// Body of `POST /v1/vfolders/{name}/clone`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneVFolder {
    /// The new folder's name.
    pub target_name: String,
    /// Its volume (default: the source's).
    #[schema(schema_with = schema::volume_or_null)]
    pub target_host: Option<String>,
    /// `general` (default) | `model` | `data`.
    #[schema(schema_with = schema::usage_mode_or_null)]
    pub usage_mode: Option<String>,
    /// `rw` (default) | `ro` | `wd`.
    #[schema(schema_with = schema::permission_or_null)]
    pub permission: Option<String>,
    /// Whether other users may clone the new folder (default false).
    #[serde(default)]
    pub cloneable: bool,
}

/// A vfolder as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VFolderView {
    /// Its id.
    pub vfolder_id: Uuid,
    /// Its id as Backend.AI shows it (hex, no dashes).
    pub id: String,
    /// Name.
    pub name: String,
    /// Owner.
    pub owner: String,
    /// Volume.
    pub host: String,
    /// `general | model | data`.
    pub usage_mode: String,
    /// `ro | rw | wd`.
    pub permission: String,
    /// Whether other users may clone it.
    pub cloneable: bool,
    /// `ready | cloning | error | delete-pending | delete-complete`.
    pub status: String,
    /// Why it is in `error`.
    pub status_info: Option<String>,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// For a clone: its source.
    pub cloned_from: Option<Uuid>,
    /// The task filling or removing it.
    pub bgtask_id: Option<Uuid>,
    /// Its directory (admins only).
    pub path: Option<String>,
}

impl VFolderView {
    fn of(state: &AppState, caller: &Caller, v: &VFolder) -> Option<Self> {
        let spec = v.spec.as_ref()?;
        Some(Self {
            vfolder_id: spec.vfolder_id,
            id: spec.vfolder_id.simple().to_string(),
            name: spec.name.to_string(),
            owner: spec.owner.to_string(),
            host: spec.host.to_string(),
            usage_mode: spec.usage_mode.as_str().to_string(),
            permission: spec.permission.as_str().to_string(),
            cloneable: spec.cloneable,
            status: v.status.map(|s| s.as_str()).unwrap_or_default().to_string(),
            status_info: v.status_info.clone(),
            created_at: v.created_at,
            cloned_from: v.cloned_from,
            bgtask_id: v.task_id,
            path: caller
                .0
                .is_admin()
                .then(|| {
                    state
                        .app
                        .volumes
                        .folder_dir(spec.host.as_str(), spec.vfolder_id)
                })
                .flatten()
                .map(|p| p.display().to_string()),
        })
    }
}

/// A created folder and the consistency token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VFolderWritten {
    /// The folder.
    #[serde(flatten)]
    pub vfolder: VFolderView,
    /// Pass as `?min_position=` to read your write.
    pub position: i64,
}

/// A clone or deletion that started: 202 before any file is touched.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VFolderTaskStarted {
    /// The folder (clone target, or the folder being deleted).
    pub vfolder_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its volume.
    pub host: String,
    /// `cloning` or `delete-pending`.
    pub status: String,
    /// The background task doing the work (follow it at `/v1/events/background-task`).
    pub bgtask_id: Uuid,
    /// Pass as `?min_position=` to read your write.
    pub position: i64,
}

/// A list of folders.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VFolderList {
    /// Folders that are not deleted, by owner and name.
    pub items: Vec<VFolderView>,
}

/// `usage_mode` from a request (default `general`); 422 naming the field.
pub fn parse_mode(v: Option<&str>) -> Result<UsageMode, ApiError> {
    Ok(v.map(|m| UsageMode::parse("usage_mode", m))
        .transpose()?
        .unwrap_or_default())
}

/// `permission` from a request (default `rw`); 422 naming the field.
pub fn parse_permission(v: Option<&str>) -> Result<Permission, ApiError> {
    Ok(v.map(|p| Permission::parse("permission", p))
        .transpose()?
        .unwrap_or_default())
}

/// The volume a request names (default: the configured default); an unknown one is
/// 422 `volume_not_found` naming `field`.
pub(crate) fn volume(
    state: &AppState,
    field: &str,
    host: Option<&str>,
) -> Result<VolumeName, ApiError> {
    match host {
        None => Ok(state.app.volumes.default_volume().clone()),
        Some(h) => {
            VolumeName::parse(field, h)?;
            state
                .app
                .volumes
                .get(h)
                .map(|(name, _)| name.clone())
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::VolumeNotFound,
                        format!("{field}: no volume '{h}' is configured"),
                    )
                })
        }
    }
}

/// Whose namespace a request's name is looked up in, and whether that is the caller's own.
fn namespace(caller: &Caller, owner: Option<&str>) -> Result<(Owner, bool), ApiError> {
    match (&caller.0.role, owner) {
        (Role::User { owner: mine }, None) => Ok((Owner::from_stored(mine.clone()), true)),
        (Role::User { owner: mine }, Some(o)) => Ok((Owner::parse("owner", o)?, o == mine)),
        (Role::Admin, Some(o)) => Ok((Owner::parse("owner", o)?, true)),
        (Role::Admin, None) => Err(ApiError::new(
            ErrorCode::NotFound,
            "no such vfolder: admins name the folder's owner (?owner=)",
        )),
        (Role::Agent { .. }, _) => Err(ApiError::forbidden(
            "agent keys may only use the agent endpoints",
        )),
    }
}

/// The folder `name` of the request's namespace. Another owner's folder is found only
/// when `cloneable` and `readable_if_cloneable`; otherwise 404.
pub async fn locate(
    state: &AppState,
    caller: &Caller,
    name: &str,
    owner: Option<&str>,
    readable_if_cloneable: bool,
) -> Result<Located, ApiError> {
    let not_found = || ApiError::not_found("vfolder", name);
    let (owner, own) = namespace(caller, owner)?;
    let Ok(name) = VFolderName::parse("name", name) else {
        return Err(not_found());
    };
    let found = crate::vfolders::find(&state.app, &owner, &name)
        .await?
        .ok_or_else(not_found)?;
    let cloneable = found.folder.spec.as_ref().is_some_and(|s| s.cloneable);
    if own || (readable_if_cloneable && cloneable) {
        Ok(found)
    } else {
        Err(not_found())
    }
}

/// Create a vfolder (ready, empty).
#[utoipa::path(post, path = "/v1/vfolders", tag = "vfolders",
    request_body = CreateVFolder,
    responses(
        (status = 201, body = VFolderWritten),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "name_conflict", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, description = "invalid field (named in the message), volume_not_found", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn create_vfolder(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateVFolder>,
) -> Result<(StatusCode, axum::Json<VFolderWritten>), ApiError> {
    caller.require_user_or_admin()?;
    let owner = match (&caller.0.role, body.owner.as_deref()) {
        (Role::User { owner }, None) => Owner::from_stored(owner.clone()),
        (Role::User { owner }, Some(o)) if o == owner => Owner::from_stored(owner.clone()),
        (Role::User { .. }, Some(_)) => {
            return Err(ApiError::forbidden(
                "owner: users create their own vfolders",
            ))
        }
        (_, Some(o)) => Owner::parse("owner", o)?,
        (_, None) => {
            return Err(ApiError::validation(
                "owner",
                "admins name the new folder's owner",
            ))
        }
    };
    let spec = VFolderSpec {
        vfolder_id: Uuid::new_v4(),
        name: VFolderName::parse("name", &body.name)?,
        owner,
        host: volume(&state, "host", body.host.as_deref())?,
        usage_mode: parse_mode(body.usage_mode.as_deref())?,
        permission: parse_permission(body.permission.as_deref())?,
        cloneable: body.cloneable,
    };
    let meta = state.metadata(&caller.0);
    let (folder, position) = crate::vfolders::create(&state.app, spec, &meta).await?;
    let vfolder = VFolderView::of(&state, &caller, &folder)
        .ok_or_else(|| ApiError::not_found("vfolder", &body.name))?;
    Ok((
        StatusCode::CREATED,
        axum::Json(VFolderWritten {
            vfolder,
            position: position.global_position,
        }),
    ))
}

/// The caller's vfolders that are not deleted (admins: every owner's, or `?owner=`'s;
/// users naming another owner: that owner's cloneable folders).
#[utoipa::path(get, path = "/v1/vfolders", tag = "vfolders",
    params(OwnerQuery),
    responses((status = 200, body = VFolderList),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn list_vfolders(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<OwnerQuery>,
) -> Result<axum::Json<VFolderList>, ApiError> {
    caller.require_user_or_admin()?;
    MinPosition {
        min_position: q.min_position,
    }
    .wait(&state, &[VFOLDERS])
    .await?;
    let model = documents::vfolders();
    let db = state.app.db();
    let owner = q
        .owner
        .as_deref()
        .map(|o| Owner::parse("owner", o))
        .transpose()?;
    let mut folders = match (&caller.0.role, &owner) {
        // Another owner's folders: only the cloneable ones.
        (Role::User { owner: mine }, Some(o)) if o.as_str() != mine => {
            let mut theirs = model.of_owner(db, o.as_str()).await?;
            theirs.retain(|f| f.spec.as_ref().is_some_and(|s| s.cloneable));
            theirs
        }
        (Role::User { owner }, _) => model.of_owner(db, owner).await?,
        (_, Some(o)) => model.of_owner(db, o.as_str()).await?,
        (_, None) => model.all(db).await?,
    };
    folders.retain(|f| {
        f.status
            .is_some_and(|s| s != domain::vfolder::VFolderStatus::DeleteComplete)
    });
    let mut items: Vec<VFolderView> = folders
        .iter()
        .filter_map(|f| VFolderView::of(&state, &caller, f))
        .collect();
    items.sort_by(|a, b| (&a.owner, &a.name).cmp(&(&b.owner, &b.name)));
    Ok(axum::Json(VFolderList { items }))
}

/// One vfolder by name (reflects every acknowledged change, without `?min_position`).
#[utoipa::path(get, path = "/v1/vfolders/{name}", tag = "vfolders",
    params(("name" = String, Path, description = "Folder name"), OwnerQuery),
    responses((status = 200, body = VFolderView),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn get_vfolder(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<OwnerQuery>,
) -> Result<axum::Json<VFolderView>, ApiError> {
    caller.require_user_or_admin()?;
    MinPosition {
        min_position: q.min_position,
    }
    .wait(&state, &[VFOLDERS])
    .await?;
    let found = locate(&state, &caller, &name, q.owner.as_deref(), true).await?;
    VFolderView::of(&state, &caller, &found.folder)
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("vfolder", &name))
}

/// Delete a vfolder: `delete-pending` at once (202), its files removed by a background
/// task, then `delete-complete`. A folder with clones from it running is 409.
#[utoipa::path(delete, path = "/v1/vfolders/{name}", tag = "vfolders",
    params(("name" = String, Path, description = "Folder name"), OwnerOnly),
    responses((status = 202, body = VFolderTaskStarted),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn delete_vfolder(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<OwnerOnly>,
) -> Result<(StatusCode, axum::Json<VFolderTaskStarted>), ApiError> {
    caller.require_user_or_admin()?;
    let found = locate(&state, &caller, &name, q.owner.as_deref(), false).await?;
    let meta = state.metadata(&caller.0);
    let started = crate::vfolders::delete(&state.app, &found, &meta).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(task_started(&started))))
}

fn task_started(s: &crate::vfolders::Started) -> VFolderTaskStarted {
    let spec = s.folder.spec.as_ref();
    VFolderTaskStarted {
        vfolder_id: s.vfolder_id,
        name: spec.map(|p| p.name.to_string()).unwrap_or_default(),
        host: spec.map(|p| p.host.to_string()).unwrap_or_default(),
        status: s
            .folder
            .status
            .map(|st| st.as_str())
            .unwrap_or_default()
            .to_string(),
        bgtask_id: s.task_id,
        position: s.position.global_position,
    }
}

/// Clone a vfolder: 202 with the target (`cloning`) and the background task's id
/// before a byte is copied. The source must be `ready`, and the caller's own or
/// `cloneable` (another owner's: name them with `?owner=`).
#[utoipa::path(post, path = "/v1/vfolders/{name}/clone", tag = "vfolders",
    params(("name" = String, Path, description = "Source folder name"), OwnerOnly),
    request_body = CloneVFolder,
    responses((status = 202, body = VFolderTaskStarted),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "name_conflict, or the source is not ready", body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
              (status = 422, description = "invalid field (named in the message), volume_not_found", body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn clone_vfolder(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<OwnerOnly>,
    Json(body): Json<CloneVFolder>,
) -> Result<(StatusCode, axum::Json<VFolderTaskStarted>), ApiError> {
    caller.require_user_or_admin()?;
    let target_name = VFolderName::parse("target_name", &body.target_name)?;
    let usage_mode = parse_mode(body.usage_mode.as_deref())?;
    let permission = parse_permission(body.permission.as_deref())?;
    let source = locate(&state, &caller, &name, q.owner.as_deref(), true).await?;
    let Some(source_spec) = source.folder.spec.clone() else {
        return Err(ApiError::not_found("vfolder", &name));
    };
    let host = match body.target_host.as_deref() {
        None => source_spec.host.clone(),
        Some(h) => volume(&state, "target_host", Some(h))?,
    };
    let owner = match &caller.0.role {
        Role::User { owner } => Owner::from_stored(owner.clone()),
        _ => source_spec.owner.clone(),
    };
    let target = VFolderSpec {
        vfolder_id: Uuid::new_v4(),
        name: target_name,
        owner,
        host,
        usage_mode,
        permission,
        cloneable: body.cloneable,
    };
    let meta = state.metadata(&caller.0);
    let started = crate::vfolders::clone(&state.app, &source, target, &meta).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(task_started(&started))))
}
