//! The OpenAPI document, generated from the handlers' annotations and the
//! wire types in `ward-api`.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    admin, agents, approvals, audit, consents, meta, policy, switches, tokens, watch,
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
    ),
    modifiers(&BearerAuth),
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

/// The OpenAPI 3.1 document as pretty JSON.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
