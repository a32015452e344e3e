//! File transfer under `/v1/vfolders/{name}/files/…` (SPEC §7.1): upload (`PUT`,
//! streamed to disk, parents created), download (`GET`, streamed), listing
//! (`GET …/files?path=dir`) and removal (`DELETE`). Never inside a transaction, never
//! outside the folder: every path goes through [`crate::volumes::resolve`] (no `..`,
//! no absolute path, no NUL, no symlink on the way), and files are opened with
//! `O_NOFOLLOW`. A `ro` folder refuses writes (403 `read_only`); a folder that is not
//! `ready` (being cloned, in error, being deleted) refuses them too (409).
//!
//! An upload is written to a hidden temporary name beside its target and renamed when
//! complete, so a download never sees half a file; over `max_upload_bytes` it is 413
//! and nothing is left behind. These routes are exempt from the request timeout.
//! They are served outside the generated OpenAPI document (their wildcard path is not
//! expressible in it); docs/ARCHITECTURE.md lists them.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;

use super::error::{ApiError, ErrorCode};
use super::extract::{Caller, Query};
use super::vfolders::locate;
use super::AppState;
use crate::volumes::{resolve, PathError};
use domain::vfolder::VFolderStatus;

/// The route of one file.
pub const FILE_ROUTE: &str = "/v1/vfolders/{name}/files/{*path}";

/// The file routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/vfolders/{name}/files", get(list_files))
        .route(FILE_ROUTE, get(download).put(upload).delete(remove))
}

/// `?owner=` (admins) and, for listings, `?path=`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileQuery {
    /// The folder's owner (admins; users: another owner's cloneable folder, read only).
    pub owner: Option<String>,
    /// The directory to list (default: the folder's root).
    pub path: Option<String>,
    /// `DELETE` of a non-empty directory.
    #[serde(default)]
    pub recursive: bool,
}

/// One entry of a listing.
#[derive(Debug, Serialize)]
pub struct FileEntry {
    /// Its name.
    pub name: String,
    /// `file | dir | symlink | other`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits, as octal text (`"0755"`).
    pub mode: String,
    /// Modification time.
    pub mtime: Option<DateTime<Utc>>,
}

/// A listing.
#[derive(Debug, Serialize)]
pub struct Listing {
    /// The directory listed.
    pub path: String,
    /// Its entries by name.
    pub items: Vec<FileEntry>,
}

/// What an upload wrote.
#[derive(Debug, Serialize)]
pub struct Uploaded {
    /// The file's path in the folder.
    pub path: String,
    /// Its size.
    pub size: u64,
}

async fn folder_dir(
    state: &AppState,
    caller: &Caller,
    name: &str,
    owner: Option<&str>,
    write: bool,
) -> Result<(PathBuf, String), ApiError> {
    caller.require_user_or_admin()?;
    let found = locate(state, caller, name, owner, !write).await?;
    let spec = found
        .folder
        .spec
        .as_ref()
        .ok_or_else(|| ApiError::not_found("vfolder", name))?;
    if write {
        // Another owner's folder is never writable through this API.
        if !spec.permission.writable() {
            return Err(ApiError::new(
                ErrorCode::ReadOnly,
                format!("vfolder '{name}' is read-only (permission ro)"),
            ));
        }
    }
    match found.folder.status {
        Some(VFolderStatus::Ready) => {}
        Some(s) if !write && s == VFolderStatus::Error => {}
        Some(s) => {
            return Err(ApiError::conflict(format!(
                "vfolder '{name}' is {}; its files cannot be used now",
                s.as_str()
            )))
        }
        None => return Err(ApiError::not_found("vfolder", name)),
    }
    state
        .app
        .volumes
        .folder_dir(spec.host.as_str(), spec.vfolder_id)
        .map(|dir| (dir, spec.host.to_string()))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::VolumeUnavailable,
                format!("volume '{}' is not configured on this server", spec.host),
            )
        })
}

fn io_error(e: std::io::Error) -> ApiError {
    match e.kind() {
        std::io::ErrorKind::NotFound => ApiError::new(ErrorCode::NotFound, "no such file"),
        std::io::ErrorKind::NotADirectory => ApiError::new(
            ErrorCode::InvalidPath,
            "path: a component that must be a directory is a file",
        ),
        std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::IsADirectory => {
            ApiError::conflict("path: a file or directory of that name is in the way")
        }
        std::io::ErrorKind::StorageFull => {
            ApiError::new(ErrorCode::InsufficientSpace, "the volume is full")
        }
        _ if e.raw_os_error() == Some(40) => {
            // ELOOP: the last component became a symlink (O_NOFOLLOW).
            PathError::Symlink("(last component)".into()).into()
        }
        _ => ApiError::new(
            ErrorCode::VolumeUnavailable,
            format!("file system error: {e}"),
        ),
    }
}

