//! Given/when/then tests of the WebhookSubscription aggregate.

use chrono::Duration;
use uuid::Uuid;

use super::aggregate::GONE_REASON;
use super::*;
use crate::fixtures::epoch;
use crate::session::SessionStatus;

fn settings() -> WebhookSettings {
    WebhookSettings {
        url: WebhookUrl::parse("url", "https://hooks.example.com/sessiond").unwrap(),
        description: "ops".into(),
        filter: WebhookFilter::default(),
        enabled: true,
    }
}

fn created() -> WebhookCommand {
    WebhookCommand::Create {
        webhook_id: Uuid::from_u128(1),
        settings: settings(),
        secret_id: Uuid::from_u128(10),
        now: epoch(),
    }
}

fn given(commands: Vec<WebhookCommand>) -> WebhookSubscription {
    let mut w = WebhookSubscription::default();
    for c in commands {
        for e in w.decide(c).unwrap() {
            w.apply(&e);
        }
    }
    w
}

fn when(
    w: &WebhookSubscription,
    c: WebhookCommand,
) -> Result<(WebhookSubscription, usize), WebhookError> {
    let mut w = w.clone();
    let events = w.decide(c)?;
    for e in &events {
        w.apply(e);
    }
    Ok((w, events.len()))
}

fn update() -> WebhookCommand {
    WebhookCommand::Update {
        url: None,
        description: None,
        filter: None,
        enabled: None,
        now: epoch(),
    }
}

#[test]
fn a_created_subscription_is_enabled_and_signs_with_its_first_secret() {
    // Given nothing, when it is created
    let w = given(vec![created()]);
    // Then it is enabled and its one secret signs
    assert!(w.is_enabled());
    assert_eq!(w.active_secrets(epoch()), vec![Uuid::from_u128(10)]);
}

#[test]
fn creating_a_subscription_twice_is_refused() {
    let w = given(vec![created()]);
    assert_eq!(
        when(&w, created()).unwrap_err(),
        WebhookError::AlreadyExists
    );
}

#[test]
fn an_update_that_changes_nothing_appends_nothing() {
    let w = given(vec![created()]);
    let (_, appended) = when(&w, update()).unwrap();
    assert_eq!(appended, 0);
}

#[test]
fn an_update_replaces_only_the_settings_it_names() {
    // Given a subscription
    let w = given(vec![created()]);
    // When its filter changes
    let filter = WebhookFilter {
        statuses: [SessionStatus::Running].into(),
        ..WebhookFilter::default()
    };
    let (w, appended) = when(
        &w,
        WebhookCommand::Update {
            url: None,
            description: None,
            filter: Some(filter.clone()),
            enabled: None,
            now: epoch(),
        },
    )
    .unwrap();
    // Then the filter is new and the rest is as it was
    assert_eq!(appended, 1);
    let s = w.settings.unwrap();
    assert_eq!(s.filter, filter);
    assert_eq!(s.url, settings().url);
    assert_eq!(s.description, "ops");
}

#[test]
fn a_rotation_keeps_the_previous_secret_signing_until_the_overlap_ends() {
    // Given a subscription rotated with a 24 h overlap
    let w = given(vec![
        created(),
        WebhookCommand::RotateSecret {
            secret_id: Uuid::from_u128(11),
            overlap: Duration::hours(24),
            now: epoch(),
        },
    ]);
    // Then during the overlap both sign, the new one first; after it only the new one
    assert_eq!(
        w.active_secrets(epoch() + Duration::hours(23)),
        vec![Uuid::from_u128(11), Uuid::from_u128(10)]
    );
    assert_eq!(
        w.active_secrets(epoch() + Duration::hours(24)),
        vec![Uuid::from_u128(11)]
    );
}

