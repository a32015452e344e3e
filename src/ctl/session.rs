//! `sessionctl session create | list | show | cancel | watch | logs | history` (SPEC
//! §11): a researcher's sessions over HTTP. Human tables by default, the server's JSON
//! with `--json`.
//!
//! `<id|name>`: a UUID is used as is; a name is looked up among the caller's sessions
//! (the live one — names are unique among an owner's non-terminal sessions — else the
//! most recently created).
//!
//! `create --wait` and `watch` follow the session's event stream (`GET
//! /v1/events/sessions?session_id=`, resumed with `Last-Event-ID` when it breaks) and end
//! when the session does: exit 0 on TERMINATED, 1 on ERROR or CANCELLED (nothing moves an
//! ERROR session by itself, so it counts as an end here). `create --wait` of an
//! interactive or inference session returns at RUNNING.

use reqwest::header::ACCEPT;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

use super::remote::{Remote, SseReader};
use super::{out, pretty_json, table, CtlError, SessionArgs, SessionCommand};

/// A stream silent this long is treated as broken (the server's keep-alive is 15 s).
const IDLE: Duration = Duration::from_secs(45);
/// Reconnections in a row before giving up.
const RECONNECTS: u32 = 5;

/// Runs one `session` subcommand.
pub(super) async fn run(args: SessionArgs) -> Result<(), CtlError> {
    let remote = Remote::new(&args.remote)?;
    match args.command {
        SessionCommand::Create {
            name,
            session_type,
            image,
            resources,
            group,
            command,
            batch_timeout,
            priority,
            wait,
        } => {
            let mut body = json!({
                "name": name, "type": session_type, "image": image,
                "resources": parse_resources(&resources)?,
            });
            if let Some(g) = group {
                body["scaling_group"] = json!(g);
            }
            if let Some(c) = command {
                body["startup_command"] = json!(c);
            }
            if let Some(t) = batch_timeout {
                body["batch_timeout"] = json!(t);
            }
            if let Some(p) = priority {
                body["priority"] = json!(p);
            }
            let created = remote
                .json(
                    remote
                        .request(Method::POST, remote.url(["v1", "sessions"])?)
                        .json(&body),
                )
                .await?;
            let id = created["session_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if remote.json {
                out(&created.to_string());
            } else {
                out(&id);
            }
            if wait {
                let until_running = session_type != "batch";
                follow(&remote, &id, until_running).await?;
            }
            Ok(())
        }
        SessionCommand::List {
            status,
            group,
            session_type,
            limit,
        } => list(&remote, status, group, session_type, limit).await,
        SessionCommand::Show { session } => {
            let id = resolve(&remote, &session).await?;
            let s = get(&remote, &id).await?;
            if remote.json {
                out(&pretty_json(&s)?);
            } else {
                show(&s);
            }
            Ok(())
        }
        SessionCommand::Cancel { session, force } => {
            let id = resolve(&remote, &session).await?;
            let mut url = remote.url(["v1", "sessions", &id])?;
            if force {
                url.query_pairs_mut().append_pair("forced", "true");
            }
            let response = remote.send(remote.request(Method::DELETE, url)).await?;
            let accepted = response.status().as_u16() == 202;
            let body: Value = response.json().await.map_err(|e| CtlError::Broken {
                server: remote.server().to_string(),
                reason: e.to_string(),
            })?;
            if remote.json {
                out(&body.to_string());
            } else if accepted {
                out(&format!(
                    "{id} {} (already terminating)",
                    text(&body["status"])
                ));
            } else {
                out(&format!("{id} {}", text(&body["status"])));
            }
            Ok(())
        }
        SessionCommand::Watch { session } => {
            let id = resolve(&remote, &session).await?;
            follow(&remote, &id, false).await
        }
        SessionCommand::Logs {
            session,
            stdout_only,
            stderr_only,
        } => {
            let id = resolve(&remote, &session).await?;
            let logs = remote
                .json(remote.request(Method::GET, remote.url(["v1", "sessions", &id, "logs"])?))
                .await?;
            if remote.json {
                out(&logs.to_string());
                return Ok(());
            }
            if !stderr_only {
                print_raw(text(&logs["stdout"]));
            }
            if !stdout_only {
                if !stderr_only {
                    eprintln!("--- stderr ---");
                }
                print_raw(text(&logs["stderr"]));
            }
            Ok(())
        }
        SessionCommand::History { session } => {
            let id = resolve(&remote, &session).await?;
            let h = remote
                .json(remote.request(Method::GET, remote.url(["v1", "sessions", &id, "history"])?))
                .await?;
            let items = h["items"].as_array().cloned().unwrap_or_default();
            if remote.json {
                out(&pretty_json(&items)?);
                return Ok(());
            }
            let rows = items
                .iter()
                .map(|e| {
                    let (status, reason) = payload_summary(e);
                    vec![
                        text(&e["occurred_at"]).to_string(),
                        status,
                        text(&e["event_type"]).to_string(),
                        reason,
                        text(&e["actor"]).to_string(),
                    ]
                })
                .collect();
            table(&["TIME", "STATUS", "EVENT", "REASON", "ACTOR"], rows);
            Ok(())
        }
    }
}

