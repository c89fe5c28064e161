//! Signals to a cancellation token: the first SIGTERM or SIGINT starts a graceful stop
//! (in-flight calls finish, state is saved); a second one exits at once.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Spawns the signal listener and returns the token it cancels.
pub fn on_signals() -> std::io::Result<CancellationToken> {
    let cancel = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let token = cancel.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
            _ = int.recv() => tracing::info!(signal = "SIGINT", "shutting down"),
        }
        token.cancel();
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    Ok(cancel)
}
