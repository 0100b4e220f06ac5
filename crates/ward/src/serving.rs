//! What the long-running commands (`ward serve`, `ward gateway`, `ward
//! agent run`) share: JSON logs on stderr, and the signal that stops them
//! (Ctrl-C or SIGTERM). How their connections are served and drained is
//! `ward_serve`'s.

/// Logs JSON lines to stderr, at the level `WARD_LOG` says (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Completes on Ctrl-C or SIGTERM: how the long-running commands stop.
/// The handlers are installed when this is called, not when the future is
/// first polled, so a signal that arrives while the command is still
/// starting stops it cleanly instead of killing it.
pub fn signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).ok();
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    async move {
        let terminated = async {
            match terminate.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let interrupted = async {
            match interrupt.as_mut() {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = terminated => {},
            () = interrupted => {},
        }
    }
}
