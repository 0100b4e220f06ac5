//! `ward login`: sign in with the company's OpenID provider using the
//! device authorization grant (RFC 8628), and keep the token for the CLI in
//! a private credentials file.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Stored credentials, per server URL.
#[derive(Default, Serialize, Deserialize)]
struct Credentials {
    servers: BTreeMap<String, Stored>,
}

#[derive(Clone, Serialize, Deserialize)]
struct Stored {
    access_token: String,
    expires_at: i64,
    issuer: String,
}

/// Where credentials live: `WARD_CREDENTIALS`, else
/// `$XDG_CONFIG_HOME/ward/credentials.json`, else `~/.config/ward/credentials.json`.
fn credentials_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WARD_CREDENTIALS") {
        return Some(PathBuf::from(path));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("ward").join("credentials.json"))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn load() -> Credentials {
    credentials_path()
        .and_then(|path| std::fs::read(path).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// The stored, unexpired token for `server`, if any.
pub fn stored_token(server: &str) -> Option<String> {
    let credentials = load();
    let stored = credentials.servers.get(server.trim_end_matches('/'))?;
    (stored.expires_at > now() + 10).then(|| stored.access_token.clone())
}

fn save(server: &str, stored: Stored) -> Result<PathBuf, String> {
    let path =
        credentials_path().ok_or("cannot tell where to keep credentials; set WARD_CREDENTIALS")?;
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    }
    let mut credentials = load();
    credentials
        .servers
        .insert(server.trim_end_matches('/').to_owned(), stored);
    let text = serde_json::to_vec_pretty(&credentials).map_err(|e| e.to_string())?;
    let temporary = path.with_extension("json.tmp");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| {
            file.write_all(&text)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    Ok(path)
}

/// Arguments of `ward login`.
pub struct LoginArgs {
    pub server: String,
    pub resource: Option<String>,
    pub scope: String,
    pub json: bool,
}

/// Runs the device flow and stores the access token for `server`.
pub async fn login(args: LoginArgs) -> Result<(), String> {
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
                other => return Err(format!("the OpenID provider refused the sign-in: {other}")),
            },
        }
    };
    let access_token = tokens
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or("the provider sent no access token")?
        .to_owned();
    let expires_at = now()
        + tokens
            .get("expires_in")
            .and_then(Value::as_i64)
            .unwrap_or(300);
    let path = save(
        &server,
        Stored {
            access_token,
            expires_at,
            issuer: oidc.issuer.clone(),
        },
    )?;
    if args.json {
        crate::commands::print_json(&serde_json::json!({
            "server": server, "issuer": oidc.issuer, "expires_at": expires_at, "credentials": path,
        }))
    } else {
        println!(
            "signed in to {server} until {expires_at} (unix time); token kept in {}",
            path.display()
        );
        Ok(())
    }
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
