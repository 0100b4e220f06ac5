//! Set-up through the API: a tenant, one agent and one token per client,
//! and the proofs, signed before the timer starts.

use crate::args::SCOPE;
use crate::procs::ControlPlane;
use ward_api::TokenRequest;
use ward_auth::Keypair;
use ward_bench::{BResult, s, unix_now};
use ward_client::Client;

pub(crate) struct Agent {
    pub(crate) key: Keypair,
    pub(crate) token: String,
    pub(crate) ath: String,
}

pub(crate) async fn setup_agents(cp: &ControlPlane, count: usize) -> BResult<Vec<Agent>> {
    let enrolled =
        ward_bench::enrol_agents(&cp.base, &cp.bootstrap, "bench-gateway", count, None).await?;
    let anonymous = Client::new(&cp.base, None).map_err(s)?;
    let mut out = Vec::with_capacity(count);
    for (i, (id, key)) in enrolled.into_iter().enumerate() {
        let token = anonymous
            .request_token(
                &key,
                &TokenRequest {
                    agent_id: id.clone(),
                    requested_scopes: vec![SCOPE.into()],
                    requested_duration: None,
                    approval_id: None,
                    action: None,
                },
            )
            .await
            .map_err(|e| format!("token for agent {i}: {e}"))?
            .token;
        let ath = ward_auth::dpop::ath_for(&token);
        out.push(Agent { key, token, ath });
    }
    Ok(out)
}

pub(crate) fn sign(agent: &Agent, htu: &str) -> BResult<String> {
    let jti = ward_auth::dpop::new_jti().map_err(s)?;
    ward_auth::dpop::create_proof(&agent.key, "POST", htu, unix_now(), &jti, Some(&agent.ath))
        .map_err(s)
}