/// `cpu=1,mem=2g` as the API's resource object (numbers where they are numbers).
fn parse_resources(text: &str) -> Result<Value, CtlError> {
    crate::agent::parse_slots(text).map_err(|e| CtlError::Usage(format!("--resources: {e}")))
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

#[allow(clippy::print_stdout)]
fn print_raw(s: &str) {
    print!("{s}");
    if !s.is_empty() && !s.ends_with('\n') {
        println!();
    }
}

/// The status an event moves to and its reason, from the history's payload.
fn payload_summary(e: &Value) -> (String, String) {
    let ty = text(&e["event_type"]);
    let body = e["payload"].get(ty).cloned().unwrap_or(Value::Null);
    let status = match ty {
        "SessionEnqueued" => "PENDING",
        "SessionScheduled" => "SCHEDULED",
        "SessionPreparing" => "PREPARING",
        "SessionPulling" => "PULLING",
        "SessionPrepared" => "PREPARED",
        "SessionCreating" => "CREATING",
        "SessionStarted" => "RUNNING",
        "SessionRestarting" => "RESTARTING",
        "SessionDegraded" => "RUNNING_DEGRADED",
        "SessionTerminating" => "TERMINATING",
        "SessionTerminated" => "TERMINATED",
        "SessionCancelled" => "CANCELLED",
        "SessionErrored" => "ERROR",
        _ => "",
    };
    let reason = body["reason"]
        .as_str()
        .map(str::to_string)
        .or_else(|| {
            body["failed_predicates"].as_array().map(|f| {
                f.iter()
                    .map(|p| format!("{}: {}", text(&p["name"]), text(&p["msg"])))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        })
        .unwrap_or_default();
    (status.to_string(), reason)
}

async fn get(remote: &Remote, id: &str) -> Result<Value, CtlError> {
    remote
        .json(remote.request(Method::GET, remote.url(["v1", "sessions", id])?))
        .await
}

/// A session id from `<id|name>`.
async fn resolve(remote: &Remote, session: &str) -> Result<String, CtlError> {
    if let Ok(id) = uuid::Uuid::parse_str(session) {
        return Ok(id.to_string());
    }
    let mut best: Option<(bool, String, String)> = None; // (live, created_at, id)
    let mut cursor: Option<String> = None;
    loop {
        let mut url = remote.url(["v1", "sessions"])?;
        url.query_pairs_mut().append_pair("limit", "1000");
        if let Some(c) = &cursor {
            url.query_pairs_mut().append_pair("cursor", c);
        }
        let page = remote.json(remote.request(Method::GET, url)).await?;
        for s in page["items"].as_array().cloned().unwrap_or_default() {
            if text(&s["name"]) != session {
                continue;
            }
            let live = !matches!(text(&s["status"]), "TERMINATED" | "CANCELLED");
            let candidate = (
                live,
                text(&s["created_at"]).to_string(),
                text(&s["session_id"]).to_string(),
            );
            if best
                .as_ref()
                .is_none_or(|b| (candidate.0, &candidate.1) > (b.0, &b.1))
            {
                best = Some(candidate);
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    best.map(|(_, _, id)| id).ok_or_else(|| CtlError::Http {
        code: "not_found".into(),
        message: format!("no session named '{session}'"),
    })
}

async fn list(
    remote: &Remote,
    status: Option<String>,
    group: Option<String>,
    session_type: Option<String>,
    limit: usize,
) -> Result<(), CtlError> {
    let mut items: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    while items.len() < limit {
        let mut url = remote.url(["v1", "sessions"])?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair(
                "limit",
                &limit.saturating_sub(items.len()).clamp(1, 1000).to_string(),
            );
            for (k, v) in [
                ("status", &status),
                ("scaling_group", &group),
                ("type", &session_type),
            ] {
                if let Some(v) = v {
                    q.append_pair(k, v);
                }
            }
            if let Some(c) = &cursor {
                q.append_pair("cursor", c);
            }
        }
        let page = remote.json(remote.request(Method::GET, url)).await?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    items.truncate(limit);
    if remote.json {
        out(&pretty_json(&items)?);
        return Ok(());
    }
    let now = chrono::Utc::now();
    let rows = items
        .iter()
        .map(|s| {
            let age = chrono::DateTime::parse_from_rfc3339(text(&s["created_at"]))
                .map(|t| human_age(now.signed_duration_since(t).num_seconds()))
                .unwrap_or_default();
            vec![
                text(&s["session_id"]).to_string(),
                text(&s["name"]).to_string(),
                text(&s["type"]).to_string(),
                text(&s["status"]).to_string(),
                text(&s["scaling_group"]).to_string(),
                age,
                info(s),
            ]
        })
        .collect();
    table(
        &["ID", "NAME", "TYPE", "STATUS", "GROUP", "AGE", "INFO"],
        rows,
    );
    Ok(())
}

/// `status_info`, or for a PENDING session why it waits.
fn info(s: &Value) -> String {
    if text(&s["status"]) == "PENDING" {
        if let Some(msg) = s["status_data"]["scheduler"]["failed_predicates"][0]["msg"].as_str() {
            return msg.to_string();
        }
    }
    text(&s["status_info"]).to_string()
}

fn human_age(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{}s", s.max(0)),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn show(s: &Value) {
    let agents: Vec<String> = s["agents"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| text(&a["agent_id"]).to_string())
        .collect();
    for (k, v) in [
        ("id", text(&s["session_id"]).to_string()),
        ("name", text(&s["name"]).to_string()),
        ("owner", text(&s["owner"]).to_string()),
        ("type", text(&s["type"]).to_string()),
        ("image", text(&s["image"]).to_string()),
        ("group", text(&s["scaling_group"]).to_string()),
        ("status", text(&s["status"]).to_string()),
        ("status info", text(&s["status_info"]).to_string()),
        ("created", text(&s["created_at"]).to_string()),
        ("agents", agents.join(", ")),
        (
            "exit code",
            s["exit_code"]
                .as_i64()
                .map(|c| c.to_string())
                .unwrap_or_default(),
        ),
    ] {
        out(&format!("{k:<12} {v}"));
    }
    let sched = &s["status_data"]["scheduler"];
    if sched.is_object() {
        out("waits for:");
        for p in sched["failed_predicates"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            out(&format!("  {}: {}", text(&p["name"]), text(&p["msg"])));
        }
        out(&format!(
            "retries      {}",
            sched["retries"].as_i64().unwrap_or(0)
        ));
        out(&format!("last try     {}", text(&sched["last_try"])));
        if let Some(p) = sched["queue_position"].as_i64() {
            out(&format!("queue pos.   {p}"));
        }
    }
}

/// Follows the session's events until it ends (or, with `until_running`, runs): one
/// line per change on stderr (stdout with `--json`: one object per frame).
async fn follow(remote: &Remote, id: &str, until_running: bool) -> Result<(), CtlError> {
    let mut last_id: Option<String> = None;
    let mut failures: u32 = 0;
    loop {
        let mut url = remote.url(["v1", "events", "sessions"])?;
        url.query_pairs_mut().append_pair("session_id", id);
        let mut request = remote
            .request(Method::GET, url)
            .header(ACCEPT, "text/event-stream");
        if let Some(l) = &last_id {
            request = request.header("Last-Event-ID", l);
        }
        let stream = match remote.send(request).await {
            Ok(r) => r,
            Err(e @ CtlError::Http { .. }) => return Err(e),
            Err(e) if failures >= RECONNECTS => return Err(e),
            Err(_) => {
                failures = failures.saturating_add(1);
                tokio::time::sleep(Duration::from_millis(300)).await;
                continue;
            }
        };
        let mut reader = SseReader::new(stream, IDLE);
        loop {
            let frame = match reader.next(remote).await {
                Ok(Some(f)) => f,
                Ok(None) | Err(_) => break,
            };
            failures = 0;
            last_id = frame.id.clone().or(last_id);
            let Ok(data) = serde_json::from_str::<Value>(&frame.data) else {
                continue;
            };
            if remote.json {
                out(&data.to_string());
            } else {
                eprintln!(
                    "{}  {:<26} {:<12} {}",
                    text(&data["occurred_at"]),
                    text(&data["event_type"]),
                    text(&data["status"]),
                    text(&data["status_info"])
                );
            }
            match text(&data["status"]) {
                "TERMINATED" => return Ok(()),
                "RUNNING" if until_running => return Ok(()),
                "ERROR" | "CANCELLED" => {
                    return Err(CtlError::Other(format!(
                        "session {id} ended {}: {}",
                        text(&data["status"]),
                        text(&data["status_info"])
                    )))
                }
                _ => {}
            }
        }
        if failures >= RECONNECTS {
            return Err(CtlError::Broken {
                server: remote.server().to_string(),
                reason: format!("the event stream of session {id} kept breaking"),
            });
        }
        failures = failures.saturating_add(1);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_short_and_never_negative() {
        assert_eq!(human_age(-5), "0s");
        assert_eq!(human_age(59), "59s");
        assert_eq!(human_age(3599), "59m");
        assert_eq!(human_age(7200), "2h");
        assert_eq!(human_age(90_000), "1d");
    }
}
