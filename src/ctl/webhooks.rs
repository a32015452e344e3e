//! `sessionctl webhooks list | deliveries ID | redeliver ID DELIVERY | test ID` over
//! HTTP (`/v1/webhooks`, SPEC §8): human tables by default, the server's JSON with
//! `--json`. Admin keys only (the server refuses others).

use reqwest::Method;
use serde_json::Value;

use super::remote::Remote;
use super::{out, pretty_json, table, CtlError, WebhooksArgs, WebhooksCommand};

/// Runs one `webhooks` subcommand.
pub(super) async fn run(args: WebhooksArgs) -> Result<(), CtlError> {
    let remote = Remote::new(&args.remote)?;
    match args.command {
        WebhooksCommand::List => list(&remote).await,
        WebhooksCommand::Deliveries {
            id,
            status,
            after,
            limit,
        } => deliveries(&remote, &id, status, after, limit).await,
        WebhooksCommand::Redeliver { id, delivery } => redeliver(&remote, &id, &delivery).await,
        WebhooksCommand::Test { id } => test(&remote, &id).await,
    }
}

fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// `webhooks list`: ID ENABLED URL FILTER.
async fn list(remote: &Remote) -> Result<(), CtlError> {
    let url = remote.url(["v1", "webhooks"])?;
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
        .map(|w| {
            let filter = &w["filter"];
            let parts: Vec<String> = ["statuses", "scaling_groups", "owners"]
                .iter()
                .filter_map(|k| {
                    let list: Vec<&str> = filter[*k]
                        .as_array()?
                        .iter()
                        .filter_map(Value::as_str)
                        .collect();
                    (!list.is_empty()).then(|| format!("{k}={}", list.join(",")))
                })
                .collect();
            let enabled = match (&w["enabled"], &w["disabled_reason"]) {
                (Value::Bool(true), _) => "yes".to_string(),
                (_, Value::String(reason)) => format!("no ({reason})"),
                _ => "no".to_string(),
            };
            vec![
                text(w, "webhook_id"),
                enabled,
                text(w, "url"),
                if parts.is_empty() {
                    "all".into()
                } else {
                    parts.join(" ")
                },
            ]
        })
        .collect();
    table(&["ID", "ENABLED", "URL", "FILTER"], rows);
    Ok(())
}

/// `webhooks deliveries ID`: DELIVERY POSITION SESSION STATUS ATTEMPTS LAST.
async fn deliveries(
    remote: &Remote,
    id: &str,
    status: Option<String>,
    after: Option<i64>,
    limit: Option<i64>,
) -> Result<(), CtlError> {
    let mut url = remote.url(["v1", "webhooks", id, "deliveries"])?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(s) = &status {
            q.append_pair("status", s);
        }
        if let Some(a) = after {
            q.append_pair("after", &a.to_string());
        }
        if let Some(l) = limit {
            q.append_pair("limit", &l.to_string());
        }
    }
    let page = remote.json(remote.request(Method::GET, url)).await?;
    if remote.json {
        out(&pretty_json(&page)?);
        return Ok(());
    }
    let rows = page["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|d| {
            let last = match (&d["last_status_code"], &d["last_error"]) {
                (Value::Number(code), _) => format!("HTTP {code}"),
                (_, Value::String(e)) => e.clone(),
                _ => "-".into(),
            };
            vec![
                text(d, "delivery_id"),
                text(d, "position"),
                text(d, "session_id"),
                text(d, "status"),
                text(d, "attempts"),
                last,
            ]
        })
        .collect();
    table(
        &[
            "DELIVERY", "POSITION", "SESSION", "STATUS", "ATTEMPTS", "LAST",
        ],
        rows,
    );
    if let Some(next) = page["next_after"].as_i64() {
        out(&format!("(more: --after {next})"));
    }
    Ok(())
}

/// `webhooks redeliver ID DELIVERY`.
async fn redeliver(remote: &Remote, id: &str, delivery: &str) -> Result<(), CtlError> {
    let url = remote.url(["v1", "webhooks", id, "deliveries", delivery, "redeliver"])?;
    let answer = remote.json(remote.request(Method::POST, url)).await?;
    if remote.json {
        out(&pretty_json(&answer)?);
    } else {
        out(&format!(
            "delivery {delivery} queued again (same webhook-id)"
        ));
    }
    Ok(())
}

/// `webhooks test ID`: exit 0 when the endpoint answered 2xx, 1 otherwise.
async fn test(remote: &Remote, id: &str) -> Result<(), CtlError> {
    let url = remote.url(["v1", "webhooks", id, "test"])?;
    let answer = remote.json(remote.request(Method::POST, url)).await?;
    let delivered = answer["delivered"].as_bool().unwrap_or(false);
    if remote.json {
        out(&pretty_json(&answer)?);
    } else if delivered {
        out(&format!(
            "test message {} delivered (HTTP {})",
            text(&answer, "webhook_id"),
            text(&answer, "status_code")
        ));
    }
    if delivered {
        Ok(())
    } else {
        let why = match (&answer["status_code"], &answer["error"]) {
            (Value::Number(code), _) => format!("the endpoint answered HTTP {code}"),
            (_, Value::String(e)) => e.clone(),
            _ => "no answer".into(),
        };
        Err(CtlError::WebhookTest(why))
    }
}
