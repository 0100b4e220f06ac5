//! Token acquisition: ask the broker of the server the agent enrolled with
//! for a token, with a fresh DPoP proof signed by the device key.

use std::path::Path;
use ward_api::{TokenRequest, TokenResponse};
use ward_client::Client;

use crate::device_key;
use crate::error::AgentError;
use crate::state::StateDir;

/// The token an agent asks for.
#[derive(Clone, Debug, Default)]
pub struct TokenWanted {
    /// Scopes wanted.
    pub scopes: Vec<String>,
    /// Lifetime in seconds, if not the server's default.
    pub duration: Option<u64>,
    /// An approved approval request to redeem.
    pub approval_id: Option<String>,
    /// The one action the token is bound to, if any.
    pub action: Option<serde_json::Value>,
}

/// Gets a token for the agent enrolled in `state_dir`.
pub async fn acquire_token(
    state_dir: &Path,
    wanted: TokenWanted,
) -> Result<TokenResponse, AgentError> {
    let dir = StateDir::open(state_dir)?;
    let record = dir.record()?;
    let device = device_key::load(&dir.key_path())?;
    let client = Client::new(&record.server, None)?;
    let body = TokenRequest {
        agent_id: record.agent_id,
        requested_scopes: wanted.scopes,
        requested_duration: wanted.duration,
        approval_id: wanted.approval_id,
        action: wanted.action,
    };
    Ok(client.request_token(&device, &body).await?)
}
