//! The Backend.AI compatibility routes (SPEC §13): `GET /`, `POST /folders`,
//! `GET /folders`, `GET /folders/_/id`, `POST /folders/{id or name}/clone` and
//! `GET /events/background-task`, in Backend.AI's shapes, for its unmodified client SDK
//! (`backend-ai-client` 26.9.6). They are thin adapters over the same services as
//! `/v1` (`crate::vfolders`, the task stream of `super::bgtasks`): no rule is
//! implemented twice. Requests are signed (`crate::compat::auth`) or carry a bearer key.
//!
//! The SDK sends JSON bodies on some GETs (`{"all": false}`, `{"name": …}`); they are
//! read as it sends them. These routes are not in `/openapi.json` (a GET with a body
//! has no place there); `tests/compat` drives them with the real SDK.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use domain::ids::{Owner, VFolderName};
use domain::vfolder::{VFolder, VFolderSpec};
use projections::models::{documents, VFOLDERS};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::error::ApiError;
use super::extract::Caller;
use super::vfolders::{parse_mode, parse_permission, volume};
use super::AppState;
use crate::auth::Role;
use crate::vfolders::Located;

/// The API version `GET /` announces (Backend.AI's client signs with it).
pub const API_VERSION: &str = "v8.20240915";

/// The compatibility routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(hello))
        .route("/folders", post(create_folder).get(list_folders))
        .route("/folders/_/id", get(folder_id))
        .route("/folders/{key}/clone", post(clone_folder))
        .route("/events/background-task", get(super::bgtasks::task_events))
}

/// `GET /`, without authentication: the version handshake of the SDK.
async fn hello() -> axum::Json<Value> {
    axum::Json(json!({
        "version": API_VERSION,
        "manager": format!("sessiond {}", env!("CARGO_PKG_VERSION")),
    }))
}

/// A JSON body the SDK may send (also on GET); empty means `{}`.
fn body<T: for<'de> Deserialize<'de> + Default>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::malformed_json(format!("body: {e}")))
}

fn owner_of(caller: &Caller) -> Result<Owner, ApiError> {
    match &caller.0.role {
        Role::User { owner } => Ok(Owner::from_stored(owner.clone())),
        Role::Admin => Err(ApiError::forbidden(
            "the Backend.AI folder routes act as a user: use a user keypair",
        )),
        Role::Agent { .. } => Err(ApiError::forbidden(
            "agent keys may only use the agent endpoints",
        )),
    }
}

/// A folder in Backend.AI's shape (`VFolderCloneInfoDTO` and the list's items).
fn folder_json(v: &VFolder) -> Value {
    let Some(spec) = v.spec.as_ref() else {
        return Value::Null;
    };
    json!({
        "id": spec.vfolder_id.simple().to_string(),
        "name": spec.name.as_str(),
        "host": spec.host.as_str(),
        "usage_mode": spec.usage_mode.as_str(),
        "permission": spec.permission.as_str(),
        "cloneable": spec.cloneable,
        "status": v.status.map(|s| s.as_str()).unwrap_or_default(),
        "creator": spec.owner.as_str(),
        "user": spec.owner.as_str(),
        "group": Value::Null,
        "ownership_type": "user",
        "type": "user",
        "is_owner": true,
        "max_size": 0,
        "created_at": v.created_at,
    })
}

#[derive(Debug, Default, Deserialize)]
struct CreateBody {
    name: Option<String>,
    host: Option<String>,
    usage_mode: Option<String>,
    permission: Option<String>,
    #[serde(default)]
    cloneable: bool,
    // Sent by the SDK, unused by sessiond (no unmanaged paths, no project folders).
    #[allow(dead_code)]
    unmanaged_path: Option<String>,
    #[allow(dead_code)]
    group: Option<String>,
}

/// `POST /folders`: create a folder (201, Backend.AI's shape).
async fn create_folder(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let owner = owner_of(&caller)?;
    let b: CreateBody = body(&bytes)?;
    let name = b
        .name
        .ok_or_else(|| ApiError::validation("name", "is required"))?;
    let spec = VFolderSpec {
        vfolder_id: Uuid::new_v4(),
        name: VFolderName::parse("name", &name)?,
        owner,
        host: volume(&state, "host", b.host.as_deref())?,
        usage_mode: parse_mode(b.usage_mode.as_deref())?,
        permission: parse_permission(b.permission.as_deref())?,
        cloneable: b.cloneable,
    };
    let meta = state.metadata(&caller.0);
    let (folder, _) = crate::vfolders::create(&state.app, spec, &meta).await?;
    Ok((StatusCode::CREATED, axum::Json(folder_json(&folder))))
}