#[test]
fn a_second_rotation_drops_the_oldest_secret() {
    let rotate = |id, hours| WebhookCommand::RotateSecret {
        secret_id: Uuid::from_u128(id),
        overlap: Duration::hours(24),
        now: epoch() + Duration::hours(hours),
    };
    let w = given(vec![created(), rotate(11, 0), rotate(12, 1)]);
    assert_eq!(
        w.active_secrets(epoch() + Duration::hours(2)),
        vec![Uuid::from_u128(12), Uuid::from_u128(11)]
    );
}

#[test]
fn a_rotation_with_a_negative_overlap_is_refused() {
    let w = given(vec![created()]);
    let refused = when(
        &w,
        WebhookCommand::RotateSecret {
            secret_id: Uuid::from_u128(11),
            overlap: Duration::seconds(-1),
            now: epoch(),
        },
    );
    assert_eq!(refused.unwrap_err(), WebhookError::NegativeOverlap);
}

#[test]
fn a_gone_endpoint_disables_the_subscription_and_enabling_clears_the_reason() {
    // Given a subscription whose endpoint answered 410
    let w = given(vec![
        created(),
        WebhookCommand::DisableGone { now: epoch() },
    ]);
    assert!(!w.is_enabled());
    assert_eq!(w.disabled_reason.as_deref(), Some(GONE_REASON));
    // When disabled again, nothing is appended
    let (_, appended) = when(&w, WebhookCommand::DisableGone { now: epoch() }).unwrap();
    assert_eq!(appended, 0);
    // When an admin enables it
    let (w, _) = when(
        &w,
        WebhookCommand::Update {
            url: None,
            description: None,
            filter: None,
            enabled: Some(true),
            now: epoch(),
        },
    )
    .unwrap();
    // Then it is enabled and the reason is gone
    assert!(w.is_enabled());
    assert_eq!(w.disabled_reason, None);
}

#[test]
fn a_deleted_subscription_refuses_updates_and_deleting_again_appends_nothing() {
    let w = given(vec![created(), WebhookCommand::Delete { now: epoch() }]);
    assert!(!w.is_live());
    assert_eq!(when(&w, update()).unwrap_err(), WebhookError::NotFound);
    let (_, appended) = when(&w, WebhookCommand::Delete { now: epoch() }).unwrap();
    assert_eq!(appended, 0);
}

#[test]
fn commands_on_a_subscription_that_does_not_exist_are_refused() {
    let w = WebhookSubscription::default();
    assert_eq!(when(&w, update()).unwrap_err(), WebhookError::NotFound);
    assert_eq!(
        when(&w, WebhookCommand::Delete { now: epoch() }).unwrap_err(),
        WebhookError::NotFound
    );
}

#[test]
fn a_filter_matches_only_what_each_of_its_lists_names() {
    let filter = WebhookFilter {
        statuses: [SessionStatus::Running, SessionStatus::Terminated].into(),
        scaling_groups: [crate::ids::GroupName::parse("g", "gpu").unwrap()].into(),
        owners: Default::default(),
    };
    assert!(filter.matches(SessionStatus::Running, "gpu", "anyone"));
    assert!(!filter.matches(SessionStatus::Pending, "gpu", "anyone"));
    assert!(!filter.matches(SessionStatus::Running, "cpu", "anyone"));
    assert!(WebhookFilter::default().matches(SessionStatus::Pending, "x", "y"));
}

#[test]
fn a_url_must_be_http_or_https_without_whitespace() {
    assert!(WebhookUrl::parse("url", "https://a.example/x").is_ok());
    assert!(WebhookUrl::parse("url", "HTTP://a.example/x").is_ok());
    for bad in ["ftp://a.example/", "a.example", "https://a .example/", ""] {
        assert_eq!(WebhookUrl::parse("url", bad).unwrap_err().field, "url");
    }
    let long = format!("https://a.example/{}", "x".repeat(WebhookUrl::MAX_LEN));
    assert!(WebhookUrl::parse("url", &long).is_err());
}

#[test]
fn events_survive_a_json_round_trip() {
    let w = WebhookSubscription::default();
    for e in w.decide(created()).unwrap() {
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<WebhookEvent>(&text).unwrap(), e);
    }
}
