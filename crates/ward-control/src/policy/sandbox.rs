//! The policy sandbox: a child process of the same binary in which every
//! piece of tenant Rego runs (push-time tests and decisions), under limits
//! the kernel enforces (address space, CPU time, no core files) and a
//! deadline the parent enforces by killing it. The control plane never
//! parses or evaluates tenant Rego in its own address space, so no policy
//! can exhaust its memory or hold its threads.
//!
//! Both ends live here: [`Process`] is the parent's handle, [`child_main`]
//! the child's loop. They exchange one line of JSON per request
//! ([`ward_policy::sandbox`]). This module knows nothing about tenants,
//! HTTP or the store.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use ward_policy::sandbox::{Request, Response};

/// The first argument that makes the `ward` binary run [`child_main`].
pub const COMMAND: &str = "__policy-sandbox";
/// The argument that tells a sandbox its limits are in force.
const LIMITED: &str = "limited";

const MIB: u64 = 1024 * 1024;
/// Longest answer line read from a sandbox.
const MAX_RESPONSE_BYTES: u64 = 4 * MIB;
/// Bytes of a dead sandbox's standard error read to tell why it died.
const MAX_STDERR_BYTES: u64 = 16 * 1024;
/// How long a sandbox that closed its output may take to exit.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// The bounds put on one sandbox process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Address space in bytes (`RLIMIT_AS`): an allocation beyond it fails
    /// and ends the process.
    pub memory: u64,
    /// CPU seconds over the life of the process (`RLIMIT_CPU`); 0 for none.
    pub cpu_seconds: u64,
    /// Wall-clock time one request may take; then the parent kills it.
    pub deadline: Duration,
    /// Scheduling niceness, 0 (normal) to 19 (lowest).
    pub nice: i32,
}

/// Limits of a long-lived sandbox that makes token and enrolment
/// decisions. A decision takes about 0.1 ms; the engine's own time limit
/// ([`ward_policy::DEFAULT_TIME_LIMIT`]) ends a runaway evaluation at 1 s,
/// the deadline ends one the engine cannot interrupt (a single huge
/// built-in call).
pub const DECISION_LIMITS: Limits = Limits {
    memory: 256 * MIB,
    cpu_seconds: 0,
    deadline: Duration::from_secs(2),
    nice: 0,
};

/// Limits of the one-shot sandbox that parses, tests and compiles a pushed
/// bundle: more memory and time than a decision, at a lower priority than
/// the decisions of every tenant.
pub const PUSH_LIMITS: Limits = Limits {
    memory: 512 * MIB,
    cpu_seconds: 10,
    deadline: Duration::from_secs(30),
    nice: 10,
};

impl Limits {
    fn to_args(self) -> [String; 3] {
        [
            self.memory.to_string(),
            self.cpu_seconds.to_string(),
            self.nice.to_string(),
        ]
    }

    /// The limits given as arguments, and whether they are in force
    /// already (the [`LIMITED`] marker follows them).
    fn from_args(args: impl Iterator<Item = OsString>) -> Option<(Limits, bool)> {
        let args: Vec<String> = args.map(|a| a.into_string().ok()).collect::<Option<_>>()?;
        let (limits, limited) = match args.as_slice() {
            [memory, cpu, nice] => ((memory, cpu, nice), false),
            [memory, cpu, nice, marker] if marker == LIMITED => ((memory, cpu, nice), true),
            _ => return None,
        };
        let limits = Limits {
            memory: limits.0.parse().ok()?,
            cpu_seconds: limits.1.parse().ok()?,
            deadline: Duration::ZERO,
            nice: limits.2.parse().ok()?,
        };
        Some((limits, limited))
    }

    /// Puts the limits on the calling process.
    fn apply(self) -> std::io::Result<()> {
        use rustix::process::{Resource, Rlimit, setpriority_process, setrlimit};
        let limit = |value: u64| Rlimit {
            current: Some(value),
            maximum: Some(value),
        };
        setrlimit(Resource::Core, limit(0))?;
        setrlimit(Resource::As, limit(self.memory))?;
        if self.cpu_seconds > 0 {
            // The soft limit sends SIGXCPU, the hard one a second later SIGKILL.
            setrlimit(
                Resource::Cpu,
                Rlimit {
                    current: Some(self.cpu_seconds),
                    maximum: Some(self.cpu_seconds + 1),
                },
            )?;
        }
        if self.nice > 0 {
            setpriority_process(None, self.nice)?;
        }
        Ok(())
    }
}

