//! Session-status webhooks (SPEC §8): subscriptions, the per-owner callback secrets,
//! the dispatcher that sends what the outbox holds.
//!
//! How a status change becomes a signed POST:
//! 1. A session event is appended (any command).
//! 2. The `webhook_outbox` projection (`projections::models::outbox`) writes one
//!    delivery per matching, enabled subscription and one for the session's
//!    `callback_url`, in the transaction of its checkpoint, with the body fixed.
//! 3. The [`dispatcher`] (one per deployment, by lease) signs each delivery with the
//!    subscription's active secrets (or the owner's callback secret) and POSTs it,
//!    retrying on the configured schedule, in order per session per endpoint.
//!
//! # Layout
//! - [`sign`]: Standard Webhooks signing (`whsec_` secrets, `v1,` HMAC-SHA256 entries).
//! - [`guard`]: the SSRF guard (URL rules, forbidden networks, a resolver that checks
//!   every address on every connect) and the dispatcher's HTTP client.
//! - [`subscriptions`]: subscription commands and the sealed secrets.
//! - [`dispatcher`]: the sender.

pub mod dispatcher;
pub mod guard;
pub mod sign;
pub mod subscriptions;

use crate::config::WebhookConfig;

/// The SSRF guard of a configuration (networks were checked when it was loaded; one
/// that does not parse allows nothing extra).
pub fn guard_of(config: &WebhookConfig) -> guard::Guard {
    let mut allow = Vec::new();
    for n in &config.allow_networks {
        if let Ok(nets) = guard::parse_networks(n) {
            allow.extend(nets);
        }
    }
    guard::Guard::new(allow)
}
