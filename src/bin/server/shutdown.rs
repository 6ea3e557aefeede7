//! Waiting for the operator to ask us to stop.

use std::future::Future;

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM: the two ways a
/// terminal user and a service manager ask a server to stop.
///
/// The handlers are installed when this function is called, not when the
/// future is first polled, so a signal that arrives between the call and the
/// first poll (say, right after the server announced its address) is not
/// lost to the default action of killing the process. Failing to install a
/// handler is logged, and that signal then keeps its default action.
pub(crate) fn terminate_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!("cannot listen for {name}: {e}");
                None
            }
        };
        let mut interrupt = listen(SignalKind::interrupt(), "SIGINT");
        let mut terminate = listen(SignalKind::terminate(), "SIGTERM");
        async move {
            tokio::select! {
                _ = next(&mut interrupt) => tracing::info!("received Ctrl-C, shutting down"),
                _ = next(&mut terminate) => tracing::info!("received SIGTERM, shutting down"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("received Ctrl-C, shutting down");
        } else {
            std::future::pending::<()>().await;
        }
    }
}

/// The next delivery of a signal we listen for; never, for one we could not.
#[cfg(unix)]
async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