/// Why a sandbox gave no answer. The process is gone (or being killed);
/// a request it was given is denied or refused with this as the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// An allocation failed at the address-space limit.
    Memory(u64),
    /// The process used up its CPU seconds.
    Cpu(u64),
    /// The request outlived its deadline and the process was killed.
    Deadline(Duration),
    /// The process overflowed its stack.
    Stack,
    /// The process ended for another reason.
    Crashed(String),
    /// The process could not be started (a fault of the server, not of the
    /// policy).
    Unavailable(String),
}

impl Failure {
    /// True when a limit ended the process: the policy's fault.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Failure::Memory(_) | Failure::Cpu(_) | Failure::Deadline(_) | Failure::Stack
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Memory(bytes) => write!(
                f,
                "the policy exceeded the memory limit of {} MiB",
                bytes / MIB
            ),
            Failure::Cpu(seconds) => {
                write!(f, "the policy exceeded the CPU time limit of {seconds} s")
            }
            Failure::Deadline(limit) => write!(
                f,
                "the policy exceeded the time limit of {} ms and was stopped",
                limit.as_millis()
            ),
            Failure::Stack => write!(f, "the policy exceeded the stack limit (nested too deeply)"),
            Failure::Crashed(why) => write!(f, "the policy sandbox stopped unexpectedly ({why})"),
            Failure::Unavailable(why) => write!(f, "the policy sandbox cannot start: {why}"),
        }
    }
}

/// The parent's handle on one sandbox process: one request at a time.
/// Dropping it kills the process.
pub struct Process {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: Option<ChildStderr>,
    limits: Limits,
}

impl Process {
    /// Starts a sandbox under `limits`.
    pub fn spawn(limits: Limits) -> Result<Process, Failure> {
        let mut child = Command::new(program())
            .arg(COMMAND)
            .args(limits.to_args())
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Failure::Unavailable(e.to_string()))?;
        let (Some(stdin), Some(stdout), stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(Failure::Unavailable("its pipes are missing".into()));
        };
        Ok(Process {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            stderr,
            limits,
        })
    }

    /// Sends one request and reads its answer, within the deadline. After
    /// an error the process is dead or being killed: drop it.
    pub async fn exchange(&mut self, request: &Request) -> Result<Response, Failure> {
        let mut line = serde_json::to_vec(request).map_err(|e| Failure::Crashed(e.to_string()))?;
        line.push(b'\n');
        let mut answer = Vec::new();
        let deadline = self.limits.deadline;
        let exchanged = tokio::time::timeout(deadline, async {
            self.stdin.write_all(&line).await?;
            self.stdin.flush().await?;
            (&mut self.stdout)
                .take(MAX_RESPONSE_BYTES)
                .read_until(b'\n', &mut answer)
                .await
        })
        .await;
        match exchanged {
            Err(_) => {
                let _ = self.child.start_kill();
                Err(Failure::Deadline(deadline))
            }
            Ok(Ok(_)) if answer.ends_with(b"\n") => serde_json::from_slice(&answer)
                .map_err(|e| Failure::Crashed(format!("unreadable answer: {e}"))),
            Ok(_) => Err(self.failure().await),
        }
    }

    /// Why the process stopped answering: its exit status and the last
    /// words on its standard error.
    async fn failure(&mut self) -> Failure {
        let status = match tokio::time::timeout(EXIT_WAIT, self.child.wait()).await {
            Ok(Ok(status)) => Some(status),
            _ => {
                let _ = self.child.start_kill();
                None
            }
        };
        let mut said = Vec::new();
        if let Some(stderr) = self.stderr.take() {
            let _ = tokio::time::timeout(
                EXIT_WAIT,
                stderr.take(MAX_STDERR_BYTES).read_to_end(&mut said),
            )
            .await;
        }
        classify(status, &String::from_utf8_lossy(&said), self.limits)
    }
}

