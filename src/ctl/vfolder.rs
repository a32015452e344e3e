//! `sessionctl vfolder create | list | clone | upload | download | rm` over HTTP
//! (`/v1/vfolders`, SPEC §7.1, §7.3, §11). Human output by default; `--json` prints the
//! server's JSON (`download`, whose answer is the file, prints a small object of its
//! own). `clone --watch` and `rm --watch` follow the task like `bgtask watch`; with
//! `--json` they print the server's 202 answer on one line, then the stream's frames,
//! so that stdout is one JSON object per line.
//!
//! Transfers are streamed: an upload reads the local file as it sends it; a download is
//! written to a hidden temporary name beside its target and renamed once complete, so a
//! failed or interrupted download leaves nothing behind.

use futures::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

use super::remote::{byte_bar, Remote};
use super::{file_error, out, pretty_json, table, CtlError, VfolderArgs, VfolderCommand};

/// Runs one `vfolder` subcommand.
pub(super) async fn run(args: VfolderArgs) -> Result<(), CtlError> {
    let remote = Remote::new(&args.remote)?;
    match args.command {
        VfolderCommand::Create {
            name,
            host,
            usage_mode,
            permission,
            cloneable,
        } => {
            let mut body = json!({"name": name, "cloneable": cloneable});
            optional(&mut body, "host", host);
            optional(&mut body, "usage_mode", usage_mode);
            optional(&mut body, "permission", permission);
            create(&remote, body).await
        }
        VfolderCommand::List => list(&remote).await,
        VfolderCommand::Clone {
            source,
            target,
            host,
            usage_mode,
            permission,
            cloneable,
            watch,
        } => {
            let mut body = json!({"target_name": target, "cloneable": cloneable});
            optional(&mut body, "target_host", host);
            optional(&mut body, "usage_mode", usage_mode);
            optional(&mut body, "permission", permission);
            clone(&remote, &source, body, watch).await
        }
        VfolderCommand::Upload {
            name,
            local,
            remote_path,
        } => upload(&remote, &name, &local, remote_path).await,
        VfolderCommand::Download {
            name,
            remote_path,
            local,
        } => download(&remote, &name, &remote_path, local).await,
        VfolderCommand::Rm { name, watch } => rm(&remote, &name, watch).await,
    }
}

/// Sets `field` of a JSON body when a value was given.
fn optional(body: &mut Value, field: &str, value: Option<String>) {
    if let (Some(v), Some(map)) = (value, body.as_object_mut()) {
        map.insert(field.to_string(), Value::String(v));
    }
}

/// A string field of the server's JSON (`-` when absent).
fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or("-")
}

/// `vfolder create`: `POST /v1/vfolders`.
async fn create(remote: &Remote, body: Value) -> Result<(), CtlError> {
    let url = remote.url(["v1", "vfolders"])?;
    let created = remote
        .json(remote.request(Method::POST, url).json(&body))
        .await?;
    if remote.json {
        out(&pretty_json(&created)?);
    } else {
        out(&format!(
            "created vfolder '{}' on {} ({}), id {}",
            text(&created, "name"),
            text(&created, "host"),
            text(&created, "status"),
            text(&created, "vfolder_id"),
        ));
    }
    Ok(())
}

/// `vfolder list`: `GET /v1/vfolders` as a table NAME STATUS HOST PERMISSION.
async fn list(remote: &Remote) -> Result<(), CtlError> {
    let url = remote.url(["v1", "vfolders"])?;
    let listed = remote.json(remote.request(Method::GET, url)).await?;
    if remote.json {
        out(&pretty_json(&listed)?);
        return Ok(());
    }
    let rows = listed["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|f| {
            ["name", "status", "host", "permission"]
                .iter()
                .map(|k| text(f, k).to_string())
                .collect()
        })
        .collect();
    table(&["NAME", "STATUS", "HOST", "PERMISSION"], rows);
    Ok(())
}

/// `vfolder clone SRC DST [--watch]`: `POST /v1/vfolders/SRC/clone` (202 with the task).
async fn clone(remote: &Remote, source: &str, body: Value, watch: bool) -> Result<(), CtlError> {
    let url = remote.url(["v1", "vfolders", source, "clone"])?;
    let started = remote
        .json(remote.request(Method::POST, url).json(&body))
        .await?;
    let task_id = text(&started, "bgtask_id").to_string();
    if remote.json {
        out(&if watch {
            started.to_string()
        } else {
            pretty_json(&started)?
        });
    } else {
        out(&format!(
            "cloning '{source}' to '{}' on {}: task {task_id}{}",
            text(&started, "name"),
            text(&started, "host"),
            if watch {
                String::new()
            } else {
                format!(" (follow it with: sessionctl bgtask watch {task_id})")
            }
        ));
    }
    if watch {
        super::bgtask::watch(remote, &task_id).await?;
    }
    Ok(())
}

/// `vfolder rm NAME [--watch]`: `DELETE /v1/vfolders/NAME` (202 with the task).
async fn rm(remote: &Remote, name: &str, watch: bool) -> Result<(), CtlError> {
    let url = remote.url(["v1", "vfolders", name])?;
    let started = remote.json(remote.request(Method::DELETE, url)).await?;
    let task_id = text(&started, "bgtask_id").to_string();
    if remote.json {
        out(&if watch {
            started.to_string()
        } else {
            pretty_json(&started)?
        });
    } else {
        out(&format!(
            "deleting '{name}' ({}): task {task_id}",
            text(&started, "status")
        ));
    }
    if watch {
        super::bgtask::watch(remote, &task_id).await?;
    }
    Ok(())
}

