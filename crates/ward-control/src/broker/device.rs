//! Authenticating an agent by a DPoP proof of its enrolled device key, for
//! the requests agents make themselves (tokens, heartbeats, acknowledgements,
//! the agent's watch stream): the first stage of each. Knows nothing of
//! HTTP: the handler passes the proof it read and the method and path it
//! was made for.

use std::sync::Arc;
use ward_auth::ProofExpectations;

use crate::AppState;
use crate::agent_cache::CachedAgent;
use crate::error::ApiError;

/// A refusal and the tenant it is attributed to (the claimed agent's, so
/// its admins see probes against their agents).
pub type Refusal = (ApiError, Option<String>);

/// Checks that `proof` (the request's one `DPoP` header, or why it has
/// none) is a fresh, unreplayed DPoP proof for `POST` on `path` signed by
/// `agent_id`'s enrolled device key. Returns the agent.
pub async fn authenticate(
    state: &AppState,
    proof: Result<&str, ApiError>,
    agent_id: &str,
    path: &str,
    now: i64,
) -> Result<Arc<CachedAgent>, Refusal> {
    authenticate_for(state, proof, agent_id, "POST", path, now).await
}

/// Like [`authenticate`], for a proof made for `method` (`htm`) on `path`:
/// a proof for another method or path is refused.
pub async fn authenticate_for(
    state: &AppState,
    proof: Result<&str, ApiError>,
    agent_id: &str,
    method: &str,
    path: &str,
    now: i64,
) -> Result<Arc<CachedAgent>, Refusal> {
    let cached = state
        .agents
        .get(&state.store, agent_id)
        .await
        .map_err(|e| (e.into(), None))?;
    let tenant = cached.as_ref().map(|a| a.row.tenant_id.clone());
    let proof = proof.map_err(|e| (e, tenant.clone()))?;
    let mismatch =
        || format!("unknown agent `{agent_id}` or the proof is not signed by its device key");
    let Some(cached) = cached else {
        return Err((ApiError::dpop("invalid_client", mismatch()), None));
    };
    let htu = format!("{}{path}", state.config.public_url);
    let verified = ward_auth::dpop::verify_proof_known(
        proof,
        &ProofExpectations {
            htm: method,
            htu: &htu,
            now,
            max_age_secs: state.config.dpop_max_age_secs,
            max_future_secs: state.config.dpop_max_future_secs,
            access_token: None,
        },
        &cached.jwk,
        &cached.key,
    )
    .map_err(|e| (ApiError::dpop(e.code(), e.to_string()), tenant.clone()))?;
    if verified.iat < state.started_at {
        return Err((
            ApiError::dpop(
                "dpop_proof_expired",
                "the proof was created before the server started; create a new proof",
            ),
            tenant,
        ));
    }
    if verified.jkt != cached.row.device_jkt {
        return Err((ApiError::dpop("dpop_key_mismatch", mismatch()), tenant));
    }
    let replay_until = verified.iat + state.config.dpop_max_age_secs + 1;
    if !state.replay.first_use(
        format!("{}:{}", verified.jkt, verified.jti),
        now,
        replay_until,
    ) {
        return Err((
            ApiError::dpop(
                "dpop_replay",
                "this DPoP proof was used already; create a new proof for every request",
            ),
            tenant,
        ));
    }
    Ok(cached)
}
