//! Failing fast while the store is down (a circuit breaker).
//!
//! When PostgreSQL goes away, sqlx's pool keeps trying to connect until its acquire
//! timeout, so every request would hang that long and then be reported as a busy pool
//! (`pool_exhausted`) or a slow request (`timeout`). [`guard`] tells those apart: after a
//! request ends with one of them (or with `store_unavailable`), it opens a fresh
//! connection outside the pool ([`StoreBreaker::probe`], one at a time for all requests:
//! [`StoreBreaker::probe_shared`]); if that fails too, the store is
//! down: the answer becomes 503 `store_unavailable`, the breaker opens, and every request
//! after it is answered 503 `store_unavailable` at once (with `Retry-After: 1`) without
//! touching the pool. A background probe (every [`PROBE_EVERY`]) closes the breaker as
//! soon as a connection succeeds; the pool then replaces its broken connections by
//! itself. `/healthz` (liveness) and `/metrics` are never refused. SQLite is a file: its
//! breaker never opens.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::{ApiError, ErrorCode};
use super::AppState;
use crate::store::Db;

/// How often the background probe tries to connect while the breaker is open.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);
/// How long one probe may take to connect.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether the store is known to be down, shared by every request of a process.
#[derive(Debug, Clone, Default)]
pub struct StoreBreaker {
    open: Arc<AtomicBool>,
    /// The last probe a request made, and when: requests that end suspiciously at the
    /// same time share one probe (a saturated pool must not get one extra connection
    /// per refused request).
    last_probe: Arc<tokio::sync::Mutex<Option<(Instant, bool)>>>,
    /// Probes made for requests (not by the background probe).
    probes: Arc<AtomicU64>,
}

impl StoreBreaker {
    /// Whether requests are refused without trying the store.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    /// Whether a new connection to the store can be opened now (outside the pool, so a
    /// pool of broken connections cannot hide a working server or the other way round).
    pub async fn probe(db: &Db) -> bool {
        match db {
            Db::Postgres(pool) => {
                use sqlx::ConnectOptions;
                let options = pool.connect_options();
                matches!(
                    tokio::time::timeout(PROBE_TIMEOUT, options.connect()).await,
                    Ok(Ok(_))
                )
            }
            Db::Sqlite { .. } => true,
        }
    }

    /// [`Self::probe`], single-flight: a request that needs a probe while another one
    /// is connecting waits for it, and a result younger than [`PROBE_EVERY`] is reused.
    /// So however many requests end with `pool_exhausted` or `timeout` at once, the
    /// store gets at most one probe connection per [`PROBE_EVERY`].
    pub async fn probe_shared(&self, db: &Db) -> bool {
        let mut last = self.last_probe.lock().await;
        if let Some((at, reachable)) = *last {
            if at.elapsed() < PROBE_EVERY {
                return reachable;
            }
        }
        self.probes.fetch_add(1, Ordering::Relaxed);
        let reachable = Self::probe(db).await;
        *last = Some((Instant::now(), reachable));
        reachable
    }

    /// Probes made for requests so far (for tests and diagnostics).
    pub fn probes(&self) -> u64 {
        self.probes.load(Ordering::Relaxed)
    }

    /// Opens the breaker (if it was closed) and starts the probe that closes it again.
    fn trip(&self, db: Db) {
        if self
            .open
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return;
        }
        tracing::error!("the store is not reachable: answering 503 store_unavailable until it is");
        metrics::gauge!("sessiond_store_reachable").set(0.0);
        let open = self.open.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                if Self::probe(&db).await {
                    open.store(false, Ordering::SeqCst);
                    metrics::gauge!("sessiond_store_reachable").set(1.0);
                    tracing::info!("the store is reachable again");
                    return;
                }
            }
        });
    }
}

fn exempt(req: &Request) -> bool {
    matches!(req.uri().path(), "/healthz" | "/metrics")
}

fn refused() -> Response {
    ApiError::new(
        ErrorCode::StoreUnavailable,
        "the store is not reachable; retry shortly",
    )
    .retry_after(1)
    .into_response()
}

/// Middleware: refuses at once while the breaker is open; after a response that may
/// mean the store is down, probes it and, if it is, answers `store_unavailable` and opens
/// the breaker.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if exempt(&req) {
        return next.run(req).await;
    }
    let breaker = &state.breaker;
    if breaker.is_open() {
        return refused();
    }
    let response = next.run(req).await;
    let suspicious = response.extensions().get::<ErrorCode>().is_some_and(|c| {
        matches!(
            c,
            ErrorCode::PoolExhausted | ErrorCode::Timeout | ErrorCode::StoreUnavailable
        )
    });
    if !suspicious {
        return response;
    }
    let db = state.app.db().clone();
    if breaker.probe_shared(&db).await {
        return response;
    }
    breaker.trip(db);
    refused()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn given_64_requests_that_need_a_probe_at_once_when_they_probe_then_the_store_gets_one() {
        // Given a breaker and a store (an in-memory SQLite: its probe always succeeds)
        let breaker = StoreBreaker::default();
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .connect("sqlite::memory:")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let db = Db::Sqlite {
            writer: pool.clone(),
            readers: pool,
        };
        // When 64 requests probe at the same moment
        let mut all = Vec::new();
        for _ in 0..64 {
            let (b, db) = (breaker.clone(), db.clone());
            all.push(tokio::spawn(async move { b.probe_shared(&db).await }));
        }
        for t in all {
            assert!(t.await.unwrap_or(false));
        }
        // Then they shared one probe (two if the first result aged past PROBE_EVERY on a
        // very slow machine), not one each
        assert!(breaker.probes() <= 2, "{} probes", breaker.probes());
        assert!(breaker.probes() >= 1);
    }
}
