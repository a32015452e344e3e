//! The HTTP server loop: axum's router on hyper, configured so that oversized requests
//! reach our own limits ([`super::limits`]) and get the JSON error body, instead of
//! hyper's empty 431. Graceful: on shutdown it stops accepting, lets each connection
//! finish its in-flight request, and returns once they are all closed.
//!
//! hyper still refuses, with an empty body, what it cannot represent: a request line
//! longer than 65,534 bytes (414) and a request head larger than [`MAX_HEAD_BYTES`]
//! (431). Everything between our limits and those is answered by us, in JSON.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::pin::pin;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

/// The largest request head hyper buffers (our own header limit is far below).
pub const MAX_HEAD_BYTES: usize = 2 * 1024 * 1024;
/// The most header lines hyper parses (our own limit is far below).
pub const MAX_HEAD_LINES: usize = 1_000;
/// A client has this long to send its request head.
pub const HEAD_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `shutdown` turns true, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // Every connection task holds a receiver; when all are dropped, the drain is done.
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: do not spin.
                tracing::warn!(error = %e, "accept failed; retrying shortly");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(
            router
                .clone()
                .map_request(|req: hyper::Request<Incoming>| req.map(axum::body::Body::new)),
        );
        let mut stop = shutdown.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .max_buf_size(MAX_HEAD_BYTES)
                .max_headers(MAX_HEAD_LINES)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEAD_READ_TIMEOUT);
            let mut conn =
                pin!(builder.serve_connection_with_upgrades(TokioIo::new(stream), service));
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = stop.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
                }
            }
            drop(open);
        });
    }
    drop(open_rx);
    drop(listener);
    open_tx.closed().await;
    Ok(())
}
