//! The OpenAPI 3.1 document served at `/openapi.json`: generated from the handlers'
//! `#[utoipa::path]` annotations and the validated types' schemas ([`super::schema`]),
//! then completed with what holds for every operation alike, so the document states
//! every status the server can answer:
//!
//! - `401` and `403` on every operation that needs a key;
//! - `400`, `413`, `415` and `422` on every operation that takes a body;
//! - `404` on every operation with a path parameter, `422` on every one with parameters;
//! - `429` on the streams and long-polls (their caps), `503` on everything that reads the
//!   store (`store_unavailable`, `pool_exhausted`, `not_caught_up`, `not_ready`,
//!   `timeout`);
//! - path parameters get their identifier's schema ([`path_parameter_schema`]), built
//!   from the same constants the server parses them with;
//! - header parameters are never `null` (a header is either sent or not);
//! - the Server-Sent Events response describes the event envelope (`id`, `event`,
//!   `data` as JSON of `SessionEventData`), not the data alone.
//!
//! `tests/api` checks that every documented path is served; the schemathesis run of
//! `scripts/test` checks that the server keeps to this document.

use serde_json::{json, Map, Value};

use super::STREAMING_ROUTES;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

fn add(responses: &mut Map<String, Value>, code: &str, description: &str) {
    responses
        .entry(code.to_string())
        .or_insert_with(|| error_response(description));
}

/// The envelope of one Server-Sent Event of a log-following stream whose `data` is the
/// JSON of the component schema `data` (`GET /v1/events/sessions`: SessionEventData;
/// `GET /v1/events/background-tasks`: TaskEventData).
fn sse_envelope(data: &str) -> Value {
    json!({
        "type": "object",
        "description": format!("One Server-Sent Event: `id` is the event's global position (resume with Last-Event-ID), `event` its event type, `data` the JSON of {data}."),
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "event": {"type": "string"},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": format!("#/components/schemas/{data}")}
            },
            "retry": {"type": "integer", "minimum": 0}
        },
        "required": ["data"]
    })
}

/// The envelope of one Server-Sent Event of `GET /v1/events/background-task`.
fn task_sse_envelope() -> Value {
    json!({
        "type": "object",
        "description": "One Server-Sent Event in Backend.AI's protocol: `event` is bgtask_updated, bgtask_done, bgtask_failed, bgtask_cancelled or server_close; `data` is JSON (`{}` for server_close).",
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "event": {"type": "string", "enum": ["bgtask_updated", "bgtask_done", "bgtask_failed", "bgtask_cancelled", "server_close"]},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"type": "object"}
            }
        },
        "required": ["data"]
    })
}

/// drf has no `config` keys: a body that sets `scheduler: drf` may not give any.
fn drf_has_no_config() -> Value {
    json!({
        "if": {"properties": {"scheduler": {"const": "drf"}}, "required": ["scheduler"]},
        "then": {"properties": {"scheduler_opts": {"oneOf": [
            {"type": "null"},
            {"type": "object", "properties": {"config": {"type": "object", "maxProperties": 0}}}
        ]}}}
    })
}

/// The schema of path parameter `name` of `path`: the identifier the handler parses it
/// as (an invalid one names nothing, so it is 404 like an unknown one; session ids are
/// 422 when not a UUID).
pub fn path_parameter_schema(path: &str, name: &str) -> Option<Value> {
    use super::schema;
    let builder = match (path.split('/').nth(2), name) {
        (Some("sessions"), "id") => schema::uuid(),
        (Some("agents"), "id") => schema::agent_id(),
        (Some("users"), "owner") => schema::owner(),
        (Some("scaling-groups"), "name") => schema::group_name(),
        (Some("vfolders"), "name") => return Some(schema::vfolder_name_json()),
        (Some("background-tasks"), "id") => schema::uuid(),
        (Some("webhooks"), "id") => schema::uuid(),
        (Some("webhooks"), "delivery_id") => {
            return Some(serde_json::json!({"type": "string", "minLength": 1, "maxLength": 128}))
        }
        _ => return None,
    };
    serde_json::to_value(builder.build()).ok()
}

