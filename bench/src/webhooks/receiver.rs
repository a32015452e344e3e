//! The loopback receiver: an in-process axum server on `127.0.0.1:0` that answers every
//! POST with 200 as soon as its gate is open, and records each request (its
//! `webhook-id`, when it arrived, the body). While the gate is closed requests wait
//! (the backlog scenario holds the dispatcher's first `concurrency` requests so that
//! the outbox fills up).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::BenchError;

/// One request as the receiver got it.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// `webhook-id`.
    pub id: String,
    /// When it arrived (monotonic).
    pub at: Instant,
    /// When it arrived (wall clock, comparable with the store's timestamps).
    pub wall: DateTime<Utc>,
    /// Whether it arrived while the gate was closed (answered when it opened).
    pub held: bool,
    /// The raw body.
    pub body: Bytes,
}

#[derive(Debug)]
struct Shared {
    got: Mutex<Vec<Receipt>>,
    count: AtomicU64,
    gate: watch::Sender<bool>,
}

/// A running receiver.
#[derive(Debug)]
pub struct Receiver {
    /// `http://127.0.0.1:<port>/hook`.
    pub url: String,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

async fn hook(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let at = Instant::now();
    let wall = Utc::now();
    let mut gate = shared.gate.subscribe();
    let held = !*gate.borrow();
    if held && gate.wait_for(|open| *open).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    shared
        .got
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Receipt {
            id,
            at,
            wall,
            held,
            body,
        });
    shared.count.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}

impl Receiver {
    /// Starts a receiver, its gate open or not.
    pub async fn start(open: bool) -> Result<Self, BenchError> {
        let (gate, _) = watch::channel(open);
        let shared = Arc::new(Shared {
            got: Mutex::new(Vec::new()),
            count: AtomicU64::new(0),
            gate,
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| BenchError::Other(format!("cannot bind the receiver: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| BenchError::Other(format!("the receiver's address: {e}")))?;
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the bench's webhook receiver stopped");
            }
        });
        Ok(Receiver {
            url: format!("http://{addr}/hook"),
            shared,
            server,
        })
    }

    /// Opens (`true`) or closes the gate.
    pub fn set_gate(&self, open: bool) {
        self.shared.gate.send_replace(open);
    }

    /// Requests recorded so far (answered, or held at a gate that has since opened).
    pub fn count(&self) -> u64 {
        self.shared.count.load(Ordering::Relaxed)
    }

    /// The requests recorded from index `from` on, in the order they were recorded.
    pub fn since(&self, from: usize) -> Vec<Receipt> {
        self.shared
            .got
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(from..)
            .map(<[Receipt]>::to_vec)
            .unwrap_or_default()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}
