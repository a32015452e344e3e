//! `sessionctl bgtask watch ID`: a background task followed over its Server-Sent Events
//! stream (`GET /v1/events/background-task?task_id=`, SPEC §7.2) with a progress bar in
//! bytes on stderr, ending with one line: `task ID done: MESSAGE` on stdout (exit 0), or
//! `sessionctl: task ID failed|cancelled: MESSAGE` on stderr (exit 1).
//!
//! A stream that ends (or breaks) before its terminal frame is reopened with
//! `Last-Event-ID` set to the last `id:` seen, up to [`RECONNECTS`] times in a row; then
//! the command gives up with exit 2 (the task itself may well still be running).

use reqwest::header::ACCEPT;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

use super::remote::{byte_bar, Remote, SseReader};
use super::{out, BgtaskArgs, BgtaskCommand, CtlError};

/// Reconnections in a row (without the task's progress moving past its highest point
/// in between) before giving up.
pub(super) const RECONNECTS: u32 = 5;

/// A stream silent this long is treated as broken (the server's keep-alive is 15 s).
const IDLE: Duration = Duration::from_secs(45);

/// The pause before reconnection `n` is `n` times this.
const BACKOFF: Duration = Duration::from_millis(300);

/// Runs one `bgtask` subcommand.
pub(super) async fn run(args: BgtaskArgs) -> Result<(), CtlError> {
    let remote = Remote::new(&args.remote)?;
    match args.command {
        BgtaskCommand::Watch { id } => watch(&remote, &id).await,
    }
}

/// How a task ended, from its terminal frame.
#[derive(Debug)]
struct Ending {
    status: &'static str,
    message: String,
}

/// Why one stream stopped.
#[derive(Debug)]
enum Stop {
    /// The terminal frame came.
    Ended(Ending),
    /// The stream ended without one.
    Lost { reason: String },
}

/// Follows task `task_id` until it ends: `Ok` when done, [`CtlError::TaskEnded`] when it
/// failed or was cancelled, [`CtlError::StreamLost`] when the stream kept breaking.
pub(super) async fn watch(remote: &Remote, task_id: &str) -> Result<(), CtlError> {
    let bar = byte_bar(0)?;
    let mut last_id: Option<String> = None;
    let mut reconnects: u32 = 0;
    let mut connected = false;
    let mut high: u64 = 0;
    loop {
        let stop = follow(remote, task_id, &mut last_id, &bar, &mut connected).await;
        if bar.position() > high {
            // The task moved on while this stream was open: count failures afresh.
            high = bar.position();
            reconnects = 0;
        }
        let reason = match stop {
            Ok(Stop::Ended(ending)) => {
                bar.finish_and_clear();
                return conclude(remote, task_id, ending);
            }
            Ok(Stop::Lost { reason }) => reason,
            // Reopen a stream that broke, or a server restarting, once one was open.
            Err(e) if connected && retryable(&e) => e.to_string(),
            Err(e) => {
                bar.finish_and_clear();
                return Err(e);
            }
        };
        if reconnects >= RECONNECTS {
            bar.finish_and_clear();
            return Err(CtlError::StreamLost {
                task_id: task_id.to_string(),
                server: remote.server().to_string(),
                reconnects,
                last: reason,
            });
        }
        reconnects = reconnects.saturating_add(1);
        bar.set_message(format!(
            "reconnecting ({reconnects}/{RECONNECTS}): {reason}"
        ));
        tokio::time::sleep(BACKOFF.saturating_mul(reconnects)).await;
    }
}

/// Failures after which reopening the stream may help: transport failures, and the
/// server saying it is not ready or busy.
fn retryable(e: &CtlError) -> bool {
    match e {
        CtlError::Unreachable { .. } | CtlError::Broken { .. } => true,
        CtlError::Http { code, .. } => matches!(
            code.as_str(),
            "not_ready"
                | "not_caught_up"
                | "store_unavailable"
                | "pool_exhausted"
                | "timeout"
                | "too_many_streams"
                | "http_502"
                | "http_503"
                | "http_504"
        ),
        _ => false,
    }
}

/// The final line (done), or the error (failed, cancelled).
fn conclude(remote: &Remote, task_id: &str, ending: Ending) -> Result<(), CtlError> {
    if ending.status == "done" {
        if !remote.json {
            out(&format!("task {task_id} done: {}", ending.message));
        }
        Ok(())
    } else {
        Err(CtlError::TaskEnded {
            task_id: task_id.to_string(),
            status: ending.status,
            message: ending.message,
        })
    }
}

/// Opens the stream once (resuming after `last_id`) and reads it until it ends.
async fn follow(
    remote: &Remote,
    task_id: &str,
    last_id: &mut Option<String>,
    bar: &indicatif::ProgressBar,
    connected: &mut bool,
) -> Result<Stop, CtlError> {
    let mut url = remote.url(["v1", "events", "background-task"])?;
    url.query_pairs_mut().append_pair("task_id", task_id);
    let mut request = remote
        .request(Method::GET, url)
        .header(ACCEPT, "text/event-stream");
    if let Some(id) = last_id.as_deref() {
        request = request.header("Last-Event-ID", id);
    }
    let response = remote.send(request).await?;
    *connected = true;
    let mut reader = SseReader::new(response, IDLE);
    loop {
        let frame = match reader.next(remote).await {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                return Ok(Stop::Lost {
                    reason: "the stream ended without a final frame".into(),
                })
            }
            Err(e @ CtlError::Broken { .. }) => {
                return Ok(Stop::Lost {
                    reason: e.to_string(),
                })
            }
            Err(e) => return Err(e),
        };
        if frame.id.is_some() {
            last_id.clone_from(&frame.id);
        }
        let data: Value = serde_json::from_str(&frame.data).unwrap_or(Value::Null);
        if remote.json {
            out(
                &serde_json::json!({"event": frame.event, "id": frame.id, "data": data})
                    .to_string(),
            );
        }
        let message = data["message"].as_str().unwrap_or_default().to_string();
        let status = match frame.event.as_str() {
            "bgtask_updated" => {
                let total = data["total_progress"].as_f64().unwrap_or(0.0);
                let current = data["current_progress"].as_f64().unwrap_or(0.0);
                // Saturating float-to-integer casts: a negative or NaN value is 0.
                bar.set_length(total as u64);
                bar.set_position(current as u64);
                bar.set_message(message);
                continue;
            }
            "bgtask_done" => "done",
            "bgtask_failed" => "failed",
            "bgtask_cancelled" => "cancelled",
            "server_close" => {
                return Ok(Stop::Lost {
                    reason: "the server closed the stream without a final frame".into(),
                })
            }
            _ => continue,
        };
        return Ok(Stop::Ended(Ending { status, message }));
    }
}