fn nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, path)): Path<(String, String)>,
    Query(q): Query<FileQuery>,
) -> Result<Response, ApiError> {
    let (dir, _) = folder_dir(&state, &caller, &name, q.owner.as_deref(), false).await?;
    let file_path = resolve(&dir, &path, false)?;
    let file = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nofollow())
        .open(&file_path)
        .await
        .map_err(io_error)?;
    let meta = file.metadata().await.map_err(io_error)?;
    if !meta.is_file() {
        return Err(ApiError::validation("path", "is not a regular file"));
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, meta.len().to_string()),
        ],
        body,
    )
        .into_response())
}

async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, path)): Path<(String, String)>,
    Query(q): Query<FileQuery>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<(StatusCode, axum::Json<Uploaded>), ApiError> {
    let (dir, host) = folder_dir(&state, &caller, &name, q.owner.as_deref(), true).await?;
    let target = resolve(&dir, &path, false)?;
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = announced {
        let limit = state.app.settings.max_upload_bytes;
        if len > limit {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the file is larger than the {limit}-byte upload limit"),
            ));
        }
        let available = state.app.volumes.available(&host).map_err(io_error)?;
        if len > available {
            return Err(ApiError::new(
                ErrorCode::InsufficientSpace,
                format!("the volume has {available} bytes available; the file has {len}"),
            ));
        }
    }
    if tokio::fs::symlink_metadata(&target)
        .await
        .is_ok_and(|m| m.is_dir())
    {
        return Err(ApiError::conflict("path: is a directory"));
    }
    let parent = target
        .parent()
        .map(PathBuf::from)
        .ok_or_else(|| ApiError::validation("path", "must name a file"))?;
    tokio::fs::create_dir_all(&parent).await.map_err(io_error)?;
    // The parents exist now: check again that none is a symlink (a planted one).
    resolve(&dir, &path, false)?;
    let limit = state.app.settings.max_upload_bytes;
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let partial = parent.join(format!(
        ".{file_name}.{}.upload",
        uuid::Uuid::new_v4().simple()
    ));
    let result = write_body(&partial, body, limit).await;
    let size = match result {
        Ok(size) => size,
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
    };
    if let Err(e) = tokio::fs::rename(&partial, &target).await {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(io_error(e));
    }
    Ok((StatusCode::CREATED, axum::Json(Uploaded { path, size })))
}

async fn write_body(partial: &std::path::Path, body: Body, limit: u64) -> Result<u64, ApiError> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nofollow())
        .mode(0o644)
        .open(partial)
        .await
        .map_err(io_error)?;
    let mut size: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the upload was interrupted: {e}")))?;
        size = size.saturating_add(chunk.len() as u64);
        if size > limit {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("the file is larger than the {limit}-byte upload limit"),
            ));
        }
        file.write_all(&chunk).await.map_err(io_error)?;
    }
    file.flush().await.map_err(io_error)?;
    file.sync_all().await.map_err(io_error)?;
    Ok(size)
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, path)): Path<(String, String)>,
    Query(q): Query<FileQuery>,
) -> Result<StatusCode, ApiError> {
    let (dir, _) = folder_dir(&state, &caller, &name, q.owner.as_deref(), true).await?;
    // The last component may be a symlink: it is removed itself, never followed.
    let parts = crate::volumes::components(&path, false)?;
    let parent_rel = parts[..parts.len().saturating_sub(1)].join("/");
    let parent = resolve(&dir, &parent_rel, true)?;
    let target = parent.join(parts.last().map(String::as_str).unwrap_or_default());
    let meta = tokio::fs::symlink_metadata(&target)
        .await
        .map_err(io_error)?;
    if meta.is_dir() {
        let result = if q.recursive {
            tokio::fs::remove_dir_all(&target).await
        } else {
            tokio::fs::remove_dir(&target).await
        };
        result.map_err(|e| {
            if e.kind() == std::io::ErrorKind::DirectoryNotEmpty {
                ApiError::conflict("path: the directory is not empty (use ?recursive=true)")
            } else {
                io_error(e)
            }
        })?;
    } else {
        tokio::fs::remove_file(&target).await.map_err(io_error)?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn list_files(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<FileQuery>,
) -> Result<axum::Json<Listing>, ApiError> {
    let (dir, _) = folder_dir(&state, &caller, &name, q.owner.as_deref(), false).await?;
    let rel = q.path.clone().unwrap_or_default();
    let at = resolve(&dir, &rel, true)?;
    let mut read = tokio::fs::read_dir(&at).await.map_err(io_error)?;
    let mut items = Vec::new();
    while let Some(entry) = read.next_entry().await.map_err(io_error)? {
        let Ok(m) = tokio::fs::symlink_metadata(entry.path()).await else {
            continue;
        };
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            "symlink"
        } else if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else {
            "other"
        };
        let name = entry.file_name().to_string_lossy().to_string();
        // Files being written (uploads, clone copies) are not shown.
        if name.ends_with(".upload") && name.starts_with('.')
            || name.ends_with(crate::tasks::copy::PARTIAL_SUFFIX)
        {
            continue;
        }
        items.push(FileEntry {
            name,
            kind,
            size: m.len(),
            mode: format!("{:04o}", m.mode() & 0o7777),
            mtime: m.modified().ok().map(DateTime::<Utc>::from),
        });
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(axum::Json(Listing { path: rel, items }))
}
