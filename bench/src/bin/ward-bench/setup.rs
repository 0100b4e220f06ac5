//! Set-up through the API: a tenant, agents with their own device keys,
//! and proofs signed ahead of the timer.

use crate::args::SCOPE;
use crate::server::Server;
use ward_api::TokenRequest;
use ward_auth::Keypair;
use ward_bench::{BResult, s, unix_now};
use ward_client::Client;

pub(crate) struct Agent {
    pub(crate) id: String,
    pub(crate) key: Keypair,
    pub(crate) body: String,
}

pub(crate) async fn setup(
    server: &Server,
    agents: usize,
    policy: Option<&std::path::Path>,
) -> BResult<Vec<Agent>> {
    let enrolled =
        ward_bench::enrol_agents(&server.base, &server.bootstrap, "bench", agents, policy).await?;
    let anonymous = Client::new(&server.base, None).map_err(s)?;
    let mut out = Vec::with_capacity(agents);
    for (id, key) in enrolled {
        let body = serde_json::to_string(&TokenRequest {
            agent_id: id.clone(),
            requested_scopes: vec![SCOPE.into()],
            requested_duration: None,
            approval_id: None,
            action: None,
        })
        .map_err(s)?;
        out.push(Agent { id, key, body });
    }
    // One token through the typed client proves the set-up is right.
    if let Some(first) = out.first() {
        let token = anonymous
            .request_token(
                &first.key,
                &TokenRequest {
                    agent_id: first.id.clone(),
                    requested_scopes: vec![SCOPE.into()],
                    requested_duration: None,
                    approval_id: None,
                    action: None,
                },
            )
            .await
            .map_err(|e| format!("sanity token request failed: {e}"))?;
        if token.token_type != "DPoP" {
            return Err(format!("unexpected token type `{}`", token.token_type));
        }
    }
    Ok(out)
}

pub(crate) fn sign_proof(key: &Keypair, htu: &str) -> BResult<String> {
    let jti = ward_auth::dpop::new_jti().map_err(s)?;
    ward_auth::dpop::create_proof(key, "POST", htu, unix_now(), &jti, None).map_err(s)
}
