//! Child processes: the upstream, `ward serve`, nginx and `ward gateway`,
//! started, waited for and stopped.

use crate::args::Args;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use ward_bench::{BResult, s};

pub(crate) struct Proc {
    pub(crate) name: &'static str,
    pub(crate) child: Child,
}

/// Keeps `child` among the processes to stop at the end; the child, to wait
/// for its first words.
pub(crate) fn keep<'a>(
    procs: &'a mut Vec<Proc>,
    name: &'static str,
    child: Child,
) -> &'a mut Child {
    procs.push(Proc { name, child });
    let last = procs.len() - 1;
    &mut procs[last].child
}

impl Proc {
    /// SIGTERM, then SIGKILL after 10 s.
    pub(crate) fn stop(&mut self) {
        if !ward_bench::terminate(&mut self.child) {
            eprintln!("warning: {} did not stop on SIGTERM; killed it", self.name);
        }
    }
}

/// Waits for a stdout line starting with `prefix`; returns the rest. Other
/// lines keep being drained (and dropped) by the reading thread.
pub(crate) fn wait_for_line(
    child: &mut Child,
    prefix: &'static str,
    what: &str,
) -> BResult<String> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| format!("no stdout from {what}"))?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(rest) = line.strip_prefix(prefix) {
                let _ = tx.send(rest.to_owned());
                sent = true;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .map_err(|_| format!("{what} did not print `{prefix}` within 30 s"))
}

/// Polls a file for a line starting with `prefix` (the gateway's stdout is
/// its access log, so it goes to a file, not a pipe we would have to drain).
pub(crate) fn wait_for_file_line(
    child: &mut Child,
    path: &Path,
    prefix: &str,
    what: &str,
) -> BResult<String> {
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Some(line) = text.lines().find_map(|l| l.strip_prefix(prefix))
        {
            return Ok(line.to_owned());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited ({status}) before it was ready"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{what} did not print `{prefix}` within 40 s"))
}

pub(crate) fn free_port() -> BResult<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(s)?;
    Ok(listener.local_addr().map_err(s)?.port())
}

