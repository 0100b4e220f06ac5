//! `ward login`: sign in with the company's OpenID provider using the
//! device authorization grant (RFC 8628), and keep the token for the other
//! commands (`credentials.rs`).

use clap::Args;
use serde_json::Value;
use std::time::{Duration, Instant};

use crate::credentials::{self, Stored};
use crate::error::CliResult;
use crate::output::Output;

/// `ward login`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Server URL.
    #[arg(long, env = "WARD_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Resource indicator to ask the provider for (RFC 8707), if it needs one.
    #[arg(long)]
    pub resource: Option<String>,
    /// Scopes to ask for.
    #[arg(long, default_value = "openid email groups offline_access")]
    pub scope: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the device flow and stores the access token for `server`.
pub async fn run(args: LoginArgs) -> CliResult {
    let server = args.server.trim_end_matches('/').to_owned();
    ward_client::install_tls_provider();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| e.to_string())?;
    let config: ward_api::AuthConfig = get_json(&http, &format!("{server}/v1/auth/config")).await?;
    let oidc = config.oidc.ok_or_else(|| {
        format!("`{server}` accepts API tokens only; it has no OpenID provider configured")
    })?;
    let discovery: Value = get_json(
        &http,
        &format!(
            "{}/.well-known/openid-configuration",
            oidc.issuer.trim_end_matches('/')
        ),
    )
    .await?;
    let endpoint = |name: &str| {
        discovery
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                format!("the OpenID provider does not offer `{name}`; it cannot do the device flow")
            })
    };
    let device_endpoint = endpoint("device_authorization_endpoint")?;
    let token_endpoint = endpoint("token_endpoint")?;
    let mut form = vec![
        ("client_id", oidc.client_id.clone()),
        ("scope", args.scope.clone()),
    ];
    if let Some(resource) = &args.resource {
        form.push(("resource", resource.clone()));
    }
    let device: Value = post_form(&http, &device_endpoint, &form)
        .await?
        .map_err(|e| format!("the OpenID provider refused the sign-in request: {e}"))?;
    let text = |name: &str| device.get(name).and_then(Value::as_str).map(str::to_owned);
    let device_code = text("device_code").ok_or("the provider sent no device code")?;
    let user_code = text("user_code").ok_or("the provider sent no user code")?;
    let verification = text("verification_uri_complete")
        .or_else(|| text("verification_uri"))
        .ok_or("the provider sent no verification address")?;
    let mut interval = device
        .get("interval")
        .and_then(Value::as_u64)
        .unwrap_or(5)
        .max(1);
    let expires_in = device
        .get("expires_in")
        .and_then(Value::as_u64)
        .unwrap_or(600);
    eprintln!("To sign in, open {verification} and confirm the code {user_code}");
    // The provider's numbers are bounded before use: no overflow, no
    // ten-year polling.
    let deadline = Instant::now() + Duration::from_secs(expires_in.min(3600));
    let mut poll = vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:device_code".to_owned(),
        ),
        ("device_code", device_code),
        ("client_id", oidc.client_id.clone()),
    ];
    if let Some(resource) = &args.resource {
        poll.push(("resource", resource.clone()));
    }
    let tokens = loop {
        if Instant::now() >= deadline {
            return Err(
                "the sign-in code expired before it was confirmed; run `ward login` again".into(),
            );
        }
        tokio::time::sleep(Duration::from_secs(interval)).await;
        match post_form(&http, &token_endpoint, &poll).await? {
            Ok(tokens) => break tokens,
            Err(error) => match error.as_str() {
                "authorization_pending" => {}
                "slow_down" => interval = (interval + 5).min(60),
                "access_denied" => return Err("the sign-in was denied".into()),
                "expired_token" => {
                    return Err(
                        "the sign-in code expired before it was confirmed; run `ward login` again"
                            .into(),
                    );
                }
                other => {
                    return Err(format!("the OpenID provider refused the sign-in: {other}").into());
                }
            },
        }
    };
    let access_token = tokens
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or("the provider sent no access token")?
        .to_owned();
    let expires_at = credentials::now()
        + tokens
            .get("expires_in")
            .and_then(Value::as_i64)
            .unwrap_or(300);
    let path = credentials::save(
        &server,
        Stored {
            access_token,
            expires_at,
            issuer: oidc.issuer.clone(),
        },
    )?;
    Output::new(args.json).show(
        &serde_json::json!({
            "server": server, "issuer": oidc.issuer, "expires_at": expires_at, "credentials": path,
        }),
        |_| {
            format!(
                "signed in to {server} until {expires_at} (unix time); token kept in {}",
                path.display()
            )
        },
    )
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, String> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot reach `{url}`: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("`{url}` answered {}", response.status()));
    }
    response
        .json()
        .await
        .map_err(|e| format!("`{url}` sent an unexpected answer: {e}"))
}

/// POSTs a form; `Ok(Err(code))` carries an OAuth error code.
async fn post_form(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, String)],
) -> Result<Result<Value, String>, String> {
    let response = http
        .post(url)
        .form(form)
        .send()
        .await
        .map_err(|e| format!("cannot reach `{url}`: {e}"))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| format!("`{url}` sent an unexpected answer: {e}"))?;
    if status.is_success() {
        return Ok(Ok(body));
    }
    Ok(Err(body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("unknown_error")
        .to_owned()))
}
