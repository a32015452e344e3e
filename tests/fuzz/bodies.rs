//! Command bodies: the bytes of each POST/PATCH/PUT body through the real JSON
//! extractor (`Json<T>` / `JsonObject`, content type set), then the handler's own
//! validation (the public functions it calls, in its order), then the pure decision
//! where one exists (no database per case). Every rejection must be a typed 4xx
//! `ApiError`; accepted enqueue bodies round-trip through their canonical form.

use axum::body::Body;
use axum::extract::FromRequest;
use axum::http::{header, Request};
use domain::ids::{AgentAddr, AgentId, GroupName, Owner, Reason, VFolderName, VolumeName};
use domain::resources::{ResourceSlots, SlotUse};
use domain::scaling_group::commands::{parse_description, parse_owners, GroupPatch, GroupSettings};
use domain::scaling_group::{ScalingGroup, ScalingGroupCommand, SchedulerOpts};
use domain::session::{KernelEvent, Session};
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use sessiond::http::extract::{from_value, integer, Json, JsonObject};
use sessiond::http::{ApiError, ErrorCode};
use uuid::Uuid;

use crate::gen::body;
use crate::{check, fuzz};

fn post(bytes: &[u8]) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri("/x")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(bytes.to_vec()))
        .unwrap()
}

/// The body as the real `Json<T>` extractor reads it.
fn extract<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    futures::executor::block_on(Json::<T>::from_request(post(bytes), &())).map(|Json(t)| t)
}

/// A rejection the client caused: typed, 4xx, and one of the body / validation codes.
fn rejected(e: &ApiError) -> Result<(), TestCaseError> {
    check!(
        matches!(
            e.code,
            ErrorCode::MalformedJson
                | ErrorCode::ValidationError
                | ErrorCode::BadRequest
                | ErrorCode::PayloadTooLarge
        ) && e.status_code().is_client_error(),
        "rejected with {:?} ({}): {}",
        e.code,
        e.status_code(),
        e.message
    );
    Ok(())
}

