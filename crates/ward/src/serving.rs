//! The signal that stops the long-running commands (`ward serve`, `ward
//! gateway`): Ctrl-C or SIGTERM. How their connections are served and
//! drained is `ward_serve`'s.

/// Completes on Ctrl-C or SIGTERM: how `ward serve` and `ward gateway` stop.
pub async fn signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = terminate => {},
    }
}