/// The components of a `/`-separated path in a folder (empty ones dropped: the server
/// sees `a//b` as `a/b` anyway).
fn components(path: &str) -> Result<Vec<&str>, CtlError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Err(CtlError::Usage(format!(
            "'{path}' does not name a file in the folder"
        )));
    }
    Ok(parts)
}

/// The URL of file `path` of folder `name`.
fn file_url(remote: &Remote, name: &str, path: &str) -> Result<reqwest::Url, CtlError> {
    let parts = components(path)?;
    remote.url(["v1", "vfolders", name, "files"].into_iter().chain(parts))
}

/// `vfolder upload NAME LOCAL [REMOTE]`: `PUT /v1/vfolders/NAME/files/REMOTE`, the body
/// streamed from the file.
async fn upload(
    remote: &Remote,
    name: &str,
    local: &Path,
    remote_path: Option<String>,
) -> Result<(), CtlError> {
    let remote_path = match remote_path {
        Some(p) => p,
        None => local
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
            .ok_or_else(|| {
                CtlError::Usage(format!(
                    "{} has no file name to upload it as: give the remote path",
                    local.display()
                ))
            })?,
    };
    let url = file_url(remote, name, &remote_path)?;
    let file = tokio::fs::File::open(local)
        .await
        .map_err(|e| file_error(local, e))?;
    let meta = file.metadata().await.map_err(|e| file_error(local, e))?;
    if !meta.is_file() {
        return Err(CtlError::Usage(format!(
            "{} is not a regular file",
            local.display()
        )));
    }
    let bar = byte_bar(meta.len())?;
    let counted = bar.clone();
    let stream = tokio_util::io::ReaderStream::new(file).inspect(move |chunk| {
        if let Ok(c) = chunk {
            counted.inc(c.len() as u64);
        }
    });
    let request = remote
        .request(Method::PUT, url)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, meta.len())
        .body(reqwest::Body::wrap_stream(stream));
    let result = remote.json(request).await;
    bar.finish_and_clear();
    let uploaded = result?;
    if remote.json {
        out(&pretty_json(&uploaded)?);
    } else {
        out(&format!(
            "uploaded {} to {name}:{} ({} bytes)",
            local.display(),
            text(&uploaded, "path"),
            uploaded["size"].as_u64().unwrap_or(0)
        ));
    }
    Ok(())
}

/// `vfolder download NAME REMOTE [LOCAL]`: `GET /v1/vfolders/NAME/files/REMOTE` streamed
/// to a temporary file beside LOCAL, renamed to LOCAL when complete.
async fn download(
    remote: &Remote,
    name: &str,
    remote_path: &str,
    local: Option<PathBuf>,
) -> Result<(), CtlError> {
    let url = file_url(remote, name, remote_path)?;
    let file_name = components(remote_path)?
        .last()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let target = match local {
        None => PathBuf::from(&file_name),
        Some(p) if p.is_dir() => p.join(&file_name),
        Some(p) => p,
    };
    let target_name = target
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| CtlError::Usage(format!("{} does not name a file", target.display())))?;
    // Ask first: an error answer touches nothing on disk.
    let response = remote.send(remote.request(Method::GET, url)).await?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let partial = dir.join(format!(
        ".{target_name}.{}.download",
        uuid::Uuid::new_v4().simple()
    ));
    let written = tokio::select! {
        r = receive(remote, response, &partial) => r,
        _ = tokio::signal::ctrl_c() => Err(CtlError::Other("interrupted".into())),
    };
    let size = match written {
        Ok(size) => size,
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
    };
    if let Err(e) = tokio::fs::rename(&partial, &target).await {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(file_error(&target, e));
    }
    if remote.json {
        out(&pretty_json(&json!({
            "name": name,
            "path": remote_path,
            "local": target.display().to_string(),
            "size": size,
        }))?);
    } else {
        out(&format!(
            "downloaded {name}:{remote_path} to {} ({size} bytes)",
            target.display()
        ));
    }
    Ok(())
}

/// Writes a download's body to `partial`; returns its size. A body shorter than its
/// `Content-Length` is a broken transfer.
async fn receive(
    remote: &Remote,
    mut response: reqwest::Response,
    partial: &Path,
) -> Result<u64, CtlError> {
    let expected = response.content_length();
    let bar = byte_bar(expected.unwrap_or(0))?;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(partial)
        .await
        .map_err(|e| file_error(partial, e))?;
    let mut size: u64 = 0;
    while let Some(chunk) = response.chunk().await.map_err(|e| remote.transport(&e))? {
        file.write_all(&chunk)
            .await
            .map_err(|e| file_error(partial, e))?;
        size = size.saturating_add(chunk.len() as u64);
        bar.set_position(size);
    }
    bar.finish_and_clear();
    if let Some(expected) = expected.filter(|&e| e != size) {
        return Err(CtlError::Broken {
            server: remote.server().to_string(),
            reason: format!("the download ended after {size} of {expected} bytes"),
        });
    }
    file.flush().await.map_err(|e| file_error(partial, e))?;
    file.sync_all().await.map_err(|e| file_error(partial, e))?;
    Ok(size)
}