fn classify(status: Option<ExitStatus>, said: &str, limits: Limits) -> Failure {
    use std::os::unix::process::ExitStatusExt as _;
    const SIGXCPU: i32 = 24;
    const SIGKILL: i32 = 9;
    if said.contains("memory allocation of") || said.contains("capacity overflow") {
        return Failure::Memory(limits.memory);
    }
    if said.contains("overflowed its stack") {
        return Failure::Stack;
    }
    let signal = status.and_then(|s| s.signal());
    if limits.cpu_seconds > 0 && matches!(signal, Some(SIGXCPU | SIGKILL)) {
        return Failure::Cpu(limits.cpu_seconds);
    }
    let why = match (status, said.lines().rev().find(|l| !l.trim().is_empty())) {
        (_, Some(last)) => last.trim().to_owned(),
        (Some(status), None) => status.to_string(),
        (None, None) => "no exit status".to_owned(),
    };
    Failure::Crashed(why)
}

/// The binary to start as a sandbox: the one running, even if its file
/// was replaced since.
fn program() -> PathBuf {
    let own = PathBuf::from("/proc/self/exe");
    if own.exists() {
        own
    } else {
        std::env::current_exe().unwrap_or(own)
    }
}

/// The sandbox's side: puts the limits given as arguments on this process
/// and starts the binary again under them, so that they bind from its
/// first instruction (an allocator reserves its arenas before `main`, out
/// of reach of an address-space limit set later); then answers one request
/// per line of standard input until it closes. Run by the `ward` binary
/// when its first argument is [`COMMAND`], before anything else (no async
/// runtime, no other thread).
pub fn child_main(args: impl Iterator<Item = OsString>) -> ExitCode {
    use std::os::unix::process::CommandExt as _;
    let Some((limits, limited)) = Limits::from_args(args) else {
        eprintln!("error: `ward {COMMAND}` is started by `ward serve`, not by hand");
        return ExitCode::from(2);
    };
    if !limited {
        if let Err(e) = limits.apply() {
            eprintln!("error: cannot limit the policy sandbox: {e}");
            return ExitCode::FAILURE;
        }
        let e = std::process::Command::new(program())
            .arg(COMMAND)
            .args(limits.to_args())
            .arg(LIMITED)
            .exec();
        eprintln!("error: cannot start the policy sandbox: {e}");
        return ExitCode::FAILURE;
    }
    ward_policy::sandbox::serve(std::io::stdin().lock(), std::io::stdout().lock());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt as _;

    #[test]
    fn a_dead_sandbox_is_blamed_on_the_limit_it_hit() {
        let aborted = Some(ExitStatus::from_raw(6));
        let cases = [
            (
                aborted,
                "memory allocation of 720000000 bytes failed\n",
                Failure::Memory(PUSH_LIMITS.memory),
            ),
            (
                Some(ExitStatus::from_raw(101 << 8)),
                "thread 'main' panicked at library/alloc: capacity overflow\n",
                Failure::Memory(PUSH_LIMITS.memory),
            ),
            (
                aborted,
                "thread 'main' has overflowed its stack\n",
                Failure::Stack,
            ),
            (
                Some(ExitStatus::from_raw(24)),
                "",
                Failure::Cpu(PUSH_LIMITS.cpu_seconds),
            ),
            (
                Some(ExitStatus::from_raw(1 << 8)),
                "error: something else\n",
                Failure::Crashed("error: something else".into()),
            ),
        ];
        for (status, said, expected) in cases {
            assert_eq!(classify(status, said, PUSH_LIMITS), expected, "{said}");
        }
        assert!(Failure::Memory(256 * MIB).is_limit());
        assert_eq!(
            Failure::Memory(256 * MIB).to_string(),
            "the policy exceeded the memory limit of 256 MiB"
        );
        assert!(!Failure::Crashed("x".into()).is_limit());
    }

    #[test]
    fn limits_survive_the_command_line() {
        let args = PUSH_LIMITS.to_args().map(OsString::from);
        let (limits, limited) = Limits::from_args(args.clone().into_iter()).unwrap();
        assert_eq!(
            (limits.memory, limits.cpu_seconds, limits.nice, limited),
            (
                PUSH_LIMITS.memory,
                PUSH_LIMITS.cpu_seconds,
                PUSH_LIMITS.nice,
                false
            )
        );
        let marked = args.into_iter().chain([OsString::from(LIMITED)]);
        assert!(matches!(Limits::from_args(marked), Some((_, true))));
        assert!(Limits::from_args([OsString::from("x")].into_iter()).is_none());
    }
}