/// Each start_* pushes its child onto `procs` as soon as it runs, so the
/// caller stops it whatever happens next.
pub(crate) fn start_upstream(tmp: &Path, procs: &mut Vec<Proc>) -> BResult<(u32, SocketAddr)> {
    let exe = std::env::current_exe().map_err(s)?;
    let log = std::fs::File::create(tmp.join("upstream.err")).map_err(s)?;
    let child = Command::new(exe)
        .args(["--serve-upstream", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start the upstream: {e}"))?;
    let pid = child.id();
    let child = keep(procs, "upstream", child);
    let addr = wait_for_line(child, "upstream listening on ", "the upstream")?;
    let addr: SocketAddr = addr.trim().parse().map_err(s)?;
    Ok((pid, addr))
}

pub(crate) struct ControlPlane {
    pub(crate) base: String,
    pub(crate) bootstrap: String,
}

pub(crate) fn start_control_plane(
    args: &Args,
    tmp: &Path,
    procs: &mut Vec<Proc>,
) -> BResult<(u32, ControlPlane)> {
    let data = tmp.join("serve");
    let log = std::fs::File::create(tmp.join("serve.err")).map_err(s)?;
    let child = Command::new(&args.ward_bin)
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0", "--matrix"])
        .arg(&args.matrix)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", args.ward_bin.display()))?;
    let pid = child.id();
    let child = keep(procs, "ward serve", child);
    let base = wait_for_line(child, "ward listening on ", "ward serve")?
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    let bootstrap = std::fs::read_to_string(data.join("bootstrap-admin-token"))
        .map_err(|e| format!("cannot read the bootstrap token: {e}"))?
        .trim()
        .to_owned();
    Ok((pid, ControlPlane { base, bootstrap }))
}

pub(crate) fn nginx_conf(tmp: &Path, port: u16, upstream: SocketAddr, workers: usize) -> String {
    let t = tmp.display();
    format!(
        r#"# Written by ward-bench-gateway: nginx as a plain reverse proxy.
worker_processes {workers};
pid {t}/nginx.pid;
error_log {t}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {t}/nginx-access.log;
    client_body_temp_path {t}/nginx-client-body;
    proxy_temp_path {t}/nginx-proxy;
    fastcgi_temp_path {t}/nginx-fastcgi;
    uwsgi_temp_path {t}/nginx-uwsgi;
    scgi_temp_path {t}/nginx-scgi;
    upstream app {{
        server {upstream};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        keepalive_requests 1000000;
        keepalive_timeout 75s;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"#
    )
}

pub(crate) fn start_nginx(
    args: &Args,
    tmp: &Path,
    upstream: SocketAddr,
    procs: &mut Vec<Proc>,
) -> BResult<(u32, SocketAddr, String)> {
    let port = free_port()?;
    let conf = tmp.join("nginx.conf");
    let text = nginx_conf(tmp, port, upstream, args.nginx_workers);
    std::fs::write(&conf, &text).map_err(s)?;
    let log = std::fs::File::create(tmp.join("nginx.err")).map_err(s)?;
    let child = Command::new(&args.nginx_bin)
        .arg("-p")
        .arg(tmp)
        .arg("-c")
        .arg(&conf)
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", args.nginx_bin))?;
    let pid = child.id();
    let child = keep(procs, "nginx", child);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().map_err(s)?;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if std::net::TcpStream::connect(addr).is_ok() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let err = std::fs::read_to_string(tmp.join("nginx.err")).unwrap_or_default();
            return Err(format!("nginx exited ({status}): {err}"));
        }
        if Instant::now() > deadline {
            return Err("nginx did not listen within 15 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((pid, addr, text))
}

pub(crate) fn gateway_conf(
    args: &Args,
    cp: &ControlPlane,
    upstream: SocketAddr,
) -> BResult<String> {
    let schema = std::fs::canonicalize(&args.schema)
        .map_err(|e| format!("schema `{}`: {e}", args.schema.display()))?;
    Ok(format!(
        r#"# Written by ward-bench-gateway: every check on, limits too high to throttle.
listen: 127.0.0.1:0
control_plane:
  url: {cp}
  token: {token}
upstream: http://{upstream}
proof_max_age_secs: {age}
max_body_bytes: 65536
ip_rate_limit: {{per_second: 1000000, burst: 1000000}}
routes:
  - name: search
    methods: [POST]
    path: /projects/{{user}}/{{project}}/search
    scope: files:read:/home/{{user}}/projects/{{project}}
    schema: {schema}
    flag: project-search
    rate_limit: {{per_second: 1000000, burst: 1000000}}
    user_rate_limit: {{per_second: 1000000, burst: 1000000}}
    daily_quota: 1000000000
"#,
        cp = cp.base,
        token = cp.bootstrap,
        age = args.proof_max_age_secs,
        schema = schema.display(),
    ))
}

pub(crate) fn start_gateway(
    args: &Args,
    tmp: &Path,
    cp: &ControlPlane,
    upstream: SocketAddr,
    procs: &mut Vec<Proc>,
) -> BResult<(u32, SocketAddr, String, String)> {
    let conf = tmp.join("gateway.yaml");
    let text = gateway_conf(args, cp, upstream)?;
    std::fs::write(&conf, &text).map_err(s)?;
    let access = tmp.join("gateway-access.log");
    let out = std::fs::File::create(&access).map_err(s)?;
    let err = std::fs::File::create(tmp.join("gateway.err")).map_err(s)?;
    let child = Command::new(&args.ward_bin)
        .arg("gateway")
        .arg("--config")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| format!("cannot start `ward gateway`: {e}"))?;
    let pid = child.id();
    let child = keep(procs, "ward gateway", child);
    let line = wait_for_file_line(
        child,
        &access,
        "ward gateway listening on http://",
        "ward gateway",
    )?;
    let addr: SocketAddr = line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .parse()
        .map_err(|e| format!("gateway address in `{line}`: {e}"))?;
    let public_url = line
        .split_once("(public URL ")
        .map(|(_, rest)| rest.trim_end_matches(')').trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("http://{addr}"));
    Ok((pid, addr, public_url, text))
}