/// `GET /folders` (the SDK sends `{"all": …}`): the caller's folders that are not
/// deleted, as a JSON array; waits (bounded) for the read model to include every
/// acknowledged change first.
async fn list_folders(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Value>, ApiError> {
    let owner = owner_of(&caller)?;
    state
        .app
        .wait_for_head(&[VFOLDERS], state.config.min_position_timeout)
        .await?;
    let mut folders = documents::vfolders()
        .of_owner(state.app.db(), owner.as_str())
        .await?;
    folders.retain(|f| {
        f.status
            .is_some_and(|s| s != domain::vfolder::VFolderStatus::DeleteComplete)
    });
    folders.sort_by(|a, b| {
        let name = |v: &VFolder| {
            v.spec
                .as_ref()
                .map(|s| s.name.to_string())
                .unwrap_or_default()
        };
        name(a).cmp(&name(b))
    });
    Ok(axum::Json(Value::Array(
        folders.iter().map(folder_json).collect(),
    )))
}

#[derive(Debug, Default, Deserialize)]
struct NameBody {
    name: Option<String>,
}

/// `GET /folders/_/id` with `{"name": …}`: `{"id": <hex>}`.
async fn folder_id(
    State(state): State<AppState>,
    caller: Caller,
    bytes: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let owner = owner_of(&caller)?;
    let b: NameBody = body(&bytes)?;
    let name = b
        .name
        .ok_or_else(|| ApiError::validation("name", "is required"))?;
    let located = find_by_name(&state, &owner, &name).await?;
    Ok(axum::Json(json!({"id": located.id.simple().to_string()})))
}

async fn find_by_name(state: &AppState, owner: &Owner, name: &str) -> Result<Located, ApiError> {
    let not_found = || ApiError::not_found("vfolder", name);
    let Ok(parsed) = VFolderName::parse("name", name) else {
        return Err(not_found());
    };
    crate::vfolders::find(&state.app, owner, &parsed)
        .await?
        .ok_or_else(not_found)
}

/// The folder a path names: a hex id (what the SDK sends after resolving the name), or
/// a name. Another owner's folder is found only when cloneable.
async fn locate(state: &AppState, owner: &Owner, key: &str) -> Result<Located, ApiError> {
    let not_found = || ApiError::not_found("vfolder", key);
    if key.len() == 32 && key.chars().all(|c| c.is_ascii_hexdigit()) {
        let id = Uuid::parse_str(key).map_err(|_| not_found())?;
        let folder: VFolder = state.app.commands.load(&id.to_string()).await?;
        let visible = folder.is_live()
            && folder
                .spec
                .as_ref()
                .is_some_and(|s| &s.owner == owner || s.cloneable);
        return if visible {
            Ok(Located { id, folder })
        } else {
            Err(not_found())
        };
    }
    find_by_name(state, owner, key).await
}

#[derive(Debug, Default, Deserialize)]
struct CloneBody {
    target_name: Option<String>,
    #[serde(alias = "folder_host")]
    target_host: Option<String>,
    usage_mode: Option<String>,
    permission: Option<String>,
    #[serde(default)]
    cloneable: bool,
}

/// `POST /folders/{id or name}/clone`: 201 with Backend.AI's flat clone info,
/// `bgtask_id` included, before a byte is copied.
async fn clone_folder(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    bytes: Bytes,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let owner = owner_of(&caller)?;
    let b: CloneBody = body(&bytes)?;
    let target_name = b
        .target_name
        .ok_or_else(|| ApiError::validation("target_name", "is required"))?;
    let target_name = VFolderName::parse("target_name", &target_name)?;
    let source = locate(&state, &owner, &key).await?;
    let Some(source_spec) = source.folder.spec.clone() else {
        return Err(ApiError::not_found("vfolder", &key));
    };
    let host = match b.target_host.as_deref() {
        None => source_spec.host.clone(),
        Some(h) => volume(&state, "target_host", Some(h))?,
    };
    let target = VFolderSpec {
        vfolder_id: Uuid::new_v4(),
        name: target_name,
        owner,
        host,
        usage_mode: parse_mode(b.usage_mode.as_deref())?,
        permission: parse_permission(b.permission.as_deref())?,
        cloneable: b.cloneable,
    };
    let meta = state.metadata(&caller.0);
    let started = crate::vfolders::clone(&state.app, &source, target, &meta).await?;
    let mut info = folder_json(&started.folder);
    if let Some(o) = info.as_object_mut() {
        o.insert("bgtask_id".into(), json!(started.task_id.to_string()));
    }
    Ok((StatusCode::CREATED, axum::Json(info)))
}
