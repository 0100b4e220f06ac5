//! The OpenAPI document, generated from the handlers' annotations and the
//! wire types in `ward-api`.

use axum::http::StatusCode;
use utoipa::openapi::RefOr;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    admin, agents, alerts, approvals, audit, consents, desktop, events, meta, policy, switches,
    tokens, watch,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Ward control plane", description = "Registry, lifecycle, token broker and audit log for desktop AI agents."),
    paths(
        meta::healthz, meta::readyz, meta::jwks, meta::openapi, meta::auth_config,
        admin::create_tenant, admin::list_tenants, admin::create_api_token, admin::rotate_key,
        agents::create_enroll_token, agents::enroll, agents::list, agents::show,
        agents::activate, agents::quarantine, agents::revoke, agents::uninstall,
        tokens::issue, tokens::introspect, tokens::revoke,
        audit::list,
        approvals::list, approvals::show, approvals::approve, approvals::deny,
        consents::record, consents::list,
        policy::push, policy::show,
        switches::set_killswitch, switches::killswitches, switches::set_flag, switches::flags,
        watch::watch, watch::snapshot,
        desktop::heartbeat, desktop::acks, desktop::watch, desktop::agent_policy,
        desktop::set_agent_policy, desktop::killswitch_status, desktop::metrics,
        events::ship, events::list, events::stream,
        alerts::list, alerts::show, alerts::failed, alerts::retry,
        alerts::create_silence, alerts::silences, alerts::expire_silence, alerts::baseline,
    ),
    modifiers(&BearerAuth, &ResponseDescriptions, &UniqueOperationIds),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
    }
}

/// OpenAPI requires a `description` on every response object; an
/// annotation that gives none gets the status code's reason phrase.
struct ResponseDescriptions;

impl Modify for ResponseDescriptions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for operation in operations(openapi) {
            for (status, response) in &mut operation.responses.responses {
                if let RefOr::T(response) = response
                    && response.description.is_empty()
                {
                    response.description = StatusCode::from_bytes(status.as_bytes())
                        .ok()
                        .and_then(|code| code.canonical_reason())
                        .unwrap_or("Response")
                        .to_owned();
                }
            }
        }
    }
}

/// Operation ids are the handlers' names, which repeat across modules
/// (`list`, `show`, `revoke`); OpenAPI requires them unique, so a repeated
/// one is prefixed with its operation's tag (`agents_list`, `audit_list`).
struct UniqueOperationIds;

impl Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut seen = std::collections::BTreeMap::<String, usize>::new();
        for operation in operations(openapi) {
            if let Some(id) = &operation.operation_id {
                *seen.entry(id.clone()).or_default() += 1;
            }
        }
        for operation in operations(openapi) {
            let tag = operation
                .tags
                .as_ref()
                .and_then(|tags| tags.first())
                .cloned();
            if let (Some(id), Some(tag)) = (operation.operation_id.as_mut(), tag)
                && seen.get(id.as_str()).is_some_and(|count| *count > 1)
            {
                *id = format!("{tag}_{id}");
            }
        }
    }
}

/// Every operation of the document.
fn operations(openapi: &mut utoipa::openapi::OpenApi) -> impl Iterator<Item = &mut Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
    })
}

/// The OpenAPI 3.1 document as pretty JSON.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
