//! The server child process: `ward serve` started, waited for and stopped.

use crate::args::Args;
use crate::procstat::thread_ticks;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use ward_bench::BResult;

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) base: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) remove_data: bool,
    pub(crate) bootstrap: String,
    /// Tid of `ward-store-writer`: tokio threads with a lower tid are the
    /// runtime's workers, later ones its blocking pool.
    pub(crate) writer_tid: Option<u32>,
}

pub(crate) fn start_server(args: &Args) -> BResult<Server> {
    let (data_dir, remove_data) = match &args.data_dir {
        Some(dir) => (dir.clone(), !args.keep_data),
        None => (
            std::env::temp_dir().join(format!(
                "ward-bench-{}-{}",
                args.mode.name(),
                std::process::id()
            )),
            !args.keep_data,
        ),
    };
    if data_dir.exists() {
        std::fs::remove_dir_all(&data_dir)
            .map_err(|e| format!("cannot clear `{}`: {e}", data_dir.display()))?;
    }
    let log_path = data_dir.with_extension("log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create `{}`: {e}", log_path.display()))?;
    let mut child = Command::new(&args.ward_bin)
        .arg("serve")
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--matrix")
        .arg(&args.matrix)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start `{}`: {e}", args.ward_bin.display()))?;
    let pid = child.id();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| "no stdout from the server".to_owned())?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let base = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(rest) = line.strip_prefix("ward listening on ") {
                    let url = rest.split_whitespace().next().unwrap_or_default();
                    break url.trim_end_matches('/').to_owned();
                }
            }
            Err(_) => {
                let _ = child.kill();
                return Err(format!(
                    "the server did not say `ward listening on` within 30 s; see {}",
                    log_path.display()
                ));
            }
        }
    };
    let bootstrap = std::fs::read_to_string(data_dir.join("bootstrap-admin-token"))
        .map_err(|e| format!("cannot read the bootstrap token: {e}"))?
        .trim()
        .to_owned();
    let writer_tid = thread_ticks(pid)
        .into_iter()
        .find(|(_, (comm, _))| comm.starts_with("ward-store-wri"))
        .map(|(tid, _)| tid);
    Ok(Server {
        child,
        pid,
        base,
        data_dir,
        remove_data,
        bootstrap,
        writer_tid,
    })
}

impl Server {
    /// SIGTERM (graceful shutdown), then SIGKILL after 10 s.
    pub(crate) fn stop(&mut self) {
        ward_bench::terminate(&mut self.child);
    }
}
