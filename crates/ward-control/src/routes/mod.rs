//! The HTTP routes, grouped by area; [`routes`] assembles them.

pub mod admin;
pub mod agents;
pub mod alerts;
pub mod approvals;
pub mod audit;
pub mod consents;
pub mod desktop;
pub mod events;
pub mod meta;
pub mod policy;
pub mod switches;
pub mod tokens;
pub mod watch;

use axum::Router;
use axum::routing::{delete, get, post, put};

use crate::AppState;

/// Every route of the API.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(meta::healthz))
        .route("/readyz", get(meta::readyz))
        .route("/.well-known/jwks.json", get(meta::jwks))
        .route("/openapi.json", get(meta::openapi))
        .route("/v1/auth/config", get(meta::auth_config))
        .route(
            "/v1/tenants",
            post(admin::create_tenant).get(admin::list_tenants),
        )
        .route("/v1/api-tokens", post(admin::create_api_token))
        .route("/v1/keys/rotate", post(admin::rotate_key))
        .route("/v1/enroll-tokens", post(agents::create_enroll_token))
        .route("/v1/agents", post(agents::enroll).get(agents::list))
        .route("/v1/agents/{id}", get(agents::show))
        .route("/v1/agents/{id}/activate", post(agents::activate))
        .route("/v1/agents/{id}/quarantine", post(agents::quarantine))
        .route("/v1/agents/{id}/revoke", post(agents::revoke))
        .route("/v1/agents/{id}/uninstall", post(agents::uninstall))
        .route("/v1/tokens", post(tokens::issue))
        .route("/v1/tokens/introspect", post(tokens::introspect))
        .route("/v1/tokens/revoke", post(tokens::revoke))
        .route("/v1/audit", get(audit::list))
        .route("/v1/approvals", get(approvals::list))
        .route("/v1/approvals/{id}", get(approvals::show))
        .route("/v1/approvals/{id}/approve", post(approvals::approve))
        .route("/v1/approvals/{id}/deny", post(approvals::deny))
        .route("/v1/consents", post(consents::record).get(consents::list))
        .route("/v1/policy", get(policy::show))
        .route("/v1/policy/bundles", post(policy::push))
        .route(
            "/v1/killswitch",
            put(switches::set_killswitch).get(switches::killswitches),
        )
        .route("/v1/flags", get(switches::flags))
        .route("/v1/flags/{key}", put(switches::set_flag))
        .route("/v1/watch", get(watch::watch))
        .route("/v1/watch/snapshot", get(watch::snapshot))
        .merge(desktop_routes())
}

/// What desktop runtimes call, and what admins read about them.
fn desktop_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/agents/{id}/heartbeat", post(desktop::heartbeat))
        .route("/v1/agents/{id}/acks", post(desktop::acks))
        .route("/v1/agents/{id}/watch", get(desktop::watch))
        .route(
            "/v1/agent-policy",
            get(desktop::agent_policy).put(desktop::set_agent_policy),
        )
        .route("/v1/killswitch/status", get(desktop::killswitch_status))
        .route("/metrics", get(desktop::metrics))
        .route("/v1/events", post(events::ship).get(events::list))
        .route("/v1/events/stream", get(events::stream))
        .route("/v1/alerts", get(alerts::list))
        .route("/v1/alerts/failed", get(alerts::failed))
        .route("/v1/alerts/failed/{id}/retry", post(alerts::retry))
        .route("/v1/alerts/{id}", get(alerts::show))
        .route(
            "/v1/silences",
            post(alerts::create_silence).get(alerts::silences),
        )
        .route("/v1/silences/{id}", delete(alerts::expire_silence))
        .route("/v1/agents/{id}/baseline", get(alerts::baseline))
}
