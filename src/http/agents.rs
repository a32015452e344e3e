//! `/v1/agents`: registration, heartbeats and the assignments long-poll (SPEC §1.4, §4).

use utoipa_axum::router::OpenApiRouter;

use super::AppState;

/// `router()` of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
