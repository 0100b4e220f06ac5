//! `ward mcp proxy`: an MCP server behind Ward, over stdio (the agent
//! starts this command instead of the server's) or Streamable HTTP (the
//! agent is given the proxy's URL instead of the server's; [`http`]).
//! `ward_agent::mcp` decides what passes.

mod http;

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncWriteExt, BufReader};
use ward_agent::mcp::{ArgumentMap, MAX_LINE, Proxy, Route, read_line};
use ward_client::LocalClient;

use crate::error::{CliError, CliResult};

/// `ward mcp ...`.
#[derive(Subcommand, Debug)]
pub enum McpCommand {
    /// Run an MCP server behind Ward (stdio, or Streamable HTTP with --listen): tools filtered, calls checked by the daemon.
    Proxy(ProxyArgs),
}

/// `ward mcp proxy`.
#[derive(Args, Debug)]
pub struct ProxyArgs {
    /// Directory written by `ward agent enroll` (the socket is STATE_DIR/agent.sock).
    #[arg(long, required_unless_present = "socket")]
    pub state_dir: Option<PathBuf>,
    /// The daemon's socket, when it is not in the state directory.
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// The server's name in scopes (`mcp:call:NAME/TOOL`).
    #[arg(long)]
    pub name: String,
    /// A JSON file naming the arguments that are resources, per tool:
    /// `{"write_file": {"path": "files:write"}}`.
    #[arg(long)]
    pub map: Option<PathBuf>,
    /// Replace secrets in the results of calls by markers before the client sees them.
    #[arg(long)]
    pub redact: bool,
    /// Serve Streamable HTTP on this address (loopback: 127.0.0.1:PORT) instead of stdio.
    #[arg(long, requires = "upstream", conflicts_with = "command")]
    pub listen: Option<std::net::SocketAddr>,
    /// The MCP endpoint of the server behind the proxy (http:// or https://).
    #[arg(long, requires = "listen")]
    pub upstream: Option<String>,
    /// Trust anchors (PEM) for an https:// upstream instead of the system's.
    #[arg(long, requires = "upstream")]
    pub ca_file: Option<String>,
    /// An Origin browsers may send requests from (repeatable); any other Origin is refused with 403.
    #[arg(long, requires = "listen")]
    pub allow_origin: Vec<String>,
    /// The server's command and arguments, after `--` (stdio).
    #[arg(last = true, required_unless_present = "listen")]
    pub command: Vec<std::ffi::OsString>,
}

/// Runs one `ward mcp` command.
pub async fn run(command: McpCommand) -> CliResult {
    match command {
        McpCommand::Proxy(args) => proxy(args).await,
    }
}

async fn proxy(args: ProxyArgs) -> CliResult {
    let socket = match (&args.socket, &args.state_dir) {
        (Some(socket), _) => socket.clone(),
        (None, Some(dir)) => dir.join("agent.sock"),
        (None, None) => return Err(CliError::Failed("give --state-dir or --socket".into())),
    };
    let arguments: ArgumentMap = match &args.map {
        None => ArgumentMap::default(),
        Some(path) => {
            let text = std::fs::read(path)
                .map_err(|e| CliError::Failed(format!("cannot read `{}`: {e}", path.display())))?;
            serde_json::from_slice(&text).map_err(|e| {
                CliError::Failed(format!(
                    "`{}` is not a map of tools to arguments to actions: {e}",
                    path.display()
                ))
            })?
        }
    };
    let proxy = Proxy::new(&args.name, arguments, args.redact);
    if let (Some(listen), Some(upstream)) = (args.listen, &args.upstream) {
        return http::run(
            listen,
            upstream,
            args.ca_file.clone(),
            args.allow_origin.clone(),
            proxy,
            socket,
        )
        .await;
    }
    let proxy = std::sync::Arc::new(proxy);
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| CliError::Failed("no server command".into()))?;
    let mut child = tokio::process::Command::new(program)
        .args(rest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            CliError::Failed(format!("cannot start `{}`: {e}", program.to_string_lossy()))
        })?;
    let (Some(mut to_server), Some(from_server)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(CliError::Failed("the server's stdio is not piped".into()));
    };
    // One writer of our stdout for both directions.
    let (to_client, mut lines_out) = tokio::sync::mpsc::channel::<String>(64);
    let writer = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(line) = lines_out.recv().await {
            let written = async {
                out.write_all(line.as_bytes()).await?;
                out.write_all(b"\n").await?;
                out.flush().await
            };
            if written.await.is_err() {
                break;
            }
        }
    });
    let server_side = {
        let proxy = proxy.clone();
        let to_client = to_client.clone();
        let socket = socket.clone();
        tokio::spawn(async move {
            let mut daemon = LocalClient::new(&socket);
            let mut lines = BufReader::new(from_server);
            loop {
                let line = match read_line(&mut lines, MAX_LINE).await {
                    Ok(Some(line)) => line,
                    Ok(None) => break,
                    Err(error) => {
                        // Nothing more from this server reaches the client.
                        tracing::error!(error = %error, "mcp proxy: the server sent a line Ward cannot judge; stopping");
                        break;
                    }
                };
                match proxy.from_server(&line, &mut daemon).await {
                    Route::Forward(line) | Route::Reply(line) => {
                        if to_client.send(line).await.is_err() {
                            break;
                        }
                    }
                    Route::Drop => {}
                }
            }
        })
    };
    let mut daemon = LocalClient::new(&socket);
    let mut lines = BufReader::new(tokio::io::stdin());
    let mut failed = None;
    loop {
        let line = match read_line(&mut lines, MAX_LINE).await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(error) => {
                failed = Some(format!(
                    "the client sent a line Ward cannot judge ({error}); stopped"
                ));
                break;
            }
        };
        match proxy.from_client(&line, &mut daemon).await {
            Route::Forward(line) => {
                let sent = async {
                    to_server.write_all(line.as_bytes()).await?;
                    to_server.write_all(b"\n").await?;
                    to_server.flush().await
                };
                if sent.await.is_err() {
                    break;
                }
            }
            Route::Reply(line) => {
                let _ = to_client.send(line).await;
            }
            Route::Drop => {}
        }
    }
    // The client is gone: the server's input ends, its output drains.
    drop(to_server);
    let _ = server_side.await;
    drop(to_client);
    let _ = writer.await;
    let _ = child.wait().await;
    match failed {
        Some(why) => Err(CliError::Failed(why)),
        None => Ok(()),
    }
}