/// Completes `doc` (the generated document as JSON); see the module documentation.
pub fn complete(mut doc: Value) -> Value {
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (name, field) in [("CreateVFolder", "name"), ("CloneVFolder", "target_name")] {
            if let Some(p) = schemas
                .get_mut(name)
                .and_then(|s| s.pointer_mut(&format!("/properties/{field}")))
            {
                *p = super::schema::vfolder_name_json();
            }
        }
        for name in ["CreateScalingGroup", "PatchScalingGroup"] {
            if let (Some(schema), Value::Object(rule)) = (
                schemas.get_mut(name).and_then(Value::as_object_mut),
                drf_has_no_config(),
            ) {
                schema.extend(rule);
            }
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for method in METHODS {
            let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) else {
                continue;
            };
            let public = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| s.iter().all(|r| r.as_object().is_some_and(Map::is_empty)));
            let has_body = op.contains_key("requestBody");
            let params: Vec<Value> = op
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let has_path_param = params.iter().any(|p| p["in"] == "path");
            // A header is sent or not: never `null`.
            if let Some(list) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                for p in list.iter_mut() {
                    if p["in"] == "path" {
                        if let Some(schema) = p["name"]
                            .as_str()
                            .and_then(|n| path_parameter_schema(path, n))
                        {
                            p["schema"] = schema;
                        }
                    }
                    if p["in"] == "header" {
                        if let Some(types) = p["schema"]["type"].as_array().cloned() {
                            let kept: Vec<Value> =
                                types.into_iter().filter(|t| t != "null").collect();
                            if kept.len() == 1 {
                                p["schema"]["type"] = kept[0].clone();
                            }
                        }
                    }
                }
            }
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            if !public {
                add(responses, "401", "no valid API key (unauthorized)");
                add(
                    responses,
                    "403",
                    "the key's role may not do this (forbidden)",
                );
            }
            if has_body {
                add(
                    responses,
                    "400",
                    "the body is not one JSON object (malformed_json)",
                );
                add(
                    responses,
                    "413",
                    "the body is over 1 MiB (payload_too_large)",
                );
                add(
                    responses,
                    "415",
                    "the body is not declared application/json (unsupported_media_type)",
                );
            }
            if has_body || !params.is_empty() {
                add(
                    responses,
                    "422",
                    "a field or parameter is invalid (validation_error)",
                );
            }
            if has_path_param {
                add(
                    responses,
                    "404",
                    "no such resource, or one the caller may not see",
                );
            }
            if STREAMING_ROUTES.contains(&path.as_str()) {
                add(
                    responses,
                    "429",
                    "the key's request rate is over its limit (rate_limited), or too many streams and long-polls are open for it (too_many_streams)",
                );
            } else if !public {
                add(
                    responses,
                    "429",
                    "the key's request rate is over its limit (rate_limited)",
                );
            }
            if path != "/healthz" {
                add(
                    responses,
                    "503",
                    "the store is unavailable or busy, or the read models are behind",
                );
            }
            let envelope = match path.as_str() {
                "/v1/events/sessions" => Some(sse_envelope("SessionEventData")),
                "/v1/events/background-tasks" => Some(sse_envelope("TaskEventData")),
                "/v1/events/background-task" => Some(task_sse_envelope()),
                _ => None,
            };
            if let Some(envelope) = envelope {
                if let Some(content) = responses
                    .get_mut("200")
                    .and_then(|r| r.get_mut("content"))
                    .and_then(Value::as_object_mut)
                {
                    content.insert("text/event-stream".into(), json!({"schema": envelope}));
                }
            }
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_parameter_has_the_schema_of_the_identifier_it_is_parsed_as() {
        let doc = crate::http::openapi();
        let mut seen = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in METHODS {
                let Some(params) = item[method]["parameters"].as_array() else {
                    continue;
                };
                for p in params.iter().filter(|p| p["in"] == "path") {
                    let name = p["name"].as_str().unwrap();
                    let expected = path_parameter_schema(path, name)
                        .unwrap_or_else(|| panic!("{method} {path}: no rule for {{{name}}}"));
                    assert_eq!(p["schema"], expected, "{method} {path} {{{name}}}");
                    seen += 1;
                }
            }
        }
        assert!(seen >= 10, "path parameters checked: {seen}");
        let agent = path_parameter_schema("/v1/agents/{id}", "id").unwrap();
        assert_eq!(agent["pattern"], domain::ids::AgentId::PATTERN);
        let group = path_parameter_schema("/v1/scaling-groups/{name}", "name").unwrap();
        assert_eq!(group["pattern"], domain::ids::GroupName::PATTERN);
        assert_eq!(group["maxLength"], domain::ids::GroupName::MAX_LEN);
    }
}
