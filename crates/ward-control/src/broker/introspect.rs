//! Token introspection (RFC 7662): whether a token is one this server
//! signed for the caller's tenant and no revocation rule covers it.

use serde_json::Value;
use ward_api::{Confirmation, IntrospectResponse};

use crate::AppState;
use crate::revocation::TokenFacts;
use crate::util::now_ms;

/// Introspection (RFC 7662): the answer for an active token of `tenant`
/// signed by this server and not revoked, or `None`.
pub fn introspect(state: &AppState, tenant: &str, token: &str) -> Option<IntrospectResponse> {
    let now_ms = now_ms();
    let (_, claims) = ward_auth::verify_jwt(token, now_ms / 1000, 0, |kid| {
        state.keys.lookup(kid, now_ms)
    })
    .ok()?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    if text("tenant").as_deref() != Some(tenant)
        || text("iss").as_deref() != Some(state.config.public_url.as_str())
    {
        return None;
    }
    let scopes: Vec<String> = claims
        .get("scopes")?
        .as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_owned))
        .collect::<Option<_>>()?;
    let jti = text("jti")?;
    let sub = text("sub")?;
    let iat = number("iat")?;
    let facts = TokenFacts {
        tenant,
        jti: &jti,
        agent: &sub,
        scopes: &scopes,
        iat,
    };
    if state.revocations.check(&facts).is_some() {
        return None;
    }
    Some(IntrospectResponse {
        active: true,
        scope: Some(scopes.join(" ")),
        client_id: Some(sub.clone()),
        username: text("owner"),
        token_type: Some("DPoP".into()),
        exp: number("exp"),
        iat: Some(iat),
        nbf: number("nbf"),
        sub: Some(sub),
        iss: text("iss"),
        jti: Some(jti),
        tenant: Some(tenant.to_owned()),
        device_id: text("device_id"),
        cnf: claims
            .get("cnf")
            .and_then(|c| c.get("jkt"))
            .and_then(Value::as_str)
            .map(|jkt| Confirmation {
                jkt: jkt.to_owned(),
            }),
    })
}