/// Runs `validate` on what the extractor accepted; every error must be a client error.
fn case<T: DeserializeOwned>(
    bytes: &[u8],
    validate: impl FnOnce(T) -> Result<Result<(), ApiError>, TestCaseError>,
) -> Result<(), TestCaseError> {
    match extract::<T>(bytes) {
        Ok(t) => match validate(t)? {
            Ok(()) => {
                crate::accepted();
                Ok(())
            }
            Err(e) => rejected(&e),
        },
        Err(e) => rejected(&e),
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    domain::fixtures::epoch()
}

fn enqueue_seeds() -> Vec<Value> {
    vec![
        json!({"name": "nb-1", "type": "interactive", "image": "python:3.12",
               "resources": {"cpu": 1, "mem": "2g"}}),
        json!({"name": "job.2", "type": "batch", "image": "registry.example.com/team/py:3@sha256:ab",
               "scaling_group": "gpu", "resources": {"cpu": "0.5", "mem": 1073741824u64, "cuda.device": 1},
               "cluster_size": 2, "priority": 100, "starts_at": "2030-01-01T00:00:00Z",
               "batch_timeout": 3600, "startup_command": "python train.py\n--epochs 3",
               "dependencies": ["5e55a0b1-0000-4000-8000-00000000000a"],
               "labels": {"team": "ml", "a/b": ""}, "owner": "alice@example.com",
               "callback_url": "https://hooks.example.com/s"}),
        json!({"name": "inf", "type": "inference", "image": "x", "resources": {"cpu": 4},
               "cluster_size": 1.0, "priority": 0, "scaling_group": null, "owner": null,
               "callbackUrl": "http://example.com/cb"}),
    ]
}

/// The canonical request body of an accepted spec (what a client would send back).
fn canonical(spec: &domain::session::SessionSpec, group: Option<&GroupName>) -> Value {
    json!({
        "name": spec.name, "type": spec.session_type, "image": spec.image,
        "scaling_group": group, "resources": spec.resources,
        "cluster_size": spec.cluster_size.get(), "priority": spec.priority.get(),
        "starts_at": spec.starts_at, "batch_timeout": spec.batch_timeout.map(|b| b.get()),
        "startup_command": spec.startup_command, "dependencies": spec.dependencies,
        "labels": spec.labels, "owner": spec.owner, "callback_url": spec.callback_url,
    })
}

#[test]
fn enqueue_session() {
    use sessiond::http::sessions::EnqueueSession;
    fuzz("enqueue_session", body(enqueue_seeds()), |bytes| {
        let value = match futures::executor::block_on(JsonObject::from_request(post(&bytes), &())) {
            Ok(JsonObject(v)) => v,
            Err(e) => return rejected(&e),
        };
        // The idempotency hash is taken of every parsed body.
        let _ = sessiond::idempotency::request_hash(&value);
        let body: EnqueueSession = match from_value(value) {
            Ok(b) => b,
            Err(e) => return rejected(&e),
        };
        let owner = match body
            .owner
            .as_deref()
            .map(|o| Owner::parse("owner", o))
            .transpose()
        {
            Ok(o) => o.unwrap_or_else(|| Owner::from_stored("alice")),
            Err(e) => return rejected(&e.into()),
        };
        let id = Uuid::from_u128(7);
        let (spec, group) = match body.into_spec(id, owner.clone()) {
            Ok(x) => x,
            Err(e) => return rejected(&e),
        };
        // Canonical form -> the same spec.
        let again: EnqueueSession = from_value(canonical(&spec, group.as_ref()))
            .map_err(|e| TestCaseError::fail(format!("canonical body refused: {e}")))?;
        let back = again.into_spec(id, owner);
        check!(
            back.as_ref().ok() == Some(&(spec.clone(), group.clone())),
            "canonical body of {spec:?} reads back as {back:?}"
        );
        // The stored event round-trips, and the aggregate takes the command.
        let spec = domain::session::SessionSpec {
            scaling_group: group.unwrap_or_else(|| GroupName::from_stored("default")),
            ..spec
        };
        let events = Session::default()
            .decide(domain::session::SessionCommand::Enqueue { spec, now: now() })
            .map_err(|e| TestCaseError::fail(format!("a valid spec refused: {e}")))?;
        let text = serde_json::to_string(&events).unwrap();
        let read: Vec<domain::session::SessionEvent> = serde_json::from_str(&text).unwrap();
        check!(read == events, "the enqueued event does not round-trip");
        crate::accepted();
        Ok(())
    });
}

fn group_seeds() -> Vec<Value> {
    vec![
        json!({"name": "default"}),
        json!({"name": "gpu-a100", "description": "A100s", "is_active": false, "public": false,
               "owners": ["alice", "bob@example.com"], "scheduler": "lifo",
               "scheduler_opts": {"allowed_session_types": ["batch"], "pending_timeout": 60,
                                  "agent_selection_strategy": "roundrobin",
                                  "config": {"num_retries_to_skip": 2}}}),
        json!({"name": "drf", "scheduler": "drf", "scheduler_opts": {"config": {}}}),
    ]
}

fn patch_seeds() -> Vec<Value> {
    vec![
        json!({}),
        json!({"description": "x", "is_active": true, "public": false, "owners": ["carol"]}),
        json!({"scheduler": "drf", "scheduler_opts": {"pending_timeout": 0}}),
        json!({"scheduler_opts": {"config": {"num_retries_to_skip": 1000000}}}),
        json!({"description": null, "owners": null, "scheduler": null, "scheduler_opts": null}),
    ]
}

#[test]
fn scaling_groups() {
    use sessiond::http::scaling_groups::{CreateScalingGroup, PatchScalingGroup};
    let s = (body(group_seeds()), body(patch_seeds()));
    fuzz("scaling_groups", s, |(create, patch)| {
        let mut group = ScalingGroup::default();
        case::<CreateScalingGroup>(&create, |b| {
            let run = || -> Result<GroupSettings, ApiError> {
                GroupName::parse("name", &b.name)?;
                let scheduler = b.scheduler.unwrap_or_default();
                Ok(GroupSettings {
                    description: parse_description("description", &b.description)?,
                    is_active: b.is_active,
                    public: b.public,
                    owners: parse_owners("owners", &b.owners)?,
                    scheduler,
                    scheduler_opts: SchedulerOpts::parse(
                        &Value::Object(b.scheduler_opts.clone().unwrap_or_default()),
                        scheduler,
                    )?,
                })
            };
            Ok(run().map(|settings| {
                let name = GroupName::from_stored(b.name);
                if let Ok(events) = group.decide(ScalingGroupCommand::Create {
                    name,
                    settings,
                    now: now(),
                }) {
                    events.iter().for_each(|e| group.apply(e));
                }
            }))
        })?;
        // A PATCH on the group just created (or on none: not found, typed).
        case::<PatchScalingGroup>(&patch, |b| {
            let run = || -> Result<GroupPatch, ApiError> {
                Ok(GroupPatch {
                    description: b
                        .description
                        .as_deref()
                        .map(|d| parse_description("description", d))
                        .transpose()?,
                    is_active: b.is_active,
                    public: b.public,
                    owners: b
                        .owners
                        .as_deref()
                        .map(|o| parse_owners("owners", o))
                        .transpose()?,
                    scheduler: b.scheduler,
                    scheduler_opts: b.scheduler_opts,
                })
            };
            Ok(run()
                .and_then(|patch| {
                    let events = group
                        .decide(ScalingGroupCommand::Update { patch, now: now() })
                        .map_err(ApiError::from)?;
                    let mut g = group.clone();
                    events.iter().for_each(|e| g.apply(e));
                    Ok(())
                })
                .or_else(|e| {
                    if e.code == ErrorCode::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                }))
        })
    });
}

fn count(
    field: &str,
    n: Option<&serde_json::Number>,
    max: u32,
) -> Result<Option<domain::bounds::PolicyCount>, ApiError> {
    let Some(n) = n else { return Ok(None) };
    let n = integer(field, n)?;
    if n > i128::from(max) {
        return Err(ApiError::validation(field, "too large"));
    }
    Ok(Some(domain::bounds::PolicyCount::parse(field, n)?))
}

#[test]
fn resource_policies() {
    use domain::policy::{ResourceLimits, ResourcePolicy, SetResourcePolicy};
    use sessiond::http::users::{PutResourcePolicy, MAX_PENDING_LIMIT};
    let seeds = vec![
        json!({}),
        json!({"max_concurrent_sessions": 10, "max_pending_sessions": 10000,
               "total_resource_slots": {"cpu": 8, "mem": "32g"}}),
        json!({"max_concurrent_sessions": null, "max_pending_sessions": 0.0,
               "total_resource_slots": null}),
    ];
    fuzz("resource_policies", body(seeds), |bytes| {
        case::<PutResourcePolicy>(&bytes, |b| {
            let run = || -> Result<(), ApiError> {
                let limits = ResourceLimits {
                    max_concurrent_sessions: count(
                        "max_concurrent_sessions",
                        b.max_concurrent_sessions.as_ref(),
                        domain::bounds::MAX_POLICY_COUNT,
                    )?,
                    max_pending_sessions: count(
                        "max_pending_sessions",
                        b.max_pending_sessions.as_ref(),
                        MAX_PENDING_LIMIT,
                    )?,
                    total_resource_slots: b
                        .total_resource_slots
                        .filter(|v| !v.is_null())
                        .map(|v| {
                            ResourceSlots::parse(&v, "total_resource_slots", SlotUse::Capacity)
                        })
                        .transpose()?,
                };
                let cmd = SetResourcePolicy {
                    owner: Owner::from_stored("alice"),
                    limits,
                    now: now(),
                };
                let mut p = ResourcePolicy::default();
                for e in p.decide(cmd).map_err(ApiError::from)? {
                    p.apply(&e);
                }
                Ok(())
            };
            Ok(run())
        })
    });
}

#[test]
fn vfolders() {
    use sessiond::http::vfolders::{parse_mode, parse_permission, CloneVFolder, CreateVFolder};
    let create = vec![
        json!({"name": "data"}),
        json!({"name": "Models.v2", "host": "local", "usage_mode": "model", "permission": "ro",
               "cloneable": true, "owner": "alice"}),
    ];
    let clone = vec![
        json!({"target_name": "copy"}),
        json!({"target_name": "copy-2", "target_host": "nfs", "usage_mode": "data",
               "permission": "wd", "cloneable": false}),
    ];
    fuzz(
        "vfolders",
        (body(create), body(clone)),
        |(create, clone)| {
            case::<CreateVFolder>(&create, |b| {
                let run = || -> Result<(), ApiError> {
                    if let Some(o) = &b.owner {
                        Owner::parse("owner", o)?;
                    }
                    VFolderName::parse("name", &b.name)?;
                    if let Some(h) = &b.host {
                        VolumeName::parse("host", h)?;
                    }
                    parse_mode(b.usage_mode.as_deref())?;
                    parse_permission(b.permission.as_deref())?;
                    Ok(())
                };
                Ok(run())
            })?;
            case::<CloneVFolder>(&clone, |b| {
                let run = || -> Result<(), ApiError> {
                    VFolderName::parse("target_name", &b.target_name)?;
                    parse_mode(b.usage_mode.as_deref())?;
                    parse_permission(b.permission.as_deref())?;
                    if let Some(h) = &b.target_host {
                        VolumeName::parse("target_host", h)?;
                    }
                    Ok(())
                };
                Ok(run())
            })
        },
    );
}

#[test]
fn webhooks() {
    use sessiond::http::webhooks::{CreateWebhook, PatchWebhook};
    let create = vec![
        json!({"url": "https://hooks.example.com/x"}),
        json!({"url": "http://example.com:8080/p?q=1", "description": "ops", "enabled": false,
               "filter": {"statuses": ["RUNNING", "ERROR"], "scaling_groups": ["default"],
                          "owners": ["alice"]}}),
    ];
    let patch = vec![
        json!({}),
        json!({"url": "https://x.example/", "description": "", "enabled": true,
               "filter": {"statuses": []}}),
        json!({"filter": null, "url": null}),
    ];
    fuzz(
        "webhooks",
        (body(create), body(patch)),
        |(create, patch)| {
            case::<CreateWebhook>(&create, |b| {
                let run = || -> Result<(), ApiError> {
                    domain::webhook::WebhookUrl::parse("url", &b.url)?;
                    domain::webhook::spec::parse_description(
                        "description",
                        b.description.as_deref().unwrap_or(""),
                    )?;
                    b.filter.map(|f| f.parse()).transpose()?;
                    Ok(())
                };
                Ok(run())
            })?;
            case::<PatchWebhook>(&patch, |b| {
                let run = || -> Result<(), ApiError> {
                    if let Some(u) = &b.url {
                        domain::webhook::WebhookUrl::parse("url", u)?;
                    }
                    if let Some(d) = &b.description {
                        domain::webhook::spec::parse_description("description", d)?;
                    }
                    b.filter.map(|f| f.parse()).transpose()?;
                    Ok(())
                };
                Ok(run())
            })
        },
    );
}

#[test]
fn agent_registration() {
    use domain::agent::{Agent, AgentCommand};
    use sessiond::http::agents::RegisterAgentBody;
    let seeds = vec![
        json!({"agent_id": "a1", "scaling_group": "default", "addr": "10.0.0.1:6001",
               "available_slots": {"cpu": 8, "mem": "32g", "cuda.device": 2}}),
        json!({"agent_id": "host:gpu-7", "scaling_group": "gpu", "addr": "[::1]:1",
               "available_slots": {}}),
    ];
    fuzz("agent_registration", body(seeds), |bytes| {
        case::<RegisterAgentBody>(&bytes, |b| {
            let run = || -> Result<(), ApiError> {
                let cmd = AgentCommand::Register {
                    agent_id: AgentId::parse("agent_id", &b.agent_id)?,
                    scaling_group: GroupName::parse("scaling_group", &b.scaling_group)?,
                    addr: AgentAddr::parse("addr", &b.addr)?,
                    available_slots: ResourceSlots::parse(
                        &b.available_slots,
                        "available_slots",
                        SlotUse::Capacity,
                    )?,
                    now: now(),
                };
                let mut agent = Agent::default();
                // A refusal here is the domain's (typed), not the decoder's.
                for e in agent.decide(cmd).unwrap_or_default() {
                    agent.apply(&e);
                }
                // Allocating what it registered with, then releasing it.
                let slots = agent.available_slots.clone();
                let id = Uuid::from_u128(1);
                for cmd in [
                    AgentCommand::AllocateSlots {
                        session_id: id,
                        slots,
                        now: now(),
                    },
                    AgentCommand::ReleaseSlots {
                        session_id: id,
                        now: now(),
                    },
                ] {
                    if let Ok(events) = agent.decide(cmd) {
                        events.iter().for_each(|e| agent.apply(e));
                    }
                }
                let _ = agent.occupied_slots();
                Ok(())
            };
            Ok(run())
        })
    });
}

/// A batch session at each step of its lifecycle (enqueued .. terminated).
fn lifecycle_states() -> Vec<Session> {
    let events = domain::fixtures::batch_lifecycle(Uuid::from_u128(9), now());
    (0..=events.len())
        .map(|n| Session::fold(events[..n].iter()))
        .collect()
}

#[test]
fn kernel_events() {
    use sessiond::http::sessions::KernelEventBody;
    let seeds = vec![
        json!({"event": "started"}),
        json!({"event": "terminated", "exit_code": 0, "reason": "self-terminated",
               "logs": {"stdout": "done\n", "stderr": ""}}),
        json!({"event": "failed", "exit_code": -9, "reason": "image-pull-failed",
               "logs": {"stderr": "x"}}),
        json!({"event": "pulling", "exit_code": null, "reason": null, "logs": null}),
    ];
    let states = lifecycle_states();
    fuzz("kernel_events", body(seeds), |bytes| {
        case::<KernelEventBody>(&bytes, |b| {
            let run = || -> Result<(), ApiError> {
                let reason = b
                    .reason
                    .as_deref()
                    .map(|r| Reason::parse("reason", r))
                    .transpose()?;
                let exit_code = b
                    .exit_code
                    .as_ref()
                    .map(|n| {
                        integer("exit_code", n).and_then(|c| {
                            i32::try_from(c).map_err(|_| ApiError::validation("exit_code", "i32"))
                        })
                    })
                    .transpose()?;
                let event = KernelEvent::parse(&b.event, exit_code, reason)
                    .ok_or_else(|| ApiError::validation("event", "unknown"))?;
                if let Some(l) = &b.logs {
                    if event.is_final()
                        && (l.stdout.len() > sessiond::store::session_logs::LOG_TAIL_BYTES
                            || l.stderr.len() > sessiond::store::session_logs::LOG_TAIL_BYTES)
                    {
                        return Err(ApiError::validation("logs", "too long"));
                    }
                }
                // The report, decided against the session in every status.
                for s in &states {
                    let cmd = event.clone().command(vec!["a1".to_string()], now());
                    if let Ok(events) = s.decide(cmd) {
                        let mut s = s.clone();
                        events.iter().for_each(|e| s.apply(e));
                    }
                }
                Ok(())
            };
            Ok(run())
        })
    });
}
