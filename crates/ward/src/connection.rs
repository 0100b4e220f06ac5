//! The flags that say which server to call and as whom (`--server`,
//! `--token`, `--json`), and the client they make.

use clap::Args;
use ward_client::Client;

use crate::credentials;
use crate::error::CliResult;
use crate::output::Output;

/// Where the server is and who we are.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// Server URL.
    #[arg(
        long,
        env = "WARD_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// Admin API token.
    #[arg(long, env = "WARD_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Conn {
    /// A client with the given token, else the one `ward login` kept.
    pub fn client(&self) -> CliResult<Client> {
        let token = self
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| credentials::stored_token(&self.server))
            .ok_or("no admin token: pass --token, set WARD_TOKEN, or run `ward login`")?;
        Ok(Client::new(&self.server, Some(token))?)
    }

    /// How to print results.
    pub fn output(&self) -> Output {
        Output::new(self.json)
    }
}
